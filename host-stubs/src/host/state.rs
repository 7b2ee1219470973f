//! Room: read-only views of the reference host's state, for the VMM and for tests.

use crate::abi::numbers::{Hypercall, TLS_ENTRIES, TLS_FIRST};
use crate::abi::types::{Gpa, Gva, TsState};
use crate::clock::Clock;
use crate::desc::{Gate, Segment};
use crate::kill::Stop;
use crate::memory::GuestMem;
use crate::mmu::Shadow;

use super::{CallRecord, Host, Stack};

impl<C: Clock> Host<C> {
    /// Guest memory.
    pub fn mem(&self) -> &GuestMem {
        &self.mem
    }

    /// The clock.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// Why the guest stopped, if it has.
    pub fn stopped(&self) -> Option<&Stop> {
        self.stop.as_ref()
    }

    /// The shared page's guest-physical address, after LGUEST_INIT.
    pub fn shared_page(&self) -> Option<Gpa> {
        self.shared
    }

    /// The guest's no-interrupt window `[start, end)`, read at LGUEST_INIT.
    pub fn noirq(&self) -> (Gva, Gva) {
        self.noirq
    }

    /// Where the guest kernel's half of the address space starts, read at LGUEST_INIT.
    pub fn kernel_address(&self) -> Gva {
        self.kernel_address
    }

    /// The IDT, `IDT_ENTRIES` gates as fixed up.
    pub fn idt(&self) -> &[Gate] {
        &self.idt
    }

    /// The GDT, `GDT_ENTRIES` entries as fixed up (TLS included).
    pub fn gdt(&self) -> &[Segment] {
        &self.gdt
    }

    /// The TLS entries: `TLS_ENTRIES` GDT entries from `TLS_FIRST`.
    pub fn tls(&self) -> &[Segment] {
        self.gdt
            .get(TLS_FIRST as usize..(TLS_FIRST + TLS_ENTRIES) as usize)
            .unwrap_or(&[])
    }

    /// The kernel stack, once SET_STACK came.
    pub fn stack(&self) -> Option<Stack> {
        self.stack
    }

    /// The guest's cr0.TS.
    pub fn ts(&self) -> TsState {
        self.ts
    }

    /// The current top-level page table.
    pub fn pgdir(&self) -> Gpa {
        self.pgdir
    }

    /// The shadow page tables.
    pub fn shadow(&self) -> &Shadow {
        &self.shadow
    }

    /// The clock-event deadline, if armed.
    pub fn timer(&self) -> Option<u64> {
        self.timer
    }

    /// Whether the guest is halted.
    pub fn halted(&self) -> bool {
        self.halted
    }

    /// Lines raised and not yet delivered.
    pub fn pending_irqs(&self) -> u64 {
        self.pending
    }

    /// The host's ring cursor: the next slot it will look at.
    pub fn ring_cursor(&self) -> usize {
        self.cursor
    }

    /// Console text from NOTIFY.
    pub fn console(&self) -> &str {
        &self.console
    }

    /// Console bytes dropped beyond `console_limit`.
    pub fn console_dropped(&self) -> u64 {
        self.console_dropped
    }

    /// Every non-zero NOTIFY address, in order (up to `call_log` of them).
    pub fn notifications(&self) -> &[Gpa] {
        &self.notifications
    }

    /// The calls the host saw, in order (up to `call_log`).
    pub fn calls(&self) -> &[CallRecord] {
        &self.calls
    }

    /// Calls not logged beyond `call_log`.
    pub fn calls_dropped(&self) -> u64 {
        self.calls_dropped
    }

    /// How many calls of each hypercall the host ran or refused (sync and from the ring),
    /// in spec order, and how many numbers named none.
    pub fn counts(&self) -> (impl Iterator<Item = (Hypercall, u64)> + '_, u64) {
        (
            Hypercall::ALL
                .iter()
                .copied()
                .zip(self.counts.iter().copied()),
            self.unknown_calls,
        )
    }

    /// Ring slots run, in all.
    pub fn ring_drained(&self) -> u64 {
        self.ring_ran
    }

    /// How many page-table calls the host has run: it changes whenever the guest told the
    /// host its tables changed, which is when a VMM must make the MMU drop what it cached.
    pub fn table_changes(&self) -> u64 {
        self.table_changes
    }

    /// SET_PTE calls that mapped a present page.
    pub fn pages_mapped(&self) -> u64 {
        self.mapped
    }

    /// Interrupts delivered ([`super::Next::Deliver`] returned), in all.
    pub fn interrupts_delivered(&self) -> u64 {
        self.delivered
    }

    /// How many FLUSH_TLB calls of each scope (`[user, all]`).
    pub fn flushes(&self) -> [u64; 2] {
        self.flushes
    }
}
