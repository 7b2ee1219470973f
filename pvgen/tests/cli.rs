//! The `pvgen` command line: exit codes (0 ok, 1 spec errors or stale output, 2 usage or
//! I/O errors), every problem reported at once, `generate --check` and its manifest, `doc`,
//! `crate`, clap's help, version and usage errors.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn pvgen(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pvgen"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("runs pvgen")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pvgen-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("creates scratch dir");
    d
}

#[test]
fn check_accepts_the_lguest_spec() {
    let o = pvgen(&["check", "spec/lguest.toml"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(
        text(&o.stdout),
        "spec/lguest.toml: ABI `lguest` v2: 15 hypercalls, 2 transports, 52 pv_ops, 4 templates: ok\nspec/lguest.toml: ABI lock: matches spec/lguest.lock\n"
    );
}

#[test]
fn check_reports_every_problem_and_exits_1() {
    let o = pvgen(&["check", "tests/specs/bad/many_errors.toml"]);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert_eq!(
        err.matches("\nerror: ").count() + usize::from(err.starts_with("error: ")),
        5,
        "{err}"
    );
    assert!(
        err.contains("--> tests/specs/bad/many_errors.toml:16:1"),
        "{err}"
    );
    assert!(
        err.ends_with("error: tests/specs/bad/many_errors.toml has 4 problems\n"),
        "{err}"
    );
}

#[test]
fn usage_and_io_errors_exit_2() {
    for args in [
        &[][..],
        &["frobnicate", "spec/lguest.toml"],
        &["check"],
        &["generate", "spec/lguest.toml"],
        &["check", "spec/lguest.toml", "--bogus"],
        &["doc", "spec/lguest.toml", "--check"],
    ] {
        let o = pvgen(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o.stderr));
        assert!(
            text(&o.stderr).contains("Usage: pvgen"),
            "{args:?} prints usage"
        );
    }
    let o = pvgen(&["check", "spec/no-such.toml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o.stderr).contains("spec/no-such.toml: No such file"),
        "{}",
        text(&o.stderr)
    );
    let o = pvgen(&["--help"]);
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn generate_check_tells_fresh_from_stale() {
    // The committed golden folder is exactly what `generate` writes.
    let o = pvgen(&[
        "generate",
        "spec/lguest.toml",
        "--out",
        "tests/golden/lguest",
        "--check",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));

    let dir = scratch("gen");
    let out = dir.to_str().expect("utf-8 path");
    let o = pvgen(&["generate", "spec/lguest.toml", "--out", out, "--check"]);
    assert_eq!(o.status.code(), Some(1), "an empty folder is stale");
    assert!(
        text(&o.stderr).contains("stale against spec/lguest.toml\n  missing: numbers.rs, types.rs"),
        "{}",
        text(&o.stderr)
    );
    let o = pvgen(&["generate", "spec/lguest.toml", "--out", out]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), format!("{out}: wrote 11 files\n"));
    let o = pvgen(&["generate", "spec/lguest.toml", "--out", out, "--check"]);
    assert_eq!(o.status.code(), Some(0));
    // Touch one file: stale again, and named.
    std::fs::write(dir.join("host.rs"), "// edited\n").expect("writes");
    let o = pvgen(&["generate", "spec/lguest.toml", "--out", out, "--check"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("  differ: host.rs\n"),
        "{}",
        text(&o.stderr)
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn doc_prints_the_reference() {
    let o = pvgen(&["doc", "spec/lguest.toml"]);
    assert_eq!(o.status.code(), Some(0));
    let md = text(&o.stdout);
    let golden =
        std::fs::read_to_string(root().join("tests/golden/lguest/lguest.md")).expect("golden");
    assert_eq!(md, golden);
    assert!(
        md.contains("| 15 | [`SET_PMD`](#set-pmd) | `table: gpa`, `index: u64` | yes | nothing |"),
        "{md}"
    );
}

/// `pvgen crate` writes a crate that builds on its own, for the KVM spec, the lguest spec
/// and a minimal one; the KVM crate's own test drives its dispatch.
#[test]
fn crate_builds_standalone_and_its_dispatch_runs() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // One target folder for all generated crates, kept between runs.
    let target = root().join("target/pvgen-crates");
    let base = scratch("crates");
    let minimal = base.join("minimal.toml");
    std::fs::write(
        &minimal,
        "[abi]\nname = \"minimal\"\nversion = 2\n\n[abi.transport.pio]\ninstruction = \"out\"\nport = 0x10\nnr = \"rax\"\nargs = [\"rdi\"]\nret = \"rax\"\n\n[[hypercall]]\nname = \"ping\"\nnr = 0\ndoc = \"Ping.\"\nargs = [{ name = \"value\", type = \"u32\" }]\n",
    )
    .expect("writes spec");
    let specs = [
        ("kvm", root().join("spec/kvm.toml")),
        ("lguest", root().join("spec/lguest.toml")),
        ("minimal", minimal),
    ];
    for (name, spec) in &specs {
        let dir = base.join(name);
        let o = pvgen(&[
            "crate",
            spec.to_str().expect("utf-8"),
            "--out",
            dir.to_str().expect("utf-8"),
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
        if *name == "kvm" {
            std::fs::create_dir_all(dir.join("tests")).expect("mkdir");
            std::fs::write(dir.join("tests/drive.rs"), KVM_DRIVE).expect("writes test");
        }
        let sub = if *name == "kvm" { "test" } else { "build" };
        let o = Command::new(&cargo)
            .args([sub, "--quiet", "--offline"])
            .current_dir(&dir)
            .env("CARGO_TARGET_DIR", &target)
            .env_remove("RUSTFLAGS")
            .output()
            .expect("runs cargo");
        assert!(
            o.status.success(),
            "the generated `{name}` crate does not {sub}:\n{}\n{}",
            text(&o.stdout),
            text(&o.stderr)
        );
        if *name == "kvm" {
            assert!(
                text(&o.stdout).contains("test result: ok. 1 passed"),
                "{}",
                text(&o.stdout)
            );
        }
    }
    let _ = std::fs::remove_dir_all(base);
}

/// A test written into the generated KVM crate: a host outside the crate implements the
/// generated trait and drives `dispatch`.
const KVM_DRIVE: &str = r#"
use kvm_abi::host::{dispatch, DispatchError, KvmHost};
use kvm_abi::numbers;

struct H(Vec<u64>);

impl KvmHost for H {
    type Error = ();
    fn vapic_poll_irq(&mut self) -> Result<u64, ()> { Ok(0) }
    fn kick_cpu(&mut self, _flags: u64, apicid: u64) -> Result<u64, ()> { self.0.push(apicid); Ok(0) }
    fn clock_pairing(&mut self, _p: u64, _c: kvm_abi::types::ClockType) -> Result<u64, ()> { Ok(0) }
    fn send_ipi(&mut self, l: u64, h: u64, _m: u64, _i: u64) -> Result<u64, ()> { Ok(u64::from(l.count_ones() + h.count_ones())) }
    fn sched_yield(&mut self, d: u64) -> Result<u64, ()> { self.0.push(d); Ok(0) }
    fn map_gpa_range(&mut self, _g: u64, _n: u64, _a: u64) -> Result<u64, ()> { Err(()) }
}

#[test]
fn dispatch_from_outside_the_crate() {
    let mut h = H(Vec::new());
    assert_eq!(dispatch(&mut h, numbers::KICK_CPU, [0, 2, 0, 0]), Ok(0));
    assert_eq!(dispatch(&mut h, numbers::SCHED_YIELD, [5, 0, 0, 0]), Ok(0));
    assert_eq!(dispatch(&mut h, numbers::SEND_IPI, [3, 1, 0, 0]), Ok(3));
    assert_eq!(dispatch(&mut h, numbers::MAP_GPA_RANGE, [0x1000, 1, 0, 0]), Err(DispatchError::Host(())));
    assert!(matches!(dispatch(&mut h, 77, [0; 4]), Err(DispatchError::UnknownHypercall { nr: 77 })));
    assert_eq!(h.0, [2, 5]);
}
"#;

#[test]
fn help_is_per_subcommand_and_version_is_printed() {
    for (cmd, usage) in [
        ("check", "Usage: pvgen check <SPEC>"),
        (
            "generate",
            "Usage: pvgen generate [OPTIONS] --out <DIR> <SPEC>",
        ),
        ("doc", "Usage: pvgen doc <SPEC>"),
        ("crate", "Usage: pvgen crate --out <DIR> <SPEC>"),
    ] {
        let o = pvgen(&[cmd, "--help"]);
        assert_eq!(o.status.code(), Some(0), "{cmd} --help");
        assert!(
            text(&o.stdout).contains(usage),
            "{cmd}: {}",
            text(&o.stdout)
        );
        assert!(text(&o.stdout).contains("exit codes: 0 ok"), "{cmd}");
    }
    let o = pvgen(&["--version"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        text(&o.stdout),
        format!("pvgen {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn unknown_subcommands_and_repeated_flags_are_usage_errors() {
    let o = pvgen(&["frobnicate", "spec/lguest.toml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("unrecognized subcommand 'frobnicate'"));
    let dir = scratch("twice");
    let d = dir.to_str().expect("utf-8");
    for args in [
        &["generate", "spec/lguest.toml", "--out", d, "--out", d][..],
        &["generate", "spec/lguest.toml", "-o", d, "--out", d],
        &[
            "generate",
            "spec/lguest.toml",
            "--out",
            d,
            "--check",
            "--check",
        ],
        &["check", "spec/lguest.toml", "spec/kvm.toml"],
    ] {
        let o = pvgen(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(text(&o.stderr).starts_with("error: "), "{args:?}");
    }
    assert_eq!(
        std::fs::read_dir(&dir).expect("dir").count(),
        0,
        "nothing written"
    );
    let _ = std::fs::remove_dir_all(dir);
}

const MIN_SPEC: &str = "[abi]\nname = \"min\"\nversion = 1\n[abi.transport.t]\ninstruction = \"vmcall\"\nnr = \"rax\"\nargs = [\"rbx\"]\nret = \"rax\"\n[[hypercall]]\nname = \"go\"\nnr = 0\ndoc = \"Go.\"\n";

#[test]
fn generate_removes_its_own_leftovers_and_check_reports_them() {
    let dir = scratch("leftovers");
    let out = dir.to_str().expect("utf-8");
    let min = dir.join("min.toml");
    std::fs::write(&min, MIN_SPEC).expect("writes spec");
    let gen_dir = dir.join("gen");
    let g = gen_dir.to_str().expect("utf-8");
    let o = pvgen(&["generate", "spec/lguest.toml", "--out", g]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let manifest = std::fs::read_to_string(gen_dir.join("pvgen.manifest")).expect("manifest");
    assert!(
        manifest.contains("\nlazy.rs\nlguest.md\nmod.rs\n"),
        "{manifest}"
    );
    std::fs::write(gen_dir.join("notes.txt"), "mine\n").expect("user file");

    // The smaller spec's check names what the lguest run left behind.
    let m = min.to_str().expect("utf-8");
    let o = pvgen(&["generate", m, "--out", g, "--check"]);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(
        err.contains(
            "left over from an earlier spec: lazy.rs, lguest.md, patch.rs, pv_ops.rs, shared.rs, structs.rs"
        ),
        "{err}"
    );
    let o = pvgen(&["generate", m, "--out", g]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(
        text(&o.stdout),
        format!(
            "{g}: wrote 6 files, removed lazy.rs, lguest.md, patch.rs, pv_ops.rs, shared.rs, structs.rs\n"
        )
    );
    let mut names: Vec<String> = std::fs::read_dir(&gen_dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "guest.rs",
            "host.rs",
            "min.md",
            "mod.rs",
            "notes.txt",
            "numbers.rs",
            "pvgen.manifest",
            "types.rs"
        ],
        "the user's file stays"
    );
    let o = pvgen(&["generate", m, "--out", g, "--check"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert_eq!(text(&o.stdout), format!("{g}: up to date with {m}\n"));
    let _ = out;
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn out_naming_a_file_is_an_io_error() {
    let dir = scratch("outfile");
    let file = dir.join("plain");
    std::fs::write(&file, "x").expect("writes");
    let f = file.to_str().expect("utf-8");
    for args in [
        &["generate", "spec/lguest.toml", "--out", f, "--check"][..],
        &["generate", "spec/lguest.toml", "--out", f],
    ] {
        let o = pvgen(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o.stderr));
        assert!(
            text(&o.stderr).contains("not a directory"),
            "{}",
            text(&o.stderr)
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn non_utf8_specs_say_where() {
    let dir = scratch("binary");
    let spec = dir.join("bin.toml");
    std::fs::write(&spec, b"[abi]\nname = \"x\"\ndoc = \"caf\xe9\"\n").expect("writes");
    let o = pvgen(&["check", spec.to_str().expect("utf-8")]);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(
        err.starts_with("error: the spec is not UTF-8: byte 0xe9 at offset 27 (line 3)"),
        "{err}"
    );
    assert!(err.contains("bin.toml:3:11\n"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn thousands_of_problems_are_capped() {
    let dir = scratch("many");
    let spec = dir.join("many.toml");
    let mut src = String::from("[abi]\nname = \"x\"\nversion = 1\n");
    for i in 0..20_000 {
        src.push_str(&format!("junk_{i} = 1\n"));
    }
    std::fs::write(&spec, src).expect("writes");
    let o = pvgen(&["check", spec.to_str().expect("utf-8")]);
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    let shown = err.lines().filter(|l| l.starts_with("error: ")).count();
    assert_eq!(shown, 101, "capped at 100, then the total");
    assert!(
        err.contains("\nnote: 19902 more problems not shown\n"),
        "{err}"
    );
    assert!(
        err.ends_with(" has 20002 problems\n"),
        "the total is still given"
    );
    let _ = std::fs::remove_dir_all(dir);
}

/// A spec's file name is the user's: a newline in it must not end the generated comment.
#[test]
fn spec_file_names_are_escaped_in_generated_files() {
    let dir = scratch("name");
    let spec = dir.join("evil\nfn injected() {}\n.toml");
    std::fs::write(&spec, MIN_SPEC).expect("writes");
    let s = spec.to_str().expect("utf-8");
    let out = dir.join("out");
    let o = pvgen(&["crate", s, "--out", out.to_str().expect("utf-8")]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    for f in ["Cargo.toml", "src/lib.rs", "src/numbers.rs", "min.md"] {
        let body = std::fs::read_to_string(out.join(f)).expect(f);
        assert!(!body.contains("fn injected()"), "{f}: {body}");
        assert!(
            body.lines()
                .next()
                .expect("a first line")
                .contains("evil\\u{a}fn injected\\u{28}"),
            "{f}: {body}"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}
