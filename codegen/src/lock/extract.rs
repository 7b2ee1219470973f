//! From a checked spec to its ABI facts, each with the place in the spec's TOML it is
//! written (found by walking toml's spanned tree, so a diagnostic points at the key).
//!
//! A new kind of fact is one `put` here plus a row in `rules.rs`.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::{Fact, Facts, Key, Seg, Value};
use crate::check::field_size_align;
use crate::spec::*;

/// A step from a TOML table towards a value.
enum Step<'a> {
    /// The entry `key` of a table.
    Key(&'a str),
    /// The `i`th element of an array.
    Index(usize),
    /// The element of an array of tables whose string keys equal these values.
    Find(&'a [(&'a str, &'a str)]),
}

use Step::{Find, Index, Key as K};

/// Finds spans in the spec's TOML.
struct Locator<'i> {
    root: Option<Spanned<DeTable<'i>>>,
    /// For `Find` over an array (by its address and the keys it compares): each element's
    /// index by those keys' values, built on first use, so locating every element of a
    /// long array (a u16 enum's 65,536 variants) is linear rather than quadratic.
    found: RefCell<FindIndex>,
}

/// `(array address, keys)` -> (the keys' values -> index of the first such element).
type FindIndex = HashMap<(usize, Vec<String>), HashMap<Vec<String>, usize>>;

impl<'i> Locator<'i> {
    /// The span of the value at `steps`; where the walk stops short (an absent optional
    /// key), the `name` of the table it reached, or the table itself.
    fn span(&self, steps: &[Step<'_>]) -> Range<usize> {
        let Some(root) = &self.root else {
            return 0..0;
        };
        let mut table: &DeTable<'i> = root.get_ref();
        let mut table_span = 0..0;
        let mut cur: Option<&Spanned<DeValue<'i>>> = None;
        for step in steps {
            let next = match (step, cur.map(|v| v.get_ref())) {
                (K(k), None) => table.get(*k),
                (K(k), Some(DeValue::Table(t))) => t.get(*k),
                (Index(i), Some(DeValue::Array(a))) => a.get(*i),
                (Find(want), Some(DeValue::Array(a))) => {
                    let keys: Vec<String> = want.iter().map(|(k, _)| (*k).to_string()).collect();
                    let vals: Vec<String> = want.iter().map(|(_, v)| (*v).to_string()).collect();
                    let mut found = self.found.borrow_mut();
                    let index = found
                        .entry((std::ptr::from_ref(a) as usize, keys))
                        .or_insert_with(|| {
                            let mut m = HashMap::new();
                            for (i, v) in a.iter().enumerate() {
                                let DeValue::Table(t) = v.get_ref() else {
                                    continue;
                                };
                                let vs: Option<Vec<String>> = want
                                    .iter()
                                    .map(|(k, _)| match t.get(*k).map(|v| v.get_ref()) {
                                        Some(DeValue::String(x)) => Some(x.to_string()),
                                        _ => None,
                                    })
                                    .collect();
                                if let Some(vs) = vs {
                                    m.entry(vs).or_insert(i);
                                }
                            }
                            m
                        });
                    index.get(&vals).and_then(|&i| a.get(i))
                }
                _ => None,
            };
            let Some(next) = next else {
                return fallback(table, table_span);
            };
            if let DeValue::Table(t) = next.get_ref() {
                table = t;
                table_span = next.span();
            }
            cur = Some(next);
        }
        cur.map_or(table_span, |v| v.span())
    }
}

fn fallback(table: &DeTable<'_>, span: Range<usize>) -> Range<usize> {
    table.get("name").map_or(span, |v| v.span())
}

struct Out<'i> {
    loc: Locator<'i>,
    map: BTreeMap<Key, Fact>,
}

impl Out<'_> {
    fn put(&mut self, path: &[&str], value: Value, at: &[Step<'_>]) {
        let key = Key(path
            .iter()
            .map(|p| match p.parse::<u64>() {
                Ok(n) if p.bytes().all(|b| b.is_ascii_digit()) => Seg::Num(n),
                _ => Seg::Name((*p).to_string()),
            })
            .collect());
        let span = self.loc.span(at);
        self.map.insert(key, Fact { value, span });
    }
}

fn s(v: impl Into<String>) -> Value {
    Value::Str(v.into())
}

/// The wire type of a field, as the spec spells it.
fn field_type(ty: &FieldType) -> String {
    match ty {
        FieldType::Prim(p) => p.name().to_string(),
        FieldType::Array(p, n) => format!("[{}; {n}]", p.name()),
        FieldType::RingStatus => "ring.status".into(),
        FieldType::RingSlots => "ring.slots".into(),
    }
}

/// A form's bytes with its relocations as the spec writes them (`{rel32:field}`).
fn form_bytes(f: &Form) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < f.bytes.len() {
        if let Some(r) = f.relocs.iter().find(|r| r.at == i) {
            parts.push(format!("{{{}:{}}}", r.kind.name(), r.field));
            i += r.kind.width();
        } else {
            parts.push(format!("{:02x}", f.bytes[i]));
            i += 1;
        }
    }
    parts.join(" ")
}

fn rust_type(t: &syn::Type) -> String {
    let mut s = quote::quote!(#t).to_string();
    // Token spacing, canonical: `x86 :: bits64 :: Foo` → `x86::bits64::Foo`.
    for (from, to) in [
        (" :: ", "::"),
        (":: ", "::"),
        (" ::", "::"),
        (" ,", ","),
        ("& ", "&"),
    ] {
        s = s.replace(from, to);
    }
    s
}

pub(super) fn facts(spec: &Spec, file: &str, src: &str) -> Facts {
    let mut o = Out {
        loc: Locator {
            root: DeTable::parse(src).ok(),
            found: RefCell::default(),
        },
        map: BTreeMap::new(),
    };
    o.put(
        &["abi", "name"],
        s(&spec.abi.name.v),
        &[K("abi"), K("name")],
    );
    o.put(
        &["abi", "version"],
        Value::Int(spec.abi.version.into()),
        &[K("abi"), K("version")],
    );
    o.put(
        &["abi", "default_transport"],
        s(&spec.default_transport().name.v),
        &[K("abi"), K("transport")],
    );
    for t in &spec.transports {
        let n = t.name.v.as_str();
        let at = |k| [K("abi"), K("transport"), K(n), K(k)];
        o.put(
            &["transport", n, "instruction"],
            s(t.instruction.name()),
            &at("instruction"),
        );
        if let Some(p) = t.port {
            o.put(&["transport", n, "port"], Value::Int(p.into()), &at("port"));
        }
        o.put(&["transport", n, "nr"], s(t.nr.name()), &at("nr"));
        let regs = t.args.iter().map(|r| s(r.name())).collect();
        o.put(&["transport", n, "args"], Value::List(regs), &at("args"));
        o.put(
            &["transport", n, "ret"],
            s(t.ret.map_or("none", |r| r.name())),
            &at("ret"),
        );
    }
    for c in &spec.consts {
        let n = c.name.v.as_str();
        let v = match &c.value {
            ConstValue::Int(n) => Value::Int(*n),
            ConstValue::Text(t) => Value::Str(t.clone()),
        };
        o.put(&["const", n], v, &[K("consts"), K(n)]);
    }
    for t in &spec.types {
        let n = t.name.v.as_str();
        if let TypeKind::Enum { repr, variants } = &t.kind {
            o.put(
                &["type", n, "repr"],
                s(repr.name()),
                &[K("types"), K(n), K("repr")],
            );
            for v in variants {
                let vn = v.name.v.as_str();
                o.put(
                    &["type", n, "variant", vn],
                    Value::Int(v.value),
                    &[
                        K("types"),
                        K(n),
                        K("variants"),
                        Find(&[("name", vn)]),
                        K("value"),
                    ],
                );
            }
        }
    }
    let since = super::since::values(src);
    for h in &spec.hypercalls {
        let n = h.name.v.as_str();
        let find = [("name", n)];
        let at = |k| [K("hypercall"), Find(&find), K(k)];
        o.put(&["hypercall", n, "nr"], Value::Int(h.nr.v), &at("nr"));
        o.put(&["hypercall", n, "lazy"], Value::Bool(h.lazy), &at("lazy"));
        o.put(
            &["hypercall", n, "ret"],
            Value::Bool(h.ret.is_some() || ret_alone(spec, h)),
            &at(if h.ret.is_some() { "ret" } else { "results" }),
        );
        if let Some(v) = since.get(n) {
            o.put(&["hypercall", n, "since"], Value::Int(*v), &at("since"));
        }
        for (i, a) in h.args.iter().enumerate() {
            let idx = i.to_string();
            let p = |k| ["hypercall", n, "arg", idx.as_str(), k];
            let at = |k| [K("hypercall"), Find(&find), K("args"), Index(i), K(k)];
            o.put(&p("name"), s(&a.name.v), &at("name"));
            let prim = spec.arg_prim(&a.ty);
            o.put(&p("type"), s(prim.name()), &at("type"));
            if let Some((name, vals)) = enum_facts(spec, &a.ty) {
                o.put(&p("enum"), name, &at("type"));
                o.put(&p("values"), vals, &at("type"));
            }
            if let Some((lo, hi)) = a.range {
                o.put(
                    &p("range"),
                    Value::List(vec![Value::Int(lo), Value::Int(hi)]),
                    &at("range"),
                );
            }
            if let Some(al) = a.align {
                o.put(&p("align"), Value::Int(al), &at("align"));
            }
        }
    }
    result_facts(&mut o, spec);
    memory_facts(&mut o, spec);
    if let Some(r) = &spec.ring {
        for (k, v) in [
            ("size", r.size),
            ("args", r.args),
            ("ready", r.ready.into()),
            ("done", r.done.into()),
        ] {
            o.put(&["ring", k], Value::Int(v), &[K("ring"), K(k)]);
        }
    }
    if let Some(sh) = &spec.shared {
        o.put(
            &["shared", "name"],
            s(&sh.name.v),
            &[K("shared"), K("name")],
        );
        for f in &sh.fields {
            let n = f.name.v.as_str();
            let find = [("name", n)];
            let at = |k| [K("shared"), K("field"), Find(&find), K(k)];
            let (size, _) = field_size_align(&f.ty, spec.ring.as_ref());
            o.put(
                &["shared", "field", n, "offset"],
                Value::Int(f.offset),
                &at("offset"),
            );
            o.put(
                &["shared", "field", n, "type"],
                s(field_type(&f.ty)),
                &at("type"),
            );
            o.put(
                &["shared", "field", n, "size"],
                Value::Int(size),
                &at("type"),
            );
            o.put(
                &["shared", "field", n, "writer"],
                s(f.writer.name()),
                &at("writer"),
            );
            o.put(
                &["shared", "field", n, "init"],
                Value::Int(f.init),
                &at("init"),
            );
        }
    }
    for t in &spec.templates {
        let n = t.name.v.as_str();
        let find = [("name", n)];
        for (i, f) in t.forms.iter().enumerate() {
            let idx = i.to_string();
            o.put(
                &["template", n, "form", &idx, "bytes"],
                s(form_bytes(f)),
                &[K("template"), Find(&find), K("forms"), Index(i), K("bytes")],
            );
        }
    }
    for (table, op) in spec.pv_ops() {
        let (t, n) = (table.name.v.as_str(), op.name.v.as_str());
        let find = [("table", t), ("name", n)];
        let at = |k| [K("pv_op"), Find(&find), K(k)];
        let p = |k| ["pv_op", t, n, k];
        let id = spec.op_id(t, n).unwrap_or(0) as u64;
        o.put(&p("id"), Value::Int(id), &at("name"));
        let args = op.args.iter().map(|(_, ty)| s(rust_type(ty))).collect();
        o.put(&p("args"), Value::List(args), &at("args"));
        if let Some(r) = &op.ret {
            o.put(&p("ret"), s(rust_type(r)), &at("ret"));
        }
        o.put(
            &p("callee_save"),
            Value::Bool(op.callee_save),
            &at("callee_save"),
        );
        o.put(&p("unsafe"), Value::Bool(op.is_unsafe), &at("unsafe"));
        if let Some(tpl) = &op.template {
            o.put(&p("template"), s(&tpl.v), &at("template"));
        }
    }
    let version_span = o.loc.span(&[K("abi"), K("version")]);
    Facts {
        file: file.to_string(),
        source: src.to_string(),
        is_lock: false,
        version_span,
        map: o.map,
    }
}

/// The text of a struct-field or element type.
fn stype_text(spec: &Spec, t: &SType) -> String {
    match t {
        SType::Int(i) => i.name(),
        SType::Named(i) => match &spec.types[*i].kind {
            TypeKind::Alias(p) => p.name().into(),
            TypeKind::Enum { repr, .. } => format!("{} ({})", repr.name(), spec.types[*i].name.v),
        },
        SType::Struct(i) => format!("struct {}", spec.structs[*i].name.v),
        SType::Array(e, n) => format!("[{}; {n}]", stype_text(spec, e)),
        SType::Pad(n) => format!("[u8; {n}]"),
    }
}

/// Structs (size, alignment, packing, every named field's offset, type, direction and
/// constraints) and each call's memory arguments (kind, direction, address kind, where the
/// address and length come from, maximum, UTF-8).
fn memory_facts(o: &mut Out<'_>, spec: &Spec) {
    for st in &spec.structs {
        let n = st.name.v.as_str();
        let at = |k| [K("struct"), K(n), K(k)];
        o.put(&["struct", n, "size"], Value::Int(st.size), &at("fields"));
        o.put(&["struct", n, "align"], Value::Int(st.align), &at("fields"));
        o.put(
            &["struct", n, "packed"],
            Value::Bool(st.packed),
            &at("packed"),
        );
        for (i, f) in st.fields.iter().enumerate().filter(|(_, f)| !f.is_pad()) {
            let fname = f.name.v.as_str();
            let p = |k| ["struct", n, "field", fname, k];
            let at = |k| [K("struct"), K(n), K("fields"), Index(i), K(k)];
            o.put(&p("offset"), Value::Int(f.offset), &at("name"));
            o.put(&p("type"), s(stype_text(spec, &f.ty)), &at("type"));
            o.put(&p("dir"), s(f.dir.name()), &at("dir"));
            if let Some((lo, hi)) = &f.range {
                o.put(
                    &p("range"),
                    Value::List(vec![Value::Int(lo.value), Value::Int(hi.value)]),
                    &at("range"),
                );
            }
            if let Some(a) = &f.align {
                o.put(&p("align"), Value::Int(a.value), &at("align"));
            }
        }
    }
    for h in &spec.hypercalls {
        let n = h.name.v.as_str();
        let find = [("name", n)];
        for (k, m) in h.mem.iter().enumerate() {
            let idx = k.to_string();
            let p = |key| ["hypercall", n, "mem", idx.as_str(), key];
            let mname = m.name.v.as_str();
            let mfind = [("name", mname)];
            let at = |key| [K("hypercall"), Find(&find), K("args"), Find(&mfind), K(key)];
            o.put(&p("name"), s(mname), &at("name"));
            let kind = match &m.kind {
                MemKind::Struct(i) => format!("&{}", spec.structs[*i].name.v),
                MemKind::Buffer { elem, .. } => format!("[{}]", stype_text(spec, elem)),
                MemKind::Str { .. } => "str".into(),
            };
            o.put(&p("kind"), s(kind), &at("type"));
            o.put(&p("dir"), s(m.dir.name()), &at("dir"));
            let addr = match m.addr {
                AddrKind::Physical => "physical",
                AddrKind::Virtual => "virtual",
            };
            o.put(&p("addr"), s(addr), &at("addr"));
            let place = match &m.at {
                MemAt::Reg(i) => format!("arg {i}"),
                MemAt::Field(f) => f.text.clone(),
            };
            o.put(&p("at"), s(place), &at("at"));
            match &m.kind {
                MemKind::Buffer { len, max, .. } => {
                    // A fixed length is its number (the wire); the const it was written as
                    // is a name beside it, so `len = 3` and `len = "tls_entries"` agree.
                    if let Len::Fixed(Num {
                        form: NumForm::Const { name, .. },
                        ..
                    }) = len
                    {
                        o.put(&p("len_const"), s(name), &at("len"));
                    }
                    let len = match len {
                        Len::Fixed(n) => n.value.to_string(),
                        Len::Arg(i) => format!("arg {i}"),
                        Len::Field(f) => f.text.clone(),
                    };
                    o.put(&p("len"), s(len), &at("len"));
                    o.put(&p("max"), Value::Int(*max), &at("max"));
                }
                MemKind::Str { max, utf8 } => {
                    o.put(&p("max"), Value::Int(*max), &at("max"));
                    o.put(&p("utf8"), Value::Bool(*utf8), &at("utf8"));
                }
                MemKind::Struct(_) => {}
            }
        }
    }
}

/// Whether `h`'s `results` are one `u64` in the result register: on the wire, `ret`.
fn ret_alone(spec: &Spec, h: &Hypercall) -> bool {
    matches!(h.results.as_slice(), [r] if r.slot == 0 && !r.error && spec.arg_prim(&r.ty) == Prim::U64)
}

/// Each call's `results`, by position (one `u64` in the result register is `ret`): name, register, wire type, an enum's values, and
/// whether it is the error code with its success value.
fn result_facts(o: &mut Out<'_>, spec: &Spec) {
    for h in &spec.hypercalls {
        let n = h.name.v.as_str();
        let find = [("name", n)];
        if ret_alone(spec, h) {
            continue;
        }
        for (i, r) in h.results.iter().enumerate() {
            let idx = i.to_string();
            let p = |k| ["hypercall", n, "result", idx.as_str(), k];
            let at = |k| [K("hypercall"), Find(&find), K("results"), Index(i), K(k)];
            o.put(&p("name"), s(&r.name.v), &at("name"));
            o.put(&p("reg"), s(r.reg.v.name()), &at("reg"));
            o.put(&p("type"), s(spec.arg_prim(&r.ty).name()), &at("type"));
            if let Some((name, vals)) = enum_facts(spec, &r.ty) {
                o.put(&p("enum"), name, &at("type"));
                o.put(&p("values"), vals, &at("type"));
            }
            o.put(&p("error"), Value::Bool(r.error), &at("error"));
            if r.error {
                o.put(&p("ok"), Value::Int(r.ok.value), &at("ok"));
            }
        }
    }
}

/// The facts of an argument or result typed by a `[types]` enum: the enum's name and its
/// values, sorted (what a host may accept or answer).
fn enum_facts(spec: &Spec, ty: &ArgType) -> Option<(Value, Value)> {
    let ArgType::Named(t) = ty else { return None };
    let TypeKind::Enum { variants, .. } = &spec.types[*t].kind else {
        return None;
    };
    let mut vals: Vec<u64> = variants.iter().map(|v| v.value).collect();
    vals.sort_unstable();
    let vals = vals.into_iter().map(Value::Int).collect();
    Some((s(&spec.types[*t].name.v), Value::List(vals)))
}
