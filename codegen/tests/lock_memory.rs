//! The ABI lock covers structs and memory arguments: spec/uhyve.toml edited one way at a
//! time, each edit classified as a guest or host built from the other side would see it.

use codegen::lock::{Class, Facts, Report};
use std::path::Path;

fn facts(src: &str) -> Facts {
    let spec = codegen::load("uhyve.toml", src).unwrap_or_else(|d| panic!("{d}"));
    Facts::from_spec(&spec, "uhyve.toml", src)
}

fn worst(old: &str, new: &str) -> (Class, Vec<String>) {
    let r = Report::new(&facts(old), &facts(new));
    let class = r
        .changes
        .iter()
        .map(|c| c.class)
        .max()
        .unwrap_or(Class::Compatible);
    (class, r.changes.iter().map(|c| c.what.clone()).collect())
}

/// The change the report lists at `path`; the whole list when there is none.
fn change<'r>(r: &'r Report, path: &str) -> &'r codegen::lock::Change {
    r.changes
        .iter()
        .find(|c| c.path.to_string() == path)
        .unwrap_or_else(|| panic!("no change at {path}: {:#?}", r.changes))
}

fn edit(src: &str, from: &str, to: &str) -> String {
    assert_eq!(src.matches(from).count(), 1, "`{from}` must occur once");
    src.replacen(from, to, 1)
}

#[test]
fn struct_and_memory_argument_changes_are_classified() {
    let base =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../spec/uhyve.toml"))
            .expect("spec/uhyve.toml");
    let cases: &[(&str, &str, &str, Class)] = &[
        (
            "a doc",
            "doc = \"Parameters of `file_close` (packed).\"",
            "doc = \"Closing.\"",
            Class::Compatible,
        ),
        (
            "a new struct nothing uses",
            "[[hypercall]]\nname = \"exit\"",
            "[struct.spare]\nfields = [{ name = \"x\", type = \"u64\" }]\n\n[[hypercall]]\nname = \"exit\"",
            Class::Compatible,
        ),
        (
            "a renamed field",
            "{ name = \"whence\", type = \"u32\"",
            "{ name = \"how\", type = \"u32\"",
            Class::Compatible,
        ),
        (
            "a widened field",
            "{ name = \"ret\", type = \"i32\", dir = \"out\", doc = \"Zero, or a negative errno.\" }",
            "{ name = \"ret\", type = \"i64\", dir = \"out\", doc = \"Zero, or a negative errno.\" }",
            Class::Breaking,
        ),
        (
            "an out field made in",
            "{ name = \"ret\", type = \"i64\", dir = \"out\", doc = \"Bytes written, or a negative errno.\" }",
            "{ name = \"ret\", type = \"i64\", doc = \"Bytes written, or a negative errno.\" }",
            Class::Breaking,
        ),
        (
            "a string's maximum",
            "path_max = { value = 4095",
            "path_max = { value = 255",
            Class::Breaking,
        ),
        (
            "a buffer's address kind",
            "max = 4096, at = \"params.buf\", doc = \"The bytes to print.\"",
            "max = 4096, at = \"params.buf\", addr = \"virtual\", doc = \"The bytes to print.\"",
            Class::Breaking,
        ),
        (
            "packing dropped",
            "doc = \"Parameters of `file_close` (packed).\"\npacked = true",
            "doc = \"Parameters of `file_close` (packed).\"",
            Class::Breaking,
        ),
    ];
    for (what, from, to, want) in cases {
        let after = edit(&base, from, to);
        let (class, changes) = worst(&base, &after);
        assert_eq!(class, *want, "{what}: {changes:#?}");
        if *want != Class::Compatible {
            assert!(!changes.is_empty(), "{what}");
        }
    }
}

/// lguest's SHUTDOWN and NOTIFY went from a bare address to a string in guest memory: the
/// register and its wire type stay, the host now reads and checks what it points at. A host
/// built from the new spec refuses what an old guest could pass, so it is breaking, and the
/// report says so in those words (not as an argument added).
#[test]
fn an_address_that_becomes_a_memory_argument_is_a_tightening() {
    let spec = |arg: &str| {
        format!(
            "[abi]\nname = \"t\"\nversion = 1\n\n[abi.transport.vmcall]\ninstruction = \"vmcall\"\nnr = \"rax\"\nargs = [\"rdi\", \"rsi\"]\nret = \"rax\"\n\n[[hypercall]]\nname = \"say\"\nnr = 1\ndoc = \"Say something.\"\nargs = [{arg}, {{ name = \"n\", type = \"u64\" }}]\n"
        )
    };
    let old = spec("{ name = \"text\", type = \"u64\" }");
    let new = spec("{ name = \"text\", type = \"str\", max = 15 }");
    let load = |src: &str| {
        let s = codegen::load("t.toml", src).unwrap_or_else(|d| panic!("{d}"));
        Facts::from_spec(&s, "t.toml", src)
    };
    let r = Report::new(&load(&old), &load(&new));
    let c = change(&r, "hypercall.say.mem.0");
    assert_eq!(c.class, Class::Breaking);
    assert_eq!(
        c.what,
        "argument 0 of hypercall `say` now names a `str` in guest memory"
    );
    let old_guest = format!("{:?}", c.old_guest);
    assert!(
        old_guest.contains("may pass any value in argument 0"),
        "{old_guest}"
    );
    assert_eq!(c.new_guest, codegen::lock::Verdict::Works);
    // And back: the old guest's strings still work on a host that takes any address.
    let r = Report::new(&load(&new), &load(&old));
    let c = change(&r, "hypercall.say.mem.0");
    assert_eq!(c.class, Class::Breaking);
    assert_eq!(c.old_guest, codegen::lock::Verdict::Works);
}

/// A fixed buffer length written as a const (lguest's LOAD_TLS, `len = "tls_entries"`) is
/// locked as its number: the same number written out is no ABI change but a renamed const
/// (a name only), and a re-valued const breaks the buffer.
#[test]
fn a_const_named_buffer_length_is_locked_as_its_number() {
    let base =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../spec/lguest.toml"))
            .expect("spec/lguest.toml");
    let load = |src: &str| {
        let s = codegen::load("lguest.toml", src).unwrap_or_else(|d| panic!("{d}"));
        Facts::from_spec(&s, "lguest.toml", src)
    };
    let len = "len = \"tls_entries\"";
    let written = edit(&base, len, "len = 3");
    let r = Report::new(&load(&base), &load(&written));
    let paths: Vec<String> = r.changes.iter().map(|c| c.path.to_string()).collect();
    assert_eq!(
        paths,
        ["hypercall.load_tls.mem.0.len_const"],
        "{:#?}",
        r.changes
    );
    assert_eq!(r.changes[0].class, Class::Compatible);

    let revalued = edit(
        &base,
        "tls_entries = { value = 3,",
        "tls_entries = { value = 4,",
    );
    let r = Report::new(&load(&base), &load(&revalued));
    let c = change(&r, "hypercall.load_tls.mem.0.len");
    assert_eq!(c.class, Class::Breaking);
}
