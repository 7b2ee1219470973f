//! The kernel booted for real: under KVM where /dev/kvm is usable (every test prints which
//! backend it checked, and why not KVM), in process otherwise. `LGUEST_REQUIRE_KVM=1` (set
//! by .ci/run) turns a missing KVM into a failure instead.

use std::collections::BTreeMap;
use std::time::Duration;

use host_stubs::abi::numbers::Hypercall;
use host_stubs::abi::types::ShutdownKind;
use host_stubs::clock::SystemClock;
use host_stubs::{Host, Kill, Stop};
use lguest_kernel::{Fault, Mode, Workload};
use lguest_vmm::{Backend, Config, inproc};

mod common;

use common::*;

#[test]
fn the_kernel_boots_to_a_clean_power_off() {
    let cfg = Config::default();
    let r = boot(&cfg);
    assert!(r.clean(), "{}\n{}", r.stop, r.console);
    for line in [
        "lguest: booting",
        "patched 4 of 4 pv call sites",
        "GDT and IDT loaded",
        "own page tables:",
        "mmu: 64 pages mapped and unmapped, lazy",
        "timer: 10 ticks",
        "masked timer waited: irq flag, blocked line",
        "power off",
    ] {
        assert!(r.console.contains(line), "no `{line}` in:\n{}", r.console);
    }
    // The ring: far fewer exits than hypercalls.
    assert!(
        r.exits * 2 < r.total_hypercalls(),
        "{} exits for {} hypercalls",
        r.exits,
        r.total_hypercalls()
    );
    assert!(r.ring_drained > 500, "{} ring entries", r.ring_drained);
    assert!(r.ticks >= u64::from(cfg.ticks), "{} ticks", r.ticks);
    assert_eq!(count(&r, Hypercall::LguestInit), 1);
    assert_eq!(count(&r, Hypercall::Shutdown), 1);
    assert_eq!(count(&r, Hypercall::LoadGdtEntry), 16);
    assert!(count(&r, Hypercall::LoadIdtEntry) >= 256);
    assert!(count(&r, Hypercall::Halt) >= u64::from(cfg.ticks));
    assert_eq!(r.unknown_hypercalls, 0);
    // The identity map, then 64 pages mapped and unmapped (an unmap is a SET_PTE too).
    assert!(r.pages_mapped > 700);
    assert_eq!(r.pages_mapped + 64 + 3, count(&r, Hypercall::SetPte));
}

/// Every present 4 KiB leaf under `pgdir`, by virtual address, skipping the host's slot.
fn guest_leaves(host: &Host<SystemClock>, pgdir: u64) -> BTreeMap<u64, u64> {
    let mem = host.mem();
    let read = |a: u64| mem.read_u64(a).expect("tables inside guest memory");
    let addr = |e: u64| e & 0x000f_ffff_ffff_f000;
    let mut out = BTreeMap::new();
    for i4 in (0..512u64).filter(|i| *i != lguest_vmm::layout::HOST_PML4_SLOT) {
        let e4 = read(pgdir + i4 * 8);
        if e4 & 1 == 0 {
            continue;
        }
        for i3 in 0..512u64 {
            let e3 = read(addr(e4) + i3 * 8);
            if e3 & 1 == 0 || e3 & 0x80 != 0 {
                continue;
            }
            for i2 in 0..512u64 {
                let e2 = read(addr(e3) + i2 * 8);
                if e2 & 1 == 0 || e2 & 0x80 != 0 {
                    continue;
                }
                for i1 in 0..512u64 {
                    let pte = read(addr(e2) + i1 * 8);
                    if pte & 1 != 0 {
                        let va = (i4 << 39) | (i3 << 30) | (i2 << 21) | (i1 << 12);
                        out.insert(va, pte);
                    }
                }
            }
        }
    }
    out
}

/// The MMU only walks the host's shadow: every page it maps there is mapped the same way by
/// the guest's own tables, and nothing maps a frame outside guest RAM.
#[test]
fn the_shadow_maps_what_the_guests_tables_map_and_nothing_else() {
    let cfg = Config {
        workload: Workload::Mmu,
        pages: 600,
        ticks: 1,
        ..Config::default()
    };
    let (r, (shadowed, walked, pgdir)) = boot_with(&cfg, |host| {
        let pgdir = host.pgdir();
        let walked = guest_leaves(host, pgdir);
        let shadowed: BTreeMap<u64, u64> = walked
            .keys()
            .filter_map(|va| host.shadow().lookup(pgdir, *va).map(|e| (*va, e)))
            .collect();
        (shadowed, walked, pgdir)
    });
    assert!(r.clean(), "{}\n{}", r.stop, r.console);
    assert_ne!(pgdir, 0, "the kernel switched to its own tables");
    assert!(walked.len() > 700, "{} pages mapped", walked.len());
    const ADDR: u64 = 0x000f_ffff_ffff_f000;
    if r.backend == Backend::Kvm {
        assert!(shadowed.len() > 10, "{} pages faulted in", shadowed.len());
        assert_eq!(r.shadow.reflected, 0);
    }
    for (va, spte) in &shadowed {
        assert_eq!(spte & ADDR, walked[va] & ADDR, "{va:#x}");
        assert!(spte & ADDR < cfg.mem, "{va:#x} -> {spte:#x}");
    }
}

#[test]
fn lazy_mode_batches_page_table_updates_into_few_exits() {
    let n = 1000;
    let lazy = Config {
        workload: Workload::Mmu,
        pages: n,
        ticks: 1,
        ..Config::default()
    };
    let r = boot(&lazy);
    assert!(r.clean(), "{}\n{}", r.stop, r.console);
    let w = r.workload.expect("the workload's marks");
    assert_eq!(w.hypercalls, 2 * n + 1, "maps, unmaps and the flush");
    assert!(
        w.exits - w.faults <= 2 * n / 64 + 8,
        "{} exits ({} page faults) for {n} pages",
        w.exits,
        w.faults
    );
    let eager = boot(&Config {
        eager: true,
        ..lazy
    });
    assert!(eager.clean(), "{}", eager.stop);
    let e = eager.workload.expect("the workload's marks");
    assert_eq!(
        e.exits - e.faults,
        2 * n,
        "one exit per update without lazy mode (and one per page fault)"
    );
    assert_eq!(e.ring_drained, 0);
}

#[test]
fn broken_guests_are_killed_with_the_right_reason() {
    let base = Config {
        ticks: 1,
        watchdog: Duration::from_millis(500),
        ..Config::default()
    };
    let run = |fault| {
        let start = std::time::Instant::now();
        let r = boot(&Config {
            fault,
            ..base.clone()
        });
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{fault:?} took too long"
        );
        assert!(!r.clean());
        r
    };
    let r = run(Fault::BeforeInit);
    assert_eq!(
        killed(&r),
        &Kill::BeforeInit {
            call: Hypercall::Halt
        }
    );
    let r = run(Fault::IdtVector);
    match killed(&r) {
        Kill::BadArgument(b) => {
            assert_eq!(
                (b.call, b.arg, b.value),
                (Hypercall::LoadIdtEntry, "vector", 256)
            );
        }
        k => panic!("{k}"),
    }
    let r = run(Fault::RingGarbage);
    assert_eq!(
        killed(&r),
        &Kill::RingStatus {
            slot: 0,
            value: 0x42
        }
    );
    let r = run(Fault::OutsideMemory);
    match killed(&r) {
        Kill::OutsideMemory {
            call, arg, value, ..
        } => {
            assert_eq!(
                (*call, *arg, *value),
                (Hypercall::Notify, "addr", base.mem + 4096)
            );
        }
        k => panic!("{k}"),
    }
    let r = run(Fault::Hang);
    match killed(&r) {
        // The boot's exits, none since the loop began: it never went idle.
        Kill::Watchdog { ms, exits } => assert_eq!((*ms, *exits > 0), (500, true)),
        k => panic!("{k}"),
    }
    // The guest's own PML4[511] is nothing to the host: its entry is in the shadow, and
    // the page fault after the guest cleared its own still reaches the guest's handler.
    let r = run(Fault::HostEntry);
    let s = shut_down(&r);
    match r.backend {
        Backend::Kvm => assert!(
            s.reason.starts_with("exception 14 (error 0x4)")
                && s.reason.contains("handled at ring 3")
                && s.reason.ends_with("cr2 0xdead0000"),
            "{}",
            s.reason
        ),
        Backend::InProcess => assert!(s.reason.contains("needs a real CPU"), "{}", s.reason),
    }
}

#[test]
fn a_page_fault_reaches_the_guests_handler() {
    let r = boot(&Config {
        fault: Fault::PageFault,
        ticks: 1,
        ..Config::default()
    });
    let s = shut_down(&r);
    match r.backend {
        Backend::Kvm => {
            assert!(
                s.reason.starts_with("exception 14 (error 0x4)")
                    && s.reason.ends_with("cr2 0xdead0000"),
                "{}",
                s.reason
            );
            assert_eq!(r.traps, 1);
        }
        Backend::InProcess => assert!(s.reason.contains("needs a real CPU"), "{}", s.reason),
    }
}

#[test]
fn stray_ports_and_writes_to_host_memory_end_the_guest() {
    let base = Config {
        ticks: 1,
        ..Config::default()
    };
    let run = |fault| {
        boot(&Config {
            fault,
            ..base.clone()
        })
    };
    let r = run(Fault::BadPort);
    match r.backend {
        Backend::Kvm => assert_eq!(killed(&r), &Kill::BadPort { port: 0xf7 }),
        Backend::InProcess => assert!(shut_down(&r).reason.contains("needs a real CPU")),
    }
    // A leaf pointed past guest RAM behind the host's back: the first access faults, and
    // the host refuses the entry when it walks the guest's tables.
    let r = run(Fault::HostWrite);
    match r.backend {
        Backend::Kvm => match killed(&r) {
            Kill::BadPageTable { vaddr, bad, .. } => {
                assert_eq!(*vaddr, lguest_kernel::workload::UNMAPPED);
                assert_eq!((bad.level, bad.entry & !0xfff), (3, base.mem));
            }
            k => panic!("{k}"),
        },
        Backend::InProcess => assert!(shut_down(&r).reason.contains("needs a real CPU")),
    }
}

#[test]
fn panic_and_restart_take_their_paths() {
    let r = boot(&Config {
        mode: Mode::Panic,
        ticks: 2,
        ..Config::default()
    });
    let s = shut_down(&r);
    assert_eq!(s.kind, ShutdownKind::Poweroff);
    assert!(s.reason.starts_with("panic on request"), "{}", s.reason);
    assert!(!r.clean());

    let out = lguest_vmm::boot(
        &Config {
            mode: Mode::Restart,
            ticks: 1,
            ..Config::default()
        },
        lguest_vmm::Choice::Auto,
    )
    .expect("runs");
    let r = out.report;
    assert_eq!(r.boots, 2);
    assert!(r.clean(), "the restarted kernel powers off: {}", r.stop);
    assert_eq!(count(&r, Hypercall::LguestInit), 2);
}

#[test]
fn the_in_process_backend_runs_the_same_kernel_code() {
    let r = inproc::run(&Config {
        ticks: 3,
        ..Config::default()
    })
    .expect("runs");
    assert_eq!(r.backend, Backend::InProcess);
    assert!(r.clean(), "{}\n{}", r.stop, r.console);
    assert!(r.console.contains("timer: 3 ticks"), "{}", r.console);
    assert!(r.ticks >= 3);
    assert!(r.exits < r.total_hypercalls());
}

#[test]
fn the_command_prints_one_json_report() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lguest-run"))
        .args(["--json", "--ticks", "2"])
        .output()
        .expect("lguest-run runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    let backend = v["backend"].as_str().unwrap();
    assert!(backend == "kvm" || backend == "in-process");
    if backend == "in-process" {
        let why = String::from_utf8_lossy(&out.stderr);
        println!("NOT run under KVM: {why}");
        assert!(why.contains("in process"), "the fallback says why: {why}");
    }
    for key in ["exits", "ring_drained", "interrupts", "ticks", "wall_ns"] {
        assert!(v[key].is_u64(), "{key}: {}", v[key]);
    }
    assert_eq!(v["hypercalls"]["lguest_init"], 1);
    assert_eq!(v["shutdown"]["kind"], "poweroff");
    assert_eq!(v["shutdown"]["reason"], "Power down");

    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_lguest-run"))
        .args(["--fault", "ring-garbage", "--json"])
        .output()
        .expect("lguest-run runs");
    assert_eq!(bad.status.code(), Some(1));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("status byte 0x42"), "{err}");

    let usage = std::process::Command::new(env!("CARGO_BIN_EXE_lguest-run"))
        .args(["--pages", "lots"])
        .output()
        .expect("lguest-run runs");
    assert_eq!(usage.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&usage.stderr).contains("`lots` is not a number"));
}

#[test]
fn without_kvm_the_command_says_why_in_one_line_and_runs_in_process() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_lguest-run"))
        .args(["--ticks", "2"])
        .env("LGUEST_KVM_DEVICE", "/nonexistent/kvm")
        .output()
        .expect("lguest-run runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(
        err.contains("opening /nonexistent/kvm") && err.contains("in process"),
        "{err}"
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("--- lguest-run report (in-process) ---"),
        "{text}"
    );
    assert!(text.contains("power off"), "{text}");
}

/// Every fault on the in-process backend (which the tests above only reach where KVM is
/// missing): the same kills for the ABI violations, and a clear word for what needs a CPU.
#[test]
fn in_process_faults_end_as_they_should() {
    let base = Config {
        ticks: 1,
        watchdog: Duration::from_millis(300),
        ..Config::default()
    };
    for fault in Fault::ALL {
        let r = inproc::run(&Config {
            fault,
            ..base.clone()
        })
        .expect("runs");
        let reason = match &r.stop {
            Stop::Shutdown(s) => s.reason.clone(),
            Stop::Killed(k) => k.reason.to_string(),
        };
        let want = match fault {
            Fault::None => "Power down",
            Fault::BeforeInit => "before lguest_init",
            Fault::IdtVector => "argument `vector` = 0x100",
            Fault::RingGarbage => "status byte 0x42",
            Fault::OutsideMemory => "argument `addr` = 0x4001000",
            Fault::Hang => "ran 300 ms without going idle (",
            Fault::HaltNoTimer => "halted with no timer armed",
            Fault::HaltFarTimer => "beyond the host's halt limit of 60000 ms",
            Fault::ExitStorm | Fault::CallStorm => "ran 300 ms without going idle",
            Fault::TsNm => "exception 7 (device not available), emulated in process",
            Fault::WildStack
            | Fault::GateHostSelector
            | Fault::GateDpl1Selector
            | Fault::HypercallIn
            | Fault::Syscall
            | Fault::Sysenter
            | Fault::GateDbSelector
            | Fault::StubBadStack
            | Fault::GateWildOffset
            | Fault::PageFault
            | Fault::BadPort
            | Fault::HostWrite
            | Fault::HostEntry
            | Fault::HostRead
            | Fault::StackWrite
            | Fault::FakeIdt
            | Fault::FakeIdtLidt
            | Fault::StalePte => "needs a real CPU",
        };
        assert!(reason.contains(want), "{fault:?}: {reason}");
        assert_eq!(r.clean(), fault == Fault::None, "{fault:?}");
    }
}
