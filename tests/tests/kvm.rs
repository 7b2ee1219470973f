//! spec/kvm.toml, KVM's own paravirtual hypercalls: a second ABI, unrelated to lguest,
//! driven through its generated dispatch.

use pv_tests::kvm::host::{BadArgument, DispatchError, KvmHost, Violation, dispatch};
use pv_tests::kvm::numbers::{self, Hypercall};
use pv_tests::kvm::types::ClockType;

/// A host that records what it was asked, and refuses vCPUs it does not have.
#[derive(Default)]
struct Recorder {
    calls: Vec<String>,
    vcpus: u64,
}

#[derive(Debug, PartialEq)]
struct NoSuchVcpu(u64);

impl KvmHost for Recorder {
    type Error = NoSuchVcpu;
    fn vapic_poll_irq(&mut self) -> Result<u64, NoSuchVcpu> {
        self.calls.push("vapic_poll_irq".into());
        Ok(0)
    }
    fn kick_cpu(&mut self, flags: u64, apicid: u64) -> Result<u64, NoSuchVcpu> {
        if apicid >= self.vcpus {
            return Err(NoSuchVcpu(apicid));
        }
        self.calls.push(format!("kick_cpu({flags}, {apicid})"));
        Ok(0)
    }
    fn clock_pairing(&mut self, paddr: u64, clock_type: ClockType) -> Result<u64, NoSuchVcpu> {
        self.calls
            .push(format!("clock_pairing({paddr:#x}, {})", clock_type.name()));
        Ok(0)
    }
    fn send_ipi(&mut self, low: u64, high: u64, min: u64, icr: u64) -> Result<u64, NoSuchVcpu> {
        self.calls
            .push(format!("send_ipi({low:#x}, {high:#x}, {min}, {icr:#x})"));
        Ok(u64::from(low.count_ones() + high.count_ones()))
    }
    fn sched_yield(&mut self, dest: u64) -> Result<u64, NoSuchVcpu> {
        self.calls.push(format!("sched_yield({dest})"));
        Ok(0)
    }
    fn map_gpa_range(&mut self, gpa: u64, npages: u64, attrs: u64) -> Result<u64, NoSuchVcpu> {
        self.calls
            .push(format!("map_gpa_range({gpa:#x}, {npages}, {attrs:#x})"));
        Ok(0)
    }
}

fn bad(
    call: Hypercall,
    arg: &'static str,
    index: usize,
    value: u64,
    violation: Violation,
) -> DispatchError<NoSuchVcpu> {
    DispatchError::BadArgument(BadArgument {
        call,
        arg,
        index,
        value,
        violation,
    })
}

#[test]
fn valid_calls_reach_the_handler_with_typed_arguments_and_return_its_value() {
    let mut h = Recorder {
        vcpus: 4,
        ..Default::default()
    };
    assert_eq!(dispatch(&mut h, numbers::KICK_CPU, [0, 3, 0, 0]), Ok(0));
    assert_eq!(
        dispatch(&mut h, numbers::SEND_IPI, [0b1011, 1, 0, 0xfd]),
        Ok(4)
    );
    assert_eq!(
        dispatch(&mut h, numbers::CLOCK_PAIRING, [0x1000, 0, 0, 0]),
        Ok(0)
    );
    assert_eq!(
        dispatch(&mut h, numbers::VAPIC_POLL_IRQ, [9, 9, 9, 9]),
        Ok(0)
    );
    assert_eq!(
        dispatch(&mut h, numbers::MAP_GPA_RANGE, [0x20_0000, 512, 0x11, 0]),
        Ok(0)
    );
    assert_eq!(
        h.calls,
        [
            "kick_cpu(0, 3)",
            "send_ipi(0xb, 0x1, 0, 0xfd)",
            "clock_pairing(0x1000, wallclock)",
            "vapic_poll_irq",
            "map_gpa_range(0x200000, 512, 0x11)",
        ]
    );
}

#[test]
fn every_constraint_is_checked_before_the_handler_runs() {
    let mut h = Recorder {
        vcpus: 4,
        ..Default::default()
    };
    assert_eq!(
        dispatch(&mut h, 42, [0; 4]),
        Err(DispatchError::UnknownHypercall { nr: 42 })
    );
    assert_eq!(
        dispatch(&mut h, numbers::KICK_CPU, [1, 0, 0, 0]),
        Err(bad(
            Hypercall::KickCpu,
            "flags",
            0,
            1,
            Violation::Range { lo: 0, hi: 0 }
        ))
    );
    assert_eq!(
        dispatch(&mut h, numbers::KICK_CPU, [0, 1 << 32, 0, 0]),
        Err(bad(
            Hypercall::KickCpu,
            "apicid",
            1,
            1 << 32,
            Violation::Range {
                lo: 0,
                hi: 0xffff_ffff
            }
        ))
    );
    assert_eq!(
        dispatch(&mut h, numbers::CLOCK_PAIRING, [0x1004, 0, 0, 0]),
        Err(bad(
            Hypercall::ClockPairing,
            "paddr",
            0,
            0x1004,
            Violation::Align { align: 8 }
        ))
    );
    assert_eq!(
        dispatch(&mut h, numbers::CLOCK_PAIRING, [0x1000, 7, 0, 0]),
        Err(bad(
            Hypercall::ClockPairing,
            "clock_type",
            1,
            7,
            Violation::Enum { ty: "clock_type" }
        ))
    );
    assert_eq!(
        dispatch(&mut h, numbers::MAP_GPA_RANGE, [0x1000, 0, 0, 0]),
        Err(bad(
            Hypercall::MapGpaRange,
            "npages",
            1,
            0,
            Violation::Range {
                lo: 1,
                hi: 0xf_ffff_ffff_ffff
            }
        ))
    );
    // The handler's own refusal comes back as such.
    assert_eq!(
        dispatch(&mut h, numbers::KICK_CPU, [0, 9, 0, 0]),
        Err(DispatchError::Host(NoSuchVcpu(9)))
    );
    assert!(
        h.calls.is_empty(),
        "no handler ran for a bad call: {:?}",
        h.calls
    );
    // Errors read well.
    let e = dispatch(&mut h, numbers::CLOCK_PAIRING, [0x1004, 0, 0, 0]).unwrap_err();
    assert_eq!(
        format!("{}", DisplayErr(e)),
        "hypercall clock_pairing (9): argument `paddr` = 0x1004 is not a multiple of 0x8"
    );
}

struct DisplayErr(DispatchError<NoSuchVcpu>);

impl std::fmt::Display for DisplayErr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            DispatchError::BadArgument(b) => b.fmt(f),
            other => write!(f, "{other:?}"),
        }
    }
}

#[test]
fn numbers_round_trip() {
    for c in Hypercall::ALL {
        assert_eq!(Hypercall::try_from(c.nr()), Ok(c));
        assert!(c.returns_value(), "every KVM hypercall returns a value");
    }
    assert_eq!(numbers::SEND_IPI, 10);
    assert_eq!(numbers::ENOSYS, 1000);
}

#[test]
fn decode_types_a_call_without_running_it() {
    use pv_tests::kvm::host::{Call, DecodeError, decode, run};
    let call = decode(numbers::CLOCK_PAIRING, [0x2000, 0, 0, 0]).expect("valid");
    assert_eq!(
        call,
        Call::ClockPairing {
            paddr: 0x2000,
            clock_type: ClockType::Wallclock
        }
    );
    assert_eq!(call.hypercall(), Hypercall::ClockPairing);
    assert_eq!(
        decode(99, [0; 4]),
        Err(DecodeError::UnknownHypercall { nr: 99 })
    );
    // The decoded call runs later, on any host.
    let mut h = Recorder {
        vcpus: 1,
        ..Default::default()
    };
    assert_eq!(run(&mut h, call), Ok(0));
    assert_eq!(h.calls, ["clock_pairing(0x2000, wallclock)"]);
}
