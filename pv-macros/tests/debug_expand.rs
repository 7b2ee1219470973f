//! `PVABI_DEBUG_EXPAND=DIR`: each expansion is a formatted file in `DIR`, the crate builds
//! from those files, and an error inside an expansion points at a line of one.
//!
//! The test compiles small crates with `rustc` and this build's `pv_macros` proc macro
//! (`common::rustc`), with the variable set only for that compiler.

mod common;

use std::path::{Path, PathBuf};

use common::scratch;

/// Compiles `src` as a library with `PVABI_DEBUG_EXPAND=<dir>/expanded`: success, stderr,
/// and the files written.
fn compile(dir: &Path, src: &str) -> (bool, String, Vec<PathBuf>) {
    let expanded = dir.join("expanded");
    let file = dir.join("lib.rs");
    std::fs::write(&file, src).unwrap();
    let out = common::rustc("lib", "probe", dir)
        .arg(&file)
        .env("PVABI_DEBUG_EXPAND", &expanded)
        .output()
        .expect("rustc runs");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&expanded)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        files,
    )
}

const SPEC: &str = "tests/ui/specs/mini.toml";

#[test]
fn each_expansion_is_a_formatted_file_the_crate_builds_from() {
    let dir = scratch("expand-ok");
    let src = format!(
        "#![no_std]\n#![allow(dead_code, missing_docs)]\n\
         pub mod abi {{\n    pv_macros::abi!({SPEC:?});\n}}\n\
         pub static SLOT: [u8; 8] = [0; 8];\n\
         pub fn now() -> u64 {{\n    \
             // SAFETY: never called; compiled for its expansion.\n    \
             unsafe {{ pv_macros::pv_call!(spec = {SPEC:?}, slot = SLOT, time.now()) }}\n}}\n"
    );
    let (ok, stderr, files) = compile(&dir, &src);
    assert!(
        ok,
        "the crate builds from the written expansions:\n{stderr}"
    );
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(
        names[0].starts_with("probe.") && names[0].ends_with(".4.5.abi.rs"),
        "{names:?}"
    );
    assert!(names[1].ends_with(".9.14.pv_call.rs"), "{names:?}");
    let abi = std::fs::read_to_string(&files[0]).unwrap();
    assert!(abi.starts_with("// @generated: abi at "), "{abi}");
    assert!(
        abi.contains("\npub mod numbers {\n"),
        "formatted, one item a line"
    );
    let site = std::fs::read_to_string(&files[1]).unwrap();
    assert!(site.contains("\n{\n    const _: &[u8]"), "{site}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_error_inside_an_expansion_points_into_its_file() {
    let dir = scratch("expand-err");
    // A string where the op takes a u64: the error is in the `let` the site makes.
    let src = format!(
        "#![no_std]\npub static SLOT: [u8; 8] = [0; 8];\n\
         pub fn restore() {{\n    \
             // SAFETY: never called; compiled for its expansion.\n    \
             unsafe {{ pv_macros::pv_call!(spec = {SPEC:?}, slot = SLOT, irq.restore_fl(\"on\")) }}\n}}\n"
    );
    let (ok, stderr, files) = compile(&dir, &src);
    assert!(!ok, "a string is not a u64");
    assert_eq!(files.len(), 1, "{files:?}");
    let shown = files[0].display().to_string();
    assert!(
        stderr.contains("mismatched types") && stderr.contains(&format!("--> {shown}:")),
        "the error names a line of {shown}:\n{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
