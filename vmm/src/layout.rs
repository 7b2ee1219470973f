//! What the host owns inside the VM, byte for byte: the real GDT, IDT and TSS, the ring-0
//! trap stubs, and the page tables that map them at the top of every address space (the
//! original's Switcher pages), plus the boot page tables the kernel starts on.
//!
//! Guest-physical memory:
//!
//! ```text
//! 0 .. mem              guest RAM (the guest's own; the boot block at BOOT_BLOCK, the kernel
//!                       at 1 MiB, the boot page tables in its last BOOT_TABLE_PAGES pages)
//! mem .. mem+RO_SIZE    the host's tables, stubs and page tables: a read-only memslot
//! .. +STACK_SIZE        the ring-0 stack the stubs run on
//! mem+2M .. +POOL_PAGES the shadow page tables (host_stubs::mmu), a read-only memslot
//! ```
//!
//! The host region is mapped at [`HOST_VA`], the start of the last top-level page-table
//! entry, which the spec's `RESERVE_MEM` leaves to the host: the host puts that entry in
//! every shadow root itself, and never reads the guest's. Its entries have no user bit, so
//! the ring-3 guest cannot touch it. Nothing past guest RAM is mappable by the guest at all:
//! the MMU walks only the host's shadow tables, and the host refuses (kills) any guest entry
//! whose frame is not guest RAM.
//!
//! Bit layouts of descriptors and page-table entries are x86 architecture, not ABI.

use std::mem::offset_of;

use guest::pic::{INTERRUPT_GATE, encode_gate};
use host_stubs::desc::{Gate, Segment, fix_segment, has_error_code};
use lguest_abi::guest::Pio;
use lguest_abi::numbers::GUEST_PL;
use lguest_abi::numbers::{
    GDT_ENTRIES, HOST_CS_ENTRY, HOST_DS_ENTRY, HOST_TSS_ENTRY, IDT_ENTRIES, PAGE_SIZE, RESERVE_MEM,
};
use lguest_abi::numbers::{KERNEL_CS, KERNEL_DS};
use paging::{A, D, P, PS, RW, US};
use x86::bits64::task::TaskStateSegment;
// The mark port is the kernel's boot-block contract with this VMM (not lguest's ABI), and
// `params` is that contract's one home.
use lguest_kernel::params::MARK_PORT;

/// Where the host region is mapped: the first address of the last top-level entry.
pub const HOST_VA: u64 = 0u64.wrapping_sub(RESERVE_MEM);
/// The slot of the host's entry in every top-level table: the one `HOST_VA` falls in (the
/// shadow MMU's, which also checks that `RESERVE_MEM` is exactly one entry).
pub const HOST_PML4_SLOT: u64 = host_stubs::mmu::shadow::HOST_INDEX as u64;
/// Byte offset of that slot in a top-level table.
pub const HOST_PML4_OFF: u64 = HOST_PML4_SLOT * 8;

/// The real GDT (`GDT_ENTRIES` 8-byte entries).
pub const GDT_OFF: u64 = 0x0000;
/// The tail every trap stub jumps to.
pub const COMMON_OFF: u64 = 0x0800;
/// The real IDT (`IDT_ENTRIES` 16-byte gates).
pub const IDT_OFF: u64 = 0x1000;
/// The 64-bit TSS, then its I/O permission bitmap.
pub const TSS_OFF: u64 = 0x2000;
/// The trap stubs, [`STUB_SIZE`] bytes per vector.
pub const STUBS_OFF: u64 = 0x5000;
/// Bytes per trap stub.
pub const STUB_SIZE: u64 = 16;
/// The page-directory-pointer table under the host's top-level entry.
pub const PDPT_OFF: u64 = 0x6000;
/// Its page directory.
pub const PD_OFF: u64 = 0x7000;
/// Its page table, mapping the whole region.
pub const PT_OFF: u64 = 0x8000;
/// Bytes of the read-only part.
pub const RO_SIZE: u64 = 0x9000;
/// The ring-0 stack.
pub const STACK_OFF: u64 = RO_SIZE;
/// Its size.
pub const STACK_SIZE: u64 = PAGE_SIZE;
/// The whole region.
pub const HOST_SIZE: u64 = STACK_OFF + STACK_SIZE;

/// What a stub leaves on the ring-0 stack when it tells the host: the vector, the error
/// code (the CPU's, or the zero the stub pushed), then the CPU's `iretq` frame (rip, cs,
/// rflags, rsp, ss). From a trap at ring 3 it sits at the top of the stack.
pub const STUB_FRAME_WORDS: u64 = 7;
/// Words before the `iretq` frame in it (vector, error code).
pub const STUB_FRAME_IRET: u64 = 2;
/// Where a stub's frame starts, for a trap taken at ring 3.
pub const STUB_FRAME_OFF: u64 = STACK_OFF + STACK_SIZE - STUB_FRAME_WORDS * 8;

/// The port the stubs write to, from ring 0: "a trap happened, its frame is on my stack".
/// The guest cannot use it (its TSS bit is set).
pub const TRAP_PORT: u16 = 0xf8;

/// Where the host writes the boot block (below the kernel, inside RAM).
pub const BOOT_BLOCK: u64 = 0x7000;
/// Pages at the top of RAM the boot page tables take: PML4, PDPT, PD.
pub const BOOT_TABLE_PAGES: u64 = 3;
/// Most RAM the boot tables can map (one page directory of 2 MiB pages).
pub const MAX_MEM: u64 = 1 << 30;
/// Pages of the shadow pool (4 MiB): the roots and every shadow table below them.
pub const POOL_PAGES: u32 = 1024;

/// Where the shadow pool is, for a host region at `host_gpa`: the next 2 MiB boundary past
/// the region.
pub const fn pool_gpa(host_gpa: u64) -> u64 {
    (host_gpa + HOST_SIZE).next_multiple_of(2 << 20)
}

/// Selector of the host's code segment.
pub const HOST_CS: u16 = (HOST_CS_ENTRY * 8) as u16;
/// Selector of the host's data segment.
pub const HOST_DS: u16 = (HOST_DS_ENTRY * 8) as u16;
/// Selector of the TSS.
pub const TSS_SEL: u16 = (HOST_TSS_ENTRY * 8) as u16;
/// Where the I/O permission bitmap starts in the TSS: right after the TSS itself.
const IOMAP_BASE: u64 = size_of::<TaskStateSegment>() as u64;
/// The bitmap's bytes: a bit per port.
const IOMAP_BYTES: u64 = (u16::MAX as u64 + 1) / 8;
/// The TSS's limit (its last byte): the TSS, the bitmap, and the byte of ones that must end
/// it.
pub const TSS_LIMIT: u64 = IOMAP_BASE + IOMAP_BYTES;

/// The guest's boot segments, the spec's kernel selectors with the guest's privilege level
/// (lguest's host likewise starts the guest on `__KERNEL_CS|GUEST_PL`).
pub const BOOT_CS: u16 = (KERNEL_CS | GUEST_PL) as u16;
/// See [`BOOT_CS`].
pub const BOOT_DS: u16 = (KERNEL_DS | GUEST_PL) as u16;

/// A flat 64-bit code segment at ring 0, accessed (x86 descriptor bits).
const CODE64: u64 = 0x00af_9b00_0000_ffff;
/// A flat 4 GiB read-write data segment at ring 0, accessed.
const DATA: u64 = 0x00cf_9300_0000_ffff;

/// The virtual address of region offset `off`.
pub const fn va(off: u64) -> u64 {
    HOST_VA + off
}

/// The top of the ring-0 stack (the TSS's RSP0).
pub const fn stack_top() -> u64 {
    va(STACK_OFF + STACK_SIZE)
}

/// The entry the host puts in the last slot of every shadow root.
pub fn host_pml4_entry(host_gpa: u64) -> u64 {
    (host_gpa + PDPT_OFF) | P | RW | A
}

/// The host region's initial bytes (everything but the GDT and IDT, which follow the
/// guest: see [`real_gdt`] and [`real_idt`]), for a region at guest-physical `host_gpa`.
pub fn host_region(host_gpa: u64) -> Vec<u8> {
    let mut r = vec![0u8; HOST_SIZE as usize];
    let put = |r: &mut Vec<u8>, off: u64, bytes: &[u8]| {
        r[off as usize..off as usize + bytes.len()].copy_from_slice(bytes);
    };
    // The stub tail: tell the host, then drop the vector and error code and return to
    // wherever the host pointed the frame.
    put(&mut r, COMMON_OFF, &common_code());
    for v in 0..IDT_ENTRIES {
        put(&mut r, STUBS_OFF + v * STUB_SIZE, &stub_code(v));
    }
    // TSS: RSP0, then the I/O map base; the bitmap denies every port but the ABI's.
    let rsp0 = offset_of!(TaskStateSegment, rsp) as u64;
    put(&mut r, TSS_OFF + rsp0, &stack_top().to_le_bytes());
    let iomap = offset_of!(TaskStateSegment, iomap_base) as u64;
    put(&mut r, TSS_OFF + iomap, &(IOMAP_BASE as u16).to_le_bytes());
    let map = TSS_OFF + IOMAP_BASE;
    r[map as usize..(map + IOMAP_BYTES + 1) as usize].fill(0xff);
    // The hypercall's `out` writes Pio::PORT_BYTES ports from Pio::PORT. The mark is one byte.
    for port in (Pio::PORT..Pio::PORT + Pio::PORT_BYTES).chain([MARK_PORT]) {
        let byte = (map + u64::from(port / 8)) as usize;
        r[byte] &= !(1 << (port % 8));
    }
    // The host's page tables: PDPT[0] -> PD[0] -> PT, which maps the region. Accessed and
    // dirty are preset so the CPU never writes to the read-only memslot.
    put(
        &mut r,
        PDPT_OFF,
        &((host_gpa + PD_OFF) | P | RW | A).to_le_bytes(),
    );
    put(
        &mut r,
        PD_OFF,
        &((host_gpa + PT_OFF) | P | RW | A).to_le_bytes(),
    );
    for page in 0..HOST_SIZE / PAGE_SIZE {
        let pte = (host_gpa + page * PAGE_SIZE) | P | RW | A | D;
        put(&mut r, PT_OFF + page * 8, &pte.to_le_bytes());
    }
    r
}

/// `out TRAP_PORT, al; add rsp, 16; iretq`.
fn common_code() -> Vec<u8> {
    vec![0xe6, TRAP_PORT as u8, 0x48, 0x83, 0xc4, 0x10, 0x48, 0xcf]
}

/// Vector `v`'s stub: push a zero error code where the CPU pushes none, push the vector,
/// jump to the common tail.
fn stub_code(v: u64) -> Vec<u8> {
    let mut c = Vec::with_capacity(STUB_SIZE as usize);
    if !has_error_code(v) {
        c.extend([0x6a, 0x00]);
    }
    c.push(0x68);
    c.extend((v as u32).to_le_bytes());
    let next = va(STUBS_OFF + v * STUB_SIZE) + c.len() as u64 + 5;
    let rel = va(COMMON_OFF).wrapping_sub(next) as i64;
    c.push(0xe9);
    c.extend((rel as i32).to_le_bytes());
    c.resize(STUB_SIZE as usize, 0xcc);
    c
}

/// The real GDT: the host's entries where the spec reserves them, the guest's fixed-up
/// entries elsewhere (before it loads any, the boot segments: flat code and data, fixed up
/// to the guest's privilege level as lguest's `setup_guest_gdt` does).
pub fn real_gdt(guest: &[Segment]) -> [u64; GDT_ENTRIES as usize] {
    let loaded = guest.iter().any(Segment::present);
    let boot = [(KERNEL_CS, CODE64), (KERNEL_DS, DATA)]
        .map(|(sel, d)| ((sel >> 3) as usize, fix_segment(d as u32, (d >> 32) as u32)));
    let base = va(TSS_OFF);
    let tss_lo = (TSS_LIMIT & 0xffff)
        | ((base & 0xff_ffff) << 16)
        | (0x8b << 40)
        | (((TSS_LIMIT >> 16) & 0xf) << 48)
        | (((base >> 24) & 0xff) << 56);
    let tss_hi = base >> 32;
    let mut g = [0u64; GDT_ENTRIES as usize];
    for (i, e) in g.iter_mut().enumerate() {
        *e = match i as u64 {
            HOST_CS_ENTRY => CODE64,
            HOST_DS_ENTRY => DATA,
            HOST_TSS_ENTRY => tss_lo,
            x if x == HOST_TSS_ENTRY + 1 => tss_hi,
            _ if loaded => guest.get(i).map_or(0, Segment::raw),
            _ => boot
                .iter()
                .find(|(j, _)| *j == i)
                .map_or(0, |(_, s)| s.raw()),
        };
    }
    g
}

/// The real IDT: every vector goes to its host stub, at ring 0 on the host's stack; the
/// gate's privilege level (who may `int n` it) is the guest's gate's.
pub fn real_idt(guest: &[Gate]) -> Vec<u8> {
    let mut out = Vec::with_capacity(size_of::<[u128; IDT_ENTRIES as usize]>());
    for v in 0..IDT_ENTRIES {
        let dpl = guest
            .get(v as usize)
            .filter(|g| g.present())
            .map_or(0, Gate::dpl);
        let off = va(STUBS_OFF + v * STUB_SIZE);
        out.extend(encode_gate(off, HOST_CS, INTERRUPT_GATE, dpl).to_le_bytes());
    }
    out
}

/// The boot page tables, for the top [`BOOT_TABLE_PAGES`] pages of `mem` bytes of RAM:
/// RAM mapped at the same addresses in 2 MiB user pages. They are the guest's: the host
/// reads them to fill its shadow (the host's own entry is in the shadow, not here).
/// Returns (guest-physical address of the PML4, the pages' bytes).
pub fn boot_tables(mem: u64) -> (u64, Vec<u8>) {
    let base = mem - BOOT_TABLE_PAGES * PAGE_SIZE;
    let (pml4, pdpt, pd) = (base, base + PAGE_SIZE, base + 2 * PAGE_SIZE);
    let mut t = vec![0u8; (BOOT_TABLE_PAGES * PAGE_SIZE) as usize];
    let mut put = |gpa: u64, v: u64| {
        let at = (gpa - base) as usize;
        t[at..at + 8].copy_from_slice(&v.to_le_bytes());
    };
    put(pml4, pdpt | P | RW | US | A);
    put(pdpt, pd | P | RW | US | A);
    for i in 0..mem.div_ceil(paging::span(2)) {
        put(pd + i * 8, (i * paging::span(2)) | P | RW | US | A | D | PS);
    }
    (pml4, t)
}

/// A `kvm_segment` for `selector` from its 8-byte descriptor (decoded by
/// [`host_stubs::desc::Segment`], the one reader of descriptor bits).
pub fn kvm_segment(selector: u16, desc: u64) -> kvm_bindings::kvm_segment {
    let d = Segment::from_raw(desc);
    kvm_bindings::kvm_segment {
        base: u64::from(d.base()),
        limit: d.limit(),
        selector,
        type_: d.seg_type(),
        present: d.present().into(),
        dpl: d.dpl() as u8,
        db: d.db().into(),
        s: d.code_or_data().into(),
        l: d.long().into(),
        g: d.granular().into(),
        avl: d.avl().into(),
        unusable: 0,
        padding: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iced_x86::{Decoder, DecoderOptions, Formatter, IntelFormatter};

    fn disasm(bytes: &[u8], ip: u64) -> Vec<String> {
        let mut d = Decoder::with_ip(64, bytes, ip, DecoderOptions::NONE);
        let mut f = IntelFormatter::new();
        let mut out = Vec::new();
        while d.can_decode() {
            let i = d.decode();
            let mut s = String::new();
            f.format(&i, &mut s);
            out.push(s);
        }
        out
    }

    #[test]
    fn stubs_push_an_error_code_only_where_the_cpu_does_not_and_reach_the_tail() {
        let r = host_region(0x400_0000);
        let stub = |v: u64| {
            let at = (STUBS_OFF + v * STUB_SIZE) as usize;
            disasm(
                &r[at..at + STUB_SIZE as usize],
                va(STUBS_OFF + v * STUB_SIZE),
            )
        };
        let tail = format!("jmp 0{:016X}h", va(COMMON_OFF));
        assert_eq!(stub(3)[..3], ["push 0", "push 3", tail.as_str()]);
        assert_eq!(stub(14)[..2], ["push 0Eh", tail.as_str()]);
        assert_eq!(stub(255)[..3], ["push 0", "push 0FFh", tail.as_str()]);
        let c = COMMON_OFF as usize;
        assert_eq!(
            disasm(&r[c..c + 8], va(COMMON_OFF)),
            ["out 0F8h,al", "add rsp,10h", "iretq"]
        );
    }

    #[test]
    fn the_io_bitmap_opens_only_the_abi_ports() {
        let r = host_region(0);
        let map = (TSS_OFF + IOMAP_BASE) as usize;
        let open = |port: u16| r[map + usize::from(port / 8)] & (1 << (port % 8)) == 0;
        assert!((Pio::PORT..Pio::PORT + Pio::PORT_BYTES).all(open) && open(MARK_PORT));
        assert!(!open(TRAP_PORT) && !open(0x80) && !open(0x3f8));
        assert_eq!(r[map + 0x2000], 0xff, "the byte of ones past the bitmap");
        let rsp0 = u64::from_le_bytes(r[TSS_OFF as usize + 4..][..8].try_into().unwrap());
        assert_eq!(rsp0, stack_top());
    }

    #[test]
    fn the_gdt_keeps_host_entries_and_takes_the_guests() {
        let boot = real_gdt(&[Segment::default(); 16]);
        assert_eq!(boot[HOST_CS_ENTRY as usize], CODE64);
        let cs = kvm_segment(BOOT_CS, boot[2]);
        assert_eq!((cs.l, cs.dpl, cs.present, cs.s), (1, 3, 1, 1));
        let tss = kvm_segment(TSS_SEL, boot[HOST_TSS_ENTRY as usize]);
        assert_eq!(
            (tss.base | (boot[9] << 32), u64::from(tss.limit), tss.type_),
            (va(TSS_OFF), TSS_LIMIT, 0xb)
        );
        let mut guest = [Segment::default(); 16];
        guest[HOST_CS_ENTRY as usize] = fix_segment(0xffff, 0x00af_9a00);
        guest[5] = fix_segment(0xffff, 0x00cf_f200);
        let g = real_gdt(&guest);
        assert_eq!(g[HOST_CS_ENTRY as usize], CODE64, "host keeps its own");
        assert_eq!(g[5], guest[5].raw());
        assert_eq!(
            g[2], 0,
            "once the guest loads its GDT, its entries are all there is"
        );
    }

    #[test]
    fn idt_gates_go_to_the_stubs_with_the_guests_privilege() {
        let mut guest = vec![Gate::default(); IDT_ENTRIES as usize];
        guest[0x80] = Gate {
            lo: (3 << 45) | (1 << 47) | (0xf << 40),
            hi: 0,
        };
        let idt = real_idt(&guest);
        let gate = |v: usize| Gate {
            lo: u64::from_le_bytes(idt[v * 16..][..8].try_into().unwrap()),
            hi: u64::from_le_bytes(idt[v * 16 + 8..][..8].try_into().unwrap()),
        };
        assert_eq!(gate(14).offset(), va(STUBS_OFF + 14 * STUB_SIZE));
        assert_eq!(gate(14).selector(), HOST_CS);
        assert_eq!((gate(14).lo >> 45) & 3, 0);
        assert_eq!((gate(0x80).lo >> 45) & 3, 3);
    }

    #[test]
    fn the_hostile_kernels_know_the_real_layout() {
        use lguest_kernel::escapes as hostile;
        assert_eq!(hostile::HOST_STACK_OFF, STACK_OFF);
        assert_eq!(hostile::HOST_IDT_OFF, IDT_OFF);
        assert_eq!(hostile::HOST_CS, HOST_CS);
        assert_eq!(va(0), 0xffff_ff80_0000_0000);
    }

    #[test]
    fn boot_tables_map_ram_and_not_the_host() {
        let (pml4, t) = boot_tables(64 << 20);
        assert_eq!(pml4, (64 << 20) - 3 * PAGE_SIZE);
        let e = |i: usize| u64::from_le_bytes(t[i * 8..][..8].try_into().unwrap());
        assert_eq!(
            e(HOST_PML4_SLOT as usize),
            0,
            "the host's entry is the shadow's, not the guest's"
        );
        assert!(pool_gpa(64 << 20) >= (64 << 20) + HOST_SIZE);
        assert_eq!(e(0) & US, US);
        let pd = 2 * 512;
        assert_eq!(e(pd + 31), (31 << 21) | P | RW | US | A | D | PS);
        assert_eq!(e(pd + 32), 0);
    }
}
