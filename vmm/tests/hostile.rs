//! Hostile guests (issue 11's liveness and precise-reason cases): each `--fault` here must
//! end the run at once, with the exact reason, under KVM where /dev/kvm is usable (every
//! test prints which backend it checked). `LGUEST_REQUIRE_KVM=1` turns a missing KVM into a
//! failure.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use host_stubs::Kill;
use host_stubs::abi::guest::Pio;
use host_stubs::abi::numbers::{GUEST_PL, HOST_CS_ENTRY};
use host_stubs::abi::types::TsState;
use host_stubs::host::DEFAULT_MAX_HALT_NS;
use lguest_kernel::Fault;
use lguest_vmm::{Backend, Config, Report, inproc};

fn config(fault: Fault) -> Config {
    Config {
        fault,
        ticks: 1,
        watchdog: Duration::from_millis(500),
        ..Config::default()
    }
}

/// Boots `cfg` under KVM (or in process), checking the run ended well inside `bound`.
fn run_within(cfg: &Config, bound: Duration) -> Report {
    let start = Instant::now();
    let r = boot(cfg);
    assert!(
        start.elapsed() < bound,
        "{:?} took {:?}: {}",
        cfg.fault,
        start.elapsed(),
        r.stop
    );
    assert!(!r.clean(), "{:?}: {}", cfg.fault, r.stop);
    r
}

/// Faults only a real CPU can commit: in process the kernel says so instead.
fn needs_cpu(r: &Report) -> bool {
    if r.backend == Backend::InProcess {
        let s = shut_down(r);
        assert!(s.reason.contains("needs a real CPU"), "{}", s.reason);
        println!("NOT checked under KVM: the in-process backend has no CPU to fault");
        return false;
    }
    true
}

#[test]
fn a_halt_nothing_can_wake_is_killed_at_once() {
    for backend in ["kvm-or-fallback", "in-process"] {
        let run = |fault| {
            let cfg = config(fault);
            if backend == "in-process" {
                inproc::run(&cfg).expect("runs")
            } else {
                run_within(&cfg, Duration::from_secs(5))
            }
        };
        let r = run(Fault::HaltNoTimer);
        assert_eq!(killed(&r), &Kill::HaltedForever, "{backend}");
        // SET_CLOCKEVENT(u64::MAX), then HALT: a wake-up 584 years off is none.
        let r = run(Fault::HaltFarTimer);
        match killed(&r) {
            Kill::HaltedTooLong { due_ns, limit_ms } => {
                assert_eq!(*limit_ms, DEFAULT_MAX_HALT_NS / 1_000_000);
                assert!(*due_ns > u64::MAX / 2, "{due_ns}");
            }
            k => panic!("{backend}: {k}"),
        }
    }
}

#[test]
fn an_exit_storm_cannot_keep_the_watchdog_reset() {
    // Every exit is a hypercall (so the old watchdog, which counted them as progress, was
    // reset forever), and each drains 64 FLUSH_TLB(all) that make the host re-read tables.
    let cfg = config(Fault::ExitStorm);
    let r = run_within(&cfg, Duration::from_secs(10));
    match killed(&r) {
        Kill::HostBusy { ms, exits } => {
            assert!(*ms >= 500, "{ms} ms");
            assert!(*exits > 0);
        }
        k => panic!("{k}"),
    }
    assert!(r.exits > 2, "a storm of exits: {}", r.exits);
    let r = inproc::run(&cfg).expect("runs");
    assert!(matches!(killed(&r), Kill::HostBusy { .. }), "{}", r.stop);
}

#[test]
fn a_run_is_bounded_by_its_time_limit() {
    // A guest that computes forever, with a watchdog that would wait 20 s: the time limit
    // ends it first.
    let cfg = Config {
        watchdog: Duration::from_secs(20),
        timeout: Some(Duration::from_millis(300)),
        ..config(Fault::Hang)
    };
    let r = run_within(&cfg, Duration::from_secs(5));
    assert_eq!(killed(&r), &Kill::Timeout { ms: 300 });
    let r = inproc::run(&cfg).expect("runs");
    assert_eq!(killed(&r), &Kill::Timeout { ms: 300 });

    let out = Command::new(env!("CARGO_BIN_EXE_lguest-run"))
        .args([
            "--fault",
            "hang",
            "--watchdog-ms",
            "20000",
            "--timeout-ms",
            "200",
        ])
        .output()
        .expect("lguest-run runs");
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("time limit of 200 ms ran out"), "{text}");
}

#[test]
fn a_kill_on_the_delivery_path_ends_the_run_at_once() {
    // The timer fires with the stack pointer non-canonical: the frame cannot be pushed, and
    // the kill ends the run there (before, the loop re-entered the guest until the
    // watchdog, and `translate` let the host push frames through a non-canonical stack).
    let cfg = Config {
        watchdog: Duration::from_secs(5),
        ..config(Fault::WildStack)
    };
    let r = run_within(&cfg, Duration::from_secs(3));
    if !needs_cpu(&r) {
        return;
    }
    match killed(&r) {
        Kill::Trap { vector, why, .. } => {
            assert_eq!(*vector, 0x20);
            assert!(
                why.contains("delivering interrupt line 0") && why.contains("not canonical"),
                "{why}"
            );
        }
        k => panic!("{k}"),
    }
    assert_eq!(r.interrupts, 1, "one delivery tried, none after the kill");
    assert!(
        r.wall_ns < 2_000_000_000,
        "ended at once, not at the watchdog"
    );
}

#[test]
fn gates_the_guest_cannot_run_in_are_named() {
    // The guest's selectors with the RPL the host forces on every gate.
    let sel = |entry: u64| ((entry * 8) | GUEST_PL) as u16;
    for (fault, selector, says) in [
        (
            Fault::GateHostSelector,
            sel(HOST_CS_ENTRY),
            format!(
                "names GDT entry {HOST_CS_ENTRY}, which the host keeps for its own ring-0 segments"
            ),
        ),
        (
            Fault::GateDpl1Selector,
            sel(lguest_kernel::hostile::SPARE_GDT_ENTRY),
            "a code segment of privilege level 1".to_string(),
        ),
    ] {
        let r = run_within(&config(fault), Duration::from_secs(5));
        if !needs_cpu(&r) {
            continue;
        }
        match killed(&r) {
            Kill::BadGateSelector {
                vector,
                selector: s,
                why,
            } => {
                assert_eq!((*vector, *s), (3, selector), "{fault:?}");
                assert!(why.contains(&says), "{fault:?}: {why}");
            }
            k => panic!("{fault:?}: {k}"),
        }
        assert_eq!(r.traps, 0, "{fault:?}: nothing was reflected");
    }
}

#[test]
fn a_gate_to_a_non_canonical_handler_is_refused_when_loaded() {
    // Entering it would fault in the host's own stub (or, on this AMD CPU, raise #GP in
    // the guest at the non-canonical address): LOAD_IDT_ENTRY refuses it, naming it.
    let r = run_within(&config(Fault::GateWildOffset), Duration::from_secs(5));
    if !needs_cpu(&r) {
        return;
    }
    assert_eq!(
        killed(&r),
        &Kill::BadGateOffset {
            vector: 3,
            offset: 0x8000_0000_0000_0000
        }
    );
    assert_eq!(r.traps, 0);
}

#[test]
fn in_on_the_hypercall_port_is_named() {
    let r = run_within(&config(Fault::HypercallIn), Duration::from_secs(5));
    if needs_cpu(&r) {
        assert_eq!(killed(&r), &Kill::HypercallIn { port: Pio::PORT });
        assert!(
            r.stop
                .to_string()
                .contains("hypercalls are made with `out`")
        );
    }
}

#[test]
fn fast_system_calls_are_named() {
    for (fault, instruction) in [(Fault::Syscall, "syscall"), (Fault::Sysenter, "sysenter")] {
        let r = run_within(&config(fault), Duration::from_secs(5));
        if !needs_cpu(&r) {
            continue;
        }
        match killed(&r) {
            Kill::FastSyscall {
                instruction: i,
                rip,
            } => {
                assert_eq!(*i, instruction);
                // Inside the kernel's image, at 1 MiB.
                assert!((0x10_0000..0x40_0000).contains(rip), "{rip:#x}");
            }
            k => panic!("{fault:?}: {k}"),
        }
    }
}

#[test]
fn ts_sets_the_task_switched_bit_for_the_next_sse_instruction() {
    let (r, ts) = boot_with(&config(Fault::TsNm), |h| h.ts());
    if !needs_cpu(&r) {
        return;
    }
    let s = shut_down(&r);
    if s.reason.starts_with("exception 7 ") {
        // #NM reached the kernel's handler, which cleared TS and said so.
        println!("checked: #NM reached the guest's handler");
        assert_eq!(r.traps, 1);
    } else {
        // kvm_pvm keeps CR0.TS in the vCPU state but runs ring-3 SSE natively whatever it
        // says: the host did its part (the bit is set), the CPU does not trap.
        assert_eq!(s.reason, "an SSE instruction ran with cr0.TS set");
        assert_eq!(ts, TsState::Set);
        println!(
            "NOT checked: this KVM does not trap ring-3 SSE on CR0.TS (kvm_pvm); the host set \
             the guest's TS and the vCPU's CR0.TS"
        );
    }
}

#[test]
fn a_device_that_is_not_kvm_says_so() {
    let out = Command::new(env!("CARGO_BIN_EXE_lguest-run"))
        .args(["--ticks", "1"])
        .env("LGUEST_KVM_DEVICE", "/dev/null")
        .output()
        .expect("lguest-run runs");
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/dev/null is not a KVM device") && err.contains("in process"),
        "{err}"
    );
}

#[test]
fn bad_command_lines_are_usage_errors() {
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_lguest-run"))
            .args(args)
            .output()
            .expect("lguest-run runs");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    for (args, says) in [
        (
            &["--panic", "--restart"][..],
            "'--panic' cannot be used with '--restart'",
        ),
        (
            &["--ticks", "1", "--ticks", "2"][..],
            "'--ticks <N>' cannot be used multiple times",
        ),
        (
            &["--tick-us", "18446744073709551615"][..],
            "a tick is 1 to 1000000 µs",
        ),
        (
            &["--fault", "nope"][..],
            "possible values: none, before-init",
        ),
        (&["--mem-mib", "3"][..], "multiple of 2 MiB"),
        (&["--frobnicate"][..], "unexpected argument '--frobnicate'"),
    ] {
        let (code, _, err) = run(args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    let (code, out, _) = run(&["--version"]);
    assert_eq!(code, Some(0));
    assert!(out.starts_with("lguest-run "), "{out}");
    let (code, out, _) = run(&["--help"]);
    assert_eq!(code, Some(0));
    for flag in ["--timeout-ms", "--fault", "--watchdog-ms", "Exit status"] {
        assert!(out.contains(flag), "{flag} in {out}");
    }
}
