//! Pure per-machine model: from samples to machine events (state, counter deltas, product, reason).
//! No clock, no I/O: time is the sample's timestamp in epoch milliseconds.

pub mod counter;
pub mod reorder;

use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::config::{DataType, MachineConfig, SignalConfig, StateCategory};
use crate::sample::{Signal, Value};

pub use counter::{Counter, Step};
pub use reorder::ReorderBuffer;

/// Index of a counter role: total, good, reject.
pub const TOTAL: usize = 0;
/// Index of the good counter.
pub const GOOD: usize = 1;
/// Index of the reject counter.
pub const REJECT: usize = 2;

/// Default `stop_after` when a parts-only machine has no ideal cycle time.
pub const DEFAULT_STOP_AFTER_MS: u64 = 60_000;

/// A decoded sample value, compact and comparable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Val {
    /// `null`: no valid value.
    Null,
    /// A value that could not be read for its role (treated as `null`).
    Invalid,
    /// `running`.
    Bool(bool),
    /// A counter reading.
    Int(i64),
    /// `state` mapped to its category.
    State(StateCategory),
    /// Interned product or reason code.
    Code(u32),
}

/// One decoded sample of one machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// Event time, epoch milliseconds.
    pub ts: i64,
    /// Role.
    pub signal: Signal,
    /// Value.
    pub val: Val,
}

/// What the model tells the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MachineEvent {
    /// The machine's state category became `state` at `at`.
    State {
        /// When.
        at: i64,
        /// New state.
        state: StateCategory,
    },
    /// Parts counted by one counter at `at` (the delta belongs to the window with start < at ≤ end).
    Count {
        /// When.
        at: i64,
        /// TOTAL, GOOD or REJECT.
        role: usize,
        /// The step (never a baseline).
        step: Step,
    },
    /// The product in production changed.
    Product {
        /// When.
        at: i64,
        /// Interned product code.
        product: u32,
    },
    /// The stop reason code changed (`None`: cleared).
    Reason {
        /// When.
        at: i64,
        /// Interned reason code.
        reason: Option<u32>,
    },
}

/// Modulus of a counter signal: `rollover:` if set, else the width of an unsigned register type
/// (`type:`, or `u16` by default on holding/input registers): u16 → 65536, u32 → 2^32. `None` (u64,
/// signed, MQTT without `rollover:`): a drop is a reset.
pub fn counter_modulus(sc: &SignalConfig) -> Option<u64> {
    if let Some(r) = sc.rollover.filter(|r| *r > 0) {
        return Some(r);
    }
    let ty = sc.data_type.or(match (sc.register, sc.bit) {
        (Some(r), None) if !r.is_bit() => Some(DataType::U16),
        _ => None,
    })?;
    ty.counter_bits().filter(|b| *b < 64).map(|b| 1u64 << b)
}

/// Static, config-derived description of one machine.
#[derive(Debug, Clone)]
pub struct MachineSpec {
    /// Machine id.
    pub id: String,
    /// Line.
    pub line: String,
    /// Ideal cycle time (ms) when no product-specific one applies.
    pub ideal_ms: Option<u64>,
    /// Product name → ideal cycle time (ms).
    pub product_ideal: Vec<(String, u64)>,
    /// Reason code → text.
    pub reasons: Vec<(String, String)>,
    int_codes: Vec<(i64, StateCategory)>,
    text_codes: Vec<(String, StateCategory)>,
    /// Counter modulus per role (from `rollover:` or the unsigned register width).
    pub moduli: [Option<u64>; 3],
    /// Counter roles configured (bit per role).
    pub counters_configured: u8,
    /// Neither `running` nor `state` configured: judged from parts.
    pub parts_only: bool,
    /// Parts-only: stopped after this long without a part.
    pub stop_after_ms: u64,
}

impl MachineSpec {
    /// Derive from the machine's config.
    pub fn from_config(m: &MachineConfig) -> MachineSpec {
        let mut int_codes = Vec::new();
        let mut text_codes = Vec::new();
        for (k, cat) in &m.state_codes {
            match k.trim().parse::<i64>() {
                Ok(i) => int_codes.push((i, *cat)),
                Err(_) => text_codes.push((k.clone(), *cat)),
            }
        }
        let role_names = ["total_count", "good_count", "reject_count"];
        let mut moduli = [None; 3];
        let mut counters_configured = 0u8;
        for (i, name) in role_names.iter().enumerate() {
            if let Some(sc) = m.signals.get(*name) {
                counters_configured |= 1 << i;
                moduli[i] = counter_modulus(sc);
            }
        }
        let ideal_ms = m.ideal_cycle_time.map(|d| d.as_millis());
        let parts_only = !m.signals.contains_key("running") && !m.signals.contains_key("state");
        MachineSpec {
            id: m.id.clone(),
            line: m.line.clone(),
            ideal_ms,
            product_ideal: m
                .products
                .iter()
                .map(|(k, v)| (k.clone(), v.as_millis()))
                .collect(),
            reasons: m
                .reasons
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            int_codes,
            text_codes,
            moduli,
            counters_configured,
            parts_only,
            stop_after_ms: m
                .stop_after
                .map(|d| d.as_millis())
                .or(ideal_ms.map(|i| i.saturating_mul(3)))
                .filter(|d| *d > 0)
                .unwrap_or(DEFAULT_STOP_AFTER_MS),
        }
    }

    /// Ideal cycle time (ms) of a product name.
    pub fn ideal_of(&self, product: &str) -> Option<u64> {
        self.product_ideal
            .iter()
            .find(|(k, _)| k == product)
            .map(|(_, v)| *v)
            .or(self.ideal_ms)
    }

    /// Text of a reason code.
    pub fn reason_text(&self, code: &str) -> Option<String> {
        self.reasons
            .iter()
            .find(|(k, _)| k == code)
            .map(|(_, v)| v.clone())
    }

    fn state_of(&self, v: &Value) -> Option<StateCategory> {
        let as_int = match v {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(*b as i64),
            Value::Float(f) if f.fract() == 0.0 => Some(*f as i64),
            Value::Text(t) => t.trim().parse::<i64>().ok(),
            Value::Float(_) => None,
        };
        if let Some(i) = as_int {
            if let Some((_, c)) = self.int_codes.iter().find(|(k, _)| *k == i) {
                return Some(*c);
            }
        }
        let key = v.code_key();
        self.text_codes
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, c)| *c)
    }
}

/// Distinct product and reason codes kept per machine.
pub const MAX_CODES: usize = 1024;
/// The code standing for every code past `MAX_CODES`.
pub const OVERFLOW_CODE: &str = "other";

/// Codes (products, reasons) interned per machine; index 0 is `default`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Interner {
    names: Vec<String>,
    ints: Vec<(i64, u32)>,
}

impl Default for Interner {
    fn default() -> Self {
        Interner {
            names: vec!["default".to_owned()],
            ints: Vec::new(),
        }
    }
}

impl Interner {
    /// Index of a code, adding it when new.
    pub fn intern(&mut self, v: &Value) -> u32 {
        let as_int = match v {
            Value::Int(i) => Some(*i),
            Value::Bool(b) => Some(*b as i64),
            Value::Float(f) if f.fract() == 0.0 && f.is_finite() => Some(*f as i64),
            _ => None,
        };
        if let Some(i) = as_int {
            if let Some((_, idx)) = self.ints.iter().find(|(k, _)| *k == i) {
                return *idx;
            }
            let name = i.to_string();
            let idx = self.intern_str(&name);
            if self.ints.len() < MAX_CODES {
                self.ints.push((i, idx));
            }
            return idx;
        }
        match v {
            Value::Text(t) => self.intern_str(t),
            other => self.intern_str(&other.code_key()),
        }
    }

    fn intern_str(&mut self, s: &str) -> u32 {
        if let Some(i) = self.names.iter().position(|n| n == s) {
            return i as u32;
        }
        if self.names.len() >= MAX_CODES {
            // A source sending ever new codes must not grow memory and snapshots without bound.
            return self.intern_overflow();
        }
        self.names.push(s.to_owned());
        (self.names.len() - 1) as u32
    }

    fn intern_overflow(&mut self) -> u32 {
        match self.names.iter().position(|n| n == OVERFLOW_CODE) {
            Some(i) => i as u32,
            None => {
                warn!(
                    codes = MAX_CODES,
                    "too many distinct product/reason codes: further ones are `{OVERFLOW_CODE}`"
                );
                self.names.push(OVERFLOW_CODE.to_owned());
                (self.names.len() - 1) as u32
            }
        }
    }

    /// Name of an index.
    pub fn name(&self, idx: u32) -> &str {
        self.names
            .get(idx as usize)
            .map(String::as_str)
            .unwrap_or("default")
    }
}

const RUNNING_BIT: u8 = 1 << 3;

/// Dynamic state of one machine's model (serializable for snapshots).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelState {
    counters: [Counter; 3],
    /// Counter roles seen so far (bits), plus RUNNING_BIT once a `running`/`state` sample arrived.
    seen: u8,
    state: StateCategory,
    last_part: Option<i64>,
    /// Interned product and reason codes.
    pub codes: Interner,
    /// State codes already reported as unmapped (logged once each).
    #[serde(default)]
    unmapped: Vec<String>,
}

impl Default for ModelState {
    fn default() -> Self {
        ModelState {
            counters: [Counter::default(); 3],
            seen: 0,
            state: StateCategory::Unknown,
            last_part: None,
            codes: Interner::default(),
            unmapped: Vec::new(),
        }
    }
}

impl ModelState {
    /// Decode a raw sample value for its role (interning codes).
    pub fn decode(&mut self, spec: &MachineSpec, signal: Signal, value: Option<&Value>) -> Val {
        let Some(v) = value else { return Val::Null };
        match signal {
            Signal::Running => v.as_bool().map(Val::Bool).unwrap_or(Val::Invalid),
            Signal::State => spec.state_of(v).map(Val::State).unwrap_or_else(|| {
                let code = v.code_key();
                if !self.unmapped.contains(&code) {
                    warn!(machine = %spec.id, code = %code, "state code not in state_codes: state unknown");
                    self.unmapped.push(code);
                }
                Val::Invalid
            }),
            Signal::TotalCount | Signal::GoodCount | Signal::RejectCount => {
                v.as_i64().map(Val::Int).unwrap_or(Val::Invalid)
            }
            Signal::Product | Signal::Reason => Val::Code(self.codes.intern(v)),
        }
    }

    /// Counter roles present: configured, else seen.
    pub fn counter_mask(&self, spec: &MachineSpec) -> u8 {
        // Configured roles decide how counts are derived; a stray sample of another role must not change that.
        // Only a machine with no configured counter (fed by templates) falls back to the roles seen.
        if spec.counters_configured != 0 {
            spec.counters_configured & 0b111
        } else {
            self.seen & 0b111
        }
    }

    /// True while the state is inferred from parts.
    pub fn parts_only(&self, spec: &MachineSpec) -> bool {
        spec.parts_only && self.seen & RUNNING_BIT == 0
    }

    /// The model's current state category.
    pub fn state(&self) -> StateCategory {
        self.state
    }

    fn set_state(&mut self, at: i64, state: StateCategory, emit: &mut impl FnMut(MachineEvent)) {
        if self.state != state {
            self.state = state;
            emit(MachineEvent::State { at, state });
        }
    }

    /// Time up to which the state is determined, given that every sample before `wm` was applied.
    pub fn settled_until(&self, spec: &MachineSpec, wm: i64) -> i64 {
        match (self.parts_only(spec), self.state, self.last_part) {
            (true, StateCategory::Running, Some(l)) => l.min(wm),
            _ => wm,
        }
    }

    /// Parts-only machines: once no part came in `(last, last + stop_after]` and `now` is past that,
    /// the machine is stopped since its last part.
    pub fn infer(&mut self, spec: &MachineSpec, now: i64, emit: &mut impl FnMut(MachineEvent)) {
        if !self.parts_only(spec) || self.state != StateCategory::Running {
            return;
        }
        if let Some(l) = self.last_part {
            if now > l.saturating_add(spec.stop_after_ms as i64) {
                self.set_state(l, StateCategory::Stopped, emit);
            }
        }
    }

    /// The agent was not running: state unknown from `at`, counters re-baselined.
    pub fn mark_unknown(&mut self, at: i64, emit: &mut impl FnMut(MachineEvent)) {
        for c in &mut self.counters {
            c.forget();
        }
        self.last_part = None;
        self.set_state(at, StateCategory::Unknown, emit);
    }

    /// Apply one item (in time order).
    pub fn apply(&mut self, spec: &MachineSpec, item: &Item, emit: &mut impl FnMut(MachineEvent)) {
        let at = item.ts;
        match item.signal {
            Signal::Running | Signal::State => {
                self.seen |= RUNNING_BIT;
                let state = match item.val {
                    Val::Bool(true) => StateCategory::Running,
                    Val::Bool(false) => StateCategory::Stopped,
                    Val::State(c) => c,
                    _ => StateCategory::Unknown,
                };
                self.set_state(at, state, emit);
            }
            Signal::TotalCount | Signal::GoodCount | Signal::RejectCount => {
                let role = match item.signal {
                    Signal::TotalCount => TOTAL,
                    Signal::GoodCount => GOOD,
                    _ => REJECT,
                };
                self.seen |= 1 << role;
                let value = match item.val {
                    Val::Int(i) => Some(i),
                    _ => None,
                };
                let parts_only = self.parts_only(spec);
                if parts_only {
                    self.infer(spec, at, emit);
                }
                let step = self.counters[role].observe(value, spec.moduli[role]);
                match step {
                    None => {
                        if parts_only && role == self.main_role(spec) {
                            self.last_part = None;
                            self.set_state(at, StateCategory::Unknown, emit);
                        }
                    }
                    Some(Step::Baseline) => {
                        if parts_only && self.state == StateCategory::Unknown {
                            self.last_part = Some(at);
                            self.set_state(at, StateCategory::Running, emit);
                        }
                    }
                    Some(step) => {
                        match step {
                            Step::Reset(_) => warn!(
                                machine = %spec.id, signal = %item.signal, value = ?value,
                                "counter dropped with no known width: counted as a reset"
                            ),
                            // A known-width wrap is normal operation, not a warning.
                            Step::Rollover(d) => tracing::info!(
                                machine = %spec.id, signal = %item.signal, parts = d,
                                "counter rolled over"
                            ),
                            _ => {}
                        }
                        if parts_only && step.parts() > 0 {
                            self.last_part = Some(at);
                            self.set_state(at, StateCategory::Running, emit);
                        }
                        emit(MachineEvent::Count { at, role, step });
                    }
                }
            }
            Signal::Product => {
                if let Val::Code(p) = item.val {
                    emit(MachineEvent::Product { at, product: p });
                }
            }
            Signal::Reason => emit(MachineEvent::Reason {
                at,
                reason: match item.val {
                    Val::Code(c) => Some(c),
                    _ => None,
                },
            }),
        }
    }

    fn main_role(&self, spec: &MachineSpec) -> usize {
        let mask = self.counter_mask(spec);
        if mask & 1 != 0 {
            TOTAL
        } else if mask & 2 != 0 {
            GOOD
        } else {
            REJECT
        }
    }
}

/// Derive the three counts from the roles present (`mask`): any two given, or only total (good = total).
/// Never negative: a derived count that would be negative is 0.
pub fn derive_counts(mask: u8, total: u64, good: u64, reject: u64) -> (u64, u64, u64) {
    match mask & 0b111 {
        0b111 => (total, good, reject),
        0b101 => (total, total.saturating_sub(reject), reject),
        0b011 => (total, good, total.saturating_sub(good)),
        0b110 => (good.saturating_add(reject), good, reject),
        0b001 => (total, total, 0),
        0b010 => (good, good, 0),
        0b100 => (reject, 0, reject),
        _ => (0, 0, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> MachineSpec {
        let m: MachineConfig = serde_json::from_value(serde_json::json!({
            "id": "m", "ideal_cycle_time": "2s",
            "state_codes": {"1": "running", "2": "stopped", "IDLE": "planned_stop"},
            "signals": {"state": {}, "total_count": {}, "reject_count": {}}
        }))
        .unwrap();
        MachineSpec::from_config(&m)
    }

    #[test]
    fn state_codes_map_numbers_and_words_and_unmapped_codes_are_unknown() {
        let sp = spec();
        let mut m = ModelState::default();
        assert_eq!(
            m.decode(&sp, Signal::State, Some(&Value::Int(2))),
            Val::State(StateCategory::Stopped)
        );
        assert_eq!(
            m.decode(&sp, Signal::State, Some(&Value::Text("IDLE".into()))),
            Val::State(StateCategory::PlannedStop)
        );
        assert_eq!(
            m.decode(&sp, Signal::State, Some(&Value::Float(1.0))),
            Val::State(StateCategory::Running)
        );
        assert_eq!(
            m.decode(&sp, Signal::State, Some(&Value::Int(9))),
            Val::Invalid
        );
        let mut evs = Vec::new();
        let item = Item {
            ts: 0,
            signal: Signal::State,
            val: Val::Invalid,
        };
        m.state = StateCategory::Running;
        m.apply(&sp, &item, &mut |e| evs.push(e));
        assert_eq!(
            evs,
            vec![MachineEvent::State {
                at: 0,
                state: StateCategory::Unknown
            }]
        );
    }

    #[test]
    fn counter_width_comes_from_rollover_or_the_register_type() {
        let sig = |v: serde_json::Value| -> SignalConfig { serde_json::from_value(v).unwrap() };
        assert_eq!(
            counter_modulus(&sig(
                serde_json::json!({"register": "holding", "address": 1})
            )),
            Some(65536)
        );
        assert_eq!(
            counter_modulus(&sig(
                serde_json::json!({"register": "input", "address": 1, "type": "u32"})
            )),
            Some(1 << 32)
        );
        assert_eq!(
            counter_modulus(&sig(
                serde_json::json!({"register": "holding", "address": 1, "type": "i32"})
            )),
            None
        );
        assert_eq!(
            counter_modulus(&sig(serde_json::json!({"topic": "a/b"}))),
            None
        );
        assert_eq!(
            counter_modulus(&sig(serde_json::json!({"topic": "a/b", "rollover": 10000}))),
            Some(10000)
        );
    }

    #[test]
    fn codes_are_interned_and_bounded() {
        let mut c = Interner::default();
        let a = c.intern(&Value::Int(7));
        assert_eq!(
            c.intern(&Value::Text("7".into())),
            a,
            "7 and \"7\" are one code"
        );
        assert_eq!(c.name(a), "7");
        for i in 0..3 * MAX_CODES as i64 {
            c.intern(&Value::Int(1000 + i));
        }
        let x = c.intern(&Value::Text("brand new".into()));
        assert_eq!(c.name(x), OVERFLOW_CODE);
        assert!(c.names.len() <= MAX_CODES + 1);
    }

    #[test]
    fn two_counters_given_derive_the_third_never_negative() {
        assert_eq!(derive_counts(0b101, 100, 0, 3), (100, 97, 3));
        assert_eq!(derive_counts(0b011, 100, 90, 0), (100, 90, 10));
        assert_eq!(derive_counts(0b110, 0, 90, 10), (100, 90, 10));
        assert_eq!(derive_counts(0b001, 100, 0, 0), (100, 100, 0));
        assert_eq!(derive_counts(0b101, 2, 0, 5), (2, 0, 5));
    }
}
