//! The guest half of lguest: the paravirt layer of Linux 2.6.30's `arch/x86/lguest/boot.c`
//! (the seed), ported to x86_64 and written over the code generated from `spec/lguest.toml`.
//!
//! The Guest in our tale is a simple creature: it knows it cannot do privileged operations,
//! such as disabling interrupts, and asks the Host to do such things explicitly. This crate
//! holds all the replacements for those native operations, section by section as the seed
//! has them:
//!
//! | Seed section | Module |
//! |---|---|
//! | `async_hcall`, `lazy_hcall`, lazy mode | [`lguest`] (the [`Lguest`] struct itself) |
//! | interrupt flags, `safe_halt` | [`irq`] |
//! | IDT, GDT, TLS, LDT, TR | [`dtables`] |
//! | `lguest_cpuid` | [`cpuid`] |
//! | cr0, cr2, cr3, cr4 | [`cr`] |
//! | page tables, TLB | [`mmu`] |
//! | the Unadvanced Programmable Interrupt Controller | [`pic`] |
//! | clock source, clock event, wallclock, TSC | [`time`] |
//! | stack, debug registers, wbinvd, APIC, halt, power off, panic, restart, console | [`misc`] |
//! | `lguest_patch` | [`patch`] |
//! | `lguest_entry` / `lguest_init`, the `lguest_iret` entry, the pv_ops tables | [`init`] |
//!
//! Everything that touches hardware or the host goes through a trait, so the same code runs
//! in a VM with the real instructions and in a host test process against a fake host:
//!
//! * [`abi::guest::Transport`] (generated): how a hypercall reaches the host
//!   ([`abi::guest::Vmcall`], [`abi::guest::Pio`], or a loopback into an in-process host);
//! * [`RawCpuid`]: the `cpuid` instruction ([`NativeCpuid`], or recorded leaves);
//! * [`Translate`]: `__pa()`, guest-virtual to guest-physical ([`DirectMap`]).
//!
//! # Using it
//!
//! The logic lives in methods of [`Lguest`], which borrows the shared page and the
//! guest-memory [`Scratch`] buffers and owns the three trait objects:
//!
//! ```
//! use guest::{abi::shared::LguestData, DirectMap, Lguest, NativeCpuid, Scratch};
//! use guest::abi::guest::Transport;
//!
//! /// A host that accepts everything (a real guest uses `abi::guest::Vmcall`).
//! struct Nop;
//! impl Transport for Nop {
//!     fn hypercall(&self, _nr: u64, _args: [u64; guest::abi::numbers::ARG_REGS]) -> u64 {
//!         0
//!     }
//! }
//!
//! let page = LguestData::new();
//! let scratch = Scratch::new();
//! let lg = Lguest::new(&page, &scratch, Nop, NativeCpuid, DirectMap::new(0, 0));
//! lg.irq_disable();
//! assert_eq!(lg.save_fl(), 0);
//! ```
//!
//! A kernel makes one `'static` instance, names it with an [`init::Instance`], and installs
//! the function-pointer tables of [`init::Ops`]: `abi::pv_ops::PvOps::of::<Ops<MyInstance>>()`.

#![cfg_attr(not(test), no_std)]
#![deny(warnings)]

/// The ABI generated from `spec/lguest.toml`, the one crate that owns it.
pub use lguest_abi as abi;

pub mod cpuid;
pub mod cr;
pub mod dtables;
pub mod hw;
pub mod init;
pub mod irq;
pub mod lguest;
pub mod misc;
pub mod mmu;
pub mod patch;
pub mod pic;
pub mod time;

pub use hw::{DirectMap, NativeCpuid, RawCpuid, Translate};
pub use init::{Instance, IrqGates, Ops};
pub use lguest::{Lguest, Scratch};
