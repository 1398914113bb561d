//! The code's layers, checked from its source: every transport (`server/src/transport/`) and the
//! page (`pages.rs`) reaches the log and the hub only through the room operations (`rooms.rs`,
//! `AppState::rooms`), never around them, so each change to a room has one path whichever door it
//! came in by (docs/ARCHITECTURE.md, "Who may use whom").

use std::path::{Path, PathBuf};

/// Where `source` (a file's text) reaches the log or the hub itself; empty if it does not.
fn reaches_around_rooms(source: &str) -> Vec<String> {
    // Without spaces and line breaks, so a call or an import split over lines reads as one.
    let flat: String = source.chars().filter(|c| !c.is_whitespace()).collect();
    let mut found = Vec::new();
    for field in [
        "state.log.",
        "state.hub.",
        "&state.log",
        "&state.hub",
        "state.log,",
        "state.hub,",
    ] {
        if flat.contains(field) {
            found.push(format!("uses `{field}`"));
        }
    }
    for path in ["crate::log", "crate::hub", "super::log", "super::hub"] {
        if flat.contains(path) {
            found.push(format!("names `{path}`"));
        }
    }
    // `use crate::{ … log … }`: the items of each braced import from the crate.
    let mut rest = flat.as_str();
    while let Some(at) = rest.find("usecrate::{") {
        let inner = &rest[at + "usecrate::{".len()..];
        let (mut depth, mut end) = (1, inner.len());
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                _ => {}
            }
            if depth == 0 {
                end = i;
                break;
            }
        }
        let items = &inner[..end];
        let mut depth = 0;
        let mut item = String::new();
        for c in items.chars().chain(std::iter::once(',')) {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    if item == "log"
                        || item == "hub"
                        || item.starts_with("log::")
                        || item.starts_with("hub::")
                    {
                        found.push(format!("imports `crate::{item}`"));
                    }
                    item.clear();
                    continue;
                }
                _ => {}
            }
            item.push(c);
        }
        rest = &inner[end..];
    }
    found
}

/// Every Rust file under `dir`.
fn rust_files(dir: &Path, into: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("a source folder") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            rust_files(&path, into);
        } else if path.extension().is_some_and(|e| e == "rs") {
            into.push(path);
        }
    }
}

#[test]
fn transports_and_the_page_reach_the_log_and_the_hub_only_through_the_rooms() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![src.join("pages.rs"), src.join("transport.rs")];
    rust_files(&src.join("transport"), &mut files);
    let mut broken = Vec::new();
    for file in &files {
        let Ok(source) = std::fs::read_to_string(file) else {
            continue;
        };
        for what in reaches_around_rooms(&source) {
            broken.push(format!("{}: {what}", file.display()));
        }
    }
    assert!(files.len() >= 8, "the transports were found: {files:?}");
    assert!(
        broken.is_empty(),
        "these reach the log or the hub around `rooms`; add what they need to `rooms::Rooms`:\n{}",
        broken.join("\n")
    );
}

#[test]
fn the_layer_check_finds_each_way_around_the_rooms() {
    for (source, found) in [
        ("let x = state.log.epoch(&room);", "uses `state.log.`"),
        (
            "let x = state\n    .hub\n    .connect(None);",
            "uses `state.hub.`",
        ),
        (
            "rooms::page(&state.log, &state.hub, &room)",
            "uses `&state.log`",
        ),
        (
            "use crate::{\n    AppState,\n    hub::{Drain, Handle},\n};",
            "imports `crate::hub::{Drain,Handle}`",
        ),
        ("use crate::{AppState, log};", "imports `crate::log`"),
        ("let e: crate::log::LogError;", "names `crate::log`"),
    ] {
        let got = reaches_around_rooms(source);
        assert!(got.iter().any(|g| g == found), "{source:?}: {got:?}");
    }
    let fine = "use crate::{AppState, rooms::{self, Handle, LogError}};\nstate.rooms.join(conn, room, since)";
    assert_eq!(reaches_around_rooms(fine), Vec::<String>::new());
}
