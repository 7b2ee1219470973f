//! Zero cost: a hypercall through a generated wrapper compiles to the same instructions as
//! the same hypercall in hand-written inline asm.
//!
//! `zero_cost/generated.rs` makes hypercalls through the generated wrappers,
//! `zero_cost/hand_written.rs` makes the same ones in inline asm; `zero_cost/*.s` are their
//! checked-in release-mode listings. This test compares each pair in the listings, then
//! compiles both sources again (with cargo's `rustc`, `-C opt-level=3` as the release
//! profile has it, against the generated modules this crate's build script wrote), checks
//! the pairs again and that the checked-in listings are current. Each source is compiled on
//! its own with only the ABI modules it uses, so the check costs a second rather than a
//! release build of the workspace's dependencies.
//!
//! Regenerate the listings: `UPDATE_ZERO_COST=1 cargo test -p lguest-abi --test zero_cost`.

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

fn here() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/zero_cost")
}

/// One side of the check: its source, the ABI modules it needs, its function prefix and
/// its listing's header line.
struct Side {
    source: &'static str,
    modules: &'static [&'static str],
    prefix: &'static str,
    listing: &'static str,
    title: &'static str,
}

const GENERATED: Side = Side {
    source: "generated.rs",
    modules: &["numbers", "types", "structs", "guest"],
    prefix: "zc_generated_",
    listing: "generated.s",
    title: "Generated wrappers (abi/tests/zero_cost/generated.rs)",
};

const HAND: Side = Side {
    source: "hand_written.rs",
    modules: &["numbers", "types"],
    prefix: "zc_hand_",
    listing: "hand_written.s",
    title: "Hand-written inline asm (abi/tests/zero_cost/hand_written.rs)",
};

const REGENERATE: &str = "UPDATE_ZERO_COST=1 cargo test -p lguest-abi --test zero_cost";

/// Compiles `side` in release mode into `dir` and returns its listing: each function with
/// the side's prefix, from its label to its end, without assembler directives or comments.
fn listing(side: &Side, dir: &Path) -> String {
    let modules = Path::new(env!("OUT_DIR")).join("lguest");
    let mut root = String::from("#![no_std]\n");
    for m in side.modules {
        let path = modules.join(format!("{m}.rs"));
        root.push_str(&format!(
            "#[path = {:?}]\npub mod {m};\n",
            path.display().to_string()
        ));
    }
    let source = here().join(side.source);
    root.push_str(&format!(
        "#[path = {:?}]\nmod calls;\n",
        source.display().to_string()
    ));
    let crate_name = side.prefix.trim_end_matches('_');
    let root_file = dir.join(format!("{crate_name}.rs"));
    std::fs::write(&root_file, root).unwrap();
    let rustc = env!("LGUEST_ABI_RUSTC");
    let out = Command::new(rustc)
        .args([
            "--edition",
            "2024",
            "--crate-type",
            "lib",
            "-C",
            "opt-level=3",
        ])
        .args(["--emit", "asm", "--out-dir"])
        .arg(dir)
        .arg(&root_file)
        .output()
        .unwrap_or_else(|e| panic!("running {rustc}: {e}"));
    assert!(
        out.status.success(),
        "{rustc} could not compile {}:\n{}",
        side.source,
        String::from_utf8_lossy(&out.stderr)
    );
    let asm = std::fs::read_to_string(dir.join(format!("{crate_name}.s"))).unwrap();
    let mut text = format!("# {}. Regenerate: {REGENERATE}\n", side.title);
    text.push_str(&extract(&asm, side.prefix));
    text
}

/// The functions named `<prefix>...` in an assembler listing, each from its label to
/// `.Lfunc_end`, without `.cfi_` directives and comment lines, a blank line after each.
fn extract(asm: &str, prefix: &str) -> String {
    let mut out = String::new();
    let mut on = false;
    for line in asm.lines() {
        let label = line
            .strip_suffix(':')
            .and_then(|l| l.strip_prefix(prefix))
            .is_some_and(|rest| {
                rest.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            });
        if label {
            on = true;
        } else if !on {
            continue;
        } else if line.starts_with(".Lfunc_end") {
            on = false;
            out.push('\n');
            continue;
        } else {
            let t = line.trim_start();
            if t.starts_with(".cfi_") || t.starts_with('#') {
                continue;
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Checks the listings: the twins the sources declare, each pair identical and really
/// making its hypercall.
fn check_pairs(
    generated: &str,
    hand: &str,
) -> (BTreeMap<String, Vec<String>>, BTreeMap<String, Vec<String>>) {
    let generated = functions(generated, GENERATED.prefix);
    let hand = functions(hand, HAND.prefix);
    let src = |f: &str| std::fs::read_to_string(here().join(f)).unwrap();
    let want = declared(&src(GENERATED.source), GENERATED.prefix);
    assert!(!want.is_empty());
    assert_eq!(
        generated.keys().cloned().collect::<Vec<_>>(),
        want,
        "generated.s is complete"
    );
    assert_eq!(
        declared(&src(HAND.source), HAND.prefix),
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
    let read = |f: &str| std::fs::read_to_string(here().join(f)).unwrap();
    let committed = (read(GENERATED.listing), read(HAND.listing));
    let dir = std::env::temp_dir().join(format!("lguest-abi-zero-cost-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let live = (listing(&GENERATED, &dir), listing(&HAND, &dir));
    let _ = std::fs::remove_dir_all(&dir);
    let live_pairs = check_pairs(&live.0, &live.1);
    if std::env::var_os("UPDATE_ZERO_COST").is_some() {
        std::fs::write(here().join(GENERATED.listing), &live.0).unwrap();
        std::fs::write(here().join(HAND.listing), &live.1).unwrap();
        return;
    }
    let committed_pairs = check_pairs(&committed.0, &committed.1);
    assert_eq!(
        live_pairs, committed_pairs,
        "abi/tests/zero_cost/*.s are stale: run `{REGENERATE}` and commit the result"
    );
    assert!(
        live == committed,
        "abi/tests/zero_cost/*.s differ from what the compiler writes now (only in what the \
         comparison ignores): run `{REGENERATE}` and commit the result"
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
