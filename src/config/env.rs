//! Environment overrides (`SHOPFLOOR_AGENT__MQTT__HOST=broker`), read with the `config` crate and laid
//! over the parsed file: keys match case-insensitively, numeric segments index lists (`MACHINES__0__LINE`).

use std::collections::HashMap;

use config::{Environment, Source, ValueKind};
use serde_json::{Map, Value};

use super::error::ConfigIssue;

/// Prefix of the environment variables that override the file.
pub const ENV_PREFIX: &str = "SHOPFLOOR_AGENT";

/// Apply overrides from `vars` (`None`: the process environment) onto `tree`. Returns, for each variable
/// applied, the key path it set (`machines[0].source.modbus.host`) and the variable's name.
pub fn apply(
    tree: &mut Value,
    vars: Option<HashMap<String, String>>,
) -> Result<Vec<(String, String)>, ConfigIssue> {
    let env = Environment::with_prefix(ENV_PREFIX)
        .separator("__")
        .try_parsing(true)
        .source(vars.map(|m| m.into_iter().collect()));
    let collected = env.collect().map_err(|e| {
        ConfigIssue::new("", format!("environment override could not be read: {e}"))
    })?;
    let mut applied = Vec::new();
    let mut keys: Vec<_> = collected.into_iter().collect();
    keys.sort_by(|a, b| a.0.cmp(&b.0));
    for (key, value) in keys {
        let segments: Vec<&str> = key.split('.').filter(|s| !s.is_empty()).collect();
        if segments.is_empty() {
            continue;
        }
        let var = format!("{ENV_PREFIX}__{}", segments.join("__").to_ascii_uppercase());
        let mut path = String::new();
        set(tree, &segments, to_json(value.kind), &mut path).map_err(|why| {
            ConfigIssue::new(
                segments.join("."),
                format!("{var} cannot be applied: {why}"),
            )
        })?;
        applied.push((path, var));
    }
    Ok(applied)
}

fn to_json(kind: ValueKind) -> Value {
    match kind {
        ValueKind::Nil => Value::Null,
        ValueKind::Boolean(b) => Value::Bool(b),
        ValueKind::I64(i) => Value::from(i),
        ValueKind::U64(u) => Value::from(u),
        ValueKind::I128(i) => Value::String(i.to_string()),
        ValueKind::U128(u) => Value::String(u.to_string()),
        ValueKind::Float(f) => serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(f.to_string())),
        ValueKind::String(s) => Value::String(s),
        ValueKind::Table(_) | ValueKind::Array(_) => Value::Null,
    }
}

/// Scalar text as written in the environment (for keys whose file value is a string).
fn as_text(v: &Value) -> Value {
    match v {
        Value::Number(n) => Value::String(n.to_string()),
        Value::Bool(b) => Value::String(b.to_string()),
        other => other.clone(),
    }
}

/// Set `value` at `path`, appending the resolved key path (file spelling, `[i]` for lists) to `resolved`.
fn set(node: &mut Value, path: &[&str], value: Value, resolved: &mut String) -> Result<(), String> {
    let Some((first, rest)) = path.split_first() else {
        *node = if node.is_string() {
            as_text(&value)
        } else {
            value
        };
        return Ok(());
    };
    if node.is_null() {
        *node = Value::Object(Map::new());
    }
    match node {
        Value::Object(map) => {
            let key = map
                .keys()
                .find(|k| k.eq_ignore_ascii_case(first))
                .cloned()
                .unwrap_or_else(|| (*first).to_owned());
            if !resolved.is_empty() {
                resolved.push('.');
            }
            resolved.push_str(&key);
            set(map.entry(key).or_insert(Value::Null), rest, value, resolved)
        }
        Value::Array(items) => {
            let i: usize = first
                .parse()
                .map_err(|_| format!("`{first}` is not a list index"))?;
            let len = items.len();
            let item = items
                .get_mut(i)
                .ok_or_else(|| format!("index {i} is past the end of the list ({len} items)"))?;
            resolved.push_str(&format!("[{i}]"));
            set(item, rest, value, resolved)
        }
        _ => Err(format!("`{first}` is inside a plain value")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Option<HashMap<String, String>> {
        Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn environment_overrides_nested_keys_and_parses_numbers() {
        let mut tree = serde_json::json!({"mqtt": {"host": "a"}, "site": "s"});
        apply(
            &mut tree,
            vars(&[
                ("SHOPFLOOR_AGENT__MQTT__HOST", "broker"),
                ("SHOPFLOOR_AGENT__MQTT__PORT", "1884"),
            ]),
        )
        .unwrap();
        assert_eq!(tree["mqtt"]["host"], "broker");
        assert_eq!(tree["mqtt"]["port"], 1884);
    }

    #[test]
    fn environment_keys_match_file_keys_whatever_their_case_and_index_lists() {
        let mut tree = serde_json::json!({"site": "123", "machines": [{"products": {"A": "1s"}}]});
        let applied = apply(
            &mut tree,
            vars(&[
                ("SHOPFLOOR_AGENT__MACHINES__0__PRODUCTS__A", "2s"),
                ("SHOPFLOOR_AGENT__SITE", "456"),
            ]),
        )
        .unwrap();
        let var = "SHOPFLOOR_AGENT__MACHINES__0__PRODUCTS__A".to_owned();
        assert!(
            applied.contains(&("machines[0].products.A".to_owned(), var)),
            "{applied:?}"
        );
        assert_eq!(tree["machines"][0]["products"]["A"], "2s");
        assert_eq!(tree["site"], "456");
    }

    #[test]
    fn override_past_the_end_of_a_list_is_an_error() {
        let mut tree = serde_json::json!({"machines": []});
        let e = apply(
            &mut tree,
            vars(&[("SHOPFLOOR_AGENT__MACHINES__3__LINE", "x")]),
        )
        .unwrap_err();
        assert!(e.message.contains("past the end"), "{e}");
    }
}
