//! Herald's integration tests, in one binary: each file below is one area, as its own opening says.
//! One binary rather than one per file: each would compile the harness (`tests/common`) and link the
//! whole server again, minutes of every CI run. `tests/memory.rs` stays its own binary: it measures
//! the process it runs in.

#[path = "../common/mod.rs"]
mod common;

mod access;
mod accounts;
mod addresses;
mod api;
mod bots;
mod changes;
mod chat;
mod cluster;
mod conformance;
mod entries;
mod history;
mod layers;
mod limits;
mod log_contract;
mod moderation;
mod operations;
mod pages;
mod presence;
mod resume;
mod web_guard;
