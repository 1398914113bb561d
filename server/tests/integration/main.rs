//! Herald's integration tests, in one binary: each file below is one area, as its own opening says.
//! One binary rather than one per file: each would compile the harness (`tests/common`) and link the
//! whole server again, minutes of every CI run. The memory test (`memory.rs`) measures the binary
//! in a process of its own, so it needs no binary of its own either.

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
mod leaving;
mod limits;
mod log_contract;
mod memory;
mod mentions;
mod moderation;
mod notifications;
mod operations;
mod pages;
mod presence;
mod reading;
mod resume;
mod search;
mod web_guard;
