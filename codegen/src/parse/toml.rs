//! Room: the generic spanned-TOML reader. [`Obj`] reads one table of toml's spanned
//! document tree ([`DeTable`]): typed getters that report a wrong type, a missing key or an
//! unknown key (with a "did you mean") at its span, and the checks every string of a spec
//! goes through (names, and text that ends up in rustdoc or a string literal). Nothing in
//! here knows a section of the spec format.

use std::ops::Range;

use toml::Spanned;
use toml::de::{DeArray, DeTable, DeValue};

use crate::diag::{Diagnostic, Diagnostics, did_you_mean};
use crate::names::name_problem;
use crate::spec::*;

pub(super) type Val<'i> = Spanned<DeValue<'i>>;

/// A TOML table being read: its entries, its span, and what to call it in messages.
pub(super) struct Obj<'a, 'i> {
    pub(super) t: &'a DeTable<'i>,
    pub(super) span: Range<usize>,
    pub(super) what: String,
}

pub(super) fn kind_name(v: &DeValue<'_>) -> &'static str {
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
    pub(super) fn get(&self, key: &str) -> Option<&'a Val<'i>> {
        self.t.get(key)
    }

    pub(super) fn key_span(&self, key: &str) -> Range<usize> {
        self.t
            .get_key_value(key)
            .map_or(self.span.clone(), |(k, _)| k.span())
    }

    /// Reports every key not in `allowed`, suggesting the closest allowed one.
    pub(super) fn check_keys(&self, d: &mut Diagnostics, allowed: &[&str]) {
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

    pub(super) fn required(
        &self,
        d: &mut Diagnostics,
        key: &str,
        example: &str,
    ) -> Option<&'a Val<'i>> {
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

    pub(super) fn wrong_type(&self, d: &mut Diagnostics, key: &str, v: &Val<'i>, want: &str) {
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

    pub(super) fn str_at(&self, d: &mut Diagnostics, key: &str, v: &Val<'i>) -> Option<Sp<String>> {
        match v.get_ref() {
            DeValue::String(s) => Some(Sp::new(s.to_string(), v.span())),
            _ => {
                self.wrong_type(d, key, v, "a string");
                None
            }
        }
    }

    pub(super) fn opt_str(&self, d: &mut Diagnostics, key: &str) -> Option<Sp<String>> {
        self.get(key).and_then(|v| self.str_at(d, key, v))
    }

    pub(super) fn req_str(
        &self,
        d: &mut Diagnostics,
        key: &str,
        example: &str,
    ) -> Option<Sp<String>> {
        self.required(d, key, example)
            .and_then(|v| self.str_at(d, key, v))
    }

    pub(super) fn int_at(&self, d: &mut Diagnostics, key: &str, v: &Val<'i>) -> Option<Sp<u64>> {
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

    pub(super) fn opt_int(&self, d: &mut Diagnostics, key: &str) -> Option<Sp<u64>> {
        self.get(key).and_then(|v| self.int_at(d, key, v))
    }

    pub(super) fn req_int(&self, d: &mut Diagnostics, key: &str, example: &str) -> Option<Sp<u64>> {
        self.required(d, key, example)
            .and_then(|v| self.int_at(d, key, v))
    }

    pub(super) fn opt_bool(&self, d: &mut Diagnostics, key: &str) -> Option<bool> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.wrong_type(d, key, v, "true or false");
                None
            }
        }
    }

    pub(super) fn opt_array(&self, d: &mut Diagnostics, key: &str) -> Option<&'a DeArray<'i>> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::Array(a) => Some(a),
            _ => {
                self.wrong_type(d, key, v, "an array");
                None
            }
        }
    }

    pub(super) fn opt_table(
        &self,
        d: &mut Diagnostics,
        key: &str,
        what: String,
    ) -> Option<Obj<'a, 'i>> {
        let v = self.get(key)?;
        as_obj(d, v, what, key)
    }
}

pub(super) fn as_obj<'a, 'i>(
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
pub(super) fn tables_in<'a, 'i>(
    d: &mut Diagnostics,
    v: &'a Val<'i>,
    key: &str,
) -> Vec<&'a Val<'i>> {
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

pub(super) fn check_name(d: &mut Diagnostics, name: &Sp<String>, what: &str) -> bool {
    match name_problem(&name.v) {
        Some((problem, hint)) => {
            d.push(
                Diagnostic::new(name.span.clone(), format!("bad {what} name: {problem}"))
                    .help(hint),
            );
            false
        }
        None => true,
    }
}

/// Why `text` cannot go into rustdoc or a string literal as it is: a control character
/// other than a newline or a tab (a lone carriage return, say), or a bidirectional
/// override, which rustc refuses in comments and literals because it makes code read
/// differently from how it compiles.
pub(super) fn text_problem(text: &str) -> Option<String> {
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let bad = match c {
            '\n' | '\t' => None,
            '\r' if chars.peek() == Some(&'\n') => None,
            '\r' => Some("a carriage return that does not end a line".to_string()),
            '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' => {
                Some(format!("the bidirectional control U+{:04X}", u32::from(c)))
            }
            c if c.is_control() => Some(format!("the control character U+{:04X}", u32::from(c))),
            _ => None,
        };
        if bad.is_some() {
            return bad;
        }
    }
    None
}

/// `text` as docs are written into generated code: `\r\n` as `\n`, tabs expanded to
/// 4-column stops (clippy's `tabs_in_doc_comments`), and the indentation that a multi-line
/// TOML string gives every line but the first removed (Python's `inspect.cleandoc`), so
/// an indented paragraph does not turn into a Markdown code block.
pub(super) fn clean_text(text: &str) -> String {
    let text = text.replace("\r\n", "\n");
    let lines: Vec<String> = text
        .split('\n')
        .map(|l| {
            let mut out = String::new();
            for c in l.chars() {
                if c == '\t' {
                    let n = 4 - out.chars().count() % 4;
                    out.extend(std::iter::repeat_n(' ', n));
                } else {
                    out.push(c);
                }
            }
            out.trim_end().to_string()
        })
        .collect();
    let indent = lines
        .iter()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start().len())
        .min()
        .unwrap_or(0);
    let mut out: Vec<&str> = Vec::with_capacity(lines.len());
    for (i, l) in lines.iter().enumerate() {
        if i == 0 {
            out.push(l.trim_start());
        } else if l.trim().is_empty() {
            out.push("");
        } else {
            out.push(&l[indent..]);
        }
    }
    let mut text = out.join("\n").trim_matches('\n').to_string();
    // What the text leaves open would swallow what the generator appends after it (the
    // `# Safety` heading, the call's number): close a code fence, then an HTML comment.
    if let Some(f) = Fence::left_open(&text) {
        text.push('\n');
        text.push_str(&f.closer());
    }
    // Then an HTML comment, on a line of its own: inside the comment the fence's closer is
    // just text, and after a real fence the closer has closed it first.
    if let Some(open) = text.rfind("<!--")
        && !text[open..].contains("-->")
    {
        text.push_str("\n-->");
    }
    text
}

/// A CommonMark code fence a line opened: its indent, its character (`` ` `` or `~`) and
/// how many of them. Only a line of at least as many of the same character, at most three
/// columns in, closes it: a shorter run, or the other character, is a line of code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Fence {
    indent: usize,
    mark: char,
    len: usize,
}

impl Fence {
    /// The fence `line` opens: at most three columns in, three or more backticks or
    /// tildes, and a backtick fence's info string holds no backtick.
    pub(crate) fn opened_by(line: &str) -> Option<Fence> {
        let indent = line.len() - line.trim_start().len();
        if indent >= 4 {
            return None;
        }
        let t = line.trim();
        let mark = t.chars().next().filter(|c| matches!(c, '`' | '~'))?;
        let len = t.chars().take_while(|c| *c == mark).count();
        let ok = len >= 3 && (mark == '~' || !t[len..].contains('`'));
        ok.then_some(Fence { indent, mark, len })
    }

    /// Whether `line` closes this fence: at most three columns in, nothing but this
    /// fence's character, at least as many of them as opened it.
    pub(crate) fn closed_by(&self, line: &str) -> bool {
        let t = line.trim();
        line.len() - line.trim_start().len() < 4
            && t.len() >= self.len
            && t.chars().all(|c| c == self.mark)
    }

    /// The line that closes this fence, at the indent it opened at (so a fence in a list
    /// item is closed in that item, not after it).
    pub(crate) fn closer(&self) -> String {
        let mut s = " ".repeat(self.indent);
        s.extend(std::iter::repeat_n(self.mark, self.len));
        s
    }

    /// The fence `text` opens and never closes, if any.
    pub(crate) fn left_open(text: &str) -> Option<Fence> {
        let mut open: Option<Fence> = None;
        for l in text.lines() {
            match &open {
                None => open = Fence::opened_by(l),
                Some(f) if f.closed_by(l) => open = None,
                Some(_) => {}
            }
        }
        open
    }
}

impl Obj<'_, '_> {
    /// A text value (a doc, a safety note, an instruction): refused when empty or when it
    /// holds what rustdoc or a string literal cannot carry, cleaned otherwise.
    pub(super) fn text_at(&self, d: &mut Diagnostics, key: &str, v: &Val<'_>) -> Option<String> {
        let s = self.str_at(d, key, v)?;
        if s.v.trim().is_empty() {
            d.push(
                Diagnostic::new(s.span, format!("`{key}` in {} is empty", self.what))
                    .help(format!("say what it is, or leave out `{key}`: generated items get their docs from it, and an empty doc is no doc")),
            );
            return None;
        }
        if let Some(p) = text_problem(&s.v) {
            d.push(
                Diagnostic::new(s.span, format!("`{key}` in {} contains {p}", self.what))
                    .help("remove it: the text goes into rustdoc and string literals of the generated code, where it would break or mislead"),
            );
            return None;
        }
        Some(clean_text(&s.v))
    }

    /// An optional text value (see [`Obj::text_at`]).
    pub(super) fn opt_text(&self, d: &mut Diagnostics, key: &str) -> Option<String> {
        self.get(key).and_then(|v| self.text_at(d, key, v))
    }

    /// A required text value (see [`Obj::text_at`]).
    pub(super) fn req_text(&self, d: &mut Diagnostics, key: &str, example: &str) -> Option<String> {
        self.required(d, key, example)
            .and_then(|v| self.text_at(d, key, v))
    }
}

/// How an integer literal was written, so generated code can show it the same way.
pub(super) fn int_form(v: &Val<'_>) -> NumForm {
    match v.get_ref() {
        DeValue::Integer(i) => match i.radix() {
            16 => NumForm::Hex,
            8 => NumForm::Oct,
            2 => NumForm::Bin,
            _ => NumForm::Dec,
        },
        _ => NumForm::Dec,
    }
}

#[cfg(test)]
mod tests {
    use super::{Fence, clean_text};

    #[test]
    fn a_fence_closes_only_on_as_many_of_its_own_character() {
        let six = Fence::opened_by("``````").unwrap();
        assert!(!six.closed_by("```"), "a shorter run is a line of code");
        assert!(
            !six.closed_by("~~~~~~"),
            "the other character is a line of code"
        );
        assert!(!six.closed_by("``````x"), "a closer carries nothing else");
        assert!(!six.closed_by("    ``````"), "four columns in, it is code");
        assert!(six.closed_by("``````"));
        assert!(six.closed_by("  ````````"), "a longer run closes");
        let tilde = Fence::opened_by("~~~~ text `x`").unwrap();
        assert!(!tilde.closed_by("```````"));
        assert!(!tilde.closed_by("~~~"));
        assert!(tilde.closed_by("~~~~"));
        assert_eq!(
            Fence::opened_by("``` a`b"),
            None,
            "a backtick in the info string"
        );
        assert_eq!(Fence::opened_by("    ```"), None, "indented code");
        assert_eq!(Fence::opened_by("``"), None);
    }

    #[test]
    fn clean_text_closes_what_a_doc_leaves_open_with_a_closer_as_long_as_its_opener() {
        assert_eq!(clean_text("``````\ncode\n```"), "``````\ncode\n```\n``````");
        assert_eq!(
            clean_text("~~~~\ncode\n```\n~~~"),
            "~~~~\ncode\n```\n~~~\n~~~~"
        );
        assert_eq!(clean_text("````\ncode\n~~~~~"), "````\ncode\n~~~~~\n````");
        // Closed already: a longer closer closes, nothing is added.
        assert_eq!(
            clean_text("```\ncode\n`````\nprose"),
            "```\ncode\n`````\nprose"
        );
        // In a list item, closed at the opener's indent so the item holds the closer.
        assert_eq!(
            clean_text("Reads:\n- item\n\n  ````\n  code\n  ```"),
            "Reads:\n- item\n\n  ````\n  code\n  ```\n  ````"
        );
    }
}
