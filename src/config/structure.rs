//! Typed reading of one config item (the top level, one machine, one shift) from the value tree.
//! A failing key is reported with its path, removed, and the item read again, so one item yields all its errors.

use std::collections::HashSet;

use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_path_to_error::Segment;

use super::error::{choice_hint, ConfigIssue};

/// At most this many errors are collected from one item.
const MAX_ERRORS_PER_ITEM: usize = 32;

/// Read `raw` as a `T`. Every problem is pushed to `issues` with `base` (`machines[2]`) before its path;
/// `None` when there was any.
pub fn read_item<T: DeserializeOwned>(
    raw: &Value,
    base: &str,
    machine: Option<&str>,
    issues: &mut Vec<ConfigIssue>,
) -> Option<T> {
    let mut tree = raw.clone();
    let mut removed: HashSet<String> = HashSet::new();
    let mut failed = false;
    for _ in 0..MAX_ERRORS_PER_ITEM {
        let err = match serde_path_to_error::deserialize::<_, T>(tree.clone()) {
            Ok(v) if !failed => return Some(v),
            Ok(_) => return None,
            Err(e) => e,
        };
        failed = true;
        let segments: Vec<Seg> = err
            .path()
            .iter()
            .filter_map(|s| match s {
                Segment::Map { key } => Some(Seg::Key(key.clone())),
                Segment::Seq { index } => Some(Seg::Index(*index)),
                _ => None,
            })
            .collect();
        let message = err.inner().to_string();
        let (issue, to_remove) = translate(&message, segments, base);
        let Some(to_remove) = to_remove else {
            if !removed.contains(&issue.path) {
                issues.push(issue.machine(machine));
            }
            return None;
        };
        issues.push(issue.machine(machine));
        removed.insert(join(base, &to_remove));
        if !remove(&mut tree, &to_remove) {
            return None;
        }
    }
    None
}

/// One step of a key path.
#[derive(Debug, Clone, PartialEq)]
enum Seg {
    Key(String),
    Index(usize),
}

fn join(base: &str, segs: &[Seg]) -> String {
    let mut out = base.to_owned();
    for s in segs {
        match s {
            Seg::Key(k) if out.is_empty() => out.push_str(k),
            Seg::Key(k) => {
                out.push('.');
                out.push_str(k);
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

/// Remove the innermost map key of `path` (a bad list element takes its whole list with it).
fn remove(tree: &mut Value, path: &[Seg]) -> bool {
    let Some(last_key) = path.iter().rposition(|s| matches!(s, Seg::Key(_))) else {
        return false;
    };
    let mut node = tree;
    for seg in &path[..last_key] {
        node = match (seg, node) {
            (Seg::Key(k), Value::Object(m)) => match m.get_mut(k) {
                Some(n) => n,
                None => return false,
            },
            (Seg::Index(i), Value::Array(a)) => match a.get_mut(*i) {
                Some(n) => n,
                None => return false,
            },
            _ => return false,
        };
    }
    match (&path[last_key], node) {
        (Seg::Key(k), Value::Object(m)) => m.remove(k).is_some(),
        _ => false,
    }
}

/// Backticked words of a serde message: `unknown field `x`, expected one of `a`, `b``.
fn backticked(s: &str) -> Vec<&str> {
    s.split('`').skip(1).step_by(2).collect()
}

/// Turn a serde message into an issue, and the path to remove before reading again (`None`: stop).
fn translate(message: &str, mut segs: Vec<Seg>, base: &str) -> (ConfigIssue, Option<Vec<Seg>>) {
    if let Some(rest) = message.strip_prefix("unknown field ") {
        let words = backticked(rest);
        let field = words.first().copied().unwrap_or_default().to_owned();
        if segs.last() != Some(&Seg::Key(field.clone())) {
            segs.push(Seg::Key(field.clone()));
        }
        let candidates: Vec<&str> = words.iter().skip(1).copied().collect();
        let mut issue = ConfigIssue::new(join(base, &segs), format!("unknown key `{field}`"));
        if !candidates.is_empty() {
            issue = issue.hint(choice_hint(&field, &candidates, "keys"));
        }
        return (issue, Some(segs));
    }
    if let Some(rest) = message.strip_prefix("unknown variant ") {
        let words = backticked(rest);
        let value = words.first().copied().unwrap_or_default();
        let candidates: Vec<&str> = words.iter().skip(1).copied().collect();
        let what = if segs.iter().any(|s| *s == Seg::Key("state_codes".into())) {
            "state category"
        } else {
            "value"
        };
        let issue = ConfigIssue::new(join(base, &segs), format!("unknown {what} `{value}`"))
            .hint(choice_hint(value, &candidates, "values"));
        return (issue, Some(segs));
    }
    if let Some(rest) = message.strip_prefix("missing field ") {
        let field = backticked(rest)
            .first()
            .copied()
            .unwrap_or_default()
            .to_owned();
        segs.push(Seg::Key(field.clone()));
        return (
            ConfigIssue::new(join(base, &segs), format!("missing key `{field}`")),
            None,
        );
    }
    let path = join(base, &segs);
    if let Some(rest) = message.strip_prefix("invalid type: ") {
        let (found, expected) = rest.split_once(", expected ").unwrap_or((rest, "?"));
        let issue = ConfigIssue::new(
            &path,
            format!(
                "expected {}, found {}",
                friendly(expected),
                found_text(found)
            ),
        );
        return (issue, Some(segs));
    }
    if let Some(rest) = message.strip_prefix("invalid value: ") {
        let (found, expected) = rest.split_once(", expected ").unwrap_or((rest, "?"));
        let issue = match (found.strip_prefix("integer "), range_of(expected)) {
            (Some(n), Some(range)) => {
                ConfigIssue::new(&path, format!("{} is out of range", n.trim_matches('`')))
                    .hint(format!("valid: {range}"))
            }
            _ => ConfigIssue::new(&path, format!("invalid value {}", found_text(found)))
                .hint(format!("expected {}", friendly(expected))),
        };
        return (issue, Some(segs));
    }
    let issue = match message.split_once("; expected ") {
        Some((what, expected)) => {
            ConfigIssue::new(&path, what).hint(format!("expected {expected}"))
        }
        None => ConfigIssue::new(&path, message),
    };
    (issue, Some(segs))
}

fn range_of(expected: &str) -> Option<&'static str> {
    Some(match expected {
        "u8" => "0–255",
        "u16" => "0–65535",
        "u32" => "0–4294967295",
        "u64" | "usize" => "0–18446744073709551615",
        _ => return None,
    })
}

fn friendly(expected: &str) -> String {
    match range_of(expected) {
        Some(range) => return format!("a whole number {range}"),
        None if expected.starts_with("struct ") || expected == "a map" => {
            return "a mapping of keys to values".into()
        }
        None => {}
    }
    match expected {
        "f64" | "f32" => "a number",
        "a boolean" => "true or false",
        "a sequence" => "a list",
        "a string" | "path string" => "text",
        "string or map" => "one of the listed words",
        other => other,
    }
    .to_owned()
}

fn found_text(found: &str) -> String {
    match found {
        "map" => "a mapping".into(),
        "sequence" => "a list".into(),
        "null" => "nothing".into(),
        other => other
            .replace("floating point", "number")
            .replace("integer", "number"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Item {
        name: String,
        port: u16,
        #[serde(default)]
        count: Option<u8>,
    }

    #[test]
    fn every_bad_key_of_one_item_is_reported() {
        let raw = serde_json::json!({"name": "x", "port": 70000, "cuont": 3, "count": "many"});
        let mut issues = Vec::new();
        assert!(read_item::<Item>(&raw, "items[1]", None, &mut issues).is_none());
        let text: Vec<String> = issues.iter().map(|i| i.to_string()).collect();
        assert_eq!(text.len(), 3, "{text:?}");
        assert!(
            text.contains(&"items[1].port: 70000 is out of range; valid: 0–65535".to_owned()),
            "{text:?}"
        );
        assert!(
            text.contains(&"items[1].cuont: unknown key `cuont`; did you mean `count`?".to_owned()),
            "{text:?}"
        );
        assert!(
            text.iter()
                .any(|t| t.starts_with("items[1].count: expected a whole number 0–255")),
            "{text:?}"
        );
    }

    #[test]
    fn a_removed_required_key_is_not_reported_twice() {
        let raw = serde_json::json!({"name": 5, "port": 1});
        let mut issues = Vec::new();
        assert!(read_item::<Item>(&raw, "", None, &mut issues).is_none());
        assert_eq!(issues.len(), 1, "{issues:?}");
        assert_eq!(
            issues[0].to_string(),
            "name: expected text, found number `5`"
        );
    }
}
