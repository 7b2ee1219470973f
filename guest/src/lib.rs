//! The guest half of lguest: the generated ABI of `spec/lguest.toml`, with the seed's
//! paravirt logic filling in its pv_op traits (the guest issue builds the latter).
//!
//! The modules below come from `build.rs`; edit the spec and `cargo build` to change them.

#![cfg_attr(not(test), no_std)]
#![deny(warnings)]

/// The ABI generated from `spec/lguest.toml`.
pub mod abi {
    include!(concat!(env!("OUT_DIR"), "/lguest.rs"));
}
