//! The ABI lock: every fact of a spec that a built guest or host depends on, as a canonical
//! tree of `path = value` facts, and the breaking-change check between two such trees.
//!
//! `pvgen lock SPEC` writes the facts of SPEC to `SPEC.lock` (this module's
//! [`Facts::lock_text`]); `pvgen check SPEC` compares the spec with its lock and
//! `pvgen diff OLD NEW` any two specs or locks ([`compare`]). A fact is a leaf of a tree
//! keyed by path, `hypercall.set_pte.nr = 14`; what a change of it means is decided by the
//! rule of its path's pattern in `lock/rules.rs`, so a new kind of fact (a struct field, a
//! memory argument's direction, a second result register) is one line of
//! `lock/extract.rs` and one row of the rule table, not a new file format. Docs, comments and the order of tables in the
//! spec are not facts.
//!
//! The lock is TOML with dotted keys, one fact a line, sorted by path, so it parses with
//! the same toml crate and a review reads it like a table.

mod extract;
mod report;
mod rules;
pub mod since;

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};

use crate::diag::{Diagnostic, Diagnostics};

pub use report::Report;
pub use rules::{Change, Class, Verdict, compare};

/// The lock format's version, written as `lock.format`.
pub const FORMAT: u64 = 1;

/// One segment of a fact's path: a name, or a position (arguments, forms).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Seg {
    /// A position, ordered numerically.
    Num(u64),
    /// A name or key.
    Name(String),
}

/// A fact's path, `hypercall.set_pte.arg.0.type`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key(pub Vec<Seg>);

impl Key {
    /// Parses a dotted path; all-digit segments are positions.
    pub fn parse(s: &str) -> Key {
        Key(s
            .split('.')
            .map(|p| match p.parse::<u64>() {
                Ok(n) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => Seg::Num(n),
                _ => Seg::Name(p.to_string()),
            })
            .collect())
    }

    /// The `i`th segment as text.
    pub fn seg(&self, i: usize) -> String {
        match self.0.get(i) {
            Some(Seg::Num(n)) => n.to_string(),
            Some(Seg::Name(s)) => s.clone(),
            None => String::new(),
        }
    }

    /// Whether `prefix` is a prefix of this path.
    pub fn starts_with(&self, prefix: &Key) -> bool {
        self.0.starts_with(&prefix.0)
    }

    /// The first `n` segments.
    pub fn prefix(&self, n: usize) -> Key {
        Key(self.0[..n.min(self.0.len())].to_vec())
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, _) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            f.write_str(&self.seg(i))?;
        }
        Ok(())
    }
}

/// A fact's value.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Value {
    /// An unsigned integer.
    Int(u64),
    /// A flag.
    Bool(bool),
    /// A name, a type or bytes.
    Str(String),
    /// An ordered list (registers, accepted values, bounds).
    List(Vec<Value>),
}

impl Value {
    /// The integer, if it is one.
    pub fn int(&self) -> Option<u64> {
        match self {
            Value::Int(n) => Some(*n),
            _ => None,
        }
    }

    /// The string, if it is one.
    pub fn str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The flag, if it is one.
    pub fn bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The list, if it is one.
    pub fn list(&self) -> Option<&[Value]> {
        match self {
            Value::List(l) => Some(l),
            _ => None,
        }
    }
}

impl fmt::Display for Value {
    /// The canonical TOML spelling.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int(n) => write!(f, "{n}"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Str(s) => {
                f.write_str("\"")?;
                for c in s.chars() {
                    match c {
                        '"' => f.write_str("\\\"")?,
                        '\\' => f.write_str("\\\\")?,
                        c if c.is_control() => write!(f, "\\u{:04x}", u32::from(c))?,
                        c => write!(f, "{c}")?,
                    }
                }
                f.write_str("\"")
            }
            Value::List(l) => {
                f.write_str("[")?;
                for (i, v) in l.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
        }
    }
}

/// A fact: its value and where it is written (in the spec or lock it came from).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fact {
    /// The value.
    pub value: Value,
    /// Byte span of the key or value it was read from.
    pub span: Range<usize>,
}

/// Every ABI fact of one spec or lock, with the text it came from (for diagnostics).
#[derive(Clone, Debug)]
pub struct Facts {
    /// Name the source is shown under.
    pub file: String,
    /// The spec or lock text.
    pub source: String,
    /// Whether it was read from a lock (rather than a spec).
    pub is_lock: bool,
    /// Where `[abi] version` is written, for diagnostics about things that are not there.
    pub version_span: Range<usize>,
    /// The facts, by path.
    pub map: BTreeMap<Key, Fact>,
}

impl Facts {
    /// The facts of a checked spec whose text is `src`, shown as `file`.
    pub fn from_spec(spec: &crate::Spec, file: &str, src: &str) -> Facts {
        extract::facts(spec, file, src)
    }

    /// The value at `path` (dotted).
    pub fn get(&self, path: &str) -> Option<&Value> {
        self.map.get(&Key::parse(path)).map(|f| &f.value)
    }

    /// The ABI's name.
    pub fn abi(&self) -> &str {
        self.get("abi.name").and_then(Value::str).unwrap_or("?")
    }

    /// The ABI's version.
    pub fn version(&self) -> u64 {
        self.get("abi.version").and_then(Value::int).unwrap_or(0)
    }

    /// The lock file's text: a header, `lock.format`, then every fact sorted by path, a
    /// blank line between groups (`abi`, each hypercall, each type, ...).
    pub fn lock_text(&self) -> String {
        let mut out = format!(
            "# ABI lock of `{}` v{}, written by `pvgen lock`: every fact of the spec a built guest or\n# host depends on. `pvgen check` compares the spec with it; refresh it with `pvgen lock`\n# after an additive change or a version bump. Do not edit.\n\nlock.format = {FORMAT}\n",
            self.abi(),
            self.version()
        );
        let mut group: Option<Key> = None;
        for (k, f) in &self.map {
            let g = k.prefix(if k.0.len() > 2 { 2 } else { 1 });
            if group.as_ref() != Some(&g) {
                out.push('\n');
                group = Some(g);
            }
            out.push_str(&format!("{k} = {}\n", f.value));
        }
        out
    }

    /// Reads a lock written by [`Facts::lock_text`].
    ///
    /// # Errors
    ///
    /// Diagnostics for TOML errors, an unknown `lock.format`, or a missing ABI name or version.
    pub fn parse_lock(file: &str, src: &str) -> Result<Facts, Diagnostics> {
        let mut d = Diagnostics::new(file, src);
        let root = match DeTable::parse(src) {
            Ok(t) => t,
            Err(e) => {
                d.push(
                    Diagnostic::new(
                        e.span().unwrap_or(0..0),
                        format!("the lock is not valid TOML: {}", e.message().trim_end()),
                    )
                    .help("a lock is written by `pvgen lock SPEC`: write it again"),
                );
                return Err(d);
            }
        };
        let mut facts = Facts {
            file: file.to_string(),
            source: src.to_string(),
            is_lock: true,
            version_span: 0..0,
            map: BTreeMap::new(),
        };
        let mut stack = vec![(Vec::new(), root.get_ref())];
        while let Some((path, table)) = stack.pop() {
            for (k, v) in table.iter() {
                let mut p: Vec<String> = path.clone();
                p.push(k.get_ref().to_string());
                match v.get_ref() {
                    DeValue::Table(t) => stack.push((p, t)),
                    other => match lock_value(other) {
                        Some(value) => {
                            facts.map.insert(
                                Key::parse(&p.join(".")),
                                Fact {
                                    value,
                                    span: v.span(),
                                },
                            );
                        }
                        None => d.push(
                            Diagnostic::new(
                                v.span(),
                                format!("`{}` has no ABI value", p.join(".")),
                            )
                            .help("a lock holds integers, booleans, strings and lists of them"),
                        ),
                    },
                }
            }
        }
        let format = facts.map.remove(&Key::parse("lock.format"));
        match format {
            Some(Fact {
                value: Value::Int(FORMAT),
                ..
            }) => {}
            Some(f) => d.push(
                Diagnostic::new(f.span, format!("lock format {} is not {FORMAT}", f.value))
                    .help("the lock was written by another pvgen: write it again with this one"),
            ),
            None => d.push(
                Diagnostic::new(0..0, "the lock has no `lock.format`")
                    .help("a lock is written by `pvgen lock SPEC`: write it again"),
            ),
        }
        for key in ["abi.name", "abi.version"] {
            match facts.map.get(&Key::parse(key)) {
                Some(f) if key == "abi.version" => facts.version_span = f.span.clone(),
                Some(_) => {}
                None => d.push(
                    Diagnostic::new(0..0, format!("the lock has no `{key}`"))
                        .help("a lock is written by `pvgen lock SPEC`: write it again"),
                ),
            }
        }
        if d.is_empty() { Ok(facts) } else { Err(d) }
    }

    /// Reads a spec or a lock (told by its first non-comment line, or a `.lock` name).
    ///
    /// # Errors
    ///
    /// [`crate::Error::Io`] when it cannot be read, [`crate::Error::Spec`] with the
    /// diagnostics of a bad spec or lock.
    pub fn load(path: &Path) -> Result<Facts, crate::Error> {
        let file = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|error| crate::Error::Io {
            path: path.to_path_buf(),
            error,
        })?;
        let src = crate::diag::decode(&file, bytes).map_err(crate::Error::Spec)?;
        if path.extension().is_some_and(|e| e == "lock") || looks_like_lock(&src) {
            Facts::parse_lock(&file, &src).map_err(crate::Error::Spec)
        } else {
            let spec = crate::load(&file, &src).map_err(crate::Error::Spec)?;
            Ok(Facts::from_spec(&spec, &file, &src))
        }
    }
}

fn looks_like_lock(src: &str) -> bool {
    src.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .is_some_and(|l| l.starts_with("lock.format"))
}

fn lock_value(v: &DeValue<'_>) -> Option<Value> {
    Some(match v {
        DeValue::Integer(i) => Value::Int(u64::from_str_radix(i.as_str(), i.radix()).ok()?),
        DeValue::Boolean(b) => Value::Bool(*b),
        DeValue::String(s) => Value::Str(s.to_string()),
        DeValue::Array(a) => Value::List(
            a.iter()
                .map(|v| lock_value(v.get_ref()))
                .collect::<Option<_>>()?,
        ),
        _ => return None,
    })
}

/// Where the lock of the spec at `spec` lives: beside it, `.toml` replaced by `.lock`
/// (`spec/lguest.toml` → `spec/lguest.lock`).
pub fn lock_path(spec: &Path) -> PathBuf {
    spec.with_extension("lock")
}
