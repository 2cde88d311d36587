//! Human durations in config (`500ms`, `1s`, `2m`, `8h`, `1.5s`) and byte sizes (`512MB`).

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration read as `500ms`, `1s`, `2m`, `8h` (a bare number is seconds). Millisecond resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct HumanDuration {
    millis: u64,
}

impl HumanDuration {
    /// From milliseconds.
    pub const fn from_millis(millis: u64) -> Self {
        HumanDuration { millis }
    }
    /// From whole seconds.
    pub const fn from_secs(secs: u64) -> Self {
        HumanDuration {
            millis: secs * 1000,
        }
    }
    /// Milliseconds.
    pub const fn as_millis(self) -> u64 {
        self.millis
    }
    /// Seconds as a float.
    pub fn as_secs_f64(self) -> f64 {
        self.millis as f64 / 1000.0
    }
    /// As a std duration.
    pub fn to_std(self) -> std::time::Duration {
        std::time::Duration::from_millis(self.millis)
    }
    /// True when zero.
    pub fn is_zero(self) -> bool {
        self.millis == 0
    }
}

/// Longest duration accepted, in milliseconds (about 31,700 years).
const MAX_MILLIS: f64 = 1e15;

/// Why a duration did not parse.
pub const DURATION_HINT: &str =
    "a number with a unit: ms, s, m or h (e.g. `500ms`, `1s`, `2m`, `8h`)";

impl FromStr for HumanDuration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: f64 = num
            .parse()
            .map_err(|_| format!("`{s}` is not a duration; expected {DURATION_HINT}"))?;
        let factor = match unit.trim() {
            "ms" => 1.0,
            "s" | "" => 1000.0,
            "m" | "min" => 60_000.0,
            "h" => 3_600_000.0,
            other => {
                return Err(format!(
                    "`{s}` has unknown unit `{other}`; expected {DURATION_HINT}"
                ))
            }
        };
        let ms = n * factor;
        if !ms.is_finite() || !(0.0..=MAX_MILLIS).contains(&ms) {
            return Err(format!("`{s}` is out of range"));
        }
        if ms.fract() != 0.0 {
            return Err(format!("`{s}` is finer than a millisecond"));
        }
        Ok(HumanDuration::from_millis(ms as u64))
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.millis;
        if ms != 0 && ms.is_multiple_of(3_600_000) {
            write!(f, "{}h", ms / 3_600_000)
        } else if ms != 0 && ms.is_multiple_of(60_000) {
            write!(f, "{}m", ms / 60_000)
        } else if ms.is_multiple_of(1000) {
            write!(f, "{}s", ms / 1000)
        } else {
            write!(f, "{ms}ms")
        }
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = HumanDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(DURATION_HINT)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<HumanDuration, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<HumanDuration, E> {
                v.checked_mul(1000)
                    .filter(|ms| *ms as f64 <= MAX_MILLIS)
                    .map(HumanDuration::from_millis)
                    .ok_or_else(|| E::custom(format!("`{v}` is out of range")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<HumanDuration, E> {
                match u64::try_from(v) {
                    Ok(v) => self.visit_u64(v),
                    Err(_) => Err(E::custom("a duration cannot be negative")),
                }
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<HumanDuration, E> {
                format!("{v}s").parse().map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// A size in bytes read as `512MB`, `2GB`, `100KB` or a bare number of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct ByteSize(pub u64);

impl FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let n: u64 = num
            .parse()
            .map_err(|_| format!("`{s}` is not a size; expected e.g. `512MB`, `2GB`"))?;
        let f = match unit.trim().to_ascii_uppercase().as_str() {
            "" | "B" => 1,
            "KB" | "KIB" => 1 << 10,
            "MB" | "MIB" => 1 << 20,
            "GB" | "GIB" => 1 << 30,
            other => {
                return Err(format!(
                    "`{s}` has unknown unit `{other}`; expected B, KB, MB or GB"
                ))
            }
        };
        n.checked_mul(f)
            .map(ByteSize)
            .ok_or_else(|| format!("`{s}` is too large"))
    }
}

impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ByteSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size such as `512MB`")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
                u64::try_from(v)
                    .map(ByteSize)
                    .map_err(|_| E::custom("a size cannot be negative"))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_with_units() {
        for (s, ms) in [
            ("500ms", 500),
            ("1s", 1000),
            ("2m", 120_000),
            ("8h", 28_800_000),
            ("1.5s", 1500),
            ("45", 45_000),
        ] {
            assert_eq!(s.parse::<HumanDuration>().unwrap().as_millis(), ms, "{s}");
        }
    }

    #[test]
    fn bad_durations_say_what_is_valid() {
        let e = "10 parsecs".parse::<HumanDuration>().unwrap_err();
        assert!(e.contains("ms, s, m or h"), "{e}");
        assert!("".parse::<HumanDuration>().is_err());
        assert!("-1s".parse::<HumanDuration>().is_err());
    }

    #[test]
    fn huge_bare_numbers_are_out_of_range_not_overflows() {
        let v: Result<HumanDuration, _> = serde_json::from_str("18446744073709551615");
        assert!(v.unwrap_err().to_string().contains("out of range"));
        let v: Result<HumanDuration, _> = serde_json::from_str("-3");
        assert!(v.is_err());
        let v: HumanDuration = serde_json::from_str("90").unwrap();
        assert_eq!(v.as_millis(), 90_000);
    }

    #[test]
    fn sizes_read_with_units() {
        assert_eq!("512MB".parse::<ByteSize>().unwrap().0, 512 << 20);
        assert_eq!("4096".parse::<ByteSize>().unwrap().0, 4096);
        assert!("3 potatoes".parse::<ByteSize>().is_err());
    }
}
