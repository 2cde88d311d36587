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
    let read = read_lenient(raw, base, machine, issues);
    read.value.filter(|_| read.shadowed.is_empty())
}

/// What a lenient read gives: the item with its bad keys left out, and the paths whose semantic checks would
/// see those gaps (the parent of each removed key; a top-level key shadows only itself).
pub struct Lenient<T> {
    /// The item read without its bad keys (`None` when a required key is missing or bad).
    pub value: Option<T>,
    /// Paths at and under which semantic findings may stem from a removed key.
    pub shadowed: Vec<String>,
}

impl<T> Lenient<T> {
    /// True when `path` is at or under a shadowed path.
    pub fn shadows(&self, path: &str) -> bool {
        self.shadowed.iter().any(|s| {
            path == s
                || path
                    .strip_prefix(s.as_str())
                    .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
        })
    }
}

/// Like [`read_item`], but keeps the item read without its bad keys.
pub fn read_lenient<T: DeserializeOwned>(
    raw: &Value,
    base: &str,
    machine: Option<&str>,
    issues: &mut Vec<ConfigIssue>,
) -> Lenient<T> {
    let mut tree = raw.clone();
    let mut removed: HashSet<String> = HashSet::new();
    let mut filled: HashSet<String> = HashSet::new();
    let mut shadowed: Vec<String> = Vec::new();
    for _ in 0..MAX_ERRORS_PER_ITEM {
        let err = match serde_path_to_error::deserialize::<_, T>(tree.clone()) {
            Ok(v) => {
                return Lenient {
                    value: Some(v),
                    shadowed,
                }
            }
            Err(e) => e,
        };
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
        let (issue, fix) = translate(&message, segments, base);
        let (path, fill) = match fix {
            Fix::Remove(path) => (path, None),
            // A stand-in lets the read go on to the next problem; its findings are shadowed below.
            Fix::Fill(path) => (path, Some(Value::String(String::new()))),
        };
        let full = join(base, &path);
        if removed.contains(&full) {
            break;
        }
        if !filled.contains(&full) {
            issues.push(issue.machine(machine));
        }
        shadowed.push(match path.iter().rposition(|s| matches!(s, Seg::Key(_))) {
            Some(0) if base.is_empty() => full.clone(),
            Some(k) => join(base, &path[..k]),
            None => base.to_owned(),
        });
        if fill.is_some() {
            filled.insert(full);
        } else {
            removed.insert(full);
        }
        if !edit(&mut tree, &path, fill) {
            break;
        }
    }
    Lenient {
        value: None,
        shadowed,
    }
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

/// Remove the innermost map key of `path` (a bad list element takes its whole list with it), or, with
/// `fill`, set that key to it.
fn edit(tree: &mut Value, path: &[Seg], fill: Option<Value>) -> bool {
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
    match (&path[last_key], node, fill) {
        (Seg::Key(k), Value::Object(m), None) => m.remove(k).is_some(),
        (Seg::Key(k), Value::Object(m), Some(v)) => m.insert(k.clone(), v).is_none(),
        _ => false,
    }
}

/// How to go on after an error: drop the bad key, or stand in for a missing one.
enum Fix {
    Remove(Vec<Seg>),
    Fill(Vec<Seg>),
}

/// Backticked words of a serde message: `unknown field `x`, expected one of `a`, `b``.
fn backticked(s: &str) -> Vec<&str> {
    s.split('`').skip(1).step_by(2).collect()
}

/// Turn a serde message into an issue, and how to change the tree before reading again.
fn translate(message: &str, mut segs: Vec<Seg>, base: &str) -> (ConfigIssue, Fix) {
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
        return (issue, Fix::Remove(segs));
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
        return (issue, Fix::Remove(segs));
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
            Fix::Fill(segs),
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
        return (issue, Fix::Remove(segs));
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
        return (issue, Fix::Remove(segs));
    }
    let issue = match message.split_once("; expected ") {
        Some((what, expected)) => {
            ConfigIssue::new(&path, what).hint(format!("expected {expected}"))
        }
        None => ConfigIssue::new(&path, message),
    };
    (issue, Fix::Remove(segs))
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
