//! Property test of the breaking-change check: a random valid spec, edited at random in a
//! way whose class is known (compatible, additive or breaking), is classified that way.
//!
//! Specs come from a small model (consts, an enum and an alias, hypercalls with every
//! argument type and constraint, a shared page) built from a seed; a failure prints the
//! seed, the edit and both specs.

use std::sync::LazyLock;

use codegen::lock::{Class, Facts, Report};
use proptest::prelude::*;

/// xorshift64*: the model is built from one seed, so a failure reproduces from it.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, pct: u64) -> bool {
        self.below(100) < pct
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ty {
    U8,
    U16,
    U32,
    U64,
    Bool,
    Gpa,
    Kind,
}

impl Ty {
    const ALL: [Ty; 7] = [
        Ty::U8,
        Ty::U16,
        Ty::U32,
        Ty::U64,
        Ty::Bool,
        Ty::Gpa,
        Ty::Kind,
    ];
    fn name(self) -> &'static str {
        match self {
            Ty::U8 => "u8",
            Ty::U16 => "u16",
            Ty::U32 => "u32",
            Ty::U64 => "u64",
            Ty::Bool => "bool",
            Ty::Gpa => "gpa",
            Ty::Kind => "kind",
        }
    }
    fn max(self) -> u64 {
        match self {
            Ty::U8 => 0xff,
            Ty::U16 => 0xffff,
            Ty::U32 => 0xffff_ffff,
            Ty::U64 | Ty::Gpa => u64::MAX,
            Ty::Bool | Ty::Kind => 1,
        }
    }
    /// Integers and aliases take `range` and `align`.
    fn constrained(self) -> bool {
        !matches!(self, Ty::Bool | Ty::Kind)
    }
    /// The largest alignment a value of the type can have.
    fn max_align(self) -> u64 {
        match self {
            Ty::U8 => 1 << 7,
            Ty::U16 => 1 << 15,
            _ => 1 << 20,
        }
    }
    /// Bits on the wire, for "is this a different width".
    fn wire(self) -> Ty {
        if self == Ty::Gpa { Ty::U64 } else { self }
    }
}

#[derive(Clone, Debug)]
struct Arg {
    name: String,
    ty: Ty,
    range: Option<(u64, u64)>,
    align: Option<u64>,
}

#[derive(Clone, Debug)]
struct Call {
    name: String,
    nr: u64,
    ret: bool,
    args: Vec<Arg>,
}

#[derive(Clone, Debug)]
struct Model {
    doc: String,
    consts: Vec<(String, u64)>,
    variants: Vec<(String, u64)>,
    calls: Vec<Call>,
    fields: Vec<(String, Ty)>,
    regs: Vec<&'static str>,
    fresh: u64,
}

const REGS: [&str; 4] = ["rbx", "rcx", "rdx", "rsi"];

impl Model {
    fn fresh(&mut self, prefix: &str) -> String {
        self.fresh += 1;
        format!("{prefix}_{}", self.fresh)
    }

    fn random_arg(&mut self, rng: &mut Rng) -> Arg {
        let ty = Ty::ALL[rng.below(7) as usize];
        let mut a = Arg {
            name: self.fresh("arg"),
            ty,
            range: None,
            align: None,
        };
        if ty.constrained() {
            if rng.chance(40) {
                let lo = rng.below(16);
                let hi = lo + rng.below(ty.max().min(1 << 20) - lo);
                a.range = Some((lo, hi));
            }
            if a.range.is_none() && rng.chance(30) {
                a.align = Some((1 << rng.below(12)).min(ty.max_align()));
            }
        }
        a
    }

    fn unused_nr(&self, rng: &mut Rng) -> u64 {
        loop {
            let n = rng.below(64);
            if !self.calls.iter().any(|c| c.nr == n) {
                return n;
            }
        }
    }

    fn random(seed: u64) -> Model {
        let mut rng = Rng(seed | 1);
        let mut m = Model {
            doc: "A random ABI.".into(),
            consts: Vec::new(),
            variants: Vec::new(),
            calls: Vec::new(),
            fields: Vec::new(),
            regs: REGS.to_vec(),
            fresh: 0,
        };
        for _ in 0..rng.below(3) {
            let n = m.fresh("k");
            m.consts.push((n, rng.below(1000)));
        }
        for v in 0..1 + rng.below(4) {
            let n = m.fresh("v");
            m.variants.push((n, v * 3 + rng.below(3)));
        }
        for _ in 0..1 + rng.below(5) {
            let nr = m.unused_nr(&mut rng);
            let name = m.fresh("call");
            let mut c = Call {
                name,
                nr,
                ret: rng.chance(50),
                args: Vec::new(),
            };
            for _ in 0..rng.below(5) {
                c.args.push(m.random_arg(&mut rng));
            }
            m.calls.push(c);
        }
        for _ in 0..1 + rng.below(4) {
            let ty = [Ty::U8, Ty::U16, Ty::U32, Ty::U64][rng.below(4) as usize];
            let n = m.fresh("f");
            m.fields.push((n, ty));
        }
        m
    }

    fn toml(&self) -> String {
        let mut s = format!(
            "[abi]\nname = \"rand\"\nversion = 1\ndoc = \"{}\"\n\n[abi.transport.vmcall]\ninstruction = \"vmcall\"\nnr = \"rax\"\nargs = [{}]\nret = \"rax\"\n\n",
            self.doc,
            self.regs
                .iter()
                .map(|r| format!("\"{r}\""))
                .collect::<Vec<_>>()
                .join(", ")
        );
        if !self.consts.is_empty() {
            s.push_str("[consts]\n");
            for (n, v) in &self.consts {
                s.push_str(&format!("{n} = {v}\n"));
            }
            s.push('\n');
        }
        s.push_str("[types.gpa]\nalias = \"u64\"\ndoc = \"An address.\"\n\n[types.kind]\nrepr = \"u8\"\ndoc = \"A kind.\"\nvariants = [\n");
        for (n, v) in &self.variants {
            s.push_str(&format!("  {{ name = \"{n}\", value = {v} }},\n"));
        }
        s.push_str("]\n\n");
        for c in &self.calls {
            s.push_str(&format!(
                "[[hypercall]]\nname = \"{}\"\nnr = {}\ndoc = \"{} {}\"\n",
                c.name, c.nr, self.doc, c.name
            ));
            if c.ret {
                s.push_str("ret = \"a value.\"\n");
            }
            let args: Vec<String> = c
                .args
                .iter()
                .map(|a| {
                    let mut t = format!("{{ name = \"{}\", type = \"{}\"", a.name, a.ty.name());
                    if let Some((lo, hi)) = a.range {
                        t.push_str(&format!(", range = [{lo}, {hi}]"));
                    }
                    if let Some(al) = a.align {
                        t.push_str(&format!(", align = {al}"));
                    }
                    t + " }"
                })
                .collect();
            if !args.is_empty() {
                s.push_str(&format!("args = [{}]\n", args.join(", ")));
            }
            s.push('\n');
        }
        s.push_str("[shared]\nname = \"page\"\n\n");
        for (n, t) in &self.fields {
            s.push_str(&format!(
                "[[shared.field]]\nname = \"{n}\"\ntype = \"{}\"\nwriter = \"both\"\n\n",
                t.name()
            ));
        }
        s
    }
}

/// The edits, by the class they must get.
const COMPATIBLE: &[&str] = &[
    "doc",
    "reorder calls",
    "rename call",
    "rename arg",
    "add const",
    "alias to u64",
];
const ADDITIVE: &[&str] = &[
    "add call",
    "relax range",
    "relax align",
    "add variant",
    "add ret",
];
const BREAKING: &[&str] = &[
    "renumber",
    "remove call",
    "add arg",
    "remove arg",
    "retype arg",
    "tighten range",
    "tighten align",
    "remove variant",
    "change variant",
    "change const",
    "move field",
    "change register",
    "remove ret",
];

/// Applies `edit`, or `None` where the model has nothing it applies to.
fn apply(m: &Model, edit: &str, rng: &mut Rng) -> Option<Model> {
    let mut m = m.clone();
    let nc = m.calls.len() as u64;
    let pick = |rng: &mut Rng, n: usize| rng.below(n as u64) as usize;
    // A call and an argument of it matching `want`.
    let arg_where = |m: &Model, rng: &mut Rng, want: &dyn Fn(&Arg) -> bool| {
        let all: Vec<(usize, usize)> = m
            .calls
            .iter()
            .enumerate()
            .flat_map(|(i, c)| {
                c.args
                    .iter()
                    .enumerate()
                    .filter(|(_, a)| want(a))
                    .map(move |(j, _)| (i, j))
            })
            .collect();
        (!all.is_empty()).then(|| all[rng.below(all.len() as u64) as usize])
    };
    match edit {
        "doc" => m.doc = "Another description, longer than the first.".into(),
        "reorder calls" => {
            if nc < 2 {
                return None;
            }
            let by = 1 + pick(rng, m.calls.len() - 1);
            m.calls.rotate_left(by);
        }
        "rename call" => {
            let i = pick(rng, m.calls.len());
            m.calls[i].name = m.fresh("renamed");
        }
        "rename arg" => {
            let (i, j) = arg_where(&m, rng, &|_| true)?;
            m.calls[i].args[j].name = m.fresh("renamed");
        }
        "add const" => {
            let n = m.fresh("k");
            m.consts.push((n, 7));
        }
        "alias to u64" => {
            let (i, j) = arg_where(&m, rng, &|a| a.ty == Ty::Gpa)?;
            m.calls[i].args[j].ty = Ty::U64;
        }
        "add call" => {
            let nr = m.unused_nr(rng);
            let name = m.fresh("new");
            let at = pick(rng, m.calls.len() + 1);
            m.calls.insert(
                at,
                Call {
                    name,
                    nr,
                    ret: false,
                    args: Vec::new(),
                },
            );
        }
        "relax range" => {
            let (i, j) = arg_where(&m, rng, &|a| {
                a.range.is_some_and(|(lo, hi)| lo > 0 || hi < a.ty.max())
            })?;
            let a = &mut m.calls[i].args[j];
            let (lo, hi) = a.range.expect("a range");
            a.range = if rng.chance(30) {
                None
            } else if lo > 0 {
                Some((lo - 1, hi))
            } else {
                Some((lo, hi + 1))
            };
        }
        "relax align" => {
            let (i, j) = arg_where(&m, rng, &|a| a.align.is_some_and(|al| al > 1))?;
            let a = &mut m.calls[i].args[j];
            a.align = if rng.chance(30) {
                None
            } else {
                a.align.map(|al| al / 2)
            };
        }
        "add variant" => {
            let v = m.variants.iter().map(|(_, v)| *v).max().unwrap_or(0) + 1;
            if v > 255 {
                return None;
            }
            let n = m.fresh("v");
            m.variants.push((n, v));
        }
        "add ret" => {
            let i = m.calls.iter().position(|c| !c.ret)?;
            m.calls[i].ret = true;
        }
        "renumber" => {
            let i = pick(rng, m.calls.len());
            m.calls[i].nr = m.unused_nr(rng);
        }
        "remove call" => {
            if nc < 2 {
                return None;
            }
            m.calls.remove(pick(rng, m.calls.len()));
        }
        "add arg" => {
            let i = m.calls.iter().position(|c| c.args.len() < REGS.len())?;
            let a = m.random_arg(rng);
            m.calls[i].args.push(a);
        }
        "remove arg" => {
            let (i, j) = arg_where(&m, rng, &|_| true)?;
            m.calls[i].args.remove(j);
        }
        "retype arg" => {
            let (i, j) = arg_where(&m, rng, &|a| a.ty != Ty::Kind)?;
            let a = &mut m.calls[i].args[j];
            let others: Vec<Ty> = [Ty::U8, Ty::U16, Ty::U32, Ty::U64, Ty::Bool]
                .into_iter()
                .filter(|t| *t != a.ty.wire())
                .collect();
            a.ty = others[rng.below(others.len() as u64) as usize];
            if !a.ty.constrained() {
                a.range = None;
                a.align = None;
            }
            if let Some((lo, hi)) = a.range {
                a.range = Some((lo.min(a.ty.max()), hi.min(a.ty.max())));
            }
            a.align = a.align.filter(|al| *al <= a.ty.max_align());
        }
        "tighten range" => {
            let (i, j) = arg_where(&m, rng, &|a| {
                a.ty.constrained() && a.range.is_none_or(|(lo, hi)| hi > lo)
            })?;
            let a = &mut m.calls[i].args[j];
            a.range = Some(match a.range {
                Some((lo, hi)) => {
                    if rng.chance(50) {
                        (lo + 1, hi)
                    } else {
                        (lo, hi - 1)
                    }
                }
                None => (0, a.ty.max() - 1),
            });
        }
        "tighten align" => {
            let (i, j) = arg_where(&m, rng, &|a| {
                a.ty.constrained() && a.align.is_none_or(|al| al < a.ty.max_align())
            })?;
            let a = &mut m.calls[i].args[j];
            a.align = Some(a.align.map_or(2, |al| al * 2));
        }
        "remove variant" => {
            if m.variants.len() < 2 {
                return None;
            }
            m.variants.remove(pick(rng, m.variants.len()));
        }
        "change variant" => {
            let i = pick(rng, m.variants.len());
            let v = m.variants.iter().map(|(_, v)| *v).max().unwrap_or(0) + 1;
            if v > 255 {
                return None;
            }
            m.variants[i].1 = v;
        }
        "change const" => {
            let i = m.consts.len().checked_sub(1)?;
            m.consts[i].1 += 1;
        }
        "move field" => {
            if m.fields.len() < 2 {
                let t = m.fields[0].1;
                m.fields[0].1 = if t == Ty::U64 { Ty::U32 } else { Ty::U64 };
            } else {
                let i = pick(rng, m.fields.len() - 1);
                m.fields.swap(i, i + 1);
            }
        }
        "change register" => {
            let i = pick(rng, m.regs.len());
            m.regs[i] = "r8";
        }
        "remove ret" => {
            let i = m.calls.iter().position(|c| c.ret)?;
            m.calls[i].ret = false;
        }
        other => panic!("no edit `{other}`"),
    }
    Some(m)
}

fn facts(file: &str, src: &str) -> Facts {
    let spec = codegen::load(file, src).unwrap_or_else(|d| panic!("{d}\n{src}"));
    Facts::from_spec(&spec, file, src)
}

/// Up to `max` printable ASCII characters (space to `~`).
fn printable(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(b' '..=b'~', 0..=max)
        .prop_map(|b| b.into_iter().map(char::from).collect())
}

fn edits() -> impl Strategy<Value = (&'static str, Class)> {
    prop_oneof![
        proptest::sample::select(COMPATIBLE).prop_map(|e| (e, Class::Compatible)),
        proptest::sample::select(ADDITIVE).prop_map(|e| (e, Class::Additive)),
        proptest::sample::select(BREAKING).prop_map(|e| (e, Class::Breaking)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn random_edits_of_random_specs_classify_as_their_kind(seed in any::<u64>(), (edit, want) in edits()) {
        let m = Model::random(seed);
        let before = m.toml();
        let mut rng = Rng(seed.rotate_left(17) | 1);
        let Some(after) = apply(&m, edit, &mut rng) else { return Ok(()) };
        let after = after.toml();
        let r = Report::new(&facts("before.toml", &before), &facts("after.toml", &after));
        let got = r.class();
        let listing: Vec<String> = r.changes.iter().map(|c| format!("{}: {}", c.class.name(), c.what)).collect();
        prop_assert_eq!(
            got, want,
            "seed {} edit `{}`:\n{}\n--- before\n{}\n--- after\n{}", seed, edit, listing.join("\n"), before, after
        );
        if want != Class::Compatible {
            prop_assert!(!r.changes.is_empty());
        }
    }
}

/// spec/lguest.lock as committed, and the facts of spec/lguest.toml: the same for every case
/// below, so read and checked once.
static LOCK: LazyLock<String> = LazyLock::new(|| {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../spec/lguest.lock"))
        .expect("lock")
});
static SPEC_FACTS: LazyLock<Facts> = LazyLock::new(|| {
    let src = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../spec/lguest.toml"))
        .expect("spec");
    facts("spec/lguest.toml", &src)
});

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// A lock edited by hand (a line dropped, duplicated or garbled, a number changed)
    /// reads as facts or is refused with diagnostics, and compares without panicking.
    #[test]
    fn edited_locks_never_panic(line in any::<prop::sample::Index>(), how in 0u8..5, junk in printable(12)) {
        let mut lines: Vec<String> = LOCK.lines().map(String::from).collect();
        let i = line.index(lines.len());
        match how {
            0 => { lines.remove(i); }
            1 => { let l = lines[i].clone(); lines.insert(i, l); }
            2 => lines[i] = junk.clone(),
            3 => lines[i] = format!("{} = {junk}", lines[i].split(" = ").next().unwrap_or("x")),
            _ => lines[i] = lines[i].replace(|c: char| c.is_ascii_digit(), "9"),
        }
        let edited = lines.join("\n");
        if let Ok(old) = Facts::parse_lock("x.lock", &edited) {
            let new = &*SPEC_FACTS;
            let r = Report::new(&old, new);
            let _ = (r.text(&old, new), r.json(&old, new), r.diagnostics(&old, new, "spec/lguest.toml"));
        }
    }
}
