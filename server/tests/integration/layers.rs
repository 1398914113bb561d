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
    let mut files = vec![
        src.join("pages.rs"),
        src.join("edit_history.rs"),
        src.join("transport.rs"),
    ];
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

/// The crate's top-level modules (a file or a folder under `src`, the crate root aside) and the
/// others each one names (`crate::name`, or an item of `use crate::{…}`), comments left out.
fn module_uses(
    src: &Path,
) -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut uses: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
        std::collections::BTreeMap::new();
    for file in files {
        let relative = file.strip_prefix(src).expect("under src");
        let top = relative
            .components()
            .next()
            .expect("a name")
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if top == "lib" || top == "main" {
            continue;
        }
        let source = std::fs::read_to_string(&file).expect("readable");
        let code: String = source
            .lines()
            .map(|line| line.split("//").next().unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n");
        let flat: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        let named = uses.entry(top.clone()).or_default();
        let ident = |s: &str| {
            s.chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect::<String>()
        };
        for (at, _) in flat.match_indices("crate::") {
            let name = ident(&flat[at + "crate::".len()..]);
            if !name.is_empty() {
                named.insert(name);
            }
        }
        let mut rest = flat.as_str();
        while let Some(at) = rest.find("usecrate::{") {
            let inner = &rest[at + "usecrate::{".len()..];
            let mut depth = 1;
            let mut item = String::new();
            let mut end = inner.len();
            for (i, c) in inner.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
                if depth == 0 || (c == ',' && depth == 1) {
                    named.insert(ident(&item));
                    item.clear();
                    if depth == 0 {
                        end = i;
                        break;
                    }
                    continue;
                }
                item.push(c);
            }
            rest = &inner[end..];
        }
        named.remove(&top);
    }
    let modules: std::collections::BTreeSet<String> = uses.keys().cloned().collect();
    for named in uses.values_mut() {
        named.retain(|name| modules.contains(name));
    }
    uses
}

/// A circle of modules each naming the next, if there is one.
fn a_circle(
    uses: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
) -> Option<Vec<String>> {
    // Depth-first, with the path so far: a module met again on it closes a circle.
    fn walk(
        uses: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
        at: &str,
        path: &mut Vec<String>,
        done: &mut std::collections::BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|m| m == at) {
            let mut circle = path[start..].to_vec();
            circle.push(at.to_string());
            return Some(circle);
        }
        if !done.insert(at.to_string()) {
            return None;
        }
        path.push(at.to_string());
        for next in uses.get(at).into_iter().flatten() {
            if let Some(circle) = walk(uses, next, path, done) {
                return Some(circle);
            }
        }
        path.pop();
        None
    }
    let mut done = std::collections::BTreeSet::new();
    uses.keys()
        .find_map(|module| walk(uses, module, &mut Vec::new(), &mut done))
}

#[test]
fn no_module_names_another_in_a_circle_in_the_server_or_the_app() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for src in [root.join("src"), root.join("../app/src")] {
        let uses = module_uses(&src);
        assert!(uses.len() >= 5, "{}: {uses:?}", src.display());
        if let Some(circle) = a_circle(&uses) {
            panic!("{}: {}", src.display(), circle.join(" -> "));
        }
    }
    // The check finds one where there is one.
    let mut circular = std::collections::BTreeMap::new();
    for (from, to) in [
        ("metrics", "redis_link"),
        ("redis_link", "metrics"),
        ("hub", "frame"),
    ] {
        circular
            .entry(from.to_string())
            .or_insert_with(std::collections::BTreeSet::new)
            .insert(to.to_string());
    }
    assert_eq!(
        a_circle(&circular),
        Some(vec![
            "metrics".into(),
            "redis_link".into(),
            "metrics".into()
        ])
    );
}
