//! The ABI lock and the breaking-change check: the corpus in codegen/tests/abi_changes (one
//! before/after pair per rule, with its expected class, words and place), the lock file's
//! round trip and determinism, and `pvgen check`, `lock` and `diff` on spec/lguest.toml
//! edited the ways issue 14 names.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use codegen::lock::{Class, Facts, Report};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn facts(file: &str, src: &str) -> Facts {
    let spec = codegen::load(file, src).unwrap_or_else(|d| panic!("{d}"));
    Facts::from_spec(&spec, file, src)
}

fn class(s: &str) -> Class {
    match s {
        "compatible" => Class::Compatible,
        "additive" => Class::Additive,
        "breaking" => Class::Breaking,
        other => panic!("unknown class `{other}`"),
    }
}

struct Case {
    name: String,
    after: String,
    class: Class,
    says: Option<String>,
    at: Option<String>,
    errors: usize,
}

fn cases() -> (String, Vec<Case>) {
    let dir = root().join("codegen/tests/abi_changes");
    let base = std::fs::read_to_string(dir.join("base.toml")).expect("base.toml");
    let text = std::fs::read_to_string(dir.join("cases.toml")).expect("cases.toml");
    let table: toml::Table = toml::from_str(&text).expect("cases.toml parses");
    let mut out = Vec::new();
    for c in table["case"].as_array().expect("[[case]]") {
        let name = c["name"].as_str().expect("name").to_string();
        let mut after = base.clone();
        for e in c["edit"].as_array().expect("edit") {
            let e = e.as_array().expect("[from, to]");
            let (from, to) = (e[0].as_str().expect("from"), e[1].as_str().expect("to"));
            assert_eq!(
                after.matches(from).count(),
                1,
                "{name}: `{from}` must occur exactly once"
            );
            after = after.replacen(from, to, 1);
        }
        let class = class(c["class"].as_str().expect("class"));
        let errors = c
            .get("errors")
            .and_then(|v| v.as_integer())
            .map_or(usize::from(class == Class::Breaking), |n| n as usize);
        out.push(Case {
            name,
            after,
            class,
            says: c.get("says").and_then(|v| v.as_str()).map(String::from),
            at: c.get("at").and_then(|v| v.as_str()).map(String::from),
            errors,
        });
    }
    (base, out)
}

/// The line of `src` holding byte `at`, and `at`'s column in it (in chars).
fn line_of(src: &str, at: usize) -> (&str, usize) {
    let start = src[..at].rfind('\n').map_or(0, |i| i + 1);
    let end = src[at..].find('\n').map_or(src.len(), |i| at + i);
    (&src[start..end], src[start..at].chars().count())
}

#[test]
fn every_rule_of_the_corpus_classifies_and_points_where_it_says() {
    let (base, cases) = cases();
    let old = facts("before.toml", &base);
    let mut failures = Vec::new();
    for c in &cases {
        let new = facts("after.toml", &c.after);
        let r = Report::new(&old, &new);
        let listing: Vec<String> = r
            .changes
            .iter()
            .map(|ch| format!("  {}: {}", ch.class.name(), ch.what))
            .collect();
        let listing = listing.join("\n");
        if r.class() != c.class {
            failures.push(format!(
                "{}: class {} (expected {}):\n{listing}",
                c.name,
                r.class().name(),
                c.class.name()
            ));
            continue;
        }
        if r.errors() != c.errors {
            failures.push(format!(
                "{}: {} errors (expected {}):\n{listing}",
                c.name,
                r.errors(),
                c.errors
            ));
        }
        if c.class == Class::Compatible && c.says.is_none() && !r.changes.is_empty() {
            failures.push(format!("{}: expected no change at all:\n{listing}", c.name));
        }
        let Some(says) = &c.says else { continue };
        let Some(ch) = r.changes.iter().find(|ch| &ch.what == says) else {
            failures.push(format!("{}: no change says `{says}`:\n{listing}", c.name));
            continue;
        };
        // Where the diagnostic points: the key in the new spec, or `[abi] version` when
        // the thing is gone.
        let span = ch.new_span.clone().unwrap_or(new.version_span.clone());
        let (line, col) = line_of(&c.after, span.start);
        let at =
            c.at.as_deref()
                .expect("a case that says something says where");
        let ok = line.find(at).is_some_and(|i| {
            (line[..i].chars().count()..=line[..i].chars().count() + at.chars().count())
                .contains(&col)
        });
        if !ok {
            failures.push(format!(
                "{}: points at `{line}` col {} (expected within `{at}`)",
                c.name,
                col + 1
            ));
        }
        // The rendered diagnostic carries the words, and says what goes wrong.
        let text = r.diagnostics(&old, &new, "after.toml");
        if ch.class != Class::Compatible {
            let severity = if r.is_error(ch) { "error" } else { "note" };
            if !text.contains(&format!("{severity}: ")) || !text.contains(says.as_str()) {
                failures.push(format!("{}: diagnostics lack `{says}`:\n{text}", c.name));
            }
            if !text.contains("= note: a guest built from") {
                failures.push(format!("{}: no direction explained:\n{text}", c.name));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

/// Undoing an addition removes something old guests may use: breaking. Undoing a change
/// that changes no fact changes none.
#[test]
fn the_corpus_read_backwards() {
    let (base, cases) = cases();
    let old = facts("before.toml", &base);
    for c in &cases {
        let new = facts("after.toml", &c.after);
        let back = Report::new(&new, &old);
        match c.class {
            Class::Compatible if c.says.is_none() => {
                assert!(back.changes.is_empty(), "{}", c.name)
            }
            Class::Additive => assert_eq!(back.class(), Class::Breaking, "{}", c.name),
            Class::Compatible | Class::Breaking => {}
        }
    }
}

#[test]
fn a_lock_reads_back_as_the_facts_it_was_written_from() {
    for spec in [
        "spec/lguest.toml",
        "spec/kvm.toml",
        "codegen/tests/abi_changes/base.toml",
    ] {
        let src = std::fs::read_to_string(root().join(spec)).expect(spec);
        let f = facts(spec, &src);
        let text = f.lock_text();
        let back = Facts::parse_lock("x.lock", &text).unwrap_or_else(|d| panic!("{d}"));
        assert_eq!(
            back.map
                .iter()
                .map(|(k, v)| (k, &v.value))
                .collect::<Vec<_>>(),
            f.map.iter().map(|(k, v)| (k, &v.value)).collect::<Vec<_>>(),
            "{spec}"
        );
        assert!(Report::new(&back, &f).changes.is_empty(), "{spec}");
        assert_eq!(back.lock_text(), text, "{spec}: written the same way again");
    }
}

/// Every spec in spec/ has a committed lock, current with it (as the golden files are):
/// after an additive change or a version bump, `pvgen lock` and commit the lock diff.
#[test]
fn the_committed_locks_are_current() {
    let mut specs: Vec<String> = std::fs::read_dir(root().join("spec"))
        .expect("spec/")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".toml"))
        .map(|n| format!("spec/{n}"))
        .collect();
    specs.sort();
    assert!(specs.len() >= 2, "{specs:?}");
    for spec in &specs {
        let spec = spec.as_str();
        let src = std::fs::read_to_string(root().join(spec)).expect(spec);
        let lock_path = codegen::lock::lock_path(Path::new(spec));
        let lock = std::fs::read_to_string(root().join(&lock_path)).unwrap_or_else(|e| {
            panic!("{spec} has no lock ({e}): run `pvgen lock {spec}` and commit it")
        });
        assert_eq!(
            facts(spec, &src).lock_text(),
            lock,
            "{} is stale: run `pvgen lock {spec}`",
            lock_path.display()
        );
    }
}

#[test]
fn the_lock_holds_no_docs_and_ignores_table_order() {
    let src = std::fs::read_to_string(root().join("spec/lguest.toml")).expect("spec");
    let lock = facts("spec/lguest.toml", &src).lock_text();
    assert!(!lock.contains("doc"), "no docs in the lock");
    assert!(lock.contains("\nhypercall.set_pte.nr = 14\n"), "{lock}");
    assert!(lock.contains("\nshared.field.blocked_interrupts.offset = 8\n"));
    assert!(lock.contains("\nhypercall.load_gdt_entry.arg.0.range = [0, 15]\n"));
    // Moving the last hypercall table to the front changes nothing.
    let at = src.rfind("[[hypercall]]").expect("a hypercall");
    let end = src[at..].find("\n[").map_or(src.len(), |i| at + i + 1);
    let first = src.find("[[hypercall]]").expect("a hypercall");
    let moved = format!(
        "{}{}\n{}{}",
        &src[..first],
        &src[at..end],
        &src[first..at],
        &src[end..]
    );
    assert_ne!(moved, src);
    assert_eq!(facts("spec/lguest.toml", &moved).lock_text(), lock);
}

fn pvgen(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pvgen"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("runs pvgen")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// spec/lguest.toml and its lock in a scratch folder, the spec edited by `edit`.
fn lguest_edited(name: &str, edit: impl Fn(&str) -> String) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pvgen-lock-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("scratch");
    let src = std::fs::read_to_string(root().join("spec/lguest.toml")).expect("spec");
    let edited = edit(&src);
    assert_ne!(edited, src, "{name}: the edit changes the spec");
    std::fs::write(d.join("lguest.toml"), edited).expect("writes spec");
    std::fs::copy(root().join("spec/lguest.lock"), d.join("lguest.lock")).expect("copies lock");
    d
}

fn once(src: &str, from: &str, to: &str) -> String {
    assert_eq!(src.matches(from).count(), 1, "`{from}` occurs once");
    src.replacen(from, to, 1)
}

/// The line `pvgen check` points at for its first error, as `file:line:col` and the line.
fn first_error_place(err: &str) -> (String, String) {
    let mut lines = err
        .lines()
        .skip_while(|l| !l.starts_with("error: breaking"));
    lines.next().expect("an error");
    let place = lines
        .next()
        .expect("-->")
        .trim()
        .trim_start_matches("--> ")
        .to_string();
    lines.next();
    let src = lines.next().expect("source line").to_string();
    (place, src)
}

/// An unmarked break of spec/lguest.toml (`edit`, named `name`): `pvgen check` fails saying
/// `says` at the line holding `line`, `lock` refuses to record it and `diff` calls it
/// breaking; with `[abi] version` bumped, check passes with a note and lock records it. One
/// test per kind of break below, so the harness runs them side by side.
fn unmarked_break_fails_check(name: &str, edit: fn(&str) -> String, says: &str, line: &str) {
    let d = lguest_edited(name, edit);
    let o = pvgen(&d, &["check", "lguest.toml"]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{name}: {err}");
    assert!(err.contains(says), "{name}: {err}");
    assert!(
        err.contains("= note: a guest built from lguest.lock (v2)"),
        "{name}: {err}"
    );
    assert!(
        err.contains("= help: if the break is intended, bump `[abi] version` to 3"),
        "{name}: {err}"
    );
    let (place, src) = first_error_place(&err);
    assert!(place.starts_with("lguest.toml:"), "{name}: {place}");
    assert!(
        src.contains(line),
        "{name}: points at `{src}`, not `{line}`"
    );
    // `pvgen lock` refuses to record it; `diff` says breaking.
    let o = pvgen(&d, &["lock", "lguest.toml"]);
    assert_eq!(o.status.code(), Some(1), "{name}");
    assert!(
        text(&o.stderr).contains("not recording lguest.toml"),
        "{name}"
    );
    let o = pvgen(&d, &["diff", "lguest.lock", "lguest.toml"]);
    assert_eq!(o.status.code(), Some(1), "{name}");
    assert!(text(&o.stdout).contains(says), "{name}");
    // A version bump marks the break: check passes with a note, lock records it.
    let bumped = std::fs::read_to_string(d.join("lguest.toml"))
        .expect("spec")
        .replacen("version = 2", "version = 3", 1);
    std::fs::write(d.join("lguest.toml"), bumped).expect("writes");
    let o = pvgen(&d, &["check", "lguest.toml"]);
    assert_eq!(o.status.code(), Some(0), "{name}: {}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("note: breaking ABI change, marked by the version bump"),
        "{name}: {}",
        text(&o.stderr)
    );
    let o = pvgen(&d, &["lock", "lguest.toml"]);
    assert_eq!(o.status.code(), Some(0), "{name}: {}", text(&o.stderr));
    let o = pvgen(&d, &["check", "lguest.toml"]);
    assert!(
        text(&o.stdout).contains("ABI lock: matches lguest.lock"),
        "{name}"
    );
    let _ = std::fs::remove_dir_all(d);
}

#[test]
fn unmarked_break_a_renumbered_hypercall_fails_check_at_the_changed_key() {
    unmarked_break_fails_check(
        "renumber",
        |s| {
            once(
                s,
                "name = \"set_pte\"\nnr = 14",
                "name = \"set_pte\"\nnr = 20",
            )
        },
        "hypercall `set_pte` renumbered: 14 → 20",
        "nr = 20",
    );
}

#[test]
fn unmarked_break_a_widened_shared_field_fails_check_at_the_changed_key() {
    unmarked_break_fails_check(
        // Every lguest argument is a u64 already: widen a shared-page field instead
        // (the corpus widens an argument, u32 → u64), and the fields after it move.
        "widen",
        |s| {
            once(
                s,
                "name = \"irq_enabled\"\ntype = \"u32\"",
                "name = \"irq_enabled\"\ntype = \"u64\"",
            )
        },
        "shared-page field `irq_enabled` resized: u32 → u64 (4 → 8 bytes)",
        "type = \"u64\"",
    );
}

#[test]
fn unmarked_break_moved_shared_fields_fails_check_at_the_changed_key() {
    unmarked_break_fails_check(
        "move",
        |s| {
            // cr2 and time_sec trade places (and offsets).
            let s = once(
                s,
                "name = \"cr2\"\ntype = \"u64\"\noffset = 16",
                "name = \"cr2\"\ntype = \"u64\"\noffset = 24",
            );
            let s = once(
                &s,
                "name = \"time_sec\"\ntype = \"u64\"\noffset = 24",
                "name = \"time_sec\"\ntype = \"u64\"\noffset = 16",
            );
            let a = s.find("[[shared.field]]\nname = \"cr2\"").expect("cr2");
            let b = s
                .find("[[shared.field]]\nname = \"time_sec\"")
                .expect("time_sec");
            let c = b + s[b + 1..].find("[[shared.field]]").expect("next") + 1;
            format!("{}{}{}{}", &s[..a], &s[b..c], &s[a..b], &s[c..])
        },
        "shared-page field `time_sec` moved: offset 24 → 16",
        "offset = 16",
    );
}

#[test]
fn unmarked_break_a_tightened_range_fails_check_at_the_changed_key() {
    unmarked_break_fails_check(
        "tighten",
        |s| {
            once(
                s,
                "range = [0, \"gdt_entries - 1\"]",
                "range = [0, \"gdt_entries - 2\"]",
            )
        },
        "range tightened: 0..=15 → 0..=14",
        "range = [0, \"gdt_entries - 2\"]",
    );
}

#[test]
fn adding_a_hypercall_passes_with_a_note_and_lock_refreshes() {
    let d = lguest_edited("add", |s| {
        once(
            s,
            "[[hypercall]]\nname = \"set_pte\"",
            "[[hypercall]]\nname = \"send_interrupts\"\nnr = 19\ndoc = \"Deliver pending interrupts now.\"\n\n[[hypercall]]\nname = \"set_pte\"",
        )
    });
    let o = pvgen(&d, &["check", "lguest.toml"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(
        err.starts_with(
            "note: additive ABI change: hypercall `send_interrupts` added (number 19)\n"
        ),
        "{err}"
    );
    assert!(
        err.contains("which a host built from lguest.lock (v2) refuses as unknown"),
        "{err}"
    );
    assert!(err.contains("= help: run `pvgen lock lguest.toml` to record it in lguest.lock"));
    assert!(
        text(&o.stdout).contains(
            "ABI lock: against lguest.lock: 0 marked breaking, 1 additive, 0 compatible change"
        ),
        "{}",
        text(&o.stdout)
    );
    // diff explains it, in text and JSON, and exits 0.
    let o = pvgen(&d, &["diff", "lguest.lock", "lguest.toml"]);
    assert_eq!(o.status.code(), Some(0));
    let out = text(&o.stdout);
    assert!(
        out.starts_with("ABI `lguest`: lguest.lock (v2) → lguest.toml (v2): additive\n"),
        "{out}"
    );
    assert!(
        out.contains("additive   hypercall `send_interrupts` added (number 19)\n"),
        "{out}"
    );
    assert!(out.contains("old guest, new host: works\n"), "{out}");
    assert!(out.contains("new guest, old host: a guest built from lguest.toml may call `send_interrupts`, which a host built from lguest.lock refuses as unknown\n"), "{out}");
    let o = pvgen(&d, &["diff", "--json", "lguest.lock", "lguest.toml"]);
    assert_eq!(o.status.code(), Some(0));
    let json = text(&o.stdout);
    assert!(json.starts_with("{\"abi\":\"lguest\",\"old\":{\"file\":\"lguest.lock\",\"version\":2},\"new\":{\"file\":\"lguest.toml\",\"version\":2},\"class\":\"additive\",\"version_bumped\":false,\"errors\":0,\"changes\":[{\"path\":\"hypercall.send_interrupts\",\"class\":\"additive\""), "{json}");
    // lock --check sees the lag; lock refreshes; check then matches.
    let o = pvgen(&d, &["lock", "lguest.toml", "--check"]);
    assert_eq!(o.status.code(), Some(1));
    let o = pvgen(&d, &["lock", "lguest.toml"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let lock = std::fs::read_to_string(d.join("lguest.lock")).expect("lock");
    assert!(
        lock.contains("\nhypercall.send_interrupts.nr = 19\n"),
        "{lock}"
    );
    let o = pvgen(&d, &["lock", "lguest.toml", "--check"]);
    assert_eq!(o.status.code(), Some(0));
    let o = pvgen(&d, &["check", "lguest.toml"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(text(&o.stderr), "");
    assert!(text(&o.stdout).ends_with("lguest.toml: ABI lock: matches lguest.lock\n"));
    // And the addition, undone, is now a removal: breaking.
    let o = pvgen(
        &d,
        &[
            "diff",
            "lguest.lock",
            &root().join("spec/lguest.toml").display().to_string(),
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(text(&o.stdout).contains("breaking   hypercall `send_interrupts` removed (number 19)"));
    let _ = std::fs::remove_dir_all(d);
}

#[test]
fn bad_locks_and_bad_since_are_reported() {
    let d = lguest_edited("badlock", |s| {
        s.replacen("nr = 14", "nr = 14\nsince = 4", 1)
    });
    let o = pvgen(&d, &["check", "lguest.toml"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains(
            "error: hypercall `set_pte` has `since = 4`, outside the ABI's versions 1 to 2"
        ),
        "{}",
        text(&o.stderr)
    );
    std::fs::write(
        d.join("lguest.toml"),
        std::fs::read(root().join("spec/lguest.toml")).expect("spec"),
    )
    .expect("writes");
    std::fs::write(
        d.join("lguest.lock"),
        "lock.format = 7\nabi.name = \"lguest\"\nabi.version = 1\n",
    )
    .expect("writes");
    let o = pvgen(&d, &["check", "lguest.toml"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("error: lock format 7 is not 1"),
        "{}",
        text(&o.stderr)
    );
    std::fs::write(d.join("lguest.lock"), "abi.name = [").expect("writes");
    let o = pvgen(&d, &["check", "lguest.toml"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("error: the lock is not valid TOML"),
        "{}",
        text(&o.stderr)
    );
    let o = pvgen(&d, &["diff", "lguest.toml", "missing.toml"]);
    assert_eq!(o.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(d);
}
