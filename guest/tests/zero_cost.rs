//! Zero cost: a hypercall through a generated wrapper compiles to the same instructions as
//! the same hypercall in hand-written inline asm.
//!
//! `guest/asm/generated.s` and `guest/asm/hand_written.s` are the checked-in listings
//! (regenerate with `guest/asm/regen.sh`). This test compares each pair in them, then
//! regenerates both with the script and checks the pairs again and that the checked-in
//! listings are current.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Function name -> its instructions, normalised: trimmed, whitespace collapsed, local
/// labels renamed, blank lines dropped.
fn functions(listing: &str, prefix: &str) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    let mut current: Option<(String, Vec<String>)> = None;
    for line in listing.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_suffix(':').filter(|n| n.starts_with(prefix)) {
            if let Some((n, body)) = current.take() {
                out.insert(n, body);
            }
            let twin = name.strip_prefix(prefix).unwrap().to_string();
            current = Some((twin, Vec::new()));
            continue;
        }
        let body = &mut current.as_mut().expect("instruction outside a function").1;
        let norm: Vec<String> = line
            .split_whitespace()
            .map(|w| {
                if w.starts_with(".LBB") || w.starts_with(".Ltmp") {
                    ".L".to_string()
                } else {
                    w.to_string()
                }
            })
            .collect();
        body.push(norm.join(" "));
    }
    if let Some((n, body)) = current {
        out.insert(n, body);
    }
    out
}

/// The twins' names in a source file: `fn zc_<prefix>NAME(`.
fn declared(src: &str, prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = src
        .match_indices(&format!("pub fn {prefix}"))
        .map(|(i, m)| {
            let rest = &src[i + m.len()..];
            rest[..rest.find('(').unwrap()].to_string()
        })
        .collect();
    names.sort();
    names
}

fn guest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Checks the listings in `dir`: same twins as the sources declare, each pair identical
/// and really making its hypercall.
fn check_pairs(dir: &Path) -> (BTreeMap<String, Vec<String>>, BTreeMap<String, Vec<String>>) {
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).unwrap();
    let generated = functions(&read("generated.s"), "zc_generated_");
    let hand = functions(&read("hand_written.s"), "zc_hand_");
    let src = |f: &str| std::fs::read_to_string(guest_dir().join(f)).unwrap();
    let want = declared(&src("src/zero_cost.rs"), "zc_generated_");
    assert!(!want.is_empty());
    assert_eq!(
        generated.keys().cloned().collect::<Vec<_>>(),
        want,
        "generated.s is complete"
    );
    assert_eq!(
        declared(&src("examples/zero_cost_hand.rs"), "zc_hand_"),
        want,
        "every generated function has a hand-written twin"
    );
    assert_eq!(
        hand.keys().cloned().collect::<Vec<_>>(),
        want,
        "hand_written.s is complete"
    );
    for name in &want {
        let (g, h) = (&generated[name], &hand[name]);
        assert!(
            g.iter().any(|i| i == "vmcall" || i.starts_with("outl")),
            "{name}: no hypercall instruction in {g:#?}"
        );
        assert_eq!(
            g, h,
            "{name}: the generated wrapper and the hand-written asm differ"
        );
    }
    (generated, hand)
}

#[test]
fn generated_wrappers_compile_to_the_hand_written_instructions() {
    let committed = check_pairs(&guest_dir().join("asm"));

    // Regenerate, into a directory of our own, with the cargo running this test.
    let out = std::env::temp_dir().join(format!("guest-zero-cost-{}", std::process::id()));
    let mut cmd = Command::new("bash");
    cmd.arg(guest_dir().join("asm/regen.sh")).arg(&out);
    if let Some(cargo) = option_env!("CARGO") {
        cmd.env("CARGO", cargo);
    }
    let status = cmd.status().expect("run guest/asm/regen.sh");
    assert!(status.success(), "guest/asm/regen.sh failed: {status}");
    let live = check_pairs(&out);
    let _ = std::fs::remove_dir_all(&out);
    assert_eq!(
        live, committed,
        "guest/asm/*.s are stale: run guest/asm/regen.sh and commit the result"
    );
}

#[test]
fn the_comparison_sees_a_difference() {
    let a = "x_f:\n\tmovl\t$14, %eax\n\tvmcall\n\tretq\n";
    let b = "y_f:\n\tmovl\t$15, %eax\n\tvmcall\n\tretq\n";
    assert_ne!(functions(a, "x_"), functions(b, "y_"));
    assert_eq!(functions(a, "x_"), functions(&a.replace("x_", "y_"), "y_"));
    assert_eq!(
        functions(a, "x_")["f"],
        ["movl $14, %eax", "vmcall", "retq"]
    );
}
