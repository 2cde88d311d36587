//! Helpers the other modules read a validated config through: time zone, signals by role, counter width,
//! register orders, shift times, the config hash and the next shift start.

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan, ZonedDateTime};
use sha2::{Digest, Sha256};

use super::types::{
    ByteOrder, Config, DataType, MachineConfig, ShiftConfig, SignalConfig, WordOrder,
};
use super::HumanDuration;
use crate::sample::Signal;

/// Parse a local `HH:MM` time (00:00–23:59).
pub fn parse_hhmm(s: &str) -> Option<Time> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 || !(h.bytes().chain(m.bytes())).all(|b| b.is_ascii_digit()) {
        return None;
    }
    Time::new(h.parse().ok()?, m.parse().ok()?, 0, 0).ok()
}

/// Parse a `YYYY-MM-DD` date.
pub fn parse_date(s: &str) -> Option<Date> {
    let b = s.as_bytes();
    let digits = [0, 1, 2, 3, 5, 6, 8, 9];
    if b.len() != 10
        || b[4] != b'-'
        || b[7] != b'-'
        || !digits.iter().all(|&i| b[i].is_ascii_digit())
    {
        return None;
    }
    Date::new(
        s[0..4].parse().ok()?,
        s[5..7].parse().ok()?,
        s[8..10].parse().ok()?,
    )
    .ok()
}

impl Config {
    /// The plant's time zone. A validated config always names a known zone; otherwise UTC.
    pub fn time_zone(&self) -> TimeZone {
        TimeZone::get(&self.timezone).unwrap_or(TimeZone::UTC)
    }

    /// SHA-256 (hex) of the canonical JSON form of the config: identifies the "config in force".
    pub fn hash(&self) -> String {
        let canonical = serde_json::to_vec(self).unwrap_or_default();
        format!("{:x}", Sha256::digest(&canonical))
    }

    /// The machine with this id.
    pub fn machine(&self, id: &str) -> Option<&MachineConfig> {
        self.machines.iter().find(|m| m.id == id)
    }

    /// Counter modulus of `role` on `machine`: the machine's own signal ([`MachineConfig::counter_modulus`]),
    /// or, for a machine fed by `mqtt_inputs`, the `rollover` of the template carrying that role.
    pub fn counter_modulus(&self, machine: &MachineConfig, role: Signal) -> Option<u64> {
        if machine.signal(role).is_some() {
            return machine.counter_modulus(role);
        }
        let fed_by_templates = machine.source.modbus.is_none() && machine.source.mqtt.is_none();
        self.mqtt_inputs
            .iter()
            .filter(|t| fed_by_templates && t.signal == role.as_str())
            .find_map(|t| t.rollover)
    }

    /// Valid non-production dates.
    pub fn non_production(&self) -> Vec<Date> {
        self.non_production_dates
            .iter()
            .filter_map(|d| parse_date(d))
            .collect()
    }

    /// The first shift start strictly after `now` (within two weeks), skipping non-production dates.
    pub fn next_shift_start(&self, now: Timestamp) -> Option<(&ShiftConfig, ZonedDateTime)> {
        let tz = self.time_zone();
        let today = now.to_zoned_datetime(tz.clone()).date();
        let skip = self.non_production();
        let mut best: Option<(&ShiftConfig, ZonedDateTime)> = None;
        for offset in -1i64..=15 {
            let Ok(date) = today.checked_add(offset.days()) else {
                continue;
            };
            if skip.contains(&date) {
                continue;
            }
            for shift in &self.shifts {
                let Some(start) = shift.start_time() else {
                    continue;
                };
                if !shift.days.iter().any(|d| d.to_jiff() == date.weekday()) {
                    continue;
                }
                let Ok(at) = date.to_datetime(start).to_zoned_datetime(tz.clone()) else {
                    continue;
                };
                if at.timestamp() > now && best.as_ref().is_none_or(|(_, b)| at < *b) {
                    best = Some((shift, at));
                }
            }
        }
        best
    }
}

impl ShiftConfig {
    /// Local start time, when it is valid `HH:MM`.
    pub fn start_time(&self) -> Option<Time> {
        parse_hhmm(&self.start)
    }
    /// Local end time, when it is valid `HH:MM`.
    pub fn end_time(&self) -> Option<Time> {
        parse_hhmm(&self.end)
    }
    /// True when the shift ends on the next day (end at or before start).
    pub fn crosses_midnight(&self) -> bool {
        matches!((self.start_time(), self.end_time()), (Some(s), Some(e)) if e <= s)
    }
}

impl MachineConfig {
    /// The configured signal for a role.
    pub fn signal(&self, role: Signal) -> Option<&SignalConfig> {
        self.signals.get(role.as_str())
    }

    /// Modulus of a counter: `rollover:` if set, else from an unsigned register type (u16 → 65536,
    /// u32 → 2^32). `None`: no reachable modulus (u64, signed, MQTT without `rollover`), so a drop is a reset.
    pub fn counter_modulus(&self, role: Signal) -> Option<u64> {
        let sig = self.signal(role)?;
        if let Some(r) = sig.rollover {
            return Some(r);
        }
        match sig.effective_type()?.counter_bits()? {
            bits @ (16 | 32) => Some(1u64 << bits),
            _ => None,
        }
    }

    /// Ideal cycle time of a product (its own entry, else the machine's).
    pub fn ideal_cycle_time_for(&self, product: Option<&str>) -> Option<HumanDuration> {
        product
            .and_then(|p| self.products.get(p).copied())
            .or(self.ideal_cycle_time)
    }
}

impl SignalConfig {
    /// Word and byte order, resolving the `order:` shorthand (ABCD, CDAB, BADC, DCBA).
    pub fn orders(&self) -> (WordOrder, ByteOrder) {
        match self
            .order
            .as_deref()
            .map(str::to_ascii_uppercase)
            .as_deref()
        {
            Some("ABCD") => (WordOrder::Big, ByteOrder::Big),
            Some("CDAB") => (WordOrder::Little, ByteOrder::Big),
            Some("BADC") => (WordOrder::Big, ByteOrder::Little),
            Some("DCBA") => (WordOrder::Little, ByteOrder::Little),
            _ => (
                self.word_order.unwrap_or_default(),
                self.byte_order.unwrap_or_default(),
            ),
        }
    }

    /// The data type with its default: `bool` on coils, discrete inputs and `bit:`, `u16` on registers;
    /// `None` for an MQTT signal without `type`.
    pub fn effective_type(&self) -> Option<DataType> {
        self.data_type.or_else(|| {
            self.register.map(|r| {
                if r.is_bit() || self.bit.is_some() {
                    DataType::Bool
                } else {
                    DataType::U16
                }
            })
        })
    }

    /// Registers (or bits) this signal occupies: 1 for bits and `bit:`, else the type's width.
    pub fn width(&self) -> u16 {
        match (self.bit, self.effective_type()) {
            (Some(_), _) | (None, None) => 1,
            (None, Some(t)) => t.registers(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RegisterKind;

    fn sig(register: RegisterKind, data_type: Option<DataType>) -> SignalConfig {
        SignalConfig {
            register: Some(register),
            address: Some(0),
            data_type,
            ..SignalConfig::default()
        }
    }

    #[test]
    fn counter_modulus_comes_from_rollover_or_unsigned_width() {
        let mut m: MachineConfig = serde_json::from_value(serde_json::json!({"id": "m"})).unwrap();
        m.signals
            .insert("total_count".into(), sig(RegisterKind::Holding, None));
        assert_eq!(m.counter_modulus(Signal::TotalCount), Some(65536));
        m.signals.insert(
            "total_count".into(),
            sig(RegisterKind::Holding, Some(DataType::U32)),
        );
        assert_eq!(m.counter_modulus(Signal::TotalCount), Some(1 << 32));
        m.signals.insert(
            "total_count".into(),
            sig(RegisterKind::Input, Some(DataType::U64)),
        );
        assert_eq!(m.counter_modulus(Signal::TotalCount), None);
        let mut s = sig(RegisterKind::Holding, Some(DataType::U32));
        s.rollover = Some(1_000_000);
        m.signals.insert("good_count".into(), s);
        assert_eq!(m.counter_modulus(Signal::GoodCount), Some(1_000_000));
        assert_eq!(m.counter_modulus(Signal::RejectCount), None);
    }

    #[test]
    fn order_shorthand_resolves_to_word_and_byte_order() {
        let mut s = SignalConfig {
            order: Some("CDAB".into()),
            ..SignalConfig::default()
        };
        assert_eq!(s.orders(), (WordOrder::Little, ByteOrder::Big));
        s.order = Some("BADC".into());
        assert_eq!(s.orders(), (WordOrder::Big, ByteOrder::Little));
        s.order = None;
        s.word_order = Some(WordOrder::Little);
        assert_eq!(s.orders(), (WordOrder::Little, ByteOrder::Big));
    }

    #[test]
    fn hhmm_and_dates_are_strict() {
        assert_eq!(parse_hhmm("06:30"), Some(Time::constant(6, 30, 0, 0)));
        assert_eq!(parse_hhmm("6:30"), None);
        assert_eq!(parse_hhmm("24:00"), None);
        assert!(parse_date("2024-12-25").is_some());
        assert!(parse_date("2024-13-01").is_none());
        assert!(parse_date("25.12.2024").is_none());
    }
}
