//! The freestanding kernel `lguest-run` boots: `_start`, the interrupt and exception entry
//! code, the one `'static` guest, and the [`Platform`] of a real (ring-3) CPU.
//!
//! The host enters `_start` at ring 3 with `rdi` pointing at the boot block, paging on
//! (its boot tables map guest RAM at the same addresses) and nothing else set up.
//!
//! Built without panic=abort (as `cargo build --workspace` builds it), it is instead a host
//! program that says how to get the real one: a `no_std` binary cannot unwind.

#![cfg_attr(freestanding, no_std, no_main)]
#![deny(warnings)]

#[cfg(not(freestanding))]
fn main() {
    eprintln!(
        "lguest-kernel: this build is not the kernel. `cargo run --release --bin lguest-run` \
         builds the real one (panic=abort, static, no red zone; see kernel/rustflags) and boots it."
    );
    std::process::exit(2);
}

#[cfg(freestanding)]
mod kernel;
#[cfg(freestanding)]
mod runtime;
