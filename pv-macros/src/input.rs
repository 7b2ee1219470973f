//! Parsing the macros' input with `syn`: one option parser (`name = value, ...`) for both
//! `#[pv_ops]` and `pv_call!`, and `pv_call!`'s call.

use proc_macro2::Span;
use syn::parse::{Parse, ParseStream};
use syn::{Expr, Ident, LitStr, Token};

use codegen::macros::call_site::Call;

/// What an option's value is.
#[derive(Clone, Copy)]
pub(crate) enum Kind {
    /// A string literal: `spec = "path"`.
    Str,
    /// A path: `slot = SAVE_FL`.
    Path,
}

/// An option's value.
enum Value {
    Str(LitStr),
    Path(syn::Path),
}

/// The options a macro takes and those given.
pub(crate) struct Options {
    keys: &'static [(&'static str, Kind)],
    given: Vec<(&'static str, Value)>,
}

impl Options {
    pub(crate) fn new(keys: &'static [(&'static str, Kind)]) -> Self {
        Options {
            keys,
            given: Vec::new(),
        }
    }

    /// Whether the input starts with an option, `name =`.
    pub(crate) fn peek(input: ParseStream) -> bool {
        input.peek(Ident) && input.peek2(Token![=])
    }

    /// Parses one `name = value`. Errors: a name the macro does not take (at it: "expected
    /// `spec` or `table`"), a value of the wrong kind, a repeated name.
    pub(crate) fn parse_one(&mut self, input: ParseStream) -> syn::Result<()> {
        let expected = self.expected();
        if !input.peek(Ident) {
            return Err(input.error(expected));
        }
        let name: Ident = input.parse()?;
        let Some(&(key, kind)) = self.keys.iter().find(|(k, _)| name == k) else {
            return Err(syn::Error::new(name.span(), expected));
        };
        input.parse::<Token![=]>()?;
        let value = match kind {
            Kind::Str => Value::Str(input.parse()?),
            Kind::Path => Value::Path(input.parse()?),
        };
        if self.given.iter().any(|(k, _)| *k == key) {
            return Err(syn::Error::new(
                name.span(),
                format!("option `{key}` is given twice"),
            ));
        }
        self.given.push((key, value));
        Ok(())
    }

    /// `expected `a``, `expected `a` or `b``, `expected one of: `a`, `b`, `c``, as syn's
    /// lookahead says it.
    fn expected(&self) -> String {
        let names: Vec<String> = self.keys.iter().map(|(k, _)| format!("`{k}`")).collect();
        match names.as_slice() {
            [one] => format!("expected {one}"),
            [a, b] => format!("expected {a} or {b}"),
            all => format!("expected one of: {}", all.join(", ")),
        }
    }

    pub(crate) fn str(&self, key: &str) -> Option<&LitStr> {
        self.given.iter().find_map(|(k, v)| match v {
            Value::Str(s) if *k == key => Some(s),
            _ => None,
        })
    }

    pub(crate) fn path(&self, key: &str) -> Option<&syn::Path> {
        self.given.iter().find_map(|(k, v)| match v {
            Value::Path(p) if *k == key => Some(p),
            _ => None,
        })
    }
}

/// `#[pv_ops(spec = "...", table = "...")]`.
pub(crate) struct OpsArgs(pub Options);

impl Parse for OpsArgs {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut opts = Options::new(&[("spec", Kind::Str), ("table", Kind::Str)]);
        while !input.is_empty() {
            opts.parse_one(input)?;
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }
        Ok(OpsArgs(opts))
    }
}

/// `pv_call!(spec = "...", slot = PATH, table.op(args...))`.
pub(crate) struct PvCall {
    pub opts: Options,
    pub call: Option<Call>,
}

impl Parse for PvCall {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut out = PvCall {
            opts: Options::new(&[("spec", Kind::Str), ("slot", Kind::Path)]),
            call: None,
        };
        while !input.is_empty() {
            if Options::peek(input) {
                out.opts.parse_one(input)?;
            } else if input.peek(Ident) && input.peek2(Token![.]) {
                let table: Ident = input.parse()?;
                input.parse::<Token![.]>()?;
                let op: Ident = input.parse()?;
                let content;
                let paren = syn::parenthesized!(content in input);
                let args = content.parse_terminated(Expr::parse, Token![,])?;
                if out.call.is_some() {
                    return Err(syn::Error::new(
                        table.span(),
                        "pv_call! makes one call: give a single `table.op(args...)`",
                    ));
                }
                out.call = Some(Call {
                    table,
                    op,
                    paren,
                    args,
                });
            } else {
                return Err(input.error(
                    "expected an option (`spec = \"...\"`, `slot = PATH`) or the call `table.op(args...)`",
                ));
            }
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }
        Ok(out)
    }
}

/// An error at the macro's invocation.
pub(crate) fn at_call_site(message: impl std::fmt::Display) -> syn::Error {
    syn::Error::new(Span::call_site(), message)
}
