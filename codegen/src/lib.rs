//! Generate everything a paravirtual ABI needs from one TOML spec.
//!
//! A spec (see `spec/README.md` in this repository) lists an ABI's transports,
//! hypercalls with typed and constrained arguments, the page shared by guest and host with
//! its async hypercall ring, the pv_ops a guest kernel overrides and the instruction
//! templates that replace their call sites. From it this crate generates, one module each:
//!
//! | module | what |
//! |---|---|
//! | `numbers` | `Hypercall` enum with `TryFrom<u64>`, a const per number, the spec's consts |
//! | `types` | the spec's argument types: aliases and enums |
//! | `guest` | the `Transport` trait, one transport per `[abi.transport]`, a typed wrapper per hypercall |
//! | `lazy` | the async ring's producer and the lazy variant of each `lazy` hypercall |
//! | `shared` | the shared page as a `#[repr(C)]` struct with offsets and layout asserts |
//! | `pv_ops` | a trait per pv_op table and the ops-table struct of function pointers |
//! | `patch` | the templates, call-site sizes and `patch()` |
//! | `host` | the host trait and `dispatch()`, which checks every argument first |
//!
//! plus a Markdown reference of the ABI.
//!
//! # From build.rs
//!
//! ```no_run
//! // build.rs
//! if let Err(e) = codegen::Config::new().compile("../spec/lguest.toml") {
//!     eprintln!("{e}"); // every spec problem, with file:line:col
//!     std::process::exit(1);
//! }
//! ```
//!
//! ```text
//! // src/lib.rs
//! include!(concat!(env!("OUT_DIR"), "/lguest.rs"));
//! ```
//!
//! [`Config::compile`] writes `$OUT_DIR/<abi>.rs` (every module, inline) and prints
//! `cargo:rerun-if-changed` for the spec, so editing the spec and running `cargo build` is
//! all a user does.
//!
//! # In memory
//!
//! [`load`] parses and checks a spec, [`generate`] renders it; `pvgen` and the
//! `pv-macros` crate are thin shells over these.

#![deny(missing_docs)]

mod cargo_crate;
pub mod check;
pub mod diag;
mod emit;
pub mod lock;
pub mod macros;
pub mod names;
pub mod outdir;
mod parse;
pub mod spec;

use std::fmt;
use std::path::{Path, PathBuf};

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

pub use cargo_crate::write_crate;
pub use diag::{Diagnostic, Diagnostics};
pub use spec::Spec;

/// Parses and checks the spec text `src`, shown in diagnostics as `file`.
///
/// # Errors
///
/// Every problem in the spec, each with its `file:line:col`.
pub fn load(file: &str, src: &str) -> Result<Spec, Diagnostics> {
    let mut d = Diagnostics::new(file, src);
    let spec = parse::parse(src, &mut d);
    let spec = match spec {
        Some(mut s) if d.is_empty() => {
            check::check(&mut s, &mut d);
            check_budget(&s, &mut d);
            lock::since::check(&s, src, &mut d);
            Some(s)
        }
        _ => None,
    };
    d.sort();
    match spec {
        Some(s) if d.is_empty() => Ok(s),
        _ => Err(d),
    }
}

/// Checks that need the emitters' view of the spec.
fn check_budget(spec: &Spec, d: &mut Diagnostics) {
    if spec.hypercalls.is_empty() {
        d.push(
            Diagnostic::new(0..0, "the spec has no hypercalls")
                .help("add at least one [[hypercall]] table (name, nr, doc)"),
        );
    }
    if let Some(r) = &spec.ring
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
    let consts: Vec<String> = spec
        .consts
        .iter()
        .map(|c| names::upper(&c.name.v))
        .collect();
    for h in &spec.hypercalls {
        let up = names::upper(&h.name.v);
        if consts.contains(&up) || ["ABI_NAME", "ABI_VERSION", "ARG_REGS"].contains(&up.as_str()) {
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
        let up = names::upper(&c.name.v);
        if ["ABI_NAME", "ABI_VERSION", "ARG_REGS"].contains(&up.as_str()) {
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

/// One generated file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GeneratedFile {
    /// Path relative to the output directory.
    pub path: String,
    /// Contents.
    pub contents: String,
}

/// Everything generated from one spec.
#[derive(Clone, Debug)]
pub struct Generated {
    /// The ABI's name.
    pub abi: String,
    /// The header every file starts with.
    pub header: String,
    /// One file per module, `mod.rs`, and `<abi>.md`.
    pub files: Vec<GeneratedFile>,
    /// Every module inline in one file, for `include!`.
    pub combined: String,
}

/// The stamp generated files start with: the spec's file name, ABI and a hash of its text.
pub fn header(spec: &Spec, file: &str, src: &str) -> String {
    let name = Path::new(file)
        .file_name()
        .map_or(file.to_string(), |n| n.to_string_lossy().into_owned());
    // The name is the user's: no character of it may end the comment or string it is in.
    let name = diag::escape_name(&name);
    format!(
        "@generated by pvgen from {name} (ABI `{}` v{}, spec fnv64 {:016x}). Do not edit: change the spec.",
        spec.abi.name.v,
        spec.abi.version,
        fnv64(src.as_bytes())
    )
}

fn fnv64(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf29ce484222325u64, |h, x| {
        (h ^ u64::from(*x)).wrapping_mul(0x100000001b3)
    })
}

/// A failure to render generated code: a generator bug, reported rather than panicking.
#[derive(Debug)]
pub struct RenderError(pub String);

impl fmt::Display for RenderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "internal error: generated code does not parse: {}",
            self.0
        )
    }
}

impl std::error::Error for RenderError {}

fn format_file(tokens: TokenStream) -> Result<String, RenderError> {
    let file: syn::File = syn::parse2(tokens).map_err(|e| RenderError(e.to_string()))?;
    Ok(comments(&prettyplease::unparse(&file)))
}

/// Turns `__pvgen_comment!("text");` markers (which prettyplease may spread over several
/// lines) into wrapped `// text` comments, and separates items with blank lines.
fn comments(src: &str) -> String {
    let lines: Vec<&str> = src.lines().collect();
    let mut out: Vec<String> = Vec::with_capacity(lines.len());
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let t = line.trim_start();
        let indent = &line[..line.len() - t.len()];
        if t.starts_with(emit::COMMENT_MARKER) {
            // Gather the whole statement, up to its `);`.
            let mut stmt = t.to_string();
            while !stmt.trim_end().ends_with(");") && i + 1 < lines.len() {
                i += 1;
                stmt.push(' ');
                stmt.push_str(lines[i].trim());
            }
            i += 1;
            let lit = stmt
                .trim_end()
                .strip_prefix(emit::COMMENT_MARKER)
                .and_then(|r| r.trim_start().strip_prefix('!'))
                .and_then(|r| r.trim_start().strip_prefix('('))
                .and_then(|r| r.strip_suffix(");"))
                .and_then(|r| syn::parse_str::<syn::LitStr>(r.trim()).ok());
            if let Some(l) = lit {
                if needs_blank(&out, indent, "// ", true) {
                    out.push(String::new());
                }
                let mut cur = String::new();
                for w in l.value().split_whitespace() {
                    if !cur.is_empty() && indent.len() + 3 + cur.len() + 1 + w.len() > 92 {
                        out.push(format!("{indent}// {cur}"));
                        cur.clear();
                    }
                    if !cur.is_empty() {
                        cur.push(' ');
                    }
                    cur.push_str(w);
                }
                out.push(format!("{indent}// {cur}"));
            }
            continue;
        }
        if needs_blank(&out, indent, t, false) {
            out.push(String::new());
        }
        out.push(line.to_string());
        i += 1;
    }
    let mut s = out.join("\n");
    s.push('\n');
    s
}

/// Whether a blank line goes before line `t` (indented by `indent`): between consecutive
/// items at the same depth, and after inner docs. A `comment` after a statement stays with
/// the statement it explains.
fn needs_blank(out: &[String], indent: &str, t: &str, comment: bool) -> bool {
    let Some(prev) = out.last() else {
        return false;
    };
    let pt = prev.trim_start();
    let same_indent = prev.len() - pt.len() == indent.len();
    let prev_ends_item = pt == "}"
        || pt == "};"
        || pt.ends_with(" {}")
        || (!comment && pt.ends_with(';') && !pt.starts_with("//"));
    let starts_item = [
        "///", "#[", "pub ", "impl", "const ", "fn ", "unsafe ", "type ", "enum ", "struct ",
        "trait ", "// ",
    ]
    .iter()
    .any(|p| t.starts_with(p));
    let after_inner_doc = pt.starts_with("//!") && !t.starts_with("//!");
    (same_indent && prev_ends_item && starts_item) || after_inner_doc
}

/// The modules as one token stream, `pub mod numbers { ... } ...`, without comment
/// markers: what the proc macro expands to.
pub fn tokens(spec: &Spec) -> TokenStream {
    emit::strip_comments(combined_tokens(spec))
}

fn combined_tokens(spec: &Spec) -> TokenStream {
    let mods = emit::modules(spec).into_iter().map(|m| {
        let id = format_ident!("{}", m.name);
        let d = emit::inner_doc(&m.doc);
        let items = m.items;
        quote! { pub mod #id { #d #items } }
    });
    quote! { #(#mods)* }
}

/// Renders every output of a checked spec.
///
/// # Errors
///
/// Only on a generator bug (generated code that does not parse).
pub fn generate(spec: &Spec, header: &str) -> Result<Generated, RenderError> {
    let mut files = Vec::new();
    let mut mod_lines = Vec::new();
    // The combined file (for `include!`) is the module files wrapped in `pub mod`, so each
    // module is emitted and formatted once. Indenting is safe: the formatted code has no
    // multi-line string literals (docs are `///` lines, strings are escaped).
    let mut combined = format!("// {header}\n\n");
    for m in emit::modules(spec) {
        let d = emit::inner_doc(&m.doc);
        let items = m.items;
        let text = format_file(quote! { #d #items })?;
        combined.push_str(&format!("pub mod {} {{\n", m.name));
        for line in text.lines() {
            if !line.is_empty() {
                combined.push_str("    ");
                combined.push_str(line);
            }
            combined.push('\n');
        }
        combined.push_str("}\n\n");
        files.push(GeneratedFile {
            path: format!("{}.rs", m.name),
            contents: format!("// {header}\n\n{text}"),
        });
        mod_lines.push(format!("pub mod {};", m.name));
    }
    combined.truncate(combined.trim_end().len());
    combined.push('\n');
    files.push(GeneratedFile {
        path: "mod.rs".into(),
        contents: format!(
            "// {header}\n\n//! The `{}` ABI, generated from its spec.\n\n{}\n",
            spec.abi.name.v,
            mod_lines.join("\n")
        ),
    });
    files.push(GeneratedFile {
        path: format!("{}.md", spec.abi.name.v),
        contents: emit::docs::markdown(spec, header) + "\n",
    });
    Ok(Generated {
        abi: spec.abi.name.v.clone(),
        header: header.to_string(),
        files,
        combined,
    })
}

/// Anything that can go wrong turning a spec file into code.
#[derive(Debug)]
pub enum Error {
    /// The spec could not be read or an output not written.
    Io {
        /// The file.
        path: PathBuf,
        /// What happened.
        error: std::io::Error,
    },
    /// The spec has problems.
    Spec(Diagnostics),
    /// A generator bug.
    Render(RenderError),
    /// `OUT_DIR` is not set and no output directory was given.
    NoOutDir,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { path, error } => write!(f, "{}: {error}", path.display()),
            Error::Spec(d) => d.fmt(f),
            Error::Render(e) => e.fmt(f),
            Error::NoOutDir => f.write_str(
                "OUT_DIR is not set: call Config::compile from a build script, or set Config::out_dir",
            ),
        }
    }
}

impl std::error::Error for Error {}

/// Reads `path`, then parses and checks it.
///
/// # Errors
///
/// [`Error::Io`] if the file cannot be read, [`Error::Spec`] with every problem otherwise
/// (text that is not UTF-8 is one, at its first bad byte).
pub fn load_file(path: &Path) -> Result<(Spec, String), Error> {
    let bytes = std::fs::read(path).map_err(|error| Error::Io {
        path: path.to_path_buf(),
        error,
    })?;
    let file = path.display().to_string();
    let src = diag::decode(&file, bytes).map_err(Error::Spec)?;
    let spec = load(&file, &src).map_err(Error::Spec)?;
    Ok((spec, src))
}

/// Writes `contents` to `path` unless it already holds exactly that, so unchanged outputs
/// keep their timestamps and do not trigger rebuilds.
///
/// # Errors
///
/// [`Error::Io`] when the directory or file cannot be written.
pub fn write_if_changed(path: &Path, contents: &str) -> Result<(), Error> {
    if std::fs::read_to_string(path).is_ok_and(|old| old == contents) {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|error| Error::Io {
            path: dir.to_path_buf(),
            error,
        })?;
    }
    std::fs::write(path, contents).map_err(|error| Error::Io {
        path: path.to_path_buf(),
        error,
    })
}

/// Options for generating code from a build script, in the manner of `prost_build::Config`.
#[derive(Clone, Debug, Default)]
pub struct Config {
    out_dir: Option<PathBuf>,
    module_files: bool,
}

impl Config {
    /// Defaults: write into `OUT_DIR`, one combined file.
    pub fn new() -> Self {
        Config::default()
    }

    /// Writes into `dir` instead of `$OUT_DIR`.
    pub fn out_dir(&mut self, dir: impl Into<PathBuf>) -> &mut Self {
        self.out_dir = Some(dir.into());
        self
    }

    /// Also writes each module to `<out>/<abi>/<module>.rs` with a `mod.rs`, and the
    /// Markdown reference to `<out>/<abi>/<abi>.md`.
    pub fn module_files(&mut self, yes: bool) -> &mut Self {
        self.module_files = yes;
        self
    }

    /// Generates code for the spec at `spec_path` into the output directory as
    /// `<abi>.rs` (every module inline, for `include!`), and prints
    /// `cargo:rerun-if-changed` for the spec.
    ///
    /// # Errors
    ///
    /// [`Error::Spec`] lists every problem in the spec with its `file:line:col`;
    /// [`Error::Io`] and [`Error::NoOutDir`] say what could not be read or written.
    pub fn compile(&self, spec_path: impl AsRef<Path>) -> Result<Generated, Error> {
        let spec_path = spec_path.as_ref();
        println!("cargo:rerun-if-changed={}", spec_path.display());
        let out = match &self.out_dir {
            Some(d) => d.clone(),
            None => std::env::var_os("OUT_DIR")
                .map(PathBuf::from)
                .ok_or(Error::NoOutDir)?,
        };
        let (spec, src) = load_file(spec_path)?;
        let header = header(&spec, &spec_path.display().to_string(), &src);
        let g = generate(&spec, &header).map_err(Error::Render)?;
        write_if_changed(&out.join(format!("{}.rs", g.abi)), &g.combined)?;
        if self.module_files {
            for f in &g.files {
                write_if_changed(&out.join(&g.abi).join(&f.path), &f.contents)?;
            }
        }
        Ok(g)
    }
}

/// Shortcut for `Config::new().compile(spec_path)`.
///
/// # Errors
///
/// As [`Config::compile`].
pub fn compile_spec(spec_path: impl AsRef<Path>) -> Result<Generated, Error> {
    Config::new().compile(spec_path)
}
