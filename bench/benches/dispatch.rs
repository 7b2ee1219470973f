//! Host dispatch (BENCHMARKS.md, part 2): the generated `match` against a hand-written
//! function-pointer table and a `HashMap<u64, Box<dyn Fn>>` registry, all calling the same
//! do-nothing handlers after the same argument checks and the same reads of the memory
//! arguments from all-zero guest memory; and the async ring's drain rate.
//!
//! `cargo bench -p pv-bench --bench dispatch`

use divan::counter::ItemsCount;
use divan::{Bencher, black_box};
use host_stubs::abi::host::dispatch;
use host_stubs::abi::lazy::RingCursor;
use host_stubs::abi::numbers::ARG_REGS;
use host_stubs::abi::shared::{LguestData, RING_DONE, RING_SIZE};
use pv_bench::dispatch::{
    FnTable, NopHost, Registry, ZeroMem, fused_match, hand_scratch, random_calls, scratch,
    sequential_calls,
};
use pv_bench::fixture::World;
use pv_bench::ring;

fn main() {
    divan::main();
}

/// Calls per iteration of the dispatch benches.
const CALLS: usize = 4096;

fn calls(order: &str) -> Vec<(u64, [u64; ARG_REGS])> {
    match order {
        "random" => random_calls(CALLS, 0x5eed),
        _ => sequential_calls(CALLS, 0x5eed),
    }
}

const ORDERS: [&str; 2] = ["random", "sequential"];

mod host_dispatch {
    use super::*;

    /// `host_stubs::abi::host::dispatch`: decode (the generated checks) + run (the match).
    #[divan::bench(args = ORDERS)]
    fn generated_match(b: Bencher, order: &str) {
        let calls = calls(order);
        let mut h = NopHost::default();
        let mut s = scratch();
        b.counter(ItemsCount::new(CALLS)).bench_local(|| {
            for &(nr, args) in black_box(&calls[..]) {
                let _ = black_box(dispatch(&mut h, &ZeroMem, &mut s, nr, args));
            }
        });
        black_box(h.acc);
    }

    /// A `[fn; 19]` indexed by the number (bounds-checked), each entry checking its own
    /// arguments and reading its memory ones.
    #[divan::bench(args = ORDERS)]
    fn fn_pointer_table(b: Bencher, order: &str) {
        let calls = calls(order);
        let table = FnTable::<ZeroMem>::new();
        let mut h = NopHost::default();
        let mut s = hand_scratch();
        b.counter(ItemsCount::new(CALLS)).bench_local(|| {
            let table = black_box(&table);
            for &(nr, args) in black_box(&calls[..]) {
                let _ = black_box(table.dispatch(&mut h, &ZeroMem, &mut s, nr, args));
            }
        });
        black_box(h.acc);
    }

    /// Not a contender: the same entries behind one hand-written `match` in this crate, to
    /// show what the generated dispatch's decode-then-run split costs.
    #[divan::bench(args = ORDERS)]
    fn x_fused_match_by_hand(b: Bencher, order: &str) {
        let calls = calls(order);
        let mut h = NopHost::default();
        let mut s = hand_scratch();
        b.counter(ItemsCount::new(CALLS)).bench_local(|| {
            for &(nr, args) in black_box(&calls[..]) {
                let _ = black_box(fused_match(&mut h, &ZeroMem, &mut s, nr, args));
            }
        });
        black_box(h.acc);
    }

    /// `HashMap<u64, Box<dyn Fn>>` (SipHash) holding the same entries.
    #[divan::bench(args = ORDERS)]
    fn hashmap_box_dyn_fn(b: Bencher, order: &str) {
        let calls = calls(order);
        let registry = Registry::<ZeroMem>::new();
        let mut h = NopHost::default();
        let mut s = hand_scratch();
        b.counter(ItemsCount::new(CALLS)).bench_local(|| {
            let registry = black_box(&registry);
            for &(nr, args) in black_box(&calls[..]) {
                let _ = black_box(registry.dispatch(&mut h, &ZeroMem, &mut s, nr, args));
            }
        });
        black_box(h.acc);
    }
}

mod ring_drain {
    use super::*;

    /// Pages (each a full ring) per sample: small, so the inputs stay in cache.
    const PAGES: u32 = 16;

    /// A do-nothing host draining a full ring over the generated layout through the
    /// generated `dispatch_slot` (`pv_bench::ring::drain`). The ring is filled by the
    /// generated lazy `set_pte` outside the timed part (one fresh page per iteration).
    #[divan::bench(sample_size = PAGES)]
    fn nop_host_generated_layout(b: Bencher) {
        let mut h = NopHost::default();
        let mut s = scratch();
        b.counter(ItemsCount::new(RING_SIZE))
            .with_inputs(|| {
                let page = Box::new(LguestData::new());
                ring::fill(&page, &RingCursor::new(), RING_SIZE, 1);
                page
            })
            .bench_local_refs(|page| {
                let mut cursor = 0;
                let ran = ring::drain(black_box(page), &mut cursor, &mut h, &mut s);
                debug_assert_eq!(ran, Ok(RING_SIZE));
                black_box(ran)
            });
        black_box(h.acc);
    }

    /// The reference host's real path: `Host::drain_ring` (bounds-checked `GuestMem`
    /// accesses, the real TS handler, the closing all-done check) over a ring the guest
    /// crate filled with `Lguest::clts` in lazy mode. Timed: fill + drain of 64 entries;
    /// `guest_fill_only` below is the fill alone, to subtract.
    #[divan::bench]
    fn reference_host_fill_and_drain(b: Bencher) {
        let w = World::new();
        let g = w.guest();
        g.enter_lazy(guest::lguest::LazyMode::Cpu);
        b.counter(ItemsCount::new(RING_SIZE)).bench_local(|| {
            for _ in 0..RING_SIZE {
                black_box(g.clts());
            }
            let d = w.lb.host_mut().drain_ring();
            debug_assert_eq!(d.as_ref().map(|d| d.ran), Ok(RING_SIZE));
            black_box(d)
        });
        assert!(w.lb.host().stopped().is_none());
    }

    /// The guest's fill of `reference_host_fill_and_drain` alone, the status bytes then set
    /// back to done directly (64 byte stores), as the drain would.
    #[divan::bench]
    fn guest_fill_only(b: Bencher) {
        let w = World::new();
        let g = w.guest();
        let data = w.data();
        g.enter_lazy(guest::lguest::LazyMode::Cpu);
        b.counter(ItemsCount::new(RING_SIZE)).bench_local(|| {
            for _ in 0..RING_SIZE {
                black_box(g.clts());
            }
            for s in &data.hcall_status {
                s.store(RING_DONE, std::sync::atomic::Ordering::Release);
            }
        });
    }
}
