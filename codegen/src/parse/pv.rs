//! Room: `[pv_table.NAME]` and `[[pv_op]]`: the operations a guest kernel routes through
//! the hypervisor, with Rust signatures that must build both as a trait method and as a
//! function-pointer field (`rust_type`).

use super::Parser;
use super::toml::{Obj, Val, as_obj, check_name, tables_in};
use crate::diag::{Diagnostic, did_you_mean};
use crate::spec::*;

/// Where a pv_op type appears: lifetimes elide in arguments, not in the result.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum TypePos {
    Arg,
    Ret,
}

/// Why `ty` cannot be written both in a trait method and in the `fn(..)` pointer type of
/// the op's table field, if it cannot. What the type's paths name is the including crate's
/// business (as spec/README.md says); the shape is checked here.
pub(crate) fn type_problem(ty: &syn::Type, pos: TypePos) -> Option<(String, String)> {
    use syn::Type;
    let again = |t: &syn::Type| type_problem(t, pos);
    match ty {
        Type::Array(a) => {
            if !matches!(
                &a.len,
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Int(_),
                    ..
                })
            ) {
                return Some((
                    "an array length that is not an integer literal".into(),
                    "write the length as a number, e.g. \"[u8; 16]\"".into(),
                ));
            }
            again(&a.elem)
        }
        Type::BareFn(f) => {
            if f.lifetimes.is_some() || f.variadic.is_some() {
                return Some((
                    "a function pointer with `for<..>` or `...`".into(),
                    "write a plain `fn(..) -> ..` pointer".into(),
                ));
            }
            f.inputs
                .iter()
                .find_map(|i| type_problem(&i.ty, TypePos::Arg))
                .or_else(|| match &f.output {
                    syn::ReturnType::Type(_, t) => type_problem(t, TypePos::Ret),
                    syn::ReturnType::Default => None,
                })
        }
        Type::Group(g) => again(&g.elem),
        Type::Paren(p) => again(&p.elem),
        Type::Ptr(p) => again(&p.elem),
        Type::Never(_) if pos == TypePos::Ret => None,
        Type::Never(_) => Some((
            "`!` as an argument".into(),
            "only a result may be `!` (an op that does not return)".into(),
        )),
        Type::Tuple(t) => t.elems.iter().find_map(again),
        Type::Path(p) => {
            if p.qself.is_some() {
                return Some((
                    "a qualified path (`<T as Trait>::X`)".into(),
                    "name the type by its path, e.g. \"x86::bits64::paging::PTEntry\"".into(),
                ));
            }
            if p.path.segments.iter().any(|s| s.ident == "Self") {
                return Some((
                    "`Self`, which means nothing in a function-pointer table".into(),
                    "name the type itself".into(),
                ));
            }
            p.path.segments.iter().find_map(|s| match &s.arguments {
                syn::PathArguments::None => None,
                syn::PathArguments::Parenthesized(_) => Some((
                    "`Fn(..)`-style arguments outside `dyn`".into(),
                    "write \"&dyn Fn(u64)\" or a `fn(u64)` pointer".into(),
                )),
                syn::PathArguments::AngleBracketed(a) => a.args.iter().find_map(|g| match g {
                    syn::GenericArgument::Type(Type::TraitObject(t)) => trait_object_problem(t),
                    syn::GenericArgument::Type(Type::Slice(s)) => again(&s.elem),
                    syn::GenericArgument::Type(t) => again(t),
                    syn::GenericArgument::Lifetime(l) => lifetime_problem(l),
                    _ => Some((
                        "a generic argument that is not a type or `'static`".into(),
                        "use concrete types, e.g. \"Option<u64>\"".into(),
                    )),
                }),
            })
        }
        Type::Reference(r) => {
            if let Some(l) = &r.lifetime {
                if let Some(p) = lifetime_problem(l) {
                    return Some(p);
                }
            } else if pos == TypePos::Ret {
                return Some((
                    "a reference without a lifetime as the result".into(),
                    "an op has no `self` to borrow from: write `&'static ...`, or return the value"
                        .into(),
                ));
            }
            match &*r.elem {
                // Unsized behind a reference is fine.
                Type::Slice(s) => again(&s.elem),
                Type::TraitObject(t) => trait_object_problem(t),
                other => again(other),
            }
        }
        Type::Slice(_) => Some((
            "a slice by value".into(),
            "pass it by reference, e.g. \"&[u8]\"".into(),
        )),
        Type::TraitObject(_) => Some((
            "a trait object by value".into(),
            "pass it by reference, e.g. \"&dyn core::fmt::Write\"".into(),
        )),
        Type::ImplTrait(_) => Some((
            "`impl Trait`, which a function-pointer type cannot hold".into(),
            "name a concrete type, or pass \"&dyn Trait\"".into(),
        )),
        Type::Infer(_) => Some((
            "`_`, which a signature cannot leave to inference".into(),
            "name the type".into(),
        )),
        Type::Macro(_) => Some((
            "a macro in type position".into(),
            "write the type it expands to".into(),
        )),
        _ => Some((
            "a type the generator cannot place in a signature".into(),
            "write a path, reference, pointer, array, tuple or fn pointer".into(),
        )),
    }
}

fn lifetime_problem(l: &syn::Lifetime) -> Option<(String, String)> {
    (l.ident != "static").then(|| {
        (
            format!("the lifetime `{l}`, which nothing declares"),
            "use `'static`, or leave the lifetime out of an argument".into(),
        )
    })
}

fn trait_object_problem(t: &syn::TypeTraitObject) -> Option<(String, String)> {
    t.bounds.iter().find_map(|b| match b {
        syn::TypeParamBound::Lifetime(l) => lifetime_problem(l),
        syn::TypeParamBound::Trait(tr) if tr.lifetimes.is_some() => Some((
            "a `for<..>` bound".into(),
            "write the trait without `for<..>`".into(),
        )),
        _ => None,
    })
}

impl Parser<'_> {
    /// A Rust type string of `what`, in argument or result position.
    fn rust_type(&mut self, s: &Sp<String>, what: &str, pos: TypePos) -> Option<syn::Type> {
        let t = match syn::parse_str::<syn::Type>(&s.v) {
            Ok(t) => t,
            Err(e) => {
                self.d.push(
                    Diagnostic::new(s.span.clone(), format!("`{}` in {what} is not a Rust type: {e}", s.v))
                        .help("write a Rust type, e.g. \"u64\", \"&mut [u8]\" or \"x86::bits64::paging::PTEntry\""),
                );
                return None;
            }
        };
        let mut t = t;
        if let Err(name) = const_lengths(&mut t, &self.consts) {
            let names: Vec<&str> = self.consts.keys().map(String::as_str).collect();
            let mut diag = Diagnostic::new(
                s.span.clone(),
                format!(
                    "unknown const `{name}` in the array length of `{}` in {what}",
                    s.v
                ),
            );
            diag = match did_you_mean(&name, &names) {
                Some(n) => diag.help(format!("did you mean `{n}`?")),
                None => diag.help("an array length is a number or a const of [consts]"),
            };
            self.d.push(diag);
            return None;
        }
        if let Some((problem, help)) = type_problem(&t, pos) {
            let place = match pos {
                TypePos::Arg => "an argument",
                TypePos::Ret => "the result",
            };
            self.d.push(
                Diagnostic::new(
                    s.span.clone(),
                    format!("`{}` cannot be {place} of {what}: it has {problem}", s.v),
                )
                .help(help),
            );
            return None;
        }
        Some(t)
    }

    /// Every `[pv_table.NAME]`, then every `[[pv_op]]` into its table (a table only ops
    /// name comes last, without a doc).
    pub(super) fn pv(&mut self, root: &Obj<'_, '_>) -> Vec<PvTable> {
        let mut tables: Vec<PvTable> = Vec::new();
        if let Some(o) = root.opt_table(self.d, "pv_table", "[pv_table]".into()) {
            for (k, v) in o.t.iter() {
                let name = Sp::new(k.get_ref().to_string(), k.span());
                let Some(t) = as_obj(self.d, v, format!("pv_table `{}`", name.v), &name.v) else {
                    continue;
                };
                t.check_keys(self.d, &["doc"]);
                let doc = t.opt_text(self.d, "doc");
                if check_name(self.d, &name, "pv_table") {
                    tables.push(PvTable {
                        name,
                        doc,
                        ops: Vec::new(),
                    });
                }
            }
        }
        let Some(v) = root.get("pv_op") else {
            return tables;
        };
        for (i, t) in tables_in(self.d, v, "pv_op").into_iter().enumerate() {
            let Some((table, op)) = self.pv_op(t, i) else {
                continue;
            };
            match tables.iter_mut().find(|t| t.name.v == table.v) {
                Some(t) => {
                    if t.ops.iter().any(|p| p.name.v == op.name.v) {
                        self.d.push(
                            Diagnostic::new(
                                op.name.span.clone(),
                                format!("duplicate pv_op `{}` in table `{}`", op.name.v, table.v),
                            )
                            .help("op names are unique within their table"),
                        );
                        continue;
                    }
                    t.ops.push(op);
                }
                None => {
                    if check_name(self.d, &table, "pv_table") {
                        tables.push(PvTable {
                            name: table,
                            doc: None,
                            ops: vec![op],
                        });
                    }
                }
            }
        }
        tables
    }

    /// One `[[pv_op]]` (the `index`th) with the name of its table.
    fn pv_op(&mut self, v: &Val<'_>, index: usize) -> Option<(Sp<String>, PvOp)> {
        let mut o = as_obj(self.d, v, format!("pv_op #{}", index + 1), "pv_op")?;
        let name = o.req_str(self.d, "name", "\"save_fl\"");
        if let Some(n) = &name {
            o.what = format!("pv_op `{}`", n.v);
        }
        o.check_keys(
            self.d,
            &[
                "table",
                "name",
                "doc",
                "args",
                "ret",
                "callee_save",
                "unsafe",
                "safety",
                "template",
            ],
        );
        let table = o.req_str(self.d, "table", "\"irq\"");
        let doc = o.req_text(self.d, "doc", "\"What the op does.\"");
        let callee_save = o.opt_bool(self.d, "callee_save").unwrap_or(false);
        let is_unsafe = o.opt_bool(self.d, "unsafe").unwrap_or(false);
        let safety = o.opt_text(self.d, "safety");
        let template = o.opt_str(self.d, "template");
        let what = o.what.clone();
        let ret = o
            .opt_str(self.d, "ret")
            .and_then(|r| self.rust_type(&r, &what, TypePos::Ret));
        let mut ok = o.get("ret").is_none() || ret.is_some();
        let (args, args_ok) = self.op_args(&o);
        ok &= args_ok;
        if is_unsafe && safety.is_none() && o.get("safety").is_none() {
            self.d.push(
                Diagnostic::new(
                    o.span.clone(),
                    format!("{what} is unsafe but has no `safety`"),
                )
                .help("add `safety = \"...\"` saying what the caller must guarantee"),
            );
            ok = false;
        }
        if !is_unsafe && o.get("safety").is_some() {
            self.d.push(
                Diagnostic::new(
                    o.key_span("safety"),
                    format!("{what} has `safety` but is not unsafe"),
                )
                .help("add `unsafe = true`, or remove `safety`"),
            );
            ok = false;
        }
        let name = name.filter(|n| check_name(self.d, n, "pv_op"));
        let (Some(name), Some(table), Some(doc), true) = (name, table, doc, ok) else {
            return None;
        };
        let op = PvOp {
            name,
            doc,
            args,
            ret,
            callee_save,
            is_unsafe,
            safety,
            template,
        };
        Some((table, op))
    }

    /// The `args` of a pv_op: names and Rust types.
    fn op_args(&mut self, o: &Obj<'_, '_>) -> (Vec<(Sp<String>, syn::Type)>, bool) {
        let mut args: Vec<(Sp<String>, syn::Type)> = Vec::new();
        let mut ok = true;
        let what = &o.what;
        let Some(a) = o.opt_array(self.d, "args") else {
            return (args, o.get("args").is_none());
        };
        for v in a.iter() {
            let Some(ao) = as_obj(self.d, v, format!("an argument of {what}"), "args") else {
                ok = false;
                continue;
            };
            ao.check_keys(self.d, &["name", "type"]);
            let an = ao.req_str(self.d, "name", "\"value\"");
            let at = ao.req_str(self.d, "type", "\"u64\"");
            let at = at.and_then(|t| self.rust_type(&t, what, TypePos::Arg));
            match (an, at) {
                (Some(an), Some(at)) if check_name(self.d, &an, "argument") => {
                    if let Some((p, _)) = args.iter().find(|(p, _)| {
                        p.v != an.v && p.v.trim_start_matches('_') == an.v.trim_start_matches('_')
                    }) {
                        self.d.push(
                            Diagnostic::new(
                                an.span.clone(),
                                format!(
                                    "arguments `{}` and `{}` of {what} differ only by a leading underscore",
                                    p.v, an.v
                                ),
                            )
                            .help("give them names that differ in letters: a reader (and clippy) takes one for the other"),
                        );
                        ok = false;
                    } else if args.iter().any(|(p, _)| p.v == an.v) {
                        self.d.push(
                            Diagnostic::new(
                                an.span.clone(),
                                format!("duplicate argument `{}` in {what}", an.v),
                            )
                            .help("argument names are unique within their op"),
                        );
                        ok = false;
                    } else {
                        args.push((an, at));
                    }
                }
                _ => ok = false,
            }
        }
        (args, ok)
    }
}

/// Replaces each array length written as a `[consts]` name (`[Descriptor; tls_entries]`)
/// with the const's value, so a pv_op's type says the const and the number is written
/// once; the type then reads the same in every crate that names it (pv_op tables, call
/// sites, thunks). `Err` names a length that is a name but no const.
fn const_lengths(
    t: &mut syn::Type,
    consts: &std::collections::HashMap<String, u64>,
) -> Result<(), String> {
    use syn::Type;
    match t {
        Type::Array(a) => {
            if let syn::Expr::Path(p) = &a.len
                && p.qself.is_none()
                && let Some(id) = p.path.get_ident()
            {
                let name = id.to_string();
                let Some(v) = consts.get(&name) else {
                    return Err(name);
                };
                let lit = syn::LitInt::new(&v.to_string(), id.span());
                a.len = syn::Expr::Lit(syn::ExprLit {
                    attrs: Vec::new(),
                    lit: syn::Lit::Int(lit),
                });
            }
            const_lengths(&mut a.elem, consts)
        }
        Type::Reference(r) => const_lengths(&mut r.elem, consts),
        Type::Slice(s) => const_lengths(&mut s.elem, consts),
        Type::Ptr(p) => const_lengths(&mut p.elem, consts),
        Type::Paren(p) => const_lengths(&mut p.elem, consts),
        Type::Group(g) => const_lengths(&mut g.elem, consts),
        Type::Tuple(tu) => tu
            .elems
            .iter_mut()
            .try_for_each(|e| const_lengths(e, consts)),
        Type::Path(p) => p
            .path
            .segments
            .iter_mut()
            .try_for_each(|seg| match &mut seg.arguments {
                syn::PathArguments::AngleBracketed(a) => {
                    a.args.iter_mut().try_for_each(|g| match g {
                        syn::GenericArgument::Type(t) => const_lengths(t, consts),
                        _ => Ok(()),
                    })
                }
                _ => Ok(()),
            }),
        _ => Ok(()),
    }
}
