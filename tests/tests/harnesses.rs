//! The test harnesses the workspace turns off. A library or program whose tests live in
//! `tests/` says `test = false` (and one without doc examples `doctest = false`) in its
//! Cargo.toml, so a cold `cargo test` does not compile it a second time only to run nothing.
//! The price is that a unit test or doc example added there later would never run: this
//! test fails instead, naming the file and line.
//!
//! Which targets are off comes from `cargo metadata`, the one source cargo itself uses; their
//! files are the module tree cargo compiles (`mod` declarations, `#[path]` included).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Every non-build-script target of the workspace: (package, target, kind, test, doctest, root).
fn targets() -> Vec<(String, String, String, bool, bool, PathBuf)> {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--offline",
        ])
        .current_dir(root)
        .output()
        .expect("run cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata is JSON");
    let mut all = Vec::new();
    for pkg in meta["packages"].as_array().expect("packages") {
        for t in pkg["targets"].as_array().expect("targets") {
            let kind = t["kind"][0].as_str().expect("kind").to_string();
            if !matches!(kind.as_str(), "lib" | "bin" | "proc-macro") {
                continue;
            }
            all.push((
                pkg["name"].as_str().expect("name").to_string(),
                t["name"].as_str().expect("name").to_string(),
                kind,
                t["test"].as_bool().expect("test"),
                t["doctest"].as_bool().unwrap_or(false),
                PathBuf::from(t["src_path"].as_str().expect("src_path")),
            ));
        }
    }
    all
}

/// The files of the module tree rooted at `file` (a crate root when `root`): each `mod name;`
/// resolved as rustc does (`name.rs` or `name/mod.rs` beside a crate root or a `mod.rs`,
/// under `file`'s stem otherwise, or the `#[path]` given, beside `file`).
fn module_tree(file: &Path, root: bool, out: &mut Vec<PathBuf>) {
    let Ok(src) = std::fs::read_to_string(file) else {
        panic!("{}: a module cargo compiles cannot be read", file.display())
    };
    out.push(file.to_path_buf());
    let dir = file.parent().expect("a file has a directory");
    let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    let child_dir = if root || stem == "mod" {
        dir.to_path_buf()
    } else {
        dir.join(stem)
    };
    let mut path_attr: Option<String> = None;
    for line in src.lines() {
        let l = line.trim();
        if let Some(rest) = l.strip_prefix("#[path = \"") {
            path_attr = rest.split('"').next().map(String::from);
            continue;
        }
        let decl = l
            .strip_prefix("pub(crate) ")
            .or_else(|| l.strip_prefix("pub "))
            .unwrap_or(l);
        let Some(name) = decl
            .strip_prefix("mod ")
            .and_then(|r| r.strip_suffix(';'))
            .map(str::trim)
        else {
            if !l.starts_with("#[") {
                path_attr = None;
            }
            continue;
        };
        let child = match path_attr.take() {
            Some(p) => dir.join(p),
            None => {
                let flat = child_dir.join(format!("{name}.rs"));
                if flat.exists() {
                    flat
                } else {
                    child_dir.join(name).join("mod.rs")
                }
            }
        };
        module_tree(&child, false, out);
    }
}

/// Whether a fenced block opened with this info string is a doc test: rustdoc compiles a
/// block whose info string is empty or only its own attributes.
fn is_rust_fence(info: &str) -> bool {
    info.split([',', ' ']).filter(|w| !w.is_empty()).all(|w| {
        matches!(
            w,
            "rust" | "ignore" | "no_run" | "should_panic" | "compile_fail" | "test_harness"
        ) || w.starts_with("edition")
            || w.starts_with("standalone")
    })
}

#[test]
fn targets_without_a_harness_have_no_tests() {
    let mut checked = 0;
    let mut found = Vec::new();
    for (pkg, name, kind, test, doctest, root) in targets() {
        if test && (doctest || kind != "lib") {
            continue;
        }
        let mut files = Vec::new();
        module_tree(&root, true, &mut files);
        checked += 1;
        for file in &files {
            let src = std::fs::read_to_string(file).expect("read");
            let mut fence = false;
            for (i, line) in src.lines().enumerate() {
                let l = line.trim_start();
                let at = format!("{}:{}", file.display(), i + 1);
                if !test && (l.starts_with("#[test]") || l.contains("#[cfg(test)]")) {
                    found.push(format!(
                        "{at}: a unit test in {pkg}'s {kind} `{name}`, which has `test = false`"
                    ));
                }
                let doc = l.strip_prefix("///").or_else(|| l.strip_prefix("//!"));
                if let (Some(doc), false) = (doc, doctest || kind != "lib") {
                    let doc = doc.trim_start();
                    if let Some(info) = doc.strip_prefix("```") {
                        if !fence && is_rust_fence(info.trim()) {
                            found.push(format!(
                                "{at}: a doc test in {pkg}'s library, which has `doctest = false`"
                            ));
                        }
                        fence = !fence;
                    }
                }
            }
        }
    }
    assert!(
        checked >= 10,
        "only {checked} targets without a harness: metadata misread?"
    );
    assert!(
        found.is_empty(),
        "tests cargo would never run (turn the harness back on in that Cargo.toml, or move them to tests/):\n{}",
        found.join("\n")
    );
}

/// The checker sees what it must: a test inside a harness-less crate's module tree is found.
#[test]
fn the_module_walk_reaches_nested_and_path_modules() {
    let mut files = Vec::new();
    module_tree(
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src/lib.rs")),
        true,
        &mut files,
    );
    let shown: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    for want in [
        "golden/lguest/mod.rs",
        "golden/lguest/host.rs",
        "golden/xen/mod.rs",
    ] {
        assert!(
            shown.iter().any(|f| f.ends_with(want)),
            "{want} not in pv-tests' module tree: {shown:#?}"
        );
    }
    assert!(is_rust_fence("") && is_rust_fence("no_run") && is_rust_fence("rust,ignore"));
    assert!(!is_rust_fence("text") && !is_rust_fence("toml") && !is_rust_fence("sh"));
}
