//! Patched call sites, decoded with iced-x86: each is the template's documented
//! instruction with the relocation filled in, for every template and both relocation kinds.

mod common;

use common::{Loopback, Recorded, TRANSLATE, World};
use guest::Lguest;
use guest::abi::patch::{RelocKind, TEMPLATES, Template};
use guest::abi::pv_ops::PvOpId;
use guest::abi::shared::LguestData;
use iced_x86::{Decoder, DecoderOptions, Formatter, Instruction, IntelFormatter};

/// Filler the patcher must leave alone past the bytes it reports.
const FILL: u8 = 0xcc;

fn op_of(t: &Template) -> PvOpId {
    PvOpId::ALL
        .into_iter()
        .find(|op| guest::abi::patch::template_for(*op).map(|x| x.name) == Some(t.name))
        .unwrap()
}

/// Decodes exactly one instruction from `bytes` at `ip`.
fn decode_one(bytes: &[u8], ip: u64) -> Instruction {
    let mut d = Decoder::with_ip(64, bytes, ip, DecoderOptions::NONE);
    let insn = d.decode();
    assert!(!insn.is_invalid(), "invalid encoding {bytes:02x?}");
    assert_eq!(
        insn.len(),
        bytes.len(),
        "one instruction fills the patch: {bytes:02x?}"
    );
    insn
}

/// Intel syntax as the spec writes it: `mov dword ptr [rip + 0x10], 0x200`.
fn intel(insn: &Instruction) -> String {
    let mut f = IntelFormatter::new();
    let o = f.options_mut();
    o.set_hex_prefix("0x");
    o.set_hex_suffix("");
    o.set_uppercase_hex(false);
    o.set_space_after_operand_separator(true);
    o.set_space_between_memory_add_operators(true);
    o.set_rip_relative_addresses(true);
    // The spec always names the operand size.
    o.set_memory_size_options(iced_x86::MemorySizeOptions::Always);
    let mut s = String::new();
    f.format(insn, &mut s);
    s
}

/// The form's documented instruction with the field's name replaced by `operand`.
fn documented(asm: &str, field: &str, operand: &str) -> String {
    asm.replace(field, operand)
}

/// Patches a site of `t.site_len` bytes at `site_addr` with guest `lg`, checks the bytes
/// decode to form `form` of `t` with its relocation resolved to `page + field_offset`.
fn check_patched<'a>(
    lg: &Lguest<'a, &'a Loopback, Recorded, guest::DirectMap>,
    t: &Template,
    site_addr: u64,
    form: usize,
) {
    let page = std::ptr::from_ref(lg.shared()) as u64;
    let mut site = vec![FILL; t.site_len];
    let used = lg.patch(op_of(t).id() as u8, 0, &mut site, site_addr);
    let f = &t.forms[form];
    assert_eq!(
        used,
        f.bytes.len(),
        "{}: form {form} ({}) chosen",
        t.name,
        f.asm
    );
    assert!(
        site[used..].iter().all(|&b| b == FILL),
        "{}: wrote past {used}",
        t.name
    );
    let insn = decode_one(&site[..used], site_addr);
    let [reloc] = f.relocs else {
        panic!("{}: one relocation expected", t.name)
    };
    let target = page + reloc.field_offset;
    let operand = match reloc.kind {
        RelocKind::Rel32 => {
            assert!(insn.is_ip_rel_memory_operand());
            assert_eq!(
                insn.ip_rel_memory_address(),
                target,
                "{}: RIP target",
                t.name
            );
            let disp = target.wrapping_sub(site_addr + used as u64) as i64;
            if disp < 0 {
                format!("- {:#x}", disp.unsigned_abs())
            } else {
                format!("+ {disp:#x}")
            }
        }
        RelocKind::Abs32 => {
            assert!(!insn.is_ip_rel_memory_operand());
            assert_eq!(insn.memory_base(), iced_x86::Register::None);
            assert_eq!(insn.memory_index(), iced_x86::Register::None);
            assert_eq!(
                insn.memory_displacement64(),
                target,
                "{}: absolute address",
                t.name
            );
            format!("{target:#x}")
        }
        RelocKind::Abs64 => panic!("no lguest template uses abs64"),
    };
    let want = match reloc.kind {
        RelocKind::Rel32 => documented(f.asm, &format!("+ {}", reloc.field), &operand),
        _ => documented(f.asm, reloc.field, &operand),
    };
    assert_eq!(intel(&insn), want, "{}: decoded text", t.name);
}

#[test]
fn every_template_patches_rip_relative_when_the_page_is_near() {
    let w = World::new();
    let lg = w.guest();
    let page = std::ptr::from_ref(lg.shared()) as u64;
    for t in TEMPLATES {
        // The shared page after the site, and before it.
        check_patched(&lg, t, page - 0x10_0000, 0);
        check_patched(&lg, t, page + 0x7000_0000, 0);
    }
}

/// A shared page in the low 2 GiB, so the absolute form can reach it.
struct LowPage(*mut LguestData);

impl LowPage {
    fn map() -> LowPage {
        let len = std::mem::size_of::<LguestData>().next_multiple_of(4096);
        for base in [0x4000_0000usize, 0x2000_0000, 0x6000_0000, 0x1000_0000] {
            // SAFETY: an anonymous private mapping at a fixed address that must be free
            // (MAP_FIXED_NOREPLACE fails rather than replace an existing mapping).
            let p = unsafe {
                libc::mmap(
                    base as *mut libc::c_void,
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
                    -1,
                    0,
                )
            };
            if p as usize == base {
                let page = p.cast::<LguestData>();
                // SAFETY: the mapping is writable, page-aligned and big enough.
                unsafe { page.write(LguestData::new()) };
                return LowPage(page);
            }
        }
        panic!("no free address in the low 2 GiB for the shared page");
    }

    fn page(&self) -> &LguestData {
        // SAFETY: initialised in `map` and unmapped only on drop.
        unsafe { &*self.0 }
    }
}

impl Drop for LowPage {
    fn drop(&mut self) {
        let len = std::mem::size_of::<LguestData>().next_multiple_of(4096);
        // SAFETY: unmaps exactly what `map` mapped; nothing borrows it any more.
        unsafe { libc::munmap(self.0.cast(), len) };
    }
}

#[test]
fn every_template_patches_absolute_when_the_page_is_out_of_rip_reach() {
    let w = World::new();
    let low = LowPage::map();
    let lg = Lguest::new(
        low.page(),
        &w.scratch,
        &*w.host,
        Recorded(Vec::new()),
        TRANSLATE,
    );
    for t in TEMPLATES {
        // A site in the high half of the user address space: far more than 2 GiB away.
        check_patched(&lg, t, 0x7fff_0000_0000, 1);
        // Just out of rel32 reach above the page.
        check_patched(
            &lg,
            t,
            std::ptr::from_ref(low.page()) as u64 + (1 << 31) + 0x1000,
            1,
        );
    }
}

#[test]
fn a_site_is_left_alone_when_no_form_fits() {
    let w = World::new();
    let lg = w.guest();
    let page = std::ptr::from_ref(lg.shared()) as u64;
    for t in TEMPLATES {
        let op = op_of(t).id() as u8;
        // Too short for every form.
        let shortest = t.forms.iter().map(|f| f.bytes.len()).min().unwrap();
        let mut site = vec![FILL; shortest - 1];
        assert_eq!(lg.patch(op, 0, &mut site, page), 0, "{}", t.name);
        assert!(site.iter().all(|&b| b == FILL));
        // Long enough, but the heap page is neither within 2 GiB of the site nor in the
        // sign-extended 32-bit range.
        assert!(page > 1 << 31);
        let mut site = vec![FILL; t.site_len];
        assert_eq!(
            lg.patch(op, 0, &mut site, page ^ (1 << 44)),
            0,
            "{}",
            t.name
        );
        assert!(site.iter().all(|&b| b == FILL));
    }
    // Ops without a template, and numbers that name no op.
    let mut site = vec![FILL; 16];
    assert_eq!(
        lg.patch(PvOpId::MmuWriteCr3.id() as u8, 0, &mut site, page),
        0
    );
    assert_eq!(
        lg.patch(PvOpId::IrqSafeHalt.id() as u8, 0, &mut site, page),
        0
    );
    assert_eq!(lg.patch(200, 0, &mut site, page), 0);
    assert!(site.iter().all(|&b| b == FILL));
}

#[test]
fn patched_bytes_do_what_the_op_does() {
    // The templates' effect on irq_enabled matches the Rust ops: check the immediates and
    // registers against the ops' behaviour, through the decoder.
    let w = World::new();
    let lg = w.guest();
    let page = std::ptr::from_ref(lg.shared()) as u64;
    let decoded = |op: PvOpId| {
        let mut site = vec![FILL; guest::abi::patch::site_len(op)];
        let used = lg.patch(op.id() as u8, 0, &mut site, page - 0x1000);
        decode_one(&site[..used], page - 0x1000)
    };
    lg.irq_enable();
    assert_eq!(
        decoded(PvOpId::IrqIrqEnable).immediate32() as u64,
        lg.save_fl()
    );
    lg.irq_disable();
    assert_eq!(
        decoded(PvOpId::IrqIrqDisable).immediate32() as u64,
        lg.save_fl()
    );
    assert_eq!(
        decoded(PvOpId::IrqSaveFl).op0_register(),
        iced_x86::Register::EAX
    );
    assert_eq!(
        decoded(PvOpId::IrqRestoreFl).op1_register(),
        iced_x86::Register::EDI
    );
}
