//! The reference host call by call: the handshake, the tables, the stack, time and
//! interrupts, the ring, the page-table record, console and shutdown.

mod common;

use common::*;
use host_stubs::abi::host::{BadArgument, Violation};
use host_stubs::abi::numbers::*;
use host_stubs::abi::shared::{LguestData, RING_DONE, RING_SIZE, RingSlot};
use host_stubs::abi::types::{ShutdownKind, TsState};
use host_stubs::desc::Gate;
use host_stubs::host::{Delivery, Next, Stack};
use host_stubs::kill::{HostAccess, Kill, Origin, Shutdown, Stop};
use host_stubs::mmu::Fault;
use host_stubs::{Host, clock::ManualClock};
use paging::ADDR;

/// A present 64-bit gate of type `ty` for handler `offset`, as the guest encodes it.
fn gate(offset: u64, ty: u64) -> [u64; 2] {
    let g = guest::pic::encode_gate(offset, 0x10, ty as u8, 0);
    [g as u64, (g >> 64) as u64]
}

fn killed(r: Result<u64, Stop>) -> (Kill, Origin) {
    match r {
        Err(Stop::Killed(k)) => (k.reason, k.origin),
        other => panic!("expected a kill, got {other:?}"),
    }
}

#[test]
fn init_reads_the_guest_fields_and_writes_the_host_ones() {
    let (h, _) = booted();
    assert_eq!(h.shared_page(), Some(PAGE));
    assert_eq!(h.noirq(), NOIRQ);
    assert_eq!(h.kernel_address(), KERNEL);
    assert_eq!(h.pgdir(), BOOT_PGDIR);
    assert_eq!(field_u32(&h, LguestData::TSC_KHZ_OFFSET), TSC_KHZ);
    assert_eq!(field_u64(&h, LguestData::RESERVE_MEM_OFFSET), RESERVE_MEM);
    assert_eq!(field_u64(&h, LguestData::PGDIR_OFFSET), BOOT_PGDIR);
    assert_eq!(field_u64(&h, LguestData::TIME_SEC_OFFSET), WALL.sec);
    assert_eq!(field_u64(&h, LguestData::TIME_NSEC_OFFSET), WALL.nsec);
}

#[test]
fn init_refuses_a_bad_shared_page_and_writes_nothing() {
    let cases: [(usize, u64, &str); 4] = [
        (LguestData::SYSCALL_VEC_OFFSET, 0x81, "syscall_vec"),
        (LguestData::NOIRQ_END_OFFSET, NOIRQ.0 - 1, "noirq_end"),
        (
            LguestData::KERNEL_ADDRESS_OFFSET,
            0x0000_8000_0000_0000,
            "kernel_address",
        ),
        (
            LguestData::KERNEL_ADDRESS_OFFSET,
            0u64.wrapping_sub(RESERVE_MEM),
            "kernel_address",
        ),
    ];
    for (off, value, field) in cases {
        let (mut h, _) = host_with(MEM);
        if off == LguestData::SYSCALL_VEC_OFFSET {
            set_field_u32(&h, off, value as u32);
        } else {
            h.mem().write_u64(PAGE + off as u64, value).unwrap();
        }
        let (k, _) = killed(h.hypercall(LGUEST_INIT, [PAGE, 0, 0, 0]));
        assert!(
            matches!(k, Kill::BadSharedPage { field: f, value: v, .. } if f == field && v == value),
            "{k:?}"
        );
        assert_eq!(k.call(), Some(Hypercall::LguestInit));
        assert!(k.to_string().contains(field), "{k}");
        assert_eq!(field_u64(&h, LguestData::RESERVE_MEM_OFFSET), 0);
        assert_eq!(h.shared_page(), None);
    }
}

#[test]
fn calls_before_init_a_second_init_and_unknown_numbers_kill() {
    let (mut h, _) = host_with(MEM);
    let (k, origin) = killed(h.hypercall(HALT, [0; 4]));
    assert_eq!(
        k,
        Kill::BeforeInit {
            call: Hypercall::Halt
        }
    );
    assert_eq!(origin, Origin::Direct);
    assert_eq!(k.to_string(), "hypercall halt (10) before lguest_init");

    let (mut h, _) = booted();
    let (k, _) = killed(h.hypercall(LGUEST_INIT, [0x2000, 0, 0, 0]));
    assert_eq!(
        k,
        Kill::SecondInit {
            data: 0x2000,
            first: PAGE
        }
    );

    let (mut h, _) = booted();
    let (k, _) = killed(h.hypercall(3, [0; 4]));
    assert_eq!(k, Kill::UnknownHypercall { nr: 3 });
}

#[test]
fn spec_violations_name_the_call_argument_and_value() {
    let (mut h, _) = booted();
    let (k, _) = killed(h.hypercall(SET_PTE, [0x1001, KERNEL, 0, 0]));
    assert_eq!(
        k,
        Kill::BadArgument(BadArgument {
            call: Hypercall::SetPte,
            arg: "pgdir",
            index: 0,
            value: 0x1001,
            violation: Violation::Align { align: 4096 },
        })
    );
    assert!(k.to_string().contains("`pgdir` = 0x1001"), "{k}");
}

#[test]
fn handlers_called_directly_refuse_what_dispatch_refuses() {
    let ss = 0x18 | GUEST_PL;
    let cases: [(u64, [u64; ARG_REGS]); 10] = [
        (LGUEST_INIT, [PAGE + 4, 0, 0, 0]),
        (NEW_PGTABLE, [BOOT_PGDIR + 8, 0, 0, 0]),
        (LOAD_IDT_ENTRY, [IDT_ENTRIES, 0, 0, 0]),
        (LOAD_IDT_ENTRY, [u64::MAX, 0, 0, 0]),
        (SET_STACK, [ss, KERNEL + 0x4000, 0, 0]),
        (SET_STACK, [ss, KERNEL + 0x4000, MAX_STACK_PAGES + 1, 0]),
        (SET_STACK, [ss, KERNEL + 0x4008, 1, 0]),
        (LOAD_GDT_ENTRY, [GDT_ENTRIES, 0, 0, 0]),
        (LOAD_GDT_ENTRY, [1, 1 << 32, 0, 0]),
        (LOAD_GDT_ENTRY, [1, 0, u64::MAX, 0]),
    ];
    for (nr, args) in cases {
        let call = Hypercall::try_from(nr).unwrap();
        let (mut h, _) = booted();
        let (gdt, idt, stack) = (h.gdt().to_vec(), h.idt().to_vec(), h.stack());
        let (want, _) = killed(h.hypercall(nr, args));
        let Kill::BadArgument(b) = &want else {
            panic!("{call}: dispatch gave {want}")
        };
        assert_eq!(b.arg, call.arg_names()[b.index], "{want}");
        assert_eq!(b.value, args[b.index], "{want}");
        assert_eq!(
            (h.gdt(), h.idt(), h.stack()),
            (&gdt[..], &idt[..], stack),
            "{call}"
        );
    }
}

#[test]
fn idt_gates_are_fixed_up_ignored_or_refused() {
    let (mut h, _) = booted();
    let [lo, hi] = gate(0xffff_ffff_8100_0000, 0xe);
    h.hypercall(LOAD_IDT_ENTRY, [0x20, lo, hi, 0]).unwrap();
    let g = h.idt()[0x20];
    assert_eq!(g.offset(), 0xffff_ffff_8100_0000);
    assert_eq!(g.selector() & 3, GUEST_PL as u16);
    h.hypercall(LOAD_IDT_ENTRY, [TRAP_ENTRY, lo, hi, 0])
        .unwrap();
    assert_eq!(h.idt()[TRAP_ENTRY as usize], Gate::default());
    let (k, _) = killed(h.hypercall(LOAD_IDT_ENTRY, [IDT_ENTRIES, lo, hi, 0]));
    assert_eq!(k.arg(), Some("vector"));
}

#[test]
fn gdt_and_tls_entries_get_the_guest_privilege_level() {
    let (mut h, _) = booted();
    // 64-bit kernel code, DPL 0.
    h.hypercall(LOAD_GDT_ENTRY, [2, 0xffff, 0x00af_9a00, 0])
        .unwrap();
    assert_eq!(h.gdt()[2].dpl(), GUEST_PL as u32);
    // TLS: three descriptors in guest memory, the middle one not present.
    let tls = 0x3000;
    let descs: [u64; TLS_ENTRIES as usize] = [0x00cf_9200_0000_ffff, 0, 0x00cf_f200_0000_ffff];
    for (i, d) in descs.iter().enumerate() {
        h.mem().write_u64(tls + 8 * i as u64, *d).unwrap();
    }
    h.hypercall(LOAD_TLS, [tls, 0, 0, 0]).unwrap();
    let t = h.tls();
    assert_eq!(t.len(), TLS_ENTRIES as usize);
    assert_eq!(t[0].dpl(), GUEST_PL as u32);
    assert_eq!(t[1].raw(), 0);
    assert_eq!(t[2].dpl(), 3);
    assert_eq!(h.gdt()[TLS_FIRST as usize], t[0]);
}

#[test]
fn the_stack_is_checked_then_kept() {
    let (mut h, _) = booted();
    let ss = 0x18 | GUEST_PL;
    h.hypercall(SET_STACK, [ss, KERNEL + 0x8000, 2, 0]).unwrap();
    assert_eq!(
        h.stack(),
        Some(Stack {
            ss,
            sp: KERNEL + 0x8000,
            pages: 2
        })
    );
    let (k, _) = killed(h.hypercall(SET_STACK, [0x18, KERNEL, 1, 0]));
    assert_eq!(k, Kill::BadStackSegment { ss: 0x18 });

    let (mut h, _) = booted();
    let (k, _) = killed(h.hypercall(SET_STACK, [ss, 0x1000, 2, 0]));
    assert_eq!(
        k,
        Kill::BadStackPointer {
            sp: 0x1000,
            pages: 2
        }
    );

    let (mut h, _) = booted();
    let (k, _) = killed(h.hypercall(SET_STACK, [ss, 0x0000_8000_0000_0000, 1, 0]));
    assert_eq!((k.call(), k.arg()), (Some(Hypercall::SetStack), Some("sp")));
}

#[test]
fn ts_is_kept() {
    let (mut h, _) = booted();
    h.hypercall(TS, [TsState::Set.raw(), 0, 0, 0]).unwrap();
    assert_eq!(h.ts(), TsState::Set);
}

/// Unblocks line 0, enables interrupts, and installs a gate for vector 32.
fn ready_for_timer(h: &mut host_stubs::Host<host_stubs::clock::ManualClock>, ty: u64) {
    h.mem()
        .write_u64(PAGE + LguestData::BLOCKED_INTERRUPTS_OFFSET as u64, 0)
        .unwrap();
    set_field_u32(h, LguestData::IRQ_ENABLED_OFFSET, EFLAGS_IF as u32);
    let [lo, hi] = gate(0xffff_ffff_8100_0000, ty);
    h.hypercall(LOAD_IDT_ENTRY, [FIRST_EXTERNAL_VECTOR, lo, hi, 0])
        .unwrap();
}

#[test]
fn the_clock_event_fires_line_0_once_at_its_deadline() {
    let (mut h, clock) = booted();
    ready_for_timer(&mut h, 0xe);
    h.hypercall(SET_CLOCKEVENT, [5000, 0, 0, 0]).unwrap();
    assert_eq!(h.timer(), Some(5000));
    clock.set(4999);
    assert_eq!(h.next(0), Ok(Next::Run));
    clock.set(5000);
    let Ok(Next::Deliver(d)) = h.next(0) else {
        panic!("no delivery")
    };
    assert_eq!((d.line, d.vector), (0, FIRST_EXTERNAL_VECTOR as u8));
    assert_eq!(h.timer(), None);
    assert_eq!(h.pending_irqs(), 0);
    // An interrupt gate disables interrupts; the time was written.
    assert_eq!(field_u32(&h, LguestData::IRQ_ENABLED_OFFSET), 0);
    assert_eq!(
        field_u64(&h, LguestData::TIME_NSEC_OFFSET),
        WALL.nsec + 5000
    );
    assert_eq!(h.next(0), Ok(Next::Run));
}

#[test]
fn a_stopped_clock_never_fires() {
    let (mut h, clock) = booted();
    ready_for_timer(&mut h, 0xe);
    h.hypercall(SET_CLOCKEVENT, [5000, 0, 0, 0]).unwrap();
    h.hypercall(SET_CLOCKEVENT, [0, 0, 0, 0]).unwrap();
    clock.set(1_000_000);
    assert_eq!(h.next(0), Ok(Next::Run));
    assert_eq!(h.pending_irqs(), 0);
}

#[test]
fn halt_sleeps_until_the_timer_then_wakes_with_interrupts_enabled() {
    let (mut h, clock) = booted();
    ready_for_timer(&mut h, 0xf);
    set_field_u32(&h, LguestData::IRQ_ENABLED_OFFSET, 0);
    h.hypercall(SET_CLOCKEVENT, [1000, 0, 0, 0]).unwrap();
    h.hypercall(HALT, [0; 4]).unwrap();
    assert!(h.halted());
    assert_eq!(h.next(0), Ok(Next::Sleep { until: Some(1000) }));
    clock.advance(1000);
    let next = h.next(0).unwrap();
    assert!(
        matches!(next, Next::Deliver(Delivery { line: 0, .. })),
        "{next:?}"
    );
    assert!(!h.halted());
    // A trap gate leaves the interrupt flag HALT's wake-up set.
    assert_eq!(
        field_u32(&h, LguestData::IRQ_ENABLED_OFFSET),
        EFLAGS_IF as u32
    );
}

/// SET_CLOCKEVENT(u64::MAX) then HALT would sleep 584 years: a clock event beyond the
/// host's halt limit is no wake source, and the guest is killed when it halts on it (not
/// when it arms it: a computing guest may keep a far timer).
#[test]
fn a_halt_on_a_clock_event_beyond_the_limit_is_killed() {
    let (mut h, _) = booted();
    ready_for_timer(&mut h, 0xf);
    h.hypercall(SET_CLOCKEVENT, [u64::MAX, 0, 0, 0]).unwrap();
    assert_eq!(h.next(0), Ok(Next::Run), "armed far off, the guest runs on");
    h.hypercall(HALT, [0; 4]).unwrap();
    let limit_ms = host_stubs::host::DEFAULT_MAX_HALT_NS / 1_000_000;
    let (k, origin) = killed(h.next(0).map(|_| 0));
    assert_eq!(
        k,
        Kill::HaltedTooLong {
            due_ns: u64::MAX,
            limit_ms
        }
    );
    assert_eq!(origin, Origin::Entry);
    // Within the limit it is an ordinary sleep.
    let (mut h, _) = booted();
    ready_for_timer(&mut h, 0xf);
    let max = host_stubs::host::DEFAULT_MAX_HALT_NS;
    h.hypercall(SET_CLOCKEVENT, [max, 0, 0, 0]).unwrap();
    h.hypercall(HALT, [0; 4]).unwrap();
    assert!(matches!(h.next(0), Ok(Next::Sleep { until: Some(_) })));
}

#[test]
fn interrupts_wait_while_blocked_disabled_or_in_the_noirq_window() {
    let (mut h, _) = booted();
    ready_for_timer(&mut h, 0xe);
    h.raise_irq(0).unwrap();
    assert_eq!(h.next(NOIRQ.0), Ok(Next::Run));
    set_field_u32(&h, LguestData::IRQ_ENABLED_OFFSET, 0);
    assert_eq!(h.next(0), Ok(Next::Run));
    set_field_u32(&h, LguestData::IRQ_ENABLED_OFFSET, EFLAGS_IF as u32);
    h.mem()
        .write_u64(PAGE + LguestData::BLOCKED_INTERRUPTS_OFFSET as u64, 1)
        .unwrap();
    assert_eq!(h.next(0), Ok(Next::Run));
    assert_eq!(h.pending_irqs(), 1, "still pending");
    h.mem()
        .write_u64(PAGE + LguestData::BLOCKED_INTERRUPTS_OFFSET as u64, 0)
        .unwrap();
    assert!(matches!(h.next(NOIRQ.1), Ok(Next::Deliver(_))));
    assert!(h.raise_irq(IRQS as u32).is_err());
}

#[test]
fn a_synchronous_call_drains_the_ring_first_in_order() {
    let (mut h, _) = booted();
    queue(h.mem(), 0, TS, [TsState::Set.raw(), 0, 0]);
    queue(h.mem(), 1, SET_STACK, [0x18 | GUEST_PL, KERNEL + 0x4000, 1]);
    h.hypercall(FLUSH_ASYNC, [0; 4]).unwrap();
    let seq: Vec<_> = h.calls().iter().map(|c| (c.nr, c.origin)).collect();
    assert_eq!(
        seq,
        [
            (LGUEST_INIT, Origin::Direct),
            (TS, Origin::Ring(0)),
            (SET_STACK, Origin::Ring(1)),
            (FLUSH_ASYNC, Origin::Direct)
        ]
    );
    assert_eq!(
        (status(h.mem(), 0), status(h.mem(), 1)),
        (RING_DONE, RING_DONE)
    );
    assert_eq!(h.ring_cursor(), 2);
    assert_eq!(h.ts(), TsState::Set);
}

#[test]
fn the_ring_walk_stops_after_a_notify() {
    let (mut h, _) = booted();
    h.mem().write(0x5000, b"hi\0").unwrap();
    queue(h.mem(), 0, NOTIFY, [0x5000, 0, 0]);
    queue(h.mem(), 1, TS, [TsState::Set.raw(), 0, 0]);
    let d = h.drain_ring().unwrap();
    assert_eq!((d.ran, d.notify), (1, Some(0x5000)));
    assert_eq!(h.ts(), TsState::Clear, "slot 1 not run yet");
    assert_eq!(h.console(), "hi");
    // The next exit carries on from slot 1.
    h.hypercall(FLUSH_ASYNC, [0; 4]).unwrap();
    assert_eq!(h.ts(), TsState::Set);
}

#[test]
fn the_ring_wraps_around() {
    let (mut h, _) = booted();
    for round in 0..3u64 {
        for i in 0..40 {
            let slot = (round as usize * 40 + i) % RING_SIZE;
            queue(h.mem(), slot, TS, [if i % 2 == 0 { 8 } else { 0 }, 0, 0]);
        }
        h.hypercall(FLUSH_ASYNC, [0; 4]).unwrap();
        assert_eq!(h.ring_cursor(), (round as usize + 1) * 40 % RING_SIZE);
    }
}

#[test]
fn a_kill_in_the_ring_names_its_slot_and_stops_the_walk() {
    let (mut h, _) = booted();
    queue(h.mem(), 0, TS, [TsState::Set.raw(), 0, 0]);
    queue(h.mem(), 1, FLUSH_TLB, [7, 0, 0]);
    queue(h.mem(), 2, TS, [TsState::Clear.raw(), 0, 0]);
    let (k, origin) = killed(h.hypercall(HALT, [0; 4]));
    assert_eq!(origin, Origin::Ring(1));
    assert_eq!(
        (k.call(), k.arg()),
        (Some(Hypercall::FlushTlb), Some("scope"))
    );
    assert_eq!(h.ts(), TsState::Set, "slot 2 never ran");
    assert!(!h.halted(), "the synchronous call never ran");
}

#[test]
fn set_pte_updates_the_shadow_and_refuses_frames_outside_memory() {
    let (mut h, _) = booted();
    let mut t = Tables { next: 0x20_000 };
    let pgdir = t.alloc(h.mem());
    h.hypercall(NEW_PGTABLE, [pgdir, 0, 0, 0]).unwrap();
    let user = 0x40_0000;
    t.map(h.mem(), pgdir, user, 0x7000 | LEAF);
    // Nothing is shadowed until the guest touches the page.
    h.hypercall(SET_PTE, [pgdir, user, 0x7000 | LEAF, 0])
        .unwrap();
    assert_eq!(h.shadow().lookup(pgdir, user), None);
    assert_eq!(h.demand_page(user + 0x123, 0).unwrap(), Fault::Filled);
    let frame = |h: &Host<ManualClock>| h.shadow().lookup(pgdir, user).map(|e| e & ADDR);
    assert_eq!(frame(&h), Some(0x7000));
    // Now SET_PTE is what changes it: a new frame, then flush_tlb_single's 0.
    t.map(h.mem(), pgdir, user, 0x8000 | LEAF);
    h.hypercall(SET_PTE, [pgdir, user, 0x8000 | LEAF, 0])
        .unwrap();
    assert_eq!(frame(&h), Some(0x8000));
    h.hypercall(SET_PTE, [pgdir, user, 0, 0]).unwrap();
    assert_eq!(frame(&h), None);
    // A frame outside memory is refused.
    let (k, _) = killed(h.hypercall(SET_PTE, [pgdir, user, MEM | LEAF, 0]));
    assert_eq!(
        k,
        Kill::BadPte {
            vaddr: user,
            pte: MEM | LEAF
        }
    );
}

#[test]
fn kernel_mappings_reach_every_table_and_set_pmd_drops_below_its_entry() {
    let (mut h, _) = booted();
    let mut t = Tables { next: 0x20_000 };
    let (a, b) = (t.alloc(h.mem()), t.alloc(h.mem()));
    let kpage = KERNEL + 0x20_0000;
    let pt = t.map(h.mem(), a, kpage, 0x9000 | LEAF);
    // Table b shares a's kernel half, as every address space does.
    let kslot = ((KERNEL >> 39) & 511) * 8;
    let pml4e = h.mem().read_u64(a + kslot).unwrap();
    h.mem().write_u64(b + kslot, pml4e).unwrap();
    for pgdir in [b, a] {
        h.hypercall(NEW_PGTABLE, [pgdir, 0, 0, 0]).unwrap();
        assert_eq!(h.demand_page(kpage, 0).unwrap(), Fault::Filled);
    }
    h.hypercall(SET_PTE, [a, kpage, 0xa000 | LEAF, 0]).unwrap();
    for pgdir in [a, b] {
        assert_eq!(
            h.shadow().lookup(pgdir, kpage).map(|e| e & ADDR),
            Some(0xa000)
        );
    }
    // The PD entry above `pt` changes: everything below it goes, in both shadows of it.
    let pd_index = (kpage >> 21) & 511;
    let pdpt = h.mem().read_u64(a + kslot).unwrap() & ADDR;
    let pd = h.mem().read_u64(pdpt + ((kpage >> 30) & 511) * 8).unwrap() & ADDR;
    assert_eq!(h.mem().read_u64(pd + pd_index * 8).unwrap() & ADDR, pt);
    h.hypercall(SET_PMD, [pd, pd_index, 0, 0]).unwrap();
    assert_eq!(h.shadow().lookup(a, kpage), None);
    assert_eq!(h.shadow().lookup(b, kpage), None);
}

/// The seed's hypercalls are what keeps the guest's view right: an entry changed without
/// SET_PTE stays as the shadow had it until a flush drops the shadow.
#[test]
fn a_missing_set_pte_leaves_a_stale_mapping_until_a_flush() {
    let (mut h, _) = booted();
    let mut t = Tables { next: 0x20_000 };
    let pgdir = t.alloc(h.mem());
    h.hypercall(NEW_PGTABLE, [pgdir, 0, 0, 0]).unwrap();
    t.map(h.mem(), pgdir, 0x1000, 0x5000 | LEAF);
    h.demand_page(0x1000, 0).unwrap();
    // The guest changes the entry without telling (native set_pte).
    t.map(h.mem(), pgdir, 0x1000, 0x6000 | LEAF);
    let frame = |h: &Host<ManualClock>| h.shadow().lookup(pgdir, 0x1000).map(|e| e & ADDR);
    assert_eq!(frame(&h), Some(0x5000), "stale");
    h.hypercall(FLUSH_TLB, [0, 0, 0, 0]).unwrap();
    assert_eq!(frame(&h), None, "dropped, not re-read");
    h.demand_page(0x1000, 0).unwrap();
    assert_eq!(frame(&h), Some(0x6000));
    assert_eq!(h.flushes(), [1, 0]);
}

#[test]
fn at_most_four_tables_have_a_shadow() {
    let (mut h, _) = booted();
    for i in 0..6u64 {
        h.hypercall(NEW_PGTABLE, [0x20_000 + i * PAGE_SIZE, 0, 0, 0])
            .unwrap();
    }
    let mut roots: Vec<_> = h.shadow().roots().collect();
    roots.sort_unstable();
    assert_eq!(roots, [0x22_000, 0x23_000, 0x24_000, 0x25_000]);
    assert_eq!(h.pgdir(), 0x25_000);
    assert_eq!(h.shadow().gpgdir(), 0x25_000);
}

#[test]
fn a_page_fault_fills_reflects_or_kills_naming_the_entry() {
    let (mut h, _) = booted();
    let mut t = Tables { next: 0x20_000 };
    let pgdir = t.alloc(h.mem());
    h.hypercall(NEW_PGTABLE, [pgdir, 0, 0, 0]).unwrap();
    assert_eq!(h.demand_page(0x3000, 0).unwrap(), Fault::Reflect);
    let pt = t.map(h.mem(), pgdir, 0x3000, MEM | LEAF);
    h.demand_page(0x3000, 0).unwrap_err();
    let Some(Kill::BadPageTable { vaddr, bad, .. }) = h
        .stopped()
        .and_then(|s| s.killed())
        .map(|k| k.reason.clone())
    else {
        panic!("{:?}", h.stopped());
    };
    assert_eq!(
        (vaddr, bad.table, bad.index, bad.entry),
        (0x3000, pt, 3, MEM | LEAF)
    );
}

#[test]
fn console_text_is_read_bounded_and_addresses_are_checked() {
    let (mut h, _) = booted();
    // The longest text: NOTIFY_MAX bytes with its NUL.
    h.mem().write(0x5000, b"0123456789abcde\0XYZ").unwrap();
    h.hypercall(NOTIFY, [0x5000, 0, 0, 0]).unwrap();
    assert_eq!(h.console(), "0123456789abcde");
    assert_eq!(h.console().len(), NOTIFY_MAX as usize - 1);
    // A string that ends right at the end of memory: read up to the end, no further.
    h.mem().write(MEM - 4, b"end\0").unwrap();
    h.hypercall(NOTIFY, [MEM - 4, 0, 0, 0]).unwrap();
    assert!(h.console().ends_with("end"));
    assert_eq!(h.notifications(), [0x5000, MEM - 4]);
    let (k, _) = killed(h.hypercall(NOTIFY, [MEM, 0, 0, 0]));
    assert_eq!((k.call(), k.arg()), (Some(Hypercall::Notify), Some("addr")));
    assert!(
        matches!(
            k,
            Kill::OutsideMemory {
                value: MEM,
                len: 1,
                ..
            }
        ),
        "{k}"
    );
}

/// NOTIFY's text must end within `NOTIFY_MAX` bytes, and before the end of memory: the
/// original forced a NUL into what it read, here the kill says which it was.
#[test]
fn console_text_without_its_nul_kills_naming_what_is_missing() {
    let (mut h, _) = booted();
    h.mem().write(0x5000, b"0123456789abcdefXYZ\0").unwrap();
    let (k, _) = killed(h.hypercall(NOTIFY, [0x5000, 0, 0, 0]));
    assert_eq!(
        k.to_string(),
        format!(
            "hypercall notify (17): argument `addr` at 0x5000: not NUL-terminated within {} bytes",
            NOTIFY_MAX - 1
        )
    );
    assert_eq!(h.console(), "");
    assert!(h.notifications().is_empty());
    let (mut h, _) = booted();
    h.mem().write(MEM - 3, b"end").unwrap();
    let (k, _) = killed(h.hypercall(NOTIFY, [MEM - 3, 0, 0, 0]));
    assert_eq!(
        k.to_string(),
        format!(
            "hypercall notify (17): argument `addr` at {:#x}: 1 bytes at {MEM:#x} are outside guest memory",
            MEM - 3
        )
    );
}

#[test]
fn shutdown_ends_the_run_with_its_reason() {
    let (mut h, _) = booted();
    h.mem().write(0x5000, b"Power down\0").unwrap();
    let r = h.hypercall(SHUTDOWN, [0x5000, ShutdownKind::Poweroff.raw(), 0, 0]);
    let want = Stop::Shutdown(Shutdown {
        kind: ShutdownKind::Poweroff,
        reason: "Power down".into(),
    });
    assert_eq!(r, Err(want.clone()));
    assert_eq!(h.hypercall(HALT, [0; 4]), Err(want.clone()));
    assert_eq!(h.next(0), Err(want));
    assert!(!h.halted());
}

/// A reason with no NUL within `SHUTDOWN_REASON_MAX` bytes is no reason: the guest is
/// killed, not restarted (the original cut it at a NUL it forced, and restarted).
#[test]
fn a_reason_with_no_nul_in_reach_kills_instead_of_restarting() {
    let (mut h, _) = booted();
    h.mem().write(0x5000, &[b'x'; 300]).unwrap();
    let (k, origin) = killed(h.hypercall(SHUTDOWN, [0x5000, ShutdownKind::Restart.raw(), 0, 0]));
    assert_eq!(origin, Origin::Direct);
    assert_eq!(
        (k.call(), k.arg()),
        (Some(Hypercall::Shutdown), Some("reason"))
    );
    assert!(
        k.to_string().ends_with(&format!(
            "not NUL-terminated within {} bytes",
            SHUTDOWN_REASON_MAX - 1
        )),
        "{k}"
    );
}

/// The kill for a shared-page access the host made on its own, and where it happened.
fn page_kill(r: Result<impl std::fmt::Debug, Stop>) -> (Kill, Origin) {
    match r {
        Err(Stop::Killed(k)) => {
            assert_eq!((k.reason.call(), k.reason.arg()), (None, None), "{k}");
            assert!(!k.to_string().contains("lguest_init"), "{k}");
            (k.reason, k.origin)
        }
        other => panic!("expected a kill, got {other:?}"),
    }
}

/// Once INIT has checked the page only a VMM that withdraws part of it can make a shared-page
/// access fail; the kill then says what the host was doing and which field it touched, not
/// the INIT that passed long ago. Draining the ring: a slot's call, then a status byte.
#[test]
fn a_failed_ring_drain_is_named_as_the_drain_of_its_slot() {
    let slot_at = |slot: usize| PAGE + (LguestData::HCALLS_OFFSET + slot * RingSlot::SIZE) as u64;
    let (mut h, _) = booted();
    queue(h.mem(), 0, TS, [TsState::Set.raw(), 0, 0]);
    queue(h.mem(), 1, TS, [TsState::Set.raw(), 0, 0]);
    h.mem().withdraw(slot_at(1), RingSlot::SIZE as u64).unwrap();
    let (k, origin) = page_kill(h.hypercall(HALT, [0; 4]));
    assert_eq!(
        k,
        Kill::SharedPage {
            during: HostAccess::RingDrain { slot: 1 },
            field: "hcalls",
            gpa: slot_at(1) + RingSlot::ARGS_OFFSET as u64,
            len: 8,
            size: MEM,
        }
    );
    assert_eq!(origin, Origin::Ring(1));
    assert!(k.to_string().contains("draining async ring slot 1"), "{k}");
    // Slot 0 ran; the synchronous call after the ring did not.
    assert_eq!((h.ts(), h.halted()), (TsState::Set, false));

    let status_at = PAGE + (LguestData::HCALL_STATUS_OFFSET + 2) as u64;
    let (mut h, _) = booted();
    for slot in 0..2 {
        queue(h.mem(), slot, TS, [TsState::Set.raw(), 0, 0]);
    }
    h.hypercall(FLUSH_ASYNC, [0; 4]).unwrap();
    h.mem().withdraw(status_at, 1).unwrap();
    let (k, origin) = page_kill(h.drain_ring());
    assert_eq!(
        k,
        Kill::SharedPage {
            during: HostAccess::RingDrain { slot: 2 },
            field: "hcall_status",
            gpa: status_at,
            len: 1,
            size: MEM,
        }
    );
    assert_eq!(origin, Origin::Ring(2));
}

/// Before a guest entry: writing the time for a delivery, and reading the guest's interrupt
/// state, are each named as such. (Waking and delivering write `irq_enabled`, which the
/// host has just read, so a withdrawn `irq_enabled` is always reported as the read.)
#[test]
fn failed_accesses_before_a_guest_entry_name_what_the_host_was_doing() {
    let field = |off: usize| PAGE + off as u64;
    // The time, written before the timer interrupt is delivered.
    let (mut h, clock) = booted();
    ready_for_timer(&mut h, 0xe);
    h.hypercall(SET_CLOCKEVENT, [5000, 0, 0, 0]).unwrap();
    clock.set(5000);
    h.mem()
        .withdraw(field(LguestData::TIME_SEC_OFFSET), 8)
        .unwrap();
    let (k, origin) = page_kill(h.next(0));
    assert_eq!(
        k,
        Kill::SharedPage {
            during: HostAccess::WriteTime,
            field: "time_sec",
            gpa: field(LguestData::TIME_SEC_OFFSET),
            len: 8,
            size: MEM,
        }
    );
    assert_eq!(origin, Origin::Entry);
    assert!(k.to_string().contains("writing the time"), "{k}");

    // Deciding: the guest's mask can no longer be read.
    let (mut h, _) = booted();
    h.mem()
        .withdraw(field(LguestData::BLOCKED_INTERRUPTS_OFFSET), 8)
        .unwrap();
    let (k, _) = page_kill(h.next(0));
    assert!(
        matches!(
            k,
            Kill::SharedPage {
                during: HostAccess::InterruptState,
                field: "blocked_interrupts",
                ..
            }
        ),
        "{k}"
    );
}
