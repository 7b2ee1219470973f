//! Descriptor-table entries as the host keeps them, with the original's fix-ups ported to
//! x86_64: 16-byte IDT gates (two `u64` halves) and 8-byte GDT entries (two `u32` halves).
//!
//! The bit positions below are x86 architecture, not ABI: the spec has no say in them.

use x86::segmentation::SystemDescriptorTypes64;

use crate::abi::numbers::{
    DOUBLE_FAULT_VECTOR, ERROR_CODE_VECTORS, FIRST_EXTERNAL_VECTOR, GUEST_PL, NMI_VECTOR,
    RESERVED_VECTOR, TRAP_ENTRY,
};
use crate::kill::Kill;

/// Present bit of a gate's low half (bit 47) and of a segment's high word (bit 15).
const GATE_P: u64 = 1 << 47;
/// Type field of a gate's low half.
const GATE_TYPE_SHIFT: u32 = 40;
/// Bits a fixed-up gate keeps of its low half: offset 15:0, selector, type, DPL, P, offset
/// 31:16. IST (bits 32..35), the reserved bits 35..40 and the S bit (44) are cleared: the
/// host owns the TSS and its interrupt stacks.
const GATE_LO_KEEP: u64 = 0xffff_ef00_ffff_ffff;
/// The selector's requested privilege level, in the low half.
const GATE_RPL: u64 = 3 << 16;
/// A 64-bit interrupt gate: entering it clears the virtual interrupt flag.
pub const INTERRUPT_GATE: u64 = SystemDescriptorTypes64::InterruptGate as u64;
/// A 64-bit trap gate.
pub const TRAP_GATE: u64 = SystemDescriptorTypes64::TrapGate as u64;

/// One IDT gate as the host stores it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Gate {
    /// Low 64 bits.
    pub lo: u64,
    /// High 64 bits (offset 63:32 in the low 32 bits; the rest reserved, kept 0).
    pub hi: u64,
}

impl Gate {
    /// Whether the gate is present.
    pub fn present(&self) -> bool {
        self.lo & GATE_P != 0
    }

    /// The gate type (`INTERRUPT_GATE` or `TRAP_GATE` for a stored present gate).
    pub fn gate_type(&self) -> u64 {
        (self.lo >> GATE_TYPE_SHIFT) & 0xf
    }

    /// The handler address.
    pub fn offset(&self) -> u64 {
        (self.lo & 0xffff) | ((self.lo >> 32) & 0xffff_0000) | ((self.hi & 0xffff_ffff) << 32)
    }

    /// The code-segment selector.
    pub fn selector(&self) -> u16 {
        ((self.lo >> 16) & 0xffff) as u16
    }

    /// The privilege level that may raise it with `int n`.
    pub fn dpl(&self) -> u8 {
        ((self.lo >> 45) & 3) as u8
    }
}

/// Whether the CPU pushes an error code for `vector` (the spec's `ERROR_CODE_VECTORS`,
/// exceptions only).
pub fn has_error_code(vector: u64) -> bool {
    vector < FIRST_EXTERNAL_VECTOR && (ERROR_CODE_VECTORS >> vector) & 1 != 0
}

/// Vectors the guest may not set: NMI, double fault, a reserved one and the original's
/// hypercall trap. The original ignores them silently, and so does the spec.
pub fn ignored_vector(vector: u64) -> bool {
    [NMI_VECTOR, DOUBLE_FAULT_VECTOR, RESERVED_VECTOR, TRAP_ENTRY].contains(&vector)
}

/// What LOAD_IDT_ENTRY stores for `vector`: `None` for an ignored vector, a zero gate for
/// a not-present one, otherwise the fixed-up gate (selector RPL forced to `GUEST_PL`, IST
/// and reserved bits cleared). A present gate of any other type, or one whose handler
/// address is not canonical, kills the guest, and, unlike the original's `set_trap`,
/// nothing is stored.
pub fn fix_gate(vector: u64, lo: u64, hi: u64) -> Result<Option<Gate>, Kill> {
    if ignored_vector(vector) {
        return Ok(None);
    }
    let g = Gate { lo, hi };
    if !g.present() {
        return Ok(Some(Gate::default()));
    }
    let gate_type = g.gate_type();
    if gate_type != INTERRUPT_GATE && gate_type != TRAP_GATE {
        return Err(Kill::BadGate {
            vector,
            lo,
            gate_type,
        });
    }
    let lo = (lo & GATE_LO_KEEP & !GATE_RPL) | (GUEST_PL << 16);
    let gate = Gate {
        lo,
        hi: hi & 0xffff_ffff,
    };
    if !paging::canonical(gate.offset()) {
        return Err(Kill::BadGateOffset {
            vector,
            offset: gate.offset(),
        });
    }
    Ok(Some(gate))
}

/// One 8-byte GDT entry as the host stores it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Segment {
    /// Low 32 bits.
    pub lo: u32,
    /// High 32 bits (access byte in bits 8..16).
    pub hi: u32,
}

const SEG_P: u32 = 1 << 15;
const SEG_DPL: u32 = 3 << 13;
const SEG_ACCESSED: u32 = 1 << 8;

impl Segment {
    /// The entry as one little-endian `u64`.
    pub fn raw(&self) -> u64 {
        u64::from(self.lo) | (u64::from(self.hi) << 32)
    }

    /// Whether the entry is present.
    pub fn present(&self) -> bool {
        self.hi & SEG_P != 0
    }

    /// Its descriptor privilege level.
    pub fn dpl(&self) -> u32 {
        (self.hi & SEG_DPL) >> 13
    }

    /// The entry from its little-endian `u64`.
    pub fn from_raw(raw: u64) -> Segment {
        Segment {
            lo: raw as u32,
            hi: (raw >> 32) as u32,
        }
    }

    /// Its base address (bits 31:0; a system segment's upper half is the next entry).
    pub fn base(&self) -> u32 {
        (self.lo >> 16) | ((self.hi & 0xff) << 16) | (self.hi & 0xff00_0000)
    }

    /// Its limit in bytes, the last valid offset (scaled by 4 KiB when granular).
    pub fn limit(&self) -> u32 {
        let raw = (self.lo & 0xffff) | (self.hi & 0xf_0000);
        if self.granular() {
            (raw << 12) | 0xfff
        } else {
            raw
        }
    }

    /// The type field (4 bits: code/data flags, or a system segment's type).
    pub fn seg_type(&self) -> u8 {
        ((self.hi >> 8) & 0xf) as u8
    }

    /// The S bit: a code or data segment (set) rather than a system one.
    pub fn code_or_data(&self) -> bool {
        self.hi & (1 << 12) != 0
    }

    /// The AVL bit, free for software.
    pub fn avl(&self) -> bool {
        self.hi & (1 << 20) != 0
    }

    /// The L bit: 64-bit code.
    pub fn long(&self) -> bool {
        self.hi & (1 << 21) != 0
    }

    /// The D/B bit: 32-bit default operand size.
    pub fn db(&self) -> bool {
        self.hi & (1 << 22) != 0
    }

    /// The G bit: the limit counts 4 KiB pages.
    pub fn granular(&self) -> bool {
        self.hi & (1 << 23) != 0
    }
}

/// The original's `fixup_gdt_table` for one entry: a present entry with DPL 0 gets the
/// guest kernel's privilege level (the guest kernel does not run at 0), and its type's low
/// bit is set, which marks code and data segments accessed (so the CPU never writes the
/// GDT) and turns an LDT or call gate into a reserved type the CPU refuses. Entries that
/// are not present are inert and kept as they are.
pub fn fix_segment(lo: u32, hi: u32) -> Segment {
    let mut s = Segment { lo, hi };
    if s.present() {
        if s.dpl() == 0 {
            s.hi |= (GUEST_PL as u32) << 13;
        }
        s.hi |= SEG_ACCESSED;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A gate as the guest builds it.
    fn gate(offset: u64, selector: u64, ty: u64, dpl: u64, ist: u64) -> (u64, u64) {
        let lo = (offset & 0xffff)
            | (selector << 16)
            | (ist << 32)
            | (ty << 40)
            | (dpl << 45)
            | GATE_P
            | ((offset & 0xffff_0000) << 32);
        (lo, offset >> 32)
    }

    #[test]
    fn gates_keep_the_handler_and_get_the_guest_privilege_level() {
        let (lo, hi) = gate(0xffff_ffff_8123_4567, 0x10, INTERRUPT_GATE, 0, 3);
        let g = fix_gate(0x20, lo, hi).unwrap().unwrap();
        assert_eq!(g.offset(), 0xffff_ffff_8123_4567);
        assert_eq!(g.selector(), 0x10 | GUEST_PL as u16);
        assert_eq!(g.gate_type(), INTERRUPT_GATE);
        assert_eq!((g.lo >> 32) & 7, 0, "IST cleared");
        assert!(g.present());
    }

    #[test]
    fn a_gate_to_a_non_canonical_handler_is_refused() {
        let (lo, hi) = gate(0x8000_0000_0000_0000, 0x10, TRAP_GATE, 3, 0);
        assert_eq!(
            fix_gate(3, lo, hi),
            Err(Kill::BadGateOffset {
                vector: 3,
                offset: 0x8000_0000_0000_0000
            })
        );
        // The upper canonical half is fine.
        let (lo, hi) = gate(0xffff_8000_0000_1000, 0x10, TRAP_GATE, 3, 0);
        assert!(fix_gate(3, lo, hi).unwrap().is_some());
    }

    #[test]
    fn ignored_and_absent_gates() {
        let (lo, hi) = gate(0x1000, 0x10, TRAP_GATE, 0, 0);
        for v in [NMI_VECTOR, DOUBLE_FAULT_VECTOR, RESERVED_VECTOR, TRAP_ENTRY] {
            assert_eq!(fix_gate(v, lo, hi), Ok(None));
        }
        assert_eq!(
            fix_gate(3, lo & !GATE_P, hi),
            Ok(Some(Gate::default())),
            "a not-present gate is stored as zero"
        );
    }

    #[test]
    fn a_present_gate_of_another_type_is_refused() {
        let (lo, hi) = gate(0x1000, 0x10, 0xc, 0, 0);
        let k = fix_gate(0x30, lo, hi).unwrap_err();
        assert_eq!(
            k,
            Kill::BadGate {
                vector: 0x30,
                lo,
                gate_type: 0xc
            }
        );
        assert!(k.to_string().contains("vector 48"));
    }

    #[test]
    fn segments_get_the_guest_privilege_level_and_the_accessed_bit() {
        // A flat 64-bit kernel code segment: access byte 0x9a, DPL 0.
        let s = fix_segment(0x0000_ffff, 0x00af_9a00);
        assert_eq!(s.dpl(), GUEST_PL as u32);
        assert_eq!(s.hi & SEG_ACCESSED, SEG_ACCESSED);
        // A user segment (DPL 3) keeps its level.
        assert_eq!(fix_segment(0xffff, 0x00af_fa00).dpl(), 3);
        // Not present: untouched.
        assert_eq!(fix_segment(0, 0), Segment { lo: 0, hi: 0 });
    }

    #[test]
    fn segments_decode_every_field() {
        // A flat 64-bit code segment at ring 3, accessed.
        let code = Segment::from_raw(0x00af_fb00_0000_ffff);
        assert_eq!((code.base(), code.limit()), (0, u32::MAX));
        assert_eq!((code.seg_type(), code.dpl()), (0xb, 3));
        assert!(code.present() && code.code_or_data() && code.long() && code.granular());
        assert!(!code.db() && !code.avl());
        // A 64-bit TSS at 0x1234_5678, limit 0x2067, byte-granular: a system segment.
        let tss = Segment::from_raw(0x1200_8b34_5678_2067);
        assert_eq!(
            (tss.base(), tss.limit(), tss.seg_type()),
            (0x1234_5678, 0x2067, 0xb)
        );
        assert!(tss.present() && !tss.code_or_data() && !tss.granular() && !tss.long());
        assert_eq!(Segment::from_raw(tss.raw()), tss);
    }
}
