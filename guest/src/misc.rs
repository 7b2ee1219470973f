//! Miscellaneous bits and pieces.
//!
//! Here is an oddball collection of functions which the Guest needs for things to work.
//! They're pretty simple.

use core::ffi::CStr;
use core::sync::atomic::Ordering;

use crate::abi::guest::{LguestHypercalls, Transport};
use crate::abi::lazy::{LguestLazyHypercalls, Sent};
use crate::abi::numbers::{GUEST_PL, MAX_STACK_PAGES};
use crate::abi::types::ShutdownKind;
use crate::hw::{RawCpuid, Translate};
use crate::lguest::Lguest;

/// The kernel's code and data segment selectors (`__KERNEL_CS`, `__KERNEL_DS`): the spec's,
/// since the host starts the kernel on them.
pub use crate::abi::numbers::{KERNEL_CS, KERNEL_DS};

/// Pages in a kernel stack: x86_64 Linux 2.6.30's THREAD_SIZE is 8 KiB, the most SET_STACK
/// may pin.
pub const STACK_PAGES: u64 = MAX_STACK_PAGES;

/// The name `memory_setup` returns for the boot messages.
pub const MEMORY_NAME: &str = "LGUEST";

impl<T: Transport, C: RawCpuid, P: Translate> Lguest<'_, T, C, P> {
    /// The Guest needs to tell the Host what stack it expects traps to use. For native
    /// hardware, this is part of the Task State Segment mentioned above in load_tr_desc(),
    /// but to help hypervisors there's this special call.
    ///
    /// We tell the Host the segment we want to use (__KERNEL_DS is the kernel data segment),
    /// the privilege level (we're privilege level 1, the Host is 0 and will not tolerate us
    /// trying to use that), the stack pointer, and the number of pages in the stack.
    pub fn load_sp0(&self, sp0: u64) -> Sent {
        self.lazy_hcall(|b| b.set_stack(KERNEL_DS | GUEST_PL, sp0, STACK_PAGES))
    }

    /// Let's just say, I wouldn't do debugging under a Guest.
    pub fn set_debugreg(&self, _regno: u8, _value: u64) {}

    /// There are times when the kernel wants to make sure that no memory writes are caught
    /// in the cache (that they've all reached real hardware devices). This doesn't matter
    /// for the Guest which has virtual hardware.
    ///
    /// Unlike clflush, wbinvd can only be run at privilege level 0. So we can ignore
    /// clflush, but replace wbinvd.
    pub fn wbinvd(&self) {}

    /// If the Guest expects to have an Advanced Programmable Interrupt Controller, we play
    /// dumb by ignoring writes and returning 0 for reads. So it's no longer Programmable
    /// nor Controlling anything, and I don't think 8 lines of code qualifies for Advanced.
    /// It will also never interrupt anything. It does, however, allow us to get through the
    /// Linux boot code.
    pub fn apic_read(&self, _reg: u32) -> u32 {
        0
    }

    /// APIC register writes are ignored.
    pub fn apic_write(&self, _reg: u32, _value: u32) {}

    /// The interrupt command register reads as 0.
    pub fn apic_icr_read(&self) -> u64 {
        0
    }

    /// Nothing should send an IPI: the seed warns to see if there's any stray references.
    /// The port counts them ([`Lguest::stray_icr_writes`]) and otherwise ignores them.
    pub fn apic_icr_write(&self, _low: u32, _high: u32) {
        self.stray_icr_writes.fetch_add(1, Ordering::Relaxed);
    }

    /// How many times something wrote the APIC's interrupt command register.
    pub fn stray_icr_writes(&self) -> u64 {
        self.stray_icr_writes.load(Ordering::Relaxed)
    }

    /// The ICR is always idle.
    pub fn apic_wait_icr_idle(&self) {}

    /// The ICR is always idle: its busy bit reads 0.
    pub fn apic_safe_wait_icr_idle(&self) -> u32 {
        0
    }

    /// The SHUTDOWN hypercall takes a string to describe what's happening, and an argument
    /// which says whether this to restart (reboot) the Guest or not.
    ///
    /// Note that the Host always prefers that the Guest speak in physical addresses rather
    /// than virtual addresses: the generated wrapper passes the string's through
    /// [`Translate`] (our __pa()). The host reads at most `SHUTDOWN_REASON_MAX` bytes, NUL
    /// included: a longer reason kills the guest instead.
    pub fn power_off(&self) {
        let reason = CStr::from_bytes_until_nul(&self.scratch.power_down).unwrap_or_default();
        self.transport
            .shutdown(&self.translate, reason, ShutdownKind::Poweroff);
    }

    /// Panicking: don't. But if you did, this is what happens.
    pub fn panic(&self, message: &CStr) {
        self.transport
            .shutdown(&self.translate, message, ShutdownKind::Poweroff);
    }

    /// Rebooting also tells the Host we're finished, but the RESTART flag tells the
    /// Launcher to reboot us.
    pub fn restart(&self, reason: &CStr) {
        self.transport
            .shutdown(&self.translate, reason, ShutdownKind::Restart);
    }

    /// Setting up memory is fairly easy: the Launcher gave us a single region, which the
    /// kernel takes from its boot parameters. This string is for the boot messages.
    pub fn memory_setup(&self) -> &'static str {
        MEMORY_NAME
    }

    /// We will eventually use the virtio console device to produce console output, but
    /// before that is set up we use NOTIFY on normal memory to produce console output.
    ///
    /// We use a nul-terminated string, so we have to make a copy, at most `NOTIFY_MAX - 1`
    /// bytes of `buf`. Icky, huh? Returns the number of bytes actually written.
    pub fn early_put_chars(&self, buf: &[u8]) -> usize {
        let mut scratch = self.scratch.console.lock();
        let len = buf.len().min(scratch.len() - 1);
        scratch[..len].copy_from_slice(&buf[..len]);
        scratch[len] = 0;
        // Up to the first NUL: an interior one ends the text there, as it did for the host
        // reading the original's buffer.
        let text = CStr::from_bytes_until_nul(&scratch[..=len]).unwrap_or_default();
        self.transport.notify(&self.translate, text);
        len
    }
}
