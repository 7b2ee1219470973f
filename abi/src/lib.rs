//! The lguest ABI, generated once from `spec/lguest.toml` by `build.rs`: the one place every
//! other crate takes an ABI fact from. `guest` and `host-stubs` re-export it as `abi`, the
//! kernel and the VMM use it directly.
//!
//! | module | what |
//! |---|---|
//! | [`numbers`] | hypercall numbers, the `Hypercall` enum, the spec's named constants |
//! | [`types`] | the spec's enums and flag sets, as they cross the ABI |
//! | [`guest`] | transports (`Vmcall`, `Pio`) and a typed wrapper per hypercall |
//! | [`lazy`] | the batched (lazy-mode) variants through the async ring |
//! | [`shared`] | the page guest and host share, with its C layout and offsets |
//! | [`pv_ops`] | the pv_op traits and their function-pointer tables |
//! | [`patch`] | the patch templates of `pv_call!` sites |
//! | [`host`] | the host's validating `decode`, `run` and `dispatch`, and its handler trait |
//!
//! The generated reference is `tests/golden/lguest/lguest.md`.

#![no_std]
#![deny(warnings)]

include!(concat!(env!("OUT_DIR"), "/lguest.rs"));
