//! Fuzz target `spec_parse`: the spec parser and checker on any text, and the generator on what they accept.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pv_fuzz_targets::spec::spec_parse(data));
