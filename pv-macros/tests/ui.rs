//! Compile-fail tests: every error the macros report, with its message and span. Each
//! `tests/ui/NAME.rs` is compiled as a program by `rustc` with this build's `pv_macros`
//! (`common::rustc`); it must fail, and its diagnostics must be exactly `tests/ui/NAME.stderr`.
//! Bless changed messages with `UPDATE_GOLDEN=1 cargo test -p pv-macros --test ui` and read
//! the diff.
//!
//! By hand rather than with trybuild: trybuild builds the macro and the whole generator under
//! it again, in a target directory of its own, which cost 21 s of a cold `cargo test` for
//! three files; these compile in about 0.05 s each against what cargo already built. The
//! output is normalized as trybuild did: rustc's closing summary lines (`aborting due to`,
//! `--explain`) are dropped, and so are trailing blank lines.
//!
//! Two errors are pinned by unit tests of the generators in `codegen::macros` instead:
//! `#[pv_ops]`'s AVX-512 refusal (`codegen::macros::thunks` compiles that expansion with
//! `rustc` and the target feature itself) and `pv_call!`'s 16-bit op id
//! (`codegen::macros::call_site` grows a spec past 65535 ops in memory).

mod common;

use std::path::Path;

/// rustc's diagnostics as the `.stderr` files hold them.
fn normalize(stderr: &str) -> String {
    let kept: Vec<&str> = stderr
        .lines()
        .filter(|l| {
            !(l.starts_with("error: aborting due to")
                || l.starts_with("For more information about")
                || l.starts_with("Some errors have detailed explanations"))
        })
        .collect();
    let mut out = kept.join("\n");
    out.truncate(out.trim_end().len());
    out.push('\n');
    out
}

#[test]
fn macro_errors() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ui");
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/ui is readable")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 3,
        "compile-fail cases in {}: {cases:?}",
        dir.display()
    );
    let bless = std::env::var_os("UPDATE_GOLDEN").is_some();
    let out_dir = common::scratch("ui");
    let mut failed = Vec::new();
    for case in &cases {
        let name = case
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("a UTF-8 name");
        let out = common::rustc("bin", name, &out_dir)
            .arg("--emit=metadata")
            .arg(format!("tests/ui/{name}.rs"))
            .output()
            .expect("rustc runs");
        let got = normalize(&String::from_utf8_lossy(&out.stderr));
        let expected_file = case.with_extension("stderr");
        if out.status.success() {
            failed.push(format!("tests/ui/{name}.rs compiled; it must fail:\n{got}"));
            continue;
        }
        let Ok(expected) = std::fs::read_to_string(&expected_file) else {
            if bless {
                std::fs::write(&expected_file, &got).expect("write the .stderr file");
                println!("tests/ui/{name}.stderr: written");
            } else {
                failed.push(format!(
                    "tests/ui/{name}.stderr is missing (write it with UPDATE_GOLDEN=1). Got:\n{got}"
                ));
            }
            continue;
        };
        if got == expected {
            println!("tests/ui/{name}.rs: fails as expected");
        } else if bless {
            std::fs::write(&expected_file, &got).expect("write the .stderr file");
            println!("tests/ui/{name}.stderr: blessed");
        } else {
            let first = got
                .lines()
                .zip(expected.lines().chain(std::iter::repeat("<end of file>")))
                .position(|(g, e)| g != e)
                .unwrap_or(expected.lines().count().min(got.lines().count()));
            failed.push(format!(
                "tests/ui/{name}.rs: its errors differ from tests/ui/{name}.stderr from line {} \
                 (bless with UPDATE_GOLDEN=1). Got:\n{got}",
                first + 1
            ));
        }
    }
    println!(
        "compiled with {} and {}",
        common::proc_macro_lib().display(),
        common::artifact("pv_sites", ".rlib").display()
    );
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));
}
