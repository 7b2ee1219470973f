//! Fuzz target `shadow_model`: the shadow page tables against a model of what the guest may map.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| pv_fuzz_targets::shadow::shadow_model(data));
