//! One test per bug of the original host (lguest.md §7 "Pitfalls" and the per-call notes),
//! each showing it cannot happen here.

mod common;

use common::*;
use host_stubs::abi::guest::LguestHypercalls;
use host_stubs::abi::host::{BadMemory, MemViolation};
use host_stubs::abi::lazy::{Batch, LguestLazyHypercalls, RingCursor, Sent};
use host_stubs::abi::numbers::*;
use host_stubs::abi::shared::{LguestData, RING_DONE, RING_SIZE};
use host_stubs::abi::types::{ShutdownKind, TsState};
use host_stubs::desc::Gate;
use host_stubs::host::{Next, Stack};
use host_stubs::kill::{Kill, Origin, Stop};
use host_stubs::loopback::Loopback;

fn reason(h: &host_stubs::Host<host_stubs::clock::ManualClock>) -> Kill {
    match h.stopped() {
        Some(Stop::Killed(k)) => k.reason.clone(),
        other => panic!("expected a kill, got {other:?}"),
    }
}

/// 2.6.32's `load_guest_gdt_entry` killed the guest for `num >= GDT_ENTRIES`, then wrote
/// the entry past the end of the table anyway.
#[test]
fn gdt_index_past_the_table_kills_and_writes_nothing() {
    let (mut h, _) = booted();
    let before = h.gdt().to_vec();
    h.hypercall(LOAD_GDT_ENTRY, [GDT_ENTRIES, 0xffff, 0x00af_9a00, 0])
        .unwrap_err();
    let k = reason(&h);
    assert_eq!(
        (k.call(), k.arg()),
        (Some(Hypercall::LoadGdtEntry), Some("index"))
    );
    assert!(k.to_string().contains(&format!("{GDT_ENTRIES:#x}")), "{k}");
    assert_eq!(h.gdt(), &before[..]);
    assert_eq!(h.gdt().len(), GDT_ENTRIES as usize);
}

/// `set_trap` killed the guest for a bad gate type but stored the gate anyway.
#[test]
fn a_bad_gate_is_not_stored() {
    let (mut h, _) = booted();
    // A present call gate (type 0xc) at vector 0x40.
    let lo = (0x10 << 16) | (0xc << 40) | (1 << 47);
    h.hypercall(LOAD_IDT_ENTRY, [0x40, lo, 0, 0]).unwrap_err();
    assert_eq!(
        reason(&h),
        Kill::BadGate {
            vector: 0x40,
            lo,
            gate_type: 0xc
        }
    );
    assert_eq!(h.idt()[0x40], Gate::default());
}

/// `guest_set_stack` killed the guest for a bad ss or page count but stored them anyway.
#[test]
fn a_bad_stack_is_not_stored() {
    let (mut h, _) = booted();
    let good = Stack {
        ss: 0x18 | GUEST_PL,
        sp: KERNEL + 0x4000,
        pages: 1,
    };
    h.hypercall(SET_STACK, [good.ss, good.sp, good.pages, 0])
        .unwrap();
    h.hypercall(SET_STACK, [0x18, KERNEL + 0x8000, 2, 0])
        .unwrap_err();
    assert_eq!(reason(&h), Kill::BadStackSegment { ss: 0x18 });
    assert_eq!(h.stack(), Some(good));

    let (mut h, _) = booted();
    h.hypercall(SET_STACK, [0x18 | GUEST_PL, KERNEL, MAX_STACK_PAGES + 1, 0])
        .unwrap_err();
    assert_eq!(reason(&h).arg(), Some("pages"));
    assert_eq!(h.stack(), None);
}

/// `initialize()` carried on after a bad `lguest_data` address.
#[test]
fn a_bad_shared_page_address_stops_everything() {
    let (mut h, _) = host_with(MEM);
    let data = MEM - LguestData::SIZE as u64 + 8;
    h.hypercall(LGUEST_INIT, [data, 0, 0, 0]).unwrap_err();
    assert_eq!(
        reason(&h),
        Kill::OutsideMemory {
            call: Hypercall::LguestInit,
            arg: "data",
            value: data,
            len: LguestData::SIZE as u64,
            size: MEM
        }
    );
    assert_eq!(h.shared_page(), None);
    assert_eq!(h.mem().read_u64(MEM - 8).unwrap(), 0, "nothing written");
    // Nothing runs afterwards, not even a good INIT.
    let stop = h.hypercall(LGUEST_INIT, [PAGE, 0, 0, 0]).unwrap_err();
    assert_eq!(stop.killed().unwrap().reason, reason(&h));
    assert_eq!(h.shared_page(), None);
}

/// A shared page that ends exactly at the end of memory is fine: the original's
/// `lguest_address_ok` used a strict `<` and refused it.
#[test]
fn a_shared_page_ending_at_the_end_of_memory_is_fine() {
    let size = 0x4000;
    let (mut h, _) = host_with(size);
    let data = size - LguestData::SIZE as u64;
    let data = data & !7;
    setup_page(h.mem(), data);
    h.hypercall(LGUEST_INIT, [data, 0, 0, 0]).unwrap();
    assert_eq!(h.shared_page(), Some(data));
}

/// `kvm_hypercall0` left `%ebx` stale, so a "stop the clock" SET_CLOCKEVENT armed a timer
/// with whatever was there. The generated guest side loads 0 into every unused register,
/// and the host reads only the registers a call defines.
#[test]
fn unused_registers_are_zero_and_never_read() {
    let (h, clock) = booted();
    let guest = Loopback::new(h);
    guest.set_clockevent(5000);
    assert_eq!(guest.host().timer(), Some(5000));
    guest.set_clockevent(0);
    assert_eq!(guest.host().timer(), None);
    guest.flush_async();
    guest.halt();
    for c in &guest.host().calls()[1..] {
        let used = c.call().unwrap().arg_count();
        assert!(c.args[used..].iter().all(|&a| a == 0), "{c:?}");
    }
    // A guest that leaves junk in the unused registers still stops the clock.
    let mut h = guest.into_host();
    h.hypercall(SET_CLOCKEVENT, [7000, 0, 0, 0]).unwrap();
    h.hypercall(SET_CLOCKEVENT, [0, 0xdead, 0xbeef, 0x1234])
        .unwrap();
    clock.advance(1 << 40);
    assert_eq!(h.timer(), None);
    assert_eq!(h.pending_irqs(), 0);
}

/// SHUTDOWN always read 128 bytes, so a reason within 128 bytes of the end of memory
/// killed the guest with a read error instead of shutting it down.
#[test]
fn a_shutdown_reason_near_the_end_of_memory_works() {
    for kind in ShutdownKind::ALL {
        let (mut h, _) = booted();
        h.mem().write(MEM - 11, b"Power down\0").unwrap();
        let stop = h
            .hypercall(SHUTDOWN, [MEM - 11, kind.raw(), 0, 0])
            .unwrap_err();
        let Stop::Shutdown(s) = stop else {
            panic!("{stop:?}")
        };
        assert_eq!((s.kind, s.reason.as_str()), (kind, "Power down"));
    }
    // With no NUL before the end the reason is not a string: a kill that says where the
    // string ran out of memory (the original forced a NUL into what it read, when the read
    // did not fail).
    let (mut h, _) = booted();
    h.mem().write(MEM - 3, b"abc").unwrap();
    h.hypercall(SHUTDOWN, [MEM - 3, 1, 0, 0]).unwrap_err();
    assert_eq!(
        reason(&h),
        Kill::BadMemory(BadMemory {
            call: Hypercall::Shutdown,
            arg: "reason",
            addr: MEM - 3,
            violation: MemViolation::Outside { addr: MEM, len: 1 },
        })
    );
}

/// The original read a fixed 128 bytes and forced a NUL at the last: a reason of any length
/// shut the guest down, cut short. The spec now says the reason's NUL is within
/// `SHUTDOWN_REASON_MAX` bytes, and the generated decode holds the guest to it.
#[test]
fn a_shutdown_reason_longer_than_its_maximum_kills_naming_it() {
    let max = SHUTDOWN_REASON_MAX as usize;
    // The longest accepted: max - 1 bytes and the NUL.
    let (mut h, _) = booted();
    let mut text = vec![b'x'; max - 1];
    text.push(0);
    h.mem().write(0x5000, &text).unwrap();
    let Err(Stop::Shutdown(s)) = h.hypercall(SHUTDOWN, [0x5000, 1, 0, 0]) else {
        panic!("{:?}", h.stopped())
    };
    assert_eq!(s.reason.len(), max - 1);
    // One more byte before the NUL.
    let (mut h, _) = booted();
    let mut text = vec![b'x'; max];
    text.push(0);
    h.mem().write(0x5000, &text).unwrap();
    h.hypercall(SHUTDOWN, [0x5000, 1, 0, 0]).unwrap_err();
    let k = reason(&h);
    assert_eq!(
        k,
        Kill::BadMemory(BadMemory {
            call: Hypercall::Shutdown,
            arg: "reason",
            addr: 0x5000,
            violation: MemViolation::NoNul {
                max: SHUTDOWN_REASON_MAX - 1
            },
        })
    );
    assert_eq!(
        k.to_string(),
        "hypercall shutdown (2): argument `reason` at 0x5000: not NUL-terminated within 127 bytes"
    );
}

/// A RESTART whose reason could not be read still restarted the guest: the restart
/// overwrote the kill. Here the first stop stands: a bad reason kills, full stop.
#[test]
fn a_restart_with_a_bad_reason_is_a_kill_not_a_restart() {
    let (mut h, _) = booted();
    let stop = h
        .hypercall(SHUTDOWN, [MEM, ShutdownKind::Restart.raw(), 0, 0])
        .unwrap_err();
    let k = stop.killed().expect("a kill");
    assert_eq!(
        (k.reason.call(), k.reason.arg()),
        (Some(Hypercall::Shutdown), Some("reason"))
    );
}

/// `kill_guest` kept only the first message, but the guest was not stopped at once, so
/// later calls ran (and could kill again, their messages lost). Here nothing runs after
/// the first kill, which stays the reason.
#[test]
fn nothing_runs_after_the_first_kill() {
    let (mut h, _) = booted();
    h.hypercall(99, [0; 4]).unwrap_err();
    let first = h.stopped().cloned().unwrap();
    assert_eq!(reason(&h), Kill::UnknownHypercall { nr: 99 });
    assert_eq!(
        h.hypercall(TS, [TsState::Set.raw(), 0, 0, 0]),
        Err(first.clone())
    );
    assert_eq!(h.hypercall(HALT, [0; 4]), Err(first.clone()));
    assert_eq!(h.ts(), TsState::Clear);
    assert!(!h.halted());
    assert_eq!(h.stopped(), Some(&first));
    assert_eq!(h.next(0), Err(first.clone()));
    assert_eq!(h.drain_ring(), Err(first));
}

/// LOAD_TLS zero-filled the TLS entries when the read failed.
#[test]
fn a_failed_tls_read_leaves_the_tls_alone() {
    let (mut h, _) = booted();
    let tls = 0x3000;
    h.mem().write_u64(tls, 0x00cf_9200_0000_ffff).unwrap();
    h.hypercall(LOAD_TLS, [tls, 0, 0, 0]).unwrap();
    let before = h.tls().to_vec();
    h.hypercall(LOAD_TLS, [MEM - 16, 0, 0, 0]).unwrap_err();
    assert_eq!(reason(&h).arg(), Some("tls"));
    assert_eq!(h.tls(), &before[..]);
}

/// A LOAD_TLS queued in the ring is decoded when the ring is drained, by the same generated
/// decode as a direct one: it reads the descriptors as they are then (why the guest's lazy
/// wrapper is `unsafe`), and one outside guest memory kills naming the argument and slot.
#[test]
fn a_queued_tls_load_reads_its_descriptors_when_the_ring_is_drained() {
    let (mut h, _) = booted();
    let tls = 0x3000;
    let desc = 0x00cf_9200_0000_ffff;
    h.mem().write_u64(tls, desc).unwrap();
    h.hypercall(LOAD_TLS, [tls, 0, 0, 0]).unwrap();
    let direct = h.tls().to_vec();
    h.mem().write_u64(tls, 0).unwrap();
    h.hypercall(LOAD_TLS, [tls, 0, 0, 0]).unwrap();
    assert_ne!(h.tls(), &direct[..]);
    // Queued while the memory holds zeros, written before the drain: the drain sees `desc`.
    queue(h.mem(), 0, LOAD_TLS, [tls, 0, 0]);
    h.mem().write_u64(tls, desc).unwrap();
    h.hypercall(FLUSH_ASYNC, [0; 4]).unwrap();
    assert_eq!(h.tls(), &direct[..]);
    queue(h.mem(), 1, LOAD_TLS, [MEM - 16, 0, 0]);
    let stop = h.hypercall(FLUSH_ASYNC, [0; 4]).unwrap_err();
    let k = stop.killed().unwrap();
    assert_eq!(k.origin, Origin::Ring(1));
    assert_eq!(k.reason.arg(), Some("tls"));
    assert_eq!(h.tls(), &direct[..]);
}

/// The original's ring treated any status byte but 0xff as ready.
#[test]
fn a_garbage_status_byte_kills_naming_the_slot() {
    let (mut h, _) = booted();
    put_slot(h.mem(), 0, TS, [8, 0, 0], 0x42);
    let stop = h.hypercall(FLUSH_ASYNC, [0; 4]).unwrap_err();
    let k = stop.killed().unwrap();
    assert_eq!(
        k.reason,
        Kill::RingStatus {
            slot: 0,
            value: 0x42
        }
    );
    assert_eq!(k.origin, Origin::Ring(0));
    assert_eq!(h.ts(), TsState::Clear);
}

/// One slot that is not ready blocked every later ready slot for ever, silently, and the
/// host's and guest's cursors had to stay in lockstep by luck. Here a stranded ready slot
/// is a clear kill...
#[test]
fn a_stranded_ready_slot_is_reported_not_left_waiting() {
    let (mut h, _) = booted();
    queue(h.mem(), 5, TS, [8, 0, 0]);
    let stop = h.hypercall(FLUSH_ASYNC, [0; 4]).unwrap_err();
    assert_eq!(
        stop.killed().unwrap().reason,
        Kill::RingOutOfStep { cursor: 0, slot: 5 }
    );
}

/// ...and the generated producer keeps the cursors in lockstep, including when the ring is
/// full and a call goes out directly (which drains the ring first, so order holds).
#[test]
fn guest_and_host_cursors_stay_in_lockstep() {
    let (h, _) = booted();
    let guest = Loopback::new(h);
    // SAFETY: the host lives in `guest` until the end of the test and its memory is
    // never moved or unmapped.
    let page = unsafe { shared_ref(&guest.host()) };
    let cursor = RingCursor::new();
    let batch = Batch {
        transport: &guest,
        page,
        cursor: &cursor,
        lazy: true,
    };
    for i in 0..RING_SIZE {
        assert_eq!(batch.ts(TsState::Set), Sent::Queued(i));
    }
    // Full: the next call is direct, and the host runs the 64 queued ones first.
    assert_eq!(batch.ts(TsState::Clear), Sent::Direct);
    assert_eq!(guest.host().ts(), TsState::Clear);
    assert_eq!(guest.host().ring_cursor(), cursor.slot());
    for i in 0..10 {
        assert_eq!(batch.ts(TsState::Set), Sent::Queued(i));
    }
    guest.flush_async();
    assert_eq!(guest.host().ring_cursor(), cursor.slot());
    assert!(
        page.hcall_status
            .iter()
            .all(|s| s.load(std::sync::atomic::Ordering::Relaxed) == RING_DONE)
    );
    assert_eq!(guest.host().stopped(), None);
}

/// A halted guest inside its no-interrupt window with an interrupt due: the original
/// neither delivered (window) nor slept (interrupt pending), and spun. Here it is woken.
#[test]
fn a_halted_guest_in_the_noirq_window_is_woken_not_spun() {
    let (mut h, _) = booted();
    h.mem()
        .write_u64(PAGE + LguestData::BLOCKED_INTERRUPTS_OFFSET as u64, 0)
        .unwrap();
    h.hypercall(HALT, [0; 4]).unwrap();
    h.raise_irq(3).unwrap();
    assert_eq!(h.next(NOIRQ.0), Ok(Next::Run));
    assert!(!h.halted());
    assert_eq!(
        field_u32(&h, LguestData::IRQ_ENABLED_OFFSET),
        EFLAGS_IF as u32
    );
    assert_eq!(
        h.pending_irqs(),
        1 << 3,
        "still pending for after the window"
    );
}

/// NOTIFY addresses were not checked by the host at all (only, later, by the Launcher).
#[test]
fn a_notify_outside_memory_kills() {
    let (mut h, _) = booted();
    h.hypercall(NOTIFY, [u64::MAX, 0, 0, 0]).unwrap_err();
    assert_eq!(
        reason(&h),
        Kill::OutsideMemory {
            call: Hypercall::Notify,
            arg: "addr",
            value: u64::MAX,
            len: 1,
            size: MEM
        }
    );
}

/// SET_PTE for an address in the host's reserved top of the address space (the
/// original's switcher pages) kills, as it should.
#[test]
fn the_reserved_top_of_the_address_space_is_refused() {
    let (mut h, _) = booted();
    let vaddr = 0u64.wrapping_sub(PAGE_SIZE);
    h.hypercall(SET_PTE, [BOOT_PGDIR, vaddr, 0, 0]).unwrap_err();
    assert!(matches!(
        reason(&h),
        Kill::BadVirtualAddress { call: Hypercall::SetPte, arg: "vaddr", value, .. } if value == vaddr
    ));
}

/// SHUTDOWN's `kind` was never checked: anything but a restart (2) powered the guest off,
/// so a garbled call still stopped it "cleanly". Here a kind that is neither power-off nor
/// restart kills, naming the call, the argument and the value, and is no shutdown.
#[test]
fn a_shutdown_kind_that_is_neither_poweroff_nor_restart_kills() {
    for kind in [0, 3, 0x102, u64::MAX] {
        assert_eq!(
            ShutdownKind::from_raw(kind),
            None,
            "{kind:#x} is a real kind"
        );
        let (mut h, _) = booted();
        h.mem().write(0x3000, b"Power down\0").unwrap();
        let stop = h.hypercall(SHUTDOWN, [0x3000, kind, 0, 0]).unwrap_err();
        let k = stop.killed().expect("a kill, not a shutdown");
        let Kill::BadArgument(b) = &k.reason else {
            panic!("{k}")
        };
        assert_eq!(
            (b.call, b.arg, b.value),
            (Hypercall::Shutdown, "kind", kind)
        );
        assert_eq!(b.arg, Hypercall::Shutdown.arg_names()[b.index]);
        let text = k.to_string();
        for part in ["shutdown", "`kind`", &format!("{kind:#x}")] {
            assert!(text.contains(part), "{part:?} missing from {text}");
        }
        assert_eq!(h.stopped(), Some(&stop));
    }
}

/// NEW_PGTABLE's address was taken on trust: the original switched to whatever the guest
/// named and only found out when it built a shadow from it. Here the table is checked when
/// the call comes, so the kill names `new_pgtable` and `pgdir`, and the host never switches.
#[test]
fn a_new_page_table_outside_guest_memory_kills_naming_it() {
    for pgdir in [MEM, MEM + PAGE_SIZE, !(PAGE_SIZE - 1)] {
        let (mut h, _) = booted();
        h.hypercall(NEW_PGTABLE, [pgdir, 0, 0, 0]).unwrap_err();
        assert_eq!(
            reason(&h),
            Kill::OutsideMemory {
                call: Hypercall::NewPgtable,
                arg: "pgdir",
                value: pgdir,
                len: PAGE_SIZE,
                size: MEM
            }
        );
        assert_eq!(h.pgdir(), BOOT_PGDIR);
        assert!(h.shadow().roots().all(|p| p != pgdir));
    }
    // The last page of memory is a fine table.
    let (mut h, _) = booted();
    h.hypercall(NEW_PGTABLE, [MEM - PAGE_SIZE, 0, 0, 0])
        .unwrap();
    assert_eq!(h.pgdir(), MEM - PAGE_SIZE);
}
