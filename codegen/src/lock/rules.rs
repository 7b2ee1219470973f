//! What a difference between two fact trees means, from both sides: can a guest built from
//! the old one run on a host built from the new one, and the other way round.
//!
//! Two tables drive it. [`ENTITIES`] names the things that come and go as a whole (a
//! hypercall, an argument, an enum variant, a shared-page field) with what adding or
//! removing one means, and whether a removed and an added one with the same facts are a
//! rename. [`FACTS`] gives each leaf path its [`Rule`]. A path no row matches is
//! [`Rule::Exact`]: a new kind of fact is breaking until it is given a rule.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use super::{Fact, Facts, Key, Seg, Value};

/// How a change is classified.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Class {
    /// Guests and hosts built from either side work together.
    Compatible,
    /// Guests built from the old side keep working on hosts built from the new side; guests
    /// built from the new side need a new host.
    Additive,
    /// Guests built from the old side fail on hosts built from the new side (or the two
    /// disagree on memory both use).
    Breaking,
}

impl Class {
    /// The word used in reports and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Class::Compatible => "compatible",
            Class::Additive => "additive",
            Class::Breaking => "breaking",
        }
    }
}

/// One direction of a change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Works.
    Works,
    /// Does this wrong.
    Fails(String),
}

/// One difference between two fact trees.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The fact or entity that changed.
    pub path: Key,
    /// What it means.
    pub class: Class,
    /// The change in plain words.
    pub what: String,
    /// A guest built from the old side on a host built from the new side.
    pub old_guest: Verdict,
    /// A guest built from the new side on a host built from the old side.
    pub new_guest: Verdict,
    /// Where it is in the old source, if there.
    pub old_span: Option<Range<usize>>,
    /// Where it is in the new source, if there.
    pub new_span: Option<Range<usize>>,
    /// An error however the version is set (a wrong `since`, a version going back).
    pub always_error: bool,
}

/// A leaf fact's rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// Both sides must agree exactly (numbers, registers, layout, bytes, types).
    Exact,
    /// A name only: a change is compatible.
    Label,
    /// An argument's name: a rename is compatible, a name moving position is a reorder.
    ArgName,
    /// A capability flag: false → true is additive, true → false breaking.
    Grow,
    /// Inclusive bounds `[lo, hi]` the host accepts (absent: the type's bounds).
    Range,
    /// A multiple the host requires (absent: 1).
    Align,
    /// The set of values the host accepts (an enum argument).
    Values,
    /// The set of values the guest accepts (an enum result): the mirror of `Values`.
    ResultValues,
    /// `[abi] version`, judged by [`compare`] itself.
    Version,
}

/// Something that appears and disappears as a whole.
struct Entity {
    pattern: &'static [&'static str],
    added: Class,
    removed: Class,
    renamable: bool,
}

const fn ent(
    pattern: &'static [&'static str],
    added: Class,
    removed: Class,
    renamable: bool,
) -> Entity {
    Entity {
        pattern,
        added,
        removed,
        renamable,
    }
}

use Class::{Additive, Breaking, Compatible};

/// Outer entities first: facts under an added or removed entity are not reported again.
const ENTITIES: &[Entity] = &[
    ent(&["transport", "*"], Additive, Breaking, true),
    ent(&["const", "*"], Compatible, Breaking, true),
    ent(&["type", "*"], Compatible, Compatible, true),
    ent(&["type", "*", "variant", "*"], Additive, Breaking, true),
    ent(&["hypercall", "*"], Additive, Breaking, true),
    ent(&["hypercall", "*", "arg", "*"], Breaking, Breaking, false),
    ent(&["ring"], Additive, Breaking, false),
    ent(&["shared"], Additive, Breaking, false),
    ent(&["shared", "field", "*"], Additive, Breaking, true),
    ent(&["template", "*"], Compatible, Breaking, true),
    ent(&["template", "*", "form", "*"], Breaking, Breaking, false),
    ent(&["pv_op", "*", "*"], Compatible, Breaking, true),
    ent(&["struct", "*"], Compatible, Breaking, true),
    ent(&["struct", "*", "field", "*"], Breaking, Breaking, true),
    ent(&["hypercall", "*", "mem", "*"], Breaking, Breaking, false),
    ent(
        &["hypercall", "*", "result", "*"],
        Breaking,
        Breaking,
        false,
    ),
];

/// Leaf rules; the first matching row wins, no match is [`Rule::Exact`].
const FACTS: &[(&[&str], Rule)] = &[
    (&["abi", "version"], Rule::Version),
    (&["abi", "default_transport"], Rule::Label),
    (&["hypercall", "*", "lazy"], Rule::Grow),
    (&["hypercall", "*", "ret"], Rule::Grow),
    (&["hypercall", "*", "arg", "*", "name"], Rule::ArgName),
    (&["hypercall", "*", "arg", "*", "enum"], Rule::Label),
    (&["hypercall", "*", "arg", "*", "range"], Rule::Range),
    (&["hypercall", "*", "arg", "*", "align"], Rule::Align),
    (&["hypercall", "*", "arg", "*", "values"], Rule::Values),
    (&["shared", "name"], Rule::Label),
    (&["hypercall", "*", "mem", "*", "name"], Rule::Label),
    (&["hypercall", "*", "mem", "*", "len_const"], Rule::Label),
    (&["hypercall", "*", "result", "*", "name"], Rule::Label),
    (&["hypercall", "*", "result", "*", "enum"], Rule::Label),
    (
        &["hypercall", "*", "result", "*", "values"],
        Rule::ResultValues,
    ),
];

fn matches(pattern: &[&str], key: &Key) -> bool {
    pattern.len() == key.0.len()
        && pattern.iter().zip(&key.0).all(|(p, s)| {
            *p == "*"
                || match s {
                    Seg::Name(n) => n == p,
                    Seg::Num(_) => false,
                }
        })
}

fn matches_prefix(pattern: &[&str], key: &Key) -> bool {
    key.0.len() >= pattern.len() && matches(pattern, &key.prefix(pattern.len()))
}

/// The rule of a leaf path.
pub fn rule(key: &Key) -> Rule {
    FACTS
        .iter()
        .find(|(p, _)| matches(p, key))
        .map_or(Rule::Exact, |(_, r)| *r)
}

/// Plain words for an entity or fact's owner.
fn noun(key: &Key, a: &Facts, b: &Facts) -> String {
    let s = |i| key.seg(i);
    match s(0).as_str() {
        "hypercall" if key.0.len() >= 4 && s(2) == "arg" => {
            let mut k = key.prefix(4);
            k.0.push(Seg::Name("name".into()));
            let name = [b, a]
                .iter()
                .find_map(|f| f.map.get(&k).and_then(|f| f.value.str().map(String::from)));
            match name {
                Some(n) => format!("argument {} (`{n}`) of hypercall `{}`", s(3), s(1)),
                None => format!("argument {} of hypercall `{}`", s(3), s(1)),
            }
        }
        "hypercall" if key.0.len() >= 4 && s(2) == "result" => {
            let mut k = key.prefix(4);
            k.0.push(Seg::Name("name".into()));
            let name = [b, a]
                .iter()
                .find_map(|f| f.map.get(&k).and_then(|f| f.value.str().map(String::from)));
            match name {
                Some(n) => format!("result {} (`{n}`) of hypercall `{}`", s(3), s(1)),
                None => format!("result {} of hypercall `{}`", s(3), s(1)),
            }
        }
        "hypercall" if key.0.len() >= 4 && s(2) == "mem" => {
            format!("memory argument {} of hypercall `{}`", s(3), s(1))
        }
        "hypercall" => format!("hypercall `{}`", s(1)),
        "transport" => format!("transport `{}`", s(1)),
        "const" => format!("const `{}`", s(1)),
        "type" if key.0.len() >= 4 => format!("variant `{}` of enum `{}`", s(3), s(1)),
        "type" => format!("type `{}`", s(1)),
        "ring" => "the ring".into(),
        "shared" if key.0.len() >= 3 && s(1) == "field" => format!("shared-page field `{}`", s(2)),
        "shared" => "the shared page".into(),
        "template" if key.0.len() >= 4 => format!("form {} of template `{}`", s(3), s(1)),
        "template" => format!("template `{}`", s(1)),
        "pv_op" => format!("pv_op `{}.{}`", s(1), s(2)),
        "abi" => "the ABI".into(),
        "struct" if key.0.len() >= 4 && s(2) == "field" => {
            format!("field `{}` of struct `{}`", s(3), s(1))
        }
        "struct" => format!("struct `{}`", s(1)),
        _ => format!("`{key}`"),
    }
}

/// The facts under `prefix`, by the rest of their path.
fn under<'a>(facts: &'a Facts, prefix: &Key) -> BTreeMap<Vec<Seg>, &'a Fact> {
    facts
        .map
        .iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(k, f)| (k.0[prefix.0.len()..].to_vec(), f))
        .collect()
}

/// The entities of `e`'s kind in `facts`.
fn entities(facts: &Facts, e: &Entity) -> BTreeSet<Key> {
    facts
        .map
        .keys()
        .filter(|k| matches_prefix(e.pattern, k))
        .map(|k| k.prefix(e.pattern.len()))
        .collect()
}

/// What an entity's facts are, names aside: equal for a rename.
fn identity(facts: &Facts, key: &Key) -> Vec<(Vec<Seg>, Value)> {
    under(facts, key)
        .into_iter()
        .filter(|(rest, _)| {
            let mut full = key.clone();
            full.0.extend(rest.iter().cloned());
            !matches!(rule(&full), Rule::Label | Rule::ArgName)
        })
        .map(|(rest, f)| (rest, f.value.clone()))
        .collect()
}

fn first_span(facts: &Facts, key: &Key) -> Option<Range<usize>> {
    facts
        .map
        .iter()
        .filter(|(k, _)| k.starts_with(key))
        .map(|(_, f)| f.span.clone())
        .min_by_key(|s| s.start)
}

/// Where to point in `facts` for `key`, which is not there: the entity that held it (a
/// hypercall for its argument, an enum for its variant), or nowhere for a whole entry of a
/// top-level list (the caller then points at `[abi] version`).
fn nearest(facts: &Facts, key: &Key) -> Option<Range<usize>> {
    (2..key.0.len())
        .rev()
        .find_map(|n| first_span(facts, &key.prefix(n)))
}

/// The name of the hypercall numbered `nr` in `facts`.
fn call_named(facts: &Facts, nr: u64) -> Option<String> {
    facts
        .map
        .iter()
        .find(|(k, f)| {
            k.0.len() == 3
                && k.seg(0) == "hypercall"
                && k.seg(2) == "nr"
                && f.value.int() == Some(nr)
        })
        .map(|(k, _)| k.seg(1))
}

/// The shared-page field holding byte `at` in `facts`, in words.
fn field_at(facts: &Facts, at: u64) -> String {
    let get = |name: &str, leaf: &str| {
        facts
            .map
            .get(&Key::parse(&format!("shared.field.{name}.{leaf}")))
            .and_then(|f| f.value.int())
    };
    let names: BTreeSet<String> = facts
        .map
        .keys()
        .filter(|k| k.0.len() == 4 && k.seg(0) == "shared" && k.seg(1) == "field")
        .map(|k| k.seg(2))
        .collect();
    names
        .into_iter()
        .find(|n| {
            let (off, size) = (get(n, "offset").unwrap_or(0), get(n, "size").unwrap_or(0));
            off <= at && at < off.saturating_add(size)
        })
        .map_or_else(|| "no field".into(), |n| format!("`{n}`"))
}

fn prim_max(ty: &str) -> u64 {
    match ty {
        "bool" => 1,
        "u8" => u8::MAX.into(),
        "u16" => u16::MAX.into(),
        "u32" => u32::MAX.into(),
        _ => u64::MAX,
    }
}

/// The type of the argument a fact belongs to (`hypercall.X.arg.N.*`).
fn arg_type(facts: &Facts, key: &Key) -> String {
    let mut k = key.prefix(4);
    k.0.push(Seg::Name("type".into()));
    facts
        .map
        .get(&k)
        .and_then(|f| f.value.str().map(String::from))
        .unwrap_or_else(|| "u64".into())
}

fn show(v: Option<&Value>) -> String {
    v.map_or_else(|| "(none)".into(), |v| v.to_string())
}

fn hex_or_dec(n: u64) -> String {
    if n > 4096 {
        format!("{n:#x}")
    } else {
        n.to_string()
    }
}

struct Words {
    class: Class,
    what: String,
    old_guest: Verdict,
    new_guest: Verdict,
}

fn fails(s: impl Into<String>) -> Verdict {
    Verdict::Fails(s.into())
}

/// An exact fact's change, in words for the facts we know.
fn exact(key: &Key, old: Option<&Value>, new: Option<&Value>, a: &Facts, b: &Facts) -> Words {
    let (o, n) = (show(old), show(new));
    let leaf = key.seg(key.0.len() - 1);
    let owner = noun(key, a, b);
    let both = |og: String, ng: String| Words {
        class: Breaking,
        what: String::new(),
        old_guest: fails(og),
        new_guest: fails(ng),
    };
    let mut w = match (key.seg(0).as_str(), leaf.as_str()) {
        ("hypercall", _) if key.0.len() == 5 && key.seg(2) == "result" => {
            let mut w = both(
                format!(
                    "a guest built from OLD reads {owner} with {leaf} {o}, where a host built from NEW answers with {n}"
                ),
                format!(
                    "a guest built from NEW reads it with {leaf} {n}, where a host built from OLD answers with {o}"
                ),
            );
            w.what = format!("{owner}'s {leaf} changed: {o} → {n}");
            w
        }
        ("hypercall", "nr") => {
            let (on, nn) = (old.and_then(Value::int), new.and_then(Value::int));
            let taken = |f: &Facts, nr: Option<u64>| match nr.and_then(|nr| call_named(f, nr)) {
                Some(c) => format!("takes as `{c}`"),
                None => "refuses as unknown".into(),
            };
            let mut w = both(
                format!(
                    "a guest built from OLD calls `{}` as number {o}, which a host built from NEW {}",
                    key.seg(1),
                    taken(b, on)
                ),
                format!(
                    "a guest built from NEW calls it as number {n}, which a host built from OLD {}",
                    taken(a, nn)
                ),
            );
            w.what = format!("{owner} renumbered: {o} → {n}");
            w
        }
        ("hypercall", "type") => {
            let (ot, nt) = (
                old.and_then(Value::str).unwrap_or("u64"),
                new.and_then(Value::str).unwrap_or("u64"),
            );
            let (om, nm) = (prim_max(ot), prim_max(nt));
            let mut w = if nm < om {
                Words {
                    class: Breaking,
                    what: String::new(),
                    old_guest: fails(format!(
                        "a guest built from OLD may pass values up to {}, which a host built from NEW refuses above {}",
                        hex_or_dec(om),
                        hex_or_dec(nm)
                    )),
                    new_guest: Verdict::Works,
                }
            } else {
                // Widening is breaking by policy: a width is layout wherever the value is in
                // memory (struct fields, buffers), and the lock judges every width alike.
                Words {
                    class: Breaking,
                    what: String::new(),
                    old_guest: fails(format!(
                        "a host built from NEW takes the argument as `{nt}`, so its handler and every layout holding it differ from the `{ot}` a guest built from OLD was written against"
                    )),
                    new_guest: fails(format!(
                        "a guest built from NEW may pass values above {}, which a host built from OLD refuses",
                        hex_or_dec(om)
                    )),
                }
            };
            w.what = format!(
                "{owner} retyped: {ot} → {nt}{}",
                if nm > om {
                    " (widened)"
                } else if nm < om {
                    " (narrowed)"
                } else {
                    ""
                }
            );
            w
        }
        ("shared", "offset") => {
            let (on, nn) = (
                old.and_then(Value::int).unwrap_or(0),
                new.and_then(Value::int).unwrap_or(0),
            );
            let mut w = both(
                format!(
                    "a guest built from OLD reads and writes `{}` at byte {o}, where a host built from NEW keeps {}",
                    key.seg(2),
                    field_at(b, on)
                ),
                format!(
                    "a guest built from NEW uses byte {n}, where a host built from OLD keeps {}",
                    field_at(a, nn)
                ),
            );
            w.what = format!("{owner} moved: offset {o} → {n}");
            w
        }
        ("shared", "size") | ("shared", "type") => {
            let mut w = both(
                format!(
                    "a guest built from OLD and a host built from NEW disagree on the size of `{}`: one reads bytes the other does not write",
                    key.seg(2)
                ),
                "a guest built from NEW and a host built from OLD disagree the same way".into(),
            );
            w.what = format!("{owner} resized: {leaf} {o} → {n}");
            w
        }
        ("ring", _) => {
            let (og, ng) = match leaf.as_str() {
                "size" => (
                    format!(
                        "a guest built from OLD queues into {o} slots, which a host built from NEW drains as {n}: they disagree on where the ring wraps and on the shared page's layout"
                    ),
                    format!(
                        "a guest built from NEW queues into {n} slots, which a host built from OLD drains as {o}"
                    ),
                ),
                "args" => (
                    format!(
                        "a guest built from OLD writes slots of {o} arguments, which a host built from NEW reads as slots of {n}"
                    ),
                    format!(
                        "a guest built from NEW writes slots of {n} arguments, which a host built from OLD reads as slots of {o}"
                    ),
                ),
                _ => (
                    format!(
                        "a guest built from OLD marks slots {leaf} with status {o}, which a host built from NEW does not take as {leaf} ({n})"
                    ),
                    format!(
                        "a guest built from NEW marks them with {n}, which a host built from OLD does not take as {leaf} ({o})"
                    ),
                ),
            };
            let mut w = both(og, ng);
            w.what = format!("ring {leaf} changed: {o} → {n}");
            w
        }
        ("shared", "writer") => {
            let mut w = both(
                format!(
                    "a guest built from OLD has `{}` written by {o}, a host built from NEW by {n}: writes one side makes the other overwrites or never reads",
                    key.seg(2)
                ),
                format!(
                    "a guest built from NEW has it written by {n}, a host built from OLD by {o}"
                ),
            );
            w.what = format!("{owner}'s writer changed: {o} → {n}");
            w
        }
        ("transport", _) => {
            let mut w = both(
                format!(
                    "a guest built from OLD traps with {leaf} {o}; a host built from NEW expects {n}"
                ),
                format!(
                    "a guest built from NEW traps with {leaf} {n}; a host built from OLD expects {o}"
                ),
            );
            w.what = format!("{owner}'s {leaf} changed: {o} → {n}");
            w
        }
        ("template", _) => {
            let mut w = both(
                format!(
                    "a guest built from OLD patches its call sites with {o}, which code built from NEW (site lengths, relocations) does not expect"
                ),
                format!(
                    "a guest built from NEW patches with {n}, which code built from OLD does not expect"
                ),
            );
            w.what = format!("{owner} changed: {o} → {n}");
            w
        }
        ("type", _) => {
            let mut w = both(
                format!(
                    "a guest built from OLD sends {o} for `{}`, which a host built from NEW reads as something else",
                    key.seg(3)
                ),
                format!(
                    "a guest built from NEW sends {n}, which a host built from OLD reads as something else"
                ),
            );
            w.what = format!("{owner} changed value: {o} → {n}");
            w
        }
        ("const", _) => {
            let mut w = both(
                format!(
                    "a guest built from OLD compiled in {o} where a host built from NEW uses {n}"
                ),
                format!(
                    "a guest built from NEW compiled in {n} where a host built from OLD uses {o}"
                ),
            );
            w.what = format!("{owner} changed: {o} → {n}");
            w
        }
        _ => {
            let mut w = both(
                format!(
                    "a guest built from OLD relies on {leaf} = {o}, a host built from NEW on {n}"
                ),
                format!(
                    "a guest built from NEW relies on {leaf} = {n}, a host built from OLD on {o}"
                ),
            );
            w.what = format!("{owner}'s {leaf} changed: {o} → {n}");
            w
        }
    };
    if key.seg(0) == "hypercall" && key.seg(2) == "since" {
        w.what = format!("{owner}'s `since` changed: {o} → {n}");
        w.old_guest = fails(
            "a host that refuses calls by the guest's version treats guests of the versions in between differently",
        );
        w.new_guest = w.old_guest.clone();
    }
    w
}

fn judged(
    key: &Key,
    rule: Rule,
    old: Option<&Value>,
    new: Option<&Value>,
    a: &Facts,
    b: &Facts,
) -> Words {
    let owner = noun(key, a, b);
    let call = key.seg(1);
    let compat = |what: String| Words {
        class: Compatible,
        what,
        old_guest: Verdict::Works,
        new_guest: Verdict::Works,
    };
    match rule {
        Rule::Exact | Rule::Version => exact(key, old, new, a, b),
        Rule::Label => compat(format!(
            "{owner}: `{}` renamed {} → {} (a name only)",
            key.seg(key.0.len() - 1),
            show(old),
            show(new)
        )),
        Rule::ArgName => {
            let (o, n) = (
                old.and_then(Value::str).unwrap_or(""),
                new.and_then(Value::str).unwrap_or(""),
            );
            let elsewhere = |f: &Facts, name: &str| {
                f.map
                    .iter()
                    .find(|(k, v)| {
                        k.0.len() == 5
                            && k.prefix(2) == key.prefix(2)
                            && k.seg(4) == "name"
                            && k.0[3] != key.0[3]
                            && v.value.str() == Some(name)
                    })
                    .map(|(k, _)| k.seg(3))
            };
            match elsewhere(b, o) {
                Some(at) => Words {
                    class: Breaking,
                    what: format!(
                        "arguments of hypercall `{call}` reordered: `{o}` moved from position {} to {at}",
                        key.seg(3)
                    ),
                    old_guest: fails(format!(
                        "a guest built from OLD passes `{o}` in position {}, where a host built from NEW reads `{n}`",
                        key.seg(3)
                    )),
                    new_guest: fails(format!(
                        "a guest built from NEW passes `{n}` there, where a host built from OLD reads `{o}`"
                    )),
                },
                None => compat(format!("{owner} renamed: `{o}` → `{n}` (a name only)")),
            }
        }
        Rule::Grow => {
            let (o, n) = (
                old.and_then(Value::bool).unwrap_or(false),
                new.and_then(Value::bool).unwrap_or(false),
            );
            let leaf = key.seg(key.0.len() - 1);
            match (leaf.as_str(), o, n) {
                ("lazy", false, true) => Words {
                    class: Additive,
                    what: format!("{owner} may now be queued in the ring (lazy)"),
                    old_guest: Verdict::Works,
                    new_guest: fails(format!(
                        "a guest built from NEW queues `{call}` in the ring, which a host built from OLD refuses from a slot"
                    )),
                },
                ("lazy", true, false) => Words {
                    class: Breaking,
                    what: format!("{owner} may no longer be queued in the ring (lazy)"),
                    old_guest: fails(format!(
                        "a guest built from OLD queues `{call}` in the ring, which a host built from NEW refuses from a slot"
                    )),
                    new_guest: Verdict::Works,
                },
                ("ret", false, true) => Words {
                    class: Additive,
                    what: format!("{owner} now returns a result"),
                    old_guest: Verdict::Works,
                    new_guest: fails(format!(
                        "a guest built from NEW reads a result of `{call}` that a host built from OLD does not set"
                    )),
                },
                ("ret", true, false) => Words {
                    class: Breaking,
                    what: format!("{owner} no longer returns a result"),
                    old_guest: fails(format!(
                        "a guest built from OLD reads a result of `{call}` that a host built from NEW does not set"
                    )),
                    new_guest: Verdict::Works,
                },
                _ => exact(key, old, new, a, b),
            }
        }
        Rule::Range => {
            let bounds = |v: Option<&Value>, f: &Facts| -> (u64, u64) {
                match v.and_then(Value::list) {
                    Some([Value::Int(lo), Value::Int(hi)]) => (*lo, *hi),
                    _ => (0, prim_max(&arg_type(f, key))),
                }
            };
            let ((ol, oh), (nl, nh)) = (bounds(old, a), bounds(new, b));
            let r = |l: u64, h: u64| {
                if l == h {
                    hex_or_dec(l)
                } else {
                    format!("{}..={}", hex_or_dec(l), hex_or_dec(h))
                }
            };
            if (nl, nh) == (ol, oh) {
                compat(format!(
                    "{owner}'s range is written differently, the same bounds: {}",
                    r(nl, nh)
                ))
            } else if nl <= ol && nh >= oh {
                Words {
                    class: Additive,
                    what: format!("{owner}'s range relaxed: {} → {}", r(ol, oh), r(nl, nh)),
                    old_guest: Verdict::Works,
                    new_guest: fails(format!(
                        "a guest built from NEW may pass values outside {}, which a host built from OLD refuses",
                        r(ol, oh)
                    )),
                }
            } else {
                let lost = if nl > ol {
                    r(ol, (nl - 1).min(oh))
                } else {
                    r((nh + 1).max(ol), oh)
                };
                Words {
                    class: Breaking,
                    what: format!("{owner}'s range tightened: {} → {}", r(ol, oh), r(nl, nh)),
                    old_guest: fails(format!(
                        "a guest built from OLD may pass {lost}, which a host built from NEW refuses"
                    )),
                    new_guest: if nl >= ol && nh <= oh {
                        Verdict::Works
                    } else {
                        fails(format!(
                            "a guest built from NEW may pass values outside {}, which a host built from OLD refuses",
                            r(ol, oh)
                        ))
                    },
                }
            }
        }
        Rule::Align => {
            let (o, n) = (
                old.and_then(Value::int).unwrap_or(1).max(1),
                new.and_then(Value::int).unwrap_or(1).max(1),
            );
            if o == n {
                compat(format!(
                    "{owner}'s alignment is written differently, the same: {n}"
                ))
            } else if o % n == 0 {
                Words {
                    class: Additive,
                    what: format!("{owner}'s alignment relaxed: {o} → {n}"),
                    old_guest: Verdict::Works,
                    new_guest: fails(format!(
                        "a guest built from NEW may pass multiples of {n} that a host built from OLD refuses (it wants multiples of {o})"
                    )),
                }
            } else {
                Words {
                    class: Breaking,
                    what: format!("{owner}'s alignment tightened: {o} → {n}"),
                    old_guest: fails(format!(
                        "a guest built from OLD may pass multiples of {o} that a host built from NEW refuses (it wants multiples of {n})"
                    )),
                    new_guest: if n % o == 0 {
                        Verdict::Works
                    } else {
                        fails(format!(
                            "a host built from OLD refuses some multiples of {n}"
                        ))
                    },
                }
            }
        }
        Rule::ResultValues => {
            let (lost, gained) = value_changes(old, new);
            let ng = if lost.is_empty() {
                Verdict::Works
            } else {
                fails(format!(
                    "a host built from OLD may answer {}, which a guest built from NEW takes for a bad result",
                    lost.join(", ")
                ))
            };
            if gained.is_empty() {
                Words {
                    class: Additive,
                    what: format!(
                        "{owner} answers fewer values: no longer {}",
                        lost.join(", ")
                    ),
                    old_guest: Verdict::Works,
                    new_guest: ng,
                }
            } else {
                Words {
                    class: Breaking,
                    what: format!("{owner} may answer more values: {}", gained.join(", ")),
                    old_guest: fails(format!(
                        "a host built from NEW may answer {}, which a guest built from OLD takes for a bad result",
                        gained.join(", ")
                    )),
                    new_guest: ng,
                }
            }
        }
        Rule::Values => {
            let (lost, gained) = value_changes(old, new);
            let ng = if gained.is_empty() {
                Verdict::Works
            } else {
                fails(format!(
                    "a guest built from NEW may pass {}, which a host built from OLD refuses",
                    gained.join(", ")
                ))
            };
            if lost.is_empty() {
                Words {
                    class: Additive,
                    what: format!("{owner} accepts more values: {}", gained.join(", ")),
                    old_guest: Verdict::Works,
                    new_guest: ng,
                }
            } else {
                Words {
                    class: Breaking,
                    what: format!("{owner} no longer accepts {}", lost.join(", ")),
                    old_guest: fails(format!(
                        "a guest built from OLD may pass {}, which a host built from NEW refuses",
                        lost.join(", ")
                    )),
                    new_guest: ng,
                }
            }
        }
    }
}

fn entity_words(e: &Entity, key: &Key, added: bool, a: &Facts, b: &Facts) -> Words {
    let owner = noun(key, a, b);
    let class = if added { e.added } else { e.removed };
    let kind = key.seg(0);
    let mut w = Words {
        class,
        what: format!("{owner} {}", if added { "added" } else { "removed" }),
        old_guest: Verdict::Works,
        new_guest: Verdict::Works,
    };
    let detail = |f: &Facts| -> String {
        let mut k = key.clone();
        k.0.push(Seg::Name("nr".into()));
        f.map
            .get(&k)
            .and_then(|f| f.value.int())
            .map_or(String::new(), |n| format!(" (number {n})"))
    };
    match (kind.as_str(), added, class) {
        ("hypercall", _, _) if key.0.len() == 4 && key.seg(2) == "result" => {
            let call = key.seg(1);
            if added {
                w.old_guest = fails(format!(
                    "a host built from NEW answers `{call}` in a register a guest built from OLD does not read (and, with an error code, an error the guest takes for success)"
                ));
                w.new_guest = fails(format!(
                    "a guest built from NEW reads {owner}, which a host built from OLD does not set"
                ));
            } else {
                w.old_guest = fails(format!(
                    "a guest built from OLD reads {owner}, which a host built from NEW does not set"
                ));
                w.new_guest = fails(format!(
                    "a host built from OLD answers `{call}` in a register a guest built from NEW does not read"
                ));
            }
        }
        ("hypercall", _, _) if key.0.len() == 4 && key.seg(2) == "mem" => {
            // A memory argument: over a register the other side has as a plain value (an
            // address its host read by hand, or not at all), or in a struct field.
            let (call, side) = (key.seg(1), if added { b } else { a });
            let fact = |leaf: &str| {
                let mut k = key.clone();
                k.0.push(Seg::Name(leaf.into()));
                side.map
                    .get(&k)
                    .and_then(|f| f.value.str().map(String::from))
            };
            let mem_kind = fact("kind").unwrap_or_default();
            let at = fact("at").unwrap_or_default();
            let written = fact("dir").is_some_and(|d| d != "in");
            // The register argument it travels in, if the other side has it too.
            let other = if added { a } else { b };
            let reg = at.strip_prefix("arg ").filter(|i| {
                let k = Key::parse(&format!("hypercall.{call}.arg.{i}.type"));
                other.map.contains_key(&k)
            });
            let strict = format!(
                "reads as the address of a `{mem_kind}` in guest memory, refusing the call where that memory breaks the spec (outside memory, over its maximum, misaligned, no NUL)"
            );
            let plain = "takes as a plain value, never reading or writing the memory";
            if let Some(i) = reg {
                w.what = format!(
                    "argument {i} of hypercall `{call}` {} a `{mem_kind}` in guest memory",
                    if added {
                        "now names"
                    } else {
                        "no longer names"
                    }
                );
                let loose = format!(
                    "may pass any value in argument {i} of `{call}`, which a host built from"
                );
                // The address still travels in the same register: the side that reads memory
                // refuses what the other accepted; one that expects memory written back does
                // not get it.
                let unwritten = |guest: &str, host: &str| {
                    fails(format!(
                        "a guest built from {guest} expects the `{mem_kind}` at argument {i} of `{call}` written back, which a host built from {host} {plain}"
                    ))
                };
                if added {
                    w.old_guest = fails(format!("a guest built from OLD {loose} NEW {strict}"));
                    if written {
                        w.new_guest = unwritten("NEW", "OLD");
                    }
                } else {
                    w.new_guest = fails(format!("a guest built from NEW {loose} OLD {strict}"));
                    if written {
                        w.old_guest = unwritten("OLD", "NEW");
                    }
                }
            } else if added {
                w.old_guest = fails(format!(
                    "a guest built from OLD passes {owner} as a plain value, where a host built from NEW {strict}"
                ));
                w.new_guest = fails(format!(
                    "a guest built from NEW passes an address for `{call}` that a host built from OLD {plain}"
                ));
            } else {
                w.old_guest = fails(format!(
                    "a guest built from OLD passes {owner} as an address, which a host built from NEW {plain}"
                ));
                w.new_guest = fails(format!(
                    "a guest built from NEW passes a plain value for `{call}` where a host built from OLD {strict}"
                ));
            }
        }
        ("hypercall", _, _) if key.0.len() == 4 => {
            // An argument.
            let call = key.seg(1);
            if added {
                w.old_guest = fails(format!(
                    "a guest built from OLD leaves argument {} of `{call}` at 0, which a host built from NEW takes as a value",
                    key.seg(3)
                ));
                w.new_guest = fails(format!(
                    "a guest built from NEW passes argument {} of `{call}`, which a host built from OLD ignores",
                    key.seg(3)
                ));
            } else {
                w.old_guest = fails(format!(
                    "a guest built from OLD passes argument {} of `{call}`, which a host built from NEW ignores",
                    key.seg(3)
                ));
                w.new_guest = fails(
                    "a guest built from NEW leaves it at 0, which a host built from OLD takes as a value",
                );
            }
        }
        ("hypercall", true, _) => {
            w.what = format!("{owner} added{}", detail(b));
            w.new_guest = fails(format!(
                "a guest built from NEW may call `{}`, which a host built from OLD refuses as unknown",
                key.seg(1)
            ));
        }
        ("hypercall", false, _) => {
            w.what = format!("{owner} removed{}", detail(a));
            w.old_guest = fails(format!(
                "a guest built from OLD calls `{}`, which a host built from NEW refuses as unknown",
                key.seg(1)
            ));
        }
        (_, true, Additive) => {
            w.new_guest = fails(format!(
                "a guest built from NEW may use {owner}, which a host built from OLD does not know"
            ));
        }
        (_, false, Breaking) => {
            w.old_guest = fails(format!(
                "a guest built from OLD uses {owner}, which a host built from NEW does not know"
            ));
        }
        (_, true, Breaking) => {
            w.old_guest = fails(format!(
                "a guest built from OLD does not provide {owner}, which a host built from NEW expects"
            ));
            w.new_guest = fails(format!(
                "a guest built from NEW provides {owner}, which a host built from OLD does not expect"
            ));
        }
        _ => {}
    }
    w
}

/// Every difference between `old` and `new`, classified, in path order.
pub fn compare(old: &Facts, new: &Facts) -> Vec<Change> {
    let mut out = Vec::new();
    // Entities added or removed as a whole; facts under them are covered.
    let mut covered: Vec<Key> = Vec::new();
    let is_covered = |covered: &[Key], k: &Key| covered.iter().any(|c| k.starts_with(c));
    for e in ENTITIES {
        let (before, after) = (entities(old, e), entities(new, e));
        let mut removed: Vec<&Key> = before
            .difference(&after)
            .filter(|k| !is_covered(&covered, k))
            .collect();
        let mut added: Vec<&Key> = after
            .difference(&before)
            .filter(|k| !is_covered(&covered, k))
            .collect();
        if e.renamable {
            let mut pairs = Vec::new();
            for r in &removed {
                let id = identity(old, r);
                if let Some(a) = added.iter().find(|a| {
                    identity(new, a) == id && !pairs.iter().any(|(_, x): &(Key, Key)| x == **a)
                }) {
                    pairs.push(((*r).clone(), (*a).clone()));
                }
            }
            for (r, a) in pairs {
                removed.retain(|k| **k != r);
                added.retain(|k| **k != a);
                out.push(Change {
                    path: a.clone(),
                    class: Compatible,
                    what: format!(
                        "{} renamed to `{}` (a name only: same facts)",
                        noun(&r, old, new),
                        a.seg(a.0.len() - 1)
                    ),
                    old_guest: Verdict::Works,
                    new_guest: Verdict::Works,
                    old_span: first_span(old, &r),
                    new_span: first_span(new, &a),
                    always_error: false,
                });
                covered.push(r);
                covered.push(a);
            }
        }
        for (keys, is_added) in [(removed, false), (added, true)] {
            for k in keys {
                let w = entity_words(e, k, is_added, old, new);
                out.push(Change {
                    path: k.clone(),
                    class: w.class,
                    what: w.what,
                    old_guest: w.old_guest,
                    new_guest: w.new_guest,
                    old_span: if is_added { None } else { first_span(old, k) },
                    new_span: if is_added {
                        first_span(new, k)
                    } else {
                        nearest(new, k)
                    },
                    always_error: false,
                });
                covered.push(k.clone());
            }
        }
    }
    let keys: BTreeSet<&Key> = old.map.keys().chain(new.map.keys()).collect();
    for k in keys {
        if is_covered(&covered, k) {
            continue;
        }
        let (o, n) = (old.map.get(k), new.map.get(k));
        if o.map(|f| &f.value) == n.map(|f| &f.value) {
            continue;
        }
        let r = rule(k);
        if r == Rule::Version {
            continue;
        }
        let w = judged(k, r, o.map(|f| &f.value), n.map(|f| &f.value), old, new);
        out.push(Change {
            path: k.clone(),
            class: w.class,
            what: w.what,
            old_guest: w.old_guest,
            new_guest: w.new_guest,
            old_span: o.map(|f| f.span.clone()),
            new_span: n.map(|f| f.span.clone()).or_else(|| nearest(new, k)),
            always_error: false,
        });
    }
    versions(old, new, &mut out);
    merge_resizes(&mut out);
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// A shared-page field whose type and size both changed is one change: resized.
fn merge_resizes(out: &mut Vec<Change>) {
    let sized: Vec<Key> = out
        .iter()
        .filter(|c| c.path.0.len() == 4 && c.path.seg(0) == "shared" && c.path.seg(3) == "size")
        .map(|c| c.path.prefix(3))
        .collect();
    for field in sized {
        let is = |c: &Change, leaf: &str| {
            c.path.prefix(3) == field && c.path.0.len() == 4 && c.path.seg(3) == leaf
        };
        let Some(size) = out.iter().position(|c| is(c, "size")) else {
            continue;
        };
        let Some(ty) = out.iter().position(|c| is(c, "type")) else {
            continue;
        };
        let bytes = out[size]
            .what
            .rsplit(": size ")
            .next()
            .unwrap_or("")
            .to_string();
        let types = out[ty]
            .what
            .rsplit(": type ")
            .next()
            .unwrap_or("")
            .replace('"', "");
        out[ty].what = format!("{} resized: {types} ({bytes} bytes)", noun_field(&field));
        out[ty].old_guest = out[size].old_guest.clone();
        out[ty].new_guest = out[size].new_guest.clone();
        out.remove(size);
    }
}

fn noun_field(field: &Key) -> String {
    format!("shared-page field `{}`", field.seg(2))
}

/// The version rules: it never goes back, and an added hypercall's `since` is newer than
/// the old side's version (guests of that version do not know the call).
fn versions(old: &Facts, new: &Facts, out: &mut Vec<Change>) {
    let (ov, nv) = (old.version(), new.version());
    let at = |f: &Facts| {
        f.map
            .get(&Key::parse("abi.version"))
            .map(|f| f.span.clone())
    };
    if nv < ov {
        out.push(Change {
            path: Key::parse("abi.version"),
            class: Breaking,
            what: format!("the ABI version went back: {ov} → {nv}"),
            old_guest: fails(format!(
                "a guest built from OLD (v{ov}) would be taken for an older one by a host built from NEW (v{nv})"
            )),
            new_guest: Verdict::Works,
            old_span: at(old),
            new_span: at(new),
            always_error: true,
        });
    }
    for c in out.iter_mut() {
        if c.path.0.len() == 2 && c.path.seg(0) == "hypercall" && c.old_span.is_none() {
            let mut k = c.path.clone();
            k.0.push(Seg::Name("since".into()));
            if let Some(f) = new.map.get(&k)
                && let Some(s) = f.value.int()
                && s <= ov
            {
                c.class = Breaking;
                c.always_error = true;
                c.what = format!("{} has `since = {s}`, but v{ov} does not have it", c.what);
                c.old_guest = fails(format!(
                    "a host that refuses calls by version lets guests of v{s} make a call they do not know"
                ));
                c.new_span = Some(f.span.clone());
            }
        }
    }
}

/// The values in OLD's list and not NEW's, and in NEW's and not OLD's (an enum's values,
/// for arguments and results alike), each sorted and written out.
fn value_changes(old: Option<&Value>, new: Option<&Value>) -> (Vec<String>, Vec<String>) {
    let set = |v: Option<&Value>| -> BTreeSet<u64> {
        v.and_then(Value::list)
            .map(|l| l.iter().filter_map(Value::int).collect())
            .unwrap_or_default()
    };
    let (o, n) = (set(old), set(new));
    let lost = o.difference(&n).map(|v| v.to_string()).collect();
    let gained = n.difference(&o).map(|v| v.to_string()).collect();
    (lost, gained)
}
