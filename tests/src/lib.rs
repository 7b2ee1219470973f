//! Generated code the tests drive, compiled under `deny(warnings)` so that any warning in
//! generated code fails the build.

#![deny(warnings)]

/// `spec/lguest.toml`.
pub mod lguest {
    include!(concat!(env!("OUT_DIR"), "/lguest.rs"));
}

/// `spec/kvm.toml`.
pub mod kvm {
    include!(concat!(env!("OUT_DIR"), "/kvm.rs"));
}

/// `spec/uhyve.toml`.
pub mod uhyve {
    include!(concat!(env!("OUT_DIR"), "/uhyve.rs"));
}

// host-stubs' `GuestMem` serves the generated decode of these ABIs too, as it does lguest's
// in host-stubs: their `GuestMemory` traits are this crate's, so the impls live here.
host_stubs::guest_memory_for!(lguest::host);
host_stubs::guest_memory_for!(uhyve::host);

/// `spec/jailhouse.toml`.
pub mod jailhouse {
    include!(concat!(env!("OUT_DIR"), "/jailhouse.rs"));
}

/// `spec/acrn.toml`.
pub mod acrn {
    include!(concat!(env!("OUT_DIR"), "/acrn.rs"));
}

/// `spec/xen.toml`.
pub mod xen {
    include!(concat!(env!("OUT_DIR"), "/xen.rs"));
}

// Every fixture of tests/specs/fixtures, one module each (see build.rs): `rbx_probe`
// (transports that carry arguments in rbx), `hygiene` (spec names that look like the
// generator's own), `minimal`, and the specs that once broke the generator.
include!(concat!(env!("OUT_DIR"), "/fixtures.rs"));

// The fixture whose tests run the generated decode over guest memory (tests/tests/results.rs).
host_stubs::guest_memory_for!(results_edges::host);

/// The committed golden files of `spec/lguest.toml`, compiled as `pvgen generate` lays
/// them out (`mod.rs` plus a file per module), so a golden file that does not build
/// fails here.
#[rustfmt::skip]
#[path = "../golden/lguest/mod.rs"]
pub mod lguest_golden;

/// The committed golden files of `spec/uhyve.toml`.
#[rustfmt::skip]
#[path = "../golden/uhyve/mod.rs"]
pub mod uhyve_golden;

/// The committed golden files of `spec/kvm.toml`.
#[rustfmt::skip]
#[path = "../golden/kvm/mod.rs"]
pub mod kvm_golden;

/// The committed golden files of `spec/jailhouse.toml`.
#[rustfmt::skip]
#[path = "../golden/jailhouse/mod.rs"]
pub mod jailhouse_golden;

/// The committed golden files of `spec/acrn.toml`.
#[rustfmt::skip]
#[path = "../golden/acrn/mod.rs"]
pub mod acrn_golden;

/// The committed golden files of `spec/xen.toml`.
#[rustfmt::skip]
#[path = "../golden/xen/mod.rs"]
pub mod xen_golden;
