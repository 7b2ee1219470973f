//! Results in several registers (tests/specs/fixtures/results.toml, Gunyah-style): the
//! generated guest wrappers served, in process, by the generated host's dispatch through a
//! vCPU's registers as a VMM holds them (the call read from `NR_REG` and `ARG_REGS`, the
//! answer written to `RESULT_REGS`), so every typed result, the `Err` of an error code, and
//! a register holding a value its type does not have are seen as a guest would see them.

use std::cell::RefCell;

use pv_tests::results::guest::{CallError, GunyahStyleHypercalls, Transport, Vmcall, Vmmcall};
use pv_tests::results::host::{
    self, DispatchError, GunyahStyleDefaultHost, GunyahStyleHost, ResultRegs,
};
use pv_tests::results::numbers::{self, ARG_REGS, RESULT_REGS};
use pv_tests::results::types::{
    CapId, GhError, HypervisorIdentifyResults, MsgqRecvResults, VcpuPollResults, VcpuState,
};

/// A Gunyah-style host: partitions are numbered from 0x100, a message queue holds messages.
#[derive(Default)]
struct Hyp {
    next_cap: u64,
    queue: Vec<u64>,
    rung: Vec<CapId>,
}

#[derive(Debug, PartialEq)]
struct Killed;

impl GunyahStyleHost for Hyp {
    type Error = Killed;

    fn hypervisor_identify(&mut self) -> Result<HypervisorIdentifyResults, Killed> {
        Ok(HypervisorIdentifyResults {
            api_info: 0x8000_0000_0000_0001,
            flags_0: 0b1011,
            flags_1: 0,
            flags_2: u64::MAX,
        })
    }

    fn partition_create_partition(
        &mut self,
        src_partition: CapId,
        cspace: CapId,
    ) -> Result<Result<CapId, GhError>, Killed> {
        if cspace == 0 {
            return Ok(Err(GhError::ArgInval));
        }
        if src_partition == u64::MAX {
            return Ok(Err(GhError::Unimplemented));
        }
        self.next_cap += 1;
        Ok(Ok(0x100 + self.next_cap))
    }

    fn msgq_recv(
        &mut self,
        msgq: CapId,
        _buffer: u64,
        size: u64,
    ) -> Result<Result<MsgqRecvResults, GhError>, Killed> {
        if msgq != 7 {
            return Err(Killed);
        }
        match self.queue.pop() {
            None => Ok(Err(GhError::Busy)),
            Some(len) => Ok(Ok(MsgqRecvResults {
                size: len.min(size),
                not_empty: !self.queue.is_empty(),
            })),
        }
    }

    fn doorbell_send(
        &mut self,
        doorbell: CapId,
        flags: u64,
    ) -> Result<Result<(), GhError>, Killed> {
        if flags != 0 {
            return Ok(Err(GhError::ArgInval));
        }
        self.rung.push(doorbell);
        Ok(Ok(()))
    }

    fn vcpu_poll(&mut self, vcpu: CapId) -> Result<VcpuPollResults, Killed> {
        Ok(VcpuPollResults {
            state: if vcpu == 1 {
                VcpuState::Running
            } else {
                VcpuState::Blocked
            },
            cpu: 3,
        })
    }

    fn trace_read(&mut self) -> Result<u64, Killed> {
        Ok(0x7ace)
    }

    fn yield_now(&mut self) -> Result<(), Killed> {
        Ok(())
    }
}

/// A vCPU's general-purpose registers, numbered as the transports number them.
type Gprs = [u64; 16];

/// The guest's trap, served as a VMM serves a hypercall exit: the call read from the vCPU's
/// registers where transport `T` puts it, dispatched, each `Some` of the answer written to
/// its register, and the result registers read back.
struct InProcess<H> {
    host: RefCell<H>,
    /// Which transport's registers: (NR_REG, ARG_REGS, RESULT_REGS).
    regs: (usize, [usize; ARG_REGS], [usize; RESULT_REGS]),
    /// What the last exit left in the vCPU.
    last: RefCell<Gprs>,
}

impl<H: GunyahStyleHost> InProcess<H> {
    fn new(host: H, regs: (usize, [usize; ARG_REGS], [usize; RESULT_REGS])) -> Self {
        InProcess {
            host: RefCell::new(host),
            regs,
            last: RefCell::new([0; 16]),
        }
    }
}

impl<H: GunyahStyleHost> Transport for InProcess<H>
where
    H::Error: std::fmt::Debug,
{
    fn hypercall_results(&self, nr: u64, args: [u64; ARG_REGS]) -> [u64; RESULT_REGS] {
        let (nr_reg, arg_regs, result_regs) = self.regs;
        // The guest side of the trap: the registers loaded.
        let mut gprs: Gprs = [0xdead; 16];
        gprs[nr_reg] = nr;
        for (r, a) in arg_regs.iter().zip(args) {
            gprs[*r] = a;
        }
        // The VMM: the call from the registers, the answer back into them.
        let answer: ResultRegs = host::dispatch(
            &mut *self.host.borrow_mut(),
            gprs[nr_reg],
            arg_regs.map(|r| gprs[r]),
        )
        .unwrap_or_else(|e| panic!("the host refused a call: {e:?}"));
        for (r, v) in result_regs.iter().zip(answer) {
            if let Some(v) = v {
                gprs[*r] = v;
            }
        }
        *self.last.borrow_mut() = gprs;
        // The guest side again: what the transport's asm reads back.
        result_regs.map(|r| gprs[r])
    }
}

fn vmcall<H: GunyahStyleHost>(host: H) -> InProcess<H> {
    InProcess::new(
        host,
        (Vmcall::NR_REG, Vmcall::ARG_REGS, Vmcall::RESULT_REGS),
    )
}

#[test]
fn typed_results_come_back_from_their_registers() {
    let g = vmcall(Hyp::default());
    assert_eq!(
        g.hypervisor_identify(),
        HypervisorIdentifyResults {
            api_info: 0x8000_0000_0000_0001,
            flags_0: 0b1011,
            flags_1: 0,
            flags_2: u64::MAX,
        }
    );
    // rax, rdi, rsi, rdx in x86 encoding: 0, 7, 6, 2.
    let last = *g.last.borrow();
    assert_eq!(
        (last[0], last[7], last[6], last[2]),
        (0x8000_0000_0000_0001, 0b1011, 0, u64::MAX)
    );
    assert_eq!(g.partition_create_partition(1, 2), Ok(0x101));
    assert_eq!(g.partition_create_partition(1, 2), Ok(0x102));
    g.host.borrow_mut().queue = vec![64, 4096];
    assert_eq!(
        g.msgq_recv(7, 0x1000, 1024),
        Ok(MsgqRecvResults {
            size: 1024,
            not_empty: true
        })
    );
    assert_eq!(
        g.msgq_recv(7, 0x1000, 1024),
        Ok(MsgqRecvResults {
            size: 64,
            not_empty: false
        })
    );
    assert_eq!(g.doorbell_send(9, 0), Ok(()));
    assert_eq!(g.host.borrow().rung, [9]);
    assert_eq!(
        g.vcpu_poll(1),
        Ok(VcpuPollResults {
            state: VcpuState::Running,
            cpu: 3
        })
    );
    // `ret` and nothing still work beside them.
    assert_eq!(g.trace_read(), 0x7ace);
    g.yield_now();
}

#[test]
fn an_error_code_is_err_and_the_values_are_zero() {
    let g = vmcall(Hyp::default());
    assert_eq!(
        g.partition_create_partition(1, 0),
        Err(CallError::Failed(GhError::ArgInval))
    );
    // new_cap's register (rdi, 7) was zeroed, not left as the argument.
    assert_eq!(g.last.borrow()[7], 0);
    // GH_ERROR_UNIMPLEMENTED is -1 in a 32-bit error_t.
    assert_eq!(
        g.partition_create_partition(u64::MAX, 2),
        Err(CallError::Failed(GhError::Unimplemented))
    );
    assert_eq!(g.last.borrow()[0], 0xffff_ffff);
    assert_eq!(g.msgq_recv(7, 0, 16), Err(CallError::Failed(GhError::Busy)));
    assert_eq!(
        g.doorbell_send(9, 1),
        Err(CallError::Failed(GhError::ArgInval))
    );
    assert!(g.host.borrow().rung.is_empty());
}

#[test]
fn the_answer_names_the_registers_the_host_writes() {
    let mut h = Hyp::default();
    // Success: the error register gets `ok` (0), new_cap its value; the rest stay the guest's.
    assert_eq!(
        host::dispatch(&mut h, numbers::PARTITION_CREATE_PARTITION, [1, 2, 0, 0]),
        Ok([Some(0), Some(0x101), None, None, None])
    );
    // An error code: the code in rax, 0 in the value registers.
    assert_eq!(
        host::dispatch(&mut h, numbers::MSGQ_RECV, [7, 0, 0, 0]),
        Ok([
            Some(u64::from(GhError::Busy.raw())),
            Some(0),
            Some(0),
            None,
            None
        ])
    );
    // A call without results answers in the result register only.
    assert_eq!(
        host::dispatch(&mut h, numbers::TRACE_READ, [0; 4]),
        Ok([Some(0x7ace), None, None, None, None])
    );
    assert_eq!(
        host::dispatch(&mut h, numbers::YIELD_NOW, [0; 4]),
        Ok([Some(0), None, None, None, None])
    );
    // The handler's own refusal is still the host's.
    assert_eq!(
        host::dispatch(&mut h, numbers::MSGQ_RECV, [8, 0, 0, 0]),
        Err(DispatchError::Host(Killed))
    );
}

/// A host that answers with whatever registers it is given: one that does not follow the
/// spec.
struct Raw([u64; RESULT_REGS]);

impl Transport for Raw {
    fn hypercall_results(&self, _nr: u64, _args: [u64; ARG_REGS]) -> [u64; RESULT_REGS] {
        self.0
    }
}

#[test]
fn a_register_outside_its_type_is_a_bad_result() {
    // 99 is no gh_error.
    assert_eq!(
        Raw([99, 5, 0, 0, 0]).partition_create_partition(1, 2),
        Err(CallError::BadResult {
            call: "partition_create_partition",
            result: "error",
            value: 99
        })
    );
    // A bool that is 2.
    assert_eq!(
        Raw([0, 5, 2, 0, 0]).msgq_recv(7, 0, 8),
        Err(CallError::BadResult {
            call: "msgq_recv",
            result: "not_empty",
            value: 2
        })
    );
    // 7 is no vcpu_state; a cpu wider than u32.
    assert_eq!(
        Raw([7, 0, 0, 0, 0]).vcpu_poll(1),
        Err(CallError::BadResult {
            call: "vcpu_poll",
            result: "state",
            value: 7
        })
    );
    let e = Raw([2, 0, 1 << 32, 0, 0]).vcpu_poll(1).unwrap_err();
    assert_eq!(
        e,
        CallError::BadResult {
            call: "vcpu_poll",
            result: "cpu",
            value: 1 << 32
        }
    );
    assert_eq!(
        e.to_string(),
        "vcpu_poll: result `cpu` = 0x100000000 is not a value of its type"
    );
    // u64 results take any register: no Result to handle.
    let id = Raw([1, 2, 3, 4, 5]).hypervisor_identify();
    assert_eq!(
        (id.api_info, id.flags_0, id.flags_1, id.flags_2),
        (1, 2, 3, 4)
    );
}

#[test]
fn both_transports_read_results_from_the_same_places() {
    assert_eq!(Vmcall::RESULT_REGS, Vmmcall::RESULT_REGS);
    // rax, then rdi, rsi, rdx, r8.
    assert_eq!(Vmcall::RESULT_REGS, [0, 7, 6, 2, 8]);
    let g = InProcess::new(
        Hyp::default(),
        (Vmmcall::NR_REG, Vmmcall::ARG_REGS, Vmmcall::RESULT_REGS),
    );
    assert_eq!(g.partition_create_partition(1, 2), Ok(0x101));
}

/// A double that overrides nothing.
struct Quiet;

impl GunyahStyleDefaultHost for Quiet {
    type Error = Killed;
}

#[test]
fn the_default_host_answers_success_with_zero_values() {
    let g = vmcall(Quiet);
    assert_eq!(g.partition_create_partition(1, 2), Ok(0));
    assert_eq!(
        g.msgq_recv(7, 0, 8),
        Ok(MsgqRecvResults {
            size: 0,
            not_empty: false
        })
    );
    // vcpu_state has no 0: its first variant.
    assert_eq!(
        g.vcpu_poll(1),
        Ok(VcpuPollResults {
            state: VcpuState::Ready,
            cpu: 0
        })
    );
}

mod with_memory {
    //! tests/specs/fixtures/results_edges.toml: results beside a struct in guest memory (the
    //! host writes the struct's `out` field back and answers in rbx and rcx), an error code
    //! whose success value is 1, and results named like the generated code's locals.

    use std::cell::RefCell;

    use host_stubs::memory::GuestMem;
    use pv_tests::results_edges::guest::{
        CallError, ResultsEdgesHypercalls, Translate, Transport, Vmcall,
    };
    use pv_tests::results_edges::host::{self, ResultsEdgesHost};
    use pv_tests::results_edges::numbers::{ARG_REGS, RESULT_REGS};
    use pv_tests::results_edges::structs::Req;
    use pv_tests::results_edges::types::{Mode, Status, SubmitResults};

    struct Xlate<'a>(&'a GuestMem);

    impl Translate for Xlate<'_> {
        fn pa(&self, va: *const u8) -> u64 {
            self.0
                .gpa_of(va, 1)
                .expect("the guest's data lives in guest memory")
        }
    }

    struct Edges;

    impl ResultsEdgesHost for Edges {
        type Error = String;

        fn submit(
            &mut self,
            regs: &mut Req,
            e: u32,
        ) -> Result<Result<SubmitResults, Status>, String> {
            if e == 0 {
                return Ok(Err(Status::Bad));
            }
            regs.done = regs.op * 2;
            Ok(Ok(SubmitResults {
                value: u64::from(regs.op) << 40,
                r0: e as u8,
            }))
        }

        fn mode_of(&mut self) -> Result<Mode, String> {
            Ok(Mode::Slow)
        }

        fn counter(&mut self) -> Result<u64, String> {
            Ok(41)
        }

        fn check(&mut self, r1: u64) -> Result<Result<(), Status>, String> {
            Ok(if r1 == 0 { Err(Status::Worse) } else { Ok(()) })
        }
    }

    /// The trap, as a VMM serves it: registers in, answer written to `RESULT_REGS`.
    struct InProcess<'a> {
        host: RefCell<Edges>,
        mem: &'a GuestMem,
    }

    impl Transport for InProcess<'_> {
        fn hypercall_results(&self, nr: u64, args: [u64; ARG_REGS]) -> [u64; RESULT_REGS] {
            let mut gprs = [0u64; 16];
            gprs[Vmcall::NR_REG] = nr;
            for (r, a) in Vmcall::ARG_REGS.iter().zip(args) {
                gprs[*r] = a;
            }
            let answer = host::dispatch(
                &mut *self.host.borrow_mut(),
                self.mem,
                gprs[Vmcall::NR_REG],
                Vmcall::ARG_REGS.map(|r| gprs[r]),
            )
            .unwrap_or_else(|e| panic!("the host refused a call: {e}"));
            for (r, v) in Vmcall::RESULT_REGS.iter().zip(answer) {
                if let Some(v) = v {
                    gprs[*r] = v;
                }
            }
            Vmcall::RESULT_REGS.map(|r| gprs[r])
        }
    }

    #[test]
    fn results_come_back_beside_memory_written_back() {
        let gm = GuestMem::new(1 << 16).expect("maps guest memory");
        let p = gm
            .host_ptr(0x1000, 8)
            .expect("inside guest memory")
            .cast::<Req>();
        // SAFETY: `host_ptr` checked the range lies inside the mapping; it is aligned, and
        // nothing else refers to it while the reference lives.
        let req = unsafe {
            p.as_ptr().write(Req { op: 21, done: 0 });
            &mut *p.as_ptr()
        };
        let t = InProcess {
            host: RefCell::new(Edges),
            mem: &gm,
        };
        let x = Xlate(&gm);
        // rbx carries the request's address in and `value` out; `code` is 1 for success.
        assert_eq!(
            t.submit(&x, req, 7),
            Ok(SubmitResults {
                value: 21 << 40,
                r0: 7
            })
        );
        assert_eq!(req.done, 42);
        assert_eq!(t.submit(&x, req, 0), Err(CallError::Failed(Status::Bad)));
        assert_eq!(t.mode_of(), Ok(Mode::Slow));
        assert_eq!(t.counter(), 41);
        assert_eq!(t.check(1), Ok(()));
        assert_eq!(t.check(0), Err(CallError::Failed(Status::Worse)));
    }
}

mod properties {
    //! Any registers a host answers with: the wrappers never panic, and each result is
    //! exactly its register when its type holds the value, else the error the spec says.

    use proptest::prelude::*;

    use super::{Hyp, Raw, vmcall};
    use pv_tests::results::guest::{CallError, GunyahStyleHypercalls};
    use pv_tests::results::types::{GhError, HypervisorIdentifyResults, VcpuState};

    /// Registers that are often edges: small values, type maxima, and random ones.
    fn reg() -> impl Strategy<Value = u64> {
        prop_oneof![
            0u64..40,
            Just(u64::from(u32::MAX)),
            Just(u64::from(u32::MAX) - 1),
            Just(u64::from(u32::MAX) + 1),
            Just(u64::MAX),
            any::<u64>(),
        ]
    }

    proptest! {
        #[test]
        fn every_register_decodes_as_the_spec_says(regs in prop::array::uniform5(reg())) {
            let t = Raw(regs);
            // partition_create_partition: error in rax (a u32 gh_error, 0 is success),
            // new_cap in rdi (any u64).
            let want = if regs[0] == 0 {
                Ok(regs[1])
            } else {
                match u32::try_from(regs[0]).ok().and_then(GhError::from_raw) {
                    Some(e) => Err(CallError::Failed(e)),
                    None => Err(CallError::BadResult {
                        call: "partition_create_partition",
                        result: "error",
                        value: regs[0],
                    }),
                }
            };
            prop_assert_eq!(t.partition_create_partition(1, 2), want);
            // vcpu_poll: state in rax (a u8 vcpu_state), cpu in rsi (a u32).
            let got = t.vcpu_poll(1);
            match u8::try_from(regs[0]).ok().and_then(VcpuState::from_raw) {
                None => prop_assert_eq!(got, Err(CallError::BadResult {
                    call: "vcpu_poll", result: "state", value: regs[0],
                })),
                Some(s) => match u32::try_from(regs[2]) {
                    Ok(cpu) => {
                        let v = got.expect("both fit");
                        prop_assert_eq!((v.state, v.cpu), (s, cpu));
                    }
                    Err(_) => prop_assert_eq!(got, Err(CallError::BadResult {
                        call: "vcpu_poll", result: "cpu", value: regs[2],
                    })),
                },
            }
            // Whatever else, no wrapper panics.
            let _ = t.msgq_recv(1, 2, 3);
            let _ = t.doorbell_send(1, 0);
            let _ = t.hypervisor_identify();
        }

        #[test]
        fn what_the_host_returns_the_guest_gets(v in prop::array::uniform4(any::<u64>())) {
            struct Id([u64; 4]);
            impl pv_tests::results::host::GunyahStyleDefaultHost for Id {
                type Error = ();
                fn hypervisor_identify(&mut self) -> Result<HypervisorIdentifyResults, ()> {
                    let [api_info, flags_0, flags_1, flags_2] = self.0;
                    Ok(HypervisorIdentifyResults { api_info, flags_0, flags_1, flags_2 })
                }
            }
            let g = super::InProcess::new(Id(v), (
                pv_tests::results::guest::Vmcall::NR_REG,
                pv_tests::results::guest::Vmcall::ARG_REGS,
                pv_tests::results::guest::Vmcall::RESULT_REGS,
            ));
            let got = g.hypervisor_identify();
            prop_assert_eq!([got.api_info, got.flags_0, got.flags_1, got.flags_2], v);
            // A host's typed answer round-trips for error calls too.
            let h = vmcall(Hyp::default());
            prop_assert_eq!(h.partition_create_partition((v[0] >> 1) | 1, v[1] | 1).map(|c| c > 0x100), Ok(true));
        }
    }
}
