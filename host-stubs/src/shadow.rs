//! The host's record of the guest's page tables: for every page the guest reported with
//! SET_PTE, the entry its tables hold, per top-level table.
//!
//! lguest's host keeps shadow page tables, filled on demand and dropped on flushes. Under
//! KVM the hardware walks the guest's tables, so what this host keeps is the record a shadow
//! would be built from: for each reported page, the leaf entry and the tables on the way to
//! it, read from guest memory when the guest reports it (or flushes). SET_PMD drops what
//! lies below the changed upper-level entry, as the original does.
//!
//! Like the original's four cached shadow pgdirs, the record holds at most
//! [`MAX_PGDIRS`] top-level tables, dropping the least recently used.

use std::collections::BTreeMap;

use x86::bits64::paging::{
    PAddr, PDEntry, PDFlags, PDPTEntry, PDPTFlags, PML4Entry, PML4Flags, PTEntry, PTFlags, VAddr,
    pd_index, pdpt_index, pml4_index, pt_index,
};

use crate::abi::numbers::PAGE_SIZE;
use crate::abi::types::{Gpa, Gva};
use crate::memory::GuestMem;

/// Top-level tables the record follows at once (the original's `pgdirs[4]`).
pub const MAX_PGDIRS: usize = 4;

/// Paging levels of x86_64: PML4, PDPT, PD, PT.
pub const LEVELS: usize = 4;

/// One recorded page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The leaf entry.
    pub pte: u64,
    /// The tables walked to reach it: PML4 (the pgdir), PDPT, PD, PT.
    pub tables: [Gpa; LEVELS],
}

/// The result of walking the guest's tables for one address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Walk {
    /// The tables down to the page table, and the leaf entry there.
    Leaf(Entry),
    /// An upper-level entry is not present, or maps a huge page: no 4 KiB entry.
    Unmapped,
}

/// A present upper-level entry that points outside guest memory, or a table that is not
/// inside it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadEntry {
    /// The table holding it.
    pub table: Gpa,
    /// Its index.
    pub index: usize,
    /// Its value.
    pub entry: u64,
}

/// Index of `vaddr` in the table at `level` (0 = PML4).
pub fn index_at(level: usize, vaddr: Gva) -> usize {
    let v = VAddr(vaddr);
    match level {
        0 => pml4_index(v),
        1 => pdpt_index(v),
        2 => pd_index(v),
        _ => pt_index(v),
    }
}

/// Walks the guest's 4-level tables from `pgdir` to the leaf entry of `vaddr`, reading each
/// entry once, bounds-checked.
pub fn walk(mem: &GuestMem, pgdir: Gpa, vaddr: Gva) -> Result<Walk, BadEntry> {
    let mut tables = [0; LEVELS];
    let mut table = pgdir;
    for (level, slot) in tables.iter_mut().enumerate() {
        *slot = table;
        let index = index_at(level, vaddr);
        let at = table + (index as u64) * 8;
        let bad = |entry| BadEntry {
            table,
            index,
            entry,
        };
        let entry = mem.read_u64(at).map_err(|_| bad(0))?;
        let (present, huge, next): (bool, bool, PAddr) = match level {
            0 => {
                let e = PML4Entry(entry);
                (e.flags().contains(PML4Flags::P), false, e.address())
            }
            1 => {
                let e = PDPTEntry(entry);
                let f = e.flags();
                (
                    f.contains(PDPTFlags::P),
                    f.contains(PDPTFlags::PS),
                    e.address(),
                )
            }
            2 => {
                let e = PDEntry(entry);
                let f = e.flags();
                (f.contains(PDFlags::P), f.contains(PDFlags::PS), e.address())
            }
            _ => {
                return Ok(Walk::Leaf(Entry { pte: entry, tables }));
            }
        };
        if !present || huge {
            return Ok(Walk::Unmapped);
        }
        if mem.check(next.as_u64(), PAGE_SIZE).is_err() {
            return Err(bad(entry));
        }
        table = next.as_u64();
    }
    Ok(Walk::Unmapped)
}

/// Whether a leaf entry is present.
pub fn pte_present(pte: u64) -> bool {
    PTEntry(pte).flags().contains(PTFlags::P)
}

/// The frame a leaf entry maps.
pub fn pte_frame(pte: u64) -> Gpa {
    PTEntry(pte).address().as_u64()
}

/// The record: per top-level table, page address to entry; most recently used first.
#[derive(Clone, Debug, Default)]
pub struct Shadow {
    pgdirs: Vec<(Gpa, BTreeMap<Gva, Entry>)>,
}

impl Shadow {
    /// Starts following `pgdir` (or marks it most recently used); drops the least recently
    /// used table beyond [`MAX_PGDIRS`].
    pub fn touch(&mut self, pgdir: Gpa) {
        if let Some(i) = self.pgdirs.iter().position(|(p, _)| *p == pgdir) {
            let e = self.pgdirs.remove(i);
            self.pgdirs.insert(0, e);
        } else {
            self.pgdirs.insert(0, (pgdir, BTreeMap::new()));
            self.pgdirs.truncate(MAX_PGDIRS);
        }
    }

    /// The tables followed, most recently used first.
    pub fn pgdirs(&self) -> impl Iterator<Item = Gpa> + '_ {
        self.pgdirs.iter().map(|(p, _)| *p)
    }

    /// The recorded pages of `pgdir`: page address to leaf entry.
    pub fn entries(&self, pgdir: Gpa) -> BTreeMap<Gva, u64> {
        self.table(pgdir)
            .map(|t| t.iter().map(|(v, e)| (*v, e.pte)).collect())
            .unwrap_or_default()
    }

    /// The full record of `pgdir`, with the tables walked.
    pub fn table(&self, pgdir: Gpa) -> Option<&BTreeMap<Gva, Entry>> {
        self.pgdirs
            .iter()
            .find(|(p, _)| *p == pgdir)
            .map(|(_, t)| t)
    }

    /// How many pages are recorded over all tables.
    pub fn len(&self) -> usize {
        self.pgdirs.iter().map(|(_, t)| t.len()).sum()
    }

    /// Whether nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(crate) fn table_mut(&mut self, pgdir: Gpa) -> Option<&mut BTreeMap<Gva, Entry>> {
        self.pgdirs
            .iter_mut()
            .find(|(p, _)| *p == pgdir)
            .map(|(_, t)| t)
    }

    /// Drops every page whose walk went through entry `index` of `table` at an upper level
    /// (PML4, PDPT or PD). Returns how many were dropped.
    pub fn drop_below(&mut self, table: Gpa, index: u64) -> usize {
        let mut dropped = 0;
        for (_, t) in &mut self.pgdirs {
            let before = t.len();
            t.retain(|vaddr, e| {
                !(0..LEVELS - 1)
                    .any(|l| e.tables[l] == table && index_at(l, *vaddr) as u64 == index)
            });
            dropped += before - t.len();
        }
        dropped
    }
}
