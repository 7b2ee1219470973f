//! The host's MMU: shadow page tables as lguest's `drivers/lguest/page_tables.c` keeps
//! them, ported to x86_64 4-level paging.
//!
//! The guest's own tables are data the host reads (through [`paging::walk`], every entry
//! bounds-checked and read once); the MMU only ever walks tables the host built, in a pool
//! outside guest RAM ([`pool`]). [`shadow::Shadow`] keeps up to [`shadow::MAX_ROOTS`]
//! shadow roots, one per guest top-level table, fills them on demand from page faults,
//! updates them on SET_PTE and SET_PMD, and drops them on FLUSH_TLB and NEW_PGTABLE.

pub mod pool;
pub mod shadow;

pub use pool::Pool;
pub use shadow::{BadGpte, Fault, Shadow, ShadowConfig};

use paging::{End, PAGE, Tables};

use crate::memory::{GuestMem, OutOfRange};

/// The guest's page tables, read out of guest memory: a table outside it is an error.
#[derive(Clone, Copy, Debug)]
pub struct GuestTables<'a>(pub &'a GuestMem);

impl Tables for GuestTables<'_> {
    type Error = OutOfRange;
    fn entry(&self, table: u64, index: usize) -> Result<u64, OutOfRange> {
        self.0.read_u64(table + index as u64 * 8)
    }
}

/// The guest-physical address of `va` under the guest's tables at `pgdir`, for the host to
/// read there (an instruction) or `write` there (a trap frame on its stack) on the guest's
/// behalf: the page must be present and user (and writable, to write) at every level, and
/// inside guest memory.
pub fn guest_address(mem: &GuestMem, pgdir: u64, va: u64, write: bool) -> Result<u64, String> {
    let what = if write { "stack address" } else { "address" };
    if !paging::canonical(va) {
        return Err(format!("{what} {va:#x} is not canonical"));
    }
    let w = paging::walk(&GuestTables(mem), pgdir, va)
        .map_err(|_| format!("the page tables for {va:#x} leave guest memory"))?;
    match w.end {
        End::Leaf(l) if l.user && (l.write || !write) => {
            let pa = l.frame | (va & (PAGE - 1));
            mem.check(pa, 1)
                .map_err(|_| format!("{what} {va:#x} maps outside guest memory"))?;
            Ok(pa)
        }
        _ if write => Err(format!(
            "stack address {va:#x} is not mapped writable for the guest"
        )),
        _ => Err(format!("address {va:#x} is not mapped for the guest")),
    }
}
