//! A comparison of two fact trees, told three ways: diagnostics at the changed keys (for
//! `pvgen check`), plain text for a reviewer and JSON for tools (for `pvgen diff`).

use std::fmt::Write;
use std::ops::Range;

use super::{Change, Class, Facts, Verdict, compare};
use crate::diag::{Diagnostic, LineIndex};

/// The differences between an old and a new fact tree, with their versions.
#[derive(Clone, Debug)]
pub struct Report {
    /// Every difference, in path order.
    pub changes: Vec<Change>,
    /// The old side's name (a lock or spec path).
    pub old_file: String,
    /// The new side's name.
    pub new_file: String,
    /// The old side's `[abi] version`.
    pub old_version: u64,
    /// The new side's.
    pub new_version: u64,
}

/// Replaces the OLD and NEW placeholders of a verdict with the sides' names.
fn sides(s: &str, old: &str, new: &str) -> String {
    s.replace("OLD", old).replace("NEW", new)
}

impl Report {
    /// Compares `old` with `new`.
    pub fn new(old: &Facts, new: &Facts) -> Report {
        Report {
            changes: compare(old, new),
            old_file: old.file.clone(),
            new_file: new.file.clone(),
            old_version: old.version(),
            new_version: new.version(),
        }
    }

    /// The most severe class of any change (compatible when there is none).
    pub fn class(&self) -> Class {
        self.changes
            .iter()
            .map(|c| c.class)
            .max()
            .unwrap_or(Class::Compatible)
    }

    /// Whether `[abi] version` went up, which marks breaking changes as intended.
    pub fn bumped(&self) -> bool {
        self.new_version > self.old_version
    }

    /// Whether `c` is an error: breaking without a version bump, or always wrong.
    pub fn is_error(&self, c: &Change) -> bool {
        c.always_error || (c.class == Class::Breaking && !self.bumped())
    }

    /// Number of errors.
    pub fn errors(&self) -> usize {
        self.changes.iter().filter(|c| self.is_error(c)).count()
    }

    /// Counts by class: (compatible, additive, breaking).
    pub fn counts(&self) -> (usize, usize, usize) {
        let n = |k| self.changes.iter().filter(|c| c.class == k).count();
        (n(Class::Compatible), n(Class::Additive), n(Class::Breaking))
    }

    /// `pvgen check`'s rendering: one diagnostic per additive or breaking change at its
    /// key in the new side (where it is not there any more, at `[abi] version`), errors
    /// for unmarked breaks, notes otherwise. `spec` is the spec's path, for the hints.
    pub fn diagnostics(&self, old: &Facts, new: &Facts, spec: &str) -> String {
        let old_name = format!("{} (v{})", old.file, self.old_version);
        let index = LineIndex::new(&new.source);
        let mut out = String::new();
        let mut shown: Vec<&Change> = self
            .changes
            .iter()
            .filter(|c| c.class != Class::Compatible)
            .collect();
        let at = |c: &Change| {
            c.new_span
                .clone()
                .unwrap_or_else(|| new.version_span.clone())
        };
        shown.sort_by_key(|c| (at(c).start, c.path.clone()));
        for c in shown {
            let span = at(c);
            let error = self.is_error(c);
            let severity = if error { "error" } else { "note" };
            let label = match (c.class, error) {
                (Class::Breaking, true) => "breaking ABI change",
                (Class::Breaking, false) => "breaking ABI change, marked by the version bump",
                _ => "additive ABI change",
            };
            let mut d = Diagnostic::new(span, format!("{label}: {}", c.what));
            for v in [&c.old_guest, &c.new_guest] {
                if let Verdict::Fails(why) = v {
                    d = d.note(sides(why, &old_name, &new.file));
                }
            }
            d = d.help(if c.always_error {
                "fix the spec: this is wrong whatever the version".to_string()
            } else if error {
                format!(
                    "if the break is intended, bump `[abi] version` to {} and run `pvgen lock {spec}`; otherwise undo it",
                    self.old_version + 1
                )
            } else {
                format!("run `pvgen lock {spec}` to record it in {}", old.file)
            });
            out.push_str(&d.render_as(severity, &new.file, &index));
            out.push('\n');
        }
        out
    }

    fn place(facts_src: &LineIndex<'_>, file: &str, span: &Option<Range<usize>>) -> String {
        span.as_ref().map_or(String::new(), |s| {
            let lc = facts_src.line_col(s.start);
            format!("{file}:{}:{}", lc.line, lc.col)
        })
    }

    /// Plain text for a reviewer: a headline, one entry per change with where it is and
    /// what each side built from the other would do, and a summary.
    pub fn text(&self, old: &Facts, new: &Facts) -> String {
        let (oi, ni) = (LineIndex::new(&old.source), LineIndex::new(&new.source));
        let mut out = String::new();
        let _ = writeln!(
            out,
            "ABI `{}`: {} (v{}) → {} (v{}): {}",
            new.abi(),
            self.old_file,
            self.old_version,
            self.new_file,
            self.new_version,
            self.class().name()
        );
        for c in &self.changes {
            let at = if c.new_span.is_some() {
                Self::place(&ni, &new.file, &c.new_span)
            } else {
                Self::place(&oi, &old.file, &c.old_span)
            };
            let _ = writeln!(out, "\n{:<10} {}", c.class.name(), c.what);
            if !at.is_empty() {
                let _ = writeln!(out, "           at {at}");
            }
            let lines = [
                ("old guest, new host", &c.old_guest),
                ("new guest, old host", &c.new_guest),
            ];
            for (dir, v) in lines {
                let t = match v {
                    Verdict::Works => "works".to_string(),
                    Verdict::Fails(w) => sides(w, &self.old_file, &self.new_file),
                };
                let _ = writeln!(out, "           {dir}: {t}");
            }
        }
        let (c, a, b) = self.counts();
        let _ = write!(
            out,
            "\n{} change{}: {b} breaking, {a} additive, {c} compatible",
            self.changes.len(),
            if self.changes.len() == 1 { "" } else { "s" }
        );
        if b > 0 {
            if self.bumped() {
                let _ = write!(
                    out,
                    "; the version went {} → {}, so the break is marked",
                    self.old_version, self.new_version
                );
            } else {
                let _ = write!(
                    out,
                    "; the version is still {}, so the break is not marked",
                    self.new_version
                );
            }
        }
        out.push('\n');
        out
    }

    /// The same as one JSON object: `abi`, `old` and `new` (`file`, `version`), `class`,
    /// `version_bumped`, `errors`, and `changes` (each `path`, `class`, `what`,
    /// `old_guest_on_new_host` and `new_guest_on_old_host` (null when it works), `error`,
    /// `at` and `old_at` (`file`, `line`, `col`, or null)).
    pub fn json(&self, old: &Facts, new: &Facts) -> String {
        let (oi, ni) = (LineIndex::new(&old.source), LineIndex::new(&new.source));
        let at = |idx: &LineIndex<'_>, file: &str, s: &Option<Range<usize>>| match s {
            Some(s) => {
                let lc = idx.line_col(s.start);
                format!(
                    "{{\"file\":{},\"line\":{},\"col\":{}}}",
                    json_str(file),
                    lc.line,
                    lc.col
                )
            }
            None => "null".into(),
        };
        let verdict = |v: &Verdict| match v {
            Verdict::Works => "null".to_string(),
            Verdict::Fails(w) => json_str(&sides(w, &self.old_file, &self.new_file)),
        };
        let changes: Vec<String> = self
            .changes
            .iter()
            .map(|c| {
                format!(
                    "{{\"path\":{},\"class\":\"{}\",\"what\":{},\"old_guest_on_new_host\":{},\"new_guest_on_old_host\":{},\"error\":{},\"at\":{},\"old_at\":{}}}",
                    json_str(&c.path.to_string()),
                    c.class.name(),
                    json_str(&c.what),
                    verdict(&c.old_guest),
                    verdict(&c.new_guest),
                    self.is_error(c),
                    at(&ni, &new.file, &c.new_span),
                    at(&oi, &old.file, &c.old_span),
                )
            })
            .collect();
        format!(
            "{{\"abi\":{},\"old\":{{\"file\":{},\"version\":{}}},\"new\":{{\"file\":{},\"version\":{}}},\"class\":\"{}\",\"version_bumped\":{},\"errors\":{},\"changes\":[{}]}}\n",
            json_str(new.abi()),
            json_str(&self.old_file),
            self.old_version,
            json_str(&self.new_file),
            self.new_version,
            self.class().name(),
            self.bumped(),
            self.errors(),
            changes.join(",")
        )
    }
}

/// A JSON string literal.
pub(crate) fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
