//! Room: paging. Page faults and the shadow page tables ([`crate::mmu`]): the VMM hands
//! every page fault here, and loads [`Host::shadow_root`] into CR3.

use crate::clock::Clock;
use crate::kill::{Kill, Origin, Stop};
use crate::mmu::{self, Fault};

use super::Host;

impl<C: Clock> Host<C> {
    /// A page fault at `vaddr` with the CPU's error code `error`: lguest's `demand_page`.
    /// [`Fault::Filled`]: the shadow maps the page now, run the instruction again;
    /// [`Fault::Reflect`]: the guest's own tables refuse the access, deliver the fault to
    /// the guest (with `vaddr` as its cr2). A guest entry the host refuses (a table or a
    /// frame outside guest memory) kills the guest, naming the entry.
    pub fn demand_page(&mut self, vaddr: u64, error: u64) -> Result<Fault, Stop> {
        self.check_running()?;
        match self.shadow.fault(&self.mem, vaddr, error) {
            Ok(f) => Ok(f),
            Err(bad) => {
                let pgdir = self.shadow.gpgdir();
                Err(self.kill(Kill::BadPageTable { vaddr, pgdir, bad }, Origin::Entry))
            }
        }
    }

    /// The VM address of the current shadow root, for CR3.
    pub fn shadow_root(&self) -> u64 {
        self.shadow.root()
    }

    /// Whether the host weakened shadow entries since the last call: the VM's MMU may
    /// still cache them, and must be made to forget before the guest runs again.
    pub fn take_shadow_stale(&mut self) -> bool {
        self.shadow.take_stale()
    }

    /// The guest-physical address of `vaddr` in the guest's current tables, where the guest
    /// itself may read (present and user at every level), or also `write`: where the host
    /// may read an instruction or push a frame on the guest's behalf.
    pub fn guest_address(&self, vaddr: u64, write: bool) -> Result<u64, String> {
        mmu::guest_address(&self.mem, self.pgdir, vaddr, write)
    }
}
