//! Room: from TOML text to a [`Spec`], one file per section of the format, reporting every
//! local problem on the way.
//!
//! The TOML is parsed into toml's spanned document tree rather than through
//! `#[derive(Deserialize)]`: serde stops at the first error, and a spec author wants them
//! all, each pointing at its key. [`toml`] is the generic reader (a table that knows which
//! keys it accepts, so a typo is caught and a near miss suggested); `abi.rs`, `numbers.rs`,
//! `types.rs`, `hypercall.rs` (with `memory.rs` and `results.rs` for its arguments in
//! guest memory and its results), `shared.rs`, `template.rs` and `pv.rs` each read one section.
//! An item with a problem is kept where the rest of it is readable, so the checks that
//! need the whole spec (`check.rs`: unique numbers, register budgets, layout) still run and
//! report theirs in the same pass.

mod abi;
mod hypercall;
mod memory;
mod numbers;
mod pv;
mod results;
mod shared;
mod structs;
mod template;
mod toml;
mod types;

use std::collections::{HashMap, HashSet};

use ::toml::de::DeTable;

use self::toml::{Obj, as_obj, tables_in};
use crate::diag::{Diagnostic, Diagnostics};
use crate::spec::*;

/// Parses `src`. Returns the spec whenever its `[abi]` table is there, with the items that
/// could be read, so `check` can run on it too; the diagnostics hold every problem found.
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
        texts: HashSet::new(),
    };
    p.spec(&root)
}

struct Parser<'d> {
    d: &'d mut Diagnostics,
    /// `[consts]` by name, for numbers that name one.
    consts: HashMap<String, u64>,
    /// `[consts]` that are texts, so a number naming one is told so.
    texts: HashSet<String>,
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
    "struct",
];

impl Parser<'_> {
    /// The whole spec, section by section.
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
        let structs = match root.opt_table(self.d, "struct", "[struct]".into()) {
            Some(o) => self.structs(&o, &types),
            None => Vec::new(),
        };
        let mut hypercalls = Vec::new();
        if root.get("hypercall").is_none() {
            self.d.push(
                Diagnostic::new(0..0, "the spec has no hypercalls")
                    .help("add at least one [[hypercall]] table (name, nr, doc)"),
            );
        }
        if let Some(v) = root.get("hypercall") {
            for (i, t) in tables_in(self.d, v, "hypercall").into_iter().enumerate() {
                if let Some(h) = self.hypercall(t, i, &types, &structs) {
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
            structs,
        })
    }
}
