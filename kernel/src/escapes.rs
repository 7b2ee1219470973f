//! Room: the isolation escapes. Hostile kernels: the escapes tried against the host before
//! it kept shadow page tables, each as a `--fault`. Under shadow paging every one must end in a precise kill or a fault
//! reflected to this kernel's own handler (at ring 3), never in code of ours at ring 0:
//!
//! - `host-read`: map the host's region through an ordinary user PTE and read it;
//! - `stack-write`: map the host's ring-0 stack page and write to it;
//! - `fake-idt`: build a copy of the host's region whose IDT sends `int3` to our own code
//!   with the host's code selector, point our PML4[511] at it, `int3`;
//! - `fake-idt-lidt`: the same, and `lidt` to the copy first;
//! - `stale-pte`: change a mapped entry without SET_PTE: the host's shadow (what the CPU
//!   uses) keeps the old frame until SET_PTE tells it.
//!
//! All of them change this kernel's own page tables with plain stores, as a hostile kernel
//! would, and use [`crate::workload::map`] only to build the tables down to a leaf.

use guest::abi::numbers::{GUEST_PL, IDT_ENTRIES};
use x86::irq::BREAKPOINT_VECTOR;

use crate::params::{Checked, Fault};
use crate::workload::{
    Failure, HOST_PML4_SLOT, HOST_VA, KERNEL_ADDRESS, LEAF, NEEDS_CPU, Platform, UPPER, leaf_ptr,
    map,
};

/// Where the host's ring-0 stack page is in its region, as the attack knows the layout
/// (`lguest-run`'s layout test checks it still is).
pub const HOST_STACK_OFF: u64 = 0x9000;
/// Where the host's IDT is in its region, likewise.
pub const HOST_IDT_OFF: u64 = 0x1000;
/// The host's code selector (GDT entry 1, the spec's `host_cs_entry`), which a gate to our
/// code would need to reach ring 0.
pub const HOST_CS: u16 = (guest::abi::numbers::HOST_CS_ENTRY * 8) as u16;
/// Where the faults map what they map: 2 GiB into the kernel's half, never used otherwise.
pub const HOSTILE_VA: u64 = KERNEL_ADDRESS + (2 << 30);
/// The last message of `stale-pte` when the host behaves.
pub const STALE_THEN_FRESH: &str = "stale-pte: the old frame until SET_PTE, then the new one";

/// Commits `params.fault` if it is one of this file's.
pub fn commit<P: Platform>(p: &P, pgdir: u64, params: &Checked) -> Result<(), Failure> {
    let mem = params.raw.mem_size;
    match params.fault {
        Fault::HostRead
        | Fault::StackWrite
        | Fault::FakeIdt
        | Fault::FakeIdtLidt
        | Fault::StalePte
            if !p.mappings_live() =>
        {
            Err(NEEDS_CPU)
        }
        Fault::HostRead => {
            let v = native_map(p, pgdir, HOSTILE_VA, mem + HOST_IDT_OFF)?;
            // SAFETY: deliberately wrong: the page is the host's IDT, if the host lets us.
            let gate = unsafe { (v as *const u64).read_volatile() };
            Err(if gate == 0 {
                "read the host's region (a zero word)"
            } else {
                "read the host's region"
            })
        }
        Fault::StackWrite => {
            let v = native_map(p, pgdir, HOSTILE_VA, mem + HOST_STACK_OFF)?;
            // SAFETY: deliberately wrong: the host's ring-0 stack, if the host lets us.
            unsafe {
                (v as *mut u64).write_volatile(0x0bad_57ac);
                if (v as *const u64).read_volatile() == 0x0bad_57ac {
                    return Err("wrote the host's ring-0 stack and read it back");
                }
            }
            Err("wrote the host's ring-0 stack")
        }
        Fault::FakeIdt => fake_idt(p, pgdir, false),
        Fault::FakeIdtLidt => fake_idt(p, pgdir, true),
        Fault::StalePte => stale_pte(p, pgdir),
        _ => Ok(()),
    }
}

/// Maps `va` to `frame` with a plain store into the leaf (no SET_PTE). Returns `va`.
fn native_map<P: Platform>(p: &P, pgdir: u64, va: u64, frame: u64) -> Result<u64, Failure> {
    map(p, pgdir, va, 0)?;
    let leaf = leaf_ptr(p, pgdir, va).ok_or("no leaf")?;
    // SAFETY: `leaf` is the live leaf entry for `va` in our own tables.
    unsafe { leaf.write_volatile(frame | LEAF) };
    Ok(va)
}

/// A zeroed page of ours, by physical address (identity-mapped).
fn page<P: Platform>(p: &P) -> Result<u64, Failure> {
    p.alloc_page().ok_or("out of pages")
}

fn fake_idt<P: Platform>(p: &P, pgdir: u64, lidt: bool) -> Result<(), Failure> {
    // The copy: tables under a fake PML4[511], and an IDT page at the host's IDT offset
    // whose gate 3 sends `int3` to our probe, at ring 0 through the host's code selector.
    let (pdpt, pd, pt, idt) = (page(p)?, page(p)?, page(p)?, page(p)?);
    let probe = hostile_cpl0_probe as *const () as u64;
    let gate = guest::pic::encode_gate(probe, HOST_CS, guest::pic::INTERRUPT_GATE, GUEST_PL as u8);
    // SAFETY: all four are fresh pages of ours, identity-mapped and writable.
    unsafe {
        (p.va(pdpt)).write_volatile(pd | UPPER);
        (p.va(pd)).write_volatile(pt | UPPER);
        p.va(pt)
            .add(paging::index(paging::PT, HOST_VA + HOST_IDT_OFF))
            .write_volatile(idt | LEAF);
        let g = p.va(idt).cast::<u128>().add(usize::from(BREAKPOINT_VECTOR));
        g.write_volatile(gate);
        // The host's entry in our own top-level table, pointed at the copy.
        p.va(pgdir).add(HOST_PML4_SLOT).write_volatile(pdpt | UPPER);
    }
    if lidt {
        let idtr = Idtr {
            limit: (size_of::<[u128; IDT_ENTRIES as usize]>() - 1) as u16,
            base: HOST_VA + HOST_IDT_OFF,
        };
        // SAFETY: deliberately privileged: `lidt` at ring 3 must fault (#GP), and if it
        // did not, the IDT it loads is the copy above.
        unsafe { core::arch::asm!("lidt [{}]", in(reg) &idtr, options(nostack)) };
    }
    // SAFETY: deliberately hostile: a breakpoint, which the real IDT routes to the host.
    unsafe { core::arch::asm!("int3", options(nomem, nostack)) };
    Err("int3 returned without reaching a handler")
}

#[repr(C, packed)]
struct Idtr {
    limit: u16,
    base: u64,
}

/// Where the fake gate points. Reaching it at all means the fake IDT was used: it says so,
/// with its privilege level, and ends the kernel.
#[unsafe(no_mangle)]
extern "C" fn hostile_cpl0_reached(cs: u64) -> ! {
    panic!("code ran through the fake IDT at ring {}", cs & 3)
}

unsafe extern "C" {
    fn hostile_cpl0_probe();
}

core::arch::global_asm!(
    ".globl hostile_cpl0_probe",
    "hostile_cpl0_probe:",
    "mov rdi, cs",
    "and rsp, -16",
    "call hostile_cpl0_reached",
    "ud2",
);

fn stale_pte<P: Platform>(p: &P, pgdir: u64) -> Result<(), Failure> {
    const A: u64 = 0xaaaa_aaaa;
    const B: u64 = 0xbbbb_bbbb;
    let (a, b) = (page(p)?, page(p)?);
    let va = HOSTILE_VA as *const u64;
    // SAFETY: `a` and `b` are fresh pages of ours; `va` is mapped to one of them by the time
    // it is read.
    unsafe {
        p.va(a).write_volatile(A);
        p.va(b).write_volatile(B);
        map(p, pgdir, HOSTILE_VA, a | LEAF)?;
        if va.read_volatile() != A {
            return Err("stale-pte: the first mapping did not reach its frame");
        }
        let leaf = leaf_ptr(p, pgdir, HOSTILE_VA).ok_or("no leaf")?;
        leaf.write_volatile(b | LEAF);
        match va.read_volatile() {
            A => {}
            B => return Err("stale-pte: a change without SET_PTE took effect"),
            _ => return Err("stale-pte: the page reads as neither frame"),
        }
        map(p, pgdir, HOSTILE_VA, b | LEAF)?;
        if va.read_volatile() != B {
            return Err("stale-pte: SET_PTE did not replace the old mapping");
        }
    }
    Err(STALE_THEN_FRESH)
}
