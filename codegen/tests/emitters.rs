//! One small fixture spec (tests/fixtures/tiny.toml), and for each emitter the exact code
//! it must produce for one item, inline. The golden files cover the whole lguest spec;
//! these pin each emitter's behaviour on a case small enough to read.

fn generated() -> codegen::Generated {
    let src = include_str!("fixtures/tiny.toml");
    let spec = codegen::load("tiny.toml", src).unwrap_or_else(|d| panic!("{d}"));
    codegen::generate(&spec, "stamp").expect("generates")
}

fn file(name: &str) -> String {
    generated()
        .files
        .into_iter()
        .find(|f| f.path == name)
        .unwrap_or_else(|| panic!("{name} is not generated"))
        .contents
}

/// The item of module `module` whose name (or, for impls, self type and trait) is `name`,
/// formatted on its own.
fn item(module: &str, name: &str) -> String {
    let text = file(&format!("{module}.rs"));
    let f: syn::File = syn::parse_str(&text).expect("generated code parses");
    let found = f.items.into_iter().find(|i| {
        let id = match i {
            syn::Item::Const(c) => c.ident.to_string(),
            syn::Item::Enum(e) => e.ident.to_string(),
            syn::Item::Fn(f) => f.sig.ident.to_string(),
            syn::Item::Struct(s) => s.ident.to_string(),
            syn::Item::Trait(t) => t.ident.to_string(),
            syn::Item::Type(t) => t.ident.to_string(),
            syn::Item::Impl(i) => {
                let ty = &i.self_ty;
                let tr = i
                    .trait_
                    .as_ref()
                    .map(|(_, p, _)| quote::quote!(#p).to_string());
                format!(
                    "impl {}{}",
                    tr.map_or(String::new(), |t| format!("{t} for ")),
                    quote::quote!(#ty)
                )
            }
            _ => String::new(),
        };
        id == name
    });
    let item = found.unwrap_or_else(|| panic!("no item `{name}` in {module}.rs:\n{text}"));
    prettyplease::unparse(&syn::File {
        shebang: None,
        attrs: vec![],
        items: vec![item],
    })
}

#[track_caller]
fn assert_text(actual: &str, expected: &str) {
    assert_eq!(actual.trim(), expected.trim(), "\n--- actual:\n{actual}");
}

#[test]
fn numbers_poke() {
    assert_text(
        &item("numbers", "POKE"),
        r###"
/// `poke`: Poke a port.
pub const POKE: u64 = 3;
"###,
    );
}

#[test]
fn numbers_tryfrom_u64_for_hypercall() {
    assert_text(
        &item(
            "numbers",
            "impl :: core :: convert :: TryFrom < u64 > for Hypercall",
        ),
        r###"
impl ::core::convert::TryFrom<u64> for Hypercall {
    type Error = UnknownHypercall;
    fn try_from(nr: u64) -> ::core::result::Result<Self, UnknownHypercall> {
        match nr {
            POKE => Ok(Hypercall::Poke),
            _ => Err(UnknownHypercall(nr)),
        }
    }
}
"###,
    );
}

#[test]
fn types_mode() {
    assert_text(
        &item("types", "impl Mode"),
        r###"
impl Mode {
    /// Every value, in spec order.
    pub const ALL: [Mode; 2] = [Mode::Off, Mode::On];
    /// The value on the wire.
    pub const fn raw(self) -> u8 {
        match self {
            Mode::Off => 0_u8,
            Mode::On => 1_u8,
        }
    }
    /// The variant with wire value `raw`, if there is one.
    pub const fn from_raw(raw: u8) -> ::core::option::Option<Self> {
        match raw {
            0_u8 => Some(Mode::Off),
            1_u8 => Some(Mode::On),
            _ => None,
        }
    }
    /// The spec's name for the value.
    pub const fn name(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::On => "on",
        }
    }
}
"###,
    );
}

#[test]
fn guest_tinyhypercalls() {
    assert_text(
        &item("guest", "TinyHypercalls"),
        r###"
/// A typed method per hypercall of the `tiny` ABI, on every [`Transport`].
///
/// Each loads every argument register of the transport, unused ones with 0, so the host
/// never sees a stale register.
pub trait TinyHypercalls: Transport {
    /// Poke a port.
    ///
    /// Hypercall `poke` (number 3).
    ///
    /// # Arguments
    ///
    /// * `port`: Which port. The host requires: 0 ≤ value ≤ 15.
    /// * `mode`: The host requires: one of off=0, on=1.
    ///
    /// Returns the old value.
    #[inline]
    fn poke(&self, port: u16, mode: super::types::Mode) -> u64 {
        Transport::hypercall(
            self,
            super::numbers::POKE,
            [u64::from(port), u64::from(mode.raw())],
        )
    }
}
"###,
    );
}

#[test]
fn guest_transport_for_vmcall() {
    assert_text(
        &item("guest", "impl Transport for Vmcall"),
        r###"
impl Transport for Vmcall {
    #[inline]
    fn hypercall(&self, nr: u64, args: [u64; super::numbers::ARG_REGS]) -> u64 {
        let ret: u64;
        unsafe {
            ::core::arch::asm!(
                "xchg {rbx_swap}, rbx", "vmcall", "xchg {rbx_swap}, rbx", rbx_swap =
                inout(reg) args[0] => _, inout("rax") nr => ret, in ("rcx") args[1],
                options(nostack),
            );
        }
        ret
    }
}
"###,
    );
}

#[test]
fn lazy_tinylazyhypercalls_for_batch_t() {
    assert_text(
        &item("lazy", "impl TinyLazyHypercalls for Batch < '_ , T >"),
        r###"
impl<T: super::guest::Transport + ?Sized> TinyLazyHypercalls for Batch<'_, T> {
    #[inline]
    fn poke(&self, port: u16, mode: super::types::Mode) -> Sent {
        Batch::call(self, super::numbers::POKE, [u64::from(port), u64::from(mode.raw())])
    }
}
"###,
    );
}

#[test]
fn shared_page() {
    assert_text(
        &item("shared", "Page"),
        r###"
/// The page shared by guest and host.
///
/// Every field is an atomic: the host writes the page while the guest holds a
/// reference to it. Plain loads and stores (`Relaxed`) compile to ordinary moves.
#[repr(C)]
#[derive(Debug)]
pub struct Page {
    /// Offset 0; written by the guest and the host; starts as 0x200.
    pub flags: ::core::sync::atomic::AtomicU32,
    /// Offset 4; written by the guest and the host.
    pub status: [::core::sync::atomic::AtomicU8; RING_SIZE],
    /// Offset 8; written by the guest.
    pub slots: [RingSlot; RING_SIZE],
}
"###,
    );
}

#[test]
fn shared_ringslot() {
    assert_text(
        &item("shared", "RingSlot"),
        r###"
/// The async hypercall ring.
///
/// One slot: the call number and its arguments.
#[repr(C)]
#[derive(Debug, Default)]
pub struct RingSlot {
    /// The call number.
    pub nr: ::core::sync::atomic::AtomicU64,
    /// The arguments, unused ones 0.
    pub args: [::core::sync::atomic::AtomicU64; RING_ARGS],
}
"###,
    );
}

#[test]
fn pv_ops_irqops() {
    assert_text(
        &item("pv_ops", "IrqOps"),
        r###"
/// The `irq` pv_op table.
///
/// Implement it (with `#[pv_macros::pv_ops]` to check it and get the callee-save thunks)
/// and build a [`IrqOpsTable`] from the implementation.
pub trait IrqOps {
    /// Clear.
    ///
    /// Op `irq.clear`. Callee-save: call sites expect every register but the return register
    /// preserved (see `pv_macros::pv_ops`). Call sites may be patched with template `clr`.
    fn clear();
}
"###,
    );
}

#[test]
fn pv_ops_irqopstable() {
    assert_text(
        &item("pv_ops", "impl IrqOpsTable"),
        r###"
impl IrqOpsTable {
    /// The table of `OpsImpl`'s implementation.
    pub const fn of<OpsImpl: IrqOps + ?Sized>() -> Self {
        IrqOpsTable {
            clear: <OpsImpl as IrqOps>::clear,
        }
    }
}
"###,
    );
}

#[test]
fn patch_clr() {
    assert_text(
        &item("patch", "CLR"),
        r###"
/// Template `clr`: Clear the flags.
///
/// Forms, in order of preference:
///
/// * `mov dword ptr [rip + flags], 0`: `c7 05 00 00 00 00 00 00 00 00` (rel32 of `flags` at
///   byte 2)
pub const CLR: Template = Template {
    name: "clr",
    doc: "Clear the flags.",
    site_len: 10,
    forms: &[
        Form {
            asm: "mov dword ptr [rip + flags], 0",
            bytes: &[0xc7, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00],
            relocs: &[
                Reloc {
                    at: 2,
                    kind: RelocKind::Rel32,
                    field: "flags",
                    field_offset: 0u64,
                },
            ],
        },
    ],
};
"###,
    );
}

#[test]
fn patch_template_for() {
    assert_text(
        &item("patch", "template_for"),
        r###"
/// The template that may replace `op`'s call sites, if it has one.
pub const fn template_for(op: super::pv_ops::PvOpId) -> Option<&'static Template> {
    match op {
        super::pv_ops::PvOpId::IrqClear => Some(&CLR),
    }
}
"###,
    );
}

#[test]
fn host_decode_checks_and_types_every_argument() {
    assert_text(
        &item("host", "decode"),
        r###"
/// Checks hypercall `nr` with argument registers `args` against the spec (every
/// range, alignment, enum and width) and types its arguments. Never panics,
/// whatever `nr` and `args` are.
#[inline]
pub fn decode(
    nr: u64,
    args: [u64; super::numbers::ARG_REGS],
) -> ::core::result::Result<Call, DecodeError> {
    let call = match super::numbers::Hypercall::try_from(nr) {
        Ok(call) => call,
        Err(_) => {
            return Err(DispatchError::UnknownHypercall {
                nr,
            });
        }
    };
    match call {
        super::numbers::Hypercall::Poke => {
            let arg0 = match u16::try_from(
                check_range(call, 0, args[0], 0, super::numbers::MAX_PORT)?,
            ) {
                Ok(v) => v,
                Err(_) => {
                    return Err(
                        bad(call, 0, args[0], Violation::Width { bits: 16u32 }).into(),
                    );
                }
            };
            let arg1 = match u8::try_from(args[1])
                .ok()
                .and_then(super::types::Mode::from_raw)
            {
                Some(v) => v,
                None => {
                    return Err(
                        bad(call, 1, args[1], Violation::Enum { ty: "mode" }).into(),
                    );
                }
            };
            Ok(Call::Poke {
                port: arg0,
                mode: arg1,
            })
        }
    }
}
"###,
    );
}

#[test]
fn host_run_and_dispatch_hand_the_decoded_call_to_its_handler() {
    assert_text(
        &item("host", "run"),
        r###"
/// Hands a decoded call to its handler on `host`. Returns the value for the result
/// register (0 for calls that return nothing).
#[inline]
pub fn run<H: TinyHost + ?Sized>(
    host: &mut H,
    call: Call,
) -> ::core::result::Result<u64, H::Error> {
    match call {
        Call::Poke { port: arg0, mode: arg1 } => TinyHost::poke(host, arg0, arg1),
    }
}
"###,
    );
    assert_text(
        &item("host", "dispatch"),
        r###"
/// Runs hypercall `nr` with argument registers `args` on `host`: [`decode`], then
/// [`run`]. The handler runs only when every argument meets the spec. Never
/// panics, whatever `nr` and `args` are.
#[inline]
pub fn dispatch<H: TinyHost + ?Sized>(
    host: &mut H,
    nr: u64,
    args: [u64; super::numbers::ARG_REGS],
) -> ::core::result::Result<u64, DispatchError<H::Error>> {
    let call = match decode(nr, args) {
        Ok(call) => call,
        Err(e) => return Err(e.for_host()),
    };
    run(host, call).map_err(DispatchError::Host)
}
"###,
    );
}

#[test]
fn host_tinyhost() {
    assert_text(
        &item("host", "TinyHost"),
        r###"
/// The host side of the `tiny` ABI: one method per hypercall, with typed arguments that
/// [`dispatch`] has validated against the spec.
///
/// A handler's error stops the dispatch and comes back as [`DispatchError::Host`]: that is
/// how a host kills a guest for what only it can check (an address outside guest memory, a
/// call before INIT).
///
/// A test double or a benchmark that handles only some calls implements [`TinyDefaultHost`]
/// instead, and follows the spec without an edit when a call is added.
pub trait TinyHost {
    /// Why a handler refused a call.
    type Error;
    /// Poke a port.
    ///
    /// Hypercall `poke` (number 3). [`dispatch`] has already checked: `port`: 0 ≤ value ≤
    /// 15; `mode`: one of off=0, on=1.
    fn poke(
        &mut self,
        port: u16,
        mode: super::types::Mode,
    ) -> ::core::result::Result<u64, Self::Error>;
}
"###,
    );
}

#[test]
fn docs_list_every_hypercall_with_its_constraints() {
    let md = file("tiny.md");
    assert!(
        md.starts_with("<!-- stamp -->\n\n# The `tiny` ABI, version 3\n"),
        "{md}"
    );
    assert!(
        md.contains("| 3 | [`POKE`](#poke) | `port: u16`, `mode: mode` | yes | the old value. |"),
        "{md}"
    );
    assert!(
        md.contains("| 0 | `port` | `u16` | 0 ≤ value ≤ 15 | Which port. |"),
        "{md}"
    );
    assert!(
        md.contains("| 1 | `mode` | `mode` | one of off=0, on=1 |  |"),
        "{md}"
    );
    assert!(
        md.contains("| 0 | 4 | `flags` | `u32` | both | 0x200 |  |"),
        "{md}"
    );
    assert!(
        md.contains("4 slots of 24 bytes: the call number, then 2 arguments"),
        "{md}"
    );
    assert!(
        md.contains("| `clear` | `fn()` | yes | `clr` | Clear. |"),
        "{md}"
    );
    assert!(md.contains("| `mov dword ptr [rip + flags], 0` | `c7 05 00 00 00 00 00 00 00 00` | rel32 `flags` (offset 0) at byte 2 |"), "{md}");
}

#[test]
fn modules_follow_the_spec_sections() {
    let names: Vec<String> = generated().files.into_iter().map(|f| f.path).collect();
    assert_eq!(
        names,
        [
            "numbers.rs",
            "types.rs",
            "guest.rs",
            "lazy.rs",
            "shared.rs",
            "pv_ops.rs",
            "patch.rs",
            "host.rs",
            "mod.rs",
            "tiny.md"
        ]
    );
    // A spec with only [abi], a transport and hypercalls gets no lazy, shared, pv_ops or
    // patch module.
    let src = "[abi]\nname = \"min\"\nversion = 1\n[abi.transport.t]\ninstruction = \"vmcall\"\nnr = \"rax\"\nargs = [\"rbx\"]\nret = \"rax\"\n[[hypercall]]\nname = \"go\"\nnr = 0\ndoc = \"Go.\"\n";
    let spec = codegen::load("min.toml", src).unwrap_or_else(|d| panic!("{d}"));
    let g = codegen::generate(&spec, "stamp").expect("generates");
    let names: Vec<String> = g.files.into_iter().map(|f| f.path).collect();
    assert_eq!(
        names,
        [
            "numbers.rs",
            "types.rs",
            "guest.rs",
            "host.rs",
            "mod.rs",
            "min.md"
        ]
    );
}

/// The combined file (what `include!` reads) is the module files wrapped in `pub mod`:
/// the same items, token for token, for both real specs and the fixture.
#[test]
fn the_combined_file_holds_exactly_the_module_files() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    for spec in [
        "spec/lguest.toml",
        "spec/kvm.toml",
        "codegen/tests/fixtures/tiny.toml",
    ] {
        let path = std::path::PathBuf::from(format!("{root}/{spec}"));
        let (s, _) = codegen::load_file(&path).unwrap_or_else(|e| panic!("{spec}: {e}"));
        let g = codegen::generate(&s, "stamp").expect(spec);
        let combined = syn::parse_file(&g.combined).expect("the combined file parses");
        let mut seen = 0;
        for item in combined.items {
            let syn::Item::Mod(m) = item else {
                panic!("{spec}: a combined-file item that is not a module")
            };
            let name = m.ident.to_string();
            let file = g
                .files
                .iter()
                .find(|f| f.path == format!("{name}.rs"))
                .expect("a file per module");
            let alone = syn::parse_file(&file.contents).expect("the module file parses");
            let inner: Vec<String> = m
                .content
                .expect("an inline module")
                .1
                .iter()
                .map(|i| quote::ToTokens::to_token_stream(i).to_string())
                .collect();
            let outer: Vec<String> = alone
                .items
                .iter()
                .map(|i| quote::ToTokens::to_token_stream(i).to_string())
                .collect();
            assert_eq!(inner, outer, "{spec}: module {name}");
            assert_eq!(m.attrs.len(), alone.attrs.len(), "{spec}: {name}'s docs");
            seen += 1;
        }
        assert_eq!(
            seen + 2,
            g.files.len(),
            "{spec}: every module, plus mod.rs and the docs"
        );
    }
}
