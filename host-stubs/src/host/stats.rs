//! Room: the reference host's call log and counters: every call it ran or refused, in
//! order (up to `call_log`), and how many of each.

use crate::abi::numbers::{ARG_REGS, Hypercall};
use crate::abi::types::Gpa;
use crate::clock::Clock;
use crate::kill::Origin;

use super::Host;

/// One call the host ran (or refused), in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallRecord {
    /// The call number, as the guest sent it.
    pub nr: u64,
    /// The argument registers (ring slots: their arguments, then 0).
    pub args: [u64; ARG_REGS],
    /// Synchronous or from which ring slot.
    pub origin: Origin,
}

impl CallRecord {
    /// The hypercall, if `nr` names one.
    pub fn call(&self) -> Option<Hypercall> {
        Hypercall::try_from(self.nr).ok()
    }
}

impl<C: Clock> Host<C> {
    /// Counts and logs one call; `args` are its argument registers or ring-slot arguments
    /// (the registers a slot does not hold are logged as 0).
    pub(super) fn log(&mut self, nr: u64, args: &[u64], origin: Origin) {
        match Hypercall::ALL.iter().position(|c| c.nr() == nr) {
            Some(i) => self.counts[i] += 1,
            None => self.unknown_calls += 1,
        }
        if self.calls.len() < self.cfg.call_log {
            let mut regs = [0; ARG_REGS];
            for (r, a) in regs.iter_mut().zip(args) {
                *r = *a;
            }
            self.calls.push(CallRecord {
                nr,
                args: regs,
                origin,
            });
        } else {
            self.calls_dropped += 1;
        }
    }

    /// Records a NOTIFY the handler served, at guest-physical `addr`: the ring walk stops
    /// after it, and the VMM sees it in [`Host::notifications`] (up to `call_log`).
    pub(super) fn notified(&mut self, addr: Gpa) {
        if self.notifications.len() < self.cfg.call_log {
            self.notifications.push(addr);
        }
        self.pending_notify = Some(addr);
    }
}
