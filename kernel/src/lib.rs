//! A small guest kernel over the `guest` crate: the boot path of Linux 2.6.30's lguest guest
//! (`lguest_init()` and what `start_kernel()` then asks of the pv_ops), written once and run
//! two ways.
//!
//! * `src/main.rs` is the freestanding kernel `lguest-run` boots under KVM: static at 1 MiB,
//!   entered at ring 3, hypercalls through the spec's port-I/O transport, interrupts pushed
//!   onto its stack by the host as lguest's host pushes them.
//! * `lguest-run`'s in-process backend runs the same [`workload::run`] in the host process,
//!   through a loopback transport, where /dev/kvm is missing.
//!
//! What differs between the two is behind [`workload::Platform`]; the host's side of the
//! contract (where the boot block is, what it holds) is [`params`].

#![cfg_attr(not(test), no_std)]
#![deny(warnings)]

pub mod console;
pub mod escapes;
pub mod hostile;
pub mod params;
pub mod workload;

pub use params::{BootParams, Fault, Mode, Workload};
