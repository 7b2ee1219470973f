//! Room: paging. The MMU under the guest only ever walks the host's shadow tables
//! ([`host_stubs::mmu`]), which live in a read-only memslot outside guest RAM: CR3 is the
//! current shadow root, page faults are demand-filled by the host, and whenever the host
//! weakened a shadow entry, KVM is made to forget what it cached of the pool.

use host_stubs::mmu::Fault;
use kvm_bindings::{KVM_MEM_READONLY, kvm_userspace_memory_region};

use crate::layout;

use super::{Machine, VmError, kvm_err};

/// The memslot of the shadow pool.
pub(super) const POOL_SLOT: u32 = 3;

/// Registers the host's shadow pool with the VM at its address (`size` 0 removes it).
pub(super) fn pool_slot(
    vm: &kvm_ioctls::VmFd,
    host: &host_stubs::Host<host_stubs::clock::SystemClock>,
    readonly: bool,
    present: bool,
) -> Result<(), VmError> {
    let pool = host.shadow().pool();
    let r = kvm_userspace_memory_region {
        slot: POOL_SLOT,
        flags: if readonly { KVM_MEM_READONLY } else { 0 },
        guest_phys_addr: pool.gpa(),
        memory_size: if present { pool.bytes() } else { 0 },
        userspace_addr: pool.host_ptr() as u64,
    };
    // SAFETY: the pool is a page-aligned heap allocation owned by the host, which the
    // Machine keeps until after the VM is closed (field order); the VM only reads it (the
    // slot is read-only where KVM can, and every entry has accessed and dirty preset), and
    // the host touches it only through atomics.
    unsafe { vm.set_user_memory_region(r) }.map_err(kvm_err("KVM_SET_USER_MEMORY_REGION"))
}

impl Machine {
    /// Before entering the guest: CR3 is the current shadow root, and KVM holds nothing of
    /// the pool the host has since weakened.
    pub(super) fn sync_paging(&mut self) -> Result<(), VmError> {
        let root = self.host.shadow_root();
        let stale = self.host.take_shadow_stale();
        if stale {
            // KVM shadows the pool's pages as page tables and never sees the host's writes
            // to them (they do not go through the guest): removing and re-adding the slot
            // makes it drop everything it built from them. New entries need none of this,
            // KVM walks the pool again when it faults on them.
            pool_slot(&self.vm, &self.host, self.readonly, false)?;
            pool_slot(&self.vm, &self.host, self.readonly, true)?;
            self.pool_reloads += 1;
        }
        if root != self.cr3 || stale {
            let mut s = self.cpu.sregs()?;
            s.cr3 = root;
            self.cpu.set_sregs(&s)?;
            self.cr3 = root;
        }
        Ok(())
    }

    /// A page fault the CPU took at `cr2`: the host fills its shadow from the guest's tables
    /// (the faulting instruction runs again), or says the guest's tables refuse the access
    /// (it is reflected), or kills the guest. Returns whether to reflect it.
    pub(super) fn page_fault(&mut self, cr2: u64, error: u64) -> bool {
        match self.host.demand_page(cr2, error) {
            Ok(Fault::Filled) => false,
            Ok(Fault::Reflect) => true,
            Err(_) => false,
        }
    }

    /// Whether `gpa` is host memory the guest has no business touching: the host's region
    /// or the shadow pool.
    pub(super) fn is_host_memory(&self, gpa: u64) -> bool {
        let pool = self.host.shadow().pool();
        (self.host_gpa..self.host_gpa + layout::HOST_SIZE).contains(&gpa)
            || (pool.gpa()..pool.gpa() + pool.bytes()).contains(&gpa)
    }
}
