//! From TOML text to a [`Spec`], reporting every local problem on the way.
//!
//! The TOML is parsed into toml's spanned document tree ([`DeTable`]) rather than through
//! `#[derive(Deserialize)]`: serde stops at the first error, and a spec author wants them
//! all, each pointing at its key. Each table is read by a [`Obj`] that knows which keys it
//! accepts, so a typo (`lazzy`) is caught and a near miss suggested. Checks that need the
//! whole spec (unique numbers, register budgets, layout) run afterwards in `check.rs`.

use std::collections::HashMap;
use std::ops::Range;

use toml::Spanned;
use toml::de::{DeArray, DeTable, DeValue};

use crate::diag::{Diagnostic, Diagnostics, did_you_mean};
use crate::names::snake_case_problem;
use crate::spec::*;

type Val<'i> = Spanned<DeValue<'i>>;

/// A TOML table being read: its entries, its span, and what to call it in messages.
struct Obj<'a, 'i> {
    t: &'a DeTable<'i>,
    span: Range<usize>,
    what: String,
}

fn kind_name(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

impl<'a, 'i> Obj<'a, 'i> {
    fn get(&self, key: &str) -> Option<&'a Val<'i>> {
        self.t.get(key)
    }

    fn key_span(&self, key: &str) -> Range<usize> {
        self.t
            .get_key_value(key)
            .map_or(self.span.clone(), |(k, _)| k.span())
    }

    /// Reports every key not in `allowed`, suggesting the closest allowed one.
    fn check_keys(&self, d: &mut Diagnostics, allowed: &[&str]) {
        for (k, _) in self.t.iter() {
            let key: &str = k.get_ref();
            if !allowed.contains(&key) {
                let mut diag =
                    Diagnostic::new(k.span(), format!("unknown key `{key}` in {}", self.what));
                diag = match did_you_mean(key, allowed) {
                    Some(s) => diag.help(format!("did you mean `{s}`?")),
                    None => diag.help(format!("expected one of: {}", allowed.join(", "))),
                };
                d.push(diag);
            }
        }
    }

    fn required(&self, d: &mut Diagnostics, key: &str, example: &str) -> Option<&'a Val<'i>> {
        let v = self.get(key);
        if v.is_none() {
            d.push(
                Diagnostic::new(
                    self.span.clone(),
                    format!("missing required key `{key}` in {}", self.what),
                )
                .help(format!("add `{key} = {example}`")),
            );
        }
        v
    }

    fn wrong_type(&self, d: &mut Diagnostics, key: &str, v: &Val<'i>, want: &str) {
        let example = match want {
            "an integer" => "1",
            "a string" => "\"...\"",
            "true or false" => "true",
            _ => "[...]",
        };
        d.push(
            Diagnostic::new(
                v.span(),
                format!(
                    "`{key}` in {} must be {want}, not {}",
                    self.what,
                    kind_name(v.get_ref())
                ),
            )
            .help(format!("write it as {want}, e.g. `{key} = {example}`")),
        );
    }

    fn str_at(&self, d: &mut Diagnostics, key: &str, v: &Val<'i>) -> Option<Sp<String>> {
        match v.get_ref() {
            DeValue::String(s) => Some(Sp::new(s.to_string(), v.span())),
            _ => {
                self.wrong_type(d, key, v, "a string");
                None
            }
        }
    }

    fn opt_str(&self, d: &mut Diagnostics, key: &str) -> Option<Sp<String>> {
        self.get(key).and_then(|v| self.str_at(d, key, v))
    }

    fn req_str(&self, d: &mut Diagnostics, key: &str, example: &str) -> Option<Sp<String>> {
        self.required(d, key, example)
            .and_then(|v| self.str_at(d, key, v))
    }

    fn int_at(&self, d: &mut Diagnostics, key: &str, v: &Val<'i>) -> Option<Sp<u64>> {
        match v.get_ref() {
            DeValue::Integer(i) => match u64::from_str_radix(i.as_str(), i.radix()) {
                Ok(n) => Some(Sp::new(n, v.span())),
                Err(_) => {
                    d.push(
                        Diagnostic::new(
                            v.span(),
                            format!("`{key}` in {} must be between 0 and 2^64-1", self.what),
                        )
                        .help("ABI values are unsigned 64-bit integers"),
                    );
                    None
                }
            },
            _ => {
                self.wrong_type(d, key, v, "an integer");
                None
            }
        }
    }

    fn opt_int(&self, d: &mut Diagnostics, key: &str) -> Option<Sp<u64>> {
        self.get(key).and_then(|v| self.int_at(d, key, v))
    }

    fn req_int(&self, d: &mut Diagnostics, key: &str, example: &str) -> Option<Sp<u64>> {
        self.required(d, key, example)
            .and_then(|v| self.int_at(d, key, v))
    }

    fn opt_bool(&self, d: &mut Diagnostics, key: &str) -> Option<bool> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.wrong_type(d, key, v, "true or false");
                None
            }
        }
    }

    fn opt_array(&self, d: &mut Diagnostics, key: &str) -> Option<&'a DeArray<'i>> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::Array(a) => Some(a),
            _ => {
                self.wrong_type(d, key, v, "an array");
                None
            }
        }
    }

    fn opt_table(&self, d: &mut Diagnostics, key: &str, what: String) -> Option<Obj<'a, 'i>> {
        let v = self.get(key)?;
        as_obj(d, v, what, key)
    }
}

fn as_obj<'a, 'i>(
    d: &mut Diagnostics,
    v: &'a Val<'i>,
    what: String,
    key: &str,
) -> Option<Obj<'a, 'i>> {
    match v.get_ref() {
        DeValue::Table(t) => Some(Obj {
            t,
            span: v.span(),
            what,
        }),
        other => {
            d.push(
                Diagnostic::new(
                    v.span(),
                    format!("`{key}` must be a table, not {}", kind_name(other)),
                )
                .help(format!(
                    "write `{key}` as a table: `{key} = {{ ... }}` or a `[{key}]` section"
                )),
            );
            None
        }
    }
}

/// Array of tables (`[[hypercall]]`), or an error.
fn tables_in<'a, 'i>(d: &mut Diagnostics, v: &'a Val<'i>, key: &str) -> Vec<&'a Val<'i>> {
    match v.get_ref() {
        DeValue::Array(a) => a.iter().collect(),
        other => {
            d.push(
                Diagnostic::new(
                    v.span(),
                    format!(
                        "`{key}` must be an array of tables, not {}",
                        kind_name(other)
                    ),
                )
                .help(format!("write each entry as a `[[{key}]]` table")),
            );
            Vec::new()
        }
    }
}

fn check_name(d: &mut Diagnostics, name: &Sp<String>, what: &str) -> bool {
    match snake_case_problem(&name.v) {
        Some(problem) => {
            d.push(
                Diagnostic::new(name.span.clone(), format!("bad {what} name: {problem}"))
                    .help("names are snake_case and not Rust keywords, e.g. `set_pte`"),
            );
            false
        }
        None => true,
    }
}

/// Parses `src` (the spec shown as `file`). Returns the spec when it has no local problems;
/// the diagnostics hold whatever was found either way.
pub fn parse(src: &str, d: &mut Diagnostics) -> Option<Spec> {
    let (root, errors) = DeTable::parse_recoverable(src);
    if !errors.is_empty() {
        for e in errors {
            let span = e.span().unwrap_or(0..0);
            d.push(
                Diagnostic::new(span, format!("TOML syntax: {}", e.message().trim_end()))
                    .help("fix the TOML syntax; the spec is checked once it parses"),
            );
        }
        return None;
    }
    let root = Obj {
        t: root.get_ref(),
        span: 0..0,
        what: "the spec".into(),
    };
    let mut p = Parser {
        d,
        consts: HashMap::new(),
    };
    p.spec(&root)
}

struct Parser<'d> {
    d: &'d mut Diagnostics,
    consts: HashMap<String, u64>,
}

const ROOT_KEYS: &[&str] = &[
    "abi",
    "consts",
    "types",
    "hypercall",
    "ring",
    "shared",
    "template",
    "pv_table",
    "pv_op",
];

impl Parser<'_> {
    fn spec(&mut self, root: &Obj<'_, '_>) -> Option<Spec> {
        root.check_keys(self.d, ROOT_KEYS);
        let abi_v = root.required(self.d, "abi", "{ name = \"my_abi\", version = 1 }");
        let (abi, transports) = match abi_v.and_then(|v| as_obj(self.d, v, "[abi]".into(), "abi")) {
            Some(o) => self.abi(&o),
            None => (None, Vec::new()),
        };
        let consts = match root.opt_table(self.d, "consts", "[consts]".into()) {
            Some(o) => self.consts(&o),
            None => Vec::new(),
        };
        let types = match root.opt_table(self.d, "types", "[types]".into()) {
            Some(o) => self.types(&o),
            None => Vec::new(),
        };
        let mut hypercalls = Vec::new();
        if let Some(v) = root.get("hypercall") {
            for (i, t) in tables_in(self.d, v, "hypercall").into_iter().enumerate() {
                if let Some(h) = self.hypercall(t, i, &types) {
                    hypercalls.push(h);
                }
            }
        }
        let ring = root
            .opt_table(self.d, "ring", "[ring]".into())
            .and_then(|o| self.ring(&o));
        let shared = root
            .opt_table(self.d, "shared", "[shared]".into())
            .and_then(|o| self.shared(&o));
        let mut templates = Vec::new();
        if let Some(v) = root.get("template") {
            for (i, t) in tables_in(self.d, v, "template").into_iter().enumerate() {
                if let Some(t) = self.template(t, i, shared.as_ref()) {
                    templates.push(t);
                }
            }
        }
        let pv_tables = self.pv(root);
        let abi = abi?;
        Some(Spec {
            abi,
            transports,
            consts,
            types,
            hypercalls,
            ring,
            shared,
            templates,
            pv_tables,
        })
    }

    fn abi(&mut self, o: &Obj<'_, '_>) -> (Option<Abi>, Vec<Transport>) {
        o.check_keys(self.d, &["name", "version", "doc", "transport"]);
        let name = o.req_str(self.d, "name", "\"my_abi\"");
        let version = o.req_int(self.d, "version", "1");
        let doc = o.opt_str(self.d, "doc").map(|s| s.v);
        let version = version.and_then(|v| match u32::try_from(v.v) {
            Ok(n) => Some(n),
            Err(_) => {
                self.d.push(
                    Diagnostic::new(
                        v.span,
                        "`version` in [abi] must fit in a u32 (0 to 4294967295)",
                    )
                    .help("ABI versions count up from 1"),
                );
                None
            }
        });
        let mut transports = Vec::new();
        match o.get("transport") {
            None => self.d.push(
                Diagnostic::new(o.span.clone(), "[abi] has no transport")
                    .help("add an `[abi.transport.vmcall]` table (instruction, nr, args, ret)"),
            ),
            Some(v) => {
                if let Some(t) = as_obj(self.d, v, "[abi.transport]".into(), "transport") {
                    if t.t.is_empty() {
                        self.d.push(
                            Diagnostic::new(t.span.clone(), "[abi.transport] has no transport")
                                .help("add an `[abi.transport.vmcall]` table"),
                        );
                    }
                    for (k, v) in t.t.iter() {
                        let tname = Sp::new(k.get_ref().to_string(), k.span());
                        let what = format!("transport `{}`", tname.v);
                        if let Some(obj) = as_obj(self.d, v, what, &tname.v)
                            && let Some(tr) = self.transport(tname, &obj)
                        {
                            transports.push(tr);
                        }
                    }
                }
            }
        }
        let name = name.filter(|n| check_name(self.d, n, "ABI"));
        let abi = match (name, version) {
            (Some(name), Some(version)) => Some(Abi { name, version, doc }),
            _ => None,
        };
        (abi, transports)
    }

    fn reg(&mut self, o: &Obj<'_, '_>, key: &str, v: &Val<'_>) -> Option<Reg> {
        let s = o.str_at(self.d, key, v)?;
        match Reg::from_name(&s.v) {
            Some(r) => Some(r),
            None => {
                let names: Vec<&str> = Reg::ALL.iter().map(|r| r.name()).collect();
                self.d.push(
                    Diagnostic::new(s.span, format!("unknown register `{}` in {}", s.v, o.what))
                        .help(format!("registers are {}", names.join(", "))),
                );
                None
            }
        }
    }

    fn transport(&mut self, name: Sp<String>, o: &Obj<'_, '_>) -> Option<Transport> {
        o.check_keys(self.d, &["instruction", "port", "nr", "args", "ret", "doc"]);
        let name_ok = check_name(self.d, &name, "transport");
        let doc = o.opt_str(self.d, "doc").map(|s| s.v);
        let instruction = o
            .req_str(self.d, "instruction", "\"vmcall\"")
            .and_then(|s| match s.v.as_str() {
                "vmcall" => Some(Instruction::Vmcall),
                "vmmcall" => Some(Instruction::Vmmcall),
                "out" => Some(Instruction::Out),
                other => {
                    self.d.push(
                        Diagnostic::new(
                            s.span,
                            format!("unknown instruction `{other}` in {}", o.what),
                        )
                        .help("use one of: vmcall, vmmcall, out"),
                    );
                    None
                }
            });
        let port = o
            .opt_int(self.d, "port")
            .and_then(|p| match u16::try_from(p.v) {
                Ok(p) => Some(p),
                Err(_) => {
                    self.d.push(
                        Diagnostic::new(
                            p.span,
                            format!("`port` in {} must be below 0x10000", o.what),
                        )
                        .help("I/O ports are 16-bit: use 0 to 0xffff"),
                    );
                    None
                }
            });
        let mut ok = name_ok;
        if instruction == Some(Instruction::Out) && o.get("port").is_none() {
            self.d.push(
                Diagnostic::new(
                    o.span.clone(),
                    format!("{} uses `out` but has no `port`", o.what),
                )
                .help("add `port = 0xf4` (any port the host traps)"),
            );
            ok = false;
        }
        if instruction.is_some_and(|i| i != Instruction::Out)
            && let Some(v) = o.get("port")
        {
            self.d.push(
                Diagnostic::new(
                    o.key_span("port"),
                    format!("`port` in {} only applies to the `out` instruction", o.what),
                )
                .help("remove `port`"),
            );
            let _ = v;
            ok = false;
        }
        let nr = o
            .required(self.d, "nr", "\"rax\"")
            .and_then(|v| self.reg(o, "nr", v));
        let ret = o
            .required(self.d, "ret", "\"rax\"")
            .and_then(|v| self.reg(o, "ret", v));
        let mut args = Vec::new();
        let mut arg_spans = Vec::new();
        if o.required(self.d, "args", "[\"rbx\", \"rcx\"]").is_some()
            && let Some(a) = o.opt_array(self.d, "args")
        {
            for v in a.iter() {
                match self.reg(o, "args", v) {
                    Some(r) => {
                        args.push(r);
                        arg_spans.push(v.span());
                    }
                    None => ok = false,
                }
            }
        }
        // A register does one job: the call number, one argument, or the result (which
        // may share the call number's register, as rax does in KVM's convention).
        if let Some(nr) = nr {
            let mut seen: Vec<(Reg, &str)> = vec![(nr, "the call number `nr`")];
            for (r, span) in args.iter().zip(&arg_spans) {
                if let Some((_, role)) = seen.iter().find(|(s, _)| s == r) {
                    self.d.push(
                        Diagnostic::new(
                            span.clone(),
                            format!(
                                "register `{}` is used twice in {} (it is already {role})",
                                r.name(),
                                o.what
                            ),
                        )
                        .help("give every argument its own register, distinct from `nr`"),
                    );
                    ok = false;
                } else {
                    seen.push((*r, "another argument"));
                }
            }
            if let Some(ret) = ret
                && args.contains(&ret)
            {
                self.d.push(
                    Diagnostic::new(
                        o.get("ret").map_or(o.span.clone(), |v| v.span()),
                        format!(
                            "register `{}` is used twice in {} (an argument and `ret`)",
                            ret.name(),
                            o.what
                        ),
                    )
                    .help("return the result in `nr`'s register or one no argument uses"),
                );
                ok = false;
            }
        }
        if instruction == Some(Instruction::Out) {
            // `out` sends eax; with a port above 0xff the port travels in dx.
            if let Some(nr) = nr
                && nr != Reg::Rax
            {
                self.d.push(
                    Diagnostic::new(
                        o.get("nr").map_or(o.span.clone(), |v| v.span()),
                        format!(
                            "{}: `out` sends the call number in eax, so `nr` must be `rax`",
                            o.what
                        ),
                    )
                    .help("set `nr = \"rax\"`"),
                );
                ok = false;
            }
            if port.is_some_and(|p| p > 0xff)
                && let Some(i) = args.iter().position(|r| *r == Reg::Rdx)
            {
                self.d.push(
                    Diagnostic::new(
                        arg_spans[i].clone(),
                        format!(
                            "{}: a port above 0xff travels in dx, so rdx cannot carry an argument",
                            o.what
                        ),
                    )
                    .help("use a port up to 0xff, or another register"),
                );
                ok = false;
            }
        }
        if !ok {
            return None;
        }
        Some(Transport {
            name,
            doc,
            instruction: instruction?,
            port,
            nr: nr?,
            args,
            ret: ret?,
        })
    }

    fn consts(&mut self, o: &Obj<'_, '_>) -> Vec<Const> {
        let mut out = Vec::new();
        for (k, v) in o.t.iter() {
            let name = Sp::new(k.get_ref().to_string(), k.span());
            let what = format!("const `{}`", name.v);
            let (value, doc) = match v.get_ref() {
                DeValue::Table(_) => {
                    let Some(c) = as_obj(self.d, v, what, &name.v) else {
                        continue;
                    };
                    c.check_keys(self.d, &["value", "doc"]);
                    (
                        c.req_int(self.d, "value", "0"),
                        c.opt_str(self.d, "doc").map(|s| s.v),
                    )
                }
                DeValue::Integer(_) => (o.int_at(self.d, &name.v, v), None),
                other => {
                    self.d.push(
                        Diagnostic::new(
                            v.span(),
                            format!(
                                "{what} must be an integer or a table, not {}",
                                kind_name(other)
                            ),
                        )
                        .help(format!(
                            "write `{} = {{ value = 1, doc = \"...\" }}`",
                            name.v
                        )),
                    );
                    continue;
                }
            };
            if !check_name(self.d, &name, "const") {
                continue;
            }
            if let Some(value) = value {
                self.consts.insert(name.v.clone(), value.v);
                out.push(Const {
                    name,
                    value: value.v,
                    doc,
                });
            }
        }
        out
    }

    fn prim(&mut self, s: &Sp<String>, what: &str) -> Option<Prim> {
        let p = Prim::from_name(&s.v);
        if p.is_none() {
            self.d.push(
                Diagnostic::new(s.span.clone(), format!("unknown type `{}` in {what}", s.v))
                    .help("use u8, u16, u32, u64 or bool"),
            );
        }
        p
    }

    fn types(&mut self, o: &Obj<'_, '_>) -> Vec<TypeDef> {
        let mut out = Vec::new();
        for (k, v) in o.t.iter() {
            let name = Sp::new(k.get_ref().to_string(), k.span());
            let what = format!("type `{}`", name.v);
            let Some(t) = as_obj(self.d, v, what.clone(), &name.v) else {
                continue;
            };
            t.check_keys(self.d, &["doc", "alias", "repr", "variants"]);
            let name_ok = check_name(self.d, &name, "type");
            let doc = t.opt_str(self.d, "doc").map(|s| s.v);
            let kind = match (t.opt_str(self.d, "alias"), t.get("repr"), t.get("variants")) {
                (Some(alias), None, None) => self.prim(&alias, &what).map(TypeKind::Alias),
                (None, Some(_), Some(_)) => {
                    let repr = t.opt_str(self.d, "repr").and_then(|r| self.prim(&r, &what));
                    let variants = self.variants(&t, repr);
                    repr.map(|repr| TypeKind::Enum { repr, variants })
                }
                (Some(_), _, _) => {
                    self.d.push(
                        Diagnostic::new(
                            t.key_span("alias"),
                            format!("{what} is both an alias and an enum"),
                        )
                        .help("an alias has only `alias`; an enum has `repr` and `variants`"),
                    );
                    None
                }
                _ => {
                    self.d.push(
                        Diagnostic::new(t.span.clone(), format!("{what} needs `alias`, or `repr` and `variants`"))
                            .help("e.g. `alias = \"u64\"`, or `repr = \"u64\"` with `variants = [{ name = \"on\", value = 1 }]`"),
                    );
                    None
                }
            };
            if let (true, Some(kind)) = (name_ok, kind) {
                out.push(TypeDef { name, doc, kind });
            }
        }
        out
    }

    fn variants(&mut self, t: &Obj<'_, '_>, repr: Option<Prim>) -> Vec<Variant> {
        let mut out: Vec<Variant> = Vec::new();
        let Some(a) = t.opt_array(self.d, "variants") else {
            return out;
        };
        if a.is_empty() {
            self.d.push(
                Diagnostic::new(
                    t.key_span("variants"),
                    format!("{} has no variants", t.what),
                )
                .help("an enum needs at least one `{ name, value }`"),
            );
        }
        for v in a.iter() {
            let Some(o) = as_obj(self.d, v, format!("a variant of {}", t.what), "variants") else {
                continue;
            };
            o.check_keys(self.d, &["name", "value", "doc"]);
            let name = o.req_str(self.d, "name", "\"on\"");
            let value = match o.required(self.d, "value", "1") {
                Some(_) => self.opt_number(&o, "value"),
                None => None,
            };
            let doc = o.opt_str(self.d, "doc").map(|s| s.v);
            let (Some(name), Some(value)) = (name, value) else {
                continue;
            };
            if !check_name(self.d, &name, "variant") {
                continue;
            }
            if let Some(repr) = repr
                && value.v > repr.max()
            {
                self.d.push(
                    Diagnostic::new(
                        value.span.clone(),
                        format!(
                            "value {} of variant `{}` does not fit in {}",
                            value.v,
                            name.v,
                            repr.name()
                        ),
                    )
                    .help(format!("use a value up to {}", repr.max())),
                );
                continue;
            }
            if let Some(prev) = out.iter().find(|p| p.name.v == name.v) {
                let _ = prev;
                self.d.push(
                    Diagnostic::new(
                        name.span.clone(),
                        format!("duplicate variant `{}` in {}", name.v, t.what),
                    )
                    .help("variant names are unique within their enum"),
                );
                continue;
            }
            if let Some(prev) = out.iter().find(|p| p.value == value.v) {
                self.d.push(
                    Diagnostic::new(
                        value.span.clone(),
                        format!(
                            "variants `{}` and `{}` of {} share the value {}",
                            prev.name.v, name.v, t.what, value.v
                        ),
                    )
                    .help("give every variant its own value"),
                );
                continue;
            }
            out.push(Variant {
                name,
                value: value.v,
                doc,
            });
        }
        out
    }

    /// A number that may name a const: an integer, or `"const"`, `"const - N"`,
    /// `"const + N"` (so a value the spec already has is written once). `key` names the
    /// value in messages (`range` bound, `init`, `value`).
    fn number(&mut self, v: &Val<'_>, key: &str, what: &str) -> Option<u64> {
        match v.get_ref() {
            DeValue::Integer(i) => match u64::from_str_radix(i.as_str(), i.radix()) {
                Ok(n) => Some(n),
                Err(_) => {
                    self.d.push(
                        Diagnostic::new(
                            v.span(),
                            format!("{key} of {what} must be between 0 and 2^64-1"),
                        )
                        .help("values are unsigned 64-bit integers"),
                    );
                    None
                }
            },
            DeValue::String(s) => {
                let s = s.trim();
                let (name, delta): (&str, i128) = if let Some((a, b)) = s.split_once('-') {
                    (
                        a.trim(),
                        -(b.trim().parse::<i128>().unwrap_or(i128::MIN / 2)),
                    )
                } else if let Some((a, b)) = s.split_once('+') {
                    (a.trim(), b.trim().parse::<i128>().unwrap_or(i128::MIN / 2))
                } else {
                    (s, 0)
                };
                if delta.unsigned_abs() > u64::MAX as u128 {
                    self.d.push(
                        Diagnostic::new(v.span(), format!("cannot read {key} \"{s}\" of {what}"))
                            .help("write a const name, optionally followed by `- N` or `+ N`"),
                    );
                    return None;
                }
                let Some(base) = self.consts.get(name).copied() else {
                    let names: Vec<&str> = self.consts.keys().map(String::as_str).collect();
                    let mut diag = Diagnostic::new(
                        v.span(),
                        format!("unknown const `{name}` in {key} of {what}"),
                    );
                    diag = match did_you_mean(name, &names) {
                        Some(n) => diag.help(format!("did you mean `{n}`?")),
                        None => diag.help("define it in [consts]"),
                    };
                    self.d.push(diag);
                    return None;
                };
                let value = i128::from(base) + delta;
                match u64::try_from(value) {
                    Ok(n) => Some(n),
                    Err(_) => {
                        self.d.push(
                            Diagnostic::new(
                                v.span(),
                                format!("{key} \"{s}\" of {what} is {value}, outside 0..2^64"),
                            )
                            .help("adjust the offset so the value stays within 0..2^64"),
                        );
                        None
                    }
                }
            }
            other => {
                self.d.push(
                    Diagnostic::new(
                        v.span(),
                        format!(
                            "{key} of {what} must be an integer or a const name, not {}",
                            kind_name(other)
                        ),
                    )
                    .help("write a number such as `31`, or a const such as `\"gdt_entries - 1\"`"),
                );
                None
            }
        }
    }

    /// An optional number that may name a const (see [`Parser::number`]).
    fn opt_number(&mut self, o: &Obj<'_, '_>, key: &str) -> Option<Sp<u64>> {
        let v = o.get(key)?;
        let n = self.number(v, &format!("`{key}`"), &o.what)?;
        Some(Sp::new(n, v.span()))
    }

    fn hypercall(&mut self, v: &Val<'_>, index: usize, types: &[TypeDef]) -> Option<Hypercall> {
        let mut o = as_obj(self.d, v, format!("hypercall #{}", index + 1), "hypercall")?;
        let name = o.req_str(self.d, "name", "\"my_call\"");
        if let Some(n) = &name {
            o.what = format!("hypercall `{}`", n.v);
        }
        // `since` is read by lock/since.rs.
        o.check_keys(
            self.d,
            &["name", "nr", "doc", "lazy", "args", "ret", "since"],
        );
        // A number, or a const's name `± N` (ACRN builds its ids from a base).
        let nr = o
            .required(self.d, "nr", "0")
            .and_then(|v| match v.get_ref() {
                // `nr = "10"` is a number in quotes, not a const: say so.
                DeValue::String(t) if t.trim().starts_with(|c: char| c.is_ascii_digit()) => {
                    o.wrong_type(self.d, "nr", v, "an integer");
                    None
                }
                DeValue::String(_) => {
                    let what = o.what.clone();
                    self.number(v, "`nr`", &what).map(|n| Sp::new(n, v.span()))
                }
                _ => o.int_at(self.d, "nr", v),
            });
        let doc = o.req_str(self.d, "doc", "\"What the call does.\"");
        let lazy = o.opt_bool(self.d, "lazy").unwrap_or(false);
        let ret = o.opt_str(self.d, "ret").map(|s| s.v);
        let mut args: Vec<Arg> = Vec::new();
        let mut ok = true;
        if let Some(a) = o.opt_array(self.d, "args") {
            for v in a.iter() {
                match self.arg(v, &o.what, types) {
                    Some(arg) => {
                        if args.iter().any(|p| p.name.v == arg.name.v) {
                            self.d.push(
                                Diagnostic::new(
                                    arg.name.span.clone(),
                                    format!("duplicate argument `{}` in {}", arg.name.v, o.what),
                                )
                                .help("argument names are unique within their hypercall"),
                            );
                            ok = false;
                        } else {
                            args.push(arg);
                        }
                    }
                    None => ok = false,
                }
            }
        }
        let name = name.filter(|n| check_name(self.d, n, "hypercall"));
        if !ok {
            return None;
        }
        Some(Hypercall {
            name: name?,
            nr: nr?,
            doc: doc?.v,
            lazy,
            args,
            ret,
        })
    }

    fn arg(&mut self, v: &Val<'_>, call: &str, types: &[TypeDef]) -> Option<Arg> {
        let mut o = as_obj(self.d, v, format!("an argument of {call}"), "args")?;
        let name = o.req_str(self.d, "name", "\"addr\"");
        if let Some(n) = &name {
            o.what = format!("argument `{}` of {call}", n.v);
        }
        o.check_keys(self.d, &["name", "type", "doc", "align", "range"]);
        let ty_s = o.req_str(self.d, "type", "\"u64\"");
        let doc = o.opt_str(self.d, "doc").map(|s| s.v);
        let align = o.opt_int(self.d, "align");
        let mut ok = true;
        let ty = ty_s.as_ref().and_then(|s| {
            if let Some(p) = Prim::from_name(&s.v) {
                Some(ArgType::Prim(p))
            } else if let Some(i) = types.iter().position(|t| t.name.v == s.v) {
                Some(ArgType::Named(i))
            } else {
                let mut names: Vec<&str> = vec!["u8", "u16", "u32", "u64", "bool"];
                names.extend(types.iter().map(|t| t.name.v.as_str()));
                let mut diag = Diagnostic::new(
                    s.span.clone(),
                    format!("unknown type `{}` in {}", s.v, o.what),
                );
                diag = match did_you_mean(&s.v, &names) {
                    Some(n) => diag.help(format!("did you mean `{n}`?")),
                    None => diag.help(format!(
                        "use one of {}, or define it in [types]",
                        names.join(", ")
                    )),
                };
                self.d.push(diag);
                None
            }
        });
        let prim = ty.as_ref().map(|t| match t {
            ArgType::Prim(p) => (*p, false),
            ArgType::Named(i) => match &types[*i].kind {
                TypeKind::Alias(p) => (*p, false),
                TypeKind::Enum { repr, .. } => (*repr, true),
            },
        });
        // align = N: a power of two, on an integer type.
        if let Some(a) = &align {
            if !a.v.is_power_of_two() {
                self.d.push(
                    Diagnostic::new(
                        a.span.clone(),
                        format!("`align = {}` in {} is not a power of two", a.v, o.what),
                    )
                    .help("use 1, 2, 4, 8, ... 4096, ..."),
                );
                ok = false;
            }
            if let Some((p, is_enum)) = prim
                && (p == Prim::Bool || is_enum)
            {
                self.d.push(
                    Diagnostic::new(
                        o.key_span("align"),
                        format!(
                            "`align` cannot apply to {} (type `{}`)",
                            o.what,
                            ty_s.as_ref().map_or("", |s| s.v.as_str())
                        ),
                    )
                    .help("alignment constrains integers and addresses; remove it"),
                );
                ok = false;
            } else if let Some((p, _)) = prim
                && a.v.is_power_of_two()
                && a.v > p.max()
            {
                self.d.push(
                    Diagnostic::new(
                        a.span.clone(),
                        format!(
                            "`align = {}` in {} is larger than any {}",
                            a.v,
                            o.what,
                            p.name()
                        ),
                    )
                    .help("use a smaller alignment or a wider type"),
                );
                ok = false;
            }
        }
        // range = [lo, hi]: inclusive, within the type.
        let mut range = None;
        if let Some(rv) = o.get("range") {
            match rv.get_ref() {
                DeValue::Array(a) if a.len() == 2 => {
                    let lo = self.number(&a[0], "the `range`", &o.what);
                    let hi = self.number(&a[1], "the `range`", &o.what);
                    if let (Some(lo), Some(hi)) = (lo, hi) {
                        if lo > hi {
                            self.d.push(
                                Diagnostic::new(
                                    rv.span(),
                                    format!("`range = [{lo}, {hi}]` in {} is empty", o.what),
                                )
                                .help("write `[low, high]`, both inclusive, low <= high"),
                            );
                            ok = false;
                        } else if let Some((p, is_enum)) = prim {
                            if p == Prim::Bool || is_enum {
                                self.d.push(
                                    Diagnostic::new(
                                        o.key_span("range"),
                                        format!("`range` cannot apply to {} (its type already limits its values)", o.what),
                                    )
                                    .help("remove `range`"),
                                );
                                ok = false;
                            } else if hi > p.max() {
                                self.d.push(
                                    Diagnostic::new(
                                        rv.span(),
                                        format!("`range = [{lo}, {hi}]` in {} is outside the bounds of {} (0 to {})", o.what, p.name(), p.max()),
                                    )
                                    .help(format!("keep the range within 0..={}, or widen the type", p.max())),
                                );
                                ok = false;
                            } else {
                                range = Some((lo, hi));
                            }
                        }
                    } else {
                        ok = false;
                    }
                }
                _ => {
                    self.d.push(
                        Diagnostic::new(
                            rv.span(),
                            format!("`range` in {} must be a two-element array", o.what),
                        )
                        .help("write `range = [low, high]` (inclusive)"),
                    );
                    ok = false;
                }
            }
        }
        let name = name.filter(|n| check_name(self.d, n, "argument"));
        if !ok {
            return None;
        }
        Some(Arg {
            name: name?,
            ty: ty?,
            ty_span: ty_s?.span,
            doc,
            align: align.map(|a| a.v),
            range,
        })
    }

    fn ring(&mut self, o: &Obj<'_, '_>) -> Option<Ring> {
        o.check_keys(self.d, &["doc", "size", "args", "ready", "done"]);
        let doc = o.opt_str(self.d, "doc").map(|s| s.v);
        let size = o.req_int(self.d, "size", "64");
        let args = o.req_int(self.d, "args", "3");
        let ready = o.req_int(self.d, "ready", "0");
        let done = o.req_int(self.d, "done", "0xff");
        let byte = |d: &mut Diagnostics, v: Option<Sp<u64>>, key: &str| -> Option<u8> {
            let v = v?;
            match u8::try_from(v.v) {
                Ok(b) => Some(b),
                Err(_) => {
                    d.push(
                        Diagnostic::new(
                            v.span,
                            format!("`{key}` in [ring] must fit in the status byte (0 to 255)"),
                        )
                        .help("status values are single bytes"),
                    );
                    None
                }
            }
        };
        let ready_b = byte(self.d, ready.clone(), "ready");
        let done_b = byte(self.d, done, "done");
        let size = size.filter(|s| {
            let ok = s.v > 0 && s.v <= 4096;
            if !ok {
                self.d.push(
                    Diagnostic::new(
                        s.span.clone(),
                        "`size` in [ring] must be between 1 and 4096",
                    )
                    .help("lguest uses 64 slots"),
                );
            }
            ok
        });
        if let (Some(r), Some(dn)) = (ready_b, done_b)
            && r == dn
        {
            self.d.push(
                Diagnostic::new(
                    ready.map_or(o.span.clone(), |r| r.span),
                    "`ready` and `done` in [ring] are the same value",
                )
                .help("the host and the guest tell slots apart by these values: make them differ"),
            );
            return None;
        }
        Some(Ring {
            doc,
            size: size?.v,
            args: args?.v,
            ready: ready_b?,
            done: done_b?,
            span: o.span.clone(),
        })
    }

    fn shared(&mut self, o: &Obj<'_, '_>) -> Option<SharedPage> {
        o.check_keys(self.d, &["name", "doc", "field"]);
        let name = o.req_str(self.d, "name", "\"shared_page\"");
        let doc = o.opt_str(self.d, "doc").map(|s| s.v);
        let mut fields: Vec<Field> = Vec::new();
        let mut ok = true;
        if let Some(v) = o.required(
            self.d,
            "field",
            "[...] (one [[shared.field]] table per field)",
        ) {
            for f in tables_in(self.d, v, "shared.field") {
                match self.field(f) {
                    Some(f) => {
                        if fields.iter().any(|p| p.name.v == f.name.v) {
                            self.d.push(
                                Diagnostic::new(
                                    f.name.span.clone(),
                                    format!("duplicate shared-page field `{}`", f.name.v),
                                )
                                .help("field names are unique"),
                            );
                            ok = false;
                        } else {
                            fields.push(f);
                        }
                    }
                    None => ok = false,
                }
            }
        }
        let name = name.filter(|n| check_name(self.d, n, "shared-page struct"));
        if !ok {
            return None;
        }
        Some(SharedPage {
            name: name?,
            doc,
            fields,
        })
    }

    fn field(&mut self, v: &Val<'_>) -> Option<Field> {
        let mut o = as_obj(self.d, v, "a shared-page field".into(), "field")?;
        let name = o.req_str(self.d, "name", "\"flags\"");
        if let Some(n) = &name {
            o.what = format!("shared-page field `{}`", n.v);
        }
        o.check_keys(self.d, &["name", "type", "offset", "writer", "init", "doc"]);
        let ty_s = o.req_str(self.d, "type", "\"u32\"");
        let offset = o.opt_int(self.d, "offset");
        let init = self.opt_number(&o, "init");
        let doc = o.opt_str(self.d, "doc").map(|s| s.v);
        let writer = o
            .req_str(self.d, "writer", "\"guest\"")
            .and_then(|w| match w.v.as_str() {
                "guest" => Some(Writer::Guest),
                "host" => Some(Writer::Host),
                "both" => Some(Writer::Both),
                other => {
                    self.d.push(
                        Diagnostic::new(w.span, format!("unknown writer `{other}` in {}", o.what))
                            .help("use guest, host or both"),
                    );
                    None
                }
            });
        let ty = ty_s.as_ref().and_then(|s| {
            let t = s.v.trim();
            if t == "ring.status" {
                return Some(FieldType::RingStatus);
            }
            if t == "ring.slots" {
                return Some(FieldType::RingSlots);
            }
            if let Some(p) = Prim::from_name(t).filter(|p| *p != Prim::Bool) {
                return Some(FieldType::Prim(p));
            }
            if let Some(inner) = t.strip_prefix('[').and_then(|r| r.strip_suffix(']'))
                && let Some((e, n)) = inner.split_once(';')
                && let (Some(p), Ok(n)) = (Prim::from_name(e.trim()), n.trim().parse::<u64>())
                && p != Prim::Bool
                && n > 0
            {
                return Some(FieldType::Array(p, n));
            }
            self.d.push(
                Diagnostic::new(s.span.clone(), format!("unknown type `{}` in {}", s.v, o.what))
                    .help("use u8, u16, u32, u64, an array such as \"[u8; 16]\", \"ring.status\" or \"ring.slots\""),
            );
            None
        });
        if let (Some(ty), Some(init)) = (&ty, &init) {
            let max = match ty {
                FieldType::Prim(p) | FieldType::Array(p, _) => p.max(),
                FieldType::RingStatus | FieldType::RingSlots => {
                    self.d.push(
                        Diagnostic::new(
                            init.span.clone(),
                            format!("{} takes its initial value from [ring]", o.what),
                        )
                        .help("remove `init`"),
                    );
                    return None;
                }
            };
            if init.v > max {
                self.d.push(
                    Diagnostic::new(
                        init.span.clone(),
                        format!("`init = {}` does not fit {}", init.v, o.what),
                    )
                    .help(format!("use a value up to {max}")),
                );
                return None;
            }
        }
        let name = name.filter(|n| check_name(self.d, n, "field"));
        Some(Field {
            name: name?,
            ty: ty?,
            ty_span: ty_s?.span,
            // Laid out and checked against the spec's offset in check.rs.
            offset: offset.map_or(u64::MAX, |o| o.v),
            writer: writer?,
            init: init.map_or(0, |i| i.v),
            doc,
        })
    }

    fn template(
        &mut self,
        v: &Val<'_>,
        index: usize,
        shared: Option<&SharedPage>,
    ) -> Option<Template> {
        let mut o = as_obj(self.d, v, format!("template #{}", index + 1), "template")?;
        let name = o.req_str(self.d, "name", "\"cli\"");
        if let Some(n) = &name {
            o.what = format!("template `{}`", n.v);
        }
        o.check_keys(self.d, &["name", "doc", "forms"]);
        let doc = o.opt_str(self.d, "doc").map(|s| s.v);
        let mut forms = Vec::new();
        let mut ok = true;
        if o.required(self.d, "forms", "[{ asm = \"...\", bytes = \"...\" }]")
            .is_some()
            && let Some(a) = o.opt_array(self.d, "forms")
        {
            if a.is_empty() {
                self.d.push(
                    Diagnostic::new(o.key_span("forms"), format!("{} has no forms", o.what))
                        .help("give at least one `{ asm, bytes }` encoding"),
                );
                ok = false;
            }
            for f in a.iter() {
                let Some(fo) = as_obj(self.d, f, format!("a form of {}", o.what), "forms") else {
                    ok = false;
                    continue;
                };
                fo.check_keys(self.d, &["asm", "bytes"]);
                let asm = fo.req_str(self.d, "asm", "\"mov eax, dword ptr [field]\"");
                let bytes = fo.req_str(self.d, "bytes", "\"8b 05 {rel32:field}\"");
                match (asm, bytes) {
                    (Some(asm), Some(bytes)) => match self.form_bytes(&bytes, &o.what, shared) {
                        Some((b, relocs)) => forms.push(Form {
                            asm: asm.v,
                            bytes: b,
                            relocs,
                        }),
                        None => ok = false,
                    },
                    _ => ok = false,
                }
            }
        }
        let name = name.filter(|n| check_name(self.d, n, "template"));
        if !ok {
            return None;
        }
        Some(Template {
            name: name?,
            doc,
            forms,
        })
    }

    /// `"c7 05 {rel32:irq_enabled} 00 00 00 00"` -> bytes and relocations.
    fn form_bytes(
        &mut self,
        s: &Sp<String>,
        what: &str,
        shared: Option<&SharedPage>,
    ) -> Option<(Vec<u8>, Vec<Reloc>)> {
        let mut bytes = Vec::new();
        let mut relocs = Vec::new();
        let mut ok = true;
        // The string's content starts after its opening quote.
        let base = s.span.start + 1;
        let text = &s.v;
        let mut i = 0;
        let bad = |d: &mut Diagnostics, at: usize, len: usize, msg: String, help: &str| {
            d.push(Diagnostic::new(base + at..base + at + len, msg).help(help.to_string()));
        };
        while i < text.len() {
            let rest = &text[i..];
            let c = rest.chars().next().unwrap_or(' ');
            if c.is_whitespace() {
                i += c.len_utf8();
                continue;
            }
            if c == '{' {
                let Some(end) = rest.find('}') else {
                    bad(
                        self.d,
                        i,
                        rest.len(),
                        format!("unclosed `{{` in the bytes of {what}"),
                        "write a relocation as `{rel32:field}`",
                    );
                    return None;
                };
                let inner = &rest[1..end];
                let (kind, field) = inner.split_once(':').unwrap_or((inner, ""));
                let kind = match kind.trim() {
                    "abs32" => Some(RelocKind::Abs32),
                    "abs64" => Some(RelocKind::Abs64),
                    "rel32" => Some(RelocKind::Rel32),
                    other => {
                        bad(
                            self.d,
                            i,
                            end + 1,
                            format!("unknown relocation kind `{other}` in the bytes of {what}"),
                            "use abs32, abs64 or rel32, as in `{rel32:field}`",
                        );
                        None
                    }
                };
                let field = field.trim();
                let field_offset = match shared {
                    None => {
                        bad(
                            self.d,
                            i,
                            end + 1,
                            format!(
                                "relocation to `{field}` in {what}, but the spec has no [shared] page"
                            ),
                            "templates point at shared-page fields: add [shared]",
                        );
                        None
                    }
                    Some(sh) => match sh.fields.iter().find(|f| f.name.v == field) {
                        Some(f) => Some(f.offset),
                        None => {
                            let names: Vec<&str> =
                                sh.fields.iter().map(|f| f.name.v.as_str()).collect();
                            let help = match did_you_mean(field, &names) {
                                Some(n) => format!("did you mean `{n}`?"),
                                None => format!("shared-page fields are: {}", names.join(", ")),
                            };
                            bad(
                                self.d,
                                i,
                                end + 1,
                                format!(
                                    "relocation to unknown shared-page field `{field}` in {what}"
                                ),
                                &help,
                            );
                            None
                        }
                    },
                };
                match (kind, field_offset) {
                    (Some(kind), Some(field_offset)) => {
                        relocs.push(Reloc {
                            at: bytes.len(),
                            kind,
                            field: field.to_string(),
                            field_offset,
                        });
                        bytes.extend(std::iter::repeat_n(0u8, kind.width()));
                    }
                    _ => ok = false,
                }
                i += end + 1;
                continue;
            }
            let tok_len = rest
                .find(|c: char| c.is_whitespace() || c == '{')
                .unwrap_or(rest.len());
            let tok = &rest[..tok_len];
            match (tok.len(), u8::from_str_radix(tok, 16)) {
                (2, Ok(b)) => bytes.push(b),
                _ => {
                    bad(
                        self.d,
                        i,
                        tok_len,
                        format!("`{tok}` in the bytes of {what} is not a hex byte"),
                        "write bytes as two hex digits separated by spaces, e.g. \"8b 05 {rel32:field}\"",
                    );
                    ok = false;
                }
            }
            i += tok_len;
        }
        if bytes.is_empty() && ok {
            bad(
                self.d,
                0,
                text.len(),
                format!("the bytes of {what} are empty"),
                "give the instruction's encoding",
            );
            return None;
        }
        ok.then_some((bytes, relocs))
    }

    fn rust_type(&mut self, s: &Sp<String>, what: &str) -> Option<syn::Type> {
        match syn::parse_str::<syn::Type>(&s.v) {
            Ok(t) => Some(t),
            Err(e) => {
                self.d.push(
                    Diagnostic::new(s.span.clone(), format!("`{}` in {what} is not a Rust type: {e}", s.v))
                        .help("write a Rust type, e.g. \"u64\", \"&mut [u8]\" or \"x86::bits64::paging::PTEntry\""),
                );
                None
            }
        }
    }

    fn pv(&mut self, root: &Obj<'_, '_>) -> Vec<PvTable> {
        let mut tables: Vec<PvTable> = Vec::new();
        if let Some(o) = root.opt_table(self.d, "pv_table", "[pv_table]".into()) {
            for (k, v) in o.t.iter() {
                let name = Sp::new(k.get_ref().to_string(), k.span());
                let Some(t) = as_obj(self.d, v, format!("pv_table `{}`", name.v), &name.v) else {
                    continue;
                };
                t.check_keys(self.d, &["doc"]);
                let doc = t.opt_str(self.d, "doc").map(|s| s.v);
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
            let Some(mut o) = as_obj(self.d, t, format!("pv_op #{}", i + 1), "pv_op") else {
                continue;
            };
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
            let doc = o.req_str(self.d, "doc", "\"What the op does.\"");
            let callee_save = o.opt_bool(self.d, "callee_save").unwrap_or(false);
            let is_unsafe = o.opt_bool(self.d, "unsafe").unwrap_or(false);
            let safety = o.opt_str(self.d, "safety").map(|s| s.v);
            let template = o.opt_str(self.d, "template");
            let what = o.what.clone();
            let ret = o
                .opt_str(self.d, "ret")
                .and_then(|r| self.rust_type(&r, &what));
            let mut ok = o.get("ret").is_none() || ret.is_some();
            let mut args: Vec<(Sp<String>, syn::Type)> = Vec::new();
            if let Some(a) = o.opt_array(self.d, "args") {
                for v in a.iter() {
                    let Some(ao) = as_obj(self.d, v, format!("an argument of {what}"), "args")
                    else {
                        ok = false;
                        continue;
                    };
                    ao.check_keys(self.d, &["name", "type"]);
                    let an = ao.req_str(self.d, "name", "\"value\"");
                    let at = ao.req_str(self.d, "type", "\"u64\"");
                    let at = at.and_then(|t| self.rust_type(&t, &what));
                    match (an, at) {
                        (Some(an), Some(at)) if check_name(self.d, &an, "argument") => {
                            if args.iter().any(|(p, _)| p.v == an.v) {
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
            }
            if is_unsafe && safety.is_none() {
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
                continue;
            };
            let op = PvOp {
                name,
                doc: doc.v,
                args,
                ret,
                callee_save,
                is_unsafe,
                safety,
                template,
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
}
