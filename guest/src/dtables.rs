//! The descriptor tables: IDT, GDT, the TLS entries, and the LDT and task register lguest
//! does without.
//!
//! The Host controls the real tables, so the Guest keeps its own copy up to date and tells
//! the Host about every entry that changes.

use core::mem::size_of;

use x86::dtables::DescriptorTablePointer;
use x86::segmentation::Descriptor;

use crate::abi::guest::{LguestHypercalls, Transport};
use crate::abi::lazy::{LguestLazyHypercalls, Sent};
use crate::abi::numbers::TLS_ENTRIES;
use crate::abi::structs::TlsDescriptor;
use crate::hw::{RawCpuid, Translate};
use crate::lguest::Lguest;

// The TLS descriptors are handed to the host in place as the generated `TlsDescriptor`s.
const _: () = {
    assert!(size_of::<Descriptor>() == size_of::<TlsDescriptor>());
    assert!(core::mem::align_of::<Descriptor>() == core::mem::align_of::<TlsDescriptor>());
    assert!(
        core::mem::offset_of!(Descriptor, lower) == core::mem::offset_of!(TlsDescriptor, lower)
    );
    assert!(
        core::mem::offset_of!(Descriptor, upper) == core::mem::offset_of!(TlsDescriptor, upper)
    );
};

/// The two halves of a 16-byte x86_64 gate, as LOAD_IDT_ENTRY carries them.
fn gate_halves(gate: u128) -> (u64, u64) {
    (gate as u64, (gate >> 64) as u64)
}

impl<T: Transport, C: RawCpuid, P: Translate> Lguest<'_, T, C, P> {
    /// The Interrupt Descriptor Table (IDT).
    ///
    /// The IDT tells the processor what to do when an interrupt comes in. Each entry in the
    /// table is a descriptor (16 bytes on x86_64): this holds the privilege level, address
    /// of the handler, and... well, who cares? The Guest just asks the Host to make the
    /// change anyway, because the Host controls the real IDT.
    ///
    /// # Safety
    ///
    /// `idt` must point to a writable IDT with more than `entry` gates.
    pub unsafe fn write_idt_entry(&self, idt: *mut u128, entry: usize, gate: u128) {
        // Keep the local copy up to date.
        // SAFETY: the caller promises `idt` has a writable gate at `entry`.
        unsafe { idt.add(entry).write_volatile(gate) };
        // Tell Host about this new entry.
        let (lo, hi) = gate_halves(gate);
        self.transport.load_idt_entry(entry as u64, lo, hi);
    }

    /// Changing to a different IDT is very rare: we keep the IDT up-to-date every time it
    /// is written, so we can simply loop through all entries and tell the Host about them.
    ///
    /// # Safety
    ///
    /// `desc` must describe a readable table of `(limit + 1) / 16` gates.
    pub unsafe fn load_idt(&self, desc: &DescriptorTablePointer<u128>) {
        for i in 0..(usize::from(desc.limit) + 1) / size_of::<u128>() {
            // SAFETY: the caller promises the table holds this many gates; the table need
            // not be 16-byte aligned (the CPU does not require it), hence unaligned.
            let gate = unsafe { desc.base.add(i).read_unaligned() };
            let (lo, hi) = gate_halves(gate);
            self.transport.load_idt_entry(i as u64, lo, hi);
        }
    }

    /// The Global Descriptor Table.
    ///
    /// The Intel architecture defines another table, called the Global Descriptor Table
    /// (GDT). You tell the CPU where it is (and its size) using the "lgdt" instruction, and
    /// then several other instructions refer to entries in the table. The Host simply
    /// controls the entire thing and the Guest asks it to make changes using the LOAD_GDT
    /// hypercall.
    ///
    /// This is the exactly like the IDT code.
    ///
    /// # Safety
    ///
    /// `desc` must describe a readable table of `(limit + 1) / 8` descriptors.
    pub unsafe fn load_gdt(&self, desc: &DescriptorTablePointer<Descriptor>) {
        for i in 0..(usize::from(desc.limit) + 1) / size_of::<Descriptor>() {
            // SAFETY: the caller promises the table holds this many descriptors.
            let d = unsafe { desc.base.add(i).read_unaligned() };
            self.transport
                .load_gdt_entry(i as u64, u64::from(d.lower), u64::from(d.upper));
        }
    }

    /// For a single GDT entry which changes, we do the lazy thing: alter our GDT, then tell
    /// the Host about the entry. This operation is so rare that this naive implementation
    /// is reasonable.
    ///
    /// # Safety
    ///
    /// `gdt` must point to a writable GDT with more than `entry` entries.
    pub unsafe fn write_gdt_entry(&self, gdt: *mut Descriptor, entry: usize, desc: Descriptor) {
        // SAFETY: the caller promises `gdt` has a writable entry at `entry`.
        let d = unsafe {
            gdt.add(entry).write_volatile(desc);
            gdt.add(entry).read_volatile()
        };
        // Tell Host about this new entry.
        self.transport
            .load_gdt_entry(entry as u64, u64::from(d.lower), u64::from(d.upper));
    }

    /// OK, I lied. There are three "thread local storage" GDT entries which change on every
    /// context switch (these three entries are how glibc implements __thread variables).
    /// So we have a hypercall specifically for this case.
    ///
    /// The 32-bit seed first cleared %gs, because the Host could not handle us removing
    /// entries we were using. On x86_64 %gs is the kernel's per-CPU base (an MSR, not a TLS
    /// entry), loading a null selector would wipe it, and the host keeps the loaded
    /// segment state; so the port skips that step.
    ///
    /// # Safety
    ///
    /// In lazy mode the call is queued and the host reads `tls` when the ring is drained
    /// (at the next synchronous hypercall, at the latest when lazy mode ends): until then the
    /// descriptors must stay valid and unchanged.
    pub unsafe fn load_tls(&self, tls: &[Descriptor; TLS_ENTRIES as usize], cpu: u32) -> Sent {
        // SAFETY: `TlsDescriptor` is the generated twin of `Descriptor`: both are packed
        // pairs of `u32`s, `lower` then `upper` (asserted below), so the array reads the same
        // either way.
        let tls = unsafe { &*tls.as_ptr().cast::<[TlsDescriptor; TLS_ENTRIES as usize]>() };
        // SAFETY: the caller keeps the descriptors valid and unchanged until the ring is
        // drained, which is what the generated wrapper asks.
        self.lazy_hcall(|b| unsafe { b.load_tls(&self.translate, tls, u64::from(cpu)) })
    }

    /*G:038 This is the Local Descriptor Table, another weird Intel thingy. Linux only
     * uses this for some strange applications like Wine. We don't do anything
     * here, so they'll get an informative and friendly Segmentation Fault. */
    /// Install a local descriptor table: we don't do anything.
    pub fn set_ldt(&self, _base: u64, _entries: u32) {}

    /// This loads a GDT entry into the "Task Register": that entry points to a structure
    /// called the Task State Segment. Some comments scattered though the kernel code
    /// indicate that this used for task switching in ages past, along with blood sacrifice
    /// and astrology.
    ///
    /// Now there's nothing interesting in here that we don't get told elsewhere. But the
    /// native version uses the "ltr" instruction, which makes the Host complain to the
    /// Guest about a Segmentation Fault and it'll oops. So we override the native version
    /// with a do-nothing version.
    pub fn load_tr_desc(&self) {}
}
