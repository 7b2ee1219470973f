//! The validated model of a spec: what every emitter reads.
//!
//! The private `parse` module builds it from TOML and `check` makes sure it is coherent, so
//! emitters can rely on every invariant listed on these types (unique names and numbers,
//! argument counts within every transport's budget, offsets that match the layout, ...).

use std::ops::Range;

/// A value with the byte span it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sp<T> {
    /// The value.
    pub v: T,
    /// Where it is in the spec source.
    pub span: Range<usize>,
}

impl<T> Sp<T> {
    /// Wraps `v` found at `span`.
    pub fn new(v: T, span: Range<usize>) -> Self {
        Sp { v, span }
    }
}

/// A whole ABI.
#[derive(Clone, Debug)]
pub struct Spec {
    /// The `[abi]` table.
    pub abi: Abi,
    /// `[abi.transport.*]`, in source order; the first is the default.
    pub transports: Vec<Transport>,
    /// `[consts]`, in source order.
    pub consts: Vec<Const>,
    /// `[types.*]`, in source order.
    pub types: Vec<TypeDef>,
    /// `[[hypercall]]`, in source order.
    pub hypercalls: Vec<Hypercall>,
    /// `[ring]`.
    pub ring: Option<Ring>,
    /// `[shared]`.
    pub shared: Option<SharedPage>,
    /// `[[template]]`, in source order.
    pub templates: Vec<Template>,
    /// `[pv_table.*]`, in source order (tables only named by a `[[pv_op]]` come last).
    pub pv_tables: Vec<PvTable>,
    /// `[struct.*]`, in source order (a struct uses only structs before it).
    pub structs: Vec<StructDef>,
}

/// `[abi]`.
#[derive(Clone, Debug)]
pub struct Abi {
    /// snake_case name; generated names derive from it.
    pub name: Sp<String>,
    /// ABI version.
    pub version: u32,
    /// What the ABI is.
    pub doc: Option<String>,
}

/// A machine register usable by a transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[allow(missing_docs)]
pub enum Reg {
    Rax,
    Rbx,
    Rcx,
    Rdx,
    Rsi,
    Rdi,
    R8,
    R9,
    R10,
    R11,
    R12,
    R13,
    R14,
    R15,
}

impl Reg {
    /// Every register, in encoding order.
    pub const ALL: [Reg; 14] = [
        Reg::Rax,
        Reg::Rbx,
        Reg::Rcx,
        Reg::Rdx,
        Reg::Rsi,
        Reg::Rdi,
        Reg::R8,
        Reg::R9,
        Reg::R10,
        Reg::R11,
        Reg::R12,
        Reg::R13,
        Reg::R14,
        Reg::R15,
    ];

    /// The register's number in x86 instruction encoding (rax 0, rcx 1, rdx 2, rbx 3,
    /// rsi 6, rdi 7, r8..r15 8..15): the order a host lists a vCPU's registers in.
    pub fn encoding(self) -> usize {
        match self {
            Reg::Rax => 0,
            Reg::Rcx => 1,
            Reg::Rdx => 2,
            Reg::Rbx => 3,
            Reg::Rsi => 6,
            Reg::Rdi => 7,
            Reg::R8 => 8,
            Reg::R9 => 9,
            Reg::R10 => 10,
            Reg::R11 => 11,
            Reg::R12 => 12,
            Reg::R13 => 13,
            Reg::R14 => 14,
            Reg::R15 => 15,
        }
    }

    /// The register's name as written in specs and `asm!`.
    pub fn name(self) -> &'static str {
        match self {
            Reg::Rax => "rax",
            Reg::Rbx => "rbx",
            Reg::Rcx => "rcx",
            Reg::Rdx => "rdx",
            Reg::Rsi => "rsi",
            Reg::Rdi => "rdi",
            Reg::R8 => "r8",
            Reg::R9 => "r9",
            Reg::R10 => "r10",
            Reg::R11 => "r11",
            Reg::R12 => "r12",
            Reg::R13 => "r13",
            Reg::R14 => "r14",
            Reg::R15 => "r15",
        }
    }

    /// Parses a register name.
    pub fn from_name(s: &str) -> Option<Reg> {
        Reg::ALL.into_iter().find(|r| r.name() == s)
    }
}

/// The instruction a transport traps to the host with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Instruction {
    /// Intel's `vmcall`.
    Vmcall,
    /// AMD's `vmmcall`.
    Vmmcall,
    /// `out` of the call number to an I/O port (or of a value to the call's own port).
    Out,
    /// A 64-bit store of a value to the call's own guest-physical address (an MMIO exit).
    Mmio,
}

impl Instruction {
    /// The mnemonic.
    pub fn name(self) -> &'static str {
        match self {
            Instruction::Vmcall => "vmcall",
            Instruction::Vmmcall => "vmmcall",
            Instruction::Out => "out",
            Instruction::Mmio => "mmio",
        }
    }
}

/// `[abi.transport.NAME]`.
#[derive(Clone, Debug)]
pub struct Transport {
    /// Table name, snake_case.
    pub name: Sp<String>,
    /// What it is for.
    pub doc: Option<String>,
    /// The trapping instruction.
    pub instruction: Instruction,
    /// The I/O port, for `out`.
    pub port: Option<u16>,
    /// Where the call number goes.
    pub nr: Nr,
    /// Argument registers, in argument order.
    pub args: Vec<Reg>,
    /// Register carrying the result; `None` for a transport that returns nothing (an
    /// MMIO store).
    pub ret: Option<Reg>,
}

/// Where a transport puts the call number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Nr {
    /// In a register.
    Reg(Reg),
    /// It is the I/O port written to (`out`): each call has its own port.
    Port,
    /// It is the guest-physical address stored to (`mmio`): each call has its own address.
    Address,
}

impl Nr {
    /// The spec spelling.
    pub fn name(self) -> &'static str {
        match self {
            Nr::Reg(r) => r.name(),
            Nr::Port => "port",
            Nr::Address => "address",
        }
    }
}

/// `[consts]` entry.
#[derive(Clone, Debug)]
pub struct Const {
    /// snake_case name.
    pub name: Sp<String>,
    /// Value.
    pub value: ConstValue,
    /// How the spec wrote a number's value (decimal, hex, ...), so the generated const
    /// shows it the same way; `Dec` for a text.
    pub form: NumForm,
    /// What it means.
    pub doc: Option<String>,
}

/// What a `[consts]` entry holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConstValue {
    /// A number (`value = N`), which other numbers may name.
    Int(u64),
    /// A text (`text = "..."`): a string both sides must agree on, such as a reason a
    /// guest gives. Never part of a number.
    Text(String),
}

/// An unsigned integer type of the ABI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Prim {
    U8,
    U16,
    U32,
    U64,
    Bool,
}

impl Prim {
    /// Parses `u8`, `u16`, `u32`, `u64` or `bool`.
    pub fn from_name(s: &str) -> Option<Prim> {
        Some(match s {
            "u8" => Prim::U8,
            "u16" => Prim::U16,
            "u32" => Prim::U32,
            "u64" => Prim::U64,
            "bool" => Prim::Bool,
            _ => return None,
        })
    }

    /// The Rust name.
    pub fn name(self) -> &'static str {
        match self {
            Prim::U8 => "u8",
            Prim::U16 => "u16",
            Prim::U32 => "u32",
            Prim::U64 => "u64",
            Prim::Bool => "bool",
        }
    }

    /// Largest value.
    pub fn max(self) -> u64 {
        match self {
            Prim::U8 => u8::MAX.into(),
            Prim::U16 => u16::MAX.into(),
            Prim::U32 => u32::MAX.into(),
            Prim::U64 => u64::MAX,
            Prim::Bool => 1,
        }
    }

    /// Size in bytes (and alignment, on x86_64).
    pub fn size(self) -> u64 {
        match self {
            Prim::U8 | Prim::Bool => 1,
            Prim::U16 => 2,
            Prim::U32 => 4,
            Prim::U64 => 8,
        }
    }
}

/// `[types.NAME]`.
#[derive(Clone, Debug)]
pub struct TypeDef {
    /// snake_case name.
    pub name: Sp<String>,
    /// What it is.
    pub doc: Option<String>,
    /// Alias or enum.
    pub kind: TypeKind,
}

/// What a `[types]` entry defines.
#[derive(Clone, Debug)]
pub enum TypeKind {
    /// Another name for a primitive (`alias = "u64"`).
    Alias(Prim),
    /// A closed set of values (`repr` plus `variants`).
    Enum {
        /// The integer type it travels as.
        repr: Prim,
        /// Its values, in source order.
        variants: Vec<Variant>,
    },
}

/// One value of an enum type.
#[derive(Clone, Debug)]
pub struct Variant {
    /// snake_case name.
    pub name: Sp<String>,
    /// Value on the wire.
    pub value: u64,
    /// What it means.
    pub doc: Option<String>,
}

/// The type of a hypercall argument.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ArgType {
    /// A primitive.
    Prim(Prim),
    /// A `[types]` entry (its index in [`Spec::types`]).
    Named(usize),
}

/// `[[hypercall]]`.
#[derive(Clone, Debug)]
pub struct Hypercall {
    /// snake_case name, unique.
    pub name: Sp<String>,
    /// Call number, unique.
    pub nr: Sp<u64>,
    /// The call number as the spec wrote it (a const's name, or hex).
    pub nr_written: Num,
    /// What it does.
    pub doc: String,
    /// May be queued in the async ring.
    pub lazy: bool,
    /// Arguments, in register order.
    pub args: Vec<Arg>,
    /// What the result register means; `None` when the call returns nothing (or returns
    /// `results`).
    pub ret: Option<String>,
    /// `results = [...]`: typed values in several registers, in spec order (empty without).
    pub results: Vec<CallResult>,
    /// Arguments in guest memory: those whose register carries their address (also in
    /// `args`, as `u64`), and those whose address is in a struct field.
    pub mem: Vec<MemArg>,
}

/// One of a hypercall's `results`: a typed value the host puts in a register.
#[derive(Clone, Debug)]
pub struct CallResult {
    /// snake_case name, unique within the call's results.
    pub name: Sp<String>,
    /// The register it comes back in.
    pub reg: Sp<Reg>,
    /// Its type (an integer, alias or enum; the error code's is an enum).
    pub ty: ArgType,
    /// Span of the `type` value.
    pub ty_span: Range<usize>,
    /// What it is.
    pub doc: Option<String>,
    /// `error = true`: the call's error code. `ok` means success; any other value is a
    /// variant of its enum, and the other results then carry nothing.
    pub error: bool,
    /// The value that means success (`ok`, default 0), for the error code.
    pub ok: Num,
    /// Its place among the registers a transport hands back: 0 is the transport's `ret`
    /// register, `1 + i` its argument register `i` (the same in every transport; set by
    /// `check`).
    pub slot: usize,
}

/// One hypercall argument.
#[derive(Clone, Debug)]
pub struct Arg {
    /// snake_case name, unique within its hypercall.
    pub name: Sp<String>,
    /// Its type.
    pub ty: ArgType,
    /// Span of the `type` value.
    pub ty_span: Range<usize>,
    /// What it is.
    pub doc: Option<String>,
    /// `align = N`: the value must be a multiple of N (a power of two).
    pub align: Option<u64>,
    /// `range = [lo, hi]`: inclusive bounds, resolved.
    pub range: Option<(u64, u64)>,
    /// The `range` bounds as the spec wrote them.
    pub range_written: Option<(Num, Num)>,
    /// The `align` as the spec wrote it.
    pub align_written: Option<Num>,
}

/// How the spec wrote a number, so generated code can show it the same way (a const's
/// name rather than its value, hex where the spec wrote hex).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NumForm {
    /// Decimal.
    Dec,
    /// `0x...`.
    Hex,
    /// `0o...`.
    Oct,
    /// `0b...`.
    Bin,
    /// A `[consts]` name, optionally `+ N` or `- N`.
    Const {
        /// The const's spec name.
        name: String,
        /// What is added to it.
        delta: i128,
    },
}

/// A number with the way the spec wrote it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Num {
    /// The value.
    pub value: u64,
    /// How it was written.
    pub form: NumForm,
}

/// `[ring]`: the async hypercall ring.
#[derive(Clone, Debug)]
pub struct Ring {
    /// What it is.
    pub doc: Option<String>,
    /// Number of slots.
    pub size: u64,
    /// Arguments per slot (besides the call number).
    pub args: u64,
    /// Status meaning "the guest filled this slot".
    pub ready: u8,
    /// Status meaning "the host is done with this slot".
    pub done: u8,
    /// Span of the table, for diagnostics.
    pub span: Range<usize>,
}

/// `[shared]`: the page shared by guest and host.
#[derive(Clone, Debug)]
pub struct SharedPage {
    /// snake_case struct name.
    pub name: Sp<String>,
    /// What it is.
    pub doc: Option<String>,
    /// Fields, in layout order.
    pub fields: Vec<Field>,
}

/// Who writes a shared-page field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Writer {
    /// Only the guest.
    Guest,
    /// Only the host.
    Host,
    /// Both.
    Both,
}

impl Writer {
    /// The spec spelling.
    pub fn name(self) -> &'static str {
        match self {
            Writer::Guest => "guest",
            Writer::Host => "host",
            Writer::Both => "both",
        }
    }
}

/// The type of a shared-page field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldType {
    /// A primitive (not bool).
    Prim(Prim),
    /// `[prim; N]`.
    Array(Prim, u64),
    /// The ring's status bytes (`ring.status`).
    RingStatus,
    /// The ring's slots (`ring.slots`).
    RingSlots,
}

/// One shared-page field.
#[derive(Clone, Debug)]
pub struct Field {
    /// snake_case name, unique.
    pub name: Sp<String>,
    /// Its type.
    pub ty: FieldType,
    /// Span of the `type` value.
    pub ty_span: Range<usize>,
    /// Byte offset (computed, and equal to the spec's `offset` when it gives one).
    pub offset: u64,
    /// Who writes it.
    pub writer: Writer,
    /// Initial value (every element, for arrays).
    pub init: u64,
    /// What it means.
    pub doc: Option<String>,
}

/// `[[template]]`: replacement instructions for a call site.
#[derive(Clone, Debug)]
pub struct Template {
    /// snake_case name, unique.
    pub name: Sp<String>,
    /// What it does.
    pub doc: Option<String>,
    /// Encodings, in order of preference.
    pub forms: Vec<Form>,
}

/// One encoding of a template.
#[derive(Clone, Debug)]
pub struct Form {
    /// Assembly text, for docs.
    pub asm: String,
    /// Bytes, with zeros where relocations go.
    pub bytes: Vec<u8>,
    /// Relocations into `bytes`.
    pub relocs: Vec<Reloc>,
}

/// How a relocation is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RelocKind {
    /// The field's absolute address as a sign-extended 32-bit value.
    Abs32,
    /// The field's absolute address, 64 bits.
    Abs64,
    /// The field's address relative to the end of the form (RIP-relative), 32 bits.
    Rel32,
}

impl RelocKind {
    /// Bytes the relocation fills.
    pub fn width(self) -> usize {
        match self {
            RelocKind::Abs32 | RelocKind::Rel32 => 4,
            RelocKind::Abs64 => 8,
        }
    }

    /// The spec spelling.
    pub fn name(self) -> &'static str {
        match self {
            RelocKind::Abs32 => "abs32",
            RelocKind::Abs64 => "abs64",
            RelocKind::Rel32 => "rel32",
        }
    }
}

/// A relocation: a shared-page field's address written into a form.
#[derive(Clone, Debug)]
pub struct Reloc {
    /// Byte offset in the form.
    pub at: usize,
    /// How the address is encoded.
    pub kind: RelocKind,
    /// The field.
    pub field: String,
    /// The field's offset in the shared page.
    pub field_offset: u64,
}

/// `[pv_table.NAME]` with its ops.
#[derive(Clone, Debug)]
pub struct PvTable {
    /// snake_case name.
    pub name: Sp<String>,
    /// What the table is.
    pub doc: Option<String>,
    /// Its ops, in source order.
    pub ops: Vec<PvOp>,
}

/// `[[pv_op]]`.
#[derive(Clone, Debug)]
pub struct PvOp {
    /// snake_case name, unique within its table.
    pub name: Sp<String>,
    /// What it does.
    pub doc: String,
    /// Arguments: name and Rust type.
    pub args: Vec<(Sp<String>, syn::Type)>,
    /// Return type.
    pub ret: Option<syn::Type>,
    /// Must preserve every register but the return register.
    pub callee_save: bool,
    /// An `unsafe fn`.
    pub is_unsafe: bool,
    /// The caller's duties, for unsafe ops.
    pub safety: Option<String>,
    /// Name of the template that may replace its call sites.
    pub template: Option<Sp<String>>,
}

impl Ring {
    /// `args` of a ring whose `args` could not be read (a spec that is refused anyway):
    /// checks that depend on it stand down rather than report a second problem.
    pub const UNKNOWN_ARGS: u64 = u64::MAX;
}

impl Spec {
    /// The default transport.
    pub fn default_transport(&self) -> &Transport {
        &self.transports[0]
    }

    /// Registers every transport can carry: the argument array length of the generated
    /// `Transport` trait.
    pub fn arg_regs(&self) -> usize {
        self.transports
            .iter()
            .map(|t| t.args.len())
            .min()
            .unwrap_or(0)
    }

    /// The template called `name`.
    pub fn template(&self, name: &str) -> Option<&Template> {
        self.templates.iter().find(|t| t.name.v == name)
    }

    /// Bytes of the longest form of template `t`: what a call site it may replace needs.
    pub fn template_site_len(t: &Template) -> usize {
        t.forms.iter().map(|f| f.bytes.len()).max().unwrap_or(0)
    }

    /// Bytes a call site of `op` needs so that every form of its template fits (0 for ops
    /// without a template). The generated `patch::site_len` and `pv_call!` both use this.
    pub fn site_len(&self, op: &PvOp) -> usize {
        op.template
            .as_ref()
            .and_then(|t| self.template(&t.v))
            .map_or(0, Spec::template_site_len)
    }

    /// The op's number: its position among all ops, table by table in spec order. The
    /// generated `PvOpId::id()` and call-site records use it.
    pub fn op_id(&self, table: &str, op: &str) -> Option<usize> {
        self.pv_ops()
            .position(|(t, o)| t.name.v == table && o.name.v == op)
    }

    /// Every pv_op with its table.
    pub fn pv_ops(&self) -> impl Iterator<Item = (&PvTable, &PvOp)> {
        self.pv_tables
            .iter()
            .flat_map(|t| t.ops.iter().map(move |o| (t, o)))
    }

    /// The primitive an argument travels as.
    pub fn arg_prim(&self, ty: &ArgType) -> Prim {
        match ty {
            ArgType::Prim(p) => *p,
            ArgType::Named(i) => match &self.types[*i].kind {
                TypeKind::Alias(p) => *p,
                TypeKind::Enum { repr, .. } => *repr,
            },
        }
    }
}

/// Which way a memory argument or a struct field travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// Guest to host: read by `decode`, checked, handed to the handler.
    In,
    /// Host to guest: the handler fills it, the host writes it back after the handler.
    Out,
    /// Both: read and checked before the handler, written back after it.
    InOut,
}

impl Dir {
    /// The spec spelling.
    pub fn name(self) -> &'static str {
        match self {
            Dir::In => "in",
            Dir::Out => "out",
            Dir::InOut => "inout",
        }
    }

    /// Whether the host reads it from guest memory.
    pub fn reads(self) -> bool {
        matches!(self, Dir::In | Dir::InOut)
    }

    /// Whether the host writes it back to guest memory.
    pub fn writes(self) -> bool {
        matches!(self, Dir::Out | Dir::InOut)
    }
}

/// What kind of address a memory argument is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddrKind {
    /// Guest-physical: the host reads guest memory at it.
    Physical,
    /// Guest-virtual: the host translates it, page by page, through the generated
    /// `GuestMemory::translate`.
    Virtual,
}

/// An integer type a struct field may have (signed ones too: C structs have them).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Int {
    /// Size in bytes: 1, 2, 4 or 8.
    pub bytes: u8,
    /// Two's complement.
    pub signed: bool,
}

impl Int {
    /// Parses `u8`..`u64`, `i8`..`i64`.
    pub fn from_name(s: &str) -> Option<Int> {
        let (signed, bits) = match s.as_bytes().first() {
            Some(b'u') => (false, &s[1..]),
            Some(b'i') => (true, &s[1..]),
            _ => return None,
        };
        let bytes = match bits {
            "8" => 1,
            "16" => 2,
            "32" => 4,
            "64" => 8,
            _ => return None,
        };
        Some(Int { bytes, signed })
    }

    /// The Rust name.
    pub fn name(self) -> String {
        format!(
            "{}{}",
            if self.signed { 'i' } else { 'u' },
            u32::from(self.bytes) * 8
        )
    }

    /// Largest value, as the u64 its bits make.
    pub fn max(self) -> u64 {
        let bits = u32::from(self.bytes) * 8;
        if self.signed {
            (1u64 << (bits - 1)) - 1
        } else if bits == 64 {
            u64::MAX
        } else {
            (1u64 << bits) - 1
        }
    }
}

/// The type of a struct field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SType {
    /// An integer.
    Int(Int),
    /// A `[types]` alias or enum (an enum is held as its repr and checked on decode).
    Named(usize),
    /// Another struct (its index in [`Spec::structs`]), laid out inline.
    Struct(usize),
    /// `[T; N]`.
    Array(Box<SType>, u64),
    /// Explicit padding: `N` bytes nobody reads (`pad = N`).
    Pad(u64),
}

/// One field of a `[struct.NAME]`.
#[derive(Clone, Debug)]
pub struct SField {
    /// snake_case name (padding has none: it is generated as `_padN`).
    pub name: Sp<String>,
    /// Its type.
    pub ty: SType,
    /// Byte offset (laid out with C rules; equal to the spec's `offset` when it gives one).
    pub offset: u64,
    /// Which way it travels.
    pub dir: Dir,
    /// What it is.
    pub doc: Option<String>,
    /// `range = [lo, hi]`, as the spec wrote it (integers and aliases).
    pub range: Option<(Num, Num)>,
    /// `align = N`, as the spec wrote it (integers and aliases).
    pub align: Option<Num>,
}

impl SField {
    /// Padding bytes, not a field anyone reads.
    pub fn is_pad(&self) -> bool {
        matches!(self.ty, SType::Pad(_))
    }
}

/// `[struct.NAME]`: a C struct in guest memory.
#[derive(Clone, Debug)]
pub struct StructDef {
    /// snake_case name.
    pub name: Sp<String>,
    /// What it is.
    pub doc: Option<String>,
    /// Fields, in layout order, padding included.
    pub fields: Vec<SField>,
    /// Size in bytes (a multiple of `align`).
    pub size: u64,
    /// Alignment in bytes (its largest field's; 1 when packed).
    pub align: u64,
    /// `packed = true`: C's `__attribute__((packed))` (Rust's `repr(C, packed)`): no
    /// padding, alignment 1.
    pub packed: bool,
}

/// How many elements a buffer has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Len {
    /// Always `N`, written as a number or a const (`len = "tls_entries"`).
    Fixed(Num),
    /// The value of register argument `index` of the same call.
    Arg(usize),
    /// A field of an earlier struct argument (`params.len`).
    Field(FieldRef),
}

/// A top-level integer field of a struct memory argument: `arg.field`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldRef {
    /// The memory argument holding the struct (index in [`Hypercall::mem`]).
    pub mem: usize,
    /// The field's index in its struct.
    pub field: usize,
    /// As written (`params.len`).
    pub text: String,
}

/// What a memory argument points at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemKind {
    /// One struct (`type = "&name"`).
    Struct(usize),
    /// Elements of an integer type or a struct (`type = "[u8]"`).
    Buffer {
        /// The element type (`SType::Int`, `Named` alias, or `Struct`).
        elem: SType,
        /// How many.
        len: Len,
        /// At most this many (equal to the length when it is fixed).
        max: u64,
    },
    /// A NUL-terminated string (`type = "str"`) of at most `max` bytes before the NUL.
    Str {
        /// Longest string, NUL excluded.
        max: u64,
        /// Must be UTF-8.
        utf8: bool,
    },
}

/// Where a memory argument's address is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemAt {
    /// In register argument `index` (the argument of the same name).
    Reg(usize),
    /// In a field of an earlier struct argument (`at = "params.buf"`): no register.
    Field(FieldRef),
}

/// An argument in guest memory.
#[derive(Clone, Debug)]
pub struct MemArg {
    /// snake_case name, unique among the call's arguments.
    pub name: Sp<String>,
    /// What it points at.
    pub kind: MemKind,
    /// Which way it travels (for a struct: from its fields).
    pub dir: Dir,
    /// Physical or virtual.
    pub addr: AddrKind,
    /// Where its address is.
    pub at: MemAt,
    /// What it is.
    pub doc: Option<String>,
    /// A buffer's or string's `max` as the spec wrote it (a const's name, hex, ...);
    /// `None` for a struct and for a buffer whose fixed `len` is its own maximum.
    pub max_written: Option<Num>,
}

impl Spec {
    /// Size and alignment of a struct-field type.
    pub fn stype_size_align(&self, t: &SType) -> (u64, u64) {
        stype_size_align(t, &self.types, &self.structs)
    }

    /// Whether any hypercall has an argument in guest memory.
    pub fn has_memory(&self) -> bool {
        self.hypercalls.iter().any(|h| !h.mem.is_empty())
    }

    /// Whether any memory argument is guest-virtual.
    pub fn has_virtual(&self) -> bool {
        self.hypercalls
            .iter()
            .flat_map(|h| &h.mem)
            .any(|m| m.addr == AddrKind::Virtual)
    }

    /// Whether any hypercall returns `results` (the transports then hand back every result
    /// register, and the host's dispatch answers in several).
    pub fn has_results(&self) -> bool {
        self.hypercalls.iter().any(|h| !h.results.is_empty())
    }

    /// Result registers a transport hands back: its `ret` register and its `ARG_REGS`
    /// argument registers.
    pub fn result_regs(&self) -> usize {
        1 + self.arg_regs()
    }

    /// Whether any memory argument borrows host scratch space (buffers and strings).
    pub fn has_scratch(&self) -> bool {
        self.hypercalls
            .iter()
            .flat_map(|h| &h.mem)
            .any(|m| !matches!(m.kind, MemKind::Struct(_)))
    }
}

impl Hypercall {
    /// The call's error-code result, when it has one.
    pub fn error_result(&self) -> Option<&CallResult> {
        self.results.iter().find(|r| r.error)
    }

    /// The results that carry a value (every result but the error code).
    pub fn values(&self) -> impl Iterator<Item = &CallResult> {
        self.results.iter().filter(|r| !r.error)
    }

    /// The memory argument whose address is in register argument `i`.
    pub fn mem_at_reg(&self, i: usize) -> Option<(usize, &MemArg)> {
        self.mem
            .iter()
            .enumerate()
            .find(|(_, m)| m.at == MemAt::Reg(i))
    }

    /// Whether register argument `i` is the length of a buffer (the guest wrapper takes it
    /// from the slice).
    pub fn is_len_of_buffer(&self, i: usize) -> bool {
        self.mem.iter().any(|m| {
            matches!(
                m.kind,
                MemKind::Buffer {
                    len: Len::Arg(j),
                    ..
                } if j == i
            )
        })
    }
}

/// Size and alignment of a struct-field type, given the spec's types and structs.
pub fn stype_size_align(t: &SType, types: &[TypeDef], structs: &[StructDef]) -> (u64, u64) {
    match t {
        SType::Int(i) => (u64::from(i.bytes), u64::from(i.bytes)),
        SType::Named(i) => {
            let p = match &types[*i].kind {
                TypeKind::Alias(p) => *p,
                TypeKind::Enum { repr, .. } => *repr,
            };
            (p.size(), p.size())
        }
        SType::Struct(i) => (structs[*i].size, structs[*i].align),
        SType::Array(e, n) => {
            let (s, a) = stype_size_align(e, types, structs);
            (s.saturating_mul(*n), a)
        }
        SType::Pad(n) => (*n, 1),
    }
}
