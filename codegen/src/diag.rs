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
    /// Further facts, each shown as `= note: ...` before the help.
    pub notes: Vec<String>,
}

/// Where a span points, in 1-based lines and columns (columns count characters; a
/// byte-order mark at the start of the file is not one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineCol {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub col: usize,
}

impl LineCol {
    /// The line and column of byte `offset` in `src` (clamped to its end). Scans `src`
    /// once; to place many offsets, build a [`LineIndex`].
    pub fn of(src: &str, offset: usize) -> LineCol {
        LineIndex::new(src).line_col(offset)
    }
}

const BOM: char = '\u{feff}';

/// The byte offset each line of a source starts at, computed once, so placing a
/// diagnostic is a binary search rather than a scan of the file.
#[derive(Clone, Debug)]
pub struct LineIndex<'s> {
    src: &'s str,
    starts: Vec<usize>,
}

impl<'s> LineIndex<'s> {
    /// Indexes the line starts of `src`.
    pub fn new(src: &'s str) -> Self {
        let mut starts = vec![0];
        starts.extend(src.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { src, starts }
    }

    /// 0-based line of byte `offset`, and the byte range of that line (without its `\n`).
    fn line_of(&self, offset: usize) -> (usize, Range<usize>) {
        let line = self.starts.partition_point(|&s| s <= offset) - 1;
        let start = self.starts[line];
        let end = self
            .starts
            .get(line + 1)
            .map_or(self.src.len(), |&next| next - 1);
        (line, start..end.max(start))
    }

    /// The line and column of byte `offset` (clamped to the end of the source).
    pub fn line_col(&self, offset: usize) -> LineCol {
        let offset = floor_char_boundary(self.src, offset.min(self.src.len()));
        let (line, range) = self.line_of(offset);
        let before = &self.src[range.start..offset];
        let before = if line == 0 {
            before.strip_prefix(BOM).unwrap_or(before)
        } else {
            before
        };
        LineCol {
            line: line + 1,
            col: before.chars().count() + 1,
        }
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Source lines longer than this many columns are shown as a window around the caret.
const MAX_LINE: usize = 100;
/// Columns of context kept before the caret in an elided line.
const BEFORE_CARET: usize = 40;
/// Diagnostics [`Diagnostics`]' `Display` prints before saying how many more there are.
pub const SHOWN: usize = 100;

/// How a source character is shown: tabs as four spaces, control, format and bidi
/// characters (which would garble the terminal or reorder the line) as `�`.
fn shown(c: char) -> (&'static str, Option<char>, usize) {
    if c == '\t' {
        ("    ", None, 4)
    } else if c.is_control() || is_invisible(c) {
        ("", Some('\u{fffd}'), 1)
    } else {
        ("", Some(c), 1)
    }
}

/// Zero-width and direction-changing characters (the Trojan Source set and friends).
fn is_invisible(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | BOM)
}

/// The displayed form of `text` and the display column where each char starts.
fn display(text: &str) -> (Vec<String>, Vec<usize>) {
    let mut cells = Vec::new();
    let mut cols = Vec::new();
    let mut col = 0;
    for c in text.chars() {
        let (s, ch, w) = shown(c);
        cols.push(col);
        cells.push(ch.map_or_else(|| s.to_string(), String::from));
        col += w;
    }
    cols.push(col);
    (cells, cols)
}

impl Diagnostic {
    /// A diagnostic at `span` with no help text.
    pub fn new(span: Range<usize>, message: impl Into<String>) -> Self {
        Diagnostic {
            message: message.into(),
            span,
            help: None,
            notes: Vec::new(),
        }
    }

    /// Adds a note (shown before the help).
    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
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
    /// under the span, and the help. Indexes `src` first; use [`Diagnostic::render_in`]
    /// to render many diagnostics of one source.
    pub fn render(&self, file: &str, src: &str) -> String {
        self.render_in(file, &LineIndex::new(src))
    }

    /// As [`Diagnostic::render`], with the source already indexed: time proportional to
    /// the diagnostic's line (at most `MAX_LINE`, 100, columns of it are shown).
    pub fn render_in(&self, file: &str, index: &LineIndex<'_>) -> String {
        self.render_as("error", file, index)
    }

    /// As [`Diagnostic::render_in`], under another severity (`note`, `warning`).
    pub fn render_as(&self, severity: &str, file: &str, index: &LineIndex<'_>) -> String {
        use fmt::Write;
        let src = index.src;
        let start = floor_char_boundary(src, self.span.start.min(src.len()));
        let end = floor_char_boundary(src, self.span.end.min(src.len())).max(start);
        let LineCol { line, col } = index.line_col(start);
        let (line0, range) = index.line_of(start);
        let mut text_start = range.start;
        if line0 == 0 && src[text_start..].starts_with(BOM) {
            text_start += BOM.len_utf8();
        }
        let text = &src[text_start..range.end];
        // A CRLF file's line ends before its `\r`.
        let text = text.strip_suffix('\r').unwrap_or(text);
        // The caret covers the span's part on its first line, at least one column.
        let caret_end = end.min(text_start + text.len()).max(start);
        let first = src[text_start..start].chars().count();
        let last = first + src[start..caret_end].chars().count();
        let (cells, cols) = display(text);
        let (mut lo, mut hi) = (0, cells.len());
        let width = cols[cells.len()];
        if width > MAX_LINE {
            // A window of the line around the caret, `...` where it is cut.
            lo = cols.partition_point(|&c| c + BEFORE_CARET < cols[first]);
            hi = cols
                .partition_point(|&c| c <= cols[lo] + MAX_LINE)
                .saturating_sub(1);
            hi = hi.max(lo + 1).min(cells.len());
        }
        let mut shown_text = String::new();
        if lo > 0 {
            shown_text.push_str("...");
        }
        for c in &cells[lo..hi] {
            shown_text.push_str(c);
        }
        if hi < cells.len() {
            shown_text.push_str("...");
        }
        let shown_text = shown_text.trim_end();
        let lead = if lo > 0 { 3 } else { 0 };
        let caret_at = cols[first.clamp(lo, hi)] - cols[lo] + lead;
        let caret_to = cols[last.clamp(lo, hi)] - cols[lo] + lead;
        let carets = caret_to.saturating_sub(caret_at).max(1);
        let gutter = line.to_string().len();
        let pad = " ".repeat(gutter);
        let mut out = String::new();
        let _ = writeln!(out, "{severity}: {}", self.message);
        let _ = writeln!(out, "{pad}--> {file}:{line}:{col}");
        let _ = writeln!(out, "{pad} |");
        let _ = writeln!(out, "{line} | {shown_text}");
        let _ = writeln!(
            out,
            "{pad} | {}{}",
            " ".repeat(caret_at),
            "^".repeat(carets)
        );
        for note in &self.notes {
            let _ = writeln!(out, "{pad} = note: {note}");
        }
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

    /// Renders the first `limit` problems, then how many more there are, then the count:
    /// one pass over the source, whatever the number of problems.
    pub fn render(&self, limit: usize) -> String {
        use fmt::Write;
        let index = LineIndex::new(&self.source);
        let mut out = String::new();
        for d in self.list.iter().take(limit) {
            let _ = writeln!(out, "{}", d.render_in(&self.file, &index));
        }
        let n = self.list.len();
        if n > limit {
            let more = n - limit;
            let _ = writeln!(
                out,
                "note: {more} more problem{} not shown\n",
                if more == 1 { "" } else { "s" }
            );
        }
        let _ = write!(
            out,
            "error: {} has {n} problem{}",
            self.file,
            if n == 1 { "" } else { "s" }
        );
        out
    }
}

impl fmt::Display for Diagnostics {
    /// The first [`SHOWN`] problems (see [`Diagnostics::render`]).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render(SHOWN))
    }
}

impl std::error::Error for Diagnostics {}

/// The spec text of `bytes`, or the diagnostic for the first byte that is not UTF-8 (with
/// its offset and line), over a lossy copy of the text so it can be shown.
pub fn decode(file: &str, bytes: Vec<u8>) -> Result<String, Diagnostics> {
    match String::from_utf8(bytes) {
        Ok(s) => Ok(s),
        Err(e) => {
            let at = e.utf8_error().valid_up_to();
            let bytes = e.into_bytes();
            let byte = bytes[at];
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let line = LineIndex::new(&text).line_col(at).line;
            let mut d = Diagnostics::new(file, text);
            d.push(
                Diagnostic::new(
                    at..at + 1,
                    format!(
                        "the spec is not UTF-8: byte 0x{byte:02x} at offset {at} (line {line}) starts no UTF-8 character"
                    ),
                )
                .help("a spec is TOML, which is UTF-8 text: save it as UTF-8"),
            );
            Err(d)
        }
    }
}

/// `name` safe to write into a generated file's comment, string or Markdown: letters,
/// digits and `._-+@,=/ ` as they are, everything else (newlines, quotes, `\`, `>`,
/// control and bidi characters) as `\u{..}`.
pub fn escape_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if (c.is_alphanumeric() && !is_invisible(c)) || "._-+@,=/ ".contains(c) {
            out.push(c);
        } else {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        }
    }
    out
}

/// The closest of `candidates` to `word`, if it is close enough to be a likely typo.
pub fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let len = word.chars().count();
    candidates
        .iter()
        .filter_map(|c| {
            let limit = 2.max(c.len() / 3);
            // The distance is at least the difference in length: skip the rest unseen.
            (len.abs_diff(c.chars().count()) <= limit)
                .then(|| (edit_distance(word, c), *c))
                .filter(|(d, _)| *d <= limit)
        })
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance, in two rows allocated once.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}
