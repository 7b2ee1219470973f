//! Fuzz target `host_calls`: the reference host over any call sequence, ring contents, memory size and shared-page placement.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pv_fuzz_targets::calls::host_calls(data));
