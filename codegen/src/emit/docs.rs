//! The Markdown ABI reference: hypercalls, transports, shared page, ring, pv_ops, templates.

use std::fmt::Write;

use crate::check::{field_size_align, shared_size, slot_size};
use crate::names::upper;
use crate::spec::{ConstValue, Spec};

fn cell(s: &str) -> String {
    s.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

/// An argument type as the spec spells it.
fn type_name(spec: &Spec, ty: &crate::spec::ArgType) -> String {
    match ty {
        crate::spec::ArgType::Prim(p) => p.name().to_string(),
        crate::spec::ArgType::Named(i) => spec.types[*i].name.v.clone(),
    }
}

/// The whole reference, starting with `header` (the generated-file stamp).
pub(crate) fn markdown(spec: &Spec, header: &str) -> String {
    let mut o = String::new();
    let name = &spec.abi.name.v;
    let _ = writeln!(o, "<!-- {header} -->\n");
    let _ = writeln!(o, "# The `{name}` ABI, version {}\n", spec.abi.version);
    if let Some(d) = &spec.abi.doc {
        let _ = writeln!(o, "{}\n", d.trim());
    }

    let _ = writeln!(o, "## Transports\n");
    let _ = writeln!(
        o,
        "| Transport | Instruction | Call number | Arguments | Result |"
    );
    let _ = writeln!(o, "|---|---|---|---|---|");
    for (i, t) in spec.transports.iter().enumerate() {
        let insn = match t.port {
            Some(p) => format!("`{}` to port {p:#x}", t.instruction.name()),
            None => format!("`{}`", t.instruction.name()),
        };
        let args: Vec<String> = t.args.iter().map(|r| format!("`{}`", r.name())).collect();
        let _ = writeln!(
            o,
            "| `{}`{} | {insn} | {} | {} | {} |",
            t.name.v,
            if i == 0 { " (default)" } else { "" },
            match t.nr {
                crate::spec::Nr::Reg(r) => format!("`{}`", r.name()),
                crate::spec::Nr::Port => "the port written to".into(),
                crate::spec::Nr::Address => "the address stored to".into(),
            },
            args.join(", "),
            t.ret.map_or("none".into(), |r| format!("`{}`", r.name()))
        );
    }
    let _ = writeln!(
        o,
        "\nEvery call loads all {} argument registers; arguments a call does not take travel as 0.\n",
        spec.arg_regs()
    );

    let _ = writeln!(o, "## Hypercalls\n");
    let _ = writeln!(o, "| Nr | Name | Arguments | Lazy | Returns |");
    let _ = writeln!(o, "|---|---|---|---|---|");
    let mut sorted: Vec<_> = spec.hypercalls.iter().collect();
    sorted.sort_by_key(|h| h.nr.v);
    for h in &sorted {
        let args: Vec<String> = h
            .args
            .iter()
            .enumerate()
            .map(|(i, a)| {
                let t = super::docs_memory::reg_type(spec, h, i)
                    .unwrap_or_else(|| type_name(spec, &a.ty));
                format!("`{}: {t}`", a.name.v)
            })
            .collect();
        let _ = writeln!(
            o,
            "| {} | [`{}`](#{}) | {} | {} | {} |",
            h.nr.v,
            upper(&h.name.v),
            h.name.v.replace('_', "-"),
            if args.is_empty() {
                "none".into()
            } else {
                args.join(", ")
            },
            if h.lazy { "yes" } else { "no" },
            if h.results.is_empty() {
                h.ret.as_deref().map_or("nothing".to_string(), cell)
            } else {
                h.results
                    .iter()
                    .map(|r| format!("`{}: {}`", r.name.v, type_name(spec, &r.ty)))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        );
    }
    for h in &sorted {
        let _ = writeln!(o, "\n### {}\n", h.name.v);
        let _ = writeln!(
            o,
            "`{}` = {}{}.\n",
            upper(&h.name.v),
            h.nr.v,
            if h.lazy {
                ", lazy (may be queued in the ring)"
            } else {
                ""
            }
        );
        let _ = writeln!(o, "{}\n", h.doc.trim());
        if !h.args.is_empty() {
            let _ = writeln!(o, "| Register | Argument | Type | Host checks | Meaning |");
            let _ = writeln!(o, "|---|---|---|---|---|");
            for (i, a) in h.args.iter().enumerate() {
                let c = super::constraint_text(spec, a);
                let _ = writeln!(
                    o,
                    "| {} | `{}` | `{}` | {} | {} |",
                    i,
                    a.name.v,
                    super::docs_memory::reg_type(spec, h, i)
                        .unwrap_or_else(|| type_name(spec, &a.ty)),
                    if c.is_empty() { "–".into() } else { c },
                    cell(a.doc.as_deref().unwrap_or(""))
                );
            }
            let _ = writeln!(o);
        }
        o.push_str(&super::docs_memory::call_memory(spec, h));
        if let Some(r) = &h.ret {
            let _ = writeln!(o, "Returns {}\n", r.trim());
        }
        if !h.results.is_empty() {
            let _ = writeln!(o, "| Register | Result | Type | Meaning |");
            let _ = writeln!(o, "|---|---|---|---|");
            for r in &h.results {
                let mut meaning = cell(r.doc.as_deref().unwrap_or(""));
                if r.error {
                    let note = format!(
                        "The error code: {} is success; on any other value the other results are 0.",
                        r.ok.value
                    );
                    meaning = if meaning.is_empty() {
                        note
                    } else {
                        format!("{meaning} {note}")
                    };
                }
                let _ = writeln!(
                    o,
                    "| `{}` | `{}` | `{}` | {} |",
                    r.reg.v.name(),
                    r.name.v,
                    type_name(spec, &r.ty),
                    meaning
                );
            }
            let _ = writeln!(o);
        }
    }

    o.push_str(&super::docs_memory::structs(spec));

    if !spec.types.is_empty() {
        let _ = writeln!(o, "## Types\n");
        for t in &spec.types {
            match &t.kind {
                crate::spec::TypeKind::Alias(p) => {
                    let _ = writeln!(
                        o,
                        "* `{}` = `{}`: {}",
                        t.name.v,
                        p.name(),
                        cell(t.doc.as_deref().unwrap_or(""))
                    );
                }
                crate::spec::TypeKind::Enum { repr, variants } => {
                    let vs: Vec<String> = variants
                        .iter()
                        .map(|v| format!("`{}` = {}", v.name.v, v.value))
                        .collect();
                    let _ = writeln!(
                        o,
                        "* `{}` (enum, `{}`): {} Values: {}.",
                        t.name.v,
                        repr.name(),
                        cell(t.doc.as_deref().unwrap_or("")),
                        vs.join(", ")
                    );
                }
            }
        }
        let _ = writeln!(o);
    }

    if !spec.consts.is_empty() {
        let _ = writeln!(o, "## Constants\n");
        let _ = writeln!(o, "| Name | Value | Meaning |");
        let _ = writeln!(o, "|---|---|---|");
        for c in &spec.consts {
            let value = match &c.value {
                ConstValue::Int(n) => format!("{n} ({n:#x})"),
                ConstValue::Text(t) => format!("`` {t:?} `` (text)"),
            };
            let _ = writeln!(
                o,
                "| `{}` | {} | {} |",
                upper(&c.name.v),
                cell(&value),
                cell(c.doc.as_deref().unwrap_or(""))
            );
        }
        let _ = writeln!(o);
    }

    if let Some(sh) = &spec.shared {
        let ring = spec.ring.as_ref();
        let _ = writeln!(
            o,
            "## Shared page `{}` ({} bytes)\n",
            sh.name.v,
            shared_size(sh, ring)
        );
        if let Some(d) = &sh.doc {
            let _ = writeln!(o, "{}\n", d.trim());
        }
        let _ = writeln!(
            o,
            "| Offset | Size | Field | Type | Written by | Initial | Meaning |"
        );
        let _ = writeln!(o, "|---|---|---|---|---|---|---|");
        for f in &sh.fields {
            let (size, _) = field_size_align(&f.ty, ring);
            let ty = match &f.ty {
                crate::spec::FieldType::Prim(p) => p.name().to_string(),
                crate::spec::FieldType::Array(p, n) => format!("[{}; {n}]", p.name()),
                crate::spec::FieldType::RingStatus => {
                    format!("[u8; {}] (ring status)", ring.map_or(0, |r| r.size))
                }
                crate::spec::FieldType::RingSlots => {
                    format!("[slot; {}] (ring slots)", ring.map_or(0, |r| r.size))
                }
            };
            let init = match &f.ty {
                crate::spec::FieldType::RingStatus => {
                    ring.map_or("0".into(), |r| format!("{:#x} (done)", r.done))
                }
                crate::spec::FieldType::RingSlots => "0".into(),
                _ => format!("{:#x}", f.init),
            };
            let _ = writeln!(
                o,
                "| {} | {size} | `{}` | `{ty}` | {} | {init} | {} |",
                f.offset,
                f.name.v,
                f.writer.name(),
                cell(f.doc.as_deref().unwrap_or(""))
            );
        }
        let _ = writeln!(o);
        if let Some(r) = ring {
            let _ = writeln!(o, "### The async ring\n");
            if let Some(d) = &r.doc {
                let _ = writeln!(o, "{}\n", d.trim());
            }
            let _ = writeln!(
                o,
                "{} slots of {} bytes: the call number, then {} argument{} (8 bytes each). Status `{:#x}` = ready, `{:#x}` = done. Lazy hypercalls: {}.\n",
                r.size,
                slot_size(r),
                r.args,
                if r.args == 1 { "" } else { "s" },
                r.ready,
                r.done,
                spec.hypercalls
                    .iter()
                    .filter(|h| h.lazy)
                    .map(|h| format!("`{}`", h.name.v))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }

    if !spec.pv_tables.is_empty() {
        let _ = writeln!(o, "## pv_ops\n");
        for t in &spec.pv_tables {
            let _ = writeln!(o, "### Table `{}`\n", t.name.v);
            if let Some(d) = &t.doc {
                let _ = writeln!(o, "{}\n", d.trim());
            }
            let _ = writeln!(
                o,
                "| Op | Signature | Callee-save | Template | What it does |"
            );
            let _ = writeln!(o, "|---|---|---|---|---|");
            for op in &t.ops {
                let args: Vec<String> = op
                    .args
                    .iter()
                    .map(|(n, ty)| {
                        format!(
                            "{}: {}",
                            n.v,
                            quote::quote!(#ty)
                                .to_string()
                                .replace(" :: ", "::")
                                .replace("& ", "&")
                                .replace(" < ", "<")
                                .replace(" >", ">")
                        )
                    })
                    .collect();
                let ret = op.ret.as_ref().map_or(String::new(), |r| {
                    format!(
                        " -> {}",
                        quote::quote!(#r)
                            .to_string()
                            .replace(" :: ", "::")
                            .replace("& ", "&")
                            .replace(" < ", "<")
                            .replace(" >", ">")
                    )
                });
                let sig = format!(
                    "{}fn({}){ret}",
                    if op.is_unsafe { "unsafe " } else { "" },
                    args.join(", ")
                );
                let _ = writeln!(
                    o,
                    "| `{}` | `{}` | {} | {} | {} |",
                    op.name.v,
                    cell(&sig),
                    if op.callee_save { "yes" } else { "no" },
                    op.template
                        .as_ref()
                        .map_or("–".to_string(), |t| format!("`{}`", t.v)),
                    cell(&op.doc)
                );
            }
            let _ = writeln!(o);
        }
    }

    if !spec.templates.is_empty() {
        let _ = writeln!(o, "## Patch templates\n");
        let _ = writeln!(
            o,
            "A call site is as long as the longest form of its template; forms are tried in order and the first that fits (length and relocation range) is written.\n"
        );
        for t in &spec.templates {
            let site = Spec::template_site_len(t);
            let _ = writeln!(o, "### `{}` (site: {site} bytes)\n", t.name.v);
            if let Some(d) = &t.doc {
                let _ = writeln!(o, "{}\n", d.trim());
            }
            let _ = writeln!(o, "| Form | Bytes | Relocations |");
            let _ = writeln!(o, "|---|---|---|");
            for f in &t.forms {
                let hex: Vec<String> = f.bytes.iter().map(|b| format!("{b:02x}")).collect();
                let rel: Vec<String> = f
                    .relocs
                    .iter()
                    .map(|r| {
                        format!(
                            "{} `{}` (offset {}) at byte {}",
                            r.kind.name(),
                            r.field,
                            r.field_offset,
                            r.at
                        )
                    })
                    .collect();
                let _ = writeln!(
                    o,
                    "| `{}` | `{}` | {} |",
                    f.asm,
                    hex.join(" "),
                    rel.join("; ")
                );
            }
            let _ = writeln!(o);
        }
    }
    while o.ends_with("\n\n") {
        o.pop();
    }
    o
}
