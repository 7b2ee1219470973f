//! Room: `[struct.NAME]`: C structs in guest memory. Fields with integer, `[types]`,
//! nested-struct and fixed-array types, their direction and constraints, and explicit
//! padding; laid out here with C rules (a struct uses only structs defined before it), and
//! every byte accounted for: a gap the C rules would leave must be written as `{ pad = N }`.

use super::Parser;
use super::toml::{Obj, Val, as_obj, check_name};
use crate::diag::{Diagnostic, did_you_mean};
use crate::spec::*;

/// Largest struct: one 4 KiB page (a host copies it out of guest memory on every call).
pub const MAX_STRUCT: u64 = 4096;

impl Parser<'_> {
    /// Every `[struct.NAME]`, in source order.
    pub(super) fn structs(&mut self, o: &Obj<'_, '_>, types: &[TypeDef]) -> Vec<StructDef> {
        let mut out: Vec<StructDef> = Vec::new();
        for (k, v) in o.t.iter() {
            let name = Sp::new(k.get_ref().to_string(), k.span());
            let what = format!("struct `{}`", name.v);
            let Some(t) = as_obj(self.d, v, what.clone(), &name.v) else {
                continue;
            };
            t.check_keys(self.d, &["doc", "fields", "packed"]);
            let packed = t.opt_bool(self.d, "packed").unwrap_or(false);
            let name_ok = check_name(self.d, &name, "struct");
            // A field's or an element's `type` means an integer, then a `[types]` name, then
            // a struct, and an argument's `"str"` a string: a struct named like one of
            // those could not be used everywhere a struct can.
            let shadow = if Int::from_name(&name.v).is_some()
                || ["bool", "str"].contains(&name.v.as_str())
            {
                Some("a primitive")
            } else if types.iter().any(|t| t.name.v == name.v) {
                Some("a [types] entry")
            } else {
                None
            };
            if let Some(what_else) = shadow {
                self.d.push(
                    Diagnostic::new(name.span.clone(), format!("{what} has the name of {what_else}"))
                        .help(format!("a field's `type = \"{}\"` means {what_else}, so this struct could never be used there: rename it", name.v)),
                );
            }
            let doc = t.opt_text(self.d, "doc");
            let mut fields: Vec<SField> = Vec::new();
            let mut ok = true;
            match t.get("fields") {
                None => {
                    self.d.push(
                        Diagnostic::new(
                            t.span.clone(),
                            format!("missing required key `fields` in {what}"),
                        )
                        .help("add `fields = [{ name = \"len\", type = \"u64\" }, ...]`"),
                    );
                    ok = false;
                }
                Some(_) => {
                    if let Some(a) = t.opt_array(self.d, "fields") {
                        let mut pads = 0;
                        for fv in a.iter() {
                            match self.sfield(fv, &what, types, &out, &mut pads) {
                                Some(f)
                                    if fields
                                        .iter()
                                        .any(|p| !p.is_pad() && p.name.v == f.name.v) =>
                                {
                                    self.d.push(
                                        Diagnostic::new(
                                            f.name.span.clone(),
                                            format!("duplicate field `{}` in {what}", f.name.v),
                                        )
                                        .help("field names are unique within their struct"),
                                    );
                                    ok = false;
                                }
                                Some(f) => fields.push(f),
                                None => ok = false,
                            }
                        }
                    }
                }
            }
            if fields.iter().all(SField::is_pad) && ok {
                self.d.push(
                    Diagnostic::new(name.span.clone(), format!("{what} has no fields"))
                        .help("give it at least one named field"),
                );
                ok = false;
            }
            if out.iter().any(|s| s.name.v == name.v) {
                // TOML already refuses a table defined twice; nothing to add.
                continue;
            }
            let mut s = StructDef {
                name: name.clone(),
                doc,
                fields,
                size: 0,
                align: 1,
                packed,
            };
            // A struct with a problem (already reported) is still laid out and kept, so the
            // arguments that point at it are not reported as pointing at nothing.
            if ok {
                self.layout(&mut s, types, &out);
            }
            if name_ok {
                out.push(s);
            }
        }
        out
    }

    /// One field of struct `what` (`pads` numbers its padding).
    fn sfield(
        &mut self,
        v: &Val<'_>,
        what: &str,
        types: &[TypeDef],
        structs: &[StructDef],
        pads: &mut u64,
    ) -> Option<SField> {
        let mut o = as_obj(self.d, v, format!("a field of {what}"), "fields")?;
        if let Some(p) = o.get("pad") {
            o.what = format!("padding in {what}");
            o.check_keys(self.d, &["pad", "offset"]);
            let n = o.int_at(self.d, "pad", p)?;
            if n.v == 0 || n.v >= MAX_STRUCT {
                self.d.push(
                    Diagnostic::new(
                        n.span,
                        format!("`pad = {}` in {what} must be 1 to {}", n.v, MAX_STRUCT - 1),
                    )
                    .help("padding fills the bytes between two fields: count them"),
                );
                return None;
            }
            let offset = o.opt_int(self.d, "offset");
            let name = Sp::new(format!("_pad{pads}"), p.span());
            *pads += 1;
            return Some(SField {
                name,
                ty: SType::Pad(n.v),
                offset: offset.map_or(u64::MAX, |o| o.v),
                dir: Dir::In,
                doc: None,
                range: None,
                align: None,
            });
        }
        let name = o.req_str(self.d, "name", "\"len\"");
        if let Some(n) = &name {
            o.what = format!("field `{}` of {what}", n.v);
        }
        o.check_keys(
            self.d,
            &["name", "type", "doc", "dir", "offset", "range", "align"],
        );
        let ty_s = o.req_str(self.d, "type", "\"u64\"");
        let doc = o.opt_text(self.d, "doc");
        let offset = o.opt_int(self.d, "offset");
        let dir = match o.opt_str(self.d, "dir") {
            None => Some(Dir::In),
            Some(d) => self.dir(&d, &o.what),
        };
        let ty = ty_s
            .as_ref()
            .and_then(|s| self.stype(s, s.v.trim(), &o.what, types, structs));
        // Constraints apply to unsigned integers and aliases, element by element in arrays.
        let mut elem = ty.as_ref();
        while let Some(SType::Array(e, _)) = elem {
            elem = Some(e);
        }
        let prim = match elem {
            Some(SType::Int(i)) if !i.signed => Some((int_prim(*i), false)),
            Some(SType::Named(i)) => Some(match &types[*i].kind {
                TypeKind::Alias(p) => (*p, false),
                TypeKind::Enum { repr, .. } => (*repr, true),
            }),
            _ => None,
        };
        let constrained = o.get("range").is_some() || o.get("align").is_some();
        if constrained && prim.is_none() && ty.is_some() {
            self.d.push(
                Diagnostic::new(
                    o.key_span(if o.get("range").is_some() { "range" } else { "align" }),
                    format!("constraints cannot apply to {} (type `{}`)", o.what, ty_s.as_ref().map_or("", |s| s.v.as_str())),
                )
                .help("`range` and `align` constrain unsigned integers and aliases (and their arrays); a nested struct has constraints on its own fields"),
            );
            return None;
        }
        let ty_name = ty_s.as_ref().map_or("", |s| s.v.as_str()).to_string();
        let (align, align_ok) = self.align(&o, prim, &ty_name);
        let (range, range_ok) = self.range(&o, prim);
        let name = name.filter(|n| check_name(self.d, n, "field"));
        if !(align_ok && range_ok) {
            return None;
        }
        Some(SField {
            name: name?,
            ty: ty?,
            offset: offset.map_or(u64::MAX, |o| o.v),
            dir: dir?,
            doc,
            range,
            align,
        })
    }

    /// `in`, `out` or `inout`.
    pub(super) fn dir(&mut self, d: &Sp<String>, what: &str) -> Option<Dir> {
        match d.v.as_str() {
            "in" => Some(Dir::In),
            "out" => Some(Dir::Out),
            "inout" => Some(Dir::InOut),
            other => {
                let mut diag = Diagnostic::new(
                    d.span.clone(),
                    format!("unknown direction `{other}` in {what}"),
                );
                diag = match did_you_mean(other, &["in", "out", "inout"]) {
                    Some(s) => diag.help(format!("did you mean `{s}`?")),
                    None => diag.help("use in, out or inout"),
                };
                self.d.push(diag);
                None
            }
        }
    }

    /// A field or element type: an integer, a `[types]` name, an earlier struct, or
    /// `[T; N]` of those.
    pub(super) fn stype(
        &mut self,
        s: &Sp<String>,
        t: &str,
        what: &str,
        types: &[TypeDef],
        structs: &[StructDef],
    ) -> Option<SType> {
        if let Some(i) = Int::from_name(t) {
            return Some(SType::Int(i));
        }
        if let Some(i) = types.iter().position(|x| x.name.v == t) {
            if matches!(types[i].kind, TypeKind::Alias(Prim::Bool)) {
                self.d.push(
                    Diagnostic::new(
                        s.span.clone(),
                        format!("type `{t}` in {what} is an alias of bool, which is no C type"),
                    )
                    .help("hold the flag as an integer (`u8`, or an alias of one) in guest memory"),
                );
                return None;
            }
            return Some(SType::Named(i));
        }
        if let Some(i) = structs.iter().position(|x| x.name.v == t) {
            return Some(SType::Struct(i));
        }
        if let Some(inner) = t.strip_prefix('[').and_then(|r| r.strip_suffix(']'))
            && let Some((e, n)) = inner.rsplit_once(';')
        {
            let n = match n.trim().parse::<u64>() {
                Ok(n) if n > 0 && n <= MAX_STRUCT => n,
                _ => {
                    self.d.push(
                        Diagnostic::new(
                            s.span.clone(),
                            format!(
                                "the length of `{}` in {what} must be 1 to {MAX_STRUCT}",
                                s.v
                            ),
                        )
                        .help("write a fixed array as \"[u8; 16]\""),
                    );
                    return None;
                }
            };
            let e = self.stype(s, e.trim(), what, types, structs)?;
            return Some(SType::Array(Box::new(e), n));
        }
        let mut names: Vec<&str> = vec!["u8", "u16", "u32", "u64", "i8", "i16", "i32", "i64"];
        names.extend(types.iter().map(|t| t.name.v.as_str()));
        names.extend(structs.iter().map(|t| t.name.v.as_str()));
        let mut diag = Diagnostic::new(s.span.clone(), format!("unknown type `{t}` in {what}"));
        diag = match did_you_mean(t, &names) {
            Some(n) => diag.help(format!("did you mean `{n}`?")),
            None => diag.help(
                "use an integer, a [types] name, a struct defined before this one, or an array such as \"[u8; 16]\" (bool is not a C type: use u8)",
            ),
        };
        self.d.push(diag);
        None
    }

    /// Lays out `s` with C rules; refuses implicit padding, offsets that disagree and
    /// structs over [`MAX_STRUCT`].
    fn layout(&mut self, s: &mut StructDef, types: &[TypeDef], structs: &[StructDef]) -> bool {
        let mut cur = 0u64;
        let mut align = 1u64;
        let mut ok = true;
        let what = format!("struct `{}`", s.name.v);
        let mut nested_dir = false;
        for f in &mut s.fields {
            let (size, al) = stype_size_align(&f.ty, types, structs);
            let al = if s.packed { 1 } else { al };
            if let SType::Struct(i) = &f.ty
                && structs[*i].fields.iter().any(|g| g.dir != Dir::In)
            {
                nested_dir = true;
            }
            align = align.max(al);
            let at = cur.div_ceil(al).saturating_mul(al);
            if at != cur && ok {
                self.d.push(
                    Diagnostic::new(
                        f.name.span.clone(),
                        format!(
                            "{} of {what} needs {} bytes of padding before it (C puts it at {at}, after the {cur} bytes before it)",
                            if f.is_pad() { "padding".to_string() } else { format!("field `{}`", f.name.v) },
                            at - cur
                        ),
                    )
                    .help(format!("write the padding out: add `{{ pad = {} }}` before it, so every byte of the ABI is in the spec", at - cur)),
                );
                ok = false;
            }
            if f.offset != u64::MAX && f.offset != at {
                self.d.push(
                    Diagnostic::new(
                        f.name.span.clone(),
                        format!(
                            "{} of {what} has `offset = {}` but the C layout rules put it at {at}",
                            if f.is_pad() {
                                "padding".to_string()
                            } else {
                                format!("field `{}`", f.name.v)
                            },
                            f.offset
                        ),
                    )
                    .help(format!(
                        "set `offset = {at}`, or add or remove padding before it"
                    )),
                );
                ok = false;
            }
            f.offset = at;
            cur = at.saturating_add(size);
        }
        if nested_dir {
            self.d.push(
                Diagnostic::new(s.name.span.clone(), format!("{what} nests a struct whose fields have a `dir`"))
                    .help("a nested struct travels as its field in the outer struct: give the outer field the `dir`, and leave the nested struct's fields `in`"),
            );
            ok = false;
        }
        let size = cur.div_ceil(align).saturating_mul(align);
        if ok && size != cur {
            self.d.push(
                Diagnostic::new(
                    s.name.span.clone(),
                    format!("{what} ends after {cur} bytes, but C pads it to {size} (a multiple of its alignment {align})"),
                )
                .help(format!("write the tail padding out: add `{{ pad = {} }}` as its last field", size - cur)),
            );
            ok = false;
        }
        if size > MAX_STRUCT {
            self.d.push(
                Diagnostic::new(
                    s.name.span.clone(),
                    format!("{what} is {size} bytes, more than {MAX_STRUCT}"),
                )
                .help("a host copies the struct on every call: pass large data as a buffer"),
            );
            ok = false;
        }
        s.size = size;
        s.align = align;
        ok
    }
}

/// The unsigned primitive of the same size.
pub(super) fn int_prim(i: Int) -> Prim {
    match i.bytes {
        1 => Prim::U8,
        2 => Prim::U16,
        4 => Prim::U32,
        _ => Prim::U64,
    }
}
