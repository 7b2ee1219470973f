//! The guest itself: the shared page, the guest-private state, and the seed's two batching
//! tricks, `async_hcall()` and `lazy_hcall()`.

use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::abi::guest::{LguestHypercalls, Transport};
use crate::abi::lazy::{Batch, RingCursor, Sent};
use crate::abi::numbers::{self, NOTIFY_MAX};
use crate::abi::shared::LguestData;
use crate::hw::{RawCpuid, Translate};

/// The reason `power_off` sends (the spec's `POWER_DOWN`), NUL-terminated as the host
/// expects: a host tells a clean power-off by it.
pub const POWER_DOWN: &[u8; POWER_DOWN_BYTES] = &nul_terminated(numbers::POWER_DOWN);

/// Bytes of [`POWER_DOWN`], its NUL included.
const POWER_DOWN_BYTES: usize = numbers::POWER_DOWN.len() + 1;

/// `text` and a NUL, at compile time.
const fn nul_terminated(text: &str) -> [u8; POWER_DOWN_BYTES] {
    let mut out = [0; POWER_DOWN_BYTES];
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        out[i] = bytes[i];
        i += 1;
    }
    out
}

/// Guest memory the paravirt layer hands to the host by address: the early console's
/// scratch buffer and the power-off reason (the seed's `static char scratch[]` and its
/// `"Power down"` literal).
///
/// Both must lie where [`Translate`] can map them: in the kernel image on real hardware, in
/// guest memory when the guest runs inside a host test process.
#[repr(C)]
#[derive(Debug)]
pub struct Scratch {
    pub(crate) console: spin::Mutex<[u8; NOTIFY_MAX as usize]>,
    pub(crate) power_down: [u8; POWER_DOWN_BYTES],
}

impl Scratch {
    /// Empty buffers and the power-off reason.
    pub const fn new() -> Self {
        Scratch {
            console: spin::Mutex::new([0; NOTIFY_MAX as usize]),
            power_down: *POWER_DOWN,
        }
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Self::new()
    }
}

/// Which lazy modes the guest is in: `paravirt_enter_lazy_mmu()` and the context-switch
/// (CPU) mode can nest, and calls are queued while either is on.
#[derive(Debug, Default)]
struct LazyModes {
    mmu: AtomicBool,
    cpu: AtomicBool,
}

/// The lazy mode being entered or left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LazyMode {
    /// Page-table updates (`paravirt_enter_lazy_mmu`).
    Mmu,
    /// A context switch (`paravirt_start_context_switch`), or `pv_cpu_ops.lazy_mode`.
    Cpu,
}

/// An lguest guest: the seed's file-scope state and every function of `boot.c` as a method.
///
/// * `T` makes hypercalls ([`crate::abi::guest::Vmcall`] in a VM);
/// * `C` runs the raw `cpuid` ([`crate::NativeCpuid`] in a VM);
/// * `P` turns pointers into guest-physical addresses ([`crate::DirectMap`] in a VM).
///
/// The shared page and the scratch buffers are borrowed: in an in-process host they live in
/// the host's mapping of guest memory. The rest (cr0, `cr3_changed`, the ring cursor, the
/// lazy mode) is guest-private and lives here, where the host cannot touch it.
#[derive(Debug)]
pub struct Lguest<'a, T, C, P> {
    pub(crate) data: &'a LguestData,
    pub(crate) scratch: &'a Scratch,
    pub(crate) transport: T,
    pub(crate) raw_cpuid: C,
    pub(crate) translate: P,
    /// The seed's `current_cr0`.
    pub(crate) cr0: AtomicU64,
    /// The seed's `cr3_changed`: see [`Lguest::set_pte`].
    pub(crate) cr3_changed: AtomicBool,
    /// The seed's `static next_call`, behind a lock so that two CPUs never fill one slot.
    cursor: spin::Mutex<RingCursor>,
    lazy: LazyModes,
    /// How often something wrote the APIC's interrupt command register (the seed's WARN_ON).
    pub(crate) stray_icr_writes: AtomicU64,
}

impl<'a, T, C, P> Lguest<'a, T, C, P>
where
    T: Transport,
    C: RawCpuid,
    P: Translate,
{
    /// A guest using the shared page `data` and the guest-memory buffers `scratch`.
    ///
    /// `data` should start as [`LguestData::new()`] (every ring slot done, the timer
    /// blocked); [`Lguest::lguest_init`] then fills in the rest and introduces it to the host.
    pub const fn new(
        data: &'a LguestData,
        scratch: &'a Scratch,
        transport: T,
        raw_cpuid: C,
        translate: P,
    ) -> Self {
        Lguest {
            data,
            scratch,
            transport,
            raw_cpuid,
            translate,
            cr0: AtomicU64::new(0),
            cr3_changed: AtomicBool::new(false),
            cursor: spin::Mutex::new(RingCursor::new()),
            lazy: LazyModes {
                mmu: AtomicBool::new(false),
                cpu: AtomicBool::new(false),
            },
            stray_icr_writes: AtomicU64::new(0),
        }
    }

    /// The page shared with the host.
    pub fn shared(&self) -> &'a LguestData {
        self.data
    }

    /// The transport hypercalls go through.
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// The guest-physical address of `va`.
    #[inline]
    pub(crate) fn pa<X>(&self, va: *const X) -> u64 {
        self.translate.pa(va.cast())
    }

    /// Whether lazy hypercalls are being queued right now.
    pub fn in_lazy_mode(&self) -> bool {
        self.lazy.mmu.load(Ordering::Relaxed) || self.lazy.cpu.load(Ordering::Relaxed)
    }

    /*G:035 Notice the lazy_hcall() above, rather than hcall(). This is our first
     * real optimization trick!
     *
     * When lazy_mode is set, it means we're allowed to defer all hypercalls and do
     * them as a batch when lazy_mode is eventually turned off. Because hypercalls
     * are reasonably expensive, batching them up makes sense. For example, a
     * large munmap might update dozens of page table entries: that code calls
     * paravirt_enter_lazy_mmu(), does the dozen updates, then calls
     * lguest_leave_lazy_mode().
     *
     * So, when we're in lazy mode, we call async_hcall() to store the call for
     * future processing: */
    /// Makes a lazy hypercall: `f` gets a [`Batch`] that queues it in the async ring while
    /// in lazy mode and calls the host directly otherwise (the seed's `lazy_hcallN`).
    pub(crate) fn lazy_hcall(&self, f: impl FnOnce(&Batch<'_, T>) -> Sent) -> Sent {
        if !self.in_lazy_mode() {
            // kvm_hypercallN: a Batch that is not lazy never touches the ring or its cursor.
            let unused = RingCursor::new();
            return f(&Batch {
                transport: &self.transport,
                page: self.data,
                cursor: &unused,
                lazy: false,
            });
        }
        self.async_hcall(f)
    }

    /*G:037 async_hcall() is pretty simple: I'm quite proud of it really. We have a
     * ring buffer of stored hypercalls which the Host will run though next time we
     * do a normal hypercall. Each entry in the ring has 4 slots for the hypercall
     * arguments, and a "hcall_status" word which is 0 if the call is ready to go,
     * and 255 once the Host has finished with it.
     *
     * If we come around to a slot which hasn't been finished, then the table is
     * full and we just make the hypercall directly. This has the nice side
     * effect of causing the Host to run all the stored calls in the ring buffer
     * which empties it for next time! */
    // The generated `Batch::queue` writes the arguments before the status byte, with release
    // ordering, and falls back to a direct call on a full ring.
    fn async_hcall(&self, f: impl FnOnce(&Batch<'_, T>) -> Sent) -> Sent {
        // Disable interrupts if not already disabled: we don't want an interrupt handler
        // making a hypercall while we're already doing one.
        let flags = self.save_fl();
        self.irq_disable();
        let sent = {
            let cursor = self.cursor.lock();
            f(&Batch {
                transport: &self.transport,
                page: self.data,
                cursor: &cursor,
                lazy: true,
            })
        };
        self.restore_fl(flags);
        sent
    }

    /// Enters a lazy mode: lazy hypercalls are queued in the ring from now on
    /// (`paravirt_enter_lazy_mmu()`, `paravirt_start_context_switch()`).
    pub fn enter_lazy(&self, mode: LazyMode) {
        self.lazy_flag(mode).store(true, Ordering::Relaxed);
    }

    /// Leaves a lazy mode: the seed's `lguest_leave_lazy_mmu_mode()`.
    ///
    /// When lazy mode is turned off, issue the do-nothing hypercall to flush any stored
    /// calls, then reset the lazy-mode flag. Calls made in the other, still-active lazy
    /// mode keep being queued.
    pub fn leave_lazy(&self, mode: LazyMode) {
        self.transport.flush_async();
        self.lazy_flag(mode).store(false, Ordering::Relaxed);
    }

    /// The start of a context switch (`paravirt_start_context_switch()`): the switch's
    /// hypercalls (stack, TLS, TS) are queued until it ends.
    pub fn start_context_switch(&self) {
        self.enter_lazy(LazyMode::Cpu);
    }

    /// The end of a context switch: the seed's `lguest_end_context_switch()`, which flushes
    /// the ring and leaves the CPU lazy mode.
    pub fn end_context_switch(&self) {
        self.leave_lazy(LazyMode::Cpu);
    }

    /// The position of the guest's ring cursor (the next slot it will fill).
    pub fn ring_cursor(&self) -> usize {
        self.cursor.lock().slot()
    }

    fn lazy_flag(&self, mode: LazyMode) -> &AtomicBool {
        match mode {
            LazyMode::Mmu => &self.lazy.mmu,
            LazyMode::Cpu => &self.lazy.cpu,
        }
    }
}
