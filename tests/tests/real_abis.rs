//! The ABIs written from their sources (spec/jailhouse.toml, spec/acrn.toml, spec/xen.toml),
//! driven through their generated dispatch: every call decodes to itself, an unknown number
//! and a bad argument are refused with the error a host would report, and the numbers are
//! the ones the real headers define (the test oracle, cited per ABI).

use host_stubs::memory::GuestMem;
use pv_tests::{acrn, jailhouse, xen};

/// Jailhouse's host, recording each call as the hypervisor's `hypercall()` would see it.
#[derive(Default)]
struct Cells {
    log: Vec<String>,
    next_id: u64,
}

#[derive(Debug, PartialEq)]
struct NoSuchCell(u64);

impl jailhouse::host::JailhouseHost for Cells {
    type Error = NoSuchCell;
    fn disable(&mut self) -> Result<u64, NoSuchCell> {
        self.log.push("disable".into());
        Ok(0)
    }
    fn cell_create(&mut self, config_address: u64) -> Result<u64, NoSuchCell> {
        self.next_id += 1;
        self.log.push(format!("cell_create({config_address:#x})"));
        Ok(self.next_id)
    }
    fn cell_start(&mut self, id: u64) -> Result<u64, NoSuchCell> {
        self.known(id)?;
        self.log.push(format!("cell_start({id})"));
        Ok(0)
    }
    fn cell_set_loadable(&mut self, id: u64) -> Result<u64, NoSuchCell> {
        self.known(id)?;
        self.log.push(format!("cell_set_loadable({id})"));
        Ok(0)
    }
    fn cell_destroy(&mut self, id: u64) -> Result<u64, NoSuchCell> {
        self.known(id)?;
        self.log.push(format!("cell_destroy({id})"));
        Ok(0)
    }
    fn hypervisor_get_info(
        &mut self,
        info_type: jailhouse::types::InfoType,
    ) -> Result<u64, NoSuchCell> {
        self.log
            .push(format!("hypervisor_get_info({})", info_type.name()));
        Ok(info_type.raw() * 10)
    }
    fn cell_get_state(&mut self, id: u64) -> Result<u64, NoSuchCell> {
        self.known(id)?;
        Ok(0)
    }
    fn cpu_get_info(&mut self, cpu_id: u64, info_type: u64) -> Result<u64, NoSuchCell> {
        self.log
            .push(format!("cpu_get_info({cpu_id}, {info_type})"));
        Ok(0)
    }
    fn debug_console_putc(&mut self, c: u64) -> Result<u64, NoSuchCell> {
        self.log.push(format!("putc({:?})", char::from(c as u8)));
        Ok(0)
    }
}

impl Cells {
    fn known(&self, id: u64) -> Result<(), NoSuchCell> {
        if id == 0 || id > self.next_id {
            return Err(NoSuchCell(id));
        }
        Ok(())
    }
}

#[test]
fn jailhouse_numbers_are_the_headers() {
    use jailhouse::numbers::*;
    // include/jailhouse/hypercall.h: JAILHOUSE_HC_DISABLE 0 ... JAILHOUSE_HC_DEBUG_CONSOLE_PUTC 8.
    let expected = [
        (DISABLE, 0),
        (CELL_CREATE, 1),
        (CELL_START, 2),
        (CELL_SET_LOADABLE, 3),
        (CELL_DESTROY, 4),
        (HYPERVISOR_GET_INFO, 5),
        (CELL_GET_STATE, 6),
        (CPU_GET_INFO, 7),
        (DEBUG_CONSOLE_PUTC, 8),
    ];
    for (got, want) in expected {
        assert_eq!(got, want);
    }
    assert_eq!(Hypercall::ALL.len(), expected.len());
    // jailhouse_hypercall.h: the number in rax ("a"), arguments in rdi ("D") and rsi ("S"),
    // the result in rax; x86 encoding numbers rax 0, rsi 6, rdi 7.
    for t in [
        (
            jailhouse::guest::Vmcall::NR_REG,
            jailhouse::guest::Vmcall::ARG_REGS,
            jailhouse::guest::Vmcall::RET_REG,
        ),
        (
            jailhouse::guest::Vmmcall::NR_REG,
            jailhouse::guest::Vmmcall::ARG_REGS,
            jailhouse::guest::Vmmcall::RET_REG,
        ),
    ] {
        assert_eq!(t, (0, [7, 6], 0));
    }
}

#[test]
fn jailhouse_dispatch_runs_each_call_and_refuses_what_the_spec_forbids() {
    use jailhouse::host::{DecodeError, DispatchError, Violation, decode, dispatch};
    use jailhouse::numbers::*;
    let mut h = Cells::default();
    assert_eq!(dispatch(&mut h, CELL_CREATE, [0x10_0000, 0]), Ok(1));
    assert_eq!(dispatch(&mut h, CELL_START, [1, 0]), Ok(0));
    assert_eq!(dispatch(&mut h, CELL_SET_LOADABLE, [1, 0]), Ok(0));
    assert_eq!(dispatch(&mut h, HYPERVISOR_GET_INFO, [4, 0]), Ok(40));
    assert_eq!(dispatch(&mut h, CELL_GET_STATE, [1, 0]), Ok(0));
    assert_eq!(dispatch(&mut h, CPU_GET_INFO, [3, 1003]), Ok(0));
    assert_eq!(
        dispatch(&mut h, DEBUG_CONSOLE_PUTC, [u64::from(b'J'), 0]),
        Ok(0)
    );
    assert_eq!(dispatch(&mut h, CELL_DESTROY, [1, 0]), Ok(0));
    assert_eq!(dispatch(&mut h, DISABLE, [0, 0]), Ok(0));
    assert_eq!(
        h.log,
        [
            "cell_create(0x100000)",
            "cell_start(1)",
            "cell_set_loadable(1)",
            "hypervisor_get_info(num_cells)",
            "cpu_get_info(3, 1003)",
            "putc('J')",
            "cell_destroy(1)",
            "disable",
        ]
    );
    // The handler's own refusal comes back as Host.
    assert_eq!(
        dispatch(&mut h, CELL_START, [7, 0]),
        Err(DispatchError::Host(NoSuchCell(7)))
    );
    // JAILHOUSE_HC_DEBUG_CONSOLE_PUTC is the last: 9 is unknown (control.c: -ENOSYS).
    assert_eq!(
        decode(9, [0, 0]),
        Err(DecodeError::UnknownHypercall { nr: 9 })
    );
    // JAILHOUSE_INFO_NUM_CELLS (4) is the last info type; the handler never sees 5.
    let before = h.log.len();
    match dispatch(&mut h, HYPERVISOR_GET_INFO, [5, 0]) {
        Err(DispatchError::BadArgument(b)) => {
            assert_eq!((b.arg, b.index, b.value), ("info_type", 0, 5));
            assert_eq!(b.violation, Violation::Enum { ty: "info_type" });
            let msg = b.to_string();
            for part in [
                "hypervisor_get_info",
                "`info_type` = 0x5",
                "not a value of `info_type`",
            ] {
                assert!(msg.contains(part), "{msg}");
            }
        }
        other => panic!("expected a bad argument, got {other:?}"),
    }
    assert_eq!(h.log.len(), before, "the handler did not run");
}

#[test]
fn acrn_ids_are_built_as_the_header_builds_them() {
    use acrn::numbers::*;
    // acrn_hv_defs.h: BASE_HC_ID(x, y) = ((x) << 24U) | (y), HC_ID 0x80UL.
    let id = |base: u64, n: u64| (0x80 << 24) | (base + n);
    assert_eq!(GET_API_VERSION, id(0x00, 0x00));
    assert_eq!(GET_PLATFORM_INFO, id(0x00, 0x03));
    assert_eq!(CREATE_VM, id(0x10, 0x00));
    assert_eq!(SET_VCPU_REGS, id(0x10, 0x06));
    assert_eq!(INJECT_MSI, id(0x20, 0x03));
    assert_eq!(SET_IRQLINE, id(0x20, 0x05));
    assert_eq!(NOTIFY_REQUEST_FINISH, id(0x30, 0x01));
    assert_eq!(VM_GPA2HPA, id(0x40, 0x01));
    assert_eq!(VM_WRITE_PROTECT_PAGE, id(0x40, 0x03));
    assert_eq!(DEASSIGN_MMIODEV, id(0x50, 0x08));
    assert_eq!(PROFILING_OPS, id(0x60, 0x02));
    assert_eq!(SAVE_RESTORE_SWORLD_CTX, id(0x70, 0x02));
    assert_eq!(PM_GET_CPU_STATE, id(0x80, 0x00));
    assert_eq!(Hypercall::ALL.len(), 36);
    // vmcall.c: the id in r8, param1 in rdi, param2 in rsi, the result in rax.
    use acrn::guest::Vmcall;
    assert_eq!(
        (Vmcall::NR_REG, Vmcall::ARG_REGS, Vmcall::RET_REG),
        (8, [7, 6], 0)
    );
}

/// Every call of `ALL` decodes to itself from registers holding small valid values.
fn each_call_decodes<
    H: Copy + std::fmt::Debug + PartialEq,
    C: std::fmt::Debug,
    E: std::fmt::Debug,
>(
    all: &[H],
    nr: impl Fn(H) -> u64,
    decode: impl Fn(u64) -> Result<C, E>,
    of: impl Fn(&C) -> H,
) {
    for &h in all {
        let call = decode(nr(h)).unwrap_or_else(|e| panic!("{h:?} does not decode: {e:?}"));
        assert_eq!(of(&call), h);
    }
}

#[test]
fn acrn_dispatch_decodes_each_call_and_refuses_what_the_spec_forbids() {
    use acrn::host::{Call, DecodeError, Violation, decode};
    use acrn::numbers::*;
    use acrn::types::ProfilingCmd;
    each_call_decodes(
        &Hypercall::ALL,
        Hypercall::nr,
        |nr| decode(nr, [1, 0x1000]),
        Call::hypercall,
    );
    assert_eq!(
        decode(PROFILING_OPS, [8, 0x2000]),
        Ok(Call::ProfilingOps {
            cmd: ProfilingCmd::GetStatus,
            param: 0x2000
        })
    );
    // HC_ID_PM_BASE + 0x01 is not an id: the header defines none after HC_PM_GET_CPU_STATE.
    assert_eq!(
        decode(PM_GET_CPU_STATE + 1, [0, 0]),
        Err(DecodeError::UnknownHypercall {
            nr: PM_GET_CPU_STATE + 1
        })
    );
    // The ids live at 0x80 << 24: the group offset alone is not an id.
    assert_eq!(
        decode(0x10, [0, 0]),
        Err(DecodeError::UnknownHypercall { nr: 0x10 })
    );
    // enum profiling_cmd_type ends at PROFILING_GET_STATUS (8).
    match decode(PROFILING_OPS, [9, 0]) {
        Err(DecodeError::BadArgument(b)) => {
            assert_eq!((b.arg, b.index, b.value), ("cmd", 0, 9));
            assert_eq!(
                b.violation,
                Violation::Enum {
                    ty: "profiling_cmd"
                }
            );
        }
        other => panic!("expected a bad argument, got {other:?}"),
    }
}

#[test]
fn xen_numbers_are_the_headers() {
    use xen::numbers::*;
    // xen/include/public/xen.h: __HYPERVISOR_set_trap_table 0 ... xenpmu_op 40, no 11,
    // arch_0..arch_7 48..55.
    let nrs: Vec<u64> = Hypercall::ALL.iter().map(|h| h.nr()).collect();
    let mut want: Vec<u64> = (0..=40).filter(|n| *n != 11).collect();
    want.extend(48..=55);
    assert_eq!(nrs, want);
    assert_eq!(
        (
            SET_TRAP_TABLE,
            MMU_UPDATE,
            MEMORY_OP,
            IRET,
            SCHED_OP,
            EVENT_CHANNEL_OP,
            HVM_OP
        ),
        (0, 1, 12, 23, 29, 32, 34)
    );
    assert_eq!((DOMCTL, XENPMU_OP, ARCH_0, ARCH_7), (36, 40, 48, 55));
    // x86_64: the number in rax, arguments in rdi, rsi, rdx, r10, r8, the result in rax.
    use xen::guest::{Vmcall, Vmmcall};
    assert_eq!(ARG_REGS, 5);
    for regs in [
        (Vmcall::NR_REG, Vmcall::ARG_REGS, Vmcall::RET_REG),
        (Vmmcall::NR_REG, Vmmcall::ARG_REGS, Vmmcall::RET_REG),
    ] {
        assert_eq!(regs, (0, [7, 6, 2, 10, 8], 0));
    }
}

/// Guest memory for Xen's calls: host-stubs' `GuestMem`, whose guest-virtual addresses are
/// the guest's own pointers into it (an in-process guest's data lives in the mapping), so
/// `translate` is the mapping's inverse.
struct XenMem<'a>(&'a GuestMem);

impl xen::host::GuestMemory for XenMem<'_> {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Result<(), xen::host::OutsideMemory> {
        self.0.read(gpa, buf).map_err(|_| xen::host::OutsideMemory)
    }
    fn write(&self, gpa: u64, buf: &[u8]) -> Result<(), xen::host::OutsideMemory> {
        self.0.write(gpa, buf).map_err(|_| xen::host::OutsideMemory)
    }
    fn contains(&self, gpa: u64, len: u64) -> bool {
        self.0.check(gpa, len).is_ok()
    }
    fn translate(&self, gva: u64) -> Option<u64> {
        self.0.gpa_of(std::ptr::without_provenance(gva as usize), 1)
    }
}

/// The guest-virtual address (a pointer into the mapping) of guest-physical `gpa`.
fn gva(mem: &GuestMem, gpa: u64) -> u64 {
    mem.host_ptr(gpa, 1)
        .expect("inside guest memory")
        .as_ptr()
        .addr() as u64
}

#[test]
fn xen_dispatch_decodes_each_call_and_refuses_what_the_spec_forbids() {
    use xen::host::{Call, DecodeError, Scratch, Violation, decode};
    use xen::numbers::*;
    let gm = GuestMem::new(1 << 16).expect("maps guest memory");
    let mem = XenMem(&gm);
    let mut scratch: Box<Scratch> = Box::default();
    // Small valid registers for every call; mmu_update's and mmuext_op's request arrays and
    // `pdone` lie in (zeroed) guest memory.
    let (reqs, done) = (gva(&gm, 0x1000), gva(&gm, 0x2000));
    for &h in &Hypercall::ALL {
        let regs = match h {
            Hypercall::MmuUpdate | Hypercall::MmuextOp => [reqs, 2, done, 0x7ff0, 0],
            _ => [1, 2, 3, 4, 5],
        };
        let call = decode(&mem, &mut scratch, h.nr(), regs)
            .unwrap_or_else(|e| panic!("{h:?} does not decode: {e:?}"));
        assert_eq!(call.hypercall(), h);
    }
    match decode(&mem, &mut scratch, MMU_UPDATE, [reqs, 2, done, 0x7ff0, 0]) {
        Ok(Call::MmuUpdate {
            ureqs,
            count,
            pdone,
            foreigndom,
        }) => {
            assert_eq!((ureqs.addr, ureqs.value.len(), count), (reqs, 2, 2));
            assert_eq!(
                (pdone.addr, pdone.value.len(), foreigndom),
                (done, 1, 0x7ff0)
            );
        }
        other => panic!("expected mmu_update, got {other:?}"),
    }
    // 11 was never assigned; 41 is past this header's last number.
    for nr in [11, 41, 56] {
        assert_eq!(
            decode(&mem, &mut scratch, nr, [0; 5]).unwrap_err(),
            DecodeError::UnknownHypercall { nr }
        );
    }
    // mmu_update's `count` is an unsigned int: the dispatch refuses a wider value.
    match decode(&mem, &mut scratch, MMU_UPDATE, [reqs, 1 << 32, done, 0, 0]) {
        Err(DecodeError::BadArgument(b)) => {
            assert_eq!((b.arg, b.index, b.value), ("count", 1, 1 << 32));
            assert_eq!(b.violation, Violation::Width { bits: 32 });
        }
        other => panic!("expected a bad argument, got {other:?}"),
    }
    // update_va_mapping_otherdomain's domid is a domid_t (16 bits), in its 4th register.
    match decode(
        &mem,
        &mut scratch,
        UPDATE_VA_MAPPING_OTHERDOMAIN,
        [0, 0, 0, 0x1_0000, 0],
    ) {
        Err(DecodeError::BadArgument(b)) => {
            assert_eq!((b.arg, b.index), ("domid", 3));
            assert_eq!(b.violation, Violation::Width { bits: 16 });
        }
        other => panic!("expected a bad argument, got {other:?}"),
    }
}

/// Xen's page-table updates, as the hypervisor's `do_mmu_update` sees them.
#[derive(Default)]
struct Mmu {
    ptes: Vec<(u64, u64)>,
}

impl xen::host::XenDefaultHost for Mmu {
    type Error = String;

    fn mmu_update(
        &mut self,
        ureqs: &[xen::structs::MmuUpdate],
        count: u32,
        pdone: &mut [u32],
        foreigndom: u32,
    ) -> Result<u64, String> {
        if foreigndom != 0x7ff0 {
            return Err(format!("foreign domain {foreigndom:#x}"));
        }
        self.ptes.extend(ureqs.iter().map(|u| (u.ptr, u.val)));
        pdone[0] = count;
        Ok(0)
    }
}

/// The guest's trap: straight into the generated dispatch over `GuestMem`.
struct XenInProcess<'a> {
    host: std::cell::RefCell<Mmu>,
    mem: &'a GuestMem,
    scratch: std::cell::RefCell<Box<xen::host::Scratch>>,
}

impl xen::guest::Transport for XenInProcess<'_> {
    fn hypercall(&self, nr: u64, args: [u64; xen::numbers::ARG_REGS]) -> u64 {
        xen::host::dispatch(
            &mut *self.host.borrow_mut(),
            &XenMem(self.mem),
            &mut self.scratch.borrow_mut(),
            nr,
            args,
        )
        .unwrap_or_else(|e| panic!("the host refused a call: {e}"))
    }
}

#[test]
fn xen_mmu_update_reads_its_requests_from_guest_memory_and_writes_pdone_back() {
    use xen::guest::XenHypercalls;
    use xen::structs::MmuUpdate;
    let gm = GuestMem::new(1 << 16).expect("maps guest memory");
    // The guest's request array and its `done` count, in guest memory.
    let reqs = gm
        .host_ptr(0x1000, 3 * 16)
        .expect("inside guest memory")
        .cast::<[MmuUpdate; 3]>();
    let want = [
        MmuUpdate {
            ptr: 0x20_0000,
            val: 0x1234_5067,
        },
        MmuUpdate {
            ptr: 0x20_0008 | 1,
            val: 0x99,
        },
        MmuUpdate {
            ptr: 0x20_0010,
            val: 0,
        },
    ];
    let done = gm
        .host_ptr(0x2000, 4)
        .expect("inside guest memory")
        .cast::<[u32; 1]>();
    // SAFETY: `host_ptr` checked both ranges lie inside the mapping; they are aligned and
    // do not overlap, and nothing else refers to them while the references live.
    let (reqs, done) = unsafe {
        reqs.as_ptr().write(want);
        done.as_ptr().write([u32::MAX]);
        (&*reqs.as_ptr(), &mut *done.as_ptr())
    };
    let t = XenInProcess {
        host: Default::default(),
        mem: &gm,
        scratch: std::cell::RefCell::new(Box::default()),
    };
    assert_eq!(t.mmu_update(reqs, done, 0x7ff0), 0);
    assert_eq!(
        t.host.borrow().ptes,
        [(0x20_0000, 0x1234_5067), (0x20_0009, 0x99), (0x20_0010, 0)]
    );
    // The host wrote `pdone` into the guest's memory.
    assert_eq!(done, &[3]);
    assert_eq!(gm.read_u64(0x2000).map(|v| v as u32), Ok(3));
    // The host's own refusal is the host's, after decode.
    assert!(
        xen::host::dispatch(
            &mut *t.host.borrow_mut(),
            &XenMem(&gm),
            &mut t.scratch.borrow_mut(),
            xen::numbers::MMU_UPDATE,
            [gva(&gm, 0x1000), 1, gva(&gm, 0x2000), 1, 0],
        )
        .is_err_and(|e| matches!(e, xen::host::DispatchError::Host(_)))
    );
}

#[test]
fn xen_mmu_update_refuses_requests_it_cannot_read() {
    use xen::host::{DecodeError, MemViolation, Scratch, decode};
    use xen::numbers::{MAX_BATCH, MMU_UPDATE, MMUEXT_OP};
    let gm = GuestMem::new(1 << 16).expect("maps guest memory");
    let mem = XenMem(&gm);
    let mut scratch: Box<Scratch> = Box::default();
    let (reqs, done) = (gva(&gm, 0x1000), gva(&gm, 0x2000));
    fn bad(r: Result<xen::host::Call<'_>, DecodeError>) -> (&'static str, MemViolation) {
        match r {
            Err(DecodeError::BadMemory(b)) => (b.arg, b.violation),
            other => panic!("expected bad memory, got {other:?}"),
        }
    }
    // More requests than max_batch: refused before anything is read.
    assert_eq!(
        bad(decode(
            &mem,
            &mut scratch,
            MMU_UPDATE,
            [reqs, MAX_BATCH + 1, done, 0, 0]
        )),
        (
            "ureqs",
            MemViolation::TooLong {
                len: MAX_BATCH + 1,
                max: MAX_BATCH
            }
        )
    );
    // An mmu_update_t is 8-aligned.
    assert_eq!(
        bad(decode(
            &mem,
            &mut scratch,
            MMU_UPDATE,
            [reqs + 4, 1, done, 0, 0]
        )),
        ("ureqs", MemViolation::Misaligned { align: 8 })
    );
    // A `pdone` the guest's page tables do not map (Xen's NULL is one: this spec always
    // writes it).
    assert!(matches!(
        bad(decode(&mem, &mut scratch, MMUEXT_OP, [reqs, 1, 0, 0, 0])),
        ("pdone", MemViolation::Unmapped { .. })
    ));
    // Requests running past the end of the address space.
    let (arg, _) = bad(decode(
        &mem,
        &mut scratch,
        MMU_UPDATE,
        [u64::MAX - 15, 4, done, 0, 0],
    ));
    assert_eq!(arg, "ureqs");
}
