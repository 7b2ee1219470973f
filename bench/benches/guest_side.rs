//! Guest side (BENCHMARKS.md, part 3): the generated typed wrapper against a hand-written
//! raw `Transport::hypercall`, on the loopback transport into the reference host and on a
//! minimal in-process transport; and the cost of queueing one lazy call.
//!
//! `cargo bench -p pv-bench --bench guest_side`

use divan::counter::ItemsCount;
use divan::{Bencher, black_box};
use guest::abi::guest::{LguestHypercalls, Transport};
use guest::abi::lazy::{Batch, LguestLazyHypercalls, RingCursor};
use guest::abi::numbers::{SET_CLOCKEVENT, SET_PTE};
use guest::abi::shared::{LguestData, RING_SIZE};
use guest::lguest::LazyMode;
use guest::{DirectMap, Lguest, NativeCpuid, Scratch};
use pv_bench::fixture::{Recorder, World};
use pv_bench::probes::{HandCursor, pvb_lazy_by_hand};

fn main() {
    divan::main();
}

mod wrapper_vs_raw {
    use super::*;

    /// `transport.set_clockevent(d)` into the reference host (`Host::hypercall`: ring
    /// check, dispatch, handler).
    #[divan::bench]
    fn loopback_typed(b: Bencher) {
        let w = World::new();
        let g = w.guest();
        let t = g.transport();
        b.bench_local(|| t.set_clockevent(black_box(1000)));
    }

    /// `transport.hypercall(SET_CLOCKEVENT, [d, 0, 0, 0])`, the same call by hand.
    #[divan::bench]
    fn loopback_raw(b: Bencher) {
        let w = World::new();
        let g = w.guest();
        let t = g.transport();
        b.bench_local(|| black_box(t.hypercall(SET_CLOCKEVENT, [black_box(1000), 0, 0, 0])));
    }

    /// `set_pte` through the typed wrapper on the minimal transport (one out-of-line call).
    #[divan::bench]
    fn minimal_typed(b: Bencher) {
        let t = Recorder::default();
        b.bench_local(|| t.set_pte(black_box(0x1000), black_box(0x2000), black_box(0x63)));
        black_box(t.acc.get());
    }

    /// The same by hand.
    #[divan::bench]
    fn minimal_raw(b: Bencher) {
        let t = Recorder::default();
        b.bench_local(|| {
            black_box(t.hypercall(
                SET_PTE,
                [black_box(0x1000), black_box(0x2000), black_box(0x63), 0],
            ))
        });
        black_box(t.acc.get());
    }
}

mod lazy_queue {
    use super::*;

    /// Pages (each a full ring) per sample: small, so the inputs stay in cache.
    const PAGES: u32 = 16;

    /// 64 calls of the generated lazy `set_pte` on a `Batch` in lazy mode, into an empty
    /// ring (a fresh page per iteration, made outside the timed part): each call queues.
    #[divan::bench(sample_size = PAGES)]
    fn generated_batch_set_pte(b: Bencher) {
        let t = Recorder::default();
        b.counter(ItemsCount::new(RING_SIZE))
            .with_inputs(|| (Box::new(LguestData::new()), RingCursor::new()))
            .bench_local_refs(|(page, cursor)| {
                let batch = Batch {
                    transport: &t,
                    page: black_box(&**page),
                    cursor,
                    lazy: true,
                };
                for i in 0..RING_SIZE as u64 {
                    black_box(batch.set_pte(black_box(i << 12), i << 12, i | 1));
                }
            });
        assert_eq!(t.acc.get(), 0, "a call went out directly");
    }

    /// Not generated: the same queue written out by hand with the cursor read inline
    /// (`pv_bench::probes::pvb_lazy_by_hand`), to show what inlining `RingCursor::slot`
    /// is worth.
    #[divan::bench(sample_size = PAGES)]
    fn x_by_hand_inline_cursor(b: Bencher) {
        let t = Recorder::default();
        b.counter(ItemsCount::new(RING_SIZE))
            .with_inputs(|| (Box::new(LguestData::new()), HandCursor::default()))
            .bench_local_refs(|(page, cursor)| {
                for i in 0..RING_SIZE as u64 {
                    black_box(pvb_lazy_by_hand(
                        &t,
                        black_box(&**page),
                        cursor,
                        black_box(true),
                        black_box(i << 12),
                        i << 12,
                        i | 1,
                    ));
                }
            });
        assert_eq!(t.acc.get(), 0, "a call went out directly");
    }

    /// The guest crate's whole lazy path: `Lguest::load_sp0` in lazy mode (save and
    /// disable the interrupt flag, lock the cursor, queue SET_STACK, restore), 64 calls
    /// into an empty ring on a fresh page; the `Lguest` is made inside the timed part.
    #[divan::bench(sample_size = PAGES)]
    fn guest_lguest_load_sp0(b: Bencher) {
        let scratch = Scratch::new();
        b.counter(ItemsCount::new(RING_SIZE))
            .with_inputs(|| Box::new(LguestData::new()))
            .bench_local_refs(|page| {
                let g = Lguest::new(
                    black_box(&**page),
                    &scratch,
                    Recorder::default(),
                    NativeCpuid,
                    DirectMap::new(0, 0),
                );
                g.enter_lazy(LazyMode::Cpu);
                for i in 0..RING_SIZE as u64 {
                    black_box(g.load_sp0(black_box(0x10_0000 + (i << 4))));
                }
                debug_assert_eq!(g.transport().acc.get(), 0);
            });
    }
}
