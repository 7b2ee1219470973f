//! The Unadvanced Programmable Interrupt Controller.
//!
//! This is an attempt to implement the simplest possible interrupt controller. We can tell
//! the Host what interrupts we want blocked ready for using the `blocked_interrupts` bitmap,
//! so disabling (aka "masking") them is as simple as setting a bit. We don't actually "ack"
//! interrupts as such, we just mask and unmask them. I wonder if we should be cleverer?

use core::fmt;
use core::sync::atomic::Ordering;

use x86::segmentation::SystemDescriptorTypes64;

use crate::abi::guest::Transport;
use crate::abi::numbers::{FIRST_EXTERNAL_VECTOR, IRQS, SYSCALL_VECTOR};
use crate::hw::{RawCpuid, Translate};
use crate::lguest::Lguest;

/// An interrupt line the host cannot deliver (`irq >= IRQS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadIrq {
    /// The line asked for.
    pub irq: u32,
}

impl fmt::Display for BadIrq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "interrupt line {} is not below IRQS ({IRQS})", self.irq)
    }
}

impl core::error::Error for BadIrq {}

/// A 64-bit interrupt gate's type (entering it clears the interrupt flag), as the `x86`
/// crate names it.
pub const INTERRUPT_GATE: u8 = SystemDescriptorTypes64::InterruptGate as u8;
/// A 64-bit trap gate's type.
pub const TRAP_GATE: u8 = SystemDescriptorTypes64::TrapGate as u8;

/// A present 64-bit IDT gate to `offset` through code segment `selector`, of type `ty`
/// ([`INTERRUPT_GATE`] or [`TRAP_GATE`]), which code at privilege `dpl` may raise with
/// `int n` (x86 architecture bits). The one encoder: the guest's IDT, the kernel's and the
/// host's real IDT all use it.
pub const fn encode_gate(offset: u64, selector: u16, ty: u8, dpl: u8) -> u128 {
    let off = offset as u128;
    let attrs = 0x80 | ((dpl as u128 & 3) << 5) | (ty as u128 & 0xf);
    (off & 0xffff)
        | ((selector as u128) << 16)
        | (attrs << 40)
        | (((off >> 16) & 0xffff) << 48)
        | ((off >> 32) << 64)
}

/// Where [`Lguest::init_irq`] points the external interrupt vectors: the kernel's IDT and
/// the entry stub of each interrupt line (Linux's `interrupt[]`).
#[derive(Clone, Copy, Debug)]
pub struct IrqGates<'a> {
    idt: *mut u128,
    code_selector: u16,
    handlers: &'a [u64; IRQS as usize],
}

impl<'a> IrqGates<'a> {
    /// Gates through the kernel code segment `code_selector` to `handlers[i]` for line `i`,
    /// written into `idt`.
    ///
    /// # Safety
    ///
    /// `idt` must point to a writable table of `IDT_ENTRIES` 16-byte gates for as long as the
    /// value is used.
    pub const unsafe fn new(
        idt: *mut u128,
        code_selector: u16,
        handlers: &'a [u64; IRQS as usize],
    ) -> Self {
        IrqGates {
            idt,
            code_selector,
            handlers,
        }
    }

    /// The interrupt gate for line `irq`.
    fn gate(&self, irq: usize) -> u128 {
        encode_gate(self.handlers[irq], self.code_selector, INTERRUPT_GATE, 0)
    }
}

impl<T: Transport, C: RawCpuid, P: Translate> Lguest<'_, T, C, P> {
    /// Masks interrupt line `irq` (the irq_chip's `mask` and `mask_ack`): sets its bit in
    /// the blocked-interrupt bitmap.
    pub fn mask_irq(&self, irq: u32) -> Result<(), BadIrq> {
        let bit = Self::irq_bit(irq)?;
        self.data
            .blocked_interrupts
            .fetch_or(bit, Ordering::Relaxed);
        Ok(())
    }

    /// Unmasks interrupt line `irq` (the irq_chip's `unmask`).
    pub fn unmask_irq(&self, irq: u32) -> Result<(), BadIrq> {
        let bit = Self::irq_bit(irq)?;
        self.data
            .blocked_interrupts
            .fetch_and(!bit, Ordering::Relaxed);
        Ok(())
    }

    fn irq_bit(irq: u32) -> Result<u64, BadIrq> {
        if u64::from(irq) < IRQS {
            Ok(1 << irq)
        } else {
            Err(BadIrq { irq })
        }
    }

    /// This sets up the Interrupt Descriptor Table (IDT) entry for each hardware interrupt
    /// (except 128, which is used for system calls). Lguest has a straightforward 1 to 1
    /// mapping of vectors to interrupts: line `i` is vector `FIRST_EXTERNAL_VECTOR + i`.
    ///
    /// # Safety
    ///
    /// The IDT of `gates` must be the live one: every gate written is reported to the host.
    pub unsafe fn init_irq(&self, gates: &IrqGates<'_>) {
        for irq in 0..IRQS {
            let vector = FIRST_EXTERNAL_VECTOR + irq;
            if vector != SYSCALL_VECTOR {
                // SAFETY: `IrqGates::new` made its caller promise a writable IDT of
                // IDT_ENTRIES gates, and vector < FIRST_EXTERNAL_VECTOR + IRQS <= 256.
                unsafe {
                    self.write_idt_entry(gates.idt, vector as usize, gates.gate(irq as usize))
                };
            }
        }
    }
}
