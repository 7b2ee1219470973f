//! Room: spec prose as Markdown. Every doc, safety note and instruction text of a spec is
//! CommonMark that ends up in rustdoc: [`clean_text`] is what the parser keeps of it,
//! [`doc_lines`] the doc-comment lines the emitters write, [`run_on`] how a generated
//! sentence is appended to it, and [`Fence`] the code-fence rule all three share.

/// `text` as docs are written into generated code: `\r\n` as `\n`, tabs expanded to
/// 4-column stops (clippy's `tabs_in_doc_comments`), and the indentation that a multi-line
/// TOML string gives every line but the first removed (Python's `inspect.cleandoc`), so
/// an indented paragraph does not turn into a Markdown code block.
pub fn clean_text(text: &str) -> String {
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
pub struct Fence {
    indent: usize,
    mark: char,
    len: usize,
}

impl Fence {
    /// The fence `line` opens: at most three columns in, three or more backticks or
    /// tildes, and a backtick fence's info string holds no backtick.
    pub fn opened_by(line: &str) -> Option<Fence> {
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
    pub fn closed_by(&self, line: &str) -> bool {
        let t = line.trim();
        line.len() - line.trim_start().len() < 4
            && t.len() >= self.len
            && t.chars().all(|c| c == self.mark)
    }

    /// The line that closes this fence, at the indent it opened at (so a fence in a list
    /// item is closed in that item, not after it).
    pub fn closer(&self) -> String {
        let mut s = " ".repeat(self.indent);
        s.extend(std::iter::repeat_n(self.mark, self.len));
        s
    }

    /// The fence `text` opens and never closes, if any.
    pub fn left_open(text: &str) -> Option<Fence> {
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

/// `text` as doc lines: paragraphs wrapped at 88 columns, list items and block quotes
/// continued so rustdoc and clippy (`doc_lazy_continuation`) read them as one item, tables,
/// headings and code (fenced or indented) left alone. Every line starts with a space, so a
/// doc line can never turn into `////` or `//!`.
pub fn doc_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    // The code fence the text is inside, if any, and what its opener rendered as.
    let mut fenced: Option<Fence> = None;
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
            if Fence::opened_by(t).is_some() {
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
            None => Fence::opened_by(line),
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
            && Fence::opened_by(inner).is_some();
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
pub fn run_on(doc: &str, tail: &str) -> String {
    let last = doc.lines().last().unwrap_or_default().trim();
    if Fence::opened_by(last).is_some() && last.chars().all(|c| c == '`' || c == '~') {
        format!("{doc}\n\n{}", tail.trim_start())
    } else {
        format!("{doc}{tail}")
    }
}
