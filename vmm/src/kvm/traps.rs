//! Room: traps and interrupts into the guest. A trap from a ring-0 stub is reflected to the
//! guest's own handler, and an interrupt delivered, the way lguest's host does it: a frame
//! pushed on the guest's stack, the virtual interrupt flag kept in the shared page.

use std::sync::atomic::Ordering;

use host_stubs::clock::Clock;
use host_stubs::desc::{Gate, INTERRUPT_GATE, has_error_code};
use host_stubs::host::Delivery;
use host_stubs::{Host, Kill};
use kvm_bindings::{kvm_regs, kvm_sregs};
use lguest_abi::numbers::{
    GDT_ENTRIES, GUEST_PL, HOST_CS_ENTRY, HOST_DS_ENTRY, HOST_TSS_ENTRY, IDT_ENTRIES,
};
use lguest_abi::shared::LguestData;
use x86::irq::{GENERAL_PROTECTION_FAULT_VECTOR, INVALID_OPCODE_VECTOR};

use crate::layout::{self, STUB_FRAME_IRET, STUB_FRAME_OFF, STUB_FRAME_WORDS};

use super::{EFLAGS_IF, Machine, RFLAGS_TF, RPL_MASK, VmError};

/// Bytes below the interrupted stack pointer left alone when pushing a frame: the System V
/// red zone, which the prebuilt `core` may use in leaf functions.
const RED_ZONE: u64 = 128;
/// Invalid opcode and general protection (x86 exception vectors).
const UD_VECTOR: u64 = INVALID_OPCODE_VECTOR as u64;
const GP_VECTOR: u64 = GENERAL_PROTECTION_FAULT_VECTOR as u64;
/// The encodings of `syscall` and `sysenter`.
const SYSCALL: [u8; 2] = [0x0f, 0x05];
const SYSENTER: [u8; 2] = [0x0f, 0x34];

impl Machine {
    /// Delivers interrupt `d` as lguest does: a frame on the guest's stack, rip at its
    /// handler. The host already cleared `irq_enabled` for an interrupt gate; the frame's
    /// interrupt flag says interrupts were on (they were, or it would not be delivered).
    pub(super) fn deliver(&mut self, d: Delivery) -> Result<(), VmError> {
        if d.line == 0 {
            self.ticks += 1;
        }
        if let Err(why) = self.check_gate_selector(d.gate) {
            self.kill(Kill::BadGateSelector {
                vector: d.vector,
                selector: d.gate.selector(),
                why,
            });
            return Ok(());
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
        match push_frame(&self.host, &frame, None) {
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
        let read = |m: &Machine, off: u64| {
            m.region
                .read_u64(off)
                .map_err(|e| VmError::Memory(e.to_string()))
        };
        // A trap taken at ring 3 leaves its frame at the top of the ring-0 stack. Anything
        // else is a fault in the stub itself (its iretq into a gate the CPU refused), whose
        // frame the CPU pushed below the one the stub was returning through.
        let rsp = self.cpu.regs()?.rsp;
        if rsp != layout::va(STUB_FRAME_OFF) {
            let off = rsp.wrapping_sub(layout::va(0));
            let inside = (layout::STACK_OFF..STUB_FRAME_OFF).contains(&off);
            let (fault, error) = if inside {
                (read(self, off)?, read(self, off + 8)?)
            } else {
                (u64::MAX, 0)
            };
            // The CPU pushed its frame over the words the stub had popped (the vector and
            // error code), so what the stub was returning through comes from the host's
            // record of the frame it left there.
            let Some((vector, selector, ss)) = self.stub_return else {
                self.kill(Kill::Cpu {
                    what: format!(
                        "exception {fault} (error {error:#x}) in the host's ring-0 stub before any trap returned through it"
                    ),
                });
                return Ok(());
            };
            self.kill(Kill::HostStubFault {
                fault,
                error,
                vector,
                selector,
                ss,
            });
            return Ok(());
        }
        let mut f = [0u64; STUB_FRAME_WORDS as usize];
        for (i, w) in f.iter_mut().enumerate() {
            *w = read(self, STUB_FRAME_OFF + 8 * i as u64)?;
        }
        let [vector, error, rip, cs, rflags, rsp, ss] = f;
        // Unless replaced below, the stub returns through the frame as the CPU pushed it.
        self.stub_return = Some((vector, cs, ss));
        if cs & RPL_MASK != GUEST_PL || vector >= IDT_ENTRIES {
            self.kill(Kill::Cpu {
                what: format!(
                    "exception {vector} in the host's ring-0 code at {rip:#x} (error {error:#x})"
                ),
            });
            return Ok(());
        }
        if let Some((instruction, rip)) = self.fast_syscall_at(vector, rip)? {
            self.kill(Kill::FastSyscall { instruction, rip });
            return Ok(());
        }
        // A page fault is first the host's: its shadow may just lack the entry.
        if vector == 14 {
            let cr2 = self.cpu.sregs()?.cr2;
            if !self.page_fault(cr2, error) {
                // Filled (the stub's iretq runs the instruction again), or killed.
                return Ok(());
            }
        }
        let frame = Frame {
            rip,
            cs,
            rflags,
            rsp,
            ss,
        };
        match self.reflect(vector as u8, error, &frame)? {
            Ok(new) => {
                self.traps += 1;
                self.stub_return = Some((vector, new[1], new[4]));
                // Rewrite the ring-0 frame: the stub's iretq lands in the guest's handler.
                for (i, w) in new.iter().enumerate() {
                    self.region
                        .write_u64(STUB_FRAME_OFF + (STUB_FRAME_IRET + i as u64) * 8, *w)
                        .map_err(|e| VmError::Memory(e.to_string()))?;
                }
            }
            Err(k) => self.kill(k),
        }
        Ok(())
    }

    /// `syscall` or `sysenter`, and where, if that is what the trap at `rip` comes from:
    /// the instruction itself faulted (#UD, or #GP with no fast system-call target set
    /// up), or `syscall` went to LSTAR, where nothing is mapped, with its return address
    /// (rcx) right after a `syscall`.
    fn fast_syscall_at(
        &self,
        vector: u64,
        rip: u64,
    ) -> Result<Option<(&'static str, u64)>, VmError> {
        let mem = self.host.mem();
        let bytes = |va: u64| -> Option<[u8; 2]> {
            let mut out = [0u8; 2];
            for (i, b) in out.iter_mut().enumerate() {
                let pa = self
                    .host
                    .guest_address(va.wrapping_add(i as u64), false)
                    .ok()?;
                let mut one = [0u8];
                mem.read(pa, &mut one).ok()?;
                *b = one[0];
            }
            Some(out)
        };
        if vector == UD_VECTOR || vector == GP_VECTOR {
            match bytes(rip) {
                Some(SYSCALL) => return Ok(Some(("syscall", rip))),
                Some(SYSENTER) => return Ok(Some(("sysenter", rip))),
                _ => {}
            }
        }
        if rip == self.lstar {
            let at = self.cpu.regs()?.rcx.wrapping_sub(2);
            if bytes(at) == Some(SYSCALL) {
                return Ok(Some(("syscall", at)));
            }
        }
        Ok(None)
    }

    /// Whether the vCPU can enter `gate`: its selector must name a present 64-bit code
    /// segment of the guest's at `GUEST_PL` in the real GDT, or the stub's `iretq` (or the
    /// entry) faults in the host. Says what is wrong otherwise.
    fn check_gate_selector(&self, gate: Gate) -> Result<(), String> {
        let sel = gate.selector();
        let index = u64::from(sel >> 3);
        if sel & 4 != 0 {
            return Err("is in the LDT, and the guest has none".into());
        }
        if index >= GDT_ENTRIES {
            return Err(format!("is past the GDT's {GDT_ENTRIES} entries"));
        }
        if [
            HOST_CS_ENTRY,
            HOST_DS_ENTRY,
            HOST_TSS_ENTRY,
            HOST_TSS_ENTRY + 1,
        ]
        .contains(&index)
        {
            return Err(format!(
                "names GDT entry {index}, which the host keeps for its own ring-0 segments"
            ));
        }
        let d = layout::kvm_segment(sel, self.real_gdt_entry(sel));
        if d.present == 0 {
            return Err(format!("names GDT entry {index}, which is not present"));
        }
        if d.s == 0 || d.type_ & 8 == 0 {
            return Err(format!(
                "names GDT entry {index}, which is not a code segment"
            ));
        }
        if d.l == 0 {
            return Err(format!(
                "names GDT entry {index}, which is not a 64-bit code segment"
            ));
        }
        if d.db != 0 {
            // L and D together are reserved: loading such a segment raises #GP.
            return Err(format!(
                "names GDT entry {index}, a 64-bit code segment with its D bit set too, which the CPU refuses to load"
            ));
        }
        if u64::from(d.dpl) != GUEST_PL {
            return Err(format!(
                "names GDT entry {index}, a code segment of privilege level {}, not the guest kernel's ({GUEST_PL})",
                d.dpl
            ));
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
    ) -> Result<Result<[u64; 5], Kill>, VmError> {
        let trap = |why: String| {
            Ok(Err(Kill::Trap {
                vector,
                error,
                rip: f.rip,
                why,
            }))
        };
        let Some(page) = self.host.shared_page() else {
            return trap("before LGUEST_INIT, the guest has no handlers".into());
        };
        let gate = self
            .host
            .idt()
            .get(usize::from(vector))
            .copied()
            .unwrap_or_default();
        if !gate.present() {
            return trap("the guest has no handler for it".into());
        }
        if let Err(why) = self.check_gate_selector(gate) {
            return Ok(Err(Kill::BadGateSelector {
                vector,
                selector: gate.selector(),
                why,
            }));
        }
        let sregs = self.cpu.sregs()?;
        let mem = self.host.mem();
        let gone = || "the shared page is gone".to_string();
        if vector == 14
            && mem
                .write_u64(page + LguestData::CR2_OFFSET as u64, sregs.cr2)
                .is_err()
        {
            return trap(gone());
        }
        let irq_at = page + LguestData::IRQ_ENABLED_OFFSET as u64;
        let Ok(irq_on) = mem.load_u32(irq_at, Ordering::Acquire) else {
            return trap(gone());
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
        let sp = match push_frame(&self.host, &pushed, code) {
            Ok(sp) => sp,
            Err(why) => return trap(format!("pushing the trap frame: {why}")),
        };
        if gate.gate_type() == INTERRUPT_GATE
            && mem.store_u32(irq_at, 0, Ordering::Release).is_err()
        {
            return trap(gone());
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
/// the CPU aligns it, through the guest's own page tables (the host's one walk). Returns the
/// new stack pointer. Every word goes through a checked translation and a bounds-checked
/// write.
fn push_frame<C: Clock>(host: &Host<C>, f: &Frame, error: Option<u64>) -> Result<u64, String> {
    let mut sp = (f.rsp.wrapping_sub(RED_ZONE)) & !15;
    let mut words = vec![f.ss, f.rsp, f.rflags, f.cs, f.rip];
    words.extend(error);
    for w in words {
        sp = sp.wrapping_sub(8);
        let pa = host.guest_address(sp, true)?;
        host.mem()
            .write_u64(pa, w)
            .map_err(|_| format!("stack address {sp:#x} maps outside guest memory"))?;
    }
    Ok(sp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_go_below_the_red_zone_aligned_and_translated() {
        use host_stubs::clock::{ManualClock, WallTime};
        use host_stubs::{GuestMem, HostConfig};
        let mem = GuestMem::new(0x40_0000).unwrap();
        // PML4 at 0x1000 -> PDPT 0x2000 -> PD 0x3000 -> 2 MiB page at 0.
        mem.write_u64(0x1000, 0x2007).unwrap();
        mem.write_u64(0x2000, 0x3007).unwrap();
        mem.write_u64(0x3000, 0x87).unwrap();
        let cfg = HostConfig {
            boot_pgdir: 0x1000,
            ..HostConfig::default()
        };
        let host = Host::new(mem, ManualClock::new(WallTime::default(), 0), cfg);
        let f = Frame {
            rip: 0x1111,
            cs: 0x13,
            rflags: 0x202,
            rsp: 0x10_0008,
            ss: 0x1b,
        };
        let sp = push_frame(&host, &f, Some(0xe)).unwrap();
        assert_eq!(sp, ((0x10_0008 - 128) & !15) - 48);
        let words: Vec<u64> = (0..6)
            .map(|i| host.mem().read_u64(sp + 8 * i).unwrap())
            .collect();
        assert_eq!(words, [0xe, 0x1111, 0x13, 0x202, 0x10_0008, 0x1b]);
        // A stack the guest cannot write (no user bit) is refused, not written.
        host.mem().write_u64(0x3000, 0x83).unwrap();
        assert!(push_frame(&host, &f, None).is_err());
    }
}
