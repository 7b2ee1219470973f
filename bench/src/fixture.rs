//! The guest crate against the reference host in process, as `host-stubs/tests/boot.rs`
//! sets it up: guest memory owned by the host, the shared page inside it, the guest's
//! `Lguest` borrowing that page, and a loopback transport whose "hypercall instruction" is
//! a call into `Host::hypercall`. Also a minimal transport for the guest-side benches.

use std::cell::Cell;
use std::sync::atomic::Ordering;

use guest::abi::guest::Transport;
use guest::abi::numbers::{ARG_REGS, LGUEST_INIT};
use guest::abi::shared::LguestData;
use guest::{DirectMap, Lguest, NativeCpuid, Scratch};
use host_stubs::clock::{ManualClock, WallTime};
use host_stubs::host::{Host, HostConfig};
use host_stubs::loopback::Loopback;
use host_stubs::memory::GuestMem;

/// Guest memory size.
pub const MEM: u64 = 0x10_0000;
/// Guest-physical address of the shared page.
pub const DATA: u64 = 0x1000;
/// Guest-physical address of the scratch buffers.
pub const SCRATCH: u64 = 0x2000;
/// Where the guest kernel's half of the address space starts.
pub const KERNEL: u64 = 0xffff_8000_0000_0000;

/// The guest crate's transport into the host's loopback.
///
/// Its `hypercall` is out of line and compiled once, here: a probe in another crate then
/// calls this very code instead of its own instantiation of the (generic) host, so two
/// probes compare only what they do before the call.
#[derive(Debug)]
pub struct Loop<'a>(pub &'a Loopback<ManualClock>);

impl Transport for Loop<'_> {
    #[inline(never)]
    fn hypercall(&self, nr: u64, args: [u64; ARG_REGS]) -> u64 {
        host_stubs::abi::guest::Transport::hypercall(self.0, nr, args)
    }
}

/// The smallest in-process transport: the "host" is one out-of-line function that folds
/// the registers into a cell, so every register the wrapper loads is used.
#[derive(Debug, Default)]
pub struct Recorder {
    /// Folded registers.
    pub acc: Cell<u64>,
}

impl Transport for Recorder {
    #[inline(never)]
    fn hypercall(&self, nr: u64, args: [u64; ARG_REGS]) -> u64 {
        let v = self.acc.get()
            ^ nr
            ^ args[0]
            ^ args[1].rotate_left(8)
            ^ args[2].rotate_left(16)
            ^ args[3].rotate_left(24);
        self.acc.set(v);
        v
    }
}

/// The guest over the loopback host.
pub type LoopGuest<'a> = Lguest<'a, Loop<'a>, NativeCpuid, DirectMap>;

/// A reference host with the guest's shared page in its memory, after LGUEST_INIT.
#[derive(Debug)]
pub struct World {
    /// The host, behind the loopback transport.
    pub lb: Loopback<ManualClock>,
    base: u64,
}

impl Default for World {
    fn default() -> Self {
        Self::new()
    }
}

impl World {
    /// A host whose call log is off (`call_log: 0`, as a long-running host whose log is
    /// full), with the shared page set up and LGUEST_INIT done.
    pub fn new() -> Self {
        let mem = GuestMem::new(MEM).expect("guest memory");
        let base = mem.host_ptr(0, MEM).expect("mapping").as_ptr() as u64;
        let cfg = HostConfig {
            call_log: 0,
            ..HostConfig::default()
        };
        let clock = ManualClock::new(
            WallTime {
                sec: 1_000_000,
                nsec: 0,
            },
            3_000_000,
        );
        let w = World {
            lb: Loopback::new(Host::new(mem, clock, cfg)),
            base,
        };
        // SAFETY: both ranges are inside guest memory (host_ptr checks) and aligned
        // (asserted in `ptr`); no reference to them exists yet.
        unsafe {
            w.ptr::<LguestData>(DATA, LguestData::SIZE as u64)
                .write(LguestData::new());
            w.ptr::<Scratch>(SCRATCH, size_of::<Scratch>() as u64)
                .write(Scratch::new());
        }
        w.data().kernel_address.store(KERNEL, Ordering::Relaxed);
        w.lb.call(LGUEST_INIT, [DATA, 0, 0, 0])
            .expect("LGUEST_INIT");
        w
    }

    fn ptr<T>(&self, gpa: u64, len: u64) -> *mut T {
        let p = self
            .lb
            .host()
            .mem()
            .host_ptr(gpa, len)
            .expect("in guest memory");
        assert_eq!(
            p.as_ptr() as usize % align_of::<T>(),
            0,
            "misaligned {gpa:#x}"
        );
        p.as_ptr().cast()
    }

    /// The shared page, as the guest sees it.
    pub fn data(&self) -> &LguestData {
        // SAFETY: the mapping lives as long as `self.lb` (the host owns it and never moves
        // or shrinks it). The page is all atomics and the host touches it only with atomic
        // accesses of the same sizes, so the reference never races non-atomically.
        unsafe { &*self.ptr::<LguestData>(DATA, LguestData::SIZE as u64) }
    }

    /// The guest, borrowing the shared page and scratch buffers from guest memory.
    pub fn guest(&self) -> LoopGuest<'_> {
        // SAFETY: as in `data`; `Scratch` is only reached through its lock.
        let scratch = unsafe { &*self.ptr::<Scratch>(SCRATCH, size_of::<Scratch>() as u64) };
        Lguest::new(
            self.data(),
            scratch,
            Loop(&self.lb),
            NativeCpuid,
            DirectMap::new(self.base, 0),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use guest::abi::guest::LguestHypercalls;
    use guest::lguest::LazyMode;
    use host_stubs::abi::shared::RING_SIZE;

    #[test]
    fn the_world_runs_calls_and_drains_the_guests_ring() {
        let w = World::new();
        let g = w.guest();
        g.transport().set_clockevent(1000);
        assert!(w.lb.host().timer().is_some());
        g.enter_lazy(LazyMode::Cpu);
        for _ in 0..RING_SIZE {
            g.clts();
        }
        let d = w.lb.host_mut().drain_ring().unwrap();
        assert_eq!(d.ran, RING_SIZE);
        assert!(w.lb.host().stopped().is_none());
        assert_eq!(w.lb.host().ring_cursor(), g.ring_cursor());
    }
}
