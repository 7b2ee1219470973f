//! Targets: the generated decode/dispatch, and the reference host's whole hypercall handling
//! (ring drains, interrupts, page faults) over arbitrary sequences, memory sizes and
//! shared-page placements.

use host_stubs::abi::host::{DecodeError, Scratch, decode};
use host_stubs::abi::numbers::{ARG_REGS, Hypercall, LGUEST_INIT, PAGE_SIZE, SYSCALL_VECTOR};
use host_stubs::abi::shared::{LguestData, RING_DONE, RING_READY, RING_SIZE, RingSlot};
use host_stubs::clock::{ManualClock, WallTime};
use host_stubs::mmu::ShadowConfig;
use host_stubs::mmu::shadow::MAX_ROOTS;
use host_stubs::{GuestMem, Host, HostConfig, Stop};
use paging::ENTRIES;

use crate::Input;

/// Where the guest kernel's half starts in these guests.
const KERNEL: u64 = 0x0000_4000_0000_0000;
/// Most operations one input runs.
const MAX_OPS: usize = 512;

/// The most shadow entries one host call may touch: dropping every root and building one
/// path below one (see `host-stubs/src/mmu/shadow.rs`); an exit is the ring plus one call.
pub const MAX_WORK_PER_CALL: u64 = (MAX_ROOTS * (ENTRIES + 1) + 3 * ENTRIES + 64) as u64;
/// The most one exit may touch.
pub const MAX_WORK_PER_EXIT: u64 = (RING_SIZE as u64 + 1) * MAX_WORK_PER_CALL;

/// A call number: mostly the spec's, sometimes anything.
fn call_nr(inp: &mut Input<'_>) -> u64 {
    if inp.u8() < 224 {
        let all = Hypercall::ALL;
        all[inp.below(all.len() as u64) as usize].nr()
    } else {
        inp.value(0)
    }
}

/// Decodes `nr` and `regs` (memory arguments read from `mem`) and checks the answer names
/// what it was given.
fn check_decode(mem: &GuestMem, nr: u64, regs: [u64; ARG_REGS]) {
    let mut scratch = Box::<Scratch>::default();
    match decode(mem, &mut scratch, nr, regs) {
        Ok(call) => assert_eq!(call.hypercall().nr(), nr, "decode renamed the call"),
        Err(DecodeError::UnknownHypercall { nr: n }) => {
            assert_eq!(n, nr);
            assert!(Hypercall::try_from(nr).is_err(), "{nr} is a hypercall");
        }
        Err(DecodeError::BadArgument(b)) => {
            assert_eq!(b.call.nr(), nr, "the refusal names another call");
            assert!(b.index < ARG_REGS && b.arg == b.call.arg_names()[b.index]);
        }
        Err(DecodeError::BadMemory(b)) => {
            // A string named with the address its register held.
            assert_eq!(b.call.nr(), nr, "the refusal names another call");
            let i = b
                .call
                .arg_index(b.arg)
                .expect("lguest's memory arguments have registers");
            assert_eq!(b.addr, regs[i], "the refusal names another address");
            let _ = b.to_string();
        }
        Err(DecodeError::Host(never)) => match never {},
    }
}

/// Writes the shared page at `page` as a guest sets it up before LGUEST_INIT.
fn setup_page(mem: &GuestMem, page: u64) {
    let at = |off: usize| page.wrapping_add(off as u64);
    let _ = mem.write_u64(at(LguestData::BLOCKED_INTERRUPTS_OFFSET), 1);
    let _ = mem.write(at(LguestData::HCALL_STATUS_OFFSET), &[RING_DONE; RING_SIZE]);
    let _ = mem.write(
        at(LguestData::SYSCALL_VEC_OFFSET),
        &(SYSCALL_VECTOR as u32).to_le_bytes(),
    );
    let _ = mem.write_u64(at(LguestData::KERNEL_ADDRESS_OFFSET), KERNEL);
}

fn host(size: u64, boot_pgdir: u64, pool_pages: u32) -> Host<ManualClock> {
    let mem = GuestMem::new(size).expect("a small guest memory maps");
    Host::new(
        mem,
        ManualClock::new(WallTime::default(), 2_400_000),
        HostConfig {
            boot_pgdir,
            call_log: 64,
            console_limit: 256,
            shadow: ShadowConfig {
                pool_pages,
                ..ShadowConfig::default()
            },
            ..HostConfig::default()
        },
    )
}

/// Target: decode and dispatch any calls on a booted host.
pub fn dispatch(data: &[u8]) {
    let mut inp = Input::new(data);
    let mut h = host(1 << 20, 0x8_0000, 64);
    setup_page(h.mem(), 0x1000);
    h.hypercall(LGUEST_INIT, [0x1000, 0, 0, 0])
        .expect("a well-formed shared page initialises");
    for _ in 0..MAX_OPS {
        if inp.is_empty() {
            break;
        }
        let nr = call_nr(&mut inp);
        let regs = [(); ARG_REGS].map(|()| inp.value(0x1000));
        check_decode(h.mem(), nr, regs);
        if let Err(stop) = h.hypercall(nr, regs) {
            check_stopped(&mut h, &stop);
            return;
        }
    }
}

/// Once stopped, the host refuses everything, with the stop that stood.
fn check_stopped(h: &mut Host<ManualClock>, stop: &Stop) {
    assert_eq!(h.stopped(), Some(stop));
    assert_eq!(h.hypercall(LGUEST_INIT, [0; ARG_REGS]).as_ref(), Err(stop));
    assert_eq!(h.next(0).as_ref().err(), Some(stop));
    assert_eq!(h.demand_page(0, 0).as_ref().err(), Some(stop));
    assert_eq!(h.drain_ring().as_ref().err(), Some(stop));
}

/// Target: the whole host over any sequence: a random memory size, shared page anywhere
/// (or nowhere), boot tables anywhere, then hypercalls, ring slots, guest memory writes,
/// page faults, interrupt decisions, device interrupts and time.
pub fn host_calls(data: &[u8]) {
    let mut inp = Input::new(data);
    let size = (1 + inp.below(512)) * PAGE_SIZE - inp.below(4) * 8;
    let page = if inp.bool() {
        inp.below(size) & !7
    } else {
        inp.value(size)
    };
    let boot_pgdir = inp.below(size.div_ceil(PAGE_SIZE)) * PAGE_SIZE;
    let mut h = host(size, boot_pgdir, 8 + inp.below(64) as u32);
    let clock = h.clock().clone();
    if inp.bool() {
        setup_page(h.mem(), page);
    }
    for _ in 0..MAX_OPS {
        if inp.is_empty() {
            break;
        }
        let before = h.shadow().work();
        let r: Result<(), Stop> = match inp.u8() % 9 {
            0 | 1 => {
                let nr = if inp.u8() < 32 {
                    LGUEST_INIT
                } else {
                    call_nr(&mut inp)
                };
                let regs = [(); ARG_REGS].map(|()| inp.value(page));
                check_decode(h.mem(), nr, regs);
                h.hypercall(nr, regs).map(|_| ())
            }
            2 => {
                // A ring slot, as the guest (or garbage) fills it.
                let slot = inp.below(RING_SIZE as u64);
                let base = page.wrapping_add(
                    (LguestData::HCALLS_OFFSET as u64) + slot * RingSlot::SIZE as u64,
                );
                let _ = h.mem().write_u64(
                    base.wrapping_add(RingSlot::NR_OFFSET as u64),
                    call_nr(&mut inp),
                );
                for i in 0..3u64 {
                    let v = inp.value(page);
                    let _ = h
                        .mem()
                        .write_u64(base.wrapping_add(RingSlot::ARGS_OFFSET as u64 + 8 * i), v);
                }
                let status = inp.pick(&[RING_READY, RING_READY, RING_DONE, 0x42]);
                let _ = h.mem().write(
                    page.wrapping_add(LguestData::HCALL_STATUS_OFFSET as u64 + slot),
                    &[status],
                );
                Ok(())
            }
            3 => {
                // The guest writes its memory (page tables, the shared page, anything).
                let gpa = inp.below(size) & !7;
                let v = inp.value(gpa);
                let _ = h.mem().write_u64(gpa, v);
                Ok(())
            }
            4 => {
                let va = inp.value(KERNEL);
                let error = u64::from(inp.u8() & 0x1f);
                h.demand_page(va, error).map(|_| ())
            }
            5 => h.next(inp.value(0)).map(|_| ()),
            6 => {
                let line = u32::from(inp.u8());
                let _ = h.raise_irq(line);
                Ok(())
            }
            7 => {
                clock.advance(inp.value(1_000_000));
                Ok(())
            }
            _ => h.drain_ring().map(|_| ()),
        };
        let work = h.shadow().work() - before;
        assert!(
            work <= MAX_WORK_PER_EXIT,
            "one exit touched {work} shadow entries"
        );
        if let Err(stop) = r {
            check_stopped(&mut h, &stop);
            return;
        }
    }
}
