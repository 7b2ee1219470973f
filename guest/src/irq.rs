//! Interrupt flags: the four hottest operations, which never leave the guest.
//!
//! After that diversion we return to our first native-instruction replacements: four
//! functions for interrupt control.
//!
//! The simplest way of implementing these would be to have "turn interrupts off" and "turn
//! interrupts on" hypercalls. Unfortunately, this is too slow: these are by far the most
//! commonly called functions of those we override.
//!
//! So instead we keep an "irq_enabled" field inside our "struct lguest_data", which the
//! Guest can update with a single instruction. The Host knows to check there before it tries
//! to deliver an interrupt.
//!
//! The four are callee-save ops: call sites expect every register but the return register
//! preserved. Each touches only `irq_enabled`; `#[pv_macros::pv_ops]` on the `IrqOps` impl
//! of [`crate::Ops`] wraps them in callee-save thunks (`Ops::<I>::save_fl_callee_save` and
//! so on), and the patch templates (`pushf`, `popf`, `cli`, `sti`) do exactly the same
//! single load or store.

use core::sync::atomic::Ordering;

use crate::abi::guest::{LguestHypercalls, Transport};
use crate::abi::numbers::EFLAGS_IF;
use crate::hw::{RawCpuid, Translate};
use crate::lguest::Lguest;

impl<T: Transport, C: RawCpuid, P: Translate> Lguest<'_, T, C, P> {
    /// save_flags() is expected to return the processor state (ie. "flags"). The flags word
    /// contains all kind of stuff, but in practice Linux only cares about the interrupt
    /// flag. Our "save_flags()" just returns that.
    #[inline]
    pub fn save_fl(&self) -> u64 {
        u64::from(self.data.irq_enabled.load(Ordering::Relaxed))
    }

    /// restore_flags() just sets the flags back to the value given. Like the `popf`
    /// template, it stores the low 32 bits of the argument register.
    #[inline]
    pub fn restore_fl(&self, flags: u64) {
        self.data.irq_enabled.store(flags as u32, Ordering::Relaxed);
    }

    /// Interrupts go off...
    #[inline]
    pub fn irq_disable(&self) {
        self.data.irq_enabled.store(0, Ordering::Relaxed);
    }

    /// Interrupts go on...
    #[inline]
    pub fn irq_enable(&self) {
        self.data
            .irq_enabled
            .store(EFLAGS_IF as u32, Ordering::Relaxed);
    }

    /*M:003 Note that we don't check for outstanding interrupts when we re-enable
     * them (or when we unmask an interrupt). This seems to work for the moment,
     * since interrupts are rare and we'll just get the interrupt on the next timer
     * tick, but now we can run with CONFIG_NO_HZ, we should revisit this. :*/

    /// STOP! Until an interrupt comes in. The host wakes us with interrupts enabled.
    pub fn safe_halt(&self) {
        self.transport.halt();
    }
}
