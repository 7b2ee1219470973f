//! The two pieces of hardware the paravirt layer needs besides the hypercall transport:
//! the `cpuid` instruction and `__pa()`. Each is a trait, so tests feed recorded values and
//! an in-process host supplies its own guest-memory mapping.

use core::arch::x86_64::CpuidResult;

use crate::abi::types::Gpa;

/// The raw `cpuid` instruction, before lguest hides anything.
pub trait RawCpuid {
    /// Runs `cpuid` with `eax = leaf`, `ecx = subleaf`.
    fn cpuid(&self, leaf: u32, subleaf: u32) -> CpuidResult;
}

impl<C: RawCpuid + ?Sized> RawCpuid for &C {
    #[inline]
    fn cpuid(&self, leaf: u32, subleaf: u32) -> CpuidResult {
        (**self).cpuid(leaf, subleaf)
    }
}

/// The real instruction. `cpuid` is not privileged, so the Host never even sees it.
#[derive(Clone, Copy, Debug, Default)]
pub struct NativeCpuid;

impl RawCpuid for NativeCpuid {
    #[inline]
    fn cpuid(&self, leaf: u32, subleaf: u32) -> CpuidResult {
        core::arch::x86_64::__cpuid_count(leaf, subleaf)
    }
}

/// `__pa()`: the guest-physical address of a guest-virtual one. The generated trait the
/// wrappers of calls with memory arguments take (SHUTDOWN's reason, NOTIFY's text), so the
/// guest never computes such an address by hand; this crate uses it for the other pointers it
/// hands the host too (the shared page, page tables, the TLS array).
///
/// The Host always prefers that the Guest speak in physical addresses rather than virtual
/// addresses. An implementation must map every address this crate passes it: the shared
/// page, the [`crate::Scratch`] buffers, page tables, and the strings given to
/// `restart`/`panic`. An address it cannot map is a kernel bug, as it is for Linux's
/// `__pa()`.
pub use crate::abi::guest::Translate;

/// A linear map, as Linux's direct map is: `pa = va - virt_base + phys_base`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DirectMap {
    virt_base: u64,
    phys_base: u64,
}

impl DirectMap {
    /// Guest-virtual `virt_base` maps guest-physical `phys_base`, and so on linearly
    /// (`DirectMap::new(PAGE_OFFSET, 0)` is Linux's `__pa`).
    pub const fn new(virt_base: u64, phys_base: u64) -> Self {
        DirectMap {
            virt_base,
            phys_base,
        }
    }
}

impl Translate for DirectMap {
    #[inline]
    fn pa(&self, va: *const u8) -> Gpa {
        (va as u64)
            .wrapping_sub(self.virt_base)
            .wrapping_add(self.phys_base)
    }
}
