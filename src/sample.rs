//! The one type every source emits: a timestamped value of one signal role of one machine (DESIGN.md §2).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use jiff::Timestamp;
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A configured machine id, shared cheaply between samples.
pub type MachineId = Arc<str>;

/// One observation: `{"ts": …, "machine": …, "signal": …, "value": …}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Event time (RFC 3339 with offset on the wire).
    pub ts: Timestamp,
    /// A configured machine id.
    pub machine: MachineId,
    /// The role of the signal.
    pub signal: Signal,
    /// `None` (`null`) means the source has no valid value now.
    pub value: Option<Value>,
}

impl Sample {
    /// Build a sample.
    pub fn new(ts: Timestamp, machine: MachineId, signal: Signal, value: Option<Value>) -> Self {
        Sample {
            ts,
            machine,
            signal,
            value,
        }
    }
}

/// Signal roles a machine can have (DESIGN.md §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// Bool: the machine is producing.
    Running,
    /// Code mapped through the machine's `state_codes` to a category.
    State,
    /// Raw cumulative counter of all parts.
    TotalCount,
    /// Raw cumulative counter of good parts.
    GoodCount,
    /// Raw cumulative counter of rejected parts.
    RejectCount,
    /// Product code or name.
    Product,
    /// Stop reason code.
    Reason,
}

impl Signal {
    /// Every role, in a stable order.
    pub const ALL: [Signal; 7] = [
        Signal::Running,
        Signal::State,
        Signal::TotalCount,
        Signal::GoodCount,
        Signal::RejectCount,
        Signal::Product,
        Signal::Reason,
    ];

    /// The snake_case name used in config and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Running => "running",
            Signal::State => "state",
            Signal::TotalCount => "total_count",
            Signal::GoodCount => "good_count",
            Signal::RejectCount => "reject_count",
            Signal::Product => "product",
            Signal::Reason => "reason",
        }
    }

    /// True for the three cumulative counters.
    pub fn is_counter(self) -> bool {
        matches!(
            self,
            Signal::TotalCount | Signal::GoodCount | Signal::RejectCount
        )
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Signal {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Signal::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown signal role `{s}`"))
    }
}

/// A decoded value. JSON `true`/`false` → `Bool`, integers → `Int`, other numbers → `Float`, strings → `Text`.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Boolean.
    Bool(bool),
    /// Integer (counters, codes). Unsigned values above `i64::MAX` arrive as `Float`.
    Int(i64),
    /// Real number (never NaN or infinite: sources turn those into `null`).
    Float(f64),
    /// Text (product names, status words).
    Text(String),
}

impl Value {
    /// Interpret as a boolean: bools, non-zero numbers, and the words true/false/on/off/run/1/0.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            Value::Int(i) => Some(*i != 0),
            Value::Float(f) => Some(*f != 0.0),
            Value::Text(t) => match t.trim().to_ascii_lowercase().as_str() {
                "true" | "on" | "1" | "run" | "running" | "yes" => Some(true),
                "false" | "off" | "0" | "stop" | "stopped" | "no" => Some(false),
                _ => None,
            },
        }
    }

    /// Interpret as an integer (floats are truncated only when they are whole).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Bool(b) => Some(*b as i64),
            Value::Int(i) => Some(*i),
            Value::Float(f) if f.is_finite() && f.fract() == 0.0 => Some(*f as i64),
            Value::Float(_) => None,
            Value::Text(t) => t.trim().parse().ok(),
        }
    }

    /// A key for code maps (`state_codes`, products, reasons): integers print plainly.
    pub fn code_key(&self) -> String {
        match self {
            Value::Bool(b) => (*b as i64).to_string(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) if f.fract() == 0.0 && f.is_finite() => (*f as i64).to_string(),
            Value::Float(f) => f.to_string(),
            Value::Text(t) => t.clone(),
        }
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => s.serialize_i64(*i),
            Value::Float(f) => s.serialize_f64(*f),
            Value::Text(t) => s.serialize_str(t),
        }
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Value;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a bool, a number or a string")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
                Ok(Value::Bool(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
                Ok(Value::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
                Ok(i64::try_from(v)
                    .map(Value::Int)
                    .unwrap_or(Value::Float(v as f64)))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
                if v.is_finite() {
                    Ok(Value::Float(v))
                } else {
                    Err(E::custom("value is not a finite number"))
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
                Ok(Value::Text(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
                Ok(Value::Text(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// Capacity of the bounded channel from sources to the engine.
pub const SAMPLE_CHANNEL_CAPACITY: usize = 8192;

/// Sending half of the sources → engine channel. Sources never block on it for long:
/// when it is full they wait (back-pressure), which only slows their own polling.
pub type SampleSender = tokio::sync::mpsc::Sender<Sample>;
/// Receiving half of the sources → engine channel.
pub type SampleReceiver = tokio::sync::mpsc::Receiver<Sample>;

/// The bounded channel that every source feeds.
pub fn sample_channel() -> (SampleSender, SampleReceiver) {
    tokio::sync::mpsc::channel(SAMPLE_CHANNEL_CAPACITY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_round_trips_through_json_lines() {
        let line = r#"{"ts":"2024-03-04T06:00:01Z","machine":"press-1","signal":"total_count","value":52000}"#;
        let s: Sample = serde_json::from_str(line).unwrap();
        assert_eq!(s.signal, Signal::TotalCount);
        assert_eq!(s.value, Some(Value::Int(52000)));
        assert_eq!(&*s.machine, "press-1");
        let back = serde_json::to_string(&s).unwrap();
        assert_eq!(back, line);
    }

    #[test]
    fn null_value_means_no_valid_value() {
        let s: Sample = serde_json::from_str(
            r#"{"ts":"2024-03-04T07:00:00+01:00","machine":"m","signal":"running","value":null}"#,
        )
        .unwrap();
        assert_eq!(s.value, None);
        assert_eq!(s.ts.to_string(), "2024-03-04T06:00:00Z");
    }

    #[test]
    fn unknown_signal_role_is_rejected() {
        let r: Result<Sample, _> = serde_json::from_str(
            r#"{"ts":"2024-03-04T06:00:00Z","machine":"m","signal":"speed","value":1}"#,
        );
        assert!(r.is_err());
    }
}
