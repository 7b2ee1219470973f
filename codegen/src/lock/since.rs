//! The `since = N` key of a `[[hypercall]]`: the ABI version that introduced the call.
//!
//! Read here rather than in `parse.rs` (which only lets the key through), since only the
//! lock and its checks use it: a hypercall added after the lock's version carries the new
//! version, so a host that knows its guest's version can refuse calls that guest cannot
//! know, and `pvgen check` tells an addition marked for a release from one that is not.

use std::collections::HashMap;

use toml::de::{DeTable, DeValue};

use crate::diag::{Diagnostic, Diagnostics};
use crate::spec::Spec;

/// Each hypercall's `since`, by name (only those that give one, as an integer).
pub fn values(src: &str) -> HashMap<String, u64> {
    let mut out = HashMap::new();
    each(src, |name, v, _| {
        if let Some(n) = v {
            out.insert(name.to_string(), n);
        }
    });
    out
}

/// Calls `f(name, since, span)` for every hypercall with a `since` key (`since` is `None`
/// when it is not an unsigned integer).
fn each(src: &str, mut f: impl FnMut(&str, Option<u64>, std::ops::Range<usize>)) {
    let Ok(root) = DeTable::parse(src) else {
        return;
    };
    let Some(DeValue::Array(calls)) = root.get_ref().get("hypercall").map(|v| v.get_ref()) else {
        return;
    };
    for c in calls.iter() {
        let DeValue::Table(t) = c.get_ref() else {
            continue;
        };
        let (Some(DeValue::String(name)), Some(v)) =
            (t.get("name").map(|v| v.get_ref()), t.get("since"))
        else {
            continue;
        };
        let n = match v.get_ref() {
            DeValue::Integer(i) => u64::from_str_radix(i.as_str(), i.radix()).ok(),
            _ => None,
        };
        f(name, n, v.span());
    }
}

/// Checks every `since`: an integer from 1 to the spec's `[abi] version`.
pub fn check(spec: &Spec, src: &str, d: &mut Diagnostics) {
    let version = u64::from(spec.abi.version);
    each(src, |name, v, span| {
        match v {
        Some(n) if (1..=version).contains(&n) => {}
        Some(n) => d.push(
            Diagnostic::new(
                span,
                format!("hypercall `{name}` has `since = {n}`, outside the ABI's versions 1 to {version}"),
            )
            .help("`since` is the [abi] version that introduced the call: at most the current version"),
        ),
        None => d.push(
            Diagnostic::new(span, format!("`since` of hypercall `{name}` must be an integer"))
                .help("write the [abi] version that introduced the call, e.g. `since = 2`"),
        ),
    }
    });
}
