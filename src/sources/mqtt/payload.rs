//! Payload decoding: plain text or JSON with a path, value maps, timestamp field, scale/offset,
//! and the classes of bad payload (each becomes a `null` sample and a counter).

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;

use jiff::Timestamp;

use crate::sample::{Signal, Value};

/// Payloads larger than this are rejected as `too_large` before any parsing.
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;

/// Why a payload gave no value. `as_str` is the reason label used in counters and logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, thiserror::Error)]
pub enum BadPayload {
    /// Larger than [`MAX_PAYLOAD_BYTES`].
    #[error("payload over the size limit")]
    TooLarge,
    /// Not valid UTF-8.
    #[error("payload is not UTF-8")]
    NotUtf8,
    /// A JSON path is configured but the payload does not parse as JSON.
    #[error("payload is not JSON")]
    NotJson,
    /// The JSON path leads nowhere.
    #[error("field missing from the JSON payload")]
    MissingField,
    /// The value has a type the signal cannot take (an object, a word for a counter, …).
    #[error("value of the wrong type for the signal")]
    WrongType,
    /// NaN, an infinity, or a number out of range (`1e999`).
    #[error("value is not a finite number")]
    NotFinite,
    /// The timestamp field is present but is neither RFC 3339 nor epoch milliseconds.
    #[error("timestamp field is not RFC 3339 nor epoch milliseconds")]
    BadTimestamp,
}

impl BadPayload {
    /// Every reason, in a stable order.
    pub const ALL: [BadPayload; 7] = [
        BadPayload::TooLarge,
        BadPayload::NotUtf8,
        BadPayload::NotJson,
        BadPayload::MissingField,
        BadPayload::WrongType,
        BadPayload::NotFinite,
        BadPayload::BadTimestamp,
    ];

    /// snake_case label for counters and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            BadPayload::TooLarge => "too_large",
            BadPayload::NotUtf8 => "not_utf8",
            BadPayload::NotJson => "not_json",
            BadPayload::MissingField => "missing_field",
            BadPayload::WrongType => "wrong_type",
            BadPayload::NotFinite => "not_finite",
            BadPayload::BadTimestamp => "bad_timestamp",
        }
    }
}

/// A configuration the decoder cannot work with.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecoderError {
    /// The JSON path does not parse.
    #[error("`{0}` is not a JSON path (use `$.a.b`, `$.items[0]` or `/a/b`)")]
    Path(String),
    /// A `map` value is an array or object.
    #[error("map value for `{0}` must be a bool, number, string or null")]
    MapValue(String),
}

/// One step of a JSON path.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    /// Object key; also an array index when it is a number (JSON pointer style).
    Key(String),
    /// Array index (`[0]`).
    Index(usize),
}

/// A compiled path into a JSON document: `$.a.b`, `$.items[0]`, `$` (the root) or `/a/b` (RFC 6901).
#[derive(Debug, Clone, PartialEq)]
pub struct JsonPath {
    steps: Vec<Step>,
}

impl FromStr for JsonPath {
    type Err = DecoderError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || DecoderError::Path(s.to_owned());
        let t = s.trim();
        if t.is_empty() {
            return Err(err());
        }
        let mut steps = Vec::new();
        if let Some(rest) = t.strip_prefix('/') {
            for seg in rest.split('/') {
                steps.push(Step::Key(seg.replace("~1", "/").replace("~0", "~")));
            }
            return Ok(JsonPath { steps });
        }
        let rest = t.strip_prefix('$').ok_or_else(err)?;
        let mut chars = rest.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '.' => {
                    let mut key = String::new();
                    while let Some(&n) = chars.peek() {
                        if n == '.' || n == '[' {
                            break;
                        }
                        key.push(n);
                        chars.next();
                    }
                    if key.is_empty() {
                        return Err(err());
                    }
                    steps.push(Step::Key(key));
                }
                '[' => {
                    let mut inner = String::new();
                    for n in chars.by_ref() {
                        if n == ']' {
                            break;
                        }
                        inner.push(n);
                    }
                    let inner = inner.trim();
                    if let Some(q) = inner
                        .strip_prefix('\'')
                        .and_then(|x| x.strip_suffix('\''))
                        .or_else(|| inner.strip_prefix('"').and_then(|x| x.strip_suffix('"')))
                    {
                        steps.push(Step::Key(q.to_owned()));
                    } else {
                        steps.push(Step::Index(inner.parse().map_err(|_| err())?));
                    }
                }
                _ => return Err(err()),
            }
        }
        Ok(JsonPath { steps })
    }
}

impl JsonPath {
    /// The value at this path, if any.
    pub fn get<'a>(&self, root: &'a serde_json::Value) -> Option<&'a serde_json::Value> {
        let mut cur = root;
        for step in &self.steps {
            cur = match (step, cur) {
                (Step::Key(k), serde_json::Value::Object(m)) => m.get(k)?,
                (Step::Key(k), serde_json::Value::Array(a)) => a.get(k.parse::<usize>().ok()?)?,
                (Step::Index(i), serde_json::Value::Array(a)) => a.get(*i)?,
                _ => return None,
            };
        }
        Some(cur)
    }
}

/// What kind of value a signal role accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `running`: bools, numbers, and words that [`Value::as_bool`] understands.
    Bool,
    /// Counters: numbers only; whole numbers become `Int`.
    Counter,
    /// `state`, `product`, `reason`: any scalar.
    Code,
}

impl Kind {
    fn of(signal: Signal) -> Kind {
        match signal {
            Signal::Running => Kind::Bool,
            s if s.is_counter() => Kind::Counter,
            _ => Kind::Code,
        }
    }
}

/// Everything needed to turn one payload into one value for one signal.
#[derive(Debug, Clone)]
pub struct Decoder {
    path: Option<JsonPath>,
    timestamp: Option<JsonPath>,
    map: HashMap<String, Option<Value>>,
    scale: Option<f64>,
    offset: Option<f64>,
    kind: Kind,
}

/// The configuration keys a decoder is built from (shared by signals and templates).
#[derive(Debug, Clone, Copy)]
pub struct DecoderSpec<'a> {
    /// Role of the signal.
    pub signal: Signal,
    /// JSON path of the value; `None` for plain payloads.
    pub json: Option<&'a str>,
    /// JSON path of the timestamp field.
    pub timestamp: Option<&'a str>,
    /// Text → value map.
    pub map: &'a BTreeMap<String, serde_json::Value>,
    /// Multiplier.
    pub scale: Option<f64>,
    /// Added after scaling.
    pub offset: Option<f64>,
}

/// A decoded payload: the event time and the value (`None` for an explicit JSON `null`).
pub type Decoded = (Timestamp, Result<Option<Value>, BadPayload>);

/// A payload's JSON document, parsed at most once however many signals read it.
#[derive(Debug, Default)]
pub struct ParsedPayload<'a> {
    bytes: &'a [u8],
    text: Option<Result<&'a str, BadPayload>>,
    json: Option<Result<serde_json::Value, BadPayload>>,
}

impl<'a> ParsedPayload<'a> {
    /// Wrap raw bytes; nothing is parsed yet.
    pub fn new(bytes: &'a [u8]) -> Self {
        ParsedPayload {
            bytes,
            text: None,
            json: None,
        }
    }

    fn text(&mut self) -> Result<&'a str, BadPayload> {
        let bytes = self.bytes;
        *self.text.get_or_insert_with(|| {
            if bytes.len() > MAX_PAYLOAD_BYTES {
                Err(BadPayload::TooLarge)
            } else {
                std::str::from_utf8(bytes).map_err(|_| BadPayload::NotUtf8)
            }
        })
    }

    fn json(&mut self) -> Result<&serde_json::Value, BadPayload> {
        if self.json.is_none() {
            let parsed = self.text().and_then(|t| {
                serde_json::from_str::<serde_json::Value>(t).map_err(|e| {
                    // serde_json reports `1e999` as a number out of range: that is a non-finite number.
                    if e.to_string().starts_with("number out of range") {
                        BadPayload::NotFinite
                    } else {
                        BadPayload::NotJson
                    }
                })
            });
            self.json = Some(parsed);
        }
        match &self.json {
            Some(Ok(v)) => Ok(v),
            Some(Err(e)) => Err(*e),
            None => Err(BadPayload::NotJson),
        }
    }
}

impl Decoder {
    /// Compile a decoder.
    pub fn new(spec: DecoderSpec<'_>) -> Result<Decoder, DecoderError> {
        let path = spec.json.map(str::parse).transpose()?;
        let timestamp = spec.timestamp.map(str::parse).transpose()?;
        let mut map = HashMap::with_capacity(spec.map.len());
        for (k, v) in spec.map {
            let value = match v {
                serde_json::Value::Null => None,
                serde_json::Value::Bool(b) => Some(Value::Bool(*b)),
                serde_json::Value::Number(n) => {
                    Some(number_value(n).ok_or_else(|| DecoderError::MapValue(k.clone()))?)
                }
                serde_json::Value::String(s) => Some(Value::Text(s.clone())),
                _ => return Err(DecoderError::MapValue(k.clone())),
            };
            map.insert(k.clone(), value);
        }
        Ok(Decoder {
            path,
            timestamp,
            map,
            scale: spec.scale,
            offset: spec.offset,
            kind: Kind::of(spec.signal),
        })
    }

    /// True when the payload is read as JSON.
    pub fn is_json(&self) -> bool {
        self.path.is_some()
    }

    /// Decode one payload received at `arrival`.
    pub fn decode(&self, payload: &mut ParsedPayload<'_>, arrival: Timestamp) -> Decoded {
        match &self.path {
            None => (arrival, payload.text().and_then(|t| self.plain(t))),
            Some(path) => {
                let doc = match payload.json() {
                    Ok(doc) => doc,
                    Err(e) => return (arrival, Err(e)),
                };
                let ts = match self.timestamp.as_ref().and_then(|p| p.get(doc)) {
                    None | Some(serde_json::Value::Null) => arrival,
                    Some(field) => match parse_timestamp(field) {
                        Some(ts) => ts,
                        None => return (arrival, Err(BadPayload::BadTimestamp)),
                    },
                };
                let value = match path.get(doc) {
                    None => Err(BadPayload::MissingField),
                    Some(v) => self.json_value(v),
                };
                (ts, value)
            }
        }
    }

    fn plain(&self, text: &str) -> Result<Option<Value>, BadPayload> {
        let t = text.trim();
        if let Some(mapped) = self.map.get(t) {
            return Ok(mapped.clone());
        }
        let raw = if t.eq_ignore_ascii_case("true") {
            Value::Bool(true)
        } else if t.eq_ignore_ascii_case("false") {
            Value::Bool(false)
        } else if let Ok(i) = t.parse::<i64>() {
            Value::Int(i)
        } else if let Ok(f) = t.parse::<f64>() {
            // Rust parses `NaN`, `inf`, `infinity` and `1e999` (→ inf): all non-finite.
            if !f.is_finite() {
                return Err(BadPayload::NotFinite);
            }
            Value::Float(f)
        } else {
            Value::Text(t.to_owned())
        };
        self.finish(raw).map(Some)
    }

    fn json_value(&self, v: &serde_json::Value) -> Result<Option<Value>, BadPayload> {
        let raw = match v {
            serde_json::Value::Null => return Ok(None),
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => number_value(n).ok_or(BadPayload::NotFinite)?,
            serde_json::Value::String(s) => {
                if let Some(mapped) = self.map.get(s.as_str()) {
                    return Ok(mapped.clone());
                }
                // A number sent as a string: decode it like a plain payload (catches `"NaN"`).
                return self.plain(s);
            }
            serde_json::Value::Array(_) | serde_json::Value::Object(_) => {
                return Err(BadPayload::WrongType)
            }
        };
        self.finish(raw).map(Some)
    }

    /// Apply scale/offset and check the value against the role.
    fn finish(&self, raw: Value) -> Result<Value, BadPayload> {
        let scaled = match raw {
            Value::Int(i) if self.scale.is_some() || self.offset.is_some() => {
                Some(self.apply(i as f64)?)
            }
            Value::Float(f) => Some(self.apply(f)?),
            Value::Int(_) | Value::Bool(_) | Value::Text(_) => None,
        };
        let value = match scaled {
            Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 && self.kind == Kind::Counter => {
                Value::Int(f as i64)
            }
            Some(f) => Value::Float(f),
            None => raw,
        };
        match (self.kind, &value) {
            (Kind::Counter, Value::Int(_) | Value::Float(_)) => Ok(value),
            (Kind::Counter, _) => Err(BadPayload::WrongType),
            (Kind::Bool, v) if v.as_bool().is_some() => Ok(value),
            (Kind::Bool, _) => Err(BadPayload::WrongType),
            (Kind::Code, _) => Ok(value),
        }
    }

    fn apply(&self, x: f64) -> Result<f64, BadPayload> {
        let y = x * self.scale.unwrap_or(1.0) + self.offset.unwrap_or(0.0);
        if y.is_finite() {
            Ok(y)
        } else {
            Err(BadPayload::NotFinite)
        }
    }
}

fn number_value(n: &serde_json::Number) -> Option<Value> {
    if let Some(i) = n.as_i64() {
        return Some(Value::Int(i));
    }
    let f = n.as_f64()?;
    f.is_finite().then_some(Value::Float(f))
}

/// RFC 3339 string (with offset) or epoch milliseconds number.
fn parse_timestamp(v: &serde_json::Value) -> Option<Timestamp> {
    match v {
        serde_json::Value::String(s) => s.trim().parse::<Timestamp>().ok(),
        serde_json::Value::Number(n) => {
            let ms = match n.as_i64() {
                Some(i) => i,
                None => {
                    let f = n.as_f64()?;
                    if !f.is_finite() || f.fract() != 0.0 || f.abs() > 9.0e15 {
                        return None;
                    }
                    f as i64
                }
            };
            Timestamp::from_millisecond(ms).ok()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arrival() -> Timestamp {
        "2024-03-04T06:00:00Z".parse().unwrap()
    }

    fn decoder(signal: Signal, json: Option<&str>) -> Decoder {
        Decoder::new(DecoderSpec {
            signal,
            json,
            timestamp: None,
            map: &BTreeMap::new(),
            scale: None,
            offset: None,
        })
        .unwrap()
    }

    fn decode(d: &Decoder, payload: &[u8]) -> Result<Option<Value>, BadPayload> {
        d.decode(&mut ParsedPayload::new(payload), arrival()).1
    }

    #[test]
    fn plain_integers_bools_and_floats_decode() {
        let c = decoder(Signal::TotalCount, None);
        assert_eq!(decode(&c, b"42"), Ok(Some(Value::Int(42))));
        assert_eq!(decode(&c, b" 17\n"), Ok(Some(Value::Int(17))));
        assert_eq!(decode(&c, b"42.0"), Ok(Some(Value::Int(42))));
        let r = decoder(Signal::Running, None);
        assert_eq!(decode(&r, b"true"), Ok(Some(Value::Bool(true))));
        assert_eq!(decode(&r, b"FALSE"), Ok(Some(Value::Bool(false))));
        assert_eq!(decode(&r, b"1"), Ok(Some(Value::Int(1))));
        assert_eq!(decode(&r, b"RUN"), Ok(Some(Value::Text("RUN".into()))));
        let s = decoder(Signal::State, None);
        assert_eq!(decode(&s, b"42.5"), Ok(Some(Value::Float(42.5))));
    }

    #[test]
    fn map_turns_words_into_values_for_plain_and_json_strings() {
        let map = BTreeMap::from([
            ("RUN".to_owned(), serde_json::json!(true)),
            ("IDLE".to_owned(), serde_json::json!(2)),
            ("OFF".to_owned(), serde_json::Value::Null),
        ]);
        let spec = |json| DecoderSpec {
            signal: Signal::State,
            json,
            timestamp: None,
            map: &map,
            scale: None,
            offset: None,
        };
        let plain = Decoder::new(spec(None)).unwrap();
        assert_eq!(decode(&plain, b"RUN"), Ok(Some(Value::Bool(true))));
        assert_eq!(decode(&plain, b"IDLE\n"), Ok(Some(Value::Int(2))));
        assert_eq!(decode(&plain, b"OFF"), Ok(None));
        let json = Decoder::new(spec(Some("$.st"))).unwrap();
        assert_eq!(decode(&json, br#"{"st":"IDLE"}"#), Ok(Some(Value::Int(2))));
    }

    #[test]
    fn scale_and_offset_apply_and_whole_counters_stay_integers() {
        let map = BTreeMap::new();
        let d = Decoder::new(DecoderSpec {
            signal: Signal::TotalCount,
            json: None,
            timestamp: None,
            map: &map,
            scale: Some(0.5),
            offset: Some(1.0),
        })
        .unwrap();
        assert_eq!(decode(&d, b"10"), Ok(Some(Value::Int(6))));
        assert_eq!(decode(&d, b"3"), Ok(Some(Value::Float(2.5))));
        let s = Decoder::new(DecoderSpec {
            signal: Signal::Product,
            json: None,
            timestamp: None,
            map: &map,
            scale: Some(0.1),
            offset: None,
        })
        .unwrap();
        assert_eq!(decode(&s, b"425"), Ok(Some(Value::Float(42.5))));
    }

    #[test]
    fn json_paths_dollar_pointer_nested_and_index_reach_the_value() {
        let doc = br#"{"count":7,"a":{"b":"x"},"items":[{"v":3},{"v":4}]}"#;
        let c = |p| decoder(Signal::TotalCount, Some(p));
        assert_eq!(decode(&c("$.count"), doc), Ok(Some(Value::Int(7))));
        assert_eq!(decode(&c("/count"), doc), Ok(Some(Value::Int(7))));
        assert_eq!(decode(&c("$.items[1].v"), doc), Ok(Some(Value::Int(4))));
        assert_eq!(decode(&c("/items/0/v"), doc), Ok(Some(Value::Int(3))));
        let p = decoder(Signal::Product, Some("$.a.b"));
        assert_eq!(decode(&p, doc), Ok(Some(Value::Text("x".into()))));
        let root = decoder(Signal::TotalCount, Some("$"));
        assert_eq!(decode(&root, b"12"), Ok(Some(Value::Int(12))));
    }

    #[test]
    fn json_null_is_a_null_value_not_a_bad_payload() {
        let c = decoder(Signal::TotalCount, Some("$.count"));
        assert_eq!(decode(&c, br#"{"count":null}"#), Ok(None));
    }

    #[test]
    fn timestamp_field_accepts_rfc3339_and_epoch_millis() {
        let map = BTreeMap::new();
        let d = Decoder::new(DecoderSpec {
            signal: Signal::TotalCount,
            json: Some("$.n"),
            timestamp: Some("$.ts"),
            map: &map,
            scale: None,
            offset: None,
        })
        .unwrap();
        let at = |p: &[u8]| d.decode(&mut ParsedPayload::new(p), arrival());
        let (ts, v) = at(br#"{"n":1,"ts":"2024-03-04T07:00:00+01:00"}"#);
        assert_eq!(ts.to_string(), "2024-03-04T06:00:00Z");
        assert_eq!(v, Ok(Some(Value::Int(1))));
        let (ts, _) = at(br#"{"n":1,"ts":1709532000500}"#);
        assert_eq!(ts.as_millisecond(), 1_709_532_000_500);
        let (ts, _) = at(br#"{"n":1}"#);
        assert_eq!(ts, arrival());
        let (ts, v) = at(br#"{"n":1,"ts":"yesterday"}"#);
        assert_eq!((ts, v), (arrival(), Err(BadPayload::BadTimestamp)));
    }

    #[test]
    fn every_bad_payload_class_is_recognised() {
        let c = decoder(Signal::TotalCount, Some("$.count"));
        assert_eq!(decode(&c, b"not json"), Err(BadPayload::NotJson));
        assert_eq!(decode(&c, br#"{"other":1}"#), Err(BadPayload::MissingField));
        assert_eq!(
            decode(&c, br#"{"count":{"x":1}}"#),
            Err(BadPayload::WrongType)
        );
        assert_eq!(
            decode(&c, br#"{"count":"many"}"#),
            Err(BadPayload::WrongType)
        );
        assert_eq!(
            decode(&c, br#"{"count":"NaN"}"#),
            Err(BadPayload::NotFinite)
        );
        assert_eq!(
            decode(&c, br#"{"count":1e999}"#),
            Err(BadPayload::NotFinite)
        );
        assert_eq!(decode(&c, b"\xff\xfe{}"), Err(BadPayload::NotUtf8));
        let big = vec![b' '; MAX_PAYLOAD_BYTES + 1];
        assert_eq!(decode(&c, &big), Err(BadPayload::TooLarge));
        let p = decoder(Signal::TotalCount, None);
        assert_eq!(decode(&p, b"NaN"), Err(BadPayload::NotFinite));
        assert_eq!(decode(&p, b"inf"), Err(BadPayload::NotFinite));
        assert_eq!(decode(&p, b"1e999"), Err(BadPayload::NotFinite));
        assert_eq!(decode(&p, b"RUN"), Err(BadPayload::WrongType));
        let r = decoder(Signal::Running, None);
        assert_eq!(decode(&r, b"maybe"), Err(BadPayload::WrongType));
    }

    #[test]
    fn bad_paths_and_map_values_are_config_errors() {
        assert!("count".parse::<JsonPath>().is_err());
        assert!("$.a[x]".parse::<JsonPath>().is_err());
        assert!("$..a".parse::<JsonPath>().is_err());
        let map = BTreeMap::from([("X".to_owned(), serde_json::json!([1]))]);
        let r = Decoder::new(DecoderSpec {
            signal: Signal::State,
            json: None,
            timestamp: None,
            map: &map,
            scale: None,
            offset: None,
        });
        assert_eq!(r.err(), Some(DecoderError::MapValue("X".into())));
    }

    #[test]
    fn one_json_parse_serves_several_signals() {
        let a = decoder(Signal::TotalCount, Some("$.a"));
        let b = decoder(Signal::RejectCount, Some("$.b"));
        let mut p = ParsedPayload::new(br#"{"a":1,"b":2}"#);
        assert_eq!(a.decode(&mut p, arrival()).1, Ok(Some(Value::Int(1))));
        assert_eq!(b.decode(&mut p, arrival()).1, Ok(Some(Value::Int(2))));
        assert!(p.json.is_some());
    }
}
