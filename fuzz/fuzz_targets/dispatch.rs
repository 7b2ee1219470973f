//! Fuzz target `dispatch`: the generated decode and dispatch on any call.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pv_fuzz_targets::calls::dispatch(data));
