//! Herald's build tool, run as `cargo xtask <command>` (an alias in `.cargo/config.toml`).
//!
//! It owns the whole path from a fresh clone to a running binary, installing what that path needs:
//! the wasm32 target, the JS glue (through `wasm-bindgen-cli-support`, pinned to the exact
//! `wasm-bindgen` in Cargo.lock), the site folder, the release binary with the site embedded, and for
//! the tests Chromium and the npm packages. No step downloads from GitHub.
//!
//! Commands:
//! - `build`: the site (`target/site`) and the release binary `target/release/herald`.
//! - `run [-- FLAGS]`: build, then start Herald (default http://127.0.0.1:3000).
//! - `test`: format check, every Rust test, the browser and release-binary tests, a bounded run of
//!   each fuzz target; ends by printing `N passed, N failed`.
//! - `fuzz [TARGET...] [-- LIBFUZZER_FLAGS]`: build the fuzz targets (`fuzz/`) and run them, each
//!   for a minute unless the flags say otherwise (`-runs=10000000`, say).

use std::{
    env,
    ffi::OsStr,
    fs,
    io::{BufRead, BufReader, Write},
    path::{Path, PathBuf},
    process::{Command, ExitCode, Stdio},
    time::Instant,
};

use anyhow::{Context, Result, bail};

/// Must match `app::OUTPUT_NAME`: wasm-bindgen writes `pkg/{OUTPUT_NAME}.js` and `_bg.wasm`.
const OUTPUT_NAME: &str = "herald";
/// Must match `app::SITE_FILES`: where the build says what the page's files are called.
const SITE_FILES: &str = "pkg/files.json";
const WASM_TARGET: &str = "wasm32-unknown-unknown";
/// The Cargo profile for the browser bundle (small, no debug info), defined in the root Cargo.toml.
const WASM_PROFILE: &str = "wasm-release";
/// Where the browser tests find Chromium unless `HERALD_CHROMIUM` says otherwise.
const DEFAULT_CHROMIUM: &str = "/usr/bin/chromium";

/// Where Debian's `redis-server` package puts the server.
const REDIS_SERVER: &str = "/usr/bin/redis-server";
/// What Debian's `fonts-noto-color-emoji` installs.
const EMOJI_FONT: &str = "/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf";

/// Prometheus's own checker of the metrics format (server/tests/integration/operations.rs).
const PROMTOOL: &str = "/usr/bin/promtool";

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("build") if args.get(1).is_some_and(|a| a == "--static") => {
            build(Linking::Static).map(|_| ExitCode::SUCCESS)
        }
        Some("build") => build(Linking::Glibc).map(|_| ExitCode::SUCCESS),
        Some("run") => run(&args[1..]),
        Some("test") => test(),
        Some("fuzz") => fuzz(&args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask <command>\n\n\
                 commands:\n  \
                 build           build the site and the release binary target/release/herald\n  \
                 build --static  the same, statically linked (musl): runs on any x86_64 Linux\n  \
                 run [-- FLAGS]  build, then run Herald (flags go to herald; see herald --help)\n  \
                 test            run every test (Rust, browser, release binary) and print the totals\n  \
                 fuzz [TARGET...] [-- LIBFUZZER_FLAGS]\n                  \
                 build and run the fuzz targets (each a minute by default)"
            );
            Ok(ExitCode::from(2))
        }
    };
    result.unwrap_or_else(|e| {
        eprintln!("xtask: error: {e:#}");
        ExitCode::FAILURE
    })
}

/// The workspace root: the parent of this crate's folder.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// When this run of the xtask began: each step says how far in it starts, so a slow run shows
/// where its time went.
static STARTED: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();

fn step(what: &str) {
    let at = STARTED.get_or_init(Instant::now).elapsed().as_secs();
    eprintln!("\n==> {what} (at {}:{:02})", at / 60, at % 60);
}

/// Runs a command in the workspace root, failing with its name if it fails.
fn sh(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .current_dir_if_unset(&root())
        .status()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    if !status.success() {
        bail!("{cmd:?} failed ({status})");
    }
    Ok(())
}

trait CommandExt {
    fn current_dir_if_unset(&mut self, dir: &Path) -> &mut Self;
}

impl CommandExt for Command {
    fn current_dir_if_unset(&mut self, dir: &Path) -> &mut Self {
        if self.get_current_dir().is_none() {
            self.current_dir(dir);
        }
        self
    }
}

fn cargo() -> Command {
    Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

// ---------------------------------------------------------------------------------------------------
// build

/// How the release binary is linked.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Linking {
    /// Against the build machine's glibc: `target/release/herald`, the default.
    Glibc,
    /// Statically, against musl, with mimalloc (musl's malloc is slow): runs on any x86_64 Linux.
    Static,
}

/// The static binary's target: musl, linked statically by default, so no glibc is needed to run it.
const STATIC_TARGET: &str = "x86_64-unknown-linux-musl";

/// Builds the site and the release binary; returns the binary's path.
fn build(linking: Linking) -> Result<PathBuf> {
    build_site()?;
    build_binary(linking)
}

/// Builds the release binary around the site already built; returns its path.
fn build_binary(linking: Linking) -> Result<PathBuf> {
    let started = Instant::now();
    let mut cmd = cargo();
    cmd.args(["build", "--release", "--package", "server"]);
    let binary = match linking {
        Linking::Glibc => {
            step("release binary with the site embedded");
            cmd.args(["--features", "embed"]);
            root().join("target/release/herald")
        }
        Linking::Static => {
            step("static release binary (musl) with the site embedded");
            for_static(&mut cmd, STATIC_FEATURES)?;
            static_dir().join("herald")
        }
    };
    sh(&mut cmd)?;
    eprintln!(
        "built {} ({:.1} MB{}) in {:.0?}",
        binary.display(),
        fs::metadata(&binary).map_or(0.0, |m| m.len() as f64 / 1e6),
        if linking == Linking::Static {
            ", static"
        } else {
            ""
        },
        started.elapsed()
    );
    Ok(binary)
}

/// Makes `cmd` (a cargo build or test) build for the static target with `features`: the target and
/// musl's gcc are installed if missing. The binary, the tests and the bench all go through here in
/// `cargo xtask test`, so every crate is compiled once, for one target, with one set of features.
fn for_static(cmd: &mut Command, features: &[&str]) -> Result<()> {
    ensure_rust_target(STATIC_TARGET)?;
    // SQLite (and mimalloc) are C, compiled by the `cc` crate: for musl it needs musl's gcc wrapper.
    ensure_debian_package(Path::new(MUSL_GCC), "musl-tools")?;
    cmd.args(["--features", &features.join(","), "--target", STATIC_TARGET])
        .env("CC_x86_64_unknown_linux_musl", MUSL_GCC);
    Ok(())
}

/// Where cargo puts what it builds for the static target in the release profile.
fn static_dir() -> PathBuf {
    root().join(format!("target/{STATIC_TARGET}/release"))
}

/// Whether the ELF file at `path` names a program interpreter (a `PT_INTERP` program header): a
/// dynamically linked executable does, a static one does not.
fn needs_a_loader(path: &Path) -> Result<bool> {
    let elf = fs::read(path)?;
    let field = |at: usize, len: usize| -> Result<u64> {
        let bytes = elf
            .get(at..at + len)
            .context("not an ELF file: too short")?;
        Ok(bytes.iter().rev().fold(0, |n, b| (n << 8) | u64::from(*b)))
    };
    // 64-bit little-endian only (x86_64): e_phoff at 0x20, e_phentsize at 0x36, e_phnum at 0x38.
    if elf.get(..6) != Some(b"\x7fELF\x02\x01".as_slice()) {
        bail!("{} is not a 64-bit little-endian ELF file", path.display());
    }
    let (offset, size, count) = (field(0x20, 8)?, field(0x36, 2)?, field(0x38, 2)?);
    for i in 0..count {
        let at = i
            .checked_mul(size)
            .and_then(|at| at.checked_add(offset))
            .context("program headers past any file")?;
        let at = usize::try_from(at)?;
        if field(at, 4)? == 3 {
            return Ok(true); // PT_INTERP
        }
    }
    Ok(false)
}

/// Debian's `musl-tools`: a gcc that compiles and links against musl.
const MUSL_GCC: &str = "/usr/bin/musl-gcc";

fn build_site() -> Result<()> {
    let root = root();
    ensure_wasm_target()?;
    check_wasm_bindgen_versions(&root)?;

    step("frontend (wasm32)");
    sh(cargo().args([
        "build",
        "--package",
        "frontend",
        "--lib",
        "--target",
        WASM_TARGET,
        "--profile",
        WASM_PROFILE,
    ]))?;

    let site = root.join("target/site");
    let pkg = site.join("pkg");
    // Start from an empty folder so nothing stale is embedded.
    if site.exists() {
        fs::remove_dir_all(&site).with_context(|| format!("cannot clear {}", site.display()))?;
    }
    fs::create_dir_all(&pkg)?;

    step("JS glue (wasm-bindgen)");
    let wasm = root.join(format!("target/{WASM_TARGET}/{WASM_PROFILE}/frontend.wasm"));
    wasm_bindgen_cli_support::Bindgen::new()
        .input_path(&wasm)
        .web(true)?
        .out_name(OUTPUT_NAME)
        .typescript(false)
        .debug(false)
        .keep_debug(false)
        .remove_producers_section(true)
        // Function names: 1.4 MB of the 2.4 MB wasm, and a quarter of it compressed.
        .remove_name_section(true)
        .generate(&pkg)
        .context("wasm-bindgen failed")?;

    step("smaller wasm (wasm-opt)");
    if let Err(e) = optimize_wasm(&root, &pkg.join(format!("{OUTPUT_NAME}_bg.wasm"))) {
        // The page works without it; it is only larger (and `cargo xtask test` says if it is over
        // its budget).
        eprintln!("warning: the wasm is left as it is: {e:#}");
    }

    step("styles and public files");
    fs::copy(
        root.join("style/main.css"),
        pkg.join(format!("{OUTPUT_NAME}.css")),
    )
    .context("cannot copy style/main.css")?;
    copy_dir(&root.join("public"), &site)?;

    let files = fingerprint(&site)?;

    // Precompressed copies: the server sends the brotli one to browsers that accept it, else the gzip
    // one (the wasm shrinks ~4x with gzip, more with brotli).
    for entry in fs::read_dir(&pkg)? {
        let path = entry?.path();
        if matches!(
            path.extension().and_then(OsStr::to_str),
            Some("js" | "wasm" | "css")
        ) {
            gzip(&path)?;
            brotli(&path)?;
        }
    }
    let size = |name: &str| fs::metadata(site.join(name)).map_or(0, |m| m.len() / 1024);
    eprintln!(
        "site: {} (wasm {} KiB, {} KiB gzipped, {} KiB brotli)",
        site.display(),
        size(&files.wasm),
        size(&format!("{}.gz", files.wasm)),
        size(&format!("{}.br", files.wasm))
    );
    Ok(())
}

/// Binaryen's passes that leave the wasm smallest *once compressed*: `-O1`, then functions that
/// are the same merged, and the sections no browser reads dropped (2026-12-06, binaryen 132: 201 117
/// → 198 348 B brotli); then arguments no caller needs removed, and what that lets go optimised
/// (2026-12-07: 200 114 → 198 451 B). `-Oz`, `-Os` and `-O2` make it smaller raw but larger
/// compressed (214 660, 212 573, 215 089 B): their inlining. Tried on top and not kept (within
/// ±150 B, or larger): `--rse`, `--optimize-instructions`, `--code-folding`, `--merge-blocks`,
/// `--reorder-locals`, `--merge-similar-functions` (+1 100), `--inlining-optimizing` (+19 000).
/// The features are those Rust's wasm32 target uses.
const WASM_OPT_ARGS: [&str; 11] = [
    "-O1",
    "--duplicate-function-elimination",
    "--dae-optimizing",
    "--strip-producers",
    "--strip-target-features",
    "--enable-bulk-memory",
    "--enable-sign-ext",
    "--enable-nontrapping-float-to-int",
    "--enable-mutable-globals",
    "--enable-multivalue",
    "--enable-reference-types",
];

/// Runs npm's `wasm-opt` (pinned in `xtask/wasm-opt`, installed there on first use) on `wasm`, in
/// place. Never Debian's binaryen: its wasm-opt 108 writes a wasm that loads but never hydrates.
fn optimize_wasm(root: &Path, wasm: &Path) -> Result<()> {
    let tools = root.join("xtask/wasm-opt");
    ensure_npm_packages(&tools)?;
    let optimized = wasm.with_extension("opt.wasm");
    sh(Command::new(tools.join("node_modules/.bin/wasm-opt"))
        .args(WASM_OPT_ARGS)
        .arg(wasm)
        .arg("-o")
        .arg(&optimized))?;
    fs::rename(&optimized, wasm)?;
    Ok(())
}

/// The page's script, wasm and stylesheet, by their site paths.
struct SiteFiles {
    js: String,
    wasm: String,
    css: String,
}

/// Renames the files the page links to after their content (`herald.3f2a9c0d1e4b5a6f.js`), so a
/// browser may keep each for good, and writes the names to [`SITE_FILES`] for the server.
fn fingerprint(site: &Path) -> Result<SiteFiles> {
    use sha2::{Digest, Sha256};
    let hashed = |name: &str| -> Result<String> {
        let path = site.join("pkg").join(name);
        let bytes = fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let hash: String = Sha256::digest(&bytes)[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let (stem, ext) = name
            .rsplit_once('.')
            .context("a file name without extension")?;
        let renamed = format!("{stem}.{hash}.{ext}");
        fs::rename(&path, site.join("pkg").join(&renamed))?;
        Ok(format!("pkg/{renamed}"))
    };
    let files = SiteFiles {
        js: hashed(&format!("{OUTPUT_NAME}.js"))?,
        wasm: hashed(&format!("{OUTPUT_NAME}_bg.wasm"))?,
        css: hashed(&format!("{OUTPUT_NAME}.css"))?,
    };
    let manifest = serde_json::json!({ "js": files.js, "wasm": files.wasm, "css": files.css });
    fs::write(site.join(SITE_FILES), format!("{manifest:#}\n"))?;
    Ok(files)
}

fn ensure_wasm_target() -> Result<()> {
    ensure_rust_target(WASM_TARGET)
}

/// Adds the standard library for `target` with rustup unless it is installed.
fn ensure_rust_target(target: &str) -> Result<()> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .with_context(|| format!("rustup is needed to add the {target} target"))?;
    if !String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|l| l.trim() == target)
    {
        step(&format!("installing the {target} target (rustup)"));
        sh(Command::new("rustup").args(["target", "add", target]))?;
    }
    Ok(())
}

/// The JS glue must be generated by the very version of wasm-bindgen the wasm was compiled against.
fn check_wasm_bindgen_versions(root: &Path) -> Result<()> {
    let lock = fs::read_to_string(root.join("Cargo.lock")).context("cannot read Cargo.lock")?;
    let version_of = |name: &str| -> Option<String> {
        let header = format!("name = \"{name}\"\nversion = \"");
        let start = lock.find(&header)? + header.len();
        let end = start + lock[start..].find('"')?;
        Some(lock[start..end].to_owned())
    };
    let (lib, cli) = (
        version_of("wasm-bindgen"),
        version_of("wasm-bindgen-cli-support"),
    );
    match (lib, cli) {
        (Some(lib), Some(cli)) if lib == cli => Ok(()),
        (lib, cli) => bail!(
            "Cargo.lock has wasm-bindgen {lib:?} but wasm-bindgen-cli-support {cli:?}; they must be \
             the same version (pin both with `=` in the root Cargo.toml)"
        ),
    }
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from).with_context(|| format!("cannot read {}", from.display()))? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

fn gzip(path: &Path) -> Result<()> {
    let data = fs::read(path)?;
    let mut out = path.as_os_str().to_owned();
    out.push(".gz");
    let mut encoder =
        flate2::write::GzEncoder::new(fs::File::create(out)?, flate2::Compression::best());
    encoder.write_all(&data)?;
    encoder.finish()?;
    Ok(())
}

/// Writes `path.br`: brotli at its best quality (11) with a 4 MiB window, as for static files.
fn brotli(path: &Path) -> Result<()> {
    let data = fs::read(path)?;
    let mut out = path.as_os_str().to_owned();
    out.push(".br");
    // The largest metablocks (`lgblock` 24) leave the wasm ~230 B smaller than the default; the
    // decoder is the same for any.
    let params = brotli::enc::BrotliEncoderParams {
        quality: 11,
        lgwin: 22,
        lgblock: 24,
        ..Default::default()
    };
    let mut file = fs::File::create(out)?;
    brotli::BrotliCompress(&mut &data[..], &mut file, &params)?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------------
// run

fn run(args: &[String]) -> Result<ExitCode> {
    let binary = build(Linking::Glibc)?;
    let flags: Vec<&String> = args.iter().skip_while(|a| *a == "--").collect();
    step("starting Herald (Ctrl-C to stop)");
    let status = Command::new(binary)
        .args(flags)
        .current_dir(root())
        .status()?;
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

// ---------------------------------------------------------------------------------------------------
// test

/// The most the page's wasm may weigh, brotli-compressed: what a phone on a slow network waits for
/// before the page is alive. Each crate and each feature is measured against it before it is taken.
const WASM_BUDGET_BYTES: u64 = 200_000;

/// The size of the built site's wasm, brotli-compressed (`target/site`, named in `SITE_FILES`).
fn wasm_brotli_bytes() -> Result<u64> {
    let site = root().join("target/site");
    let files: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(site.join(SITE_FILES))?)?;
    let wasm = files["wasm"]
        .as_str()
        .context("no wasm in the site's file list")?;
    Ok(fs::metadata(site.join(format!("{wasm}.br")))?.len())
}

/// Passed and failed tests, added up over every layer.
#[derive(Default)]
struct Tally {
    passed: u64,
    failed: u64,
    /// Steps that broke before their tests could be counted (a compile error, a crashed runner).
    broken: Vec<String>,
}

fn test() -> Result<ExitCode> {
    let started = *STARTED.get_or_init(Instant::now);
    let root = root();
    let mut tally = Tally::default();

    step("format check");
    if let Err(e) = sh(cargo().args(["fmt", "--all", "--check"])) {
        tally.broken.push(format!("cargo fmt: {e}"));
    }

    // Everything the browser tests need, before the long Rust test run, so a missing tool fails fast.
    ensure_chromium()?;
    // The cluster tests start their own redis-server (server/tests/integration/cluster.rs).
    ensure_debian_package(Path::new(REDIS_SERVER), "redis-server")?;
    // The operations tests check /metrics with promtool (Debian's `prometheus` package).
    ensure_debian_package(Path::new(PROMTOOL), "prometheus")?;
    ensure_npm_packages(&root.join("end2end"))?;
    // One build for everything: the binary under test is the static one an operator deploys, and the
    // Rust tests and the bench are compiled for its target with its features, so no crate is compiled
    // twice (a glibc build beside it cost minutes of every CI run).
    let binary = build(Linking::Static)?;

    step(
        "the binary is static: it asks for no dynamic loader, so no glibc (nor any library) is needed",
    );
    match needs_a_loader(&binary) {
        Ok(false) => tally.passed += 1,
        Ok(true) => {
            eprintln!("{} is dynamically linked", binary.display());
            tally.failed += 1;
        }
        Err(e) => tally
            .broken
            .push(format!("reading the static binary: {e:#}")),
    }

    step("the wasm within its budget (brotli, as browsers fetch it)");
    match wasm_brotli_bytes() {
        Ok(bytes) if bytes <= WASM_BUDGET_BYTES => {
            eprintln!("wasm: {bytes} B brotli, budget {WASM_BUDGET_BYTES} B");
            tally.passed += 1;
        }
        Ok(bytes) => {
            eprintln!("wasm: {bytes} B brotli, over the budget of {WASM_BUDGET_BYTES} B");
            tally.failed += 1;
        }
        Err(e) => tally.broken.push(format!("measuring the wasm: {e:#}")),
    }

    step("Rust tests (unit and integration)");
    rust_tests(&mut tally);

    step("browser and release-binary tests (Playwright, Chromium)");
    browser_tests(&root.join("end2end"), &binary, &[], &mut tally);

    step("benchmark tool smoke run (herald-bench smoke: nothing lost or doubled)");
    bench_smoke(&binary, &mut tally);

    step("fuzz targets, a bounded run of each (they keep building and running)");
    fuzz_smoke(&mut tally);

    eprintln!("\ntook {:.0?}", started.elapsed());
    for problem in &tally.broken {
        eprintln!("BROKEN: {problem}");
    }
    let failed = tally.failed + tally.broken.len() as u64;
    println!("{} passed, {} failed", tally.passed, failed);
    Ok(if failed == 0 && tally.passed > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn rust_tests(tally: &mut Tally) {
    // The app, server and bench in the release profile, for the static target with the binary's
    // features: cargo test also (re)builds the herald binary there, and with other features it would
    // replace the binary under test with another. Same target, profile and features also means every
    // dependency is already compiled. The xtask itself is tested apart, in the dev profile it was just
    // built in: in one command its dependencies would change the features of crates the server
    // shares, and recompile them all.
    // `--tests`: unit and integration tests, not doc-tests (there are none, and rustdoc still
    // went through each crate for them).
    let mut cmd = cargo();
    cmd.args([
        "test",
        "--release",
        "--tests",
        "--package",
        "app",
        "--package",
        "server",
        "--package",
        "bench",
    ]);
    match for_static(&mut cmd, STATIC_FEATURES) {
        Ok(()) => cargo_test(tally, &mut cmd),
        Err(e) => tally.broken.push(format!("the static target: {e:#}")),
    }
    cargo_test(tally, cargo().args(["test", "--package", "xtask"]));
}

/// The static binary's features: the site inside, mimalloc as the allocator.
const STATIC_FEATURES: &[&str] = &["server/embed", "server/mimalloc"];

/// Benchmarks do not run here (they take minutes and measure the machine); a short run of the tool
/// against the release binary does, so the tool keeps working (its subscribers in two processes, so the
/// several-process mode that larger runs need keeps working too). It counts as one test.
fn bench_smoke(binary: &Path, tally: &mut Tally) {
    // Built for the target and with the features the tests were: cargo then reuses every dependency
    // (alone, the bench would build leptos and the rest again with other features).
    let mut build = cargo();
    build.args([
        "build",
        "--release",
        "--package",
        "server",
        "--package",
        "bench",
        "--bin",
        "herald-bench",
    ]);
    let built = for_static(&mut build, STATIC_FEATURES).and_then(|()| sh(&mut build));
    let mut cmd = Command::new(static_dir().join("herald-bench"));
    cmd.arg("--herald")
        .arg(binary)
        .args(["--processes", "2", "smoke"])
        .current_dir(root());
    match built.and_then(|()| sh(&mut cmd)) {
        Ok(()) => tally.passed += 1,
        Err(e) => {
            eprintln!("herald-bench smoke: {e}");
            tally.failed += 1;
        }
    }
}

/// Runs `cmd` (a `cargo test`), adding its results to `tally`.
fn cargo_test(tally: &mut Tally, cmd: &mut Command) {
    cmd.current_dir(root()).stdout(Stdio::piped());
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            tally.broken.push(format!("cargo test did not start: {e}"));
            return;
        }
    };
    // Echo libtest's output while adding up its `test result:` lines.
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            println!("{line}");
            if let Some((passed, failed)) = libtest_counts(&line) {
                tally.passed += passed;
                tally.failed += failed;
            }
        }
    }
    match child.wait() {
        Ok(status) if status.success() => {}
        Ok(status) => tally.broken.push(format!("{cmd:?} exited with {status}")),
        Err(e) => tally.broken.push(format!("cargo test: {e}")),
    }
}

/// `test result: ok. 12 passed; 0 failed; 0 ignored; ...` → (12, 0).
fn libtest_counts(line: &str) -> Option<(u64, u64)> {
    let rest = line.trim().strip_prefix("test result: ")?;
    let number_before = |label: &str| -> Option<u64> {
        let at = rest.find(label)?;
        rest[..at].split_whitespace().last()?.parse().ok()
    };
    Some((number_before(" passed")?, number_before(" failed")?))
}

/// Runs the Playwright tests (those in `specs`, or all) against `binary`.
fn browser_tests(dir: &Path, binary: &Path, specs: &[&str], tally: &mut Tally) {
    let report = dir.join("test-results/report.json");
    let _ = fs::remove_file(&report);
    let status = Command::new("npx")
        .args(["playwright", "test"])
        .args(specs)
        .current_dir(dir)
        .env("HERALD_BIN", binary)
        .env("HERALD_CHROMIUM", chromium_path())
        .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
        .status();
    // The JSON reporter (configured in playwright.config.ts) writes the counts.
    match fs::read_to_string(&report)
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
    {
        Some(json) => {
            let stat = |name: &str| json["stats"][name].as_u64().unwrap_or(0);
            tally.passed += stat("expected") + stat("flaky");
            tally.failed += stat("unexpected");
            // Named again at the end, beside the counts: a CI log is often read by its tail only.
            for failed in unexpected_tests(&json) {
                tally.broken.push(format!("browser test failed: {failed}"));
            }
            if stat("skipped") > 0 {
                tally
                    .broken
                    .push(format!("{} browser tests were skipped", stat("skipped")));
            }
        }
        None => tally
            .broken
            .push(format!("Playwright wrote no report ({status:?})")),
    }
}

/// Each test of a Playwright JSON report whose outcome was unexpected: where it is, its title, and
/// the first line of its first error.
fn unexpected_tests(report: &serde_json::Value) -> Vec<String> {
    fn walk(suite: &serde_json::Value, found: &mut Vec<String>) {
        for spec in suite["specs"].as_array().into_iter().flatten() {
            for test in spec["tests"].as_array().into_iter().flatten() {
                if test["status"] != "unexpected" {
                    continue;
                }
                let error = test["results"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find_map(|result| result["error"]["message"].as_str())
                    .map_or_else(|| "no error given".to_owned(), error_lines);
                found.push(format!(
                    "{}:{} {} ({error})",
                    spec["file"].as_str().unwrap_or("?"),
                    spec["line"],
                    spec["title"].as_str().unwrap_or("?"),
                ));
            }
        }
        for inner in suite["suites"].as_array().into_iter().flatten() {
            walk(inner, found);
        }
    }
    let mut found = Vec::new();
    walk(report, &mut found);
    found
}

/// The lines of a Playwright error that say what happened — its first line and its call log (what
/// was being waited for), without the source excerpt — at most [`ERROR_LINES`], joined by " / ".
fn error_lines(message: &str) -> String {
    let code = |line: &str| {
        let line = line.trim_start().trim_start_matches('>').trim_start();
        line.starts_with('|')
            || line.starts_with("at ")
            || line
                .split_once(" |")
                .is_some_and(|(n, _)| n.trim().parse::<u32>().is_ok())
    };
    message
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !code(line))
        .take(ERROR_LINES)
        .collect::<Vec<_>>()
        .join(" / ")
}

/// How many lines of each failed browser test's error [`error_lines`] keeps.
const ERROR_LINES: usize = 12;

fn chromium_path() -> PathBuf {
    env::var_os("HERALD_CHROMIUM").map_or_else(|| PathBuf::from(DEFAULT_CHROMIUM), PathBuf::from)
}

/// Debian's Chromium (Playwright's own browser download needs GitHub, which this machine cannot
/// reach), and an emoji font: without one, reactions are drawn as empty boxes, as on no person's
/// desktop (changes.spec.ts looks at a reaction's pixels).
fn ensure_chromium() -> Result<()> {
    ensure_debian_package(&chromium_path(), "chromium")?;
    ensure_debian_package(Path::new(EMOJI_FONT), "fonts-noto-color-emoji")
}

/// Installs Debian's `package` (apt-get, as root or through `sudo -n`) unless `binary` is there.
fn ensure_debian_package(binary: &Path, package: &str) -> Result<()> {
    if binary.exists() {
        return Ok(());
    }
    step(&format!("installing {package} (apt-get)"));
    let as_root = |args: &[&str]| {
        let is_root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0"));
        let mut cmd = if is_root {
            Command::new("apt-get")
        } else {
            let mut sudo = Command::new("sudo");
            sudo.args(["-n", "apt-get"]);
            sudo
        };
        cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        sh(&mut cmd)
    };
    if as_root(&["install", "-y", "--no-install-recommends", package]).is_err() {
        as_root(&["update"])?;
        as_root(&["install", "-y", "--no-install-recommends", package])?;
    }
    if !binary.exists() {
        bail!("{package} is still missing: no {}", binary.display());
    }
    Ok(())
}

/// `npm ci` when node_modules is missing or older than the lock file.
fn ensure_npm_packages(dir: &Path) -> Result<()> {
    let modified = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).ok();
    let installed = modified(&dir.join("node_modules/.package-lock.json"));
    let wanted = modified(&dir.join("package-lock.json"));
    if installed.is_some() && installed >= wanted {
        return Ok(());
    }
    step(&format!(
        "installing the npm packages in {} (npm ci)",
        dir.display()
    ));
    sh(Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(dir)
        .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1"))
}

// ---------------------------------------------------------------------------------------------------
// fuzz

/// The fuzz targets in `fuzz/fuzz_targets/`, each with a seed corpus in `fuzz/corpus/<target>/`.
const FUZZ_TARGETS: [&str; 8] = [
    "frame_decoder",
    "client_msg",
    "session_cookie",
    "api_body",
    "forwarded",
    "markdown",
    "mentions",
    "search_words",
];

/// Coverage instrumentation for libFuzzer on stable Rust: the `-C` options libfuzzer-sys documents
/// for building a target by hand (cargo-fuzz passes the same), without a sanitizer (which needs a
/// nightly `-Z` flag; the code under test forbids `unsafe`). Overflow checks and debug assertions
/// are on in the fuzz crate's release profile.
const FUZZ_RUSTFLAGS: &str = "-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
    -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing";

/// Seconds each target runs inside `cargo xtask test`.
const FUZZ_SMOKE_SECS: u32 = 5;

/// Builds the fuzz targets; returns the folder holding them.
fn fuzz_build() -> Result<PathBuf> {
    let root = root();
    // For the host triple explicitly: RUSTFLAGS then reach only the targets, not build scripts or
    // proc macros (which could not link the instrumentation's symbols).
    let version = Command::new("rustc")
        .arg("-vV")
        .output()
        .context("rustc -vV")?;
    let host = String::from_utf8_lossy(&version.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_owned))
        .context("rustc -vV names no host")?;
    let target_dir = root.join("target/fuzz");
    sh(cargo()
        .args(["build", "--release", "--bins", "--target", &host])
        .arg("--manifest-path")
        .arg(root.join("fuzz/Cargo.toml"))
        .env("CARGO_TARGET_DIR", &target_dir)
        .env("RUSTFLAGS", FUZZ_RUSTFLAGS))?;
    Ok(target_dir.join(host).join("release"))
}

/// What one run of a target did.
struct FuzzRun {
    executions: u64,
    seconds: u64,
    passed: bool,
}

/// Runs one target over its corpus with `flags`. New inputs go to `target/fuzz/corpus/<target>`, so
/// the repository's corpus is only read (merge new finds into it with `-merge=1` by hand).
fn fuzz_run(bin_dir: &Path, target: &str, flags: &[String]) -> Result<FuzzRun> {
    let root = root();
    let found = root.join("target/fuzz/corpus").join(target);
    fs::create_dir_all(&found)?;
    let output = Command::new(bin_dir.join(target))
        .arg(&found)
        .arg(root.join("fuzz/corpus").join(target))
        .args(flags)
        .arg("-print_final_stats=1")
        .current_dir(root.join("target/fuzz"))
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("cannot start the fuzz target {target}"))?;
    let log = String::from_utf8_lossy(&output.stderr);
    // libFuzzer's last word: `Done 430468 runs in 16 second(s)`.
    let done = log.lines().rev().find_map(|line| {
        let rest = line.strip_prefix("Done ")?;
        let (runs, rest) = rest.split_once(" runs in ")?;
        let seconds = rest.split_whitespace().next()?;
        Some((runs.parse().ok()?, seconds.parse().ok()?))
    });
    if !output.status.success() || done.is_none() {
        // The crash report and the input's file name are in the log.
        eprintln!("{log}");
    }
    let (executions, seconds) = done.unwrap_or((0, 0));
    Ok(FuzzRun {
        executions,
        seconds,
        passed: output.status.success() && done.is_some(),
    })
}

/// `cargo xtask fuzz [TARGET...] [-- FLAGS]`.
fn fuzz(args: &[String]) -> Result<ExitCode> {
    let (names, flags) = match args.iter().position(|a| a == "--") {
        Some(at) => (&args[..at], args[at + 1..].to_vec()),
        None => (args, vec!["-max_total_time=60".to_owned()]),
    };
    for name in names {
        if !FUZZ_TARGETS.contains(&name.as_str()) {
            bail!(
                "no fuzz target {name}; there are {}",
                FUZZ_TARGETS.join(", ")
            );
        }
    }
    let targets: Vec<&str> = if names.is_empty() {
        FUZZ_TARGETS.to_vec()
    } else {
        names.iter().map(String::as_str).collect()
    };
    step("fuzz targets (libFuzzer, coverage-instrumented)");
    let bin_dir = fuzz_build()?;
    let mut failed = false;
    for target in targets {
        step(&format!("fuzz {target} {}", flags.join(" ")));
        let run = fuzz_run(&bin_dir, target, &flags)?;
        println!(
            "{target}: {} executions in {} s, {}",
            run.executions,
            run.seconds,
            if run.passed { "no crash" } else { "FAILED" }
        );
        failed |= !run.passed;
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// A few seconds of each target: each run that ends without a crash is a test passed.
fn fuzz_smoke(tally: &mut Tally) {
    let bin_dir = match fuzz_build() {
        Ok(dir) => dir,
        Err(e) => {
            tally
                .broken
                .push(format!("fuzz targets did not build: {e:#}"));
            return;
        }
    };
    let flags = [format!("-max_total_time={FUZZ_SMOKE_SECS}")];
    for target in FUZZ_TARGETS {
        match fuzz_run(&bin_dir, target, &flags) {
            Ok(run) if run.passed => {
                eprintln!("fuzz {target}: {} executions, no crash", run.executions);
                tally.passed += 1;
            }
            Ok(_) => {
                eprintln!("fuzz {target}: FAILED (the log above names the input)");
                tally.failed += 1;
            }
            Err(e) => tally.broken.push(format!("fuzz {target}: {e:#}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{error_lines, libtest_counts, needs_a_loader, unexpected_tests};

    #[test]
    fn names_the_browser_tests_that_failed() {
        let report = serde_json::json!({"suites": [{"specs": [], "suites": [{"specs": [
            {"file": "chat.spec.ts", "line": 7, "title": "two browsers chat",
             "tests": [{"status": "expected", "results": [{"status": "passed"}]}]},
            {"file": "chat.spec.ts", "line": 37, "title": "markup is text",
             "tests": [{"status": "unexpected", "results": [{"status": "failed",
                "error": {"message": "\nError: expect(locator).toHaveText\n  at x"}}]}]}
        ]}]}]});
        assert_eq!(
            unexpected_tests(&report),
            ["chat.spec.ts:37 markup is text (Error: expect(locator).toHaveText)"]
        );
        let message = "Error: Timeout 15000ms exceeded while waiting on the predicate\n\n  39 |     await x;\n> 41 |   }).toPass();\n     |      ^\n    at search (/a.ts:41:6)\nCall log:\n  - waiting for locator('a')\n";
        assert_eq!(
            error_lines(message),
            "Error: Timeout 15000ms exceeded while waiting on the predicate / Call log: / - waiting for locator('a')"
        );
    }

    #[test]
    fn tells_a_dynamically_linked_executable_from_a_static_one() {
        // This test's own executable: linked against glibc, so it names ld-linux.
        let me = std::env::current_exe().expect("own path");
        assert!(needs_a_loader(&me).expect("an ELF file"));
        // A header with one program header, of type PT_LOAD (1): no interpreter.
        let mut elf = vec![0u8; 64 + 56];
        elf[..6].copy_from_slice(b"\x7fELF\x02\x01");
        elf[0x20] = 64; // e_phoff
        elf[0x36] = 56; // e_phentsize
        elf[0x38] = 1; // e_phnum
        elf[64] = 1; // p_type: PT_LOAD
        let path = std::env::temp_dir().join(format!("xtask-elf-{}", std::process::id()));
        std::fs::write(&path, &elf).expect("write");
        assert!(!needs_a_loader(&path).expect("an ELF file"));
        elf[64] = 3; // PT_INTERP
        std::fs::write(&path, &elf).expect("write");
        assert!(needs_a_loader(&path).expect("an ELF file"));
        let _ = std::fs::remove_file(&path);
        assert!(needs_a_loader(std::path::Path::new("Cargo.toml")).is_err());
    }

    #[test]
    fn reads_libtest_summaries() {
        assert_eq!(
            libtest_counts(
                "test result: ok. 12 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s"
            ),
            Some((12, 0))
        );
        assert_eq!(
            libtest_counts("test result: FAILED. 3 passed; 2 failed; 0 ignored"),
            Some((3, 2))
        );
        assert_eq!(libtest_counts("running 3 tests"), None);
    }
}
