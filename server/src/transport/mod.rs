//! The ways clients reach Herald. Each transport owns its router; `lib.rs` merges them. A transport
//! does not import another: what two share (`auth`, the wire codec `websocket`) lives beside them.

pub mod api;
pub mod auth;
pub mod sse;
pub mod websocket;
pub mod ws;
