//! The pv_op call sites a kernel patches at boot, and the records that find them.
//!
//! Linux calls its paravirt hooks through `pv_ops` function pointers, and every such call
//! site leaves a record in `.parainstructions` (address, op, length, clobbers) so that
//! `apply_paravirt()` can rewrite the hottest ones in place: `cli` becomes a store to the
//! shared page instead of an indirect call. `pv_macros::pv_call!` does the same in Rust:
//! it emits
//!
//! ```text
//! 2:  call qword ptr [rip + SLOT]      ; ff 15 rel32, CALL_LEN bytes
//!     nop; nop; ...                    ; 0x90 padding up to the op's site length
//!     .pushsection pv_sites            ; one SiteRecord
//! ```
//!
//! where the site length is `max(CALL_LEN, longest form of the op's template)`, so every
//! form of the template fits where the call was. This crate is the runtime half: the record
//! layout the macro writes ([`SiteRecord`]), the register bits of its clobber mask
//! ([`clobber`]), the function-pointer [`Slot`] a site calls through, and [`sites`], the
//! records the linker gathered between `__start_pv_sites` and `__stop_pv_sites`.
//!
//! The section is named [`SECTION`], a valid C identifier, so ELF linkers define the
//! `__start_`/`__stop_` symbols without a linker script. Records hold the site's address
//! relative to the record, so the section needs no run-time relocations and can stay
//! read-only even in a position-independent kernel.

#![no_std]

use core::sync::atomic::{AtomicPtr, Ordering};

/// The linker section holding the [`SiteRecord`]s.
pub const SECTION: &str = "pv_sites";

/// Bytes of `call qword ptr [rip + SLOT]` (`ff 15` and a rel32): the shortest a site can be.
pub const CALL_LEN: usize = 6;

/// The byte call sites are padded with after the call (`nop`).
pub const NOP: u8 = 0x90;

/// Registers as bits of a clobber mask: bit `n` is the register whose x86 encoding is `n`.
///
/// A site's mask says which registers the code at the site may change, so a patcher knows
/// which instructions it may put there (as Linux's `CLBR_*`).
pub mod clobber {
    /// `rax`, the return register.
    pub const RAX: u16 = 1 << 0;
    /// `rcx`.
    pub const RCX: u16 = 1 << 1;
    /// `rdx`.
    pub const RDX: u16 = 1 << 2;
    /// `rbx`.
    pub const RBX: u16 = 1 << 3;
    /// `rbp`.
    pub const RBP: u16 = 1 << 5;
    /// `rsi`.
    pub const RSI: u16 = 1 << 6;
    /// `rdi`.
    pub const RDI: u16 = 1 << 7;
    /// `r8`.
    pub const R8: u16 = 1 << 8;
    /// `r9`.
    pub const R9: u16 = 1 << 9;
    /// `r10`.
    pub const R10: u16 = 1 << 10;
    /// `r11`.
    pub const R11: u16 = 1 << 11;
    /// `r12`.
    pub const R12: u16 = 1 << 12;
    /// `r13`.
    pub const R13: u16 = 1 << 13;
    /// `r14`.
    pub const R14: u16 = 1 << 14;
    /// `r15`.
    pub const R15: u16 = 1 << 15;

    /// What an ordinary (System V) call may change: the sites of ordinary ops.
    pub const CALLER_SAVED: u16 = RAX | RCX | RDX | RSI | RDI | R8 | R9 | R10 | R11;

    /// What a callee-save op may change: only the return register.
    pub const CALLEE_SAVE: u16 = RAX;

    /// The name of every register in `mask`, in encoding order.
    pub fn names(mask: u16) -> impl Iterator<Item = &'static str> {
        const NAMES: [&str; 16] = [
            "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11",
            "r12", "r13", "r14", "r15",
        ];
        NAMES
            .into_iter()
            .enumerate()
            .filter(move |(i, _)| mask & (1 << i) != 0)
            .map(|(_, n)| n)
    }
}

/// One call site, as `pv_call!` records it in [`SECTION`].
///
/// The assembler writes it field by field (`.long`, `.short`, `.short`, `.byte` x4), so
/// this layout is the format: 12 bytes, 4-aligned, little-endian.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SiteRecord {
    /// The site's address minus this field's address.
    pub rel: i32,
    /// The op, as the generated `PvOpId::id()` numbers it (spec order of tables, then ops).
    pub op: u16,
    /// The registers the site may change ([`clobber`] bits).
    pub clobbers: u16,
    /// The site's length in bytes: the call, then NOPs.
    pub len: u8,
    /// Zero.
    pub reserved: [u8; 3],
}

const _: () = assert!(core::mem::size_of::<SiteRecord>() == SiteRecord::SIZE);
const _: () = assert!(core::mem::align_of::<SiteRecord>() == 4);

impl SiteRecord {
    /// Bytes of a record in the section.
    pub const SIZE: usize = 12;

    /// The site's address.
    pub fn addr(&self) -> usize {
        let field = core::ptr::addr_of!(self.rel) as usize;
        field.wrapping_add_signed(self.rel as isize)
    }

    /// The site's bytes: a `call qword ptr [rip + slot]` and NOPs until it is patched.
    ///
    /// # Safety
    ///
    /// The record must be one the linker placed in [`SECTION`] (its address is relative to
    /// where it lies), and the code it points at must be mapped readable and not be
    /// written while the slice lives.
    pub unsafe fn site(&self) -> &'static [u8] {
        // SAFETY: the caller guarantees `addr()` points at `len` readable, unchanging bytes.
        unsafe { core::slice::from_raw_parts(self.addr() as *const u8, usize::from(self.len)) }
    }
}

/// Every site recorded in the program, in link order (empty when there is none).
pub fn sites() -> &'static [SiteRecord] {
    let start: usize;
    let stop: usize;
    // The linker defines `__start_pv_sites` and `__stop_pv_sites` around the section, but
    // only when some object has one: the weak references load 0 from the GOT otherwise,
    // where a strong `extern` static would fail to link a program without pv_call! sites.
    // SAFETY: two loads from the GOT, no other effect.
    unsafe {
        core::arch::asm!(
            ".weak __start_pv_sites",
            ".weak __stop_pv_sites",
            "mov {start}, qword ptr [rip + __start_pv_sites@GOTPCREL]",
            "mov {stop}, qword ptr [rip + __stop_pv_sites@GOTPCREL]",
            start = out(reg) start,
            stop = out(reg) stop,
            options(nostack, preserves_flags, readonly, pure),
        );
    }
    if start == 0 || stop <= start {
        return &[];
    }
    // SAFETY: the linker puts the section's records, nothing else, between the two symbols;
    // each input section is a whole number of 4-aligned 12-byte records, so the output
    // section is a dense array of them, and the section is never written.
    unsafe {
        core::slice::from_raw_parts(
            start as *const SiteRecord,
            (stop - start) / SiteRecord::SIZE,
        )
    }
}

/// An iterator over every recorded site.
pub fn iter() -> core::slice::Iter<'static, SiteRecord> {
    sites().iter()
}

/// The function pointer a call site calls through (`call qword ptr [rip + SLOT]`): the
/// 8 bytes at the slot's address are the target.
///
/// For a callee-save op it must hold the op's callee-save thunk (see `pv_macros::pv_ops`);
/// for any other op an `extern "C"` function with the op's signature.
#[repr(transparent)]
#[derive(Debug)]
pub struct Slot(AtomicPtr<()>);

impl Slot {
    /// A slot calling `target` (cast a function with `f as *const ()`).
    pub const fn new(target: *const ()) -> Self {
        Slot(AtomicPtr::new(target.cast_mut()))
    }

    /// The current target.
    pub fn get(&self) -> *const () {
        self.0.load(Ordering::Acquire)
    }

    /// Points the slot at `target`.
    ///
    /// # Safety
    ///
    /// `target` must be a function the slot's sites may call: an `extern "C"` function with
    /// the op's signature that changes no register outside the sites' clobber masks.
    pub unsafe fn set(&self, target: *const ()) {
        self.0.store(target.cast_mut(), Ordering::Release);
    }
}
