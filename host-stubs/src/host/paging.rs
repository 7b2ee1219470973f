//! Room: paging. The reference host's view of the guest's page tables: what SET_PTE,
//! NEW_PGTABLE and FLUSH_TLB leave recorded ([`crate::shadow`] holds the record and the
//! walk), followed per top-level table and re-read on a flush.

use crate::abi::numbers::PAGE_SIZE;
use crate::abi::types::{FlushScope, Gpa, Gva};
use crate::clock::Clock;
use crate::kill::{Kill, arg};
use crate::shadow::{self, Walk};

use super::Host;

impl<C: Clock> Host<C> {
    /// Walks `pgdir`'s tables for `page` and checks the leaf it finds. `Ok(None)`: nothing
    /// mapped there.
    pub(super) fn record_for(
        &self,
        pgdir: Gpa,
        page: Gva,
    ) -> Result<Option<shadow::Entry>, shadow::BadEntry> {
        match shadow::walk(&self.mem, pgdir, page)? {
            Walk::Unmapped => Ok(None),
            Walk::Leaf(e) if !shadow::pte_present(e.pte) => Ok(None),
            Walk::Leaf(e) => {
                if self.mem.check(shadow::pte_frame(e.pte), PAGE_SIZE).is_err() {
                    return Err(shadow::BadEntry {
                        table: e.tables[shadow::LEVELS - 1],
                        index: shadow::index_at(shadow::LEVELS - 1, page),
                        entry: e.pte,
                    });
                }
                Ok(Some(e))
            }
        }
    }

    pub(super) fn apply(&mut self, pgdir: Gpa, page: Gva, e: Option<shadow::Entry>) {
        let limit = self.cfg.shadow_limit;
        let total = self.shadow.len();
        let mut overflow = false;
        if let Some(t) = self.shadow.table_mut(pgdir) {
            match e {
                Some(e) => {
                    if !t.contains_key(&page) && total >= limit {
                        t.clear();
                        overflow = true;
                    }
                    t.insert(page, e);
                }
                None => {
                    t.remove(&page);
                }
            }
        }
        if overflow {
            self.shadow_overflows += 1;
        }
    }

    /// Starts following `pgdir` (or marks it most recently used). A table followed for the
    /// first time starts with the kernel pages already recorded elsewhere, read from its own
    /// entries: the kernel's half is shared by every address space, and the guest reported
    /// those pages before this table existed. (The original's fresh shadow starts empty and
    /// faults them in.)
    pub(super) fn follow(&mut self, pgdir: Gpa) {
        let new = !self.shadow.pgdirs().any(|p| p == pgdir);
        self.shadow.touch(pgdir);
        if !new {
            return;
        }
        let mut kernel_pages: Vec<Gva> = self
            .shadow
            .pgdirs()
            .filter(|p| *p != pgdir)
            .filter_map(|p| self.shadow.table(p))
            .flat_map(|t| t.range(self.kernel_address..).map(|(v, _)| *v))
            .collect();
        kernel_pages.sort_unstable();
        kernel_pages.dedup();
        for page in kernel_pages {
            // A page this table does not map cleanly is simply not recorded yet: SET_PTE
            // for it checks it properly.
            if let Ok(Some(e)) = self.record_for(pgdir, page) {
                self.apply(pgdir, page, Some(e));
            }
        }
    }

    /// Re-reads recorded pages from the guest's tables: every page of every table for
    /// `FlushScope::All`, the current table's user pages for `User`. A walk that goes wrong
    /// in the current table kills the guest; another table is dropped from the record (the
    /// guest may have reused its pages).
    pub(super) fn resync(&mut self, scope: FlushScope) -> Result<(), Kill> {
        let pgdirs: Vec<Gpa> = match scope {
            FlushScope::All => self.shadow.pgdirs().collect(),
            FlushScope::User => vec![self.pgdir],
        };
        let mut updates = Vec::new();
        let mut stale = Vec::new();
        for pgdir in pgdirs {
            let pages: Vec<Gva> = self
                .shadow
                .table(pgdir)
                .map(|t| t.keys().copied().collect())
                .unwrap_or_default();
            for page in pages {
                if scope == FlushScope::User && page >= self.kernel_address {
                    continue;
                }
                match self.record_for(pgdir, page) {
                    Ok(e) => updates.push((pgdir, page, e)),
                    Err(b) if pgdir == self.pgdir => {
                        return Err(Kill::bad_table(arg!(FlushTlb, scope), pgdir, b));
                    }
                    Err(_) => {
                        stale.push(pgdir);
                        break;
                    }
                }
            }
        }
        for (pgdir, page, e) in updates {
            if !stale.contains(&pgdir) {
                self.apply(pgdir, page, e);
            }
        }
        for pgdir in stale {
            if let Some(t) = self.shadow.table_mut(pgdir) {
                t.clear();
            }
        }
        Ok(())
    }
}
