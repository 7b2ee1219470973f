//! The async ring with nothing but the generated parts: the generated producer
//! (`host_stubs::abi::lazy::Batch`) fills the generated page layout
//! (`host_stubs::abi::shared::LguestData`, a struct of atomics in ordinary memory), and
//! [`drain`] consumes it through the generated `dispatch_slot` into [`NopHost`].
//!
//! [`drain`] follows `host_stubs::Host::drain_ring` step for step (status once, cursor
//! first, slot copied once into locals, dispatch, status back to done) but reads the page
//! directly instead of through the bounds-checked `GuestMem`, and skips the real host's
//! closing check that every other slot is done.

use std::sync::atomic::Ordering;

use host_stubs::abi::guest::Transport;
use host_stubs::abi::host::{Scratch, dispatch_slot};
use host_stubs::abi::lazy::{Batch, LguestLazyHypercalls, RingCursor, Sent};
use host_stubs::abi::numbers::ARG_REGS;
use host_stubs::abi::shared::{LguestData, RING_ARGS, RING_DONE, RING_READY, RING_SIZE};

use crate::dispatch::{NopHost, ZeroMem};

/// A transport that must never be used: a lazy batch with free slots never calls it.
#[derive(Debug)]
pub struct Unreachable;

impl Transport for Unreachable {
    fn hypercall(&self, nr: u64, _args: [u64; ARG_REGS]) -> u64 {
        panic!("hypercall {nr} made directly: the ring was full")
    }
}

/// Queues `n` SET_PTE calls with the generated lazy variant.
pub fn fill(page: &LguestData, cursor: &RingCursor, n: usize, seed: u64) {
    let b = Batch {
        transport: &Unreachable,
        page,
        cursor,
        lazy: true,
    };
    for i in 0..n as u64 {
        let sent = b.set_pte((seed + i) << 12, i << 12, i | 1);
        debug_assert!(matches!(sent, Sent::Queued(_)));
    }
}

/// Runs the ready slots from `cursor` through the generated `dispatch_slot`; returns how
/// many ran, or the slot that was bad.
#[inline(never)]
pub fn drain(
    page: &LguestData,
    cursor: &mut usize,
    host: &mut NopHost,
    scratch: &mut Scratch,
) -> Result<usize, usize> {
    let mut ran = 0;
    for _ in 0..RING_SIZE {
        let slot = *cursor;
        let status = &page.hcall_status[slot];
        match status.load(Ordering::Acquire) {
            RING_DONE => break,
            RING_READY => {}
            _ => return Err(slot),
        }
        *cursor = (slot + 1) % RING_SIZE;
        let s = &page.hcalls[slot];
        let mut args = [0u64; RING_ARGS];
        for (a, v) in args.iter_mut().zip(&s.args) {
            *a = v.load(Ordering::Relaxed);
        }
        let nr = s.nr.load(Ordering::Relaxed);
        if dispatch_slot(host, &ZeroMem, scratch, nr, args).is_err() {
            return Err(slot);
        }
        status.store(RING_DONE, Ordering::Release);
        ran += 1;
    }
    Ok(ran)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filled_ring_drains_completely_and_in_step() {
        let mut s = crate::dispatch::scratch();
        let page = LguestData::new();
        let cursor = RingCursor::new();
        let mut host_cursor = 0;
        let mut h = NopHost::default();
        for round in 0..3 {
            fill(&page, &cursor, RING_SIZE, round);
            assert_eq!(
                drain(&page, &mut host_cursor, &mut h, &mut s),
                Ok(RING_SIZE)
            );
            assert_eq!(host_cursor, cursor.slot());
        }
        fill(&page, &cursor, 5, 9);
        assert_eq!(drain(&page, &mut host_cursor, &mut h, &mut s), Ok(5));
        assert_eq!(drain(&page, &mut host_cursor, &mut h, &mut s), Ok(0));
    }
}
