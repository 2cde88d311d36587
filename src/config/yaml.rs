//! YAML text → a JSON value tree, keeping map keys exactly as written (`A`, `B`, `1`) and syntax error positions.

use std::collections::HashMap;

use serde_json::{Map, Number, Value};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::Marker;
use yaml_rust2::{Yaml, YamlLoader};

use super::error::ConfigIssue;

/// Parse one YAML document. An empty document is an empty map.
pub fn parse(text: &str) -> Result<Value, ConfigIssue> {
    let mut docs = YamlLoader::load_from_str(text).map_err(|e| {
        let info = e.info();
        let info = match info.strip_suffix(": duplicated key in mapping") {
            Some(key) => format!("duplicate key {}", key_text(key)),
            None => info.to_owned(),
        };
        ConfigIssue::new(
            "",
            format!(
                "YAML syntax error at line {}, column {}: {info}",
                e.marker().line(),
                e.marker().col() + 1
            ),
        )
    })?;
    match docs.len() {
        0 => Ok(Value::Object(Map::new())),
        1 => to_json(&docs.swap_remove(0), ""),
        n => Err(ConfigIssue::new(
            "",
            format!("the file holds {n} YAML documents; expected one"),
        )),
    }
}

/// yaml-rust2 prints the duplicated key as `String("id")`; show `id`.
fn key_text(debug: &str) -> String {
    let inner = debug
        .split_once('(')
        .and_then(|(_, rest)| rest.strip_suffix(')'))
        .unwrap_or(debug);
    format!("`{}`", inner.trim_matches('"'))
}

fn to_json(y: &Yaml, path: &str) -> Result<Value, ConfigIssue> {
    Ok(match y {
        Yaml::Null => Value::Null,
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Integer(i) => Value::Number((*i).into()),
        Yaml::Real(s) => match s.parse::<f64>().ok().and_then(Number::from_f64) {
            Some(n) => Value::Number(n),
            None => {
                return Err(ConfigIssue::new(
                    path,
                    format!("`{s}` is not a finite number"),
                ));
            }
        },
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| to_json(item, &format!("{path}[{i}]")))
                .collect::<Result<_, _>>()?,
        ),
        Yaml::Hash(h) => {
            let mut map = Map::new();
            for (k, v) in h {
                let key = match k {
                    Yaml::String(s) | Yaml::Real(s) => s.clone(),
                    Yaml::Integer(i) => i.to_string(),
                    Yaml::Boolean(b) => b.to_string(),
                    _ => {
                        return Err(ConfigIssue::new(
                            path,
                            "a key must be a plain word or number",
                        ))
                    }
                };
                let child = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                let value = to_json(v, &child)?;
                map.insert(key, value);
            }
            Value::Object(map)
        }
        Yaml::Alias(_) | Yaml::BadValue => {
            return Err(ConfigIssue::new(path, "value could not be read"));
        }
    })
}

/// Line (1-based) where each key path starts in `text`: `machines[0].signals.total_count` → 14.
/// Empty when the text does not parse.
pub fn key_lines(text: &str) -> HashMap<String, usize> {
    let mut recorder = LineRecorder::default();
    let mut parser = Parser::new_from_str(text);
    if parser.load(&mut recorder, false).is_err() {
        return HashMap::new();
    }
    recorder.lines
}

/// The line of `path`, or of its nearest ancestor that is in the file.
pub fn line_of(lines: &HashMap<String, usize>, path: &str) -> Option<usize> {
    let mut p = path;
    loop {
        if let Some(line) = lines.get(p) {
            return Some(*line);
        }
        p = &p[..p.rfind(['.', '['])?];
    }
}

enum Frame {
    Map { path: String, key: Option<String> },
    Seq { path: String, next: usize },
}

#[derive(Default)]
struct LineRecorder {
    stack: Vec<Frame>,
    lines: HashMap<String, usize>,
}

impl LineRecorder {
    /// A scalar in key position: record the key's line. False when the scalar is a value.
    fn take_key(&mut self, scalar: &str, mark: Marker) -> bool {
        let Some(Frame::Map {
            path,
            key: key @ None,
        }) = self.stack.last_mut()
        else {
            return false;
        };
        let full = join(path, scalar);
        *key = Some(scalar.to_owned());
        self.lines.entry(full).or_insert(mark.line());
        true
    }

    /// A value starts: its path (recording list items' lines).
    fn value_at(&mut self, mark: Marker) -> String {
        match self.stack.last_mut() {
            Some(Frame::Map { path, key }) => match key.take() {
                Some(k) => join(path, &k),
                None => path.clone(),
            },
            Some(Frame::Seq { path, next }) => {
                let full = format!("{path}[{next}]");
                *next += 1;
                self.lines.entry(full.clone()).or_insert(mark.line());
                full
            }
            None => String::new(),
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

impl MarkedEventReceiver for LineRecorder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        match ev {
            Event::Scalar(v, ..) if self.take_key(&v, mark) => {}
            Event::Scalar(..) | Event::Alias(_) => {
                self.value_at(mark);
            }
            Event::MappingStart(..) => {
                let path = self.value_at(mark);
                self.stack.push(Frame::Map { path, key: None });
            }
            Event::SequenceStart(..) => {
                let path = self.value_at(mark);
                self.stack.push(Frame::Seq { path, next: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn product_names_and_integer_state_codes_keep_their_keys() {
        let v =
            parse("products: { A: 12s, B: 20s }\nstate_codes: {1: running, 2: stopped}\n").unwrap();
        assert_eq!(v["products"]["A"], "12s");
        assert_eq!(v["products"]["B"], "20s");
        assert_eq!(v["state_codes"]["1"], "running");
    }

    #[test]
    fn syntax_error_reports_line_and_column() {
        let e = parse("site: a\nmachines: [1, 2\nshifts: 3\n").unwrap_err();
        assert!(
            e.message.starts_with("YAML syntax error at line 3, column"),
            "{e}"
        );
    }

    #[test]
    fn key_paths_map_to_their_lines() {
        let text = "site: a\nmachines:\n  - id: m\n    signals:\n      total_count: { register: holding, address: 7 }\n  - id: n\n    state_codes: {1: running}\n";
        let lines = key_lines(text);
        assert_eq!(lines.get("site"), Some(&1));
        assert_eq!(lines.get("machines[0]"), Some(&3));
        assert_eq!(
            lines.get("machines[0].signals.total_count.address"),
            Some(&5)
        );
        assert_eq!(lines.get("machines[1].state_codes.1"), Some(&7));
        assert_eq!(line_of(&lines, "machines[1].state_codes.1.x"), Some(7));
        assert_eq!(line_of(&lines, "machines[1].line"), Some(6));
        assert_eq!(line_of(&lines, "timezone"), None);
    }

    #[test]
    fn duplicate_key_is_named_plainly() {
        let e = parse("site: a\nsite: b\n").unwrap_err();
        assert!(e.message.ends_with("duplicate key `site`"), "{e}");
    }
}
