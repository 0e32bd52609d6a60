//! Just enough PromQL reading to check a Grafana board against the engine's `/metrics`: which series an
//! expression selects and which labels it groups or filters them by.
#![allow(dead_code)]

use std::collections::BTreeSet;

/// Each `streamrec_*` series named in `expr`, with the labels the expression needs it to carry: those in its
/// own `{label="..."}` selector, those of every `by (...)` / `without (...)` clause in the expression, and `le`
/// for a histogram's `_bucket` series.
pub fn series(expr: &str) -> Vec<(String, BTreeSet<String>)> {
    let grouping = grouping_labels(expr);
    let mut out = Vec::new();
    let b = expr.as_bytes();
    let mut i = 0;
    while let Some(at) = expr[i..].find("streamrec_").map(|k| k + i) {
        let mut end = at;
        while end < b.len() && (b[end].is_ascii_alphanumeric() || b[end] == b'_') {
            end += 1;
        }
        let name = expr[at..end].to_string();
        let mut labels = grouping.clone();
        if b.get(end) == Some(&b'{') {
            let close = expr[end..].find('}').map_or(b.len(), |k| k + end);
            for matcher in expr[end + 1..close].split(',') {
                let label: String = matcher.trim().chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
                if !label.is_empty() {
                    labels.insert(label);
                }
            }
            end = close;
        }
        if name.ends_with("_bucket") {
            labels.insert("le".into());
        }
        out.push((name, labels));
        i = end;
    }
    out
}

fn grouping_labels(expr: &str) -> BTreeSet<String> {
    let mut labels = BTreeSet::new();
    for kw in ["by", "without"] {
        let mut rest = expr;
        while let Some(k) = rest.find(kw) {
            let before_ok = k == 0 || !rest.as_bytes()[k - 1].is_ascii_alphanumeric() && rest.as_bytes()[k - 1] != b'_';
            let after = rest[k + kw.len()..].trim_start();
            if before_ok && after.starts_with('(') {
                let close = after.find(')').unwrap_or(after.len());
                labels.extend(after[1..close].split(',').map(|l| l.trim().to_string()).filter(|l| !l.is_empty()));
            }
            rest = &rest[k + kw.len()..];
        }
    }
    labels
}
