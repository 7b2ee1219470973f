//! Room: paging. The page tables under the guest: following the guest's top-level table
//! into CR3 after page-table calls, keeping and checking the host's top-level entry in it,
//! and translating a guest-virtual address the host writes through.

use host_stubs::GuestMem;
use host_stubs::Kill;

use crate::layout;

use super::{Machine, VmError};

/// CR3's page-level write-through bit.
const CR3_PWT: u64 = 0x8;

impl Machine {
    /// Follows the guest's page-table calls: CR3 (and a reload after a TLB flush), and
    /// checks the host's entry is still in the current table.
    pub(super) fn sync_paging(&mut self) -> Result<(), VmError> {
        // The guest changed its page tables and told the host: as lguest's host updates
        // its shadow, this one makes KVM drop what it cached of the old entries (the guest
        // cannot: invlpg and CR3 writes are privileged). A CR3 load does that; flipping the
        // table's write-through bit (which only affects how the PML4 itself is cached)
        // makes each one a load KVM cannot skip.
        let changes = self.host.table_changes();
        let pgdir = self.host.pgdir();
        if changes != self.table_changes_seen {
            self.table_changes_seen = changes;
            if pgdir != 0 && pgdir != self.cr3 {
                // The host's slot in the guest's new table (NEW_PGTABLE checked the page).
                let entry = layout::host_pml4_entry(self.host_gpa);
                if self
                    .host
                    .mem()
                    .write_u64(pgdir + layout::HOST_PML4_OFF, entry)
                    .is_err()
                {
                    self.kill(Kill::HostMapping { pgdir, entry: 0 });
                    return Ok(());
                }
                self.cr3 = pgdir;
            }
            self.cr3_flip ^= CR3_PWT;
            let mut s = self.cpu.sregs()?;
            s.cr3 = self.cr3 | self.cr3_flip;
            self.cpu.set_sregs(&s)?;
        }
        self.check_host_entry();
        Ok(())
    }

    /// Kills the guest if the host's entry is gone from its current top-level table.
    pub(super) fn check_host_entry(&mut self) {
        let want = layout::host_pml4_entry(self.host_gpa);
        match self.host.mem().read_u64(self.cr3 + layout::HOST_PML4_OFF) {
            Ok(e) if e == want => {}
            Ok(entry) => self.kill(Kill::HostMapping {
                pgdir: self.cr3,
                entry,
            }),
            Err(_) => self.kill(Kill::HostMapping {
                pgdir: self.cr3,
                entry: 0,
            }),
        }
    }
}

/// What the host means to do at a guest-virtual address.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Access {
    /// Read it (the guest may read it: present and user at every level).
    Read,
    /// Write it (the guest may write it: present, writable and user at every level).
    Write,
}

/// The guest-physical address of `va` under `cr3`, if the guest itself may make `access`
/// there (1 GiB, 2 MiB and 4 KiB pages). A non-canonical address is refused before any
/// table is read.
pub(super) fn translate(mem: &GuestMem, cr3: u64, va: u64, access: Access) -> Result<u64, String> {
    const ADDR: u64 = 0x000f_ffff_ffff_f000;
    // 48-bit virtual addresses: bits 63..47 all equal.
    let top = va >> 47;
    if top != 0 && top != (1 << 17) - 1 {
        return Err(format!("address {va:#x} is not canonical"));
    }
    let need = match access {
        Access::Read => 5,
        Access::Write => 7,
    };
    let mut table = cr3 & ADDR;
    for level in 0..4u32 {
        let index = (va >> (39 - 9 * level)) & 511;
        let e = mem
            .read_u64(table + index * 8)
            .map_err(|_| format!("the page tables for {va:#x} leave guest memory"))?;
        if e & need != need {
            return Err(match access {
                Access::Write => {
                    format!("stack address {va:#x} is not mapped writable for the guest")
                }
                Access::Read => format!("address {va:#x} is not mapped for the guest"),
            });
        }
        let huge = e & 0x80 != 0;
        match level {
            1 if huge => return Ok((e & 0x000f_ffff_c000_0000) | (va & 0x3fff_ffff)),
            2 if huge => return Ok((e & 0x000f_ffff_ffe0_0000) | (va & 0x1f_ffff)),
            3 => return Ok((e & ADDR) | (va & 0xfff)),
            _ => table = e & ADDR,
        }
    }
    Err(format!("address {va:#x} has no leaf entry"))
}
