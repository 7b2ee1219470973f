//! Compile-fail tests: every error the macros report, with its message and span.
//! Bless changed messages with `TRYBUILD=overwrite cargo test -p pv-macros --test ui`.

#[test]
fn macro_errors() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
