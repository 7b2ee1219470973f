//! The batch test: random valid specs, each generated as a crate, all built in ONE cargo
//! workspace (one target dir, cargo's own parallelism) under `-D warnings`, then
//! `cargo clippy -- -D warnings`. A spec `codegen::load` refuses, a crate that does not
//! build or a clippy warning fails the test, naming the seed that reproduces it.
//!
//! ```text
//! cargo test -p specgen --test batch -- --nocapture          # CI: 64 specs, a fresh seed
//! PV_SPECGEN_SEED=0x1234 PV_SPECGEN_COUNT=1 cargo test ...   # one spec again
//! PV_SPECGEN_COUNT=2000 cargo test -p specgen --release --test batch -- --nocapture
//! PV_SPECGEN_AVOID=keywords,repr_bool ...                     # look past known classes
//! cargo run -p specgen -- 0x1234                              # print the spec of a seed
//! ```
//!
//! The seed is taken from the clock unless `PV_SPECGEN_SEED` is set, and printed first:
//! every CI run tries new specs, and spec `i` of the batch is seed `SEED + i`, so any one
//! failure reproduces on its own with `PV_SPECGEN_SEED=<its seed> PV_SPECGEN_COUNT=1`.
//! Specs and crates are kept under `target/tmp/specgen-batch/` for a look.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Specs per CI run. Measured on the 2-core machine shared with other builds: 200 specs take
/// 230 s (generate 30 s, build 69 s, clippy 129 s), so 64 take about 75 s (specgen/README.md).
const DEFAULT_COUNT: u64 = 64;

/// Writes a line to the real stderr, past the test harness's capture: the seed and a
/// missing clippy must show in CI's log even when the test passes.
fn say(line: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "{line}");
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    let n = match v.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16),
        None => v.parse(),
    };
    Some(n.unwrap_or_else(|e| panic!("{name}={v} is not a number: {e}")))
}

/// One thing that went wrong, by seed.
struct Failure {
    seed: u64,
    stage: &'static str,
    class: String,
    text: String,
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    // The outer `cargo test` must not leak its flags into the batch's builds.
    for v in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTC_WORKSPACE_WRAPPER",
    ] {
        c.env_remove(v);
    }
    c
}

/// Compiler messages by crate: `(class, rendered)` each.
type Messages = BTreeMap<String, Vec<(String, String)>>;

/// Runs `cargo SUB` over the batch workspace with JSON messages; returns the compiler
/// errors and warnings by crate (`s<seed>`), and cargo's stderr when it failed otherwise.
fn run_cargo(sub: &[&str], after: &[&str], ws: &Path, target: &Path) -> (Messages, Option<String>) {
    let out = cargo()
        .args(sub)
        .arg("--manifest-path")
        .arg(ws.join("Cargo.toml"))
        .args(["--workspace", "--keep-going", "--message-format=json"])
        .arg("--")
        .args(after)
        .env("CARGO_TARGET_DIR", target)
        .env("RUSTFLAGS", "-Dwarnings")
        .output()
        .expect("runs cargo");
    let mut by_crate = Messages::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if v["reason"] != "compiler-message" {
            continue;
        }
        let m = &v["message"];
        let level = m["level"].as_str().unwrap_or("");
        if level != "error" && level != "warning" {
            continue;
        }
        let rendered = m["rendered"].as_str().unwrap_or("").to_string();
        // "aborting due to" and "N warnings emitted" summaries carry no class.
        if m["spans"].as_array().is_some_and(Vec::is_empty)
            && m["code"].is_null()
            && (rendered.contains("aborting due to")
                || rendered.contains("emitted")
                || rendered.contains("could not compile"))
        {
            continue;
        }
        let class = match m["code"]["code"].as_str() {
            Some(c) => format!("{c}: {}", m["message"].as_str().unwrap_or("")),
            None => m["message"].as_str().unwrap_or("").to_string(),
        };
        let krate = v["target"]["name"].as_str().unwrap_or("?").to_string();
        by_crate.entry(krate).or_default().push((class, rendered));
    }
    let failed_otherwise = !out.status.success() && by_crate.is_empty();
    (
        by_crate,
        failed_otherwise.then(|| String::from_utf8_lossy(&out.stderr).into_owned()),
    )
}

/// Removes the build outputs of batch crates (`s<16 hex digits>`) whose seed is not in
/// `seed..seed + count` from `target`'s debug dir, its `deps` and its `.fingerprint`.
fn prune_old_crates(target: &Path, seed: u64, count: u64) {
    let debug = target.join("debug");
    for dir in [
        debug.clone(),
        debug.join("deps"),
        debug.join(".fingerprint"),
    ] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let bare = name.strip_prefix("lib").unwrap_or(&name);
            let Some(hex) = bare.strip_prefix('s').and_then(|r| r.get(..16)) else {
                continue;
            };
            let Ok(s) = u64::from_str_radix(hex, 16) else {
                continue;
            };
            if s.wrapping_sub(seed) < count {
                continue;
            }
            let p = e.path();
            let _ = if p.is_dir() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
        }
    }
}

/// Removes numbers and names from a message so one class of failure groups together.
fn class_key(msg: &str) -> String {
    let mut out = String::new();
    let mut in_tick = false;
    for c in msg.chars() {
        if c == '`' {
            in_tick = !in_tick;
            out.push_str(if in_tick { "`_" } else { "`" });
            continue;
        }
        if in_tick {
            continue;
        }
        if c.is_ascii_digit() {
            if !out.ends_with('N') {
                out.push('N');
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn random_specs_build_warning_and_clippy_clean() {
    let seed = env_u64("PV_SPECGEN_SEED").unwrap_or_else(|| {
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970");
        specgen::Rng::new(t.as_nanos() as u64).next_u64()
    });
    let count = env_u64("PV_SPECGEN_COUNT").unwrap_or(DEFAULT_COUNT);
    let avoid = std::env::var("PV_SPECGEN_AVOID").unwrap_or_default();
    let opts =
        specgen::Options::avoiding(&avoid).unwrap_or_else(|e| panic!("PV_SPECGEN_AVOID: {e}"));
    say(&format!(
        "specgen batch: seed {seed:#x}, {count} specs{}; reproduce with PV_SPECGEN_SEED={seed:#x} PV_SPECGEN_COUNT={count}{}",
        if avoid.is_empty() {
            String::new()
        } else {
            format!(", avoiding {avoid}")
        },
        if avoid.is_empty() {
            String::new()
        } else {
            format!(" PV_SPECGEN_AVOID={avoid}")
        },
    ));

    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("specgen-batch");
    let ws = root.join("ws");
    let target = root.join("target");
    if ws.exists() {
        std::fs::remove_dir_all(&ws).expect("clears the last batch");
    }
    std::fs::create_dir_all(ws.join("specs")).expect("creates the batch workspace");
    // The target dir is kept between runs (the dependencies' builds are shared), but every
    // run has new seeds: the last runs' crates go, or it grows by ~1 MB a spec per run (a
    // few thousand-spec runs filled the disk).
    prune_old_crates(&target, seed, count);

    let t0 = Instant::now();
    // Each spec checked, generated and written as a crate on its own, over the cores;
    // members and failures come back in seed order (`specgen::by_seed`).
    let made = specgen::by_seed(seed, count, |s| -> Result<String, Failure> {
        let text = specgen::generate(s, &opts);
        let file = format!("s{s:016x}.toml");
        std::fs::write(ws.join("specs").join(&file), &text).expect("writes the spec");
        let spec = codegen::load(&file, &text).map_err(|d| {
            let text = d.to_string();
            let first = text.lines().next().unwrap_or("").to_string();
            Failure {
                seed: s,
                stage: "check refused a generated spec (a specgen or checker bug)",
                class: class_key(&first),
                text,
            }
        })?;
        let header = codegen::header(&spec, &file, &text);
        let g = codegen::generate(&spec, &header).map_err(|e| Failure {
            seed: s,
            stage: "generate",
            class: class_key(e.0.lines().next().unwrap_or("")),
            text: e.0,
        })?;
        let dir = ws.join(format!("s{s:016x}"));
        codegen::write_crate(&spec, &g, &dir).expect("writes the crate");
        // The crate declares its own workspace and is named after its ABI; in the batch it
        // is a member named after its seed.
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).expect("reads Cargo.toml");
        if let Err(e) = manifest.parse::<toml::Table>() {
            return Err(Failure {
                seed: s,
                stage: "Cargo.toml",
                class: "the generated Cargo.toml is not TOML".into(),
                text: e.to_string(),
            });
        }
        let name_line = manifest
            .lines()
            .find(|l| l.starts_with("name = "))
            .expect("a package name")
            .to_string();
        let member = manifest
            .replacen(&name_line, &format!("name = \"s{s:016x}\""), 1)
            .replace("\n[workspace]\n", "\n");
        std::fs::write(dir.join("Cargo.toml"), member).expect("writes Cargo.toml");
        Ok(format!("\"s{s:016x}\""))
    });
    let mut failures: Vec<Failure> = Vec::new();
    let mut members = Vec::new();
    for m in made {
        match m {
            Ok(member) => members.push(member),
            Err(f) => failures.push(f),
        }
    }
    let gen_time = t0.elapsed();
    let mut ws_manifest = String::from("[workspace]\nresolver = \"3\"\nmembers = [\n");
    for m in &members {
        let _ = writeln!(ws_manifest, "  {m},");
    }
    ws_manifest.push_str("]\n\n[profile.dev]\ndebug = 0\nincremental = false\n");
    std::fs::write(ws.join("Cargo.toml"), ws_manifest).expect("writes the workspace");

    let mut stage_times = Vec::new();
    if !members.is_empty() {
        let t = Instant::now();
        let (msgs, other) = run_cargo(&["build"], &[], &ws, &target);
        stage_times.push(("cargo build", t.elapsed()));
        collect(&mut failures, "cargo build -D warnings", msgs, other);

        let clippy = cargo()
            .args(["clippy", "--version"])
            .output()
            .is_ok_and(|o| o.status.success());
        if clippy {
            let t = Instant::now();
            let (msgs, other) = run_cargo(&["clippy"], &["-D", "warnings"], &ws, &target);
            stage_times.push(("cargo clippy", t.elapsed()));
            collect(&mut failures, "cargo clippy -D warnings", msgs, other);
        } else {
            let banner = "!".repeat(78);
            say(&format!(
                "{banner}\nspecgen batch: `cargo clippy` is NOT installed here, so the clippy half of this test DID NOT RUN.\nInstall it (`rustup component add clippy`) to check the generated crates against clippy.\n{banner}"
            ));
        }
    }
    let mut times = format!("generate {:.1?}", gen_time);
    for (what, t) in &stage_times {
        let _ = write!(times, ", {what} {t:.1?}");
    }
    say(&format!(
        "specgen batch: {} of {count} specs built as crates; {times}",
        members.len()
    ));

    if failures.is_empty() {
        return;
    }
    // Group by class, newest seed last; show the first example of each in full.
    let mut classes: BTreeMap<(String, String), Vec<&Failure>> = BTreeMap::new();
    for f in &failures {
        classes
            .entry((f.stage.to_string(), f.class.clone()))
            .or_default()
            .push(f);
    }
    let mut report = String::new();
    let mut seeds: Vec<u64> = failures.iter().map(|f| f.seed).collect();
    seeds.sort_unstable();
    seeds.dedup();
    let _ = writeln!(
        report,
        "{} of {count} specs failed ({} failure classes). Batch seed {seed:#x}.\n",
        seeds.len(),
        classes.len()
    );
    for ((stage, class), fs) in &classes {
        let ex: Vec<String> = fs
            .iter()
            .take(6)
            .map(|f| format!("{:#x}", f.seed))
            .collect();
        let _ = writeln!(
            report,
            "== {stage}: {class}\n   {} specs, e.g. seeds {}\n{}\n",
            fs.len(),
            ex.join(" "),
            fs[0].text.trim_end()
        );
    }
    let _ = writeln!(
        report,
        "Specs: {}/specs/s<seed>.toml. One spec again: PV_SPECGEN_SEED=<seed> PV_SPECGEN_COUNT=1 cargo test -p specgen --test batch; print it: cargo run -p specgen -- <seed>",
        ws.display()
    );
    panic!("{report}");
}

fn collect(
    failures: &mut Vec<Failure>,
    stage: &'static str,
    msgs: Messages,
    other: Option<String>,
) {
    if let Some(stderr) = other {
        failures.push(Failure {
            seed: 0,
            stage,
            class: "cargo failed without a compiler message".into(),
            text: stderr,
        });
    }
    for (krate, list) in msgs {
        let seed = krate
            .strip_prefix('s')
            .and_then(|h| u64::from_str_radix(h, 16).ok())
            .unwrap_or(0);
        // One failure per class per crate, and none clippy repeats from the build.
        for (class, rendered) in list {
            let key = class_key(&class);
            if !failures.iter().any(|f| f.seed == seed && f.class == key) {
                failures.push(Failure {
                    seed,
                    stage,
                    class: key,
                    text: rendered,
                });
            }
        }
    }
}
