//! Compile-fail tests: every error the macros report, with its message and span.
//! Bless changed messages with `TRYBUILD=overwrite cargo test -p pv-macros-ui --test ui`.
//!
//! Two errors are unit tests of the generators in `codegen::macros` instead: `#[pv_ops]`'s
//! AVX-512 refusal (trybuild builds the proc macro and the tested crate with the same
//! flags, so it cannot turn on a target feature for the tested crate alone;
//! `codegen::macros::thunks::tests` compiles the expansion with `rustc` itself) and
//! `pv_call!`'s 16-bit op id (`codegen::macros::call_site::tests` grows a spec past 65535
//! ops in memory).

#[test]
fn macro_errors() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
