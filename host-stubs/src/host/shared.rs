//! Room: the reference host's own accesses to the shared page (`lguest_data`) and the async
//! ring in it: each field named by the generated layout, each access bounds-checked, a
//! failure a typed kill naming the field and what the host was doing.

use std::sync::atomic::Ordering;

use crate::abi::numbers::EFLAGS_IF;
use crate::abi::shared::{FieldInfo, LguestData, RING_ARGS, RingSlot};
use crate::abi::types::Gpa;
use crate::clock::Clock;
use crate::kill::{HostAccess, Kill, Origin, Stop, field_at};

use super::Host;

// The shared-page fields the host reads or writes, named by the generated layout.
pub(super) const IRQ_ENABLED: FieldInfo = field_at(LguestData::IRQ_ENABLED_OFFSET);
pub(super) const BLOCKED_INTERRUPTS: FieldInfo = field_at(LguestData::BLOCKED_INTERRUPTS_OFFSET);
pub(super) const TIME_SEC: FieldInfo = field_at(LguestData::TIME_SEC_OFFSET);
pub(super) const TIME_NSEC: FieldInfo = field_at(LguestData::TIME_NSEC_OFFSET);
pub(super) const HCALL_STATUS: FieldInfo = field_at(LguestData::HCALL_STATUS_OFFSET);
pub(super) const HCALLS: FieldInfo = field_at(LguestData::HCALLS_OFFSET);
pub(super) const SYSCALL_VEC: FieldInfo = field_at(LguestData::SYSCALL_VEC_OFFSET);
pub(super) const NOIRQ_END: FieldInfo = field_at(LguestData::NOIRQ_END_OFFSET);
pub(super) const KERNEL_ADDRESS: FieldInfo = field_at(LguestData::KERNEL_ADDRESS_OFFSET);

impl<C: Clock> Host<C> {
    /// A shared-page access of the host's own failed. INIT checked the whole page, so only a
    /// VMM that withdrew part of it gets here; the kill says what the host was doing and
    /// which field it touched, not the INIT that once passed.
    pub(super) fn page_fault(
        &mut self,
        during: HostAccess,
        field: FieldInfo,
        at: crate::memory::OutOfRange,
        origin: Origin,
    ) -> Stop {
        let k = Kill::SharedPage {
            during,
            field: field.name,
            gpa: at.gpa,
            len: at.len,
            size: self.mem.size(),
        };
        self.kill(k, origin)
    }

    pub(super) fn page_u64(
        &mut self,
        page: Gpa,
        f: FieldInfo,
        during: HostAccess,
    ) -> Result<u64, Stop> {
        match self.mem.load_u64(page + f.offset as u64, Ordering::Acquire) {
            Ok(v) => Ok(v),
            Err(e) => Err(self.page_fault(during, f, e, Origin::Entry)),
        }
    }

    pub(super) fn page_u32(
        &mut self,
        page: Gpa,
        f: FieldInfo,
        during: HostAccess,
    ) -> Result<u32, Stop> {
        match self.mem.load_u32(page + f.offset as u64, Ordering::Acquire) {
            Ok(v) => Ok(v),
            Err(e) => Err(self.page_fault(during, f, e, Origin::Entry)),
        }
    }

    pub(super) fn store_page_u32(
        &mut self,
        page: Gpa,
        f: FieldInfo,
        v: u32,
        during: HostAccess,
    ) -> Result<(), Stop> {
        match self
            .mem
            .store_u32(page + f.offset as u64, v, Ordering::Release)
        {
            Ok(()) => Ok(()),
            Err(e) => Err(self.page_fault(during, f, e, Origin::Entry)),
        }
    }

    pub(super) fn status(&mut self, page: Gpa, slot: usize) -> Result<u8, Stop> {
        let at = page + (HCALL_STATUS.offset + slot) as u64;
        match self.mem.load_u8(at, Ordering::Acquire) {
            Ok(v) => Ok(v),
            Err(e) => Err(self.page_fault(
                HostAccess::RingDrain { slot },
                HCALL_STATUS,
                e,
                Origin::Ring(slot),
            )),
        }
    }

    pub(super) fn set_status(&mut self, page: Gpa, slot: usize, v: u8) -> Result<(), Stop> {
        let at = page + (HCALL_STATUS.offset + slot) as u64;
        match self.mem.store_u8(at, v, Ordering::Release) {
            Ok(()) => Ok(()),
            Err(e) => Err(self.page_fault(
                HostAccess::RingDrain { slot },
                HCALL_STATUS,
                e,
                Origin::Ring(slot),
            )),
        }
    }

    /// Copies slot `slot`'s call number and arguments once.
    pub(super) fn read_slot(
        &mut self,
        page: Gpa,
        slot: usize,
    ) -> Result<(u64, [u64; RING_ARGS]), Stop> {
        let base = page + (HCALLS.offset + slot * RingSlot::SIZE) as u64;
        let load = |off: usize| self.mem.load_u64(base + off as u64, Ordering::Relaxed);
        let mut args = [0u64; RING_ARGS];
        let mut read = || -> Result<u64, crate::memory::OutOfRange> {
            for (i, a) in args.iter_mut().enumerate() {
                *a = load(RingSlot::ARGS_OFFSET + 8 * i)?;
            }
            load(RingSlot::NR_OFFSET)
        };
        match read() {
            Ok(nr) => Ok((nr, args)),
            Err(e) => Err(self.page_fault(
                HostAccess::RingDrain { slot },
                HCALLS,
                e,
                Origin::Ring(slot),
            )),
        }
    }

    pub(super) fn wake(&mut self, page: Gpa) -> Result<(), Stop> {
        self.halted = false;
        self.store_page_u32(page, IRQ_ENABLED, EFLAGS_IF as u32, HostAccess::Wake)
    }

    pub(super) fn write_time(&mut self, page: Gpa) -> Result<(), Stop> {
        let t = self.clock.wall();
        // Nanoseconds first: a reader that sees the new seconds sees the new nanoseconds.
        for (f, v) in [(TIME_NSEC, t.nsec), (TIME_SEC, t.sec)] {
            if let Err(e) = self
                .mem
                .store_u64(page + f.offset as u64, v, Ordering::Release)
            {
                return Err(self.page_fault(HostAccess::WriteTime, f, e, Origin::Entry));
            }
        }
        Ok(())
    }
}
