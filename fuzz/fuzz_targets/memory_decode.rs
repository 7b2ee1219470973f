//! Fuzz target `memory_decode`: the generated decode of arguments in guest memory.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    pv_fuzz_targets::memory::memory_decode(data);
});
