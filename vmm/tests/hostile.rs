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
use host_stubs::abi::numbers::{GUEST_PL, HOST_CS_ENTRY, KERNEL_CS, KERNEL_DS};
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
    // Exits are not progress, only going idle is: a storm of the cheapest hypercall there
    // is (FLUSH_ASYNC with an empty ring) and one of costly ones (a ring of 64
    // FLUSH_TLB(all) per exit) both end at the watchdog's limit, as a loop that never exits
    // does. (Before, each hypercall reset the watchdog and a busy-time budget counted only
    // the host's share, so a cheap storm lived many watchdog periods.)
    let limit = Duration::from_millis(500);
    for fault in [Fault::CallStorm, Fault::ExitStorm] {
        let cfg = config(fault);
        let start = Instant::now();
        let r = run_within(&cfg, Duration::from_secs(5));
        let took = start.elapsed();
        match killed(&r) {
            Kill::Watchdog { ms, exits } => {
                assert_eq!(*ms, 500, "{fault:?}");
                // The boot's exits and the storm's: the guest never went idle. And none
                // after the kill: the run ended at once.
                assert!(*exits > 100, "{fault:?}: a storm of exits: {exits}");
                assert_eq!(r.exits, *exits, "{fault:?}");
            }
            k => panic!("{fault:?}: {k}"),
        }
        // Ended at the limit, at most one exit's handling (and the kick) after it; the
        // slack is for a loaded machine.
        assert!(took >= limit, "{fault:?} ended early: {took:?}");
        assert!(
            took < limit + Duration::from_millis(1500),
            "{fault:?} outlived its watchdog: {took:?}"
        );
        println!("{fault:?}: killed after {took:?}: {}", r.stop);
        let r = inproc::run(&cfg).expect("runs");
        match killed(&r) {
            Kill::Watchdog { ms: 500, exits } => {
                assert!(*exits > 100, "{fault:?}: {exits}");
                assert_eq!(r.exits, *exits, "{fault:?}");
            }
            k => panic!("{fault:?} in process: {k}"),
        }
    }
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
        (
            // L and D together are reserved: the CPU refuses to load such a segment. (kvm_pvm
            // lets it through; the host refuses it before entry either way.)
            Fault::GateDbSelector,
            sel(lguest_kernel::hostile::SPARE_GDT_ENTRY),
            "a 64-bit code segment with its D bit set too, which the CPU refuses to load"
                .to_string(),
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
fn a_fault_in_the_hosts_own_stub_names_gate_and_selectors() {
    // The guest marks its own stack segment not present (LOAD_GDT_ENTRY), then `int3`: the
    // host reflects the breakpoint through a gate it checked, but the stub's iretq back
    // into the guest loads the interrupted SS and takes #SS with that selector. The host
    // says so, naming the vector, the gate's code selector and the stack selector (from
    // its record of the frame: the CPU's fault frame overwrote the stub's vector word,
    // which is how it once reported an invented "exception 0").
    let r = run_within(&config(Fault::StubBadStack), Duration::from_secs(5));
    if !needs_cpu(&r) {
        return;
    }
    let cs = KERNEL_CS | GUEST_PL;
    let ss = KERNEL_DS | GUEST_PL;
    assert_eq!(
        killed(&r),
        &Kill::HostStubFault {
            fault: 12,
            error: KERNEL_DS,
            vector: 3,
            selector: cs,
            ss,
        },
        "{}",
        r.stop
    );
    assert!(
        r.stop.to_string().contains(&format!(
            "entering the guest's gate for vector 3 with code selector {cs:#x} and stack selector {ss:#x}"
        )),
        "{}",
        r.stop
    );
    // The breakpoint was reflected (the frame rewritten), the return into it failed.
    assert_eq!(r.traps, 1);
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
    // In process there is no CPU: the platform raises #NM exactly while the host's TS is
    // set (lguest's rule), and the handler's clts must clear it again in the host.
    let (r, ts) = inproc::run_with(&config(Fault::TsNm), |h| h.ts()).expect("runs");
    let s = shut_down(&r);
    assert!(
        s.reason
            .starts_with("exception 7 (device not available), emulated in process"),
        "{}",
        s.reason
    );
    assert_eq!(ts, TsState::Clear, "the handler's clts reached the host");
    println!(
        "checked in process: TS set by hypercall traps the next SSE instruction; clts clears it"
    );

    let (r, ts) = boot_with(&config(Fault::TsNm), |h| h.ts());
    if r.backend == Backend::InProcess {
        return;
    }
    let s = shut_down(&r);
    if s.reason.starts_with("exception 7 ") {
        // #NM reached the kernel's handler, which cleared TS and said so.
        println!("checked under KVM: #NM reached the guest's handler");
        assert_eq!(r.traps, 1);
        assert_eq!(ts, TsState::Clear);
    } else {
        // kvm_pvm fixes the hardware CR0 of a guest (pvm_set_cr0 only records the value,
        // which KVM_GET_SREGS reads back with TS set): the real CR0.TS and EM, and
        // CR4.OSFXSR, stay the host kernel's, so ring-3 SSE runs natively whatever the
        // vCPU's CR0 says, and pvm has no #NM intercept to emulate it with (XFD could make
        // only AMX state trap, and no exit happens at the SSE instruction for the host to
        // reflect one). The host did its part.
        assert_eq!(s.reason, "an SSE instruction ran with cr0.TS set");
        assert_eq!(ts, TsState::Set);
        println!(
            "NOT checked under KVM: kvm_pvm keeps the hardware CR0 fixed (the vCPU's CR0.TS \
             is recorded, never loaded), so ring-3 SSE runs natively and cannot trap with #NM \
             here, and nothing exits for the host to reflect one; the host set the guest's TS \
             and the vCPU's CR0.TS, and the in-process run above checks the semantics"
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
