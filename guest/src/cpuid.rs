//! `cpuid`, with the features the Guest must not use turned off.
//!
//! The "cpuid" instruction is a way of querying both the CPU identity (manufacturer, model,
//! etc) and its features. It was introduced before the Pentium in 1993 and keeps getting
//! extended by both Intel, AMD and others. As you might imagine, after a decade and a half
//! this treatment, it is now a giant ball of hair.
//!
//! We could get funky here and identify ourselves as "GenuineLguest", but instead we just
//! use the real "cpuid" instruction (through [`RawCpuid`]). Then I pretty much turned off
//! feature bits until the Guest booted.
//!
//! Replacing the cpuid so we can turn features off is great for the kernel, but anyone
//! (including userspace) can just use the raw "cpuid" instruction and the Host won't even
//! notice since it isn't privileged. So we try not to get too worked up about it.
//!
//! The masks are those of lguest.md §4 (`pv_cpu_ops.cpuid`); the ABI spec does not carry
//! them, so they are named here once.

use core::arch::x86_64::CpuidResult;

use crate::abi::guest::Transport;
use crate::hw::{RawCpuid, Translate};
use crate::lguest::Lguest;

/// Highest basic leaf the guest sees: futureproof a little by sticking to older ones.
pub const MAX_BASIC_LEAF: u32 = 5;
/// Leaf 1 ecx: we only allow kernel to see SSE3, CMPXCHG16B and SSSE3.
pub const LEAF1_ECX_MASK: u32 = 0x0000_2201;
/// Leaf 1 edx: SSE, SSE2, FXSR, MMX, CMOV, CMPXCHG8B, PAE, TSC, FPU.
pub const LEAF1_EDX_MASK: u32 = 0x0780_8151;
/// Leaf 1 edx: Page Global Enable, which the guest is always told it has.
pub const LEAF1_EDX_PGE: u32 = 0x0000_2000;
/// Leaf 1 eax: the family-ID field (bits 8-11), cleared before the lie below.
pub const LEAF1_EAX_FAMILY: u32 = 0x0000_0f00;
/// Leaf 1 eax: family 5.
pub const LEAF1_EAX_FAMILY5: u32 = 0x0000_0500;
/// The extended-leaf range query.
pub const EXT_LEAF_MAX: u32 = 0x8000_0000;
/// Highest extended leaf the guest sees.
pub const MAX_EXT_LEAF: u32 = 0x8000_0008;
/// The extended feature leaf.
pub const EXT_FEATURES: u32 = 0x8000_0001;
/// Extended feature edx: no-execute.
pub const EXT_EDX_NX: u32 = 1 << 20;

/// What lguest lets the guest see of leaf `leaf`, given what the CPU said.
pub fn filter(leaf: u32, mut r: CpuidResult) -> CpuidResult {
    match leaf {
        0 => {
            // ID and highest CPUID. Futureproof a little by sticking to older ones.
            r.eax = r.eax.min(MAX_BASIC_LEAF);
        }
        1 => {
            // Basic feature request.
            r.ecx &= LEAF1_ECX_MASK;
            r.edx &= LEAF1_EDX_MASK;
            // The Host can do a nice optimization if it knows that the kernel mappings
            // (addresses above PAGE_OFFSET) haven't changed. But Linux calls
            // flush_tlb_user() for both user and kernel mappings unless the Page Global
            // Enable (PGE) feature bit is set.
            r.edx |= LEAF1_EDX_PGE;
            // We also lie, and say we're family id 5. 6 or greater leads to a rdmsr in
            // early_init_intel which we can't handle. Family ID is returned as bits 8-12
            // in ax.
            r.eax = (r.eax & !LEAF1_EAX_FAMILY) | LEAF1_EAX_FAMILY5;
        }
        EXT_LEAF_MAX => {
            // Futureproof this a little: if they ask how much extended processor
            // information there is, limit it to known fields.
            r.eax = r.eax.min(MAX_EXT_LEAF);
        }
        EXT_FEATURES => {
            // Here we should fix nx cap depending on host. For this version, we just
            // clear NX bit.
            r.edx &= !EXT_EDX_NX;
        }
        _ => {}
    }
    r
}

impl<T: Transport, C: RawCpuid, P: Translate> Lguest<'_, T, C, P> {
    /// The seed's `lguest_cpuid()`: the real cpuid, then [`filter`].
    pub fn cpuid(&self, leaf: u32, subleaf: u32) -> CpuidResult {
        filter(leaf, self.raw_cpuid.cpuid(leaf, subleaf))
    }
}
