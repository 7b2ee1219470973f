//! Room: the emitters, one Rust module (or Markdown file) per output, from a checked
//! [`Spec`], and the helpers they share (docs, literals, names).
//!
//! Every emitter builds a token stream with `quote!`; `crate::generate` formats each with
//! prettyplease behind a header naming the spec. Hygiene, by construction: generated code
//! refers to its sibling modules as `super::name::Item` and to the standard library as
//! `::core::...`; the locals it binds (`nr`, `args`, `call`, `argN`, `host`, and around
//! results `__regs`, `__rN` and `__out`) are never spec names in the same scope (spec names are fields, parameters and methods there, written
//! as raw identifiers where they are keywords); and the items it defines beside spec-named
//! ones are checked against the spec in `check.rs`, with an error at the clashing key.

pub(crate) mod docs;
mod docs_memory;
mod guest;
mod guest_mem;
mod host;
mod lazy;
mod numbers;
mod patch;
mod pv_ops;
mod results;
mod shared;
mod structs;
mod types;

use proc_macro2::{Literal, TokenStream};
use quote::{format_ident, quote};

use crate::names::{camel, upper};
use crate::spec::{ArgType, Prim, Spec};

/// One generated module.
pub(crate) struct Module {
    pub name: &'static str,
    pub doc: String,
    pub items: TokenStream,
}

/// Every module the spec calls for, in a fixed order.
pub(crate) fn modules(spec: &Spec) -> Vec<Module> {
    let mut out = vec![numbers::emit(spec), types::emit(spec)];
    if !spec.structs.is_empty() {
        out.push(structs::emit(spec));
    }
    out.push(guest::emit(spec));
    if spec.ring.is_some() && spec.shared.is_some() {
        out.push(lazy::emit(spec));
    }
    if spec.shared.is_some() {
        out.push(shared::emit(spec));
    }
    if !spec.pv_tables.is_empty() {
        out.push(pv_ops::emit(spec));
    }
    if !spec.templates.is_empty() {
        out.push(patch::emit(spec));
    }
    out.push(host::emit(spec));
    out
}

/// `text` as doc lines: paragraphs wrapped at 88 columns, list items and block quotes
/// continued so rustdoc and clippy (`doc_lazy_continuation`) read them as one item, tables,
/// headings and code (fenced or indented) left alone. Every line starts with a space, so a
/// doc line can never turn into `////` or `//!`.
pub(crate) fn doc_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    // The code fence the text is inside, if any, and what its opener rendered as.
    let mut fenced: Option<crate::parse::Fence> = None;
    // The continuation of the list item or quote the previous line belongs to: a plain
    // line right after one is part of it (Markdown's lazy continuation), so it gets the
    // item's indent or the quote's `>` (clippy's `doc_lazy_continuation`).
    let mut item: Option<String> = None;
    let mut after_blank: Option<String> = None;
    // Inside an indented code block, which is written out as a ```text fence.
    let mut icode = false;
    for line in text.trim().lines() {
        let line = line.trim_end();
        if line.is_empty() {
            out.push(String::new());
            after_blank = item.take().or(after_blank);
            continue;
        }
        // After a blank line, a line indented at least as deep as a list item's text is still
        // that item (a second paragraph of it); anything else ends it.
        if let Some(c) = after_blank.take()
            && c.trim().is_empty()
            && fenced.is_none()
            && line.len() - line.trim_start().len() >= c.len()
        {
            item = Some(c);
        }
        // Spec prose is never a doctest: an indented code block (after a blank line, outside
        // any list item) becomes a ```text fence.
        let deep = line.len() - line.trim_start().len() >= 4;
        if icode {
            if deep {
                out.push(format!(
                    " {}",
                    line.strip_prefix("    ").unwrap_or(line.trim_start())
                ));
                continue;
            }
            out.push(" ```".to_string());
            icode = false;
        }
        if fenced.is_none() && deep && item.is_none() && out.last().is_none_or(|l| l.is_empty()) {
            out.push(" ```text".to_string());
            out.push(format!(
                " {}",
                line.strip_prefix("    ").unwrap_or(line.trim_start())
            ));
            icode = true;
            continue;
        }
        let (first, cont) = continuation(line);
        let owned;
        // Four columns in, after a quote's line, a line is that quote's text whatever it
        // starts with (CommonMark: it cannot open a block): continued with the quote's `>`,
        // and a leading `>`, `#`, `-`, ... escaped so it stays text.
        let quote_text = fenced.is_none()
            && deep
            && item.as_deref().is_some_and(|c| c.contains('>'))
            && !first.trim().is_empty();
        let line = if quote_text {
            let t = line.trim_start();
            let word = t.split(' ').next().unwrap_or_default();
            let t = if !starts_block(word) {
                t.to_string()
            } else if let Some(c) = t.chars().next().filter(char::is_ascii_punctuation) {
                format!("\\{c}{}", &t[c.len_utf8()..])
            } else {
                // `1.` / `1)`: the digits' mark escaped.
                let d = t.bytes().take_while(u8::is_ascii_digit).count();
                format!("{}\\{}", &t[..d], &t[d..])
            };
            owned = format!("{}{t}", item.as_deref().unwrap_or_default());
            owned.as_str()
        } else if fenced.is_none() && first.trim().is_empty() && item.is_some() {
            let t = line.trim_start();
            if crate::parse::Fence::opened_by(t).is_some() {
                // A fence cannot lazily continue an item or a quote: a blank line ends the
                // item first.
                if out.last().is_some_and(|l| !l.trim().is_empty()) {
                    out.push(String::new());
                }
                item = None;
                line
            } else {
                // Markdown's lazy continuation made explicit, whatever the line starts with
                // (a table row, `#`, an indent): the item's indent or the quote's `>`
                // (clippy's `doc_lazy_continuation`), never deeper than the item's text
                // (`doc_overindented_list_items`).
                owned = format!("{}{t}", item.as_deref().unwrap_or_default());
                owned.as_str()
            }
        } else {
            if !first.trim().is_empty() {
                item = Some(cont.clone());
            }
            line
        };
        // A fence opens on ``` or ~~~ (with an info string) and closes only on a line of
        // nothing but its own character, at least as many as opened it (CommonMark).
        let opens = match &fenced {
            Some(_) => None,
            None => crate::parse::Fence::opened_by(line),
        };
        let fence = opens.is_some() || fenced.as_ref().is_some_and(|f| f.closed_by(line));
        // A fence rustdoc would run as a doctest (no info string, or only rustdoc's own
        // words) is relabelled `text`: spec prose is never a doctest.
        let relabelled;
        // So is one that opens right after a list item's or a quote's marker (`- ````, `> ```):
        // CommonMark opens it inside the item, which closes it when the item ends.
        let (marker, _) = continuation(line);
        let inner = &line[marker.len()..];
        let opens_inner = fenced.is_none()
            && opens.is_none()
            && !marker.trim().is_empty()
            && crate::parse::Fence::opened_by(inner).is_some();
        let line = if (opens.is_some() || opens_inner) && runs_as_doctest(inner.trim()) {
            let t = inner.trim();
            let marks: String = t.chars().take_while(|c| *c == '`' || *c == '~').collect();
            relabelled = format!(
                "{marker}{}{marks}text",
                &inner[..inner.len() - inner.trim_start().len()]
            );
            relabelled.as_str()
        } else {
            line
        };
        if fence {
            fenced = opens;
        }
        let keep = fenced.is_some()
            || fence
            || line.starts_with('|')
            || line.starts_with('#')
            || line.starts_with("    ");
        if keep || line.chars().count() <= 88 {
            out.push(format!(" {line}"));
            continue;
        }
        let (first, cont) = continuation(line);
        if !first.trim().is_empty() {
            item = Some(cont.clone());
        }
        let mut cur = String::new();
        let mut prefix = first;
        for w in line[first.len()..].split(' ').filter(|w| !w.is_empty()) {
            // A word that would start a block at the head of a line (`>`, `#`, `-`, `1.`, a
            // fence, ...) stays on the line before, however long that makes it.
            if !cur.is_empty() && prefix.len() + cur.len() + 1 + w.len() > 88 && !starts_block(w) {
                out.push(format!(" {prefix}{cur}"));
                cur.clear();
                prefix = cont.as_str();
            }
            if !cur.is_empty() {
                cur.push(' ');
            }
            cur.push_str(w);
        }
        if !cur.is_empty() {
            out.push(format!(" {prefix}{cur}"));
        }
    }
    if icode {
        out.push(" ```".to_string());
    }
    // A fence the text leaves open is closed here, so whatever follows these lines is not
    // swallowed into it.
    if let Some(f) = fenced {
        out.push(format!(" {}", f.closer()));
    }
    out.into_iter()
        .map(|l| {
            if l.trim().is_empty() {
                String::new()
            } else {
                l
            }
        })
        .collect()
}

/// Whether `word`, at the head of a doc line, would start a Markdown block of its own (a
/// quote, heading, list item, table row, fence, HTML block or setext underline) rather than
/// continue the paragraph it was wrapped from.
fn starts_block(word: &str) -> bool {
    let digits = word.trim_start_matches(|c: char| c.is_ascii_digit());
    word.starts_with(['>', '#', '|', '<'])
        || word.starts_with("```")
        || word.starts_with("~~~")
        || matches!(word, "-" | "+" | "*")
        || word
            .chars()
            .all(|c| c == '-' || c == '_' || c == '*' || c == '=')
        || (digits.len() < word.len() && (digits == "." || digits == ")"))
}

/// Whether rustdoc runs the code block this fence line opens: an empty info string, or one
/// made only of rustdoc's own words (`rust`, `ignore`, `no_run`, `edition2021`, ...).
fn runs_as_doctest(fence: &str) -> bool {
    let info = fence.trim_start_matches(['`', '~']).trim();
    info.split([',', ' ', '\t'])
        .filter(|w| !w.is_empty())
        .all(|w| {
            matches!(
                w,
                "rust"
                    | "ignore"
                    | "should_panic"
                    | "no_run"
                    | "compile_fail"
                    | "test_harness"
                    | "standalone_crate"
            ) || w.starts_with("edition")
                || w.starts_with("ignore-")
        })
}

/// The marker a long line starts with (indent, `> ` quotes, a `-`/`*`/`+` bullet or a
/// `1.`/`1)` number) and what its continuation lines start with.
fn continuation(line: &str) -> (&str, String) {
    let indent = line.len() - line.trim_start().len();
    let mut end = indent;
    let mut cont = " ".repeat(indent);
    let b = line.as_bytes();
    // Block quotes: continued with the same `>`s.
    while b.get(end) == Some(&b'>') {
        end += 1;
        while b.get(end) == Some(&b' ') {
            end += 1;
        }
        cont = line[..end].to_string();
    }
    let rest = &line[end..];
    let bullet = ["- ", "* ", "+ "].iter().any(|p| rest.starts_with(p));
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let numbered = digits > 0
        && digits < 10
        && matches!(rest.as_bytes().get(digits), Some(b'.' | b')'))
        && rest.as_bytes().get(digits + 1) == Some(&b' ');
    let marker = if bullet {
        2
    } else if numbered {
        digits + 2
    } else {
        0
    };
    let first = &line[..end + marker];
    (first, format!("{cont}{}", " ".repeat(marker)))
}

/// `doc` with `tail` (a generated sentence such as ` (number 3).`) run on at its end, or
/// as a paragraph of its own when `doc` ends on a code fence's closing line, which text
/// after it would turn into a line of code.
pub(crate) fn run_on(doc: &str, tail: &str) -> String {
    let last = doc.lines().last().unwrap_or_default().trim();
    if crate::parse::Fence::opened_by(last).is_some() && last.chars().all(|c| c == '`' || c == '~')
    {
        format!("{doc}\n\n{}", tail.trim_start())
    } else {
        format!("{doc}{tail}")
    }
}

/// `#[doc = "..."]` attributes for `text`.
pub(crate) fn doc(text: &str) -> TokenStream {
    let lines = doc_lines(text);
    quote! { #( #[doc = #lines] )* }
}

/// `#![doc = "..."]` attributes, for a module's inner docs.
pub(crate) fn inner_doc(text: &str) -> TokenStream {
    let lines = doc_lines(text);
    quote! { #( #![doc = #lines] )* }
}

/// A `// text` comment line in the formatted output (prettyplease drops real comments,
/// so a marker statement stands in and `crate::generate` turns it into a comment; the
/// proc-macro path strips it with [`strip_comments`]).
pub(crate) fn comment(text: &str) -> TokenStream {
    quote! { __pvgen_comment!(#text); }
}

/// Removes [`comment`] markers from a token stream.
pub(crate) fn strip_comments(ts: TokenStream) -> TokenStream {
    use proc_macro2::{Group, TokenTree};
    let toks: Vec<TokenTree> = ts.into_iter().collect();
    let mut out = Vec::with_capacity(toks.len());
    let mut i = 0;
    while i < toks.len() {
        if let TokenTree::Ident(id) = &toks[i]
            && id == COMMENT_MARKER
            && i + 3 < toks.len()
        {
            // `__pvgen_comment ! ( "..." ) ;`
            i += 4;
            continue;
        }
        match &toks[i] {
            TokenTree::Group(g) => {
                let mut ng = Group::new(g.delimiter(), strip_comments(g.stream()));
                ng.set_span(g.span());
                out.push(TokenTree::Group(ng));
            }
            t => out.push(t.clone()),
        }
        i += 1;
    }
    out.into_iter().collect()
}

pub(crate) const COMMENT_MARKER: &str = "__pvgen_comment";

/// Lays out every `asm!(...)` in formatted code with one operand per line (prettyplease
/// fills macro arguments like prose and wraps mid-operand): a reviewer reads a transport's
/// registers as a list.
pub(crate) fn asm_operands_per_line(src: &str) -> String {
    let lines: Vec<&str> = src.lines().collect();
    let mut out: Vec<String> = Vec::with_capacity(lines.len());
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        out.push(line.to_string());
        i += 1;
        if !line.trim_end().ends_with("asm!(") {
            continue;
        }
        let indent = &line[..line.len() - line.trim_start().len()];
        let close = format!("{indent});");
        let mut body = String::new();
        while i < lines.len() && lines[i] != close {
            body.push(' ');
            body.push_str(lines[i].trim());
            i += 1;
        }
        for op in split_operands(&body) {
            let op = op
                .strip_prefix("in (")
                .map_or(op.clone(), |r| format!("in({r}"));
            out.push(format!("{indent}    {op},"));
        }
    }
    let mut s = out.join("\n");
    if src.ends_with('\n') {
        s.push('\n');
    }
    s
}

/// The comma-separated operands of an `asm!`, commas inside strings and brackets kept.
fn split_operands(body: &str) -> Vec<String> {
    let mut ops = Vec::new();
    let mut cur = String::new();
    let (mut depth, mut in_str, mut escaped) = (0i32, false, false);
    for c in body.chars() {
        if in_str {
            cur.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_str = true,
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            ',' if depth == 0 => {
                if !cur.trim().is_empty() {
                    ops.push(cur.trim().to_string());
                }
                cur.clear();
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    if !cur.trim().is_empty() {
        ops.push(cur.trim().to_string());
    }
    ops
}

/// `#[allow(clippy::too_many_arguments)]` for a method taking `n` parameters besides
/// `self` where clippy's limit (7, counting `self`) would object: the ABI fixes them.
pub(crate) fn many_args(n: usize) -> TokenStream {
    if n + 1 > 7 {
        quote! { #[allow(clippy::too_many_arguments)] }
    } else {
        TokenStream::new()
    }
}

/// For a method or fn the spec named: a targeted `#[allow]` of the clippy lints that are
/// about the name alone (`new` that returns no `Self`, `from_*`/`into_*`/`to_*`/`as_*`/`is_*`
/// with the "wrong" `self`), with a comment saying the name is the ABI's. Empty for other
/// names.
pub(crate) fn abi_name_allows(name: &str) -> TokenStream {
    let mut lints = Vec::new();
    if name == "new" {
        lints.push(quote! { clippy::new_ret_no_self });
        lints.push(quote! { clippy::wrong_self_convention });
    }
    if ["from_", "into_", "to_", "as_", "is_"]
        .iter()
        .any(|p| name.starts_with(p))
    {
        lints.push(quote! { clippy::wrong_self_convention });
    }
    if lints.is_empty() {
        return TokenStream::new();
    }
    let c = comment(&format!(
        "`{name}` is the ABI's name for it, whatever Rust's conventions say of the name."
    ));
    quote! { #c #[allow(#(#lints),*)] }
}

/// On a trait with a method the spec named `len` or `is_empty`: allow clippy's
/// `len_without_is_empty`, which is about the names alone.
pub(crate) fn len_allow<'a>(mut names: impl Iterator<Item = &'a str>) -> TokenStream {
    if names.any(|n| n == "len" || n == "is_empty") {
        let c = comment(
            "A method is called `len` (or `is_empty`) because the ABI says so: it is no collection.",
        );
        quote! { #c #[allow(clippy::len_without_is_empty)] }
    } else {
        TokenStream::new()
    }
}

pub(crate) fn u64_lit(v: u64) -> Literal {
    Literal::u64_suffixed(v)
}

pub(crate) fn usize_lit(v: u64) -> Literal {
    Literal::usize_unsuffixed(v as usize)
}

/// Hex for values that read better in hex (addresses, masks), decimal otherwise.
pub(crate) fn int_lit(v: u64, ty: Prim) -> TokenStream {
    if ty == Prim::Bool {
        return if v == 0 {
            quote! { false }
        } else {
            quote! { true }
        };
    }
    let s = if v >= 0x100 && v.is_power_of_two() || v > 0xffff {
        format!("{v:#x}")
    } else {
        v.to_string()
    };
    let s = format!("{s}_{}", ty.name());
    s.parse().expect("an integer literal is a valid token")
}

/// The Rust type of a hypercall argument, as seen from a sibling module.
pub(crate) fn arg_type(spec: &Spec, ty: &ArgType) -> TokenStream {
    match ty {
        ArgType::Prim(p) => prim(*p),
        ArgType::Named(i) => {
            let id = crate::names::camel_ident(&spec.types[*i].name.v);
            quote! { super::types::#id }
        }
    }
}

pub(crate) fn prim(p: Prim) -> TokenStream {
    let id = format_ident!("{}", p.name());
    quote! { #id }
}

/// An expression turning argument `value` (of type `ty`) into the u64 that travels in a
/// register.
pub(crate) fn to_u64(spec: &Spec, ty: &ArgType, value: TokenStream) -> TokenStream {
    match ty {
        ArgType::Prim(Prim::U64) => value,
        ArgType::Prim(_) => quote! { u64::from(#value) },
        ArgType::Named(i) => match &spec.types[*i].kind {
            crate::spec::TypeKind::Alias(Prim::U64) => value,
            crate::spec::TypeKind::Alias(_) => quote! { u64::from(#value) },
            crate::spec::TypeKind::Enum {
                repr: Prim::U64, ..
            } => quote! { #value.raw() },
            crate::spec::TypeKind::Enum { .. } => quote! { u64::from(#value.raw()) },
        },
    }
}

/// The ident of the const holding a hypercall's number.
pub(crate) fn nr_const(name: &str) -> proc_macro2::Ident {
    format_ident!("{}", upper(name))
}

/// The `Hypercall` variant of a hypercall.
pub(crate) fn variant(name: &str) -> proc_macro2::Ident {
    crate::names::camel_ident(name)
}

/// `Lguest` for ABI `lguest`: the prefix of ABI-wide trait names.
pub(crate) fn abi_camel(spec: &Spec) -> String {
    camel(&spec.abi.name.v)
}

/// One Markdown-ish line describing an argument's constraints, or "".
pub(crate) fn constraint_text(spec: &Spec, a: &crate::spec::Arg) -> String {
    let mut parts = Vec::new();
    if let Some((lo, hi)) = a.range {
        parts.push(format!("{lo} ≤ value ≤ {hi}"));
    }
    if let Some(al) = a.align {
        parts.push(format!("multiple of {al}"));
    }
    if let ArgType::Named(i) = &a.ty
        && let crate::spec::TypeKind::Enum { variants, .. } = &spec.types[*i].kind
    {
        let vs: Vec<String> = variants
            .iter()
            .map(|v| format!("{}={}", v.name.v, v.value))
            .collect();
        parts.push(format!("one of {}", vs.join(", ")));
    }
    match spec.arg_prim(&a.ty) {
        Prim::U64 => {}
        Prim::Bool => parts.push("0 or 1".into()),
        p => {
            if a.range.is_none()
                && !matches!(a.ty, ArgType::Named(i) if matches!(spec.types[i].kind, crate::spec::TypeKind::Enum{..}))
            {
                parts.push(format!("fits in {}", p.name()));
            }
        }
    }
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::{doc_lines, run_on};

    fn render(text: &str) -> String {
        doc_lines(text).join("\n")
    }

    #[test]
    fn a_short_closer_leaves_a_long_fence_open_and_the_renderer_closes_it() {
        // The specgen case: six backticks, then three, then the generated `# Safety`.
        let out = render("Reads:\n``````\nvalue\n```\n\n# Safety\n\nNone.");
        assert_eq!(
            out,
            " Reads:\n ``````text\n value\n ```\n\n # Safety\n\n None.\n ``````"
        );
        // Once closed by a run as long, what follows is prose again (and is wrapped).
        let long = "word ".repeat(30);
        let out = render(&format!("``````\nvalue\n```\n````````\n{long}"));
        assert!(out.lines().all(|l| l.chars().count() <= 89), "{out}");
        // Tildes do not close backticks, nor backticks tildes.
        assert!(render("````\nv\n~~~~~").ends_with("\n ````"));
        assert!(render("~~~\nv\n```").ends_with("\n ~~~"));
        // A fence in a list item is closed in the item.
        assert!(render("Reads:\n- item\n\n  ````\n  v\n  ```").ends_with("\n   ```\n   ````"));
        // A fence opened on a list item's or a quote's marker is not a doctest either.
        assert_eq!(render("- ```\nv"), " - ```text\n   v");
        assert_eq!(render("> ```rust\n> v"), " > ```text\n > v");
        // Nothing is added to a doc whose fences are closed.
        assert_eq!(
            render("```\nv\n`````\nafter"),
            " ```text\n v\n `````\n after"
        );
    }

    #[test]
    fn a_sentence_after_a_closing_fence_starts_a_paragraph() {
        assert_eq!(run_on("Ping.", " (number 1)."), "Ping. (number 1).");
        assert_eq!(
            run_on("Ping:\n```\nx\n```", " (number 1)."),
            "Ping:\n```\nx\n```\n\n(number 1)."
        );
    }
}
