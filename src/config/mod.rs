//! YAML configuration: the file's shape (`types`), human durations, loading with environment overrides,
//! and validation that reports every problem at once with its key path.
//!
//! Loading: YAML text → value tree (`yaml`, keys kept as written) → `SHOPFLOOR_AGENT__…` overrides (`env`)
//! → each top-level key, machine, shift and MQTT input read on its own (`structure`) → semantic checks (`validate`).

mod access;
pub mod duration;
mod env;
pub mod error;
mod structure;
pub mod types;
mod validate;
mod yaml;

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value;

pub use access::{parse_date, parse_hhmm};
pub use duration::{ByteSize, HumanDuration};
pub use env::ENV_PREFIX;
pub use error::{ConfigErrors, ConfigIssue};
pub use types::*;
pub use validate::warnings;

/// Read and validate a config file, then apply `SHOPFLOOR_AGENT__…` environment overrides.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    load_with_text(path).map(|(config, _)| config)
}

/// [`load`], also returning the file's text (recorded in the store's config history).
pub fn load_with_text(path: &Path) -> Result<(Config, String), ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors::one(ConfigIssue::new(
            "",
            format!("cannot read {}: {e}", path.display()),
        ))
    })?;
    build(&text, None).map(|config| (config, text))
}

/// Validate YAML text, without environment overrides.
pub fn from_yaml_str(text: &str) -> Result<Config, ConfigErrors> {
    build(text, Some(HashMap::new()))
}

/// Validate YAML text with the given variables as the environment (`SHOPFLOOR_AGENT__MQTT__HOST` → value).
pub fn from_yaml_str_with_env(
    text: &str,
    vars: HashMap<String, String>,
) -> Result<Config, ConfigErrors> {
    build(text, Some(vars))
}

/// The lists read item by item.
const LISTS: [&str; 3] = ["machines", "shifts", "mqtt_inputs"];

fn build(text: &str, vars: Option<HashMap<String, String>>) -> Result<Config, ConfigErrors> {
    let mut tree = yaml::parse(text).map_err(ConfigErrors::one)?;
    let from_env = env::apply(&mut tree, vars).map_err(ConfigErrors::one)?;
    let Value::Object(root) = &mut tree else {
        return Err(ConfigErrors::one(ConfigIssue::new(
            "",
            "the file must be a mapping of keys (site, timezone, machines, …)",
        )));
    };
    let mut issues = Vec::new();
    let mut lists: HashMap<&str, Vec<Value>> = HashMap::new();
    for key in LISTS {
        let items = match root.remove(key) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items,
            Some(_) => {
                issues.push(ConfigIssue::new(key, "expected a list"));
                Vec::new()
            }
        };
        root.insert(key.to_owned(), Value::Array(Vec::new()));
        lists.insert(key, items);
    }
    let machines_raw = lists.remove("machines").unwrap_or_default();
    let shifts_raw = lists.remove("shifts").unwrap_or_default();
    let inputs_raw = lists.remove("mqtt_inputs").unwrap_or_default();
    let top: structure::Lenient<Config> = structure::read_lenient(&tree, "", None, &mut issues);
    if machines_raw.is_empty() && !issues.iter().any(|i| i.path == "machines") {
        issues.push(
            ConfigIssue::new("machines", "no machines configured")
                .hint("list at least one machine under `machines`"),
        );
    }

    let shifts: Vec<(usize, ShiftConfig)> = shifts_raw
        .iter()
        .enumerate()
        .filter_map(|(i, raw)| {
            structure::read_item(raw, &format!("shifts[{i}]"), None, &mut issues).map(|s| (i, s))
        })
        .collect();
    let machines: Vec<(usize, MachineConfig)> = machines_raw
        .into_iter()
        .enumerate()
        .filter_map(|(i, mut raw)| {
            let id = raw.get("id").and_then(Value::as_str).map(str::to_owned);
            let base = format!("machines[{i}]");
            let products_ok = resolve_empty_products(&mut raw, &base, id.as_deref(), &mut issues);
            let machine = structure::read_item(&raw, &base, id.as_deref(), &mut issues);
            machine.filter(|_| products_ok).map(|m| (i, m))
        })
        .collect();
    let inputs: Vec<(usize, MqttInputTemplate)> = inputs_raw
        .iter()
        .enumerate()
        .filter_map(|(i, raw)| {
            structure::read_item(raw, &format!("mqtt_inputs[{i}]"), None, &mut issues)
                .map(|t| (i, t))
        })
        .collect();

    let parts = validate::Parts {
        top: top.value.as_ref(),
        shifts: shifts.iter().map(|(i, s)| (*i, s)).collect(),
        machines: machines.iter().map(|(i, m)| (*i, m)).collect(),
        inputs: inputs.iter().map(|(i, t)| (*i, t)).collect(),
        input_count: inputs_raw.len(),
    };
    let mut found = Vec::new();
    validate::check(&parts, &mut found);
    issues.extend(found.into_iter().filter(|i| !top.shadows(&i.path)));
    let lines = yaml::key_lines(text);
    for issue in &mut issues {
        issue.line = issue.line.or_else(|| yaml::line_of(&lines, &issue.path));
        let set_by = from_env
            .iter()
            .find(|(path, _)| issue.path == *path || issue.path.starts_with(&format!("{path}.")));
        if let Some((_, var)) = set_by {
            issue.hint = Some(match issue.hint.take() {
                Some(hint) => format!("{hint} (set by {var})"),
                None => format!("set by {var}"),
            });
        }
    }
    issues.sort_by_key(|i| i.line.unwrap_or(0));
    match top.value {
        Some(mut config) if issues.is_empty() => {
            config.shifts = shifts.into_iter().map(|(_, s)| s).collect();
            config.machines = machines.into_iter().map(|(_, m)| m).collect();
            config.mqtt_inputs = inputs.into_iter().map(|(_, t)| t).collect();
            Ok(config)
        }
        _ => Err(ConfigErrors(issues)),
    }
}

/// A product listed with no time (`B:` or `B: ~`) uses the machine's `ideal_cycle_time`; without one it
/// has no ideal cycle time at all, which is an error. Returns false when it reported one.
fn resolve_empty_products(
    raw: &mut Value,
    base: &str,
    machine: Option<&str>,
    issues: &mut Vec<ConfigIssue>,
) -> bool {
    let has_default = raw.get("ideal_cycle_time").is_some_and(|v| !v.is_null());
    let Some(Value::Object(products)) = raw.get_mut("products") else {
        return true;
    };
    let empty: Vec<String> = products
        .iter()
        .filter(|(_, v)| v.is_null())
        .map(|(k, _)| k.clone())
        .collect();
    for product in &empty {
        products.remove(product);
        if !has_default {
            issues.push(
                ConfigIssue::new(
                    format!("{base}.products.{product}"),
                    format!("product `{product}` has no ideal cycle time, and the machine has no `ideal_cycle_time`"),
                )
                .hint("give the product a time (`12s`) or set the machine's `ideal_cycle_time`")
                .machine(machine),
            );
        }
    }
    has_default || empty.is_empty()
}
