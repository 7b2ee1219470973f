//! Compiling a test crate with `rustc` against this build's `pv_macros`: what the
//! compile-fail tests (`ui.rs`) and the expansion-dump tests (`debug_expand.rs`) share.
//!
//! The proc macro and `pv_sites` are the artifacts cargo built for these tests (they are
//! dev-dependencies, so cargo builds them before the test binary), found beside the test
//! binary. Compiling against them directly, rather than through a harness that builds the
//! macro and its generator dependencies again in a target directory of its own (trybuild),
//! is what keeps a case at a twentieth of a second.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The newest `lib<name>-*<suffix>` beside the test binary that is not newer than the test
/// binary: the one cargo built (or found fresh) just before linking these tests, even when a
/// target directory holds others from other feature sets or older sources.
pub fn artifact(name: &str, suffix: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let built = exe.metadata().and_then(|m| m.modified()).ok();
    let deps = exe.parent().expect("the deps directory");
    let prefix = format!("lib{name}-");
    let mut found: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(deps)
        .expect("the deps directory is readable")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            let file = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            file.starts_with(&prefix) && file.ends_with(suffix)
        })
        .filter_map(|p| Some((p.metadata().and_then(|m| m.modified()).ok()?, p)))
        .collect();
    found.sort();
    let fitting = found
        .iter()
        .rev()
        .find(|(t, _)| built.is_none_or(|b| *t <= b))
        .or(found.last());
    match fitting {
        Some((_, p)) => p.clone(),
        None => panic!(
            "no {prefix}*{suffix} in {}: cargo builds it for these tests (a dev-dependency)",
            deps.display()
        ),
    }
}

/// The `pv_macros` proc-macro library cargo built for these tests.
pub fn proc_macro_lib() -> PathBuf {
    artifact("pv_macros", std::env::consts::DLL_SUFFIX)
}

/// `rustc` as cargo ran it for this package (build.rs passes it on), edition 2024, with
/// `pv_macros` and `pv_sites` as externs and `CARGO_MANIFEST_DIR` set as cargo sets it.
pub fn rustc(crate_type: &str, crate_name: &str, out_dir: &Path) -> Command {
    let proc_macro = proc_macro_lib();
    let deps = proc_macro.parent().expect("the deps directory");
    let mut c = Command::new(env!("PV_MACROS_RUSTC"));
    c.args([
        "--edition",
        "2024",
        "--crate-type",
        crate_type,
        "--crate-name",
        crate_name,
    ])
    .arg("--extern")
    .arg(format!("pv_macros={}", proc_macro.display()))
    .arg("--extern")
    .arg(format!(
        "pv_sites={}",
        artifact("pv_sites", ".rlib").display()
    ))
    .arg("-L")
    .arg(format!("dependency={}", deps.display()))
    .arg("--out-dir")
    .arg(out_dir)
    .arg("--color=never")
    .current_dir(env!("CARGO_MANIFEST_DIR"))
    .env("CARGO_MANIFEST_DIR", env!("CARGO_MANIFEST_DIR"))
    .env("CARGO_CRATE_NAME", crate_name);
    c
}

/// A fresh scratch directory for one test.
pub fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("pv-macros-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a scratch directory");
    dir
}
