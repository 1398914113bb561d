//! The ways clients reach Herald. Each submodule owns its router; `lib.rs` merges them.

pub mod api;
pub mod sse;
pub mod websocket;
pub mod ws;
