//! The host half of lguest: the dispatch generated from `spec/lguest.toml`, and a reference
//! host behind it with the semantics of Linux 2.6.30's `drivers/lguest/hypercalls.c` and
//! friends, ported to x86_64, with the original's bugs fixed.
//!
//! - [`memory::GuestMem`]: guest memory (rust-vmm `vm-memory`), every access bounds-checked;
//!   it implements the generated [`abi::host::GuestMemory`], through which the generated
//!   decode reads memory arguments ([`guest_memory_for!`] implements another ABI's).
//! - [`host::Host`]: behind the generated [`abi::host::LguestHost`]; its entry points
//!   drain the async ring and dispatch ([`host::Host::hypercall`]), decide interrupt
//!   delivery ([`host::Host::next`]) and take device interrupts ([`host::Host::raise_irq`]).
//! - [`kill`]: why a guest stopped, typed, naming the call, the argument and the value.
//! - [`irq`]: lguest's delivery rules as a pure function, shared with the KVM host.
//! - [`loopback::Loopback`]: a guest transport that calls the host in process.
//!
//! ```
//! use host_stubs::abi::guest::LguestHypercalls;
//! use host_stubs::abi::numbers::SYSCALL_VECTOR;
//! use host_stubs::abi::shared::{LguestData, RING_DONE, RING_SIZE};
//! use host_stubs::{clock::{ManualClock, WallTime}, host::{Host, HostConfig}, memory::GuestMem};
//! use host_stubs::loopback::Loopback;
//!
//! let mem = GuestMem::new(0x10000).unwrap();
//! // The guest's shared page, as it sets it up before its first hypercall.
//! let page = 0x1000;
//! mem.write_u64(page + LguestData::KERNEL_ADDRESS_OFFSET as u64, 0xffff_8000_0000_0000).unwrap();
//! let vec = SYSCALL_VECTOR as u32;
//! mem.write(page + LguestData::SYSCALL_VEC_OFFSET as u64, &vec.to_le_bytes()).unwrap();
//! mem.write(page + LguestData::HCALL_STATUS_OFFSET as u64, &[RING_DONE; RING_SIZE]).unwrap();
//! let host = Host::new(mem, ManualClock::new(WallTime::default(), 0), HostConfig::default());
//! let guest = Loopback::new(host);
//! guest.lguest_init(page);
//! guest.halt();
//! assert!(guest.host().halted());
//! ```

#![deny(warnings)]

/// The ABI generated from `spec/lguest.toml`, the one crate that owns it.
pub use lguest_abi as abi;

pub mod clock;
pub mod desc;
pub mod host;
pub mod irq;
pub mod kill;
pub mod loopback;
pub mod memory;
pub mod mmu;

pub use host::{Host, HostConfig, Next};
pub use kill::{Kill, Killed, Origin, Shutdown, Stop};
pub use memory::GuestMem;
