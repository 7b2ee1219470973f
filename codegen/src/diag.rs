//! Spec diagnostics: every problem found in one pass, each pointing at the offending key.
//!
//! A [`Diagnostics`] collector is threaded through parsing and checking (serde_derive's
//! `Ctxt`, without the panic-on-drop: callers get the list back from [`crate::load`]).
//! Each [`Diagnostic`] carries a byte span into the spec source; [`Diagnostic::render`]
//! prints it the way rustc does:
//!
//! ```text
//! error: unknown key `lazzy` in hypercall `set_pte`
//!   --> spec/lguest.toml:12:1
//!    |
//! 12 | lazzy = true
//!    | ^^^^^
//!    = help: did you mean `lazy`?
//! ```

use std::fmt;
use std::ops::Range;

/// One problem in a spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// What is wrong.
    pub message: String,
    /// Byte range of the offending key or value in the spec source.
    pub span: Range<usize>,
    /// What to do about it.
    pub help: Option<String>,
}

/// Where a span points, in 1-based lines and columns (columns count characters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineCol {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub col: usize,
}

impl LineCol {
    /// The line and column of byte `offset` in `src` (clamped to its end).
    pub fn of(src: &str, offset: usize) -> LineCol {
        let offset = offset.min(src.len());
        let before = &src[..floor_char_boundary(src, offset)];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        LineCol {
            line,
            col: before[line_start..].chars().count() + 1,
        }
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

impl Diagnostic {
    /// A diagnostic at `span` with no help text.
    pub fn new(span: Range<usize>, message: impl Into<String>) -> Self {
        Diagnostic {
            message: message.into(),
            span,
            help: None,
        }
    }

    /// Adds a hint saying what to do.
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Where the diagnostic points in `src`.
    pub fn line_col(&self, src: &str) -> LineCol {
        LineCol::of(src, self.span.start)
    }

    /// Renders the diagnostic: message, `--> file:line:col`, the source line with a caret
    /// under the span, and the help.
    pub fn render(&self, file: &str, src: &str) -> String {
        use fmt::Write;
        let LineCol { line, col } = self.line_col(src);
        let text = src.lines().nth(line - 1).unwrap_or("");
        let gutter = line.to_string().len();
        let pad = " ".repeat(gutter);
        let start = floor_char_boundary(src, self.span.start.min(src.len()));
        let end = floor_char_boundary(src, self.span.end.min(src.len())).max(start);
        // Underline the span, but only its part on the first line.
        let width = src[start..end]
            .split('\n')
            .next()
            .map_or(1, |s| s.chars().count())
            .max(1);
        let mut out = String::new();
        let _ = writeln!(out, "error: {}", self.message);
        let _ = writeln!(out, "{pad}--> {file}:{line}:{col}");
        let _ = writeln!(out, "{pad} |");
        let _ = writeln!(out, "{line} | {text}");
        let _ = writeln!(out, "{pad} | {}{}", " ".repeat(col - 1), "^".repeat(width));
        if let Some(help) = &self.help {
            let _ = writeln!(out, "{pad} = help: {help}");
        }
        out
    }
}

/// The problems found in one spec, in source order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Diagnostics {
    /// Name the spec is shown under (usually its path).
    pub file: String,
    /// The spec's source text.
    pub source: String,
    /// Every problem, sorted by position.
    pub list: Vec<Diagnostic>,
}

impl Diagnostics {
    /// An empty collector for the spec `file` with text `source`.
    pub fn new(file: impl Into<String>, source: impl Into<String>) -> Self {
        Diagnostics {
            file: file.into(),
            source: source.into(),
            list: Vec::new(),
        }
    }

    /// Records a problem.
    pub fn push(&mut self, d: Diagnostic) {
        self.list.push(d);
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Number of problems.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub(crate) fn sort(&mut self) {
        self.list.sort_by_key(|d| (d.span.start, d.span.end));
        self.list.dedup();
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.list {
            writeln!(f, "{}", d.render(&self.file, &self.source))?;
        }
        let n = self.list.len();
        write!(
            f,
            "error: {} has {n} problem{}",
            self.file,
            if n == 1 { "" } else { "s" }
        )
    }
}

impl std::error::Error for Diagnostics {}

/// The closest of `candidates` to `word`, if it is close enough to be a likely typo.
pub(crate) fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_file_line_col_and_caret() {
        let src = "[abi]\nname = \"x\"\nlazzy = true\n";
        let start = src.find("lazzy").unwrap();
        let d =
            Diagnostic::new(start..start + 5, "unknown key `lazzy`").help("did you mean `lazy`?");
        let text = d.render("a.toml", src);
        assert_eq!(
            text,
            "error: unknown key `lazzy`\n --> a.toml:3:1\n  |\n3 | lazzy = true\n  | ^^^^^\n  = help: did you mean `lazy`?\n"
        );
    }

    #[test]
    fn suggests_close_words_only() {
        assert_eq!(
            did_you_mean("lazzy", &["lazy", "name", "args"]),
            Some("lazy")
        );
        assert_eq!(did_you_mean("frobnicate", &["lazy", "name"]), None);
    }
}
