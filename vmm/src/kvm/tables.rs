//! Room: the real descriptor tables. The GDT and IDT the CPU uses live in the host's region;
//! they are rebuilt ([`crate::layout`]) from what the guest loaded whenever that changes.
//! The guest's TS bit follows into the real CR0 here too: it is state the guest set by
//! hypercall, like its tables.

use host_stubs::GuestMem;
use lguest_abi::numbers::CR0_TS;
use lguest_abi::types::TsState;

use crate::layout;

use super::{Machine, VmError};

impl Machine {
    /// Follows what the guest's hypercalls changed: the real GDT and IDT here, then the
    /// page tables (`paging.rs`).
    pub(super) fn sync_tables(&mut self) -> Result<(), VmError> {
        if self.host.gdt() != self.gdt_seen.as_slice() {
            self.gdt_seen = self.host.gdt().to_vec();
            write_gdt(&self.region, &layout::real_gdt(&self.gdt_seen))?;
        }
        if self.host.idt() != self.idt_seen.as_slice() {
            self.idt_seen = self.host.idt().to_vec();
            self.region
                .write(layout::IDT_OFF, &layout::real_idt(&self.idt_seen))
                .map_err(|e| VmError::Memory(e.to_string()))?;
        }
        self.sync_ts()?;
        self.sync_paging()
    }

    /// The guest's TS bit (the TS hypercall) in the real CR0, as lguest's host sets it
    /// before entering the guest: its next FPU or SSE instruction then traps with #NM, which
    /// the host reflects to the guest's handler. (kvm_pvm keeps the bit in the vCPU's CR0,
    /// where it reads back set after an entry, but never loads it: the hardware CR0 under a
    /// pvm guest is fixed, so ring-3 SSE runs natively; the `ts-nm` test says so where it
    /// happens.)
    fn sync_ts(&mut self) -> Result<(), VmError> {
        let ts = self.host.ts() == TsState::Set;
        if ts != self.ts_seen {
            self.ts_seen = ts;
            let mut s = self.cpu.sregs()?;
            s.cr0 = if ts { s.cr0 | CR0_TS } else { s.cr0 & !CR0_TS };
            self.cpu.set_sregs(&s)?;
        }
        Ok(())
    }

    pub(super) fn real_gdt_entry(&self, sel: u16) -> u64 {
        layout::real_gdt(&self.gdt_seen)
            .get(usize::from(sel >> 3))
            .copied()
            .unwrap_or(0)
    }
}

pub(super) fn write_gdt(region: &GuestMem, gdt: &[u64]) -> Result<(), VmError> {
    let bytes: Vec<u8> = gdt.iter().flat_map(|e| e.to_le_bytes()).collect();
    region
        .write(layout::GDT_OFF, &bytes)
        .map_err(|e| VmError::Memory(e.to_string()))
}
