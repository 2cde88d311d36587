//! Raw cumulative counters → part deltas: rollover by known width, reset when the width is unknown.

use serde::{Deserialize, Serialize};

/// What one counter reading meant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// First value after start or after `null`: a baseline, not a delta.
    Baseline,
    /// Ordinary increase (or zero).
    Delta(u64),
    /// The counter wrapped at its known modulus; the delta is `(new − old) mod modulus`.
    Rollover(u64),
    /// The counter dropped and its width is unknown: a reset, the new value counts from 0.
    Reset(u64),
}

impl Step {
    /// Parts counted by this step.
    pub fn parts(self) -> u64 {
        match self {
            Step::Baseline => 0,
            Step::Delta(d) | Step::Rollover(d) | Step::Reset(d) => d,
        }
    }
}

/// One cumulative counter's last raw value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counter {
    last: Option<i64>,
}

impl Counter {
    /// Forget the last value: the next reading is a baseline.
    pub fn forget(&mut self) {
        self.last = None;
    }

    /// True once a baseline is held.
    pub fn has_baseline(&self) -> bool {
        self.last.is_some()
    }

    /// Read a new raw value (`None` = no valid value). Never yields a negative count.
    pub fn observe(&mut self, value: Option<i64>, modulus: Option<u64>) -> Option<Step> {
        let Some(new) = value else {
            self.last = None;
            return None;
        };
        let step = match self.last {
            None => Step::Baseline,
            Some(old) if new >= old => Step::Delta((new as i128 - old as i128) as u64),
            Some(old) => match modulus {
                Some(m) if m > 0 => {
                    Step::Rollover((new as i128 - old as i128).rem_euclid(m as i128) as u64)
                }
                _ => Step::Reset(new.max(0) as u64),
            },
        };
        self.last = Some(new);
        Some(step)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_value_is_a_baseline_not_a_delta() {
        let mut c = Counter::default();
        assert_eq!(c.observe(Some(52000), None), Some(Step::Baseline));
        assert_eq!(c.observe(Some(52003), None), Some(Step::Delta(3)));
    }

    #[test]
    fn sixteen_bit_rollover_counts_the_wrapped_parts() {
        let mut c = Counter::default();
        c.observe(Some(65530), Some(65536));
        assert_eq!(c.observe(Some(4), Some(65536)), Some(Step::Rollover(10)));
    }

    #[test]
    fn drop_without_known_width_is_a_reset_counting_from_zero() {
        let mut c = Counter::default();
        c.observe(Some(1000), None);
        assert_eq!(c.observe(Some(7), None), Some(Step::Reset(7)));
        assert_eq!(c.observe(Some(-3), None), Some(Step::Reset(0)));
    }

    #[test]
    fn null_makes_the_next_value_a_baseline() {
        let mut c = Counter::default();
        c.observe(Some(10), None);
        assert_eq!(c.observe(None, None), None);
        assert_eq!(c.observe(Some(500), None), Some(Step::Baseline));
    }
}
