//! x86_64 4-level paging: the entry bits and the one page walk of the project.
//!
//! Everyone who follows page tables does it here: the host walking the guest's tables to
//! fill its shadow (`host-stubs`), the VMM finding the guest's stack to push a trap frame
//! (`vmm`), and the guest kernel finding where to put a new entry in its own tables
//! (`kernel`). What a table read means is the caller's [`Tables`]: a bounds-checked copy
//! out of guest memory for the host, a plain load for the kernel.
//!
//! Bit layouts are the x86 architecture's (Intel SDM vol. 3, 4.5), not the ABI's.

#![no_std]

/// Present.
pub const P: u64 = 1 << 0;
/// Writable.
pub const RW: u64 = 1 << 1;
/// User-accessible.
pub const US: u64 = 1 << 2;
/// Page-level write-through.
pub const PWT: u64 = 1 << 3;
/// Page-level cache disable.
pub const PCD: u64 = 1 << 4;
/// Accessed.
pub const A: u64 = 1 << 5;
/// Dirty (leaf entries).
pub const D: u64 = 1 << 6;
/// Page size: in a PDPT or PD entry, the entry maps a 1 GiB or 2 MiB page.
pub const PS: u64 = 1 << 7;
/// PAT bit of a 4 KiB entry (bit 7, where upper levels have [`PS`]).
pub const PAT_4K: u64 = 1 << 7;
/// Global.
pub const G: u64 = 1 << 8;
/// No-execute (only with EFER.NXE; reserved otherwise).
pub const NX: u64 = 1 << 63;
/// The physical-address bits of an entry that points to a table or a 4 KiB page.
pub const ADDR: u64 = 0x000f_ffff_ffff_f000;

/// Paging levels: PML4 (0), PDPT (1), PD (2), PT (3).
pub const LEVELS: usize = 4;
/// Entries per table.
pub const ENTRIES: usize = 512;
/// Bytes per page and per table.
pub const PAGE: u64 = 4096;
/// The leaf level (PT).
pub const PT: usize = 3;

/// The table's name at `level`, for messages.
pub const fn level_name(level: usize) -> &'static str {
    match level {
        0 => "PML4",
        1 => "PDPT",
        2 => "PD",
        _ => "PT",
    }
}

/// Index of `va` in the table at `level`.
#[inline]
pub const fn index(level: usize, va: u64) -> usize {
    ((va >> (39 - 9 * level as u32)) & 511) as usize
}

/// Bytes one entry at `level` maps (512 GiB, 1 GiB, 2 MiB, 4 KiB).
#[inline]
pub const fn span(level: usize) -> u64 {
    1 << (39 - 9 * level as u32)
}

/// Whether `va` is canonical for 4-level paging (bits 63..47 all equal).
#[inline]
pub const fn canonical(va: u64) -> bool {
    let top = va >> 47;
    top == 0 || top == (1 << 17) - 1
}

/// The page-fault error code's bits (what the CPU pushes for #PF).
pub mod fault {
    /// The page was present: a protection violation, not a missing page.
    pub const PRESENT: u64 = 1 << 0;
    /// A write.
    pub const WRITE: u64 = 1 << 1;
    /// At CPL 3.
    pub const USER: u64 = 1 << 2;
    /// A reserved bit was set in an entry.
    pub const RESERVED: u64 = 1 << 3;
    /// An instruction fetch.
    pub const FETCH: u64 = 1 << 4;
}

/// Reading page-table entries: the one thing a walk needs from its caller.
pub trait Tables {
    /// Why an entry could not be read (its table is not in memory the reader may read).
    type Error;
    /// Entry `index` of the table at physical address `table` (page-aligned). Each entry
    /// is read once per walk: the caller may hand out a copy of hostile memory.
    fn entry(&self, table: u64, index: usize) -> Result<u64, Self::Error>;
}

/// One entry a walk read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Step {
    /// The table it is in.
    pub table: u64,
    /// Its index there.
    pub index: usize,
    /// Its value.
    pub entry: u64,
}

impl Step {
    /// Physical address of the entry.
    pub const fn at(&self) -> u64 {
        self.table + self.index as u64 * 8
    }
}

/// A present leaf: a 4 KiB entry, or a 2 MiB or 1 GiB page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Leaf {
    /// The level holding it: [`PT`], 2 (a 2 MiB page) or 1 (a 1 GiB page).
    pub level: usize,
    /// The 4 KiB frame the walked address falls in.
    pub frame: u64,
    /// Writable at every level.
    pub write: bool,
    /// User-accessible at every level.
    pub user: bool,
    /// No-execute at some level.
    pub nx: bool,
}

/// Where a walk ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// The entry at this level is not present.
    NotPresent {
        /// Its level.
        level: usize,
    },
    /// A present leaf.
    Leaf(Leaf),
}

/// A finished walk: the entries read, top first, and where it ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Walk {
    /// The entries read; `steps[..depth]` are valid.
    pub steps: [Step; LEVELS],
    /// How many entries were read.
    pub depth: usize,
    /// How it ended.
    pub end: End,
}

impl Walk {
    /// The last entry read (the leaf, or the one not present).
    pub fn last(&self) -> Step {
        self.steps[self.depth - 1]
    }
}

/// A table a walk could not read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalkError<E> {
    /// The level of the table that could not be read.
    pub level: usize,
    /// The entry that pointed there (`None` for the top-level table itself).
    pub from: Option<Step>,
    /// The table's address.
    pub table: u64,
    /// The reader's error.
    pub error: E,
}

/// Walks the 4-level tables at `root` for virtual address `va`, reading each entry once
/// through `t`, down to the leaf that maps it or the first entry that is not present.
/// Permissions are combined as the CPU combines them (writable and user only if every
/// level says so, no-execute if any level does).
pub fn walk<T: Tables>(t: &T, root: u64, va: u64) -> Result<Walk, WalkError<T::Error>> {
    let mut steps = [Step::default(); LEVELS];
    let mut table = root & ADDR;
    let (mut write, mut user, mut nx) = (true, true, false);
    let mut from = None;
    for level in 0..LEVELS {
        let index = index(level, va);
        let entry = t.entry(table, index).map_err(|error| WalkError {
            level,
            from,
            table,
            error,
        })?;
        let step = Step {
            table,
            index,
            entry,
        };
        steps[level] = step;
        let depth = level + 1;
        if entry & P == 0 {
            return Ok(Walk {
                steps,
                depth,
                end: End::NotPresent { level },
            });
        }
        write &= entry & RW != 0;
        user &= entry & US != 0;
        nx |= entry & NX != 0;
        let huge = (level == 1 || level == 2) && entry & PS != 0;
        if level == PT || huge {
            // A huge page's base is aligned to its span; bit 12 of a huge entry is PAT.
            let base = entry & ADDR & !(span(level) - 1);
            let frame = base | (va & (span(level) - 1) & !(PAGE - 1));
            return Ok(Walk {
                steps,
                depth,
                end: End::Leaf(Leaf {
                    level,
                    frame,
                    write,
                    user,
                    nx,
                }),
            });
        }
        from = Some(step);
        table = entry & ADDR;
    }
    unreachable!("the PT level always ends the walk")
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::collections::BTreeMap;

    struct Mem(BTreeMap<u64, u64>);
    impl Tables for Mem {
        type Error = u64;
        fn entry(&self, table: u64, index: usize) -> Result<u64, u64> {
            let at = table + index as u64 * 8;
            if table >= 0x10_0000 {
                return Err(at);
            }
            Ok(self.0.get(&at).copied().unwrap_or(0))
        }
    }

    #[test]
    fn a_4k_walk_reads_four_entries_and_combines_permissions() {
        let va = 0x0000_4000_1234_5678u64;
        let mut m = BTreeMap::new();
        m.insert(0x1000 + index(0, va) as u64 * 8, 0x2000 | P | RW | US);
        m.insert(0x2000 + index(1, va) as u64 * 8, 0x3000 | P | US);
        m.insert(0x3000 + index(2, va) as u64 * 8, 0x4000 | P | RW | US);
        m.insert(0x4000 + index(3, va) as u64 * 8, 0x9000 | P | RW | US | NX);
        let w = walk(&Mem(m), 0x1000, va).unwrap();
        assert_eq!(w.depth, 4);
        assert_eq!(
            w.end,
            End::Leaf(Leaf {
                level: PT,
                frame: 0x9000,
                write: false,
                user: true,
                nx: true
            })
        );
        assert_eq!(w.last().at(), 0x4000 + index(3, va) as u64 * 8);
    }

    #[test]
    fn huge_pages_give_the_4k_frame_inside_them() {
        let va = 0x0000_0000_0060_3abc_u64;
        let mut m = BTreeMap::new();
        m.insert(0x1000, 0x2000 | P | RW | US);
        m.insert(0x2000, 0x3000 | P | RW | US);
        m.insert(0x3000 + 3 * 8, 0x0060_0000 | P | RW | US | PS);
        let w = walk(&Mem(m.clone()), 0x1000, va).unwrap();
        let End::Leaf(l) = w.end else { panic!() };
        assert_eq!((l.level, l.frame), (2, 0x0060_3000));
        // A 1 GiB page.
        m.insert(0x2000, 0x4000_0000 | P | RW | US | PS);
        let w = walk(&Mem(m), 0x1000, va).unwrap();
        let End::Leaf(l) = w.end else { panic!() };
        assert_eq!((l.level, l.frame), (1, 0x4060_3000));
    }

    #[test]
    fn a_missing_entry_or_an_unreadable_table_stops_the_walk() {
        let mut m = BTreeMap::new();
        m.insert(0x1000, 0x2000 | P | RW | US);
        let w = walk(&Mem(m.clone()), 0x1000, 0).unwrap();
        assert_eq!((w.depth, w.end), (2, End::NotPresent { level: 1 }));
        m.insert(0x2000, 0x20_0000 | P | RW | US);
        let e = walk(&Mem(m), 0x1000, 0).unwrap_err();
        assert_eq!((e.level, e.table), (2, 0x20_0000));
        assert_eq!(e.from.unwrap().entry, 0x20_0000 | P | RW | US);
    }

    #[test]
    fn canonical_addresses() {
        assert!(canonical(0x0000_7fff_ffff_ffff) && canonical(0xffff_8000_0000_0000));
        assert!(!canonical(0x0000_8000_0000_0000) && !canonical(0x1234_0000_0000_0000));
    }
}
