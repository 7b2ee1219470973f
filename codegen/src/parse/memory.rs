//! Room: arguments in guest memory: `type = "&name"` (a struct), `"[T]"` (a buffer) and
//! `"str"` (a NUL-terminated string), with `dir`, `addr`, `len`, `max`, `utf8` and `at`.
//!
//! An argument whose address travels in a register is also a `u64` register argument of
//! the call (so register budgets, `raw_args` and docs see it); one with `at = "arg.field"`
//! takes its address from a field of an earlier struct argument and has no register.
//! References (`len`, `at`) are resolved once the call's whole argument list is read.

use ::toml::de::DeValue;

use super::Parser;
use super::toml::{Val, as_obj, check_name};
use crate::diag::{Diagnostic, did_you_mean};
use crate::spec::*;

/// Largest buffer or string a call may pass, in bytes: `decode` copies it into the
/// host's scratch space, so this bounds the work of one exit.
pub const MAX_MEM_BYTES: u64 = 1 << 20;

/// A memory argument as read, before its references are resolved.
pub(super) struct RawMem {
    name: Sp<String>,
    kind: MemKind,
    /// As written, and its value when it is a number or names a const (`len = 3`,
    /// `len = "tls_entries"`).
    len: Option<(Sp<String>, Option<Num>)>,
    at: Option<Sp<String>>,
    dir: Dir,
    addr: AddrKind,
    doc: Option<String>,
    max_given: bool,
    /// The `max` as the spec wrote it.
    max_written: Option<Num>,
}

/// Whether an argument's `type` makes it a memory argument.
pub(super) fn is_mem_type(t: &str) -> bool {
    let t = t.trim();
    t == "str" || t.starts_with('&') || (t.starts_with('[') && t.ends_with(']') && !t.contains(';'))
}

impl RawMem {
    /// The `u64` register argument carrying the address, unless it is in a struct field.
    pub(super) fn register(&self, ty_span: std::ops::Range<usize>) -> Option<Arg> {
        if self.at.is_some() {
            return None;
        }
        Some(Arg {
            name: self.name.clone(),
            ty: ArgType::Prim(Prim::U64),
            ty_span,
            doc: self.doc.clone(),
            align: None,
            range: None,
            range_written: None,
            align_written: None,
        })
    }
}

impl Parser<'_> {
    /// One memory argument of hypercall `call`; `None` after a problem (reported).
    pub(super) fn mem_arg(
        &mut self,
        v: &Val<'_>,
        call: &str,
        types: &[TypeDef],
        structs: &[StructDef],
    ) -> Option<(RawMem, std::ops::Range<usize>)> {
        let mut o = as_obj(self.d, v, format!("an argument of {call}"), "args")?;
        let name = o.req_str(self.d, "name", "\"buf\"");
        if let Some(n) = &name {
            o.what = format!("argument `{}` of {call}", n.v);
        }
        o.check_keys(
            self.d,
            &[
                "name", "type", "doc", "dir", "addr", "len", "max", "utf8", "at",
            ],
        );
        let ty_s = o.req_str(self.d, "type", "\"[u8]\"")?;
        let doc = o.opt_text(self.d, "doc");
        let t = ty_s.v.trim();
        let addr = match o.opt_str(self.d, "addr") {
            None => Some(AddrKind::Physical),
            Some(a) => match a.v.as_str() {
                "physical" => Some(AddrKind::Physical),
                "virtual" => Some(AddrKind::Virtual),
                other => {
                    self.d.push(
                        Diagnostic::new(a.span, format!("unknown address kind `{other}` in {}", o.what))
                            .help("use physical (the host reads guest memory at it) or virtual (the host translates it through the guest's page tables)"),
                    );
                    None
                }
            },
        };
        let dir_s = o.opt_str(self.d, "dir");
        // A number or a const's name, like every number the spec may name.
        let (max, max_written) = if o.get("max").is_some() {
            match self.opt_number(&o, "max") {
                Some(n) => (Some(Sp::new(n.v.value, n.span)), Some(n.v)),
                None => return None,
            }
        } else {
            (None, None)
        };
        let utf8 = o.opt_bool(self.d, "utf8");
        let at = o.opt_str(self.d, "at");
        let len = match o.get("len") {
            None => None,
            Some(l) => match l.get_ref() {
                DeValue::Integer(_) => {
                    let n = self.number(l, "`len`", &o.what)?;
                    Some((Sp::new(n.value.to_string(), l.span()), Some(n)))
                }
                // A const (optionally `± N`) is a fixed length; an argument of the same name
                // is refused as ambiguous once the arguments are known.
                DeValue::String(s) if self.consts.contains_key(const_part(s)) => {
                    let n = self.number(l, "`len`", &o.what)?;
                    Some((Sp::new(s.to_string(), l.span()), Some(n)))
                }
                DeValue::String(s) => Some((Sp::new(s.to_string(), l.span()), None)),
                _ => {
                    o.wrong_type(self.d, "len", l, "an integer, a const or an argument name");
                    return None;
                }
            },
        };
        let refuse = |p: &mut Self, key: &str, why: &str| {
            p.d.push(
                Diagnostic::new(
                    o.key_span(key),
                    format!("`{key}` does not apply to {} (type `{t}`)", o.what),
                )
                .help(why.to_string()),
            );
        };
        let mut ok = true;
        let (kind, dir) = if let Some(sname) = t.strip_prefix('&') {
            let sname = sname.trim();
            let Some(si) = structs.iter().position(|s| s.name.v == sname) else {
                let names: Vec<&str> = structs.iter().map(|s| s.name.v.as_str()).collect();
                let mut diag = Diagnostic::new(
                    ty_s.span.clone(),
                    format!("unknown struct `{sname}` in {}", o.what),
                );
                diag = match did_you_mean(sname, &names) {
                    Some(n) => diag.help(format!("did you mean `&{n}`?")),
                    None => diag.help("define it as a [struct.NAME] table"),
                };
                self.d.push(diag);
                return None;
            };
            for (key, given) in [
                ("len", len.is_some()),
                ("max", max.is_some()),
                ("utf8", utf8.is_some()),
            ] {
                if given {
                    refuse(self, key, "a struct's size is its layout's");
                    ok = false;
                }
            }
            if dir_s.is_some() {
                refuse(
                    self,
                    "dir",
                    "a struct pointer travels the ways its fields do: give the fields `dir`",
                );
                ok = false;
            }
            let fs = structs[si].fields.iter().filter(|f| !f.is_pad());
            let (mut r, mut w) = (false, false);
            for f in fs {
                r |= f.dir.reads();
                w |= f.dir.writes();
            }
            let dir = match (r, w) {
                (true, true) => Dir::InOut,
                (false, true) => Dir::Out,
                _ => Dir::In,
            };
            (MemKind::Struct(si), dir)
        } else if t == "str" {
            if len.is_some() {
                refuse(
                    self,
                    "len",
                    "a string ends at its NUL: give its longest length as `max`",
                );
                ok = false;
            }
            let dir = match &dir_s {
                None => Dir::In,
                Some(d) => match self.dir(d, &o.what)? {
                    Dir::In => Dir::In,
                    _ => {
                        self.d.push(
                            Diagnostic::new(d.span.clone(), format!("{} is a string, which only travels `in`", o.what))
                                .help("a host fills a buffer: use `type = \"[u8]\"` with a `len` for output"),
                        );
                        return None;
                    }
                },
            };
            let Some(m) = &max else {
                self.d.push(
                    Diagnostic::new(
                        o.span.clone(),
                        format!("missing required key `max` in {} (a string)", o.what),
                    )
                    .help("add `max = 256`: the longest string the host accepts, NUL excluded"),
                );
                return None;
            };
            if m.v == 0 || m.v >= MAX_MEM_BYTES {
                self.d.push(
                    Diagnostic::new(
                        m.span.clone(),
                        format!(
                            "`max = {}` in {} must be 1 to {}",
                            m.v,
                            o.what,
                            MAX_MEM_BYTES - 1
                        ),
                    )
                    .help("the host copies up to `max` bytes on every call"),
                );
                return None;
            }
            (
                MemKind::Str {
                    max: m.v,
                    utf8: utf8.unwrap_or(false),
                },
                dir,
            )
        } else {
            let inner = &t[1..t.len() - 1];
            let elem = self.stype(&ty_s, inner.trim(), &o.what, types, structs)?;
            if matches!(elem, SType::Array(..)) {
                self.d.push(
                    Diagnostic::new(
                        ty_s.span.clone(),
                        format!("{} is a buffer of arrays", o.what),
                    )
                    .help("use a buffer of the element type, or a struct holding the array"),
                );
                return None;
            }
            if utf8.is_some() {
                refuse(
                    self,
                    "utf8",
                    "only strings (`type = \"str\"`) are checked for UTF-8",
                );
                ok = false;
            }
            let dir = match &dir_s {
                None => Dir::In,
                Some(d) => self.dir(d, &o.what)?,
            };
            if len.is_none() {
                self.d.push(
                    Diagnostic::new(o.span.clone(), format!("missing required key `len` in {} (a buffer)", o.what))
                        .help("say how many elements it has: another argument's name (`len = \"count\"`), a struct field (`len = \"params.len\"`), or a number"),
                );
                return None;
            }
            (
                MemKind::Buffer {
                    elem,
                    len: Len::Fixed(Num {
                        value: 0,
                        form: NumForm::Dec,
                    }),
                    max: max.as_ref().map_or(0, |m| m.v),
                },
                dir,
            )
        };
        let name = name.filter(|n| check_name(self.d, n, "argument"));
        if !ok {
            return None;
        }
        let raw = RawMem {
            name: name?,
            kind,
            len,
            at,
            dir,
            addr: addr?,
            doc,
            max_given: max.is_some(),
            max_written,
        };
        Some((raw, ty_s.span))
    }

    /// Resolves the `len` and `at` of call `call`'s memory arguments against its register
    /// arguments and earlier struct arguments.
    pub(super) fn resolve_mem(
        &mut self,
        call: &str,
        args: &[Arg],
        raws: Vec<RawMem>,
        types: &[TypeDef],
        structs: &[StructDef],
    ) -> Vec<MemArg> {
        let mut out: Vec<MemArg> = Vec::new();
        // Register arguments that carry a memory argument's address, wherever it comes in
        // the list (a `len` may name a later argument).
        let addr_regs: Vec<usize> = raws
            .iter()
            .filter(|r| r.at.is_none())
            .filter_map(|r| args.iter().position(|a| a.name.v == r.name.v))
            .collect();
        for r in raws {
            let what = format!("argument `{}` of {call}", r.name.v);
            // A name already taken by a memory argument, or (for one that lives in a struct
            // field and so takes no register) by a register argument.
            let taken = out.iter().any(|m| m.name.v == r.name.v)
                || (r.at.is_some() && args.iter().any(|x| x.name.v == r.name.v));
            if taken {
                self.d.push(
                    Diagnostic::new(
                        r.name.span.clone(),
                        format!("duplicate argument `{}` in {call}", r.name.v),
                    )
                    .help("argument names are unique within their hypercall"),
                );
                continue;
            }
            // One located by `at` is a parameter of the handler and the wrapper too: the
            // register arguments' rule on leading underscores holds for it as well.
            let bare = r.name.v.trim_start_matches('_');
            if r.at.is_some()
                && let Some(p) = args
                    .iter()
                    .map(|a| &a.name.v)
                    .chain(out.iter().map(|m| &m.name.v))
                    .find(|p| **p != r.name.v && p.trim_start_matches('_') == bare)
            {
                self.d.push(
                    Diagnostic::new(
                        r.name.span.clone(),
                        format!(
                            "arguments `{p}` and `{}` of {call} differ only by a leading underscore",
                            r.name.v
                        ),
                    )
                    .help("give them names that differ in letters: a reader (and clippy) takes one for the other"),
                );
                continue;
            }
            let at = match &r.at {
                None => match args.iter().position(|a| a.name.v == r.name.v) {
                    Some(i) => MemAt::Reg(i),
                    None => continue,
                },
                Some(a) => match self.field_ref(a, &what, "at", &out, types, structs, true) {
                    Some(f) => MemAt::Field(f),
                    None => continue,
                },
            };
            let mut kind = r.kind.clone();
            if let MemKind::Buffer { elem, max, .. } = &r.kind {
                let Some((l, fixed)) = &r.len else { continue };
                let len = if let Some(num) = fixed {
                    let n = num.value;
                    if let Some(a) = args.iter().find(|a| a.name.v == l.v.trim()) {
                        self.d.push(
                            Diagnostic::new(
                                l.span.clone(),
                                format!(
                                    "`len = \"{}\"` in {what} names both a const and an argument of {call}",
                                    l.v
                                ),
                            )
                            .help(format!(
                                "rename the argument `{}` or the const: a length names one or the other",
                                a.name.v
                            )),
                        );
                        continue;
                    }
                    if r.max_given {
                        self.d.push(
                            Diagnostic::new(
                                l.span.clone(),
                                format!("{what} has a fixed `len` and a `max`"),
                            )
                            .help("a fixed length is its own maximum: remove `max`"),
                        );
                        continue;
                    }
                    if n == 0 {
                        self.d.push(
                            Diagnostic::new(
                                l.span.clone(),
                                format!("`len = 0` in {what} passes nothing"),
                            )
                            .help("remove the argument, or give its length"),
                        );
                        continue;
                    }
                    Len::Fixed(num.clone())
                } else if l.v.contains('.') {
                    match self.field_ref(l, &what, "len", &out, types, structs, false) {
                        Some(f) => Len::Field(f),
                        None => continue,
                    }
                } else {
                    match args.iter().position(|a| a.name.v == l.v) {
                        Some(i) if addr_regs.contains(&i) => {
                            self.d.push(
                                Diagnostic::new(
                                    l.span.clone(),
                                    format!(
                                        "`len = \"{}\"` in {what} names a memory argument",
                                        l.v
                                    ),
                                )
                                .help("a length is an integer argument or an integer field"),
                            );
                            continue;
                        }
                        Some(i) if !int_arg(&args[i], types) => {
                            self.d.push(
                                Diagnostic::new(
                                    l.span.clone(),
                                    format!(
                                        "`len = \"{}\"` in {what} names an argument that is not an integer",
                                        l.v
                                    ),
                                )
                                .help("a length is an integer argument (u8 to u64, or an alias of one) or an integer field"),
                            );
                            continue;
                        }
                        Some(i) => Len::Arg(i),
                        None => {
                            let names: Vec<&str> = args.iter().map(|a| a.name.v.as_str()).collect();
                            let mut diag = Diagnostic::new(
                                l.span.clone(),
                                format!(
                                    "`len = \"{}\"` in {what} names no argument of {call}",
                                    l.v
                                ),
                            );
                            diag = match did_you_mean(&l.v, &names) {
                                Some(n) => diag.help(format!("did you mean `{n}`?")),
                                None => diag.help("name an integer argument of the call, a field as `arg.field`, a const, or give a number"),
                            };
                            self.d.push(diag);
                            continue;
                        }
                    }
                };
                let max = match &len {
                    Len::Fixed(n) => n.value,
                    _ if !r.max_given => {
                        self.d.push(
                            Diagnostic::new(l.span.clone(), format!("{what} has a length from the guest but no `max`"))
                                .help("add `max = N`: the most elements the host accepts (the guest picks the length; the spec bounds it)"),
                        );
                        continue;
                    }
                    _ => *max,
                };
                let (esize, _) = stype_size_align(elem, types, structs);
                if max == 0 || max.saturating_mul(esize) > MAX_MEM_BYTES {
                    self.d.push(
                        Diagnostic::new(l.span.clone(), format!("{what} may be {} elements of {esize} bytes, outside 1 to {MAX_MEM_BYTES} bytes", max))
                            .help("lower `max` (or the fixed `len`): the host copies the whole buffer on every call"),
                    );
                    continue;
                }
                kind = MemKind::Buffer {
                    elem: elem.clone(),
                    len,
                    max,
                };
            }
            // A fixed length is its own maximum, written as `len` (a number or a const).
            let max_written = match &kind {
                MemKind::Buffer {
                    len: Len::Fixed(n), ..
                } => Some(n.clone()),
                _ => r.max_written,
            };
            out.push(MemArg {
                name: r.name,
                kind,
                dir: r.dir,
                addr: r.addr,
                at,
                doc: r.doc,
                max_written,
            });
        }
        out
    }

    /// `arg.field`: a top-level unsigned integer field of an earlier struct argument that
    /// the host reads (`u64` for an address).
    #[allow(clippy::too_many_arguments)]
    fn field_ref(
        &mut self,
        s: &Sp<String>,
        what: &str,
        key: &str,
        earlier: &[MemArg],
        types: &[TypeDef],
        structs: &[StructDef],
        address: bool,
    ) -> Option<FieldRef> {
        let Some((a, f)) = s.v.split_once('.') else {
            self.d.push(
                Diagnostic::new(
                    s.span.clone(),
                    format!("`{key} = \"{}\"` in {what} is not `argument.field`", s.v),
                )
                .help("name a field of an earlier struct argument, e.g. \"params.buf\""),
            );
            return None;
        };
        let Some((mi, m)) = earlier.iter().enumerate().find(|(_, m)| m.name.v == a) else {
            self.d.push(
                Diagnostic::new(
                    s.span.clone(),
                    format!(
                        "`{key} = \"{}\"` in {what}: `{a}` is not an earlier struct argument",
                        s.v
                    ),
                )
                .help("the struct argument holding the field comes first in `args`"),
            );
            return None;
        };
        let MemKind::Struct(si) = m.kind else {
            self.d.push(
                Diagnostic::new(
                    s.span.clone(),
                    format!("`{key} = \"{}\"` in {what}: `{a}` is not a struct", s.v),
                )
                .help("fields belong to struct arguments (`type = \"&name\"`)"),
            );
            return None;
        };
        let st = &structs[si];
        let Some(fi) = st.fields.iter().position(|x| !x.is_pad() && x.name.v == f) else {
            let names: Vec<&str> = st
                .fields
                .iter()
                .filter(|x| !x.is_pad())
                .map(|x| x.name.v.as_str())
                .collect();
            let mut diag = Diagnostic::new(
                s.span.clone(),
                format!("struct `{}` has no field `{f}` ({what})", st.name.v),
            );
            diag = match did_you_mean(f, &names) {
                Some(n) => diag.help(format!("did you mean `{a}.{n}`?")),
                None => diag.help(format!("its fields are: {}", names.join(", "))),
            };
            self.d.push(diag);
            return None;
        };
        let field = &st.fields[fi];
        let prim = match &field.ty {
            SType::Int(i) if !i.signed => Some(super::structs::int_prim(*i)),
            SType::Named(t) => match &types[*t].kind {
                TypeKind::Alias(p) => Some(*p),
                TypeKind::Enum { .. } => None,
            },
            _ => None,
        };
        let fits = match prim {
            Some(Prim::U64) => true,
            Some(Prim::Bool) | None => false,
            Some(_) => !address,
        };
        if !fits {
            self.d.push(
                Diagnostic::new(
                    s.span.clone(),
                    format!(
                        "`{key} = \"{}\"` in {what}: field `{f}` is not {}",
                        s.v,
                        if address {
                            "a u64 (an address)"
                        } else {
                            "an unsigned integer"
                        }
                    ),
                )
                .help("point at a field that holds the address or the length"),
            );
            return None;
        }
        if !field.dir.reads() {
            self.d.push(
                Diagnostic::new(s.span.clone(), format!("`{key} = \"{}\"` in {what}: field `{f}` is `out`, so the guest does not pass it", s.v))
                    .help("make the field `in` or `inout`"),
            );
            return None;
        }
        Some(FieldRef {
            mem: mi,
            field: fi,
            text: s.v.clone(),
        })
    }
}

/// The const name of a `"name"`, `"name - N"` or `"name + N"` expression.
fn const_part(s: &str) -> &str {
    s.split(['+', '-']).next().unwrap_or("").trim()
}

/// Whether register argument `a` is an unsigned integer (a primitive or an alias of one;
/// not `bool` and not an enum): what a length may be.
fn int_arg(a: &Arg, types: &[TypeDef]) -> bool {
    let p = match a.ty {
        ArgType::Prim(p) => p,
        ArgType::Named(i) => match &types[i].kind {
            TypeKind::Alias(p) => *p,
            TypeKind::Enum { .. } => return false,
        },
    };
    p != Prim::Bool
}
