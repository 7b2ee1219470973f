//! Room: the ABI reference's parts about guest memory: what each memory argument is (a
//! line per argument under its call's table) and the `[struct]` layouts (a table per
//! struct: offset, size, type, direction, checks).

use std::fmt::Write;

use crate::spec::{AddrKind, Hypercall, Len, MemAt, MemKind, NumForm, SType, Spec};

fn stype_text(spec: &Spec, t: &SType) -> String {
    match t {
        SType::Int(i) => i.name(),
        SType::Named(i) => spec.types[*i].name.v.clone(),
        SType::Struct(i) => spec.structs[*i].name.v.clone(),
        SType::Array(e, n) => format!("[{}; {n}]", stype_text(spec, e)),
        SType::Pad(n) => format!("{n} bytes of padding"),
    }
}

/// The register type shown for argument `i` of `h`: `&struct`, `[T]` or `str` for a
/// memory argument's address.
pub(crate) fn reg_type(spec: &Spec, h: &Hypercall, i: usize) -> Option<String> {
    let (_, m) = h.mem_at_reg(i)?;
    Some(format!("{} address", kind_text(spec, &m.kind)))
}

fn kind_text(spec: &Spec, k: &MemKind) -> String {
    match k {
        MemKind::Struct(s) => format!("&{}", spec.structs[*s].name.v),
        MemKind::Buffer { elem, .. } => format!("[{}]", stype_text(spec, elem)),
        MemKind::Str { .. } => "str".into(),
    }
}

/// A list of `h`'s memory arguments, or "".
pub(crate) fn call_memory(spec: &Spec, h: &Hypercall) -> String {
    let mut o = String::new();
    if h.mem.is_empty() {
        return o;
    }
    let _ = writeln!(o, "In guest memory:\n");
    for m in &h.mem {
        let mut parts = vec![format!(
            "`{}` (`{}`, {}, guest-{})",
            m.name.v,
            kind_text(spec, &m.kind),
            m.dir.name(),
            if m.addr == AddrKind::Virtual {
                "virtual"
            } else {
                "physical"
            }
        )];
        match &m.at {
            MemAt::Reg(i) => parts.push(format!("address in register {i}")),
            MemAt::Field(f) => parts.push(format!("address in `{}`", f.text)),
        }
        match &m.kind {
            MemKind::Struct(s) => parts.push(format!(
                "{} bytes, aligned to {}",
                spec.structs[*s].size, spec.structs[*s].align
            )),
            MemKind::Buffer { len, max, .. } => parts.push(match len {
                Len::Fixed(n) => match &n.form {
                    NumForm::Const { name, delta } => {
                        format!("`{}` ({}) elements", const_text(name, *delta), n.value)
                    }
                    _ => format!("{} elements", n.value),
                },
                Len::Arg(i) => format!("`{}` elements, at most {max}", h.args[*i].name.v),
                Len::Field(f) => format!("`{}` elements, at most {max}", f.text),
            }),
            MemKind::Str { max, utf8 } => parts.push(format!(
                "NUL-terminated, at most {max} bytes before the NUL{}",
                if *utf8 { ", UTF-8" } else { "" }
            )),
        }
        let doc = m
            .doc
            .as_deref()
            .map(|d| format!(": {}", d.split_whitespace().collect::<Vec<_>>().join(" ")))
            .unwrap_or_default();
        let _ = writeln!(o, "* {}{doc}", parts.join("; "));
    }
    let _ = writeln!(o);
    o
}

/// `## Structs`, or "".
pub(crate) fn structs(spec: &Spec) -> String {
    let mut o = String::new();
    if spec.structs.is_empty() {
        return o;
    }
    let _ = writeln!(o, "## Structs\n");
    for s in &spec.structs {
        let _ = writeln!(
            o,
            "### `{}` ({} bytes, aligned to {})\n",
            s.name.v, s.size, s.align
        );
        if let Some(d) = &s.doc {
            let _ = writeln!(o, "{}\n", d.trim());
        }
        let _ = writeln!(
            o,
            "| Offset | Size | Field | Type | Direction | Host checks | Meaning |"
        );
        let _ = writeln!(o, "|---|---|---|---|---|---|---|");
        for f in &s.fields {
            let (size, _) = spec.stype_size_align(&f.ty);
            if f.is_pad() {
                let _ = writeln!(o, "| {} | {size} | – | padding | – | – | |", f.offset);
                continue;
            }
            let mut c = Vec::new();
            if let Some((lo, hi)) = &f.range {
                c.push(format!("{} ≤ value ≤ {}", lo.value, hi.value));
            }
            if let Some(a) = &f.align {
                c.push(format!("multiple of {}", a.value));
            }
            if let SType::Named(i) = &f.ty
                && matches!(spec.types[*i].kind, crate::spec::TypeKind::Enum { .. })
            {
                c.push(format!("one of `{}`", spec.types[*i].name.v));
            }
            let _ = writeln!(
                o,
                "| {} | {size} | `{}` | `{}` | {} | {} | {} |",
                f.offset,
                f.name.v,
                stype_text(spec, &f.ty),
                f.dir.name(),
                if c.is_empty() {
                    "–".into()
                } else {
                    c.join("; ")
                },
                f.doc
                    .as_deref()
                    .unwrap_or("")
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
                    .replace('|', "\\|")
            );
        }
        let _ = writeln!(o);
    }
    o
}

/// `NAME`, `NAME + N` or `NAME - N`: a const-named number as the generated code spells it.
fn const_text(name: &str, delta: i128) -> String {
    let c = crate::names::upper(name);
    match delta.signum() {
        0 => c,
        1 => format!("{c} + {delta}"),
        _ => format!("{c} - {}", delta.unsigned_abs()),
    }
}
