//! Room: traps and interrupts into the guest. A trap from a ring-0 stub is reflected to the
//! guest's own handler, and an interrupt delivered, the way lguest's host does it: a frame
//! pushed on the guest's stack, the virtual interrupt flag kept in the shared page.

use std::sync::atomic::Ordering;

use host_stubs::abi::numbers::IDT_ENTRIES;
use host_stubs::abi::shared::LguestData;
use host_stubs::desc::{Gate, INTERRUPT_GATE, has_error_code};
use host_stubs::host::Delivery;
use host_stubs::{GuestMem, Kill};
use kvm_bindings::{kvm_regs, kvm_sregs};

use crate::layout::{self, STUB_FRAME_IRET, STUB_FRAME_OFF, STUB_FRAME_WORDS};

use super::paging::translate;
use super::{EFLAGS_IF, Machine, RFLAGS_TF, VmError};

/// Bytes below the interrupted stack pointer left alone when pushing a frame: the System V
/// red zone, which the prebuilt `core` may use in leaf functions.
const RED_ZONE: u64 = 128;

impl Machine {
    /// Delivers interrupt `d` as lguest does: a frame on the guest's stack, rip at its
    /// handler. The host already cleared `irq_enabled` for an interrupt gate; the frame's
    /// interrupt flag says interrupts were on (they were, or it would not be delivered).
    pub(super) fn deliver(&mut self, d: Delivery) -> Result<(), VmError> {
        if d.line == 0 {
            self.ticks += 1;
        }
        let regs = self.cpu.regs()?;
        let sregs = self.cpu.sregs()?;
        let frame = Frame {
            rip: regs.rip,
            cs: u64::from(sregs.cs.selector),
            rflags: regs.rflags | EFLAGS_IF,
            rsp: regs.rsp,
            ss: u64::from(sregs.ss.selector),
        };
        match push_frame(self.host.mem(), sregs.cr3, &frame, None) {
            Ok(sp) => self.enter_handler(d.gate, sp, regs, sregs),
            Err(why) => {
                self.kill(Kill::Trap {
                    vector: d.vector,
                    error: 0,
                    rip: regs.rip,
                    why: format!("delivering interrupt line {}: {why}", d.line),
                });
                Ok(())
            }
        }
    }

    /// Points the vCPU at `gate`'s handler with the stack at `sp`.
    fn enter_handler(
        &mut self,
        gate: Gate,
        sp: u64,
        mut regs: kvm_regs,
        mut sregs: kvm_sregs,
    ) -> Result<(), VmError> {
        regs.rip = gate.offset();
        regs.rsp = sp;
        regs.rflags &= !RFLAGS_TF;
        self.cpu.set_regs(&regs)?;
        let sel = gate.selector();
        if sel != sregs.cs.selector {
            sregs.cs = layout::kvm_segment(sel, self.real_gdt_entry(sel));
            self.cpu.set_sregs(&sregs)?;
        }
        Ok(())
    }

    /// A trap exit from a ring-0 stub: the CPU's frame is on the host's stack. Reflect it
    /// into the guest's handler (rewriting that frame, which the stub returns through), or
    /// kill the guest.
    pub(super) fn trap(&mut self) -> Result<(), VmError> {
        let mut f = [0u64; STUB_FRAME_WORDS as usize];
        for (i, w) in f.iter_mut().enumerate() {
            *w = self
                .region
                .read_u64(STUB_FRAME_OFF + 8 * i as u64)
                .map_err(|e| VmError::Memory(e.to_string()))?;
        }
        let [vector, error, rip, cs, rflags, rsp, ss] = f;
        if cs & 3 != 3 || vector >= IDT_ENTRIES {
            self.kill(Kill::Cpu {
                what: format!(
                    "exception {vector} in the host's ring-0 code at {rip:#x} (error {error:#x})"
                ),
            });
            return Ok(());
        }
        self.traps += 1;
        let frame = Frame {
            rip,
            cs,
            rflags,
            rsp,
            ss,
        };
        match self.reflect(vector as u8, error, &frame)? {
            Ok(new) => {
                // Rewrite the ring-0 frame: the stub's iretq lands in the guest's handler.
                for (i, w) in new.iter().enumerate() {
                    self.region
                        .write_u64(STUB_FRAME_OFF + (STUB_FRAME_IRET + i as u64) * 8, *w)
                        .map_err(|e| VmError::Memory(e.to_string()))?;
                }
            }
            Err(why) => self.kill(Kill::Trap {
                vector: vector as u8,
                error,
                rip,
                why,
            }),
        }
        Ok(())
    }

    /// lguest's `deliver_trap`: the guest's gate for `vector`, cr2 into the shared page for
    /// a page fault, the frame (with the virtual interrupt flag) on the guest's stack, the
    /// virtual flag cleared for an interrupt gate. Returns the iretq frame that enters the
    /// handler, or why the trap cannot be delivered.
    fn reflect(
        &self,
        vector: u8,
        error: u64,
        f: &Frame,
    ) -> Result<Result<[u64; 5], String>, VmError> {
        let Some(page) = self.host.shared_page() else {
            return Ok(Err("before LGUEST_INIT, the guest has no handlers".into()));
        };
        let gate = self
            .host
            .idt()
            .get(usize::from(vector))
            .copied()
            .unwrap_or_default();
        if !gate.present() {
            return Ok(Err("the guest has no handler for it".into()));
        }
        let sregs = self.cpu.sregs()?;
        let mem = self.host.mem();
        let gone = || "the shared page is gone".to_string();
        if vector == 14
            && mem
                .write_u64(page + LguestData::CR2_OFFSET as u64, sregs.cr2)
                .is_err()
        {
            return Ok(Err(gone()));
        }
        let irq_at = page + LguestData::IRQ_ENABLED_OFFSET as u64;
        let Ok(irq_on) = mem.load_u32(irq_at, Ordering::Acquire) else {
            return Ok(Err(gone()));
        };
        let pushed = Frame {
            rflags: if irq_on != 0 {
                f.rflags | EFLAGS_IF
            } else {
                f.rflags & !EFLAGS_IF
            },
            ..*f
        };
        let code = has_error_code(u64::from(vector)).then_some(error);
        let sp = match push_frame(mem, sregs.cr3, &pushed, code) {
            Ok(sp) => sp,
            Err(why) => return Ok(Err(format!("pushing the trap frame: {why}"))),
        };
        if gate.gate_type() == INTERRUPT_GATE
            && mem.store_u32(irq_at, 0, Ordering::Release).is_err()
        {
            return Ok(Err(gone()));
        }
        Ok(Ok([
            gate.offset(),
            u64::from(gate.selector()),
            (f.rflags & !RFLAGS_TF) | EFLAGS_IF,
            sp,
            f.ss,
        ]))
    }
}

/// An interrupt frame, as `iretq` pops it.
#[derive(Clone, Copy)]
struct Frame {
    rip: u64,
    cs: u64,
    rflags: u64,
    rsp: u64,
    ss: u64,
}

/// Pushes `frame` (and an error code) below the red zone of the guest stack, 16-aligned as
/// the CPU aligns it, through the guest's page tables at `cr3`. Returns the new stack
/// pointer. Every word goes through a checked translation and a bounds-checked write.
fn push_frame(mem: &GuestMem, cr3: u64, f: &Frame, error: Option<u64>) -> Result<u64, String> {
    let mut sp = (f.rsp.wrapping_sub(RED_ZONE)) & !15;
    let mut words = vec![f.ss, f.rsp, f.rflags, f.cs, f.rip];
    words.extend(error);
    for w in words {
        sp = sp.wrapping_sub(8);
        let pa = translate(mem, cr3, sp)?;
        mem.write_u64(pa, w)
            .map_err(|_| format!("stack address {sp:#x} maps outside guest memory"))?;
    }
    Ok(sp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_go_below_the_red_zone_aligned_and_translated() {
        let mem = GuestMem::new(0x40_0000).unwrap();
        // PML4 at 0x1000 -> PDPT 0x2000 -> PD 0x3000 -> 2 MiB page at 0.
        mem.write_u64(0x1000, 0x2007).unwrap();
        mem.write_u64(0x2000, 0x3007).unwrap();
        mem.write_u64(0x3000, 0x87).unwrap();
        let f = Frame {
            rip: 0x1111,
            cs: 0x13,
            rflags: 0x202,
            rsp: 0x10_0008,
            ss: 0x1b,
        };
        let sp = push_frame(&mem, 0x1000, &f, Some(0xe)).unwrap();
        assert_eq!(sp, ((0x10_0008 - 128) & !15) - 48);
        let words: Vec<u64> = (0..6).map(|i| mem.read_u64(sp + 8 * i).unwrap()).collect();
        assert_eq!(words, [0xe, 0x1111, 0x13, 0x202, 0x10_0008, 0x1b]);
        // A stack the guest cannot write (no user bit) is refused, not written.
        mem.write_u64(0x3000, 0x83).unwrap();
        assert!(push_frame(&mem, 0x1000, &f, None).is_err());
    }
}
