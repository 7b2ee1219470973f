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

/// `tests/specs/fixtures/rbx_probe.toml`: transports that carry arguments in rbx.
pub mod rbx_probe {
    include!(concat!(env!("OUT_DIR"), "/rbx_probe.rs"));
}
