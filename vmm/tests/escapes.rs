//! The isolation escapes (kernel/src/escapes.rs) under KVM: none of them reads or writes the
//! host's memory or runs code at ring 0; each ends in a precise kill or a fault reflected
//! to its own ring-3 handler. Without KVM each says it needs a real CPU (and the test says
//! it did not check under KVM). `LGUEST_REQUIRE_KVM=1` makes a missing KVM a failure.

mod common;

use common::killed;
use host_stubs::{Kill, Stop};
use lguest_kernel::Fault;
use lguest_kernel::escapes::{HOST_IDT_OFF, HOST_STACK_OFF, HOSTILE_VA, STALE_THEN_FRESH};
use lguest_vmm::kvm::{self, VmError};
use lguest_vmm::{Config, KERNEL_ELF, Report, inproc};

/// Runs `fault` under KVM (`Some`), or says why not and checks the in-process run refuses
/// it plainly (`None`).
fn run(fault: Fault) -> Option<Report> {
    let cfg = Config {
        fault,
        ticks: 1,
        ..Config::default()
    };
    match kvm::run(&cfg, KERNEL_ELF) {
        Ok(r) => {
            println!("{fault:?}: checked under KVM");
            Some(r)
        }
        Err(VmError::NoKvm(why)) => {
            assert!(
                std::env::var("LGUEST_REQUIRE_KVM").is_err(),
                "LGUEST_REQUIRE_KVM is set but KVM is not usable: {why}"
            );
            println!("{fault:?}: NOT checked under KVM ({why})");
            let r = inproc::run(&cfg).expect("the in-process run");
            match &r.stop {
                Stop::Shutdown(s) => assert!(s.reason.contains("needs a real CPU"), "{}", s.reason),
                other => panic!("{other}"),
            }
            None
        }
        Err(e) => panic!("the VM could not run: {e}"),
    }
}

fn reason(r: &Report) -> String {
    match &r.stop {
        Stop::Shutdown(s) => s.reason.clone(),
        Stop::Killed(k) => k.reason.to_string(),
    }
}

/// Nothing ran at ring 0: a reached probe says "fake IDT"; a reflected fault says which
/// ring handled it.
fn never_ring_0(r: &Report) {
    let text = reason(r);
    assert!(!text.contains("fake IDT"), "{text}");
    assert!(!text.contains("ring 0"), "{text}");
}

#[test]
fn reading_the_hosts_region_through_a_user_pte_is_a_precise_kill() {
    let cfg = Config::default();
    let Some(r) = run(Fault::HostRead) else {
        return;
    };
    never_ring_0(&r);
    match killed(&r) {
        Kill::BadPageTable { vaddr, bad, .. } => {
            assert_eq!(*vaddr, HOSTILE_VA);
            assert_eq!(bad.level, 3);
            assert_eq!(bad.entry & !0xfff, cfg.mem + HOST_IDT_OFF);
            assert_eq!(bad.why, "maps a frame outside guest memory");
        }
        other => panic!("{other}"),
    }
}

#[test]
fn writing_the_hosts_ring0_stack_is_a_precise_kill() {
    let cfg = Config::default();
    let Some(r) = run(Fault::StackWrite) else {
        return;
    };
    never_ring_0(&r);
    match killed(&r) {
        Kill::BadPageTable { vaddr, bad, .. } => {
            assert_eq!(*vaddr, HOSTILE_VA);
            assert_eq!(bad.entry & !0xfff, cfg.mem + HOST_STACK_OFF);
        }
        other => panic!("{other}"),
    }
}

/// The guest's PML4[511] pointed at its own copy of the host's region, with an IDT gate to
/// its code through the host's code selector: the CPU never sees it (the shadow's entry 511
/// is the host's), so `int3` goes through the real IDT and comes back to the guest's own
/// handler at ring 3.
#[test]
fn the_fake_idt_escape_ends_in_a_reflected_fault_at_ring_3() {
    let Some(r) = run(Fault::FakeIdt) else { return };
    never_ring_0(&r);
    let text = reason(&r);
    assert!(
        text.starts_with("exception 3 ") && text.contains("handled at ring 3"),
        "{text}"
    );
    assert_eq!(r.traps, 1);
}

/// The same with `lidt` to the copy: a privileged instruction at ring 3, reflected as #GP.
#[test]
fn the_fake_idt_escape_with_lidt_ends_in_a_reflected_gp_at_ring_3() {
    let Some(r) = run(Fault::FakeIdtLidt) else {
        return;
    };
    never_ring_0(&r);
    let text = reason(&r);
    assert!(
        text.starts_with("exception 13 ") && text.contains("handled at ring 3"),
        "{text}"
    );
}

/// The seed's hypercalls are what keeps the guest's view right: an entry changed without
/// SET_PTE is not seen (the CPU walks the host's shadow), and SET_PTE makes it seen.
#[test]
fn a_missing_set_pte_shows_up_as_a_stale_mapping() {
    let Some(r) = run(Fault::StalePte) else {
        return;
    };
    assert_eq!(reason(&r), STALE_THEN_FRESH);
    assert!(
        r.shadow.reloads >= 1,
        "the weakened entry was dropped from KVM's cache"
    );
}

/// Demand paging: every page the kernel maps and then reads faults once into the shadow,
/// each fault an exit the host fills from the kernel's own tables.
#[test]
fn every_mapped_page_faults_in_once_when_first_touched() {
    let n = 300;
    let cfg = Config {
        workload: lguest_kernel::Workload::Touch,
        pages: n,
        ticks: 1,
        ..Config::default()
    };
    match kvm::run(&cfg, KERNEL_ELF) {
        Ok(r) => {
            assert!(r.clean(), "{}\n{}", r.stop, r.console);
            let w = r.workload.expect("the workload's marks");
            assert!(
                w.faults >= n && w.faults <= n + 16,
                "{} faults for {n} pages",
                w.faults
            );
            assert_eq!(r.shadow.reflected, 0);
        }
        Err(VmError::NoKvm(why)) => {
            assert!(std::env::var("LGUEST_REQUIRE_KVM").is_err(), "{why}");
            println!("NOT checked under KVM ({why})");
        }
        Err(e) => panic!("the VM could not run: {e}"),
    }
}
