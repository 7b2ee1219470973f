//! For every function of the seed: the exact hypercalls (number, arguments, order, sync or
//! queued) the guest makes, against an in-process fake host.

mod common;

use std::sync::atomic::Ordering;

use common::{Call, HOST_PGDIR, HOST_TIME, HOST_TSC_KHZ, Recorded, Table, World, pa};
use guest::abi::lazy::Sent;
use guest::abi::numbers::*;
use guest::abi::types::{FlushScope, ShutdownKind, TsState};
use guest::pic::BadIrq;
use guest::time::{ClockEventError, ClockEventMode};
use x86::bits64::paging::{PDEntry, PML4Entry, PTEntry};
use x86::dtables::DescriptorTablePointer;
use x86::segmentation::Descriptor;

fn sync(nr: u64, args: [u64; 4]) -> Call {
    Call::sync(nr, args)
}

fn queued(nr: u64, args: [u64; 4]) -> Call {
    Call::queued(nr, args)
}

#[test]
fn lguest_init_fills_the_page_then_names_it_and_reads_the_hosts_answers() {
    let w = World::new();
    let lg = w.guest();
    lg.lguest_init(0xffff_8800_0000_0000, 0x1000..0x1010);
    assert_eq!(
        w.host.log(),
        vec![sync(LGUEST_INIT, [pa(&*w.page), 0, 0, 0])]
    );
    assert_eq!(
        w.page.kernel_address.load(Ordering::Relaxed),
        0xffff_8800_0000_0000
    );
    assert_eq!(w.page.noirq_start.load(Ordering::Relaxed), 0x1000);
    assert_eq!(w.page.noirq_end.load(Ordering::Relaxed), 0x1010);
    assert_eq!(
        w.page.syscall_vec.load(Ordering::Relaxed),
        SYSCALL_VECTOR as u32
    );
    // The answers the host wrote.
    assert_eq!(lg.reserve_mem(), RESERVE_MEM);
    assert_eq!(lg.tsc_khz(), u64::from(HOST_TSC_KHZ));
    assert_eq!(lg.get_wallclock(), HOST_TIME.0);
    assert_eq!(lg.clock_read(), HOST_TIME.0 * 1_000_000_000 + HOST_TIME.1);
    assert_eq!(lg.read_cr3(), HOST_PGDIR);
}

#[test]
fn interrupt_flag_ops_touch_only_the_shared_flag() {
    let w = World::new();
    let lg = w.guest();
    assert_eq!(lg.save_fl(), 0, "the page starts with interrupts off");
    lg.irq_enable();
    assert_eq!(w.page.irq_enabled.load(Ordering::Relaxed), EFLAGS_IF as u32);
    assert_eq!(lg.save_fl(), EFLAGS_IF);
    lg.irq_disable();
    assert_eq!(lg.save_fl(), 0);
    lg.restore_fl(EFLAGS_IF);
    assert_eq!(lg.save_fl(), EFLAGS_IF);
    // restore_fl stores the low 32 bits, as the popf template's `mov [..], edi` does.
    lg.restore_fl(0xdead_0000_0000_0000);
    assert_eq!(lg.save_fl(), 0);
    assert!(w.host.log().is_empty(), "no exits: {:?}", w.host.log());
}

#[test]
fn safe_halt_is_a_halt_hypercall() {
    let w = World::new();
    w.guest().safe_halt();
    assert_eq!(w.host.log(), vec![sync(HALT, [0; 4])]);
}

#[test]
fn write_idt_entry_updates_the_local_table_then_tells_the_host() {
    let w = World::new();
    let lg = w.guest();
    let mut idt = [0u128; 4];
    let gate = 0x0000_0000_ffff_ffff_8e00_0010_1234_5678_u128 | (0xffff_ffffu128 << 64);
    // SAFETY: `idt` has 4 writable gates.
    unsafe { lg.write_idt_entry(idt.as_mut_ptr(), 3, gate) };
    assert_eq!(idt[3], gate);
    assert_eq!(
        w.host.log(),
        vec![sync(
            LOAD_IDT_ENTRY,
            [3, gate as u64, (gate >> 64) as u64, 0]
        )]
    );
}

#[test]
fn load_idt_sends_every_entry_in_order() {
    let w = World::new();
    let lg = w.guest();
    let idt: Vec<u128> = (0..5u128).map(|i| (i << 64) | (0x100 + i)).collect();
    let desc = DescriptorTablePointer {
        limit: (5 * 16 - 1) as u16,
        base: idt.as_ptr(),
    };
    // SAFETY: the table holds the 5 gates `limit` describes.
    unsafe { lg.load_idt(&desc) };
    let want: Vec<Call> = (0..5u64)
        .map(|i| sync(LOAD_IDT_ENTRY, [i, 0x100 + i, i, 0]))
        .collect();
    assert_eq!(w.host.log(), want);
}

#[test]
fn load_gdt_and_write_gdt_entry_send_both_halves() {
    let w = World::new();
    let lg = w.guest();
    let mut gdt: Vec<Descriptor> = (0..4u32)
        .map(|i| Descriptor {
            lower: 0x1000 + i,
            upper: 0x2000 + i,
        })
        .collect();
    let desc = DescriptorTablePointer {
        limit: (4 * 8 - 1) as u16,
        base: gdt.as_ptr(),
    };
    // SAFETY: the table holds the 4 descriptors `limit` describes.
    unsafe { lg.load_gdt(&desc) };
    let new = Descriptor {
        lower: 0xaaaa,
        upper: 0x00cf_9a00,
    };
    // SAFETY: `gdt` has 4 writable entries.
    unsafe { lg.write_gdt_entry(gdt.as_mut_ptr(), 2, new) };
    assert_eq!({ gdt[2].lower }, 0xaaaa);
    let mut want: Vec<Call> = (0..4u64)
        .map(|i| sync(LOAD_GDT_ENTRY, [i, 0x1000 + i, 0x2000 + i, 0]))
        .collect();
    want.push(sync(LOAD_GDT_ENTRY, [2, 0xaaaa, 0x00cf_9a00, 0]));
    assert_eq!(w.host.log(), want);
}

#[test]
fn load_tls_hands_the_host_the_descriptors_in_place_lazily() {
    let w = World::new();
    let lg = w.guest();
    let tls = Box::new([Descriptor { lower: 1, upper: 2 }; 3]);
    // SAFETY: `tls` lives to the end of the test, past `unlend`.
    unsafe { common::lend(tls.as_ptr(), size_of_val(&*tls)) };
    // SAFETY: `tls` lives, unchanged, past the flush at `end_context_switch`.
    assert_eq!(unsafe { lg.load_tls(&tls, 0) }, Sent::Direct);
    lg.start_context_switch();
    // SAFETY: as above.
    assert_eq!(unsafe { lg.load_tls(&tls, 0) }, Sent::Queued(0));
    lg.end_context_switch();
    let at = pa(tls.as_ptr());
    assert_eq!(
        w.host.log(),
        vec![
            sync(LOAD_TLS, [at, 0, 0, 0]),
            queued(LOAD_TLS, [at, 0, 0, 0]),
            sync(FLUSH_ASYNC, [0; 4]),
        ]
    );
    // Both decoded from the array in place, the queued one when the ring was drained.
    let seen = w.host.host.lock().unwrap().seen.tls_loads.clone();
    assert_eq!(seen, vec![vec![(1, 2); 3]; 2]);
    common::unlend();
}

#[test]
fn do_nothing_ops_make_no_hypercalls() {
    let w = World::new();
    let lg = w.guest();
    lg.set_ldt(0x1000, 4);
    lg.load_tr_desc();
    lg.set_debugreg(7, 0x400);
    lg.wbinvd();
    lg.write_cr4(0xffff);
    assert_eq!(lg.read_cr4(), 0);
    assert_eq!(lg.apic_read(0x20), 0);
    lg.apic_write(0x20, 5);
    assert_eq!(lg.apic_icr_read(), 0);
    lg.apic_wait_icr_idle();
    assert_eq!(lg.apic_safe_wait_icr_idle(), 0);
    assert_eq!(lg.stray_icr_writes(), 0);
    lg.apic_icr_write(1, 2);
    assert_eq!(lg.stray_icr_writes(), 1, "a stray ICR write is reported");
    assert_eq!(lg.memory_setup(), "LGUEST");
    assert!(w.host.log().is_empty(), "{:?}", w.host.log());
}

#[test]
fn cr0_is_kept_locally_and_only_ts_reaches_the_host() {
    let w = World::new();
    let lg = w.guest();
    let cr0 = 0x8005_003b; // PG, WP, NE, ET, TS, MP, PE
    assert_eq!(lg.write_cr0(cr0), Sent::Direct);
    assert_eq!(lg.read_cr0(), cr0);
    assert_eq!(lg.clts(), Sent::Direct);
    assert_eq!(lg.read_cr0(), cr0 & !CR0_TS);
    lg.write_cr0(0x8005_0033);
    assert_eq!(
        w.host.log(),
        vec![
            sync(TS, [TsState::Set.raw(), 0, 0, 0]),
            sync(TS, [TsState::Clear.raw(), 0, 0, 0]),
            sync(TS, [TsState::Clear.raw(), 0, 0, 0]),
        ]
    );
}

#[test]
fn cr2_comes_from_the_shared_page() {
    let w = World::new();
    w.page.cr2.store(0xdead_b000, Ordering::Relaxed);
    assert_eq!(w.guest().read_cr2(), 0xdead_b000);
    assert!(w.host.log().is_empty());
}

#[test]
fn cr3_lives_in_the_shared_page_and_goes_out_as_new_pgtable() {
    let w = World::new();
    let lg = w.guest();
    // SAFETY: nothing runs on these page tables in a test.
    assert_eq!(unsafe { lg.write_cr3(0x20_0000) }, Sent::Direct);
    assert_eq!(lg.read_cr3(), 0x20_0000);
    assert_eq!(w.page.pgdir.load(Ordering::Relaxed), 0x20_0000);
    lg.enter_lazy_mmu();
    // SAFETY: as above.
    assert_eq!(unsafe { lg.write_cr3(0x30_0000) }, Sent::Queued(0));
    lg.leave_lazy_mmu();
    assert_eq!(
        w.host.log(),
        vec![
            sync(NEW_PGTABLE, [0x20_0000, 0, 0, 0]),
            queued(NEW_PGTABLE, [0x30_0000, 0, 0, 0]),
            sync(FLUSH_ASYNC, [0; 4]),
        ]
    );
}

#[test]
fn set_pte_says_nothing_until_the_first_cr3_switch() {
    let w = World::new();
    let lg = w.guest();
    let mut pt = Table::new();
    let ptep = pt.0.as_mut_ptr().cast::<PTEntry>();
    // SAFETY: `ptep` is a live entry of `pt`.
    assert_eq!(unsafe { lg.set_pte(ptep, PTEntry(0x5000 | 0x63)) }, None);
    assert_eq!(pt.0[0], 0x5063, "the entry is written");
    assert!(w.host.log().is_empty(), "boot-time set_pte is silent");
    // SAFETY: nothing runs on these page tables.
    unsafe { lg.write_cr3(0x20_0000) };
    // SAFETY: as above.
    let sent = unsafe { lg.set_pte(ptep, PTEntry(0x6063)) };
    assert_eq!(sent, Some(Sent::Direct));
    assert_eq!(
        w.host.log(),
        vec![
            sync(NEW_PGTABLE, [0x20_0000, 0, 0, 0]),
            sync(FLUSH_TLB, [FlushScope::All.raw(), 0, 0, 0]),
        ]
    );
}

#[test]
fn set_pte_at_and_pte_update_name_the_top_level_by_physical_address() {
    let w = World::new();
    let lg = w.guest();
    let mut pml4 = Table::new();
    let mut pt = Table::new();
    let pgd = pml4.0.as_mut_ptr().cast::<PML4Entry>();
    // SAFETY: index 5 is in the table.
    let ptep = unsafe { pt.0.as_mut_ptr().add(5) }.cast::<PTEntry>();
    let addr = 0x7fff_0000_5000;
    // SAFETY: `ptep` is a live, writable entry.
    let sent = unsafe { lg.set_pte_at(pgd, addr, ptep, PTEntry(0x9067)) };
    assert_eq!(sent, Sent::Direct);
    assert_eq!(pt.0[5], 0x9067);
    pt.0[5] = 0x9065;
    // SAFETY: as above.
    unsafe { lg.pte_update(pgd, addr, ptep) };
    let top = pa(pgd);
    assert_eq!(top % PAGE_SIZE, 0);
    assert_eq!(
        w.host.log(),
        vec![
            sync(SET_PTE, [top, addr, 0x9067, 0]),
            sync(SET_PTE, [top, addr, 0x9065, 0]),
        ]
    );
}

#[test]
fn set_pmd_names_the_table_page_and_the_entry_index() {
    let w = World::new();
    let lg = w.guest();
    let mut pd = Table::new();
    // SAFETY: index 300 is in the table.
    let pmdp = unsafe { pd.0.as_mut_ptr().add(300) }.cast::<PDEntry>();
    // SAFETY: `pmdp` is a live, writable entry.
    assert_eq!(unsafe { lg.set_pmd(pmdp, PDEntry(0x4_0063)) }, Sent::Direct);
    assert_eq!(pd.0[300], 0x4_0063);
    assert_eq!(
        w.host.log(),
        vec![sync(SET_PMD, [pa(pd.0.as_ptr()), 300, 0, 0])]
    );
}

#[test]
fn tlb_flushes() {
    let w = World::new();
    let lg = w.guest();
    w.page.pgdir.store(0x40_0000, Ordering::Relaxed);
    lg.flush_tlb_single(0x1234_5000);
    lg.flush_tlb_user();
    lg.flush_tlb_kernel();
    assert_eq!(
        w.host.log(),
        vec![
            sync(SET_PTE, [0x40_0000, 0x1234_5000, 0, 0]),
            sync(FLUSH_TLB, [FlushScope::User.raw(), 0, 0, 0]),
            sync(FLUSH_TLB, [FlushScope::All.raw(), 0, 0, 0]),
        ]
    );
}

#[test]
fn lazy_calls_queue_in_order_and_leaving_flushes_them() {
    let w = World::new();
    let lg = w.guest();
    w.page.pgdir.store(0x40_0000, Ordering::Relaxed);
    lg.irq_enable();
    lg.enter_lazy_mmu();
    assert!(lg.in_lazy_mode());
    assert_eq!(lg.flush_tlb_single(0x1000), Sent::Queued(0));
    assert_eq!(lg.load_sp0(0xffff_c900_0000_4000), Sent::Queued(1));
    assert_eq!(lg.flush_tlb_user(), Sent::Queued(2));
    assert_eq!(
        lg.save_fl(),
        EFLAGS_IF,
        "async_hcall restores the interrupt flag"
    );
    assert!(
        w.host.log().is_empty(),
        "nothing reaches the host before the flush"
    );
    // A synchronous call in lazy mode: the host runs the queue first.
    lg.set_next_event(1_000).unwrap();
    lg.flush_tlb_kernel();
    lg.leave_lazy_mmu();
    assert!(!lg.in_lazy_mode());
    lg.flush_tlb_user();
    assert_eq!(
        w.host.log(),
        vec![
            queued(SET_PTE, [0x40_0000, 0x1000, 0, 0]),
            queued(
                SET_STACK,
                [
                    guest::misc::KERNEL_DS | GUEST_PL,
                    0xffff_c900_0000_4000,
                    2,
                    0
                ]
            ),
            queued(FLUSH_TLB, [0, 0, 0, 0]),
            sync(SET_CLOCKEVENT, [1_000, 0, 0, 0]),
            queued(FLUSH_TLB, [1, 0, 0, 0]),
            sync(FLUSH_ASYNC, [0; 4]),
            sync(FLUSH_TLB, [0, 0, 0, 0]),
        ]
    );
    // While a call was being queued, interrupts were off; the sync calls saw them on.
    let seen = &w.host.host.lock().unwrap().seen.irq_enabled_at_call;
    assert!(seen.iter().all(|&f| f == EFLAGS_IF as u32), "{seen:?}");
}

#[test]
fn nested_lazy_modes_keep_queueing_until_both_end() {
    let w = World::new();
    let lg = w.guest();
    lg.start_context_switch();
    lg.enter_lazy_mmu();
    lg.flush_tlb_user();
    lg.leave_lazy_mmu();
    assert!(lg.in_lazy_mode(), "still in the context switch");
    assert_eq!(lg.flush_tlb_kernel(), Sent::Queued(1));
    lg.end_context_switch();
    assert!(!lg.in_lazy_mode());
    assert_eq!(
        w.host.log(),
        vec![
            queued(FLUSH_TLB, [0, 0, 0, 0]),
            sync(FLUSH_ASYNC, [0; 4]),
            queued(FLUSH_TLB, [1, 0, 0, 0]),
            sync(FLUSH_ASYNC, [0; 4]),
        ]
    );
}

#[test]
fn the_interrupt_controller_masks_and_unmasks_bits_and_the_timer_starts_blocked() {
    let w = World::new();
    let lg = w.guest();
    assert_eq!(
        w.page.blocked_interrupts.load(Ordering::Relaxed),
        1,
        "timer blocked"
    );
    lg.mask_irq(5).unwrap();
    lg.mask_irq(31).unwrap();
    assert_eq!(
        w.page.blocked_interrupts.load(Ordering::Relaxed),
        1 | 1 << 5 | 1 << 31
    );
    lg.unmask_irq(5).unwrap();
    assert_eq!(
        w.page.blocked_interrupts.load(Ordering::Relaxed),
        1 | 1 << 31
    );
    assert_eq!(lg.mask_irq(IRQS as u32), Err(BadIrq { irq: IRQS as u32 }));
    assert_eq!(
        lg.unmask_irq(200).unwrap_err().to_string(),
        "interrupt line 200 is not below IRQS (32)"
    );
    lg.time_init();
    assert_eq!(
        w.page.blocked_interrupts.load(Ordering::Relaxed),
        1 << 31,
        "timer unblocked"
    );
    assert!(w.host.log().is_empty());
}

#[test]
fn init_irq_installs_an_interrupt_gate_per_line() {
    let w = World::new();
    let lg = w.guest();
    let mut idt = vec![0u128; IDT_ENTRIES as usize];
    let handlers: [u64; IRQS as usize] =
        std::array::from_fn(|i| 0xffff_ffff_8100_0000 + 16 * i as u64);
    // SAFETY: `idt` has IDT_ENTRIES writable gates.
    let gates = unsafe { guest::IrqGates::new(idt.as_mut_ptr(), 0x10, &handlers) };
    // SAFETY: `idt` is this test's live IDT.
    unsafe { lg.init_irq(&gates) };
    let log = w.host.log();
    assert_eq!(log.len(), IRQS as usize);
    for (i, call) in log.iter().enumerate() {
        let vector = FIRST_EXTERNAL_VECTOR + i as u64;
        let h = handlers[i];
        let lo = (h & 0xffff) | 0x10 << 16 | 0x8e << 40 | ((h >> 16) & 0xffff) << 48;
        assert_eq!(*call, sync(LOAD_IDT_ENTRY, [vector, lo, h >> 32, 0]));
        assert_eq!(
            idt[vector as usize],
            u128::from(lo) | u128::from(h >> 32) << 64
        );
    }
}

#[test]
fn clock_event_checks_the_minimum_delta_and_shuts_down_with_an_explicit_zero() {
    let w = World::new();
    let lg = w.guest();
    assert_eq!(
        lg.set_next_event(CLOCK_MIN_DELTA - 1),
        Err(ClockEventError::DeltaTooSmall {
            delta: CLOCK_MIN_DELTA - 1
        })
    );
    lg.set_next_event(CLOCK_MIN_DELTA).unwrap();
    lg.set_clockevent_mode(ClockEventMode::Oneshot).unwrap();
    lg.set_clockevent_mode(ClockEventMode::Resume).unwrap();
    lg.set_clockevent_mode(ClockEventMode::Shutdown).unwrap();
    lg.set_clockevent_mode(ClockEventMode::Unused).unwrap();
    assert_eq!(
        lg.set_clockevent_mode(ClockEventMode::Periodic),
        Err(ClockEventError::PeriodicUnsupported)
    );
    assert_eq!(
        w.host.log(),
        vec![
            sync(SET_CLOCKEVENT, [CLOCK_MIN_DELTA, 0, 0, 0]),
            sync(SET_CLOCKEVENT, [0; 4]),
            sync(SET_CLOCKEVENT, [0; 4]),
        ]
    );
}

#[test]
fn the_timer_interrupt_runs_its_handler_with_interrupts_off() {
    let w = World::new();
    let lg = w.guest();
    lg.irq_enable();
    let mut ran = false;
    lg.timer_interrupt(|| {
        assert_eq!(w.page.irq_enabled.load(Ordering::Relaxed), 0);
        ran = true;
    });
    assert!(ran);
    assert_eq!(lg.save_fl(), EFLAGS_IF);
}

#[test]
fn load_sp0_sets_the_kernel_stack() {
    let w = World::new();
    w.guest().load_sp0(0xffff_8800_0001_2000);
    assert_eq!(
        w.host.log(),
        vec![sync(
            SET_STACK,
            [0x18 | GUEST_PL, 0xffff_8800_0001_2000, MAX_STACK_PAGES, 0]
        )]
    );
}

#[test]
fn power_off_restart_and_panic_send_the_reasons_physical_address() {
    let w = World::new();
    let lg = w.guest();
    lg.power_off();
    let reason = c"reboot: requested by user";
    lg.restart(reason);
    let oops = c"Kernel panic - not syncing: VFS";
    lg.panic(oops);
    let log = w.host.log();
    assert_eq!(
        log[1],
        sync(
            SHUTDOWN,
            [pa(reason.as_ptr()), ShutdownKind::Restart.raw(), 0, 0]
        )
    );
    assert_eq!(
        log[2],
        sync(
            SHUTDOWN,
            [pa(oops.as_ptr()), ShutdownKind::Poweroff.raw(), 0, 0]
        )
    );
    assert_eq!(log[0].nr, SHUTDOWN);
    assert_eq!(log[0].args[1], ShutdownKind::Poweroff.raw());
    assert_eq!(log.len(), 3);
    let host = w.host.host.lock().unwrap();
    assert_eq!(
        host.seen.shutdowns,
        vec![
            (b"Power down".to_vec(), ShutdownKind::Poweroff),
            (reason.to_bytes().to_vec(), ShutdownKind::Restart),
            (oops.to_bytes().to_vec(), ShutdownKind::Poweroff),
        ]
    );
}

#[test]
fn the_early_console_notifies_a_nul_terminated_bounded_copy() {
    let w = World::new();
    let lg = w.guest();
    assert_eq!(lg.early_put_chars(b"hi\n"), 3);
    let long = b"0123456789abcdefghij";
    assert_eq!(lg.early_put_chars(long), NOTIFY_MAX as usize - 1);
    assert_eq!(lg.early_put_chars(b""), 0);
    let log = w.host.log();
    assert_eq!(log.len(), 3);
    assert!(
        log.iter()
            .all(|c| c.nr == NOTIFY && c.args[1..] == [0, 0, 0])
    );
    let host = w.host.host.lock().unwrap();
    assert_eq!(
        host.seen.notify_strings,
        vec![
            b"hi\n".to_vec(),
            long[..NOTIFY_MAX as usize - 1].to_vec(),
            Vec::new()
        ]
    );
}

#[test]
fn cpuid_is_filtered_through_the_raw_cpuid_trait() {
    use core::arch::x86_64::CpuidResult;
    let w = World::new();
    let r = |eax, ebx, ecx, edx| CpuidResult { eax, ebx, ecx, edx };
    let lg = w.guest_with_cpuid(Recorded(vec![
        ((0, 0), r(0x24, 0x756e_6547, 0x6c65_746e, 0x4965_6e69)),
        (
            (1, 0),
            r(0x000a_0671, 0x0002_0800, 0xfffa_3203, 0x1f8b_fbff),
        ),
    ]));
    assert_eq!(lg.cpuid(0, 0), r(5, 0x756e_6547, 0x6c65_746e, 0x4965_6e69));
    assert_eq!(
        lg.cpuid(1, 0),
        r(0x000a_0571, 0x0002_0800, 0x2201, 0x0780_a151)
    );
    assert!(w.host.log().is_empty());
}
