//! Lazy mode: batching page-table updates in the async ring, and a property test that no
//! call is lost, duplicated or reordered whatever the guest and host interleave.

mod common;

use std::sync::atomic::Ordering;

use common::{Call, How, Table, World, pa};
use guest::abi::lazy::Sent;
use guest::abi::numbers::*;
use guest::abi::shared::{RING_DONE, RING_SIZE};
use guest::lguest::LazyMode;
use guest::misc::KERNEL_DS;
use proptest::prelude::*;
use x86::bits64::paging::{PML4Entry, PTEntry};

/// N page-table updates in lazy mode take about N/64 exits: the ring holds 64, the 65th
/// finds it full and goes out directly, which makes the host drain the 64 first.
#[test]
fn n_page_table_updates_take_about_n_over_64_exits_in_order() {
    let w = World::new();
    let lg = w.guest();
    let mut pml4 = Table::new();
    let mut pt = Table::new();
    let pgd = pml4.0.as_mut_ptr().cast::<PML4Entry>();
    let top = pa(pgd);
    const N: u64 = 1000;
    lg.enter_lazy_mmu();
    let mut direct = 0;
    for i in 0..N {
        let ptep =
            pt.0.as_mut_ptr()
                .wrapping_add((i % 512) as usize)
                .cast::<PTEntry>();
        // SAFETY: `ptep` is a live entry of `pt`.
        let sent = unsafe { lg.set_pte_at(pgd, i << 12, ptep, PTEntry(i << 12 | 0x67)) };
        if sent == Sent::Direct {
            direct += 1;
        }
    }
    lg.leave_lazy_mmu();
    let ring = RING_SIZE as u64;
    assert_eq!(direct, N / (ring + 1), "one direct call per full ring");
    let log = w.host.log();
    let exits = log.iter().filter(|c| c.how == How::Sync).count() as u64;
    assert_eq!(
        exits,
        N / (ring + 1) + 1,
        "full-ring calls plus the final flush"
    );
    assert!(exits <= N / ring + 1);
    // Every update arrived once, in order, and nothing else but the flush.
    let updates: Vec<u64> = log
        .iter()
        .filter(|c| c.nr == SET_PTE)
        .map(|c| {
            assert_eq!(c.args[0], top);
            c.args[1] >> 12
        })
        .collect();
    assert_eq!(updates, (0..N).collect::<Vec<_>>());
    assert_eq!(log.last().unwrap(), &Call::sync(FLUSH_ASYNC, [0; 4]));
    assert_eq!(log.len() as u64, N + 1);
    assert!(
        w.page
            .hcall_status
            .iter()
            .all(|s| s.load(Ordering::Relaxed) == RING_DONE)
    );
}

/// Queued arguments are written before the status byte: a slot the host sees as ready
/// already holds the call.
#[test]
fn a_ready_slot_holds_its_call() {
    let w = World::new();
    let lg = w.guest();
    lg.enter_lazy_mmu();
    assert_eq!(lg.flush_tlb_single(0xabc000), Sent::Queued(0));
    assert_eq!(w.page.hcall_status[0].load(Ordering::Acquire), 0);
    assert_eq!(w.page.hcalls[0].nr.load(Ordering::Relaxed), SET_PTE);
    assert_eq!(w.page.hcalls[0].args[1].load(Ordering::Relaxed), 0xabc000);
    assert_eq!(w.page.hcall_status[1].load(Ordering::Acquire), RING_DONE);
    assert_eq!(lg.ring_cursor(), 1);
}

/// What the test guest does next.
#[derive(Clone, Debug)]
enum Op {
    /// A lazy call: which one, and a value for its argument.
    Lazy(u8, u64),
    /// A call that is never queued.
    Sync(u64),
    Enter(LazyMode),
    Leave(LazyMode),
    /// The host drains the ring by itself (another exit).
    HostDrain,
}

fn op() -> impl Strategy<Value = Op> {
    let mode = prop_oneof![Just(LazyMode::Mmu), Just(LazyMode::Cpu)];
    prop_oneof![
        6 => (0u8..6, 0u64..1 << 20).prop_map(|(k, v)| Op::Lazy(k, v)),
        1 => (CLOCK_MIN_DELTA..1 << 30).prop_map(Op::Sync),
        1 => mode.clone().prop_map(Op::Enter),
        1 => mode.prop_map(Op::Leave),
        1 => Just(Op::HostDrain),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Whatever the mix of sync calls, lazy calls, mode switches and host drains, the host
    /// runs exactly the calls the guest made, in the order it made them; a call goes in the
    /// ring only in lazy mode; and once out of lazy mode nothing is left queued.
    #[test]
    fn no_call_is_lost_duplicated_or_reordered(ops in proptest::collection::vec(op(), 0..400)) {
        let w = World::new();
        let lg = w.guest();
        w.page.pgdir.store(0x40_0000, Ordering::Relaxed);
        let mut made: Vec<(u64, [u64; 4])> = Vec::new();
        let mut lazy = [false; 2];
        for op in &ops {
            match *op {
                Op::Lazy(k, v) => {
                    let (sent, call) = match k {
                        0 => (lg.flush_tlb_single(v << 12), (SET_PTE, [0x40_0000, v << 12, 0, 0])),
                        1 => (lg.flush_tlb_user(), (FLUSH_TLB, [0, 0, 0, 0])),
                        2 => (lg.flush_tlb_kernel(), (FLUSH_TLB, [1, 0, 0, 0])),
                        3 => (lg.write_cr0(v), (TS, [v & CR0_TS, 0, 0, 0])),
                        4 => (lg.load_sp0(v << 4), (SET_STACK, [KERNEL_DS | GUEST_PL, v << 4, MAX_STACK_PAGES, 0])),
                        _ => {
                            // SAFETY: nothing runs on these page tables.
                            let sent = unsafe { lg.write_cr3(v << 12) };
                            w.page.pgdir.store(0x40_0000, Ordering::Relaxed);
                            (sent, (NEW_PGTABLE, [v << 12, 0, 0, 0]))
                        }
                    };
                    if !(lazy[0] || lazy[1]) {
                        prop_assert_eq!(sent, Sent::Direct);
                    }
                    made.push(call);
                }
                Op::Sync(d) => {
                    lg.set_next_event(d).unwrap();
                    made.push((SET_CLOCKEVENT, [d, 0, 0, 0]));
                }
                Op::Enter(m) => {
                    lg.enter_lazy(m);
                    lazy[m as usize] = true;
                }
                Op::Leave(m) => {
                    lg.leave_lazy(m);
                    lazy[m as usize] = false;
                    made.push((FLUSH_ASYNC, [0; 4]));
                }
                Op::HostDrain => w.host.drain(),
            }
            prop_assert_eq!(lg.in_lazy_mode(), lazy[0] || lazy[1]);
        }
        lg.leave_lazy(LazyMode::Mmu);
        lg.leave_lazy(LazyMode::Cpu);
        made.push((FLUSH_ASYNC, [0; 4]));
        made.push((FLUSH_ASYNC, [0; 4]));
        let ran: Vec<(u64, [u64; 4])> = w.host.log().iter().map(|c| (c.nr, c.args)).collect();
        prop_assert_eq!(ran, made);
        for s in &w.page.hcall_status {
            prop_assert_eq!(s.load(Ordering::Relaxed), RING_DONE);
        }
    }
}
