//! Shared test fixtures: a guest memory with a shared page laid out as a guest sets it up
//! before LGUEST_INIT, and helpers to fill ring slots and page tables.

#![allow(dead_code)]

use std::sync::atomic::Ordering;

use host_stubs::abi::numbers::{ARG_REGS, LGUEST_INIT, PAGE_SIZE, SYSCALL_VECTOR};
use host_stubs::abi::shared::{LguestData, RING_DONE, RING_READY, RING_SIZE, RingSlot};
use host_stubs::abi::types::Gpa;
use host_stubs::clock::{ManualClock, WallTime};
use host_stubs::host::{Host, HostConfig};
use host_stubs::memory::GuestMem;

/// Guest memory size of the fixtures.
pub const MEM: u64 = 0x20_0000;
/// Where the fixtures put the shared page.
pub const PAGE: Gpa = 0x1000;
/// The guest kernel's half of the address space.
pub const KERNEL: u64 = 0xffff_8000_0000_0000;
/// The no-interrupt window the fixtures' guest reports.
pub const NOIRQ: (u64, u64) = (KERNEL + 0x1000, KERNEL + 0x1008);
/// The host's boot page table.
pub const BOOT_PGDIR: Gpa = 0x10_0000;
/// Wall clock at time 0.
pub const WALL: WallTime = WallTime {
    sec: 1_234_567,
    nsec: 500,
};
/// The TSC the clock reports.
pub const TSC_KHZ: u32 = 2_400_000;

/// Writes the shared page as the guest sets it up statically (the seed's `lguest_data`).
pub fn setup_page(mem: &GuestMem, page: Gpa) {
    let at = |off: usize| page + off as u64;
    mem.write_u64(at(LguestData::BLOCKED_INTERRUPTS_OFFSET), 1)
        .unwrap();
    mem.write(at(LguestData::HCALL_STATUS_OFFSET), &[RING_DONE; RING_SIZE])
        .unwrap();
    mem.write(
        at(LguestData::SYSCALL_VEC_OFFSET),
        &(SYSCALL_VECTOR as u32).to_le_bytes(),
    )
    .unwrap();
    mem.write_u64(at(LguestData::KERNEL_ADDRESS_OFFSET), KERNEL)
        .unwrap();
    mem.write_u64(at(LguestData::NOIRQ_START_OFFSET), NOIRQ.0)
        .unwrap();
    mem.write_u64(at(LguestData::NOIRQ_END_OFFSET), NOIRQ.1)
        .unwrap();
}

/// A host over `size` bytes with the shared page set up at `PAGE` (if it fits), not yet
/// initialised, and the clock that drives it.
pub fn host_with(size: u64) -> (Host<ManualClock>, ManualClock) {
    host_at(size, |_| {}, PAGE)
}

/// A host over `size` bytes, first filled by `fill`, then with the shared page set up at
/// `page` (if it fits), not yet initialised, and the clock that drives it.
pub fn host_at(
    size: u64,
    fill: impl FnOnce(&GuestMem),
    page: Gpa,
) -> (Host<ManualClock>, ManualClock) {
    let mem = GuestMem::new(size).unwrap();
    fill(&mem);
    if mem.check(page, LguestData::SIZE as u64).is_ok() {
        setup_page(&mem, page);
    }
    let clock = ManualClock::new(WALL, TSC_KHZ);
    let cfg = HostConfig {
        boot_pgdir: BOOT_PGDIR,
        ..HostConfig::default()
    };
    (Host::new(mem, clock.clone(), cfg), clock)
}

/// A host after a successful LGUEST_INIT.
pub fn booted() -> (Host<ManualClock>, ManualClock) {
    let (mut h, c) = host_with(MEM);
    h.hypercall(LGUEST_INIT, [PAGE, 0, 0, 0]).unwrap();
    (h, c)
}

/// Reads a shared-page field.
pub fn field_u64(h: &Host<ManualClock>, off: usize) -> u64 {
    h.mem().read_u64(PAGE + off as u64).unwrap()
}

/// Reads a 32-bit shared-page field.
pub fn field_u32(h: &Host<ManualClock>, off: usize) -> u32 {
    let mut b = [0u8; 4];
    h.mem().read(PAGE + off as u64, &mut b).unwrap();
    u32::from_le_bytes(b)
}

/// Writes a 32-bit shared-page field.
pub fn set_field_u32(h: &Host<ManualClock>, off: usize, v: u32) {
    h.mem().write(PAGE + off as u64, &v.to_le_bytes()).unwrap();
}

/// Fills ring slot `slot` with `nr` and `args` and sets its status byte.
pub fn put_slot(mem: &GuestMem, slot: usize, nr: u64, args: [u64; 3], status: u8) {
    put_slot_at(mem, PAGE, slot, nr, args, status);
}

/// [`put_slot`] for the shared page at `page`.
pub fn put_slot_at(mem: &GuestMem, page: Gpa, slot: usize, nr: u64, args: [u64; 3], status: u8) {
    let base = page + (LguestData::HCALLS_OFFSET + slot * RingSlot::SIZE) as u64;
    mem.write_u64(base + RingSlot::NR_OFFSET as u64, nr)
        .unwrap();
    for (i, a) in args.iter().enumerate() {
        mem.write_u64(base + (RingSlot::ARGS_OFFSET + 8 * i) as u64, *a)
            .unwrap();
    }
    // The status byte last, published as the guest's atomic store publishes it.
    mem.store_u8(
        page + (LguestData::HCALL_STATUS_OFFSET + slot) as u64,
        status,
        Ordering::Release,
    )
    .unwrap();
}

/// Queues a ready call in ring slot `slot`.
pub fn queue(mem: &GuestMem, slot: usize, nr: u64, args: [u64; 3]) {
    put_slot(mem, slot, nr, args, RING_READY);
}

/// The status byte of ring slot `slot`.
pub fn status(mem: &GuestMem, slot: usize) -> u8 {
    status_at(mem, PAGE, slot)
}

/// [`status`] for the shared page at `page`.
pub fn status_at(mem: &GuestMem, page: Gpa, slot: usize) -> u8 {
    let mut b = [0u8];
    mem.read(
        page + (LguestData::HCALL_STATUS_OFFSET + slot) as u64,
        &mut b,
    )
    .unwrap();
    b[0]
}

/// Pads a call's arguments to the register count.
pub fn regs(args: &[u64]) -> [u64; ARG_REGS] {
    let mut r = [0; ARG_REGS];
    r[..args.len()].copy_from_slice(args);
    r
}

/// A tiny page-table builder in guest memory: tables are handed out from `next`.
pub struct Tables {
    pub next: Gpa,
}

/// Present + writable, for upper-level entries.
pub const UPPER: u64 = 0x3;
/// Present + writable + accessed + dirty, for leaf entries.
pub const LEAF: u64 = 0x63;

impl Tables {
    /// Hands out a zeroed page.
    pub fn alloc(&mut self, mem: &GuestMem) -> Gpa {
        let p = self.next;
        self.next += PAGE_SIZE;
        mem.write(p, &[0u8; PAGE_SIZE as usize]).unwrap();
        p
    }

    /// Maps `vaddr` to `pte` in the tables rooted at `pgdir`, allocating missing tables.
    /// Returns the page table's address.
    pub fn map(&mut self, mem: &GuestMem, pgdir: Gpa, vaddr: u64, pte: u64) -> Gpa {
        // Each round adds one missing table (through the one page walk); the last reaches
        // the leaf.
        loop {
            let w = paging::walk(&host_stubs::mmu::GuestTables(mem), pgdir, vaddr).unwrap();
            let last = w.last();
            match w.end {
                paging::End::NotPresent { level } if level < paging::PT => {
                    let t = self.alloc(mem);
                    mem.write_u64(last.at(), t | UPPER).unwrap();
                }
                _ => {
                    assert_eq!(w.depth, paging::LEVELS, "a huge page is in the way");
                    mem.write_u64(last.at(), pte).unwrap();
                    return last.table;
                }
            }
        }
    }
}

/// Makes `LguestData` a Rust reference to the shared page in guest memory.
///
/// # Safety
///
/// `h` must outlive the reference, and nothing may move or unmap its guest memory. The
/// page holds only atomics, so host writes through `vm-memory` (atomic stores of the
/// same sizes) never race with the reference's accesses non-atomically.
pub unsafe fn shared_ref<'a>(h: &Host<ManualClock>) -> &'a LguestData {
    let p = h
        .mem()
        .host_ptr(PAGE, LguestData::SIZE as u64)
        .unwrap()
        .as_ptr();
    assert_eq!(p as usize % core::mem::align_of::<LguestData>(), 0);
    // SAFETY: in bounds (checked above), aligned (asserted), valid for the lifetime the
    // caller promised, and every bit pattern is a valid `LguestData` (all atomics).
    unsafe { &*(p as *const LguestData) }
}
