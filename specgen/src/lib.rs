//! Random valid specs: a spec text, deterministic from a seed, anywhere in the space the
//! format allows (spec/README.md and the rules of `codegen`'s parse and check).
//!
//! Why a crate of its own rather than a proptest strategy inside `pv-tests`: the generator
//! is used three ways, by the batch test (`tests/batch.rs`, which builds a batch of
//! generated crates in one cargo workspace on every CI run), by a person reproducing a
//! failure (`cargo run -p specgen -- SEED` prints the one spec a seed gives), and by long
//! runs of thousands of specs; a plain function `seed -> text` with its own small PRNG
//! serves all three, shrinks nothing it should not (a reproducer is the spec itself), and
//! keeps the batch test out of `pv-tests`' build script, which compiles fixed specs.
//!
//! What is generated, and how often, is chosen so every rule of the format is met at its
//! bounds: transports with 0 to all 14 registers on every instruction (ports on both sides
//! of 0xff; `mmio` with `nr = "address"`, `out` with `nr = "port"`, no result register), consts at 0 and 2^64-1 written in every TOML base, aliases and enums of every
//! `repr` (a u8 enum with all 256 values, a bool enum), hypercall arguments of every type
//! with `align` and `range` at their extremes and bounds written as `const ± N`, lazy calls,
//! the ring at its size and argument limits, shared pages up to 4096 bytes with and without
//! `offset`, templates with every relocation kind, pv_op tables with Rust types, and
//! `[struct]` tables with arguments in guest memory (`memory.rs`: C layouts with padding,
//! packing, nesting and arrays; `&struct`, `[T]` and `str` with every `len`, `max`, `dir`,
//! `addr` and `at` form). Names
//! come from pools of the tricky ones (Rust keywords, `self_`, prelude and std names, every
//! name the generator binds or defines, names clippy has opinions about) as well as random
//! snake_case; docs from a pool of Markdown and whitespace hazards.
//!
//! What the format refuses is never generated: two spec names that become the same Rust
//! name in one namespace (`check.rs` refuses those it knows; the others, such as a const
//! and a hypercall both giving `numbers::FOO` or two pv_ops giving one `PvOpId` variant,
//! cannot be made to work by any generator, so a checker must refuse them), the names
//! `check.rs` reserves for the generator ([`reserved`]), empty or blank docs, values outside
//! their type. Everything else is valid: a spec this crate prints that `pvgen check` refuses
//! is a bug in one of the two.
//!
//! [`Options::avoid`] switches off feature classes by name ([`FEATURES`]), to look past a
//! known failure for the next one.

use std::collections::{BTreeSet, HashSet};
use std::fmt::Write as _;

use codegen::names::{camel, upper};

mod memory;

/// A small, fast, seedable PRNG (SplitMix64): the same seed gives the same spec on every
/// machine and every build.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A value in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        // The modulo bias is irrelevant for test generation.
        self.next_u64() % n
    }

    /// A value in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        match (hi - lo).checked_add(1) {
            Some(n) => lo + self.below(n),
            None => self.next_u64(),
        }
    }

    /// True with probability `num / den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }

    /// One element of `xs` (not empty).
    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }

    /// Shuffles `xs` in place.
    pub fn shuffle<T>(&mut self, xs: &mut [T]) {
        for i in (1..xs.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            xs.swap(i, j);
        }
    }
}

/// The feature classes [`Options::avoid`] can switch off. Each is a part of the valid space
/// that has, at some point, broken the generator.
pub const FEATURES: &[(&str, &str)] = &[
    (
        "keywords",
        "Rust keywords as names (`type`, `in`, `match`, ...)",
    ),
    ("self_", "the name `self_` (what a C `self` becomes)"),
    (
        "std_names",
        "prelude and std names (`option`, `some`, `core`, `vec`, ...)",
    ),
    (
        "generator_names",
        "names the generator itself binds or defines (`args`, `nr`, `host`, `writer`, `field_info`, `arg_regs`, ...)",
    ),
    (
        "clippy_names",
        "names clippy has opinions about (`new`, `len`, `is_empty`, `from_x`, `into_x`, `default`)",
    ),
    (
        "odd_docs",
        "docs with Markdown or whitespace hazards (tabs, CR, bidi controls, `1. `, `> `, ` {}`, long lines)",
    ),
    ("no_arg_transport", "a transport without argument registers"),
    ("rbx", "rbx in a transport (nr, an argument or the result)"),
    ("rbx_nr_ret", "rbx as both the call number and the result"),
    (
        "arg_n_names",
        "arguments named `arg0`..`arg5` (the names of dispatch's locals)",
    ),
    ("doc_fences", "docs with an unclosed code fence"),
    ("high_port", "an `out` transport with a port above 0xff"),
    ("full_u8_enum", "a u8 enum with all 256 values"),
    ("ring", "the async ring and lazy calls"),
    ("ring_args_0", "a ring whose slots hold no arguments"),
    ("ring_size_1", "a ring of one slot"),
    ("shared", "the shared page"),
    ("templates", "patch templates"),
    ("pv_ops", "pv_op tables"),
    (
        "complex_types",
        "pv_op types clippy calls complex (and ops of 2 or more arguments, whose fn pointers it also calls complex)",
    ),
    ("never_type", "pv_ops returning `!`"),
    (
        "ref_args",
        "pv_op arguments of reference type (`&u64`, `&mut [u8]`)",
    ),
    (
        "unpatched_tables",
        "pv_op tables none of whose ops names a template",
    ),
    ("many_args", "pv_ops with more than 6 arguments"),
    (
        "toml_underscores",
        "integers written with `_` separators (`1_000`)",
    ),
    (
        "underscore_edges",
        "names with a leading or a trailing underscore (`_x`, `x_`)",
    ),
    ("empty_pv_ops", "pv_op tables without a single op"),
    (
        "nr_consts",
        "hypercall numbers that name a const (`nr = \"base + 1\"`)",
    ),
    (
        "structs",
        "`[struct.NAME]` tables (and with them struct arguments in guest memory)",
    ),
    (
        "memory",
        "arguments in guest memory (`&struct`, `[T]`, `str`, `at = \"arg.field\"`)",
    ),
    ("mmio", "an `mmio` transport (`nr = \"address\"`)"),
    (
        "port_nr",
        "an `out` transport with a port per call (`nr = \"port\"`)",
    ),
    ("no_ret", "a transport without a result register"),
    ("since", "hypercalls with `since`"),
    (
        "results",
        "hypercalls answering in several registers (`results`, with an error code)",
    ),
];

/// What to generate.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Feature classes (names from [`FEATURES`]) never to generate.
    pub avoid: BTreeSet<String>,
}

impl Options {
    /// Options avoiding the comma-separated feature classes in `list` (an error names an
    /// unknown class).
    pub fn avoiding(list: &str) -> Result<Self, String> {
        let mut avoid = BTreeSet::new();
        for f in list.split(',').map(str::trim).filter(|f| !f.is_empty()) {
            if !FEATURES.iter().any(|(n, _)| *n == f) {
                let names: Vec<&str> = FEATURES.iter().map(|(n, _)| *n).collect();
                return Err(format!(
                    "unknown feature class `{f}`; classes are: {}",
                    names.join(", ")
                ));
            }
            avoid.insert(f.to_string());
        }
        Ok(Options { avoid })
    }
}

/// Rust keywords usable as names once written as raw identifiers (`r#type`): all but the
/// four Rust cannot spell even raw (`self`, `Self`, `super`, `crate`).
pub const KEYWORDS: &[&str] = &[
    "as",
    "break",
    "const",
    "continue",
    "else",
    "enum",
    "extern",
    "false",
    "fn",
    "for",
    "if",
    "impl",
    "in",
    "let",
    "loop",
    "match",
    "mod",
    "move",
    "mut",
    "pub",
    "ref",
    "return",
    "static",
    "struct",
    "trait",
    "true",
    "type",
    "unsafe",
    "use",
    "where",
    "while",
    "async",
    "await",
    "dyn",
    "abstract",
    "become",
    "box",
    "do",
    "final",
    "macro",
    "override",
    "priv",
    "typeof",
    "unsized",
    "virtual",
    "yield",
    "try",
    "gen",
    "union",
    "raw",
    "safe",
    "macro_rules",
];

/// Prelude, std and primitive names (their CamelCase forms are `Option`, `Some`, `None`,
/// `Result`, `Ok`, `Err`, `Box`, `Vec`, `String`, ...).
pub const STD_NAMES: &[&str] = &[
    "option",
    "result",
    "some",
    "none",
    "ok",
    "err",
    "vec",
    "string",
    "core",
    "std",
    "alloc",
    "u8",
    "u16",
    "u32",
    "u64",
    "u128",
    "usize",
    "i8",
    "i32",
    "i64",
    "isize",
    "bool",
    "char",
    "str",
    "f32",
    "f64",
    "copy",
    "clone",
    "debug",
    "display",
    "default",
    "drop",
    "eq",
    "ord",
    "hash",
    "send",
    "sync",
    "sized",
    "iterator",
    "into",
    "from",
    "try_from",
    "try_into",
    "to_string",
    "fmt",
    "panic",
    "assert",
    "unreachable",
    "format",
    "write",
    "matches",
    "todo",
    "cfg",
    "include",
    "env",
    "concat",
    "line",
    "file",
    "column",
    "asm",
    "test",
    "derive",
    "inline",
    "doc",
    "allow",
    "deny",
    "warn",
    "must_use",
    "repr",
    "path",
    "prelude",
    "unpin",
    "fn_mut",
    "partial_eq",
    "phantom_data",
    "atomic_u64",
    "cell",
    "ptr",
    "mem",
    "error",
];

/// Names the generated code binds or defines (locals, parameters, helper items and their
/// snake_case spellings, module names, consts in lowercase).
pub const GENERATOR_NAMES: &[&str] = &[
    "args",
    "arg0",
    "arg1",
    "arg2",
    "arg3",
    "arg4",
    "arg5",
    "a0",
    "a1",
    "a2",
    "a3",
    "a4",
    "nr",
    "host",
    "call",
    "ret",
    "value",
    "index",
    "violation",
    "lo",
    "hi",
    "align",
    "bits",
    "ty",
    "v",
    "b",
    "e",
    "f",
    "i",
    "s",
    "t",
    "h",
    "slot",
    "status",
    "page",
    "cursor",
    "transport",
    "lazy",
    "next",
    "rbx_swap",
    "writer",
    "field_info",
    "ring_slot",
    "ring_cursor",
    "batch",
    "sent",
    "hypercall",
    "hypercalls",
    "dispatch",
    "decode",
    "run",
    "dispatch_slot",
    "bad",
    "check_range",
    "check_align",
    "bad_argument",
    "decode_error",
    "dispatch_error",
    "unknown_hypercall",
    "template",
    "form",
    "reloc",
    "reloc_kind",
    "pv_ops",
    "pv_op_id",
    "pv_ops_table",
    "numbers",
    "types",
    "guest",
    "shared",
    "patch",
    "host_error",
    "default_transport",
    "fields",
    "templates",
    "template_for",
    "site_len",
    "apply",
    "site",
    "site_addr",
    "shared_page_addr",
    "ops_impl",
    "all",
    "name",
    "raw",
    "from_raw",
    "arg_names",
    "arg_count",
    "arg_index",
    "is_lazy",
    "returns_value",
    "nr_reg",
    "ret_reg",
    "arg_regs",
    "abi_name",
    "abi_version",
    "port",
    "ring_size",
    "ring_args",
    "ring_ready",
    "ring_done",
    "size",
    "field",
    "max_template_len",
    "direct",
    "direct_cold",
    "queue",
    "guest_only",
    "offset",
    "init",
    "kind",
    "width",
    "at",
    "field_offset",
    "bytes",
    "relocs",
    "forms",
    "rel32",
    "abs32",
    "abs64",
    "guest_",
    "both",
    "range",
    "enum_",
    "width_",
    "queued",
    "nr_offset",
    "args_offset",
    "self_ty",
    "ops",
    // The struct and guest-memory code (structs.rs, guest_mem.rs, host/memory.rs).
    "mem",
    "mem0",
    "mem1",
    "scratch",
    "addr",
    "gpa",
    "gva",
    "buf",
    "chunk",
    "end",
    "elem",
    "element",
    "from_bytes",
    "to_bytes",
    "zero",
    "i0",
    "i1",
    "e0",
    "e1",
    "_v",
    "n",
    "max",
    "utf8",
    "translate",
    "read_guest",
    "write_guest",
    "probe_guest",
    "read_str",
    "guest_memory",
    "bad_memory",
    "mem_violation",
    "outside_memory",
    "check_struct",
    "check_mem_align",
    "valid_up_to",
    "call_fields",
    "fault",
];

/// Names clippy has opinions about when they name methods or items.
pub const CLIPPY_NAMES: &[&str] = &[
    "new",
    "len",
    "is_empty",
    "from_x",
    "into_x",
    "to_x",
    "as_x",
    "default",
    "from_str",
    "from_iter",
    "next",
    "clone",
    "eq",
    "cmp",
    "partial_cmp",
    "hash",
    "deref",
    "drop",
    "not",
    "neg",
    "add",
    "sub",
    "index",
    "borrow",
    "as_ref",
    "as_mut",
    "into_iter",
    "iter",
    "iter_mut",
    "get",
    "set_x",
    "with_capacity",
    "is_some",
    "from_raw_parts",
    "to_owned",
    "as_ptr",
];

/// The Rust forms `check.rs` reserves for the generator's own items, by kind of name.
/// Keep in step with `check.rs` `reserved()` (and `check_budget()` in codegen's lib.rs,
/// whose `numbers` names are reserved in [`generate`]).
pub fn reserved(kind: &str, abi: &str, rust: &str) -> bool {
    match kind {
        "transport" => {
            ["Transport", "DefaultTransport", "Translate"].contains(&rust)
                || rust == format!("{abi}Hypercalls")
        }
        "pv_table" => ["PvOps", "PvOpId"].contains(&rust),
        "template" => ["TEMPLATES", "MAX_TEMPLATE_LEN"].contains(&rust),
        "shared" => ["Writer", "FieldInfo", "RingSlot"].contains(&rust),
        // `<Abi>DefaultHost::unhandled` (the spec name itself, not a Rust form).
        "hypercall" => rust == "unhandled",
        _ => false,
    }
}

/// Pieces of docs: plain text and every hazard a doc string can carry into rustdoc. Not
/// here, because the format refuses them in any text (codegen's `text_problem`): control
/// characters but a newline, a tab and `\r\n`, and bidirectional controls.
const DOC_PIECES: &[&str] = &[
    "Does the thing.",
    "The guest asks the host to do something",
    "1. first",
    "2) second",
    "> quoted",
    "- a list item",
    "* a star item",
    "+ a plus item",
    "# A heading",
    "    indented like code",
    "```",
    "```text",
    "`code`",
    "[link]",
    "[`Call`]",
    "[not a link](",
    "<b>html</b>",
    "<!-- comment",
    "a < b > c",
    "a & b",
    "x {}",
    "{}",
    "{0}",
    "%s %d",
    "back\\slash",
    "\"quoted\"",
    "'single'",
    "*/",
    "/*",
    "// comment",
    "#[doc = \"x\"]",
    "tab\there",
    "\t",
    "\r\n",
    "zero\u{200b}width",
    "\u{feff}bom",
    "é ü ß 日本 🦀",
    "trailing spaces   ",
    "| a | b |",
    "---",
    "===",
    "_under_",
    "__dunder__",
    "~~strike~~",
    "https://example.com/x?y=1",
    "TODO: nothing",
    "$ a ^ b ~ c",
    "0x1f",
    "\\n",
    "\\",
    "```rust\nfn x() {}\n```",
];

/// A spec generator: one spec per [`generate`] call.
struct Gen<'o> {
    rng: Rng,
    opts: &'o Options,
    out: String,
    abi_camel: String,
    /// `(name, value)` of every const.
    consts: Vec<(String, u64)>,
    /// Argument types: `(spec name, width max, integer-like)`.
    arg_types: Vec<(String, u64, bool)>,
    /// Every UPPER name in `numbers` (consts and hypercall numbers).
    numbers: HashSet<String>,
    /// Every `[types]` entry: `(name, primitive or repr, is an enum)`.
    type_defs: Vec<(String, &'static str, bool)>,
    /// Every `[struct]`, in order.
    structs: Vec<memory::StructInfo>,
    /// Some transport has no result register: no call returns a value.
    no_ret: bool,
    /// Some transport writes to the port its call number names: numbers are 16-bit.
    port_nr: bool,
    /// Every transport's `(ret, args)`, for `results`.
    tregs: Vec<(Option<&'static str>, Vec<&'static str>)>,
    /// Every enum: `(name, largest value of its repr, its values)`, for `results`.
    enums: Vec<(String, u64, BTreeSet<u64>)>,
}

/// `work(seed)` for each of `count` seeds from `first`, dealt round-robin over the cores
/// (each spec is independent of the others), returned in seed order: what a batch does
/// with a spec does not depend on scheduling. A panic in `work` is re-raised here.
pub fn by_seed<T: Send>(first: u64, count: u64, work: impl Fn(u64) -> T + Sync) -> Vec<T> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get() as u64);
    let work = &work;
    let mut done: Vec<(u64, T)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads.min(count.max(1)))
            .map(|t| {
                scope.spawn(move || {
                    (t..count)
                        .step_by(threads as usize)
                        .map(|i| {
                            let s = first.wrapping_add(i);
                            (i, work(s))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, t)| t).collect()
}

/// The spec text for `seed`.
pub fn generate(seed: u64, opts: &Options) -> String {
    let mut g = Gen {
        rng: Rng::new(seed),
        opts,
        out: String::new(),
        abi_camel: String::new(),
        consts: Vec::new(),
        arg_types: Vec::new(),
        // `numbers` names these itself (`check_budget` in codegen's lib.rs reserves them).
        numbers: ["ABI_NAME", "ABI_VERSION", "ARG_REGS"]
            .map(String::from)
            .into(),
        type_defs: Vec::new(),
        structs: Vec::new(),
        no_ret: false,
        port_nr: false,
        tregs: Vec::new(),
        enums: Vec::new(),
    };
    g.spec(seed);
    g.out
}

/// A TOML basic string holding `s` exactly.
pub fn toml_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\t' => o.push_str("\\t"),
            '\r' => o.push_str("\\r"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(o, "\\u{:04X}", c as u32);
            }
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

const REGS: [&str; 14] = [
    "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15",
];

const PRIMS: [(&str, u64); 5] = [
    ("u8", 0xff),
    ("u16", 0xffff),
    ("u32", 0xffff_ffff),
    ("u64", u64::MAX),
    ("bool", 1),
];

/// Rust types for pv_op arguments and results: `(type, allowed as a result, feature)`.
const RUST_TYPES: &[(&str, bool, &str)] = &[
    ("u8", true, ""),
    ("u16", true, ""),
    ("u32", true, ""),
    ("u64", true, ""),
    ("usize", true, ""),
    ("i32", true, ""),
    ("i64", true, ""),
    ("bool", true, ""),
    ("char", true, ""),
    ("()", true, ""),
    ("*const u8", true, ""),
    ("*mut u64", true, ""),
    ("*mut core::ffi::c_void", true, ""),
    ("core::ffi::c_int", true, ""),
    ("core::num::NonZeroU64", true, ""),
    ("Option<u64>", true, ""),
    ("core::option::Option<core::num::NonZeroU32>", true, ""),
    ("::core::primitive::u64", true, ""),
    ("[u8; 16]", true, ""),
    ("[u64; 0]", true, ""),
    ("(u32, u64)", true, ""),
    ("(u8,)", true, ""),
    ("fn(u64) -> u64", true, ""),
    ("unsafe extern \"C\" fn()", true, ""),
    ("&'static str", true, ""),
    ("&'static [u8]", true, ""),
    ("core::ptr::NonNull<u8>", true, ""),
    ("core::marker::PhantomData<u8>", true, ""),
    ("core::cmp::Ordering", true, ""),
    ("core::result::Result<u64, u32>", true, ""),
    ("core::time::Duration", true, ""),
    ("&u64", false, "ref_args"),
    ("&mut [u8]", false, "ref_args"),
    (
        "fn(fn(u64) -> u64, (u8, u16, u32, u64)) -> core::option::Option<(u64, u64, fn() -> u8)>",
        true,
        "complex_types",
    ),
    (
        "core::result::Result<(u64, [u32; 4], fn(&mut [u8]) -> usize), (u8, u16)>",
        true,
        "complex_types",
    ),
];

impl Gen<'_> {
    fn allow(&self, feature: &str) -> bool {
        debug_assert!(FEATURES.iter().any(|(n, _)| *n == feature), "{feature}");
        !self.opts.avoid.contains(feature)
    }

    fn line(&mut self, s: &str) {
        if s.is_empty() {
            return;
        }
        self.out.push_str(s);
        self.out.push('\n');
    }

    /// A random snake_case name.
    fn random_name(&mut self) -> String {
        let len = if self.rng.chance(1, 20) {
            self.rng.range(30, 70)
        } else {
            self.rng.range(1, 12)
        };
        let mut s = String::new();
        s.push((b'a' + self.rng.below(26) as u8) as char);
        while s.len() < len as usize {
            let r = self.rng.below(10);
            if r == 0 && !s.ends_with('_') {
                s.push('_');
            } else if r <= 2 {
                s.push((b'0' + self.rng.below(10) as u8) as char);
            } else {
                s.push((b'a' + self.rng.below(26) as u8) as char);
            }
        }
        while s.ends_with('_') {
            s.pop();
        }
        s
    }

    /// A name: tricky most of the time, random otherwise.
    fn name(&mut self) -> String {
        loop {
            let abi = self.abi_camel.clone();
            let n = match self.rng.below(12) {
                0 | 1 if self.allow("keywords") => self.rng.pick(KEYWORDS).to_string(),
                2 if self.allow("self_") => "self_".to_string(),
                3 if self.allow("std_names") => self.rng.pick(STD_NAMES).to_string(),
                4 | 5 if self.allow("generator_names") => {
                    if self.rng.chance(1, 8) && !abi.is_empty() {
                        // The ABI's own trait names, in snake_case.
                        let base = snake_of(&abi);
                        let suffix = *self.rng.pick(&["host", "hypercalls", "lazy_hypercalls"]);
                        format!("{base}_{suffix}")
                    } else {
                        self.rng.pick(GENERATOR_NAMES).to_string()
                    }
                }
                6 if self.allow("clippy_names") => self.rng.pick(CLIPPY_NAMES).to_string(),
                7 if self.allow("underscore_edges") => {
                    let n = self.random_name();
                    if self.rng.chance(1, 2) {
                        format!("_{n}")
                    } else {
                        format!("{n}_")
                    }
                }
                _ => self.random_name(),
            };
            if !self.allow("self_") && n == "self_" {
                continue;
            }
            if !self.allow("arg_n_names") && n.len() == 4 && n.starts_with("arg") {
                continue;
            }
            if codegen::names::snake_case_problem(&n).is_some() && !self.name_ok_beyond_today(&n) {
                continue;
            }
            return n;
        }
    }

    /// Names the format allows (keywords as raw identifiers, `self_`, one leading or
    /// trailing underscore) that an older `snake_case_problem` refuses.
    fn name_ok_beyond_today(&self, n: &str) -> bool {
        let core = n.strip_prefix('_').unwrap_or(n);
        let core = core.strip_suffix('_').unwrap_or(core);
        (KEYWORDS.contains(&n) && self.allow("keywords"))
            || (n == "self_" && self.allow("self_"))
            || (n != core
                && self.allow("underscore_edges")
                && !core.is_empty()
                && !core.contains("__")
                && codegen::names::snake_case_problem(core)
                    .is_none_or(|_| KEYWORDS.contains(&core)))
    }

    /// A name whose Rust form (`key`) is not in `taken`; adds it.
    fn fresh(&mut self, taken: &mut HashSet<String>, key: impl Fn(&str) -> String) -> String {
        loop {
            let n = self.name();
            if taken.insert(key(&n)) {
                return n;
            }
        }
    }

    /// A doc string: never empty or blank.
    fn doc_text(&mut self) -> String {
        if !self.allow("odd_docs") || self.rng.chance(1, 3) {
            return (*self.rng.pick(&[
                "Does the thing.",
                "What it is.",
                "The guest's request to the host.",
                "A value.",
            ]))
            .to_string();
        }
        let mut s = String::new();
        for _ in 0..self.rng.range(1, 5) {
            let piece = *self.rng.pick(DOC_PIECES);
            if piece.starts_with("```") && !self.allow("doc_fences") {
                continue;
            }
            s.push_str(piece);
            let sep = *self.rng.pick(&[" ", "\n", "\n\n", "", "  \n"]);
            s.push_str(sep);
        }
        if self.rng.chance(1, 10) {
            s.push_str(&"long line ".repeat(self.rng.range(10, 40) as usize));
        }
        if self.rng.chance(1, 6) {
            let end = *self.rng.pick(&[" {}", "\n1. ", "\n> ", "\n", "\t", "\r\n"]);
            s.push_str(end);
        }
        if s.trim().is_empty() {
            s.push('x');
        }
        s
    }

    fn opt_doc(&mut self, key: &str) -> String {
        if self.rng.chance(2, 3) {
            format!("{key} = {}", toml_str(&self.doc_text()))
        } else {
            String::new()
        }
    }

    /// An integer literal for `v` in a random TOML base.
    fn int(&mut self, v: u64) -> String {
        match self.rng.below(6) {
            0 => format!("{v:#x}"),
            1 => format!("{v:#o}"),
            2 if v < 1 << 20 => format!("{v:#b}"),
            3 if self.allow("toml_underscores") && v >= 1000 => {
                let d = v.to_string();
                let mut o = String::new();
                for (i, c) in d.chars().enumerate() {
                    if i > 0 && (d.len() - i).is_multiple_of(3) {
                        o.push('_');
                    }
                    o.push(c);
                }
                o
            }
            _ if v > i64::MAX as u64 => format!("{v:#x}"),
            _ => v.to_string(),
        }
    }

    /// An interesting value in `0..=max`.
    fn value(&mut self, max: u64) -> u64 {
        match self.rng.below(8) {
            0 => 0,
            1 => max,
            2 => max / 2 + 1,
            3 => self.rng.range(0, max.min(16)),
            4 => max.saturating_sub(self.rng.range(0, 3)),
            _ => self.rng.range(0, max),
        }
    }

    /// `v` as a number where a const may be named: an integer, or `"const ± N"`.
    fn number(&mut self, v: u64) -> String {
        if !self.consts.is_empty() && self.rng.chance(1, 2) {
            let (name, c) = self.consts[self.rng.below(self.consts.len() as u64) as usize].clone();
            let delta = i128::from(v) - i128::from(c);
            let sp = *self.rng.pick(&["", " ", "  "]);
            if delta == 0 {
                return toml_str(&format!("{sp}{name}{sp}"));
            }
            if delta.unsigned_abs() <= u128::from(u64::MAX) {
                let sign = if delta < 0 { '-' } else { '+' };
                return toml_str(&format!("{name}{sp}{sign}{sp}{}", delta.unsigned_abs()));
            }
        }
        self.int(v)
    }

    fn spec(&mut self, seed: u64) {
        let _ = writeln!(self.out, "# specgen seed {seed:#x}");
        // [abi]
        let abi = self.name();
        self.abi_camel = camel(&abi);
        self.line("[abi]");
        let _ = writeln!(self.out, "name = {}", toml_str(&abi));
        let version = match self.rng.below(4) {
            0 => 0,
            1 => u64::from(u32::MAX),
            _ => self.rng.range(1, 20),
        };
        let v = self.int(version);
        let _ = writeln!(self.out, "version = {v}");
        let d = self.opt_doc("doc");
        self.line(&d);

        let arg_regs = self.transports();
        self.consts();
        self.types();
        if self.allow("structs") && self.rng.chance(1, 2) {
            self.structs();
        }

        let want_shared = self.allow("shared") && self.rng.chance(1, 2);
        let ring = if want_shared && self.allow("ring") && self.rng.chance(2, 3) {
            let args = if self.allow("ring_args_0") {
                self.rng.range(0, arg_regs as u64)
            } else if arg_regs == 0 {
                u64::MAX
            } else {
                self.rng.range(1, arg_regs as u64)
            };
            (args != u64::MAX).then_some(args)
        } else {
            None
        };
        self.hypercalls(arg_regs, ring, version);
        let fields = if want_shared {
            self.shared(ring)
        } else {
            Vec::new()
        };
        let templates = if self.allow("templates") && self.rng.chance(1, 2) {
            self.templates(&fields)
        } else {
            Vec::new()
        };
        let patched_ok = self.allow("unpatched_tables") || !templates.is_empty();
        if self.allow("pv_ops") && patched_ok && self.rng.chance(2, 3) {
            self.pv_ops(&templates);
        }
    }

    /// The transports; returns ARG_REGS (the smallest register count).
    fn transports(&mut self) -> usize {
        let n = self.rng.range(1, 3);
        let mut taken = HashSet::new();
        let mut min = usize::MAX;
        let abi_c = self.abi_camel.clone();
        // Pick the register counts first so that, most of the time, ARG_REGS is not 0.
        let zero_ok = self.allow("no_arg_transport") && self.rng.chance(1, 6);
        for _ in 0..n {
            let name = loop {
                let name = self.fresh(&mut taken, camel);
                if !reserved("transport", &abi_c, &camel(&name)) {
                    break name;
                }
            };
            let insn = *self.rng.pick(&["vmcall", "vmmcall", "out", "mmio"]);
            let insn = match insn {
                "mmio" if !self.allow("mmio") || !self.rng.chance(1, 3) => "vmcall",
                i => i,
            };
            let _ = writeln!(self.out, "\n[abi.transport.{name}]");
            let d = self.opt_doc("doc");
            self.line(&d);
            let _ = writeln!(self.out, "instruction = \"{insn}\"");
            // A store to the call's own address, or an `out` to the call's own port: the
            // number is where the value goes, and the value is the one argument.
            let place = match insn {
                "mmio" => Some("address"),
                "out" if self.allow("port_nr") && self.rng.chance(1, 4) => Some("port"),
                _ => None,
            };
            if let Some(place) = place {
                min = min.min(self.placed_transport(place, zero_ok));
                continue;
            }
            let mut free: Vec<&str> = REGS.to_vec();
            if !self.allow("rbx") {
                free.retain(|r| *r != "rbx");
            }
            let mut high_port = false;
            if insn == "out" {
                let port = if self.allow("high_port") && self.rng.chance(1, 2) {
                    high_port = true;
                    *self.rng.pick(&[0x100, 0xffff, 0xcf8, 0x1234])
                } else {
                    *self.rng.pick(&[0, 0xf4, 0xff, 0x80])
                };
                let p = self.int(port);
                let _ = writeln!(self.out, "port = {p}");
            }
            let mut nr_pool = free.clone();
            if !self.allow("rbx_nr_ret") {
                // rbx may carry nr only if ret then has its own register.
                nr_pool.retain(|r| *r != "rbx");
            }
            let nr = if insn == "out" {
                "rax"
            } else if self.allow("rbx_nr_ret") || !free.contains(&"rbx") || self.rng.chance(3, 4) {
                *self.rng.pick(&nr_pool)
            } else {
                "rbx"
            };
            free.retain(|r| *r != nr);
            let mut arg_pool = free.clone();
            if high_port {
                arg_pool.retain(|r| *r != "rdx");
            }
            self.rng.shuffle(&mut arg_pool);
            if nr == "rbx" && !self.allow("rbx_nr_ret") {
                // Leave the result a register of its own.
                arg_pool.pop();
            }
            let count = if zero_ok {
                0
            } else {
                match self.rng.below(4) {
                    0 => arg_pool.len(),
                    _ => self.rng.range(1, arg_pool.len() as u64) as usize,
                }
            };
            let args: Vec<&str> = arg_pool[..count].to_vec();
            // The result: nr's register, or one no argument uses.
            let mut ret_pool: Vec<&str> =
                free.iter().filter(|r| !args.contains(r)).copied().collect();
            ret_pool.push(nr);
            if nr == "rbx" && !self.allow("rbx_nr_ret") {
                ret_pool.retain(|r| *r != "rbx");
            }
            let ret = if self.rng.chance(1, 2) && (nr != "rbx" || self.allow("rbx_nr_ret")) {
                nr
            } else {
                *self.rng.pick(&ret_pool)
            };
            let _ = writeln!(self.out, "nr = \"{nr}\"");
            let list: Vec<String> = args.iter().map(|r| format!("\"{r}\"")).collect();
            let _ = writeln!(self.out, "args = [{}]", list.join(", "));
            if self.allow("no_ret") && self.rng.chance(1, 12) {
                self.no_ret = true;
                self.tregs.push((None, args.clone()));
            } else {
                let _ = writeln!(self.out, "ret = \"{ret}\"");
                self.tregs.push((Some(ret), args.clone()));
            }
            min = min.min(count);
        }
        min
    }

    /// The registers of a transport whose call number is a place (`nr = "address"` for
    /// `mmio`, `nr = "port"` for `out`): at most one argument register, the value written
    /// (`out` sends eax), and a result only for `out`, never in rdx (the port's register).
    /// Returns its register count.
    fn placed_transport(&mut self, place: &str, zero_ok: bool) -> usize {
        let _ = writeln!(self.out, "nr = \"{place}\"");
        let mut free: Vec<&str> = REGS.to_vec();
        if !self.allow("rbx") {
            free.retain(|r| *r != "rbx");
        }
        let arg = if zero_ok || self.rng.chance(1, 5) {
            None
        } else if place == "port" {
            Some("rax")
        } else {
            Some(*self.rng.pick(&free))
        };
        let list: Vec<String> = arg.iter().map(|r| format!("\"{r}\"")).collect();
        let _ = writeln!(self.out, "args = [{}]", list.join(", "));
        let args: Vec<&'static str> = arg.into_iter().collect();
        if place == "port" && self.rng.chance(1, 2) {
            free.retain(|r| *r != "rdx" && !args.contains(r));
            let ret = *self.rng.pick(&free);
            let _ = writeln!(self.out, "ret = \"{ret}\"");
            self.tregs.push((Some(ret), args));
        } else {
            self.no_ret = true;
            self.tregs.push((None, args));
        }
        if place == "port" {
            self.port_nr = true;
        }
        usize::from(arg.is_some())
    }

    fn consts(&mut self) {
        let n = match self.rng.below(4) {
            0 => 0,
            _ => self.rng.range(1, 6),
        };
        if n == 0 {
            return;
        }
        self.line("\n[consts]");
        let mut taken = HashSet::new();
        for _ in 0..n {
            let name = loop {
                let name = self.fresh(&mut taken, |s| s.to_string());
                if self.numbers.insert(upper(&name)) {
                    break name;
                }
            };
            let v = self.value(u64::MAX);
            let lit = self.int(v);
            if self.rng.chance(1, 2) {
                let _ = writeln!(self.out, "{name} = {lit}");
            } else {
                let d = self.opt_doc("doc");
                let d = if d.is_empty() { d } else { format!(", {d}") };
                let _ = writeln!(self.out, "{name} = {{ value = {lit}{d} }}");
            }
            self.consts.push((name, v));
        }
    }

    fn types(&mut self) {
        let n = self.rng.range(0, 5);
        let mut taken = HashSet::new();
        for _ in 0..n {
            // A type named `u64` would be shadowed by the primitive (FINDINGS 2), one named
            // `str` by the string argument type.
            let name = loop {
                let name = self.fresh(&mut taken, camel);
                if !PRIMS.iter().any(|(p, _)| *p == name)
                    && !["i8", "i16", "i32", "i64", "str"].contains(&name.as_str())
                {
                    break name;
                }
            };
            let _ = writeln!(self.out, "\n[types.{name}]");
            let d = self.opt_doc("doc");
            self.line(&d);
            if self.rng.chance(1, 2) {
                let (p, max) = *self.rng.pick(&PRIMS);
                let _ = writeln!(self.out, "alias = \"{p}\"");
                self.type_defs.push((name.clone(), p, false));
                self.arg_types.push((name, max, p != "bool"));
                continue;
            }
            // An enum travels as an unsigned integer: `repr = "bool"` is refused.
            let (repr, max) = *self.rng.pick(&PRIMS[..4]);
            let _ = writeln!(self.out, "repr = \"{repr}\"");
            let full = repr == "u8" && self.allow("full_u8_enum") && self.rng.chance(1, 4);
            let count = if full { 256 } else { self.rng.range(1, 8) };
            let mut values = BTreeSet::new();
            let mut order = Vec::new();
            if full {
                order = (0..256).collect();
                self.rng.shuffle(&mut order);
            } else {
                while order.len() < count as usize {
                    let v = self.value(max);
                    if values.insert(v) {
                        order.push(v);
                    }
                }
            }
            let values: BTreeSet<u64> = order.iter().copied().collect();
            let mut vnames = HashSet::new();
            self.line("variants = [");
            for v in order {
                let vn = self.fresh(&mut vnames, camel);
                let val = self.number(v);
                let d = if self.rng.chance(1, 3) {
                    format!(", doc = {}", toml_str(&self.doc_text()))
                } else {
                    String::new()
                };
                let _ = writeln!(
                    self.out,
                    "  {{ name = {}, value = {val}{d} }},",
                    toml_str(&vn)
                );
            }
            self.line("]");
            self.enums.push((name.clone(), max, values));
            self.type_defs.push((name.clone(), repr, true));
            self.arg_types.push((name, max, false));
        }
    }

    fn hypercalls(&mut self, arg_regs: usize, ring_args: Option<u64>, version: u64) {
        let n = if self.rng.chance(1, 10) {
            self.rng.range(20, 60)
        } else {
            self.rng.range(1, 8)
        };
        let mut taken = HashSet::new();
        let mut nrs = HashSet::new();
        let mut lazies = 0;
        for i in 0..n {
            let name = loop {
                let name = self.fresh(&mut taken, camel);
                if !reserved("hypercall", "", &name) && self.numbers.insert(upper(&name)) {
                    break name;
                }
            };
            let nr = loop {
                // A transport that writes to the port the number names takes 16-bit numbers.
                let most = if self.port_nr { 0xffff } else { u64::MAX };
                let nr = match self.rng.below(4) {
                    0 => i,
                    1 => self.value(most),
                    _ => self.rng.range(0, 64),
                };
                if nrs.insert(nr) {
                    break nr;
                }
            };
            // The last call is lazy if none was, so a ring always has a lazy call to carry.
            let lazy =
                ring_args.is_some() && (self.rng.chance(1, 2) || (i + 1 == n && lazies == 0));
            let max_args = match (lazy, ring_args) {
                (true, Some(r)) => (r as usize).min(arg_regs),
                _ => arg_regs,
            };
            let nargs = match self.rng.below(3) {
                0 => max_args,
                _ => self.rng.range(0, max_args as u64) as usize,
            };
            self.line("\n[[hypercall]]");
            let _ = writeln!(self.out, "name = {}", toml_str(&name));
            let nr_lit = if self.allow("nr_consts") {
                self.number(nr)
            } else {
                self.int(nr)
            };
            let _ = writeln!(self.out, "nr = {nr_lit}");
            let d = self.doc_text();
            let _ = writeln!(self.out, "doc = {}", toml_str(&d));
            if lazy {
                lazies += 1;
                self.line("lazy = true");
            } else if self.rng.chance(1, 8) {
                self.line("lazy = false");
            }
            if version > 0 && self.allow("since") && self.rng.chance(1, 6) {
                let v = self.range_int(1, version);
                let _ = writeln!(self.out, "since = {v}");
            }
            // `results` (answers in several registers) instead of `ret`, never on a lazy call.
            let results = if !lazy && self.allow("results") && self.rng.chance(1, 4) {
                self.results(arg_regs, &name)
            } else {
                None
            };
            if let Some(r) = results {
                let _ = writeln!(self.out, "results = [{}]", r.join(", "));
            } else if !self.no_ret && self.rng.chance(1, 2) {
                // A transport without a result register carries no call's result.
                let r = self.doc_text();
                let _ = writeln!(self.out, "ret = {}", toml_str(&r));
            }
            let list = self.arg_list(nargs);
            if list.is_empty() && self.rng.chance(1, 2) {
                continue;
            }
            self.line("args = [");
            for line in list {
                let _ = writeln!(self.out, "  {line},");
            }
            self.line("]");
        }
    }

    /// An integer literal for a value in `lo..=hi`.
    fn range_int(&mut self, lo: u64, hi: u64) -> String {
        let v = self.rng.range(lo, hi);
        self.int(v)
    }

    /// One register argument; returns its table and whether it is an integer (not `bool`,
    /// not an enum): what a buffer's `len` may name.
    fn arg(&mut self, name: &str) -> (String, bool) {
        let mut parts = vec![format!("name = {}", toml_str(name))];
        let (ty, max, int_like) = if !self.arg_types.is_empty() && self.rng.chance(1, 2) {
            self.arg_types[self.rng.below(self.arg_types.len() as u64) as usize].clone()
        } else {
            let (p, max) = *self.rng.pick(&PRIMS);
            (p.to_string(), max, p != "bool")
        };
        parts.push(format!("type = {}", toml_str(&ty)));
        if self.rng.chance(1, 3) {
            parts.push(format!("doc = {}", toml_str(&self.doc_text())));
        }
        if int_like {
            self.constraints(max, &mut parts);
        }
        self.rng.shuffle(&mut parts[1..]);
        (format!("{{ {} }}", parts.join(", ")), int_like)
    }

    /// `align` and `range` (each a third of the time) on an unsigned value of at most
    /// `max`, at their extremes, for an argument or a struct field.
    fn constraints(&mut self, max: u64, parts: &mut Vec<String>) {
        let mut align = None;
        if self.rng.chance(1, 3) {
            let bits = 64 - max.leading_zeros();
            let a = 1u64 << self.rng.range(0, u64::from(bits) - 1);
            let a = if self.rng.chance(1, 4) {
                1u64 << (bits - 1)
            } else {
                a
            };
            align = Some(a);
            let lit = self.int(a);
            parts.push(format!("align = {lit}"));
        }
        if self.rng.chance(1, 3) {
            let a = self.value(max);
            let b = self.value(max);
            let (mut lo, hi) = (a.min(b), a.max(b));
            // Some value of the range meets the alignment, or every call would be refused
            // (the checker says so): 0 is a multiple of everything.
            if let Some(al) = align
                && lo.div_ceil(al).checked_mul(al).is_none_or(|m| m > hi)
            {
                lo = 0;
            }
            let lo = self.number(lo);
            let hi = self.number(hi);
            parts.push(format!("range = [{lo}, {hi}]"));
        }
    }

    /// The ring (when `ring` holds its slot's argument count) and the shared page;
    /// returns the page's field names.
    fn shared(&mut self, ring: Option<u64>) -> Vec<String> {
        // Ring size: fits the page with room for a few fields.
        let ring = ring.map(|args| {
            let slot = 8 * (1 + args);
            let most = (3072 / (slot + 1)).clamp(1, 4096);
            let size = match self.rng.below(4) {
                0 if self.allow("ring_size_1") => 1,
                1 => most,
                _ => self.rng.range(2, most.max(2)),
            };
            (size, args, slot)
        });
        if let Some((size, args, _)) = ring {
            let ready = self.rng.range(0, 255);
            let done = loop {
                let any = self.rng.range(0, 255);
                let d = *self.rng.pick(&[0, 0xff, 1, any]);
                if d != ready {
                    break d;
                }
            };
            self.line("\n[ring]");
            let d = self.opt_doc("doc");
            self.line(&d);
            let (s, a, r, dn) = (
                self.int(size),
                self.int(args),
                self.int(ready),
                self.int(done),
            );
            let _ = write!(
                self.out,
                "size = {s}\nargs = {a}\nready = {r}\ndone = {dn}\n"
            );
        }
        let name = loop {
            let name = self.name();
            if !reserved("shared", "", &camel(&name)) {
                break name;
            }
        };
        self.line("\n[shared]");
        let _ = writeln!(self.out, "name = {}", toml_str(&name));
        let d = self.opt_doc("doc");
        self.line(&d);
        let extra = self.rng.range(if ring.is_some() { 0 } else { 1 }, 8);
        let mut kinds: Vec<&str> = vec!["plain"; extra as usize];
        if ring.is_some() {
            kinds.push("ring.status");
            kinds.push("ring.slots");
        }
        self.rng.shuffle(&mut kinds);
        // Bytes (with alignment slack) the ring's fields still need.
        let mut ring_left = ring.map_or(0, |(size, _, slot)| size * (slot + 1) + 16);
        let mut fields = Vec::new();
        let mut taken = HashSet::new();
        let mut cur = 0u64;
        for k in kinds {
            let (ty, size, align, maxv) = match k {
                "ring.status" => {
                    let (n, _, _) = ring.expect("a ring");
                    ring_left -= n + 8;
                    ("ring.status".to_string(), n, 1, None)
                }
                "ring.slots" => {
                    let (n, _, slot) = ring.expect("a ring");
                    ring_left -= n * slot + 8;
                    ("ring.slots".to_string(), n * slot, 8, None)
                }
                _ => {
                    let (p, max) = *self.rng.pick(&PRIMS[..4]);
                    let sz = u64::from(max.count_ones()) / 8;
                    let room = 4096u64.saturating_sub(cur + ring_left + 8);
                    if room < sz {
                        continue;
                    }
                    if self.rng.chance(1, 3) && room >= 2 * sz {
                        let most = room / sz;
                        let n = if self.rng.chance(1, 8) {
                            most
                        } else {
                            self.rng.range(1, most.min(64))
                        };
                        (format!("[{p}; {n}]"), sz * n, sz, Some(max))
                    } else {
                        (p.to_string(), sz, sz, Some(max))
                    }
                }
            };
            let fname = self.fresh(&mut taken, |s| s.to_string());
            let at = cur.div_ceil(align) * align;
            cur = at + size;
            let writer = *self.rng.pick(&["guest", "host", "both"]);
            let mut parts = vec![
                format!("name = {}", toml_str(&fname)),
                format!("type = {}", toml_str(&ty)),
                format!("writer = \"{writer}\""),
            ];
            if self.rng.chance(1, 2) {
                let o = self.int(at);
                parts.push(format!("offset = {o}"));
            }
            if let Some(max) = maxv
                && self.rng.chance(1, 2)
            {
                let v = self.value(max);
                let v = self.number(v);
                parts.push(format!("init = {v}"));
            }
            if self.rng.chance(1, 2) {
                parts.push(format!("doc = {}", toml_str(&self.doc_text())));
            }
            self.rng.shuffle(&mut parts[1..]);
            self.line("\n[[shared.field]]");
            for p in parts {
                self.line(&p);
            }
            fields.push(fname);
        }
        assert!(cur.div_ceil(8) * 8 <= 4096, "the page fits: {cur}");
        fields
    }

    /// The templates; returns their names.
    fn templates(&mut self, fields: &[String]) -> Vec<String> {
        let n = self.rng.range(1, 4);
        let mut taken = HashSet::new();
        let mut names = Vec::new();
        for _ in 0..n {
            let name = loop {
                let name = self.fresh(&mut taken, camel);
                if !reserved("template", "", &upper(&name)) {
                    break name;
                }
            };
            self.line("\n[[template]]");
            let _ = writeln!(self.out, "name = {}", toml_str(&name));
            let d = self.opt_doc("doc");
            self.line(&d);
            self.line("forms = [");
            for _ in 0..self.rng.range(1, 3) {
                let asm = self.doc_text();
                let mut bytes = Vec::new();
                for _ in 0..self.rng.range(0, 12) {
                    let b = self.rng.below(256);
                    bytes.push(if self.rng.chance(1, 4) {
                        format!("{b:02X}")
                    } else {
                        format!("{b:02x}")
                    });
                }
                if !fields.is_empty() && self.rng.chance(2, 3) {
                    for _ in 0..self.rng.range(1, 2) {
                        let f = self.rng.pick(fields).clone();
                        let kind = *self.rng.pick(&["rel32", "abs32", "abs64"]);
                        let at = self.rng.range(0, bytes.len() as u64) as usize;
                        bytes.insert(at, format!("{{{kind}:{f}}}"));
                    }
                }
                if bytes.is_empty() {
                    bytes.push("90".into());
                }
                let sep = *self.rng.pick(&[" ", "  ", "\t", " \n "]);
                let text = bytes.join(sep);
                let _ = writeln!(
                    self.out,
                    "  {{ asm = {}, bytes = {} }},",
                    toml_str(&asm),
                    toml_str(&text)
                );
            }
            self.line("]");
            names.push(name);
        }
        names
    }

    fn pv_ops(&mut self, templates: &[String]) {
        let ntables = self.rng.range(1, 4);
        let mut taken = HashSet::new();
        let mut tables = Vec::new();
        for _ in 0..ntables {
            let name = loop {
                let name = self.fresh(&mut taken, camel);
                if !reserved("pv_table", "", &format!("{}Ops", camel(&name))) {
                    break name;
                }
            };
            // Most tables are declared; some are only named by their ops.
            if self.rng.chance(3, 4) {
                let _ = writeln!(self.out, "\n[pv_table.{name}]");
                let d = self.opt_doc("doc");
                self.line(&d);
            }
            tables.push(name);
        }
        let mut ids = HashSet::new();
        let mut per_table: Vec<HashSet<String>> = vec![HashSet::new(); tables.len()];
        let at_least_one = !self.allow("unpatched_tables") || !self.allow("empty_pv_ops");
        let nops = self.rng.range(0, 10).max(u64::from(at_least_one));
        for op in 0..nops {
            let ti = self.rng.below(tables.len() as u64) as usize;
            let table = tables[ti].clone();
            let name = loop {
                let n = self.name();
                if !per_table[ti].contains(&n)
                    && ids.insert(format!("{}{}", camel(&table), camel(&n)))
                {
                    per_table[ti].insert(n.clone());
                    break n;
                }
            };
            self.line("\n[[pv_op]]");
            let _ = writeln!(self.out, "table = {}", toml_str(&table));
            let _ = writeln!(self.out, "name = {}", toml_str(&name));
            let d = self.doc_text();
            let _ = writeln!(self.out, "doc = {}", toml_str(&d));
            let nargs = if self.allow("many_args") && self.rng.chance(1, 8) {
                self.rng.range(7, 10)
            } else if self.allow("complex_types") {
                self.rng.range(0, 4)
            } else {
                // Plain types in a fn pointer of 3 or more get clippy's type_complexity.
                self.rng.range(0, 1)
            };
            if nargs > 0 || self.rng.chance(1, 4) {
                let mut anames = HashSet::new();
                let mut list = Vec::new();
                for _ in 0..nargs {
                    let an = self.fresh(&mut anames, |s| s.trim_start_matches('_').to_string());
                    let ty = self.rust_type(false);
                    list.push(format!(
                        "{{ name = {}, type = {} }}",
                        toml_str(&an),
                        toml_str(&ty)
                    ));
                }
                let _ = writeln!(self.out, "args = [{}]", list.join(", "));
            }
            if self.rng.chance(1, 2) {
                let ty = if self.allow("never_type") && self.rng.chance(1, 10) {
                    "!".to_string()
                } else {
                    self.rust_type(true)
                };
                let _ = writeln!(self.out, "ret = {}", toml_str(&ty));
            }
            if self.rng.chance(1, 3) {
                self.line("callee_save = true");
            }
            let patch = !templates.is_empty()
                && (self.rng.chance(2, 3) || (op == 0 && !self.allow("unpatched_tables")));
            if patch {
                let t = self.rng.pick(templates).clone();
                let _ = writeln!(self.out, "template = {}", toml_str(&t));
            }
            if self.rng.chance(1, 3) {
                self.line("unsafe = true");
                let s = self.doc_text();
                let _ = writeln!(self.out, "safety = {}", toml_str(&s));
            } else if self.rng.chance(1, 10) {
                self.line("unsafe = false");
            }
        }
    }

    fn rust_type(&mut self, as_ret: bool) -> String {
        loop {
            let (t, ret_ok, feature) = *self.rng.pick(RUST_TYPES);
            if (as_ret && !ret_ok) || (!feature.is_empty() && !self.allow(feature)) {
                continue;
            }
            return t.to_string();
        }
    }
}

/// `LguestData` -> `lguest_data`, the inverse of [`camel`] for names without digits
/// after an underscore.
fn snake_of(camel_name: &str) -> String {
    let mut s = String::new();
    for (i, c) in camel_name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                s.push('_');
            }
            s.push(c.to_ascii_lowercase());
        } else {
            s.push(c);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every seed once, in seed order, whatever the threads did (a wrapping range too).
    #[test]
    fn by_seed_returns_each_seed_in_order() {
        let first = u64::MAX - 2;
        assert_eq!(
            by_seed(first, 7, |s| s),
            (0..7).map(|i| first.wrapping_add(i)).collect::<Vec<_>>()
        );
        assert!(by_seed(5, 0, |s| s).is_empty());
    }

    #[test]
    fn same_seed_same_spec() {
        let o = Options::default();
        for seed in 0..50 {
            assert_eq!(generate(seed, &o), generate(seed, &o));
        }
        assert_ne!(generate(1, &o), generate(2, &o));
    }

    /// The first few hundred seeds reach every section and the extremes the module doc
    /// promises: a generator that quietly stopped making one fails here.
    #[test]
    fn covers_every_section_and_extreme() {
        let o = Options::default();
        let all: Vec<String> = (0..400).map(|s| generate(s, &o)).collect();
        // `a|b`: either spelling (integers come in every TOML base).
        let has = |needle: &str| needle.split('|').any(|n| all.iter().any(|t| t.contains(n)));
        for needle in [
            "instruction = \"vmcall\"",
            "instruction = \"vmmcall\"",
            "instruction = \"out\"",
            "port = 0xffff|port = 65535|port = 0o177777",
            "args = []",
            "nr = \"rbx\"",
            "ret = \"rbx\"",
            "[consts]",
            "alias = \"bool\"",
            "repr = \"u64\"",
            "0xffffffffffffffff|0o1777777777777777777777",
            "lazy = true",
            "align = ",
            "range = [",
            " - ",
            " + ",
            "[ring]",
            "size = 1\n|size = 0x1\n|size = 0o1\n|size = 0b1\n",
            "args = 0\n|args = 0x0\n|args = 0o0\n|args = 0b0\n",
            "[shared]",
            "ring.status",
            "ring.slots",
            "offset = ",
            "init = ",
            "[[template]]",
            "{rel32:",
            "{abs32:",
            "{abs64:",
            "[pv_table.",
            "[[pv_op]]",
            "unsafe = true",
            "callee_save = true",
            "ret = \"!\"",
            "name = \"type\"",
            "name = \"self_\"",
            "name = \"new\"",
            "name = \"args\"",
            "name = \"option\"",
            "[struct.",
            "packed = true",
            "{ pad = ",
            "dir = \"inout\"",
            "dir = \"out\"",
            "type = \"&",
            "type = \"str\"",
            "utf8 = true",
            "at = \"",
            "addr = \"virtual\"",
            "len = \"",
            "type = \"i16\"",
            "; 2]|;2]| ; 2]",
            "instruction = \"mmio\"",
            "nr = \"address\"",
            "nr = \"port\"",
            "since = ",
            "results = [",
            "error = true",
            "ok = ",
            "name = \"from_bytes\"",
            "name = \"mem0\"",
            "name = \"scratch\"",
        ] {
            assert!(has(needle), "no spec of seeds 0..400 has {needle:?}");
        }
        // A u8 enum with all 256 values.
        assert!(all.iter().any(|t| t.matches("{ name = ").count() >= 256));
    }

    #[test]
    fn unknown_feature_is_refused() {
        let e = Options::avoiding("keywords,nope").unwrap_err();
        assert!(e.contains("`nope`"), "{e}");
        assert!(Options::avoiding("keywords, full_u8_enum").is_ok());
    }

    #[test]
    fn toml_strings_round_trip() {
        for s in DOC_PIECES {
            let doc = format!("x = {}", toml_str(s));
            let t: toml::Table = doc.parse().expect("valid TOML");
            assert_eq!(t["x"].as_str(), Some(*s));
        }
    }
}
