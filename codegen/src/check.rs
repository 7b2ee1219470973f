//! Room: the checks that need the whole spec: unique names and numbers (including the
//! Rust names derived from two spec names), names the generator already uses, register and
//! ring budgets, the shared page's layout, and references between sections.
//!
//! Runs after parsing, in the same pass (on whatever parsed, so a typo elsewhere does not
//! hide these), and fixes up what only the whole spec knows (field offsets, relocation
//! targets). All arithmetic is checked: sizes are bounded by the page before they are summed.

use std::collections::HashMap;

use crate::diag::{Diagnostic, Diagnostics};
use crate::names::{camel, upper};
use crate::spec::*;

/// Size of a ring slot in bytes: the call number plus `args` arguments, 8 bytes each.
pub fn slot_size(ring: &Ring) -> u64 {
    ring.args.saturating_add(1).saturating_mul(8)
}

/// Size and alignment of a shared-page field.
pub fn field_size_align(ty: &FieldType, ring: Option<&Ring>) -> (u64, u64) {
    match ty {
        FieldType::Prim(p) => (p.size(), p.size()),
        FieldType::Array(p, n) => (p.size().saturating_mul(*n), p.size()),
        FieldType::RingStatus => (ring.map_or(0, |r| r.size), 1),
        FieldType::RingSlots => (ring.map_or(0, |r| r.size.saturating_mul(slot_size(r))), 8),
    }
}

/// Size of the shared page struct (C layout: padded to its largest alignment).
pub fn shared_size(sh: &SharedPage, ring: Option<&Ring>) -> u64 {
    let align = sh
        .fields
        .iter()
        .map(|f| field_size_align(&f.ty, ring).1)
        .max()
        .unwrap_or(1);
    let end = sh
        .fields
        .iter()
        .map(|f| f.offset.saturating_add(field_size_align(&f.ty, ring).0))
        .max()
        .unwrap_or(0);
    end.div_ceil(align).saturating_mul(align)
}

/// Largest shared page: one 4 KiB page.
pub const PAGE: u64 = 4096;

/// Checks `spec`, recording problems in `d`.
pub fn check(spec: &mut Spec, d: &mut Diagnostics) {
    names_unique(spec, d);
    reserved(spec, d);
    budget(spec, d);
    hypercalls(spec, d);
    shared(spec, d);
    templates(spec, d);
    pv_ops(spec, d);
    results(spec, d);
}

fn dup<'a>(
    d: &mut Diagnostics,
    seen: &mut HashMap<String, &'a Sp<String>>,
    key: String,
    name: &'a Sp<String>,
    what: &str,
) {
    if let Some(prev) = seen.get(&key) {
        let same = prev.v == name.v;
        d.push(
            Diagnostic::new(
                name.span.clone(),
                if same {
                    format!("duplicate {what} `{}`", name.v)
                } else {
                    format!(
                        "{what} `{}` and `{}` both become `{key}` in Rust",
                        prev.v, name.v
                    )
                },
            )
            .help(format!("{what} names must be unique; rename one")),
        );
    } else {
        seen.insert(key, name);
    }
}

/// Rejects spec names whose Rust form would collide with an item the generator names.
fn reserved(spec: &Spec, d: &mut Diagnostics) {
    let abi = camel(&spec.abi.name.v);
    let mut hit = |name: &Sp<String>, rust: String, what: &str, taken: &[String]| {
        if taken.contains(&rust) {
            d.push(
                Diagnostic::new(
                    name.span.clone(),
                    format!(
                        "{what} `{}` would generate `{rust}`, which the generator already uses",
                        name.v
                    ),
                )
                .help(format!("rename the {what}")),
            );
        }
    };
    let transports = [
        "Transport".to_string(),
        "DefaultTransport".into(),
        // The guest's trait for turning memory arguments' pointers into addresses.
        "Translate".into(),
        format!("{abi}Hypercalls"),
    ];
    for t in &spec.transports {
        hit(&t.name, camel(&t.name.v), "transport", &transports);
    }
    let tables = ["PvOps".to_string(), "PvOpId".into()];
    for t in &spec.pv_tables {
        hit(
            &t.name,
            format!("{}Ops", camel(&t.name.v)),
            "pv_table",
            &tables,
        );
    }
    if let Some(sh) = &spec.shared {
        let taken = ["Writer".to_string(), "FieldInfo".into(), "RingSlot".into()];
        hit(&sh.name, camel(&sh.name.v), "shared-page struct", &taken);
    }
    let templates = ["TEMPLATES".to_string(), "MAX_TEMPLATE_LEN".into()];
    for t in &spec.templates {
        hit(&t.name, upper(&t.name.v), "template", &templates);
    }
    let abi = camel(&spec.abi.name.v);
    for h in &spec.hypercalls {
        if h.name.v == "unhandled" {
            d.push(
                Diagnostic::new(
                    h.name.span.clone(),
                    format!("hypercall `unhandled` would clash with `{abi}DefaultHost::unhandled`, which the generator defines"),
                )
                .help("rename the hypercall"),
            );
        }
    }
}

fn names_unique(spec: &Spec, d: &mut Diagnostics) {
    let mut seen = HashMap::new();
    for t in &spec.types {
        dup(d, &mut seen, camel(&t.name.v), &t.name, "type");
        if let TypeKind::Enum { variants, .. } = &t.kind {
            let mut vs = HashMap::new();
            for v in variants {
                dup(d, &mut vs, camel(&v.name.v), &v.name, "variant");
            }
        }
    }
    let mut seen = HashMap::new();
    for s in &spec.structs {
        dup(d, &mut seen, camel(&s.name.v), &s.name, "struct");
    }
    let mut seen = HashMap::new();
    for t in &spec.transports {
        dup(d, &mut seen, camel(&t.name.v), &t.name, "transport");
    }
    let mut seen = HashMap::new();
    for t in &spec.pv_tables {
        dup(d, &mut seen, camel(&t.name.v), &t.name, "pv_table");
    }
    // `PvOpId` variants join two names: table `a` op `b_c` and table `a_b` op `c` are both
    // `ABC`.
    let mut ids: HashMap<String, (&str, &str)> = HashMap::new();
    for (t, op) in spec.pv_ops() {
        let id = format!("{}{}", camel(&t.name.v), camel(&op.name.v));
        if let Some((pt, po)) = ids.get(&id) {
            d.push(
                Diagnostic::new(
                    op.name.span.clone(),
                    format!(
                        "pv_ops `{pt}.{po}` and `{}.{}` both become `PvOpId::{id}`",
                        t.name.v, op.name.v
                    ),
                )
                .help("rename the op or its table"),
            );
        } else {
            ids.insert(id, (&t.name.v, &op.name.v));
        }
    }
}

fn hypercalls(spec: &Spec, d: &mut Diagnostics) {
    let mut names: HashMap<String, &Sp<String>> = HashMap::new();
    let mut nrs: HashMap<u64, &Hypercall> = HashMap::new();
    for h in &spec.hypercalls {
        dup(d, &mut names, camel(&h.name.v), &h.name, "hypercall");
        if let Some(prev) = nrs.get(&h.nr.v) {
            d.push(
                Diagnostic::new(
                    h.nr.span.clone(),
                    format!(
                        "hypercalls `{}` and `{}` share number {}",
                        prev.name.v, h.name.v, h.nr.v
                    ),
                )
                .help("hypercall numbers are unique and stable: pick an unused one"),
            );
        } else {
            nrs.insert(h.nr.v, h);
        }
        for t in &spec.transports {
            if h.ret.is_some() && t.ret.is_none() {
                d.push(
                    Diagnostic::new(
                        h.name.span.clone(),
                        format!(
                            "hypercall `{}` returns a value (`ret`) but transport `{}` has no result register",
                            h.name.v, t.name.v
                        ),
                    )
                    .help("return it through an `out` field in guest memory, or give the transport a `ret` register"),
                );
            }
            if t.nr == Nr::Port && h.nr.v > 0xffff {
                d.push(
                    Diagnostic::new(
                        h.nr.span.clone(),
                        format!(
                            "hypercall `{}` has number {:#x}, but transport `{}` writes to the port the number names, and ports are 16-bit",
                            h.name.v, h.nr.v, t.name.v
                        ),
                    )
                    .help("use a number up to 0xffff"),
                );
            }
            if h.args.len() > t.args.len() {
                let extra = &h.args[t.args.len()];
                d.push(
                    Diagnostic::new(
                        extra.name.span.clone(),
                        format!(
                            "hypercall `{}` has {} arguments but transport `{}` has {} argument registers",
                            h.name.v,
                            h.args.len(),
                            t.name.v,
                            t.args.len()
                        ),
                    )
                    .help("pass fewer arguments (e.g. a guest-physical address of a struct), or give the transport more registers"),
                );
            }
        }
        if h.lazy {
            match &spec.ring {
                None => d.push(
                    Diagnostic::new(h.name.span.clone(), format!("hypercall `{}` is lazy but the spec has no [ring]", h.name.v))
                        .help("add a [ring] table (size, args, ready, done) and its shared-page fields, or remove `lazy`"),
                ),
                Some(r) if r.args != Ring::UNKNOWN_ARGS && h.args.len() as u64 > r.args => {
                    let extra = &h.args[r.args as usize];
                    d.push(
                        Diagnostic::new(
                            extra.name.span.clone(),
                            format!(
                                "lazy hypercall `{}` has {} arguments but a ring slot holds {}",
                                h.name.v,
                                h.args.len(),
                                r.args
                            ),
                        )
                        .help("make it synchronous (remove `lazy`), or raise `args` in [ring]"),
                    );
                }
                Some(_) => {}
            }
        }
    }
}

fn shared(spec: &mut Spec, d: &mut Diagnostics) {
    let ring = spec.ring.clone();
    let Some(sh) = &mut spec.shared else {
        if let Some(r) = &ring {
            d.push(
                Diagnostic::new(r.span.clone(), "[ring] needs a [shared] page to live in")
                    .help("add [shared] with fields of type \"ring.status\" and \"ring.slots\""),
            );
        }
        return;
    };
    let mut status = Vec::new();
    let mut slots = Vec::new();
    let mut cur = 0u64;
    for f in &mut sh.fields {
        match f.ty {
            FieldType::RingStatus => status.push(f.ty_span.clone()),
            FieldType::RingSlots => slots.push(f.ty_span.clone()),
            _ => {}
        }
        if matches!(f.ty, FieldType::RingStatus | FieldType::RingSlots) && ring.is_none() {
            d.push(
                Diagnostic::new(
                    f.ty_span.clone(),
                    format!(
                        "field `{}` is part of the ring, but the spec has no [ring]",
                        f.name.v
                    ),
                )
                .help("add a [ring] table (size, args, ready, done)"),
            );
        }
        let (size, align) = field_size_align(&f.ty, ring.as_ref());
        let at = cur.div_ceil(align).saturating_mul(align);
        if f.offset != u64::MAX && f.offset != at {
            d.push(
                Diagnostic::new(
                    f.name.span.clone(),
                    format!(
                        "shared-page field `{}` has `offset = {}` but the C layout rules put it at {at}",
                        f.name.v, f.offset
                    ),
                )
                .help(format!("set `offset = {at}` (or add padding fields before it to move it)")),
            );
        }
        f.offset = at;
        cur = at.saturating_add(size);
    }
    if let Some(r) = &ring {
        for (list, key) in [(&status, "ring.status"), (&slots, "ring.slots")] {
            if list.is_empty() {
                d.push(
                    Diagnostic::new(
                        r.span.clone(),
                        format!("[ring] needs a shared-page field of type \"{key}\""),
                    )
                    .help(format!("add a [[shared.field]] with `type = \"{key}\"`")),
                );
            }
            for extra in list.iter().skip(1) {
                d.push(
                    Diagnostic::new(extra.clone(), format!("a second field of type \"{key}\""))
                        .help("the ring has one status array and one slot array"),
                );
            }
        }
    }
    let size = shared_size(sh, ring.as_ref());
    let ring_known = ring.as_ref().is_none_or(|r| r.args != Ring::UNKNOWN_ARGS);
    if size > PAGE && ring_known {
        d.push(
            Diagnostic::new(
                sh.name.span.clone(),
                format!("the shared page is {size} bytes, more than one {PAGE}-byte page"),
            )
            .help("shrink the ring or drop fields"),
        );
    }
}

fn templates(spec: &mut Spec, d: &mut Diagnostics) {
    let mut names = HashMap::new();
    for t in &spec.templates {
        dup(d, &mut names, camel(&t.name.v), &t.name, "template");
    }
    // Relocations were parsed before the layout was known: point them at the final offsets.
    let offsets: HashMap<String, u64> = spec
        .shared
        .iter()
        .flat_map(|s| s.fields.iter().map(|f| (f.name.v.clone(), f.offset)))
        .collect();
    for t in &mut spec.templates {
        for f in &mut t.forms {
            for r in &mut f.relocs {
                if let Some(o) = offsets.get(&r.field) {
                    r.field_offset = *o;
                }
            }
        }
    }
}

fn pv_ops(spec: &Spec, d: &mut Diagnostics) {
    // `PvOpId::id()` and call-site records number ops in a u16.
    if let Some((_, op)) = spec.pv_ops().nth(usize::from(u16::MAX) + 1) {
        d.push(
            Diagnostic::new(
                op.name.span.clone(),
                format!(
                    "pv_op `{}` is op number 65536: ops are numbered in 16 bits",
                    op.name.v
                ),
            )
            .help("a spec has at most 65536 pv_ops"),
        );
    }
    for (_, op) in spec.pv_ops() {
        if let Some(t) = &op.template
            && spec.template(&t.v).is_none()
        {
            let names: Vec<&str> = spec.templates.iter().map(|t| t.name.v.as_str()).collect();
            let help = match crate::diag::did_you_mean(&t.v, &names) {
                Some(n) => format!("did you mean `{n}`?"),
                None if names.is_empty() => {
                    "the spec has no [[template]]: add one or remove `template`".into()
                }
                None => format!("templates are: {}", names.join(", ")),
            };
            d.push(
                Diagnostic::new(
                    t.span.clone(),
                    format!(
                        "pv_op `{}` names template `{}`, which does not exist",
                        op.name.v, t.v
                    ),
                )
                .help(help),
            );
        }
    }
}

/// Budgets between sections: ring slots against transport registers, and the numbers
/// module's names (hypercall numbers, consts and the ABI's own).
fn budget(spec: &Spec, d: &mut Diagnostics) {
    if let Some(r) = &spec.ring
        && !spec.transports.is_empty()
        && r.args != Ring::UNKNOWN_ARGS
        && r.args > spec.arg_regs() as u64
    {
        d.push(
            Diagnostic::new(
                r.span.clone(),
                format!(
                    "a ring slot holds {} arguments but a transport has only {} argument registers",
                    r.args,
                    spec.arg_regs()
                ),
            )
            .help("a full ring makes queued calls directly, so a slot cannot hold more than the registers carry"),
        );
    }
    const OWN: [&str; 3] = ["ABI_NAME", "ABI_VERSION", "ARG_REGS"];
    let consts: Vec<String> = spec.consts.iter().map(|c| upper(&c.name.v)).collect();
    for h in &spec.hypercalls {
        let up = upper(&h.name.v);
        if consts.contains(&up) || OWN.contains(&up.as_str()) {
            d.push(
                Diagnostic::new(
                    h.name.span.clone(),
                    format!("hypercall `{}` and a constant both become `{up}`", h.name.v),
                )
                .help("rename the hypercall or the const"),
            );
        }
    }
    for c in &spec.consts {
        let up = upper(&c.name.v);
        if OWN.contains(&up.as_str()) {
            d.push(
                Diagnostic::new(
                    c.name.span.clone(),
                    format!("const `{}` clashes with the generated `{up}`", c.name.v),
                )
                .help("rename the const"),
            );
        }
    }
}

/// `results`: each in a register every transport hands back (its `ret` register or one of
/// its `ARG_REGS` argument registers), at the same place in all of them (the generated
/// wrapper reads results by place, whichever transport it runs on); never on a lazy call
/// (a queued call answers in no register); a results struct's name free in `types`.
fn results(spec: &mut Spec, d: &mut Diagnostics) {
    let arg_regs = spec.arg_regs();
    let type_names: Vec<String> = spec.types.iter().map(|t| camel(&t.name.v)).collect();
    for h in &mut spec.hypercalls {
        if h.results.is_empty() {
            continue;
        }
        if h.lazy {
            d.push(
                Diagnostic::new(
                    h.results[0].name.span.clone(),
                    format!(
                        "lazy hypercall `{}` has `results`, but a call queued in the ring answers in no register",
                        h.name.v
                    ),
                )
                .help("make it synchronous (remove `lazy`), or return the values through an `out` argument in guest memory"),
            );
        }
        if h.values().count() > 1 {
            let st = format!("{}Results", camel(&h.name.v));
            if type_names.contains(&st) {
                d.push(
                    Diagnostic::new(
                        h.name.span.clone(),
                        format!(
                            "hypercall `{}` returns its results as `types::{st}`, which a [types] entry already is",
                            h.name.v
                        ),
                    )
                    .help("rename the hypercall or the type"),
                );
            }
        }
        for r in &mut h.results {
            let mut first: Option<(usize, &str)> = None;
            for t in &spec.transports {
                let slot = if t.ret == Some(r.reg.v) {
                    Some(0)
                } else {
                    t.args
                        .iter()
                        .take(arg_regs)
                        .position(|a| *a == r.reg.v)
                        .map(|i| i + 1)
                };
                let Some(slot) = slot else {
                    let mut regs: Vec<String> = t
                        .ret
                        .iter()
                        .map(|r| format!("`{}` (its `ret`)", r.name()))
                        .collect();
                    regs.extend(
                        t.args
                            .iter()
                            .take(arg_regs)
                            .map(|r| format!("`{}`", r.name())),
                    );
                    let help = if regs.is_empty() {
                        format!(
                            "transport `{}` has no result register: return the values through an `out` argument in guest memory",
                            t.name.v
                        )
                    } else {
                        format!(
                            "a result comes back in a register the transport hands back: {}",
                            regs.join(", ")
                        )
                    };
                    let nr_note = if t.nr == Nr::Reg(r.reg.v) {
                        " (it carries the call number)"
                    } else {
                        ""
                    };
                    d.push(
                        Diagnostic::new(
                            r.reg.span.clone(),
                            format!(
                                "result `{}` of hypercall `{}` is in `{}`, which transport `{}` does not hand back{nr_note}",
                                r.name.v,
                                h.name.v,
                                r.reg.v.name(),
                                t.name.v
                            ),
                        )
                        .help(help),
                    );
                    continue;
                };
                match first {
                    None => {
                        first = Some((slot, &t.name.v));
                        r.slot = slot;
                    }
                    Some((s, other)) if s != slot => d.push(
                        Diagnostic::new(
                            r.reg.span.clone(),
                            format!(
                                "result `{}` of hypercall `{}` is in `{}`, which is {} of transport `{other}` but {} of `{}`",
                                r.name.v,
                                h.name.v,
                                r.reg.v.name(),
                                slot_words(s),
                                slot_words(slot),
                                t.name.v
                            ),
                        )
                        .help("the generated wrapper reads a result by its place among a transport's registers, whichever transport it runs on: list the transports' registers in the same order"),
                    ),
                    Some(_) => {}
                }
            }
        }
    }
}

fn slot_words(slot: usize) -> String {
    if slot == 0 {
        "the result register".into()
    } else {
        format!("argument register {}", slot - 1)
    }
}
