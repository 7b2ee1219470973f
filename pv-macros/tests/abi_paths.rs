//! `pv_macros::abi!` and the build.rs path (`codegen::Config::compile` + `include!`)
//! generate the same items.
//!
//! Two checks. The token-level one compares the build.rs file with `codegen::tokens`, the
//! function `abi!` calls. The behavioural one instantiates both modules (the real
//! `abi!` expansion and the real `include!`) and compares everything observable through
//! them: every const with its type, every hypercall's and pv_op's metadata, the shared
//! page, every template, `patch` on every op over a grid of sites, both `dispatch`es on
//! a table of valid and invalid calls built from the spec's constraints, the guest's
//! typed and lazy wrappers over a recording transport, and the wiring of the pv_op
//! tables. The items are listed by `build.rs` from the build.rs output
//! (`$OUT_DIR/observe.rs`), so a new item is compared without touching this file and an
//! item `abi!` fails to emit does not compile.
//!
//! Not compared by behaviour, only as tokens: doc comments; the `Vmcall` and `Pio`
//! transports (their `hypercall` executes `vmcall`/`out`, which fault outside a guest);
//! what the pv_op traits' functions do (they are declarations: an implementation
//! supplies them) beyond their signatures and the tables' wiring; unsafe methods of the
//! guest traits (none today: `build.rs` skips them rather than invent a caller's
//! guarantees).

use std::cell::RefCell;
use std::fmt::Debug;

use proc_macro2::TokenStream;

/// One observation: what was looked at, and its type and `Debug` value.
type Seen = (String, String);

/// A type's name without the module that generated it, so the same type from either
/// path has the same name.
fn type_name<T: ?Sized>() -> String {
    std::any::type_name::<T>()
        .replace("by_macro::", "")
        .replace("by_build::", "")
}

fn type_of<T: ?Sized>(_: &T) -> String {
    type_name::<T>()
}

/// `label` with `value`'s type and `Debug` form.
fn seen<T: Debug + ?Sized>(label: &str, value: &T) -> Seen {
    (
        label.to_string(),
        format!("{}: {value:?}", type_name::<T>()),
    )
}

/// A handler or pv_op argument as recorded.
fn arg<T: Debug>(value: &T) -> String {
    format!("{}: {value:?}", type_name::<T>())
}

/// Argument values for the generated wrappers, varied by `seed`.
trait Pick {
    fn pick(seed: u64) -> Self;
}

/// Values that sit on the edges the spec's checks care about.
const EDGES: [u64; 8] = [0, 1, 0x1000, 0xfff, 0xffff_ffff, 0x1_0000_0000, 8, u64::MAX];

impl Pick for u64 {
    fn pick(seed: u64) -> u64 {
        EDGES[(seed % EDGES.len() as u64) as usize] ^ (seed / EDGES.len() as u64)
    }
}

macro_rules! pick_narrow {
    ($($t:ty),*) => {$(
        impl Pick for $t {
            fn pick(seed: u64) -> $t {
                u64::pick(seed) as $t
            }
        }
    )*};
}
pick_narrow!(u8, u16, u32, usize);

impl Pick for bool {
    fn pick(seed: u64) -> bool {
        seed % 2 == 1
    }
}

impl Pick for () {
    fn pick(_: u64) {}
}

impl<T: Pick, const N: usize> Pick for [T; N] {
    fn pick(seed: u64) -> [T; N] {
        std::array::from_fn(|i| T::pick(seed.wrapping_add(i as u64)))
    }
}

/// Arrays the wrappers borrow (a fixed-length buffer in guest memory): leaked, and
/// registered under an address made from the seed, so both paths' wrappers translate
/// their own copies to the same guest address (see [`lent_pa`]).
impl<T: Pick + 'static, const N: usize> Pick for &'static [T; N] {
    fn pick(seed: u64) -> Self {
        let a: &'static [T; N] = Box::leak(Box::new(<[T; N]>::pick(seed)));
        let start = a.as_ptr() as usize;
        let len = std::mem::size_of::<[T; N]>();
        let canon = 0x7000_0000u64.wrapping_add(seed.wrapping_mul(0x1000));
        LENT.lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((start, len, canon));
        a
    }
}

/// Arrays handed out by `Pick`: start, length, and the address both paths agree on.
static LENT: std::sync::Mutex<Vec<(usize, usize, u64)>> = std::sync::Mutex::new(Vec::new());

/// The agreed address of a pointer into an array `Pick` lent, if it is one.
fn lent_pa(va: *const u8) -> Option<u64> {
    let va = va as usize;
    let lent = LENT.lock().unwrap_or_else(|e| e.into_inner());
    lent.iter()
        .rev()
        .find(|(start, len, _)| va >= *start && va - *start < (*len).max(1))
        .map(|(start, _, canon)| canon + (va - start) as u64)
}

/// Addresses for `Translate::pa` (only compared, never dereferenced).
impl Pick for *const u8 {
    fn pick(seed: u64) -> *const u8 {
        std::ptr::without_provenance(u64::pick(seed) as usize)
    }
}

/// Strings for the wrappers' string arguments.
const CSTRS: [&std::ffi::CStr; 3] = [c"", c"Power down", c"0123456789abcdefXYZ"];

impl Pick for &'static std::ffi::CStr {
    fn pick(seed: u64) -> Self {
        CSTRS[(seed % CSTRS.len() as u64) as usize]
    }
}

impl Pick for &'static [u8] {
    fn pick(seed: u64) -> Self {
        <&std::ffi::CStr>::pick(seed).to_bytes()
    }
}

impl Pick for &'static mut [u8] {
    fn pick(seed: u64) -> Self {
        Box::leak(vec![0; (seed % 17) as usize].into_boxed_slice())
    }
}

/// A host handler that records every call, and refuses every fifth one so the
/// `DispatchError::Host` path is compared too.
#[derive(Default)]
struct Recorder {
    calls: Vec<String>,
}

#[derive(Debug)]
struct Refused(usize);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "refused call {}", self.0)
    }
}

impl Recorder {
    fn record<R: Pick>(&mut self, op: &str, args: Vec<String>) -> Result<R, Refused> {
        self.calls.push(format!("{op}({})", args.join(", ")));
        let n = self.calls.len();
        if n.is_multiple_of(5) {
            Err(Refused(n))
        } else {
            Ok(R::pick(n as u64))
        }
    }
}

/// A guest transport that records every hypercall instead of trapping.
#[derive(Default)]
struct Wire {
    sent: RefCell<Vec<String>>,
}

impl Wire {
    fn send(&self, nr: u64, args: &[u64]) -> u64 {
        self.sent.borrow_mut().push(format!("{nr:#x} {args:x?}"));
        nr ^ 0x5a5a
    }
}

/// Implements the pv_op traits (by `build.rs`) with bodies that only name the op: the
/// tables' wiring is checked by address, never by calling.
struct Probe;

fn never(op: &str) -> ! {
    panic!("{op}: the probe's ops are compared by address, never called")
}

/// What both modules get besides `$OUT_DIR/observe.rs`: the observations that need
/// hand-written code, with `super::` the generated ABI.
macro_rules! observe_by_hand {
    () => {
        use super::{guest, host, lazy, numbers, patch, pv_ops, shared};
        use crate::{Seen, seen};

        /// The guest's pointers as addresses: a direct map.
        pub struct Xlate;

        impl guest::Translate for Xlate {
            fn pa(&self, va: *const u8) -> u64 {
                crate::lent_pa(va).unwrap_or((va as u64).wrapping_sub(0xffff_8000_0000_0000))
            }
        }

        impl crate::Pick for &'static dyn guest::Translate {
            fn pick(_: u64) -> Self {
                &Xlate
            }
        }

        /// Guest memory of zeros everywhere: every string argument is empty.
        pub struct Zeros;

        impl host::GuestMemory for Zeros {
            fn read(&self, _gpa: u64, buf: &mut [u8]) -> Result<(), host::OutsideMemory> {
                buf.fill(0);
                Ok(())
            }
            fn write(&self, _gpa: u64, _buf: &[u8]) -> Result<(), host::OutsideMemory> {
                Ok(())
            }
            fn contains(&self, _gpa: u64, _len: u64) -> bool {
                true
            }
        }

        impl guest::Transport for crate::Wire {
            fn hypercall(&self, nr: u64, args: [u64; numbers::ARG_REGS]) -> u64 {
                self.send(nr, &args)
            }
        }

        fn regs<const N: usize>(v: &[u64]) -> [u64; N] {
            std::array::from_fn(|i| v.get(i).copied().unwrap_or(0))
        }

        /// Everything observable, in a fixed order; `calls` are the dispatch inputs.
        pub fn all(calls: &[(u64, Vec<u64>)]) -> Vec<Seen> {
            let mut out = consts();
            out.extend(enums());
            out.extend(hypercalls());
            out.extend(shared_page());
            out.extend(ops_and_templates());
            out.extend(patching());
            out.extend(dispatching(calls));
            out.extend(guest_side());
            out.extend(table_wiring());
            out
        }

        fn hypercalls() -> Vec<Seen> {
            use numbers::Hypercall;
            let mut out = Vec::new();
            for h in Hypercall::ALL {
                out.push(seen(
                    &format!("Hypercall::{h:?}"),
                    &(
                        h.nr(),
                        h.name(),
                        h.arg_count(),
                        h.arg_names(),
                        h.is_lazy(),
                        h.returns_value(),
                        h.to_string(),
                        Hypercall::try_from(h.nr()),
                    ),
                ));
                // A number whose low 32 bits name a call names nothing.
                let wide = h.nr() | 1 << 32;
                let r = Hypercall::try_from(wide);
                out.push(seen(
                    &format!("Hypercall::try_from({wide:#x})"),
                    &(r, r.map_err(|e| e.to_string())),
                ));
            }
            let max = Hypercall::ALL.iter().map(|h| h.nr()).max().unwrap_or(0);
            for nr in (0..=max + 2).chain([u64::MAX]) {
                let r = Hypercall::try_from(nr);
                out.push(seen(
                    &format!("Hypercall::try_from({nr})"),
                    &(r, r.map_err(|e| e.to_string())),
                ));
            }
            out
        }

        fn shared_page() -> Vec<Seen> {
            use shared::{LguestData, RingSlot};
            let mut out = Vec::new();
            for f in LguestData::FIELDS {
                out.push(seen(
                    &format!("LguestData::FIELDS {}", f.name),
                    &(f.name, f.offset, f.size, f.writer),
                ));
            }
            // Every field's initial value, atomics included.
            out.push(seen("LguestData::new()", &LguestData::new()));
            out.push(seen("LguestData::default()", &LguestData::default()));
            out.push(seen("RingSlot::new()", &RingSlot::new()));
            out.push(seen(
                "size_of LguestData, RingSlot",
                &(
                    std::mem::size_of::<LguestData>(),
                    std::mem::size_of::<RingSlot>(),
                ),
            ));
            out
        }

        fn ops_and_templates() -> Vec<Seen> {
            use pv_ops::PvOpId;
            let mut out = Vec::new();
            for op in PvOpId::ALL {
                out.push(seen(
                    &format!("PvOpId::{op:?}"),
                    &(
                        op.table(),
                        op.name(),
                        op.callee_save(),
                        op.template(),
                        op.id(),
                        PvOpId::from_id(op.id()),
                        patch::template_for(op),
                        patch::site_len(op),
                    ),
                ));
            }
            let n = PvOpId::ALL.len() as u16;
            for id in (n..n + 3).chain([u16::MAX]) {
                out.push(seen(
                    &format!("PvOpId::from_id({id})"),
                    &PvOpId::from_id(id),
                ));
            }
            for t in patch::TEMPLATES {
                out.push(seen(
                    &format!("template {}", t.name),
                    &(t.name, t.doc, t.site_len, t.forms.len()),
                ));
                for (i, f) in t.forms.iter().enumerate() {
                    out.push(seen(
                        &format!("template {} form {i}", t.name),
                        &(f.asm, f.bytes, f.relocs),
                    ));
                }
            }
            out
        }

        /// `patch` for every op into sites of every length up to one past the longest
        /// template, at addresses where both forms, one, or neither can reach the page.
        fn patching() -> Vec<Seen> {
            const PLACES: [(u64, u64); 5] = [
                (0xffff_ffff_8100_0000, 0xffff_ffff_8200_0000),
                (0x7f00_0000_0000, 0x7f00_0010_0000),
                (0x10_0000_0000, 0x1000),
                (0x1000, 0x7f00_0000_0000),
                (0, u64::MAX - 8),
            ];
            let mut out = Vec::new();
            for op in pv_ops::PvOpId::ALL {
                for len in 0..=patch::MAX_TEMPLATE_LEN + 1 {
                    for (site_addr, page) in PLACES {
                        let mut site = vec![0xcc_u8; len];
                        let r = patch::patch(op, &mut site, site_addr, page);
                        out.push(seen(
                            &format!("patch({op:?}, [u8; {len}], {site_addr:#x}, {page:#x})"),
                            &(r, site),
                        ));
                    }
                }
            }
            out
        }

        fn dispatching(calls: &[(u64, Vec<u64>)]) -> Vec<Seen> {
            let mut host = crate::Recorder::default();
            let mut scratch = Box::<host::Scratch>::default();
            let mut out = Vec::new();
            for (nr, args) in calls {
                let r = host::dispatch(&mut host, &Zeros, &mut scratch, *nr, regs(args));
                let shown = r.as_ref().map_err(|e| e.to_string());
                out.push(seen(&format!("dispatch({nr:#x}, {args:x?})"), &(&r, shown)));
                let r = host::dispatch_slot(&mut host, &Zeros, &mut scratch, *nr, regs(args));
                out.push(seen(&format!("dispatch_slot({nr:#x}, {args:x?})"), &r));
            }
            out.push(seen("handler calls", &host.calls));
            out
        }

        fn guest_side() -> Vec<Seen> {
            let mut out = Vec::new();
            for seed in 0..4 {
                let wire = crate::Wire::default();
                out.extend(call_lguest_hypercalls(&wire, seed));
                out.push(seen(&format!("sent (seed {seed})"), &wire.sent));
            }
            // Lazy: direct calls, then queued ones until the ring is full and the calls
            // go direct again.
            let wire = crate::Wire::default();
            let page = shared::LguestData::new();
            let cursor = lazy::RingCursor::new();
            for is_lazy in [false, true] {
                let batch = lazy::Batch {
                    transport: &wire,
                    page: &page,
                    cursor: &cursor,
                    lazy: is_lazy,
                };
                let mut seed = 0;
                let mut made = 0;
                while made <= shared::RING_SIZE + 1 {
                    let round = call_lguest_lazy_hypercalls(&batch, seed);
                    assert!(!round.is_empty(), "the spec has lazy hypercalls");
                    made += round.len();
                    out.extend(round);
                    seed += 1;
                }
                out.push(seen(
                    &format!("ring (lazy {is_lazy})"),
                    &(&page, cursor.slot()),
                ));
            }
            out.push(seen("sent by the lazy calls", &wire.sent));
            out
        }
    };
}

/// The macro path.
#[allow(dead_code)]
mod by_macro {
    pv_macros::abi!("../spec/lguest.toml");

    pub mod observe {
        include!(concat!(env!("OUT_DIR"), "/observe.rs"));
        observe_by_hand!();
    }
}

/// The build.rs path: pv-macros' own build script ran `Config::compile` on the same spec.
#[allow(dead_code)]
mod by_build {
    include!(concat!(env!("OUT_DIR"), "/lguest.rs"));

    pub mod observe {
        include!(concat!(env!("OUT_DIR"), "/observe.rs"));
        observe_by_hand!();
    }
}

/// The spec as the macro reads it: the same path, relative to the manifest.
fn spec() -> codegen::Spec {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../spec/lguest.toml");
    let src = std::fs::read_to_string(path).unwrap();
    codegen::load("../spec/lguest.toml", &src).unwrap()
}

/// The items printed one canonical way: comments are gone (they are not tokens), docs
/// are attributes again, and layout is prettyplease's on both sides.
fn printed(tokens: TokenStream) -> String {
    let file: syn::File = syn::parse2(tokens).expect("generated code parses");
    prettyplease::unparse(&file)
}

#[test]
fn build_rs_output_and_macro_tokens_are_the_same_items() {
    let built = std::fs::read_to_string(concat!(env!("OUT_DIR"), "/lguest.rs")).unwrap();
    let from_build: TokenStream = built.parse().expect("build.rs output lexes");
    let (a, b) = (printed(from_build), printed(codegen::tokens(&spec())));
    assert!(
        a.contains("pub trait IrqOps {"),
        "the comparison sees the items"
    );
    assert!(
        a.contains("/// Op `irq.save_fl`. Callee-save"),
        "and their docs"
    );
    if let Some((i, (x, y))) = a
        .lines()
        .zip(b.lines())
        .enumerate()
        .find(|(_, (x, y))| x != y)
    {
        panic!("line {} differs:\nbuild.rs: {x}\nabi!:     {y}", i + 1);
    }
    assert_eq!(a.lines().count(), b.lines().count());
}

/// Calls for `dispatch`: for every hypercall, every combination of values on the edges
/// of each argument's constraints (alignment, range, enum values, the width of its type),
/// and numbers that name no hypercall.
fn dispatch_inputs(spec: &codegen::Spec) -> Vec<(u64, Vec<u64>)> {
    use codegen::spec::{ArgType, Prim, TypeKind};
    let width_edges = |p: &Prim| match p {
        Prim::U8 => vec![0xff, 0x100],
        Prim::U16 => vec![0xffff, 0x1_0000],
        Prim::U32 => vec![0xffff_ffff, 0x1_0000_0000],
        Prim::Bool => vec![0, 1, 2],
        Prim::U64 => vec![],
    };
    let mut calls = Vec::new();
    for h in &spec.hypercalls {
        let per_arg: Vec<Vec<u64>> = h
            .args
            .iter()
            .map(|a| {
                let mut v = vec![0, 1, u64::MAX];
                if let Some(al) = a.align {
                    v.extend([al, 3 * al, al - 1, al + 1]);
                }
                if let Some((lo, hi)) = a.range {
                    v.extend([lo, hi, lo.wrapping_sub(1), hi.wrapping_add(1)]);
                }
                match &a.ty {
                    ArgType::Prim(p) => v.extend(width_edges(p)),
                    ArgType::Named(i) => match &spec.types[*i].kind {
                        TypeKind::Alias(p) => v.extend(width_edges(p)),
                        TypeKind::Enum { variants, .. } => {
                            v.extend(variants.iter().map(|x| x.value));
                            let max = variants.iter().map(|x| x.value).max().unwrap_or(0);
                            v.push(max + 1);
                        }
                    },
                }
                v.sort_unstable();
                v.dedup();
                v
            })
            .collect();
        let mut combos: Vec<Vec<u64>> = vec![vec![]];
        for values in &per_arg {
            combos = combos
                .iter()
                .flat_map(|c| {
                    values.iter().map(move |x| {
                        let mut c = c.clone();
                        c.push(*x);
                        c
                    })
                })
                .collect();
        }
        // Registers past the call's arguments hold junk: dispatch must ignore it.
        let junk: Vec<u64> = combos[0].iter().copied().chain([u64::MAX; 8]).collect();
        calls.extend(combos.into_iter().map(|c| (h.nr.v, c)));
        calls.push((h.nr.v, junk));
        calls.push((h.nr.v | 1 << 32, vec![]));
    }
    let used: Vec<u64> = spec.hypercalls.iter().map(|h| h.nr.v).collect();
    let max = used.iter().copied().max().unwrap_or(0);
    for nr in (0..=max + 2).chain([u64::MAX]) {
        if !used.contains(&nr) {
            calls.push((nr, vec![1, 2, 3, 4]));
        }
    }
    calls
}

#[test]
fn both_paths_behave_the_same() {
    let spec = spec();
    let calls = dispatch_inputs(&spec);
    let by_macro = by_macro::observe::all(&calls);
    let by_build = by_build::observe::all(&calls);
    for (i, (m, b)) in by_macro.iter().zip(&by_build).enumerate() {
        assert_eq!(
            m, b,
            "observation {i} differs (left: abi!, right: build.rs)"
        );
    }
    assert_eq!(by_macro.len(), by_build.len(), "as many observations");

    // The comparison covered what it claims: the build.rs walk found the items, and the
    // dispatch table reached every outcome.
    let labels: Vec<&str> = by_build.iter().map(|(l, _)| l.as_str()).collect();
    let value = |label: &str| by_build.iter().find(|(l, _)| l == label).map(|(_, v)| v);
    let upper = codegen::names::upper;
    for h in &spec.hypercalls {
        let name = format!("numbers::{}", upper(&h.name.v));
        assert!(labels.contains(&name.as_str()), "{name} compared");
        let outcomes: Vec<&String> = by_build
            .iter()
            .filter(|(l, _)| l.starts_with(&format!("dispatch({:#x}, ", h.nr.v)))
            .map(|(_, v)| v)
            .collect();
        assert!(
            outcomes.iter().any(|v| v.contains(": (Ok(")),
            "a valid call of {}",
            h.name.v
        );
        if h.args
            .iter()
            .any(|a| a.align.is_some() || a.range.is_some())
        {
            assert!(
                outcomes.iter().any(|v| v.contains("Err(BadArgument(")),
                "an invalid call of {}",
                h.name.v
            );
        }
    }
    assert!(
        by_build
            .iter()
            .any(|(_, v)| v.contains("Err(Host(Refused("))
    );
    assert!(
        by_build
            .iter()
            .any(|(_, v)| v.contains("Err(UnknownHypercall {"))
    );
    for f in spec.shared.iter().flat_map(|s| &s.fields) {
        let name = format!("shared::LguestData::{}_OFFSET", upper(&f.name.v));
        assert!(labels.contains(&name.as_str()), "{name} compared");
    }
    for t in &spec.templates {
        let name = format!("patch::{}", upper(&t.name.v));
        assert!(labels.contains(&name.as_str()), "{name} compared");
    }
    assert!(
        by_build
            .iter()
            .any(|(l, v)| l.starts_with("patch(") && v.contains("(Some(")),
        "some patch applied"
    );
    let ops: usize = spec.pv_tables.iter().map(|t| t.ops.len()).sum();
    let wiring: Vec<&Seen> = by_build
        .iter()
        .filter(|(l, _)| l.starts_with("pv_ops::PvOps::of::<Probe>()"))
        .collect();
    assert_eq!(wiring.len(), ops, "every op's table entry compared");
    for (l, v) in wiring {
        assert!(v.ends_with(", true)"), "{l} is its trait function: {v}");
    }
    assert!(
        value("sent by the lazy calls").is_some_and(|v| v.contains("0x")),
        "the lazy calls went out"
    );
}
