//! The host half of lguest: the dispatch generated from `spec/lguest.toml` (the reference
//! host behind it is the host issue's work).

#![deny(warnings)]

/// The ABI generated from `spec/lguest.toml`.
pub mod abi {
    include!(concat!(env!("OUT_DIR"), "/lguest.rs"));
}
