//! Room: the hypercall handlers. The reference host's implementation of the generated
//! [`LguestHost`] trait, one method per call, with the semantics of lguest's
//! `drivers/lguest/hypercalls.c` and the original's bugs fixed.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::Ordering;

use crate::abi::host::{LguestHost, Violation};
use crate::abi::numbers::{
    GDT_ENTRIES, GUEST_PL, IDT_ENTRIES, PAGE_SIZE, RESERVE_MEM, SYSCALL_VECTOR, TLS_FIRST,
};
use crate::abi::shared::LguestData;
use crate::abi::structs::TlsDescriptor;
use crate::abi::types::{FlushScope, Gpa, Gva, ShutdownKind, TsState};
use crate::clock::Clock;
use crate::desc::{fix_gate, fix_segment};
use crate::kill::{Arg, INIT_DATA, Kill, Shutdown, Stop, arg};

use super::shared::{KERNEL_ADDRESS, NOIRQ_END, SYSCALL_VEC, TIME_NSEC, TIME_SEC};
use super::{Host, Stack};

/// Checks a guest-virtual address: canonical for 4-level paging, and not in the top
/// `RESERVE_MEM` bytes the host keeps (the original's switcher pages).
fn check_vaddr(v: Gva) -> Result<(), &'static str> {
    if !paging::canonical(v) {
        return Err("not a canonical address");
    }
    if v >= 0u64.wrapping_sub(RESERVE_MEM) {
        return Err("inside the top RESERVE_MEM bytes the host keeps for itself");
    }
    Ok(())
}

/// The handlers' side of the host: the only implementor of the generated [`LguestHost`],
/// and private, so a handler runs only on a call the generated decode has checked and typed
/// (see `calls.rs`). Each call is decoded once; no handler re-checks what the spec says.
pub(super) struct Handlers<'a, C: Clock>(pub(super) &'a mut Host<C>);

impl<C: Clock> Deref for Handlers<'_, C> {
    type Target = Host<C>;

    fn deref(&self) -> &Host<C> {
        self.0
    }
}

impl<C: Clock> DerefMut for Handlers<'_, C> {
    fn deref_mut(&mut self) -> &mut Host<C> {
        self.0
    }
}

impl<C: Clock> LguestHost for Handlers<'_, C> {
    type Error = Kill;

    fn flush_async(&mut self) -> Result<(), Kill> {
        // The exit itself drained the ring.
        Ok(())
    }

    fn lguest_init(&mut self, data: Gpa) -> Result<(), Kill> {
        if let Some(first) = self.shared {
            return Err(Kill::SecondInit { data, first });
        }
        let size = LguestData::SIZE as u64;
        if self.mem.check(data, size).is_err() {
            return Err(self.outside(INIT_DATA, data, size));
        }
        // Read what the guest set up, once each, and check all of it before changing
        // anything: the original carried on after a bad address and half-initialised.
        let at = |off: usize| data + off as u64;
        let page_err = |_| self.outside(INIT_DATA, data, size);
        let syscall_vec = self
            .mem
            .load_u32(at(SYSCALL_VEC.offset), Ordering::Acquire)
            .map_err(page_err)?;
        let noirq_start = self
            .mem
            .load_u64(at(LguestData::NOIRQ_START_OFFSET), Ordering::Acquire)
            .map_err(page_err)?;
        let noirq_end = self
            .mem
            .load_u64(at(NOIRQ_END.offset), Ordering::Acquire)
            .map_err(page_err)?;
        let kernel_address = self
            .mem
            .load_u64(at(KERNEL_ADDRESS.offset), Ordering::Acquire)
            .map_err(page_err)?;
        if u64::from(syscall_vec) != SYSCALL_VECTOR {
            return Err(Kill::BadSharedPage {
                field: SYSCALL_VEC.name,
                value: u64::from(syscall_vec),
                why: "is not SYSCALL_VECTOR",
            });
        }
        if noirq_start > noirq_end {
            return Err(Kill::BadSharedPage {
                field: NOIRQ_END.name,
                value: noirq_end,
                why: "is below noirq_start",
            });
        }
        if let Err(why) = check_vaddr(kernel_address) {
            return Err(Kill::BadSharedPage {
                field: KERNEL_ADDRESS.name,
                value: kernel_address,
                why,
            });
        }
        let boot_pgdir = self.cfg.boot_pgdir;
        let writes = [
            (LguestData::RESERVE_MEM_OFFSET, RESERVE_MEM),
            (LguestData::PGDIR_OFFSET, boot_pgdir),
        ];
        for (off, v) in writes {
            self.mem
                .store_u64(at(off), v, Ordering::Release)
                .map_err(page_err)?;
        }
        self.mem
            .store_u32(
                at(LguestData::TSC_KHZ_OFFSET),
                self.clock.tsc_khz(),
                Ordering::Release,
            )
            .map_err(page_err)?;
        let t = self.clock.wall();
        self.mem
            .store_u64(at(TIME_NSEC.offset), t.nsec, Ordering::Release)
            .and_then(|()| {
                self.mem
                    .store_u64(at(TIME_SEC.offset), t.sec, Ordering::Release)
            })
            .map_err(page_err)?;
        self.shared = Some(data);
        self.noirq = (noirq_start, noirq_end);
        self.kernel_address = kernel_address;
        self.pgdir = boot_pgdir;
        self.shadow.switch(boot_pgdir);
        self.cursor = 0;
        Ok(())
    }

    fn shutdown(&mut self, reason: &[u8], kind: ShutdownKind) -> Result<(), Kill> {
        // The generated decode copied the reason once, up to its NUL (within
        // SHUTDOWN_REASON_MAX bytes, never past the end of memory; the original read a fixed
        // 128 bytes, so a reason near the top of memory killed the guest).
        let reason = String::from_utf8_lossy(reason).into_owned();
        self.stop = Some(Stop::Shutdown(Shutdown { kind, reason }));
        Ok(())
    }

    fn new_pgtable(&mut self, pgdir: Gpa) -> Result<(), Kill> {
        self.table_changes += 1;
        // Checked now, not when the tables are first walked: the kill names this call.
        if self.mem.check(pgdir, PAGE_SIZE).is_err() {
            return Err(self.outside(arg!(NewPgtable, pgdir), pgdir, PAGE_SIZE));
        }
        // lguest's guest_new_pagetable: the cached shadow root, or an empty one.
        self.pgdir = pgdir;
        self.shadow.switch(pgdir);
        Ok(())
    }

    fn flush_tlb(&mut self, scope: FlushScope) -> Result<(), Kill> {
        self.table_changes += 1;
        // Shadows are dropped, never re-read: what the guest touches again faults back in.
        let i = match scope {
            FlushScope::User => {
                let kernel = self.kernel_address;
                self.shadow.flush_user(kernel);
                0
            }
            FlushScope::All => {
                self.shadow.flush_all();
                1
            }
        };
        self.flushes[i] += 1;
        Ok(())
    }

    fn load_idt_entry(&mut self, vector: u64, lo: u64, hi: u64) -> Result<(), Kill> {
        // The spec's range is checked above; the table's own bound is checked too, so a
        // spec whose range outgrew IDT_ENTRIES still cannot write past the table.
        let Some(slot) = usize::try_from(vector)
            .ok()
            .and_then(|v| self.idt.get_mut(v))
        else {
            let range = Violation::Range {
                lo: 0,
                hi: IDT_ENTRIES - 1,
            };
            return Err(arg!(LoadIdtEntry, vector).bad(vector, range).into());
        };
        // A bad gate kills before anything is stored (the original stored it anyway).
        if let Some(gate) = fix_gate(vector, lo, hi)? {
            *slot = gate;
        }
        Ok(())
    }

    fn set_stack(&mut self, ss: u64, sp: Gva, pages: u64) -> Result<(), Kill> {
        // The spec's checks (the page count among them) come first, and every check comes
        // before the store: the original stored a bad ss or page count even after killing
        // the guest for it.
        if ss & 3 != GUEST_PL {
            return Err(Kill::BadStackSegment { ss });
        }
        if let Err(why) = check_vaddr(sp) {
            return Err(Kill::bad_vaddr(arg!(SetStack, sp), sp, why));
        }
        if pages.checked_mul(PAGE_SIZE).is_none_or(|bytes| sp < bytes) {
            return Err(Kill::BadStackPointer { sp, pages });
        }
        self.stack = Some(Stack { ss, sp, pages });
        Ok(())
    }

    fn ts(&mut self, state: TsState) -> Result<(), Kill> {
        self.ts = state;
        Ok(())
    }

    fn set_clockevent(&mut self, delta: u64) -> Result<(), Kill> {
        // Only the one argument is read: the ABI loads 0 into every unused register, so a
        // "stop the clock" call really is delta 0 (the original read a stale %ebx here and
        // armed a timer instead of stopping it).
        self.timer = match delta {
            0 => None,
            d => Some(self.clock.now_ns().saturating_add(d)),
        };
        Ok(())
    }

    fn halt(&mut self) -> Result<(), Kill> {
        self.halted = true;
        Ok(())
    }

    fn set_pte(&mut self, pgdir: Gpa, vaddr: Gva, pte: u64) -> Result<(), Kill> {
        self.table_changes += 1;
        if self.mem.check(pgdir, PAGE_SIZE).is_err() {
            return Err(self.outside(arg!(SetPte, pgdir), pgdir, PAGE_SIZE));
        }
        if let Err(why) = check_vaddr(vaddr) {
            return Err(Kill::bad_vaddr(arg!(SetPte, vaddr), vaddr, why));
        }
        // lguest's guest_set_pte: the shadow leaf of this table (of every table, for a
        // kernel address), where the shadow has one. A present frame outside guest memory
        // is refused whether or not a shadow holds it.
        let kernel = self.kernel_address;
        let host = &mut *self.0;
        if host
            .shadow
            .set_pte(&host.mem, pgdir, vaddr, pte, kernel)
            .is_err()
        {
            return Err(Kill::BadPte { vaddr, pte });
        }
        if pte & paging::P != 0 {
            self.mapped += 1;
        }
        Ok(())
    }

    fn set_pmd(&mut self, table: Gpa, index: u64) -> Result<(), Kill> {
        self.table_changes += 1;
        if self.mem.check(table, PAGE_SIZE).is_err() {
            return Err(self.outside(arg!(SetPmd, table), table, PAGE_SIZE));
        }
        // lguest's guest_set_pmd: every shadow of that table drops the entry (and what lies
        // below it); the host's own top-level entry stays.
        self.shadow
            .set_pmd(table, usize::try_from(index).unwrap_or(usize::MAX));
        Ok(())
    }

    fn load_tls(&mut self, tls: &[TlsDescriptor], _cpu: u64) -> Result<(), Kill> {
        // The CPU is ignored, as in the original: lguest guests are uniprocessor. The
        // generated decode copied the `TLS_ENTRIES` descriptors once; one outside guest
        // memory was a kill before this runs, so nothing changes then (the original
        // zero-filled the TLS entries).
        let first = TLS_FIRST as usize;
        for (i, d) in tls.iter().enumerate() {
            if let Some(slot) = self.gdt.get_mut(first + i) {
                *slot = fix_segment(d.lower, d.upper);
            }
        }
        Ok(())
    }

    fn notify(&mut self, addr: &[u8]) -> Result<(), Kill> {
        // The early console's text, copied once by the generated decode up to its NUL
        // (within NOTIFY_MAX bytes). Where it was is recorded by `serve`, which has the
        // address.
        let text = String::from_utf8_lossy(addr);
        let room = self.cfg.console_limit.saturating_sub(self.console.len());
        if text.len() <= room {
            self.console.push_str(&text);
        } else {
            self.console_dropped += text.len() as u64;
        }
        Ok(())
    }

    fn load_gdt_entry(&mut self, index: u64, lo: u64, hi: u64) -> Result<(), Kill> {
        // The spec's checks above bound the halves and the index; the host's own types and
        // table are checked too, so a spec that widened them could not make the host
        // truncate a half or write past the table (the original killed the guest for
        // index >= GDT_ENTRIES, then wrote the entry anyway).
        let half = |a: Arg, v: u64| {
            u32::try_from(v).map_err(|_| a.bad(v, Violation::Width { bits: u32::BITS }))
        };
        let lo32 = half(arg!(LoadGdtEntry, lo), lo)?;
        let hi32 = half(arg!(LoadGdtEntry, hi), hi)?;
        let Some(slot) = usize::try_from(index)
            .ok()
            .and_then(|i| self.gdt.get_mut(i))
        else {
            let range = Violation::Range {
                lo: 0,
                hi: GDT_ENTRIES - 1,
            };
            return Err(arg!(LoadGdtEntry, index).bad(index, range).into());
        };
        *slot = fix_segment(lo32, hi32);
        Ok(())
    }
}
