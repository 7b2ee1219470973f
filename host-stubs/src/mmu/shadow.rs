//! Shadow page tables: what the MMU walks instead of the guest's tables (lguest's
//! `pgdirs[]`, `demand_page`, `guest_set_pte`, `guest_set_pmd`, `flush_user_mappings`,
//! `guest_pagetable_clear_all`).
//!
//! - Up to [`MAX_ROOTS`] shadow roots, one per guest top-level table, the least recently
//!   used replaced by NEW_PGTABLE to a new one. Entry 511 of every root is the host's
//!   ([`ShadowConfig::host_entry`]), written by the host alone; the guest's own entry 511
//!   is never read.
//! - Entries are filled on demand ([`Shadow::fault`]): a page fault walks the guest's tables
//!   once, checks the leaf as `check_gpte` does (its frame inside guest RAM, so never the
//!   host's region or this pool), sets ACCESSED (and DIRTY on a write) in the guest's entry
//!   as `demand_page` does, and fills the shadow, or tells the caller to reflect the fault.
//!   A shadow entry is writable only once the guest's is dirty. Huge guest pages are
//!   split into 4 KiB shadow entries, filled one at a time.
//! - SET_PTE updates the leaf in the named root (every root, for a kernel address); SET_PMD
//!   clears the entry in every shadow page that shadows the named guest table (at most
//!   [`MAX_ALIASES`] of them); FLUSH_TLB drops the current root's user half or everything.
//!
//! Every operation is bounded by constants, never by what the guest recorded: drops clear
//! one entry (or one root), pages come back all at once when the pool is used up, and a
//! guest table shadowed too often loses its oldest shadow. [`Shadow::work`] counts entries
//! touched, so tests can put a number on the worst exit.
//!
//! Shadow entries the host weakens (dropped, cleared, pointed elsewhere) may still be
//! cached by the MMU the VM runs on; [`Shadow::take_stale`] says when the VMM must make it
//! forget them before the guest runs again. Entries that only grow (a new mapping, a page
//! made writable) need nothing: the MMU re-reads the tables when it faults on them.

use std::collections::HashMap;

use paging::{A, ADDR, D, ENTRIES, End, LEVELS, NX, P, PAGE, PAT_4K, PCD, PS, PT, PWT, RW, US};

use super::GuestTables;
use super::pool::{PageIdx, Pool};
use crate::abi::numbers::RESERVE_MEM;
use crate::memory::GuestMem;

/// Shadow roots kept at once (the original's `pgdirs[4]`).
pub const MAX_ROOTS: usize = 4;
/// Most shadow pages one guest table may have at once; a further one replaces the oldest.
pub const MAX_ALIASES: usize = 8;
/// Fewest pages a pool may have: the roots and one path below one of them.
pub const MIN_POOL_PAGES: u32 = MAX_ROOTS as u32 + 3;
/// The top-level index the host keeps: where the spec's `RESERVE_MEM` starts.
pub const HOST_INDEX: usize = paging::index(0, 0u64.wrapping_sub(RESERVE_MEM));
const _: () = assert!(
    RESERVE_MEM == paging::span(0),
    "the host keeps exactly one top-level entry"
);

/// Marks a shadow page that splits a huge guest page (it shadows no guest table).
const SPLIT: u64 = u64::MAX;

/// How the shadow tables are placed and built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShadowConfig {
    /// Where the VM sees the pool (outside guest RAM).
    pub pool_gpa: u64,
    /// Pages in the pool (at least [`MIN_POOL_PAGES`]).
    pub pool_pages: u32,
    /// The host's top-level entry, put in slot [`HOST_INDEX`] of every root (0: none).
    pub host_entry: u64,
    /// Whether shadow entries may carry NX (the VM runs with EFER.NXE).
    pub nx: bool,
}

impl Default for ShadowConfig {
    fn default() -> Self {
        ShadowConfig {
            pool_gpa: 1 << 40,
            pool_pages: 1024,
            host_entry: 0,
            nx: false,
        }
    }
}

/// What a page fault comes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The shadow now maps the page: run the faulting instruction again.
    Filled,
    /// The guest's own tables do not allow the access: deliver the fault to the guest.
    Reflect,
}

/// A guest page-table entry the host refuses (lguest's "bad page table entry").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadGpte {
    /// The level of the table holding it (0 = PML4).
    pub level: usize,
    /// That table.
    pub table: u64,
    /// The entry's index there.
    pub index: usize,
    /// The entry.
    pub entry: u64,
    /// What is wrong with it.
    pub why: &'static str,
}

impl std::fmt::Display for BadGpte {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} entry {} of the table at {:#x} = {:#x} {}",
            paging::level_name(self.level),
            self.index,
            self.table,
            self.entry,
            self.why
        )
    }
}

/// Counters, for reports and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Page faults that filled a shadow entry.
    pub filled: u64,
    /// Page faults the guest's tables do not allow (reflected to the guest).
    pub reflected: u64,
    /// Times every shadow was dropped (FLUSH_TLB(all), or the pool used up).
    pub resets: u64,
    /// Of those, because the pool was used up.
    pub pool_full: u64,
    /// Roots replaced by NEW_PGTABLE.
    pub roots_replaced: u64,
    /// Shadow pages dropped because their guest table had [`MAX_ALIASES`] already.
    pub alias_drops: u64,
}

#[derive(Clone, Copy, Debug)]
struct Root {
    gpgdir: u64,
    used: u64,
}

#[derive(Clone, Copy, Debug)]
struct Meta {
    /// The guest table this page shadows ([`SPLIT`] for a split huge page).
    guest: u64,
    /// The entry pointing here (none for a root).
    parent: Option<(PageIdx, usize)>,
}

const NO_META: Meta = Meta {
    guest: SPLIT,
    parent: None,
};

/// The shadow page tables of one guest.
#[derive(Debug)]
pub struct Shadow {
    cfg: ShadowConfig,
    pool: Pool,
    /// Root slot `i` lives in pool page `i`.
    roots: [Option<Root>; MAX_ROOTS],
    /// Whether root page `i` may hold entries besides the host's (an empty one needs no
    /// zeroing to be emptied).
    root_used: [bool; MAX_ROOTS],
    current: usize,
    clock: u64,
    meta: Vec<Meta>,
    /// Shadow pages per guest table they shadow, oldest first.
    by_guest: HashMap<u64, Vec<PageIdx>>,
    stale: bool,
    guest_reads: u64,
    stats: Stats,
}

impl Shadow {
    /// Shadow tables in a fresh pool, with one (empty) root for `gpgdir`, the table the
    /// guest starts on.
    pub fn new(cfg: ShadowConfig, gpgdir: u64) -> Shadow {
        let pages = cfg.pool_pages.max(MIN_POOL_PAGES);
        let pool = Pool::new(cfg.pool_gpa, pages, MAX_ROOTS as u32);
        let mut s = Shadow {
            cfg: ShadowConfig {
                pool_pages: pages,
                ..cfg
            },
            pool,
            roots: [None; MAX_ROOTS],
            root_used: [true; MAX_ROOTS],
            current: 0,
            clock: 0,
            meta: vec![NO_META; pages as usize],
            by_guest: HashMap::new(),
            stale: false,
            guest_reads: 0,
            stats: Stats::default(),
        };
        s.switch(gpgdir);
        s
    }

    /// The configuration (with the pool size actually used).
    pub fn config(&self) -> ShadowConfig {
        self.cfg
    }

    /// The pool, for the VMM to hand its memory to the VM.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The guest top-level table whose shadow is current.
    pub fn gpgdir(&self) -> u64 {
        self.roots[self.current].map_or(0, |r| r.gpgdir)
    }

    /// The VM address of the current shadow root: what CR3 holds.
    pub fn root(&self) -> u64 {
        self.pool.gpa_of(self.current as PageIdx)
    }

    /// The guest tables that have a shadow root, in slot order.
    pub fn roots(&self) -> impl Iterator<Item = u64> + '_ {
        self.roots.iter().flatten().map(|r| r.gpgdir)
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Entries touched so far: the pool's entries read and written (a zeroed page counts
    /// 512) and the guest's entries read or written.
    pub fn work(&self) -> u64 {
        self.pool.work() + self.guest_reads
    }

    /// Whether the host weakened a shadow entry since the last call (the VMM must then make
    /// the VM's MMU drop what it cached of the pool before the guest runs again).
    pub fn take_stale(&mut self) -> bool {
        std::mem::take(&mut self.stale)
    }

    /// The shadow leaf for `va` in the root of `gpgdir`, if the shadow maps it.
    // Inline (with `slot_of` and the pool's accessors under it): checkers in other crates
    // call it in tight loops (the shadow fuzz target, every probe after every operation),
    // and an optimized caller then inlines it even where this crate is built unoptimized.
    #[inline]
    pub fn lookup(&self, gpgdir: u64, va: u64) -> Option<u64> {
        let mut page = self.slot_of(gpgdir)? as PageIdx;
        for level in 0..LEVELS {
            let e = self.pool.peek(page, paging::index(level, va));
            if e & P == 0 {
                return None;
            }
            if level == PT {
                return Some(e);
            }
            page = self.pool.page_of(e & ADDR)?;
        }
        None
    }

    // ----- NEW_PGTABLE -----

    /// Makes `gpgdir`'s shadow current, building an empty root for it if it has none (in
    /// a free slot, or the least recently used one's). Returns the root's VM address.
    pub fn switch(&mut self, gpgdir: u64) -> u64 {
        self.clock += 1;
        let slot = match self.slot_of(gpgdir) {
            Some(s) => s,
            None => {
                let slot = (0..MAX_ROOTS)
                    .find(|&i| self.roots[i].is_none())
                    .unwrap_or_else(|| {
                        (0..MAX_ROOTS)
                            .min_by_key(|&i| self.roots[i].map_or(0, |r| r.used))
                            .unwrap_or(0)
                    });
                if let Some(old) = self.roots[slot] {
                    self.stats.roots_replaced += 1;
                    self.unlink(old.gpgdir, slot as PageIdx);
                }
                self.init_root(slot as PageIdx);
                self.meta[slot] = Meta {
                    guest: gpgdir,
                    parent: None,
                };
                self.by_guest
                    .entry(gpgdir)
                    .or_default()
                    .push(slot as PageIdx);
                self.roots[slot] = Some(Root { gpgdir, used: 0 });
                slot
            }
        };
        if let Some(r) = &mut self.roots[slot] {
            r.used = self.clock;
        }
        self.current = slot;
        self.root()
    }

    // ----- FLUSH_TLB -----

    /// FLUSH_TLB(user): drops the current root's entries below `kernel_address`.
    pub fn flush_user(&mut self, kernel_address: u64) {
        let end = paging::index(0, kernel_address).min(HOST_INDEX);
        let root = self.current as PageIdx;
        for i in 0..end {
            self.clear(root, i);
        }
    }

    /// FLUSH_TLB(all), or the pool used up: drops every shadow page; the roots stay, empty
    /// but for the host's entry.
    pub fn flush_all(&mut self) {
        self.stats.resets += 1;
        for slot in 0..MAX_ROOTS {
            if self.roots[slot].is_some() {
                self.init_root(slot as PageIdx);
            }
        }
        self.pool.reset();
        self.by_guest.clear();
        for slot in 0..MAX_ROOTS {
            if let Some(r) = self.roots[slot] {
                self.by_guest
                    .entry(r.gpgdir)
                    .or_default()
                    .push(slot as PageIdx);
            }
        }
        for m in self.meta.iter_mut().skip(MAX_ROOTS) {
            *m = NO_META;
        }
        self.stale = true;
    }

    // ----- SET_PMD -----

    /// SET_PMD: entry `index` of guest table `table` changed; every shadow page that
    /// shadows that table drops its entry there (and so what lies below it). The host's
    /// own entry of a root is never dropped.
    pub fn set_pmd(&mut self, table: u64, index: usize) {
        let pages = self.by_guest.get(&table).cloned().unwrap_or_default();
        for page in pages {
            if (page as usize) < MAX_ROOTS && index == HOST_INDEX {
                continue;
            }
            self.clear(page, index.min(ENTRIES - 1));
        }
    }

    // ----- SET_PTE -----

    /// SET_PTE: the leaf for `va` under `gpgdir` is now `pte`. Updates that root's shadow
    /// (every root's, for `va` at or above `kernel_address`) where the shadow has a path to
    /// the leaf: to `pte` if the guest marked it accessed or dirty (lguest fills only
    /// those), else to nothing. A present `pte` outside guest RAM is refused.
    pub fn set_pte(
        &mut self,
        mem: &GuestMem,
        gpgdir: u64,
        va: u64,
        pte: u64,
        kernel_address: u64,
    ) -> Result<(), BadGpte> {
        if pte & P != 0 && mem.check(pte & ADDR, PAGE).is_err() {
            return Err(BadGpte {
                level: PT,
                table: 0,
                index: paging::index(PT, va),
                entry: pte,
                why: "maps a frame outside guest memory",
            });
        }
        let spte = if pte & P != 0 && pte & (A | D) != 0 {
            self.leaf_entry(
                pte,
                pte & RW != 0 && pte & D != 0,
                pte & US != 0,
                pte & NX != 0,
            )
        } else {
            0
        };
        for slot in 0..MAX_ROOTS {
            let Some(r) = self.roots[slot] else { continue };
            if r.gpgdir != gpgdir && va < kernel_address {
                continue;
            }
            let Some((page, index)) = self.leaf_slot(slot as PageIdx, va) else {
                continue;
            };
            // A split huge page has no guest entry to follow: drop it, the next fault
            // walks again.
            let new = if self.meta[page as usize].guest == SPLIT {
                0
            } else {
                spte
            };
            self.put(page, index, new);
        }
        Ok(())
    }

    // ----- Demand paging -----

    /// A page fault at `va` with the CPU's error code `error` (see [`paging::fault`]),
    /// in the current root: lguest's `demand_page`.
    pub fn fault(&mut self, mem: &GuestMem, va: u64, error: u64) -> Result<Fault, BadGpte> {
        use paging::fault::{FETCH, USER, WRITE};
        if !paging::canonical(va) || paging::index(0, va) == HOST_INDEX {
            // The host's region: never filled from the guest's tables.
            self.stats.reflected += 1;
            return Ok(Fault::Reflect);
        }
        let gpgdir = self.gpgdir();
        let w = match paging::walk(&GuestTables(mem), gpgdir, va) {
            Ok(w) => w,
            Err(e) => {
                return Err(match e.from {
                    Some(s) => BadGpte {
                        level: e.level - 1,
                        table: s.table,
                        index: s.index,
                        entry: s.entry,
                        why: "points to a table outside guest memory",
                    },
                    None => BadGpte {
                        level: 0,
                        table: gpgdir,
                        index: paging::index(0, va),
                        entry: 0,
                        why: "is in a top-level table outside guest memory",
                    },
                });
            }
        };
        self.guest_reads += w.depth as u64;
        let leaf = match w.end {
            End::NotPresent { .. } => {
                self.stats.reflected += 1;
                return Ok(Fault::Reflect);
            }
            End::Leaf(l) => l,
        };
        let step = w.last();
        // check_gpte: the frame must be guest RAM (never the host's region or the pool).
        if mem.check(leaf.frame, PAGE).is_err() {
            return Err(BadGpte {
                level: leaf.level,
                table: step.table,
                index: step.index,
                entry: step.entry,
                why: "maps a frame outside guest memory",
            });
        }
        let denied = (error & WRITE != 0 && !leaf.write)
            || (error & USER != 0 && !leaf.user)
            || (error & FETCH != 0 && leaf.nx && self.cfg.nx);
        if denied {
            self.stats.reflected += 1;
            return Ok(Fault::Reflect);
        }
        // demand_page: accessed always, dirty on a write, written back once.
        let mut gpte = step.entry | A;
        if error & WRITE != 0 {
            gpte |= D;
        }
        if gpte != step.entry {
            self.guest_reads += 1;
            if mem.write_u64(step.at(), gpte).is_err() {
                return Err(BadGpte {
                    level: leaf.level,
                    table: step.table,
                    index: step.index,
                    entry: step.entry,
                    why: "cannot be written back",
                });
            }
        }
        // The upper levels' permissions are in the shadow's upper entries (copied from the
        // guest's below); a leaf carries its own, writable only once dirty.
        let own_write = gpte & RW != 0 && gpte & D != 0;
        let mut spte = self.leaf_entry(
            (gpte & !ADDR & !PS) | leaf.frame,
            own_write,
            gpte & US != 0,
            gpte & NX != 0,
        );
        if leaf.level < PT {
            // A huge page's PAT bit is bit 12, a 4 KiB entry's bit 7.
            spte = (spte & !PAT_4K)
                | if step.entry & (1 << 12) != 0 {
                    PAT_4K
                } else {
                    0
                };
        }
        let uppers: [u64; LEVELS] =
            std::array::from_fn(|l| if l < w.depth { w.steps[l].entry } else { 0 });
        self.install(va, leaf.level, &uppers, spte);
        self.stats.filled += 1;
        Ok(Fault::Filled)
    }

    // ----- Internals -----

    #[inline]
    fn slot_of(&self, gpgdir: u64) -> Option<usize> {
        self.roots
            .iter()
            .position(|r| r.is_some_and(|r| r.gpgdir == gpgdir))
    }

    /// Empties root page `page` but for the host's entry.
    fn init_root(&mut self, page: PageIdx) {
        let slot = page as usize;
        if !self.root_used[slot] {
            return;
        }
        self.root_used[slot] = false;
        self.pool.zero(page);
        if self.cfg.host_entry != 0 {
            self.pool.set(page, HOST_INDEX, self.cfg.host_entry);
        }
        self.stale = true;
    }

    /// Forgets that `page` shadows `guest`.
    fn unlink(&mut self, guest: u64, page: PageIdx) {
        if let Some(v) = self.by_guest.get_mut(&guest) {
            v.retain(|p| *p != page);
            if v.is_empty() {
                self.by_guest.remove(&guest);
            }
        }
    }

    /// A leaf entry for `frame_and_flags`' frame with the given permissions: accessed and
    /// (if writable) dirty preset, so the MMU never writes to the pool; no global bit.
    fn leaf_entry(&self, frame_and_flags: u64, write: bool, user: bool, nx: bool) -> u64 {
        let mut e = (frame_and_flags & ADDR) | P | A | (frame_and_flags & (PWT | PCD | PAT_4K));
        if write {
            e |= RW | D;
        }
        if user {
            e |= US;
        }
        if nx && self.cfg.nx {
            e |= NX;
        }
        e
    }

    /// An upper shadow entry pointing at pool page `child`, with the guest entry's
    /// permissions (`guest` = 0: all permissions, for a split huge page).
    fn upper_entry(&self, child: PageIdx, guest: u64) -> u64 {
        let mut e = self.pool.gpa_of(child) | P | A;
        if guest == 0 {
            return e | RW | US;
        }
        e |= guest & (RW | US | PWT | PCD);
        if guest & NX != 0 && self.cfg.nx {
            e |= NX;
        }
        e
    }

    /// The pool page and index of `va`'s leaf under root `root`, if the path exists.
    fn leaf_slot(&mut self, root: PageIdx, va: u64) -> Option<(PageIdx, usize)> {
        let mut page = root;
        for level in 0..PT {
            let e = self.pool.get(page, paging::index(level, va));
            if e & P == 0 {
                return None;
            }
            page = self.pool.page_of(e & ADDR)?;
        }
        Some((page, paging::index(PT, va)))
    }

    /// Sets a shadow entry, noting when a present one is weakened.
    fn put(&mut self, page: PageIdx, index: usize, new: u64) {
        let old = self.pool.get(page, index);
        if old & P != 0 && old != new {
            let same_frame = new & P != 0 && new & ADDR == old & ADDR;
            let grows = same_frame
                && (new | RW | D | US) == (old | RW | D | US)
                && new & !old & NX == 0
                && old & !new & (RW | US) == 0;
            if !grows {
                self.stale = true;
            }
        }
        self.pool.set(page, index, new);
    }

    /// Drops a shadow entry (and what lies below it).
    fn clear(&mut self, page: PageIdx, index: usize) {
        if self.pool.get(page, index) & P != 0 {
            self.pool.set(page, index, 0);
            self.stale = true;
        }
    }

    /// Fills `va`'s shadow leaf with `spte` in the current root, building the tables on the
    /// way: below level `leaf_level` they split the guest's huge page. `uppers` are the
    /// guest's entries walked. A used-up pool drops every shadow and starts again.
    fn install(&mut self, va: u64, leaf_level: usize, uppers: &[u64; LEVELS], spte: u64) {
        for _attempt in 0..2 {
            if let Some(()) = self.try_install(va, leaf_level, uppers, spte) {
                return;
            }
            self.stats.pool_full += 1;
            self.flush_all();
        }
    }

    fn try_install(
        &mut self,
        va: u64,
        leaf_level: usize,
        uppers: &[u64; LEVELS],
        spte: u64,
    ) -> Option<()> {
        let mut path = [self.current as PageIdx; LEVELS];
        let mut page = self.current as PageIdx;
        for level in 0..PT {
            let index = paging::index(level, va);
            let e = self.pool.get(page, index);
            page = match (e & P != 0).then(|| self.pool.page_of(e & ADDR)).flatten() {
                Some(child) => {
                    // The guest may have changed this entry's permissions since the shadow
                    // copied them (without SET_PMD): follow what the walk just read.
                    let perms = if level < leaf_level { uppers[level] } else { 0 };
                    let want = self.upper_entry(child, perms);
                    if want != e {
                        self.put(page, index, want);
                    }
                    child
                }
                None => {
                    let child = self.pool.alloc()?;
                    let (guest, perms) = if level < leaf_level {
                        (uppers[level] & ADDR, uppers[level])
                    } else {
                        (SPLIT, 0)
                    };
                    let entry = self.upper_entry(child, perms);
                    if let Some(used) = self.root_used.get_mut(page as usize) {
                        *used = true;
                    }
                    self.pool.set(page, index, entry);
                    self.meta[child as usize] = Meta {
                        guest,
                        parent: Some((page, index)),
                    };
                    if guest != SPLIT {
                        self.add_alias(guest, child, &path[..=level]);
                    }
                    child
                }
            };
            path[level + 1] = page;
        }
        let index = paging::index(PT, va);
        if self.pool.get(page, index) == spte {
            // The shadow already allowed this access: the VM's MMU faulted on an entry it
            // cached from before, so it must forget what it holds.
            self.stale = true;
        }
        self.put(page, index, spte);
        Some(())
    }

    /// Records that `page` shadows guest table `guest`; beyond [`MAX_ALIASES`], the oldest
    /// shadow of it not on `keep` (the path being built) is dropped from its parent.
    fn add_alias(&mut self, guest: u64, page: PageIdx, keep: &[PageIdx]) {
        let list = self.by_guest.entry(guest).or_default();
        let mut victim = None;
        if list.len() >= MAX_ALIASES
            && let Some(pos) = list
                .iter()
                .position(|p| (*p as usize) >= MAX_ROOTS && !keep.contains(p))
        {
            victim = Some(list.remove(pos));
        }
        list.push(page);
        if let Some(v) = victim {
            self.stats.alias_drops += 1;
            if let Some((parent, index)) = self.meta[v as usize].parent {
                // Only if the parent still points here (it may have been refilled since).
                let e = self.pool.get(parent, index);
                if e & P != 0 && e & ADDR == self.pool.gpa_of(v) {
                    self.clear(parent, index);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use paging::fault::{PRESENT, USER, WRITE};

    const PML4: u64 = 0x1000;
    const PDPT: u64 = 0x2000;
    const PD: u64 = 0x3000;
    const PT_PAGE: u64 = 0x4000;
    const UP: u64 = P | RW | US;
    const HOST: u64 = 0xdead_0000 | P | RW | A;
    const KERNEL: u64 = 0x0000_4000_0000_0000;

    /// Guest memory with PML4 -> PDPT -> PD -> PT for the first 2 MiB.
    fn guest() -> GuestMem {
        let m = GuestMem::new(4 << 20).unwrap();
        m.write_u64(PML4, PDPT | UP).unwrap();
        m.write_u64(PDPT, PD | UP).unwrap();
        m.write_u64(PD, PT_PAGE | UP).unwrap();
        m
    }

    fn shadow(pages: u32) -> Shadow {
        let cfg = ShadowConfig {
            pool_gpa: 0x1_0000_0000,
            pool_pages: pages,
            host_entry: HOST,
            nx: false,
        };
        Shadow::new(cfg, PML4)
    }

    fn map(m: &GuestMem, va: u64, pte: u64) {
        assert!(va < 2 << 20);
        m.write_u64(PT_PAGE + paging::index(PT, va) as u64 * 8, pte)
            .unwrap();
    }

    #[test]
    fn a_fault_fills_from_the_guests_tables_and_marks_the_entry_as_demand_page_does() {
        let (m, mut s) = (guest(), shadow(64));
        assert_eq!(s.fault(&m, 0x5000, USER).unwrap(), Fault::Reflect);
        map(&m, 0x5000, 0x9000 | UP);
        assert_eq!(s.fault(&m, 0x5000, USER).unwrap(), Fault::Filled);
        let spte = s.lookup(PML4, 0x5000).unwrap();
        assert_eq!(spte & ADDR, 0x9000);
        assert_eq!(
            spte & RW,
            0,
            "not dirty yet: read-only, so the first write faults"
        );
        assert_eq!(m.read_u64(PT_PAGE + 5 * 8).unwrap(), 0x9000 | UP | A);
        assert_eq!(
            s.fault(&m, 0x5000, USER | WRITE | PRESENT).unwrap(),
            Fault::Filled
        );
        assert_eq!(s.lookup(PML4, 0x5000).unwrap() & (RW | D), RW | D);
        assert_eq!(m.read_u64(PT_PAGE + 5 * 8).unwrap(), 0x9000 | UP | A | D);
        // A read-only guest page: the write is the guest's fault.
        map(&m, 0x6000, 0x9000 | P | US);
        assert_eq!(s.fault(&m, 0x6000, USER | WRITE).unwrap(), Fault::Reflect);
        // The host's entry is in the root, and never filled from the guest.
        assert_eq!(s.pool.get(0, HOST_INDEX), HOST);
        assert_eq!(
            s.fault(&m, 0xffff_ff80_0000_0000, USER).unwrap(),
            Fault::Reflect
        );
    }

    #[test]
    fn frames_and_tables_outside_guest_ram_are_refused() {
        let (m, mut s) = (guest(), shadow(64));
        // The first page past RAM: where the host's region starts.
        map(&m, 0x5000, (4 << 20) | UP);
        let bad = s.fault(&m, 0x5000, USER).unwrap_err();
        assert_eq!((bad.level, bad.table, bad.index), (PT, PT_PAGE, 5));
        m.write_u64(PD + 8, (64 << 20) | UP).unwrap();
        let bad = s.fault(&m, 0x20_0000, USER).unwrap_err();
        assert_eq!((bad.level, bad.table, bad.index), (2, PD, 1));
        assert!(bad.to_string().contains("outside guest memory"));
        assert!(
            s.set_pte(&m, PML4, 0x5000, 0x7fff_f000 | UP | A, KERNEL)
                .is_err()
        );
    }

    #[test]
    fn huge_pages_are_split_into_4k_shadow_entries() {
        let (m, mut s) = (guest(), shadow(64));
        m.write_u64(PD + 8, 0x20_0000 | UP | PS).unwrap();
        assert_eq!(s.fault(&m, 0x20_3456, USER).unwrap(), Fault::Filled);
        assert_eq!(s.lookup(PML4, 0x20_3000).unwrap() & ADDR, 0x20_3000);
        assert_eq!(s.lookup(PML4, 0x20_4000), None, "one page at a time");
        // SET_PTE inside a split page drops the split entry (the guest has no 4 KiB one).
        s.set_pte(&m, PML4, 0x20_3000, 0x9000 | UP | A, KERNEL)
            .unwrap();
        assert_eq!(s.lookup(PML4, 0x20_3000), None);
    }

    #[test]
    fn set_pte_is_what_keeps_the_shadow_right() {
        let (m, mut s) = (guest(), shadow(64));
        map(&m, 0x5000, 0x9000 | UP | A | D);
        s.fault(&m, 0x5000, USER).unwrap();
        // The guest remaps the page behind the host's back: the shadow keeps the old frame.
        map(&m, 0x5000, 0xa000 | UP | A | D);
        assert_eq!(s.lookup(PML4, 0x5000).unwrap() & ADDR, 0x9000, "stale");
        s.set_pte(&m, PML4, 0x5000, 0xa000 | UP | A | D, KERNEL)
            .unwrap();
        assert_eq!(s.lookup(PML4, 0x5000).unwrap() & ADDR, 0xa000);
        assert!(s.take_stale(), "the old entry was weakened");
        // flush_tlb_single: SET_PTE with 0.
        s.set_pte(&m, PML4, 0x5000, 0, KERNEL).unwrap();
        assert_eq!(s.lookup(PML4, 0x5000), None);
    }

    #[test]
    fn kernel_addresses_reach_every_root_and_user_ones_only_theirs() {
        let m = GuestMem::new(4 << 20).unwrap();
        let (a, b) = (0x10_0000, 0x11_0000);
        let kva = KERNEL + 0x5000;
        for (pml4, base) in [(a, 0x12_0000), (b, 0x13_0000)] {
            // Both tables map the kernel page through their own PDPT/PD/PT.
            m.write_u64(pml4 + paging::index(0, kva) as u64 * 8, base | UP)
                .unwrap();
            m.write_u64(base, (base + 0x1000) | UP).unwrap();
            m.write_u64(base + 0x1000, (base + 0x2000) | UP).unwrap();
            m.write_u64(base + 0x2000 + 5 * 8, 0x9000 | UP | A).unwrap();
        }
        let mut s = shadow(64);
        for pml4 in [a, b] {
            s.switch(pml4);
            s.fault(&m, kva, USER).unwrap();
        }
        s.set_pte(&m, a, kva, 0xa000 | UP | A, KERNEL).unwrap();
        assert_eq!(s.lookup(a, kva).unwrap() & ADDR, 0xa000);
        assert_eq!(
            s.lookup(b, kva).unwrap() & ADDR,
            0xa000,
            "shared kernel half"
        );
    }

    #[test]
    fn set_pmd_and_flushes_drop_shadows_but_never_the_hosts_entry() {
        let (m, mut s) = (guest(), shadow(64));
        map(&m, 0x5000, 0x9000 | UP | A);
        s.fault(&m, 0x5000, USER).unwrap();
        s.set_pmd(PD, 0);
        assert_eq!(s.lookup(PML4, 0x5000), None);
        s.set_pmd(PML4, HOST_INDEX);
        assert_eq!(s.pool.get(0, HOST_INDEX), HOST);
        s.fault(&m, 0x5000, USER).unwrap();
        s.flush_user(KERNEL);
        assert_eq!(s.lookup(PML4, 0x5000), None);
        s.fault(&m, 0x5000, USER).unwrap();
        s.flush_all();
        assert_eq!(s.lookup(PML4, 0x5000), None);
        assert_eq!(s.pool.get(0, HOST_INDEX), HOST);
        assert_eq!(s.pool().in_use(), MAX_ROOTS as u32);
    }

    #[test]
    fn four_roots_are_kept_and_the_least_recently_used_replaced() {
        let mut s = shadow(64);
        let roots: Vec<u64> = (1..=4).map(|i| s.switch(i * 0x1000)).collect();
        assert_eq!(s.switch(0x2000), roots[1], "cached");
        s.switch(0x5000);
        assert!(!s.roots().any(|g| g == PML4), "the oldest went");
        assert_eq!(s.stats().roots_replaced, 1);
        for slot in 0..MAX_ROOTS as PageIdx {
            assert_eq!(s.pool.get(slot, HOST_INDEX), HOST);
        }
    }

    #[test]
    fn aliasing_tables_and_a_small_pool_keep_every_operation_bounded() {
        // Every PD entry points to the same PT, and every PDPT entry to the same PD: a
        // million addresses through a handful of guest pages.
        let m = GuestMem::new(4 << 20).unwrap();
        m.write_u64(PML4, PDPT | UP).unwrap();
        for i in 0..512u64 {
            m.write_u64(PDPT + i * 8, PD | UP).unwrap();
            m.write_u64(PD + i * 8, PT_PAGE | UP).unwrap();
            m.write_u64(PT_PAGE + i * 8, 0x9000 | UP | A | D).unwrap();
        }
        let mut s = shadow(256);
        let mut worst = 0;
        for i in 0..20_000u64 {
            let va = (i % 512) << 30 | ((i * 7) % 512) << 21 | (i % 512) << 12;
            let before = s.work();
            s.fault(&m, va, USER).unwrap();
            if i % 5 == 0 {
                s.set_pmd(PD, (i % 512) as usize);
            }
            worst = worst.max(s.work() - before);
        }
        assert!(s.stats().pool_full > 0 && s.stats().alias_drops > 0);
        // A fault allocates at most three pages (512 entries each) and may drop every
        // shadow first (four roots).
        assert!(
            worst <= 4 * 512 + 3 * 512 + 64,
            "worst fault touched {worst} entries"
        );
        let before = s.work();
        s.flush_all();
        assert!(s.work() - before <= (MAX_ROOTS as u64) * 513);
    }
}
