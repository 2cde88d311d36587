//! Open-window accumulators (integer milliseconds and counts) and their finalization into a `Summary`.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::output::{CycleStats, ProductSummary, Summary, Window, WindowKind};
use crate::model::{derive_counts, Interner, MachineSpec};
use crate::sample::MachineId;

/// A counter reset was seen in the window.
pub const F_RESET: u8 = 1;
/// A counter rollover was seen in the window.
pub const F_ROLLOVER: u8 = 2;
/// Late samples were dropped while the window was open.
pub const F_LATE: u8 = 4;

/// Data coverage under this share of the scheduled time is flagged `low_coverage`.
pub const LOW_COVERAGE: f64 = 0.9;

/// Per-product accumulator.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProdAcc {
    /// Interned product.
    pub product: u32,
    /// Run time (incl. small stops) while this product was in production.
    pub run_ms: u64,
    /// Raw counter sums per role.
    pub counts: [u64; 3],
    /// Observed single cycles (ms).
    pub cycles: u64,
}

/// Additive parts of one window.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acc {
    /// Scheduled time running.
    pub run_ms: u64,
    /// Stops at or over the threshold.
    pub down_ms: u64,
    /// Stops under the threshold (run time).
    pub small_ms: u64,
    /// Scheduled time of the stop in progress, not yet classified.
    pub pending_ms: u64,
    /// Setup.
    pub setup_ms: u64,
    /// Planned stops.
    pub planned_stop_ms: u64,
    /// No valid data.
    pub unknown_ms: u64,
    /// Time inside a shift (breaks included).
    pub shift_ms: u64,
    /// Stops counted as downtime (first scheduled instant here).
    pub down_count: u64,
    /// Small stops.
    pub small_count: u64,
    /// The unclassified stop in progress had its first scheduled instant here.
    pub pending_mark: bool,
    /// Raw counter sums per role.
    pub counts: [u64; 3],
    /// Per product.
    pub products: Vec<ProdAcc>,
    /// Observed single cycles: (duration ms, how many), sorted by duration (exact, and small: poll-timed
    /// cycles take few distinct values).
    pub cycles: Vec<(u32, u32)>,
    /// F_* bits.
    pub flags: u8,
}

impl Acc {
    /// The accumulator of a product, created when new.
    pub fn product(&mut self, product: u32) -> &mut ProdAcc {
        let i = match self.products.iter().position(|p| p.product == product) {
            Some(i) => i,
            None => {
                self.products.push(ProdAcc {
                    product,
                    ..ProdAcc::default()
                });
                self.products.len() - 1
            }
        };
        &mut self.products[i]
    }

    /// Record one observed single cycle.
    pub fn add_cycle(&mut self, ms: u32) {
        match self.cycles.binary_search_by_key(&ms, |c| c.0) {
            Ok(i) => self.cycles[i].1 += 1,
            Err(i) => self.cycles.insert(i, (ms, 1)),
        }
    }

    /// Classify the pending stop part: downtime (`big`) or small stop (run time of `product`).
    pub fn settle_pending(&mut self, big: bool, product: u32) {
        let p = std::mem::take(&mut self.pending_ms);
        let mark = std::mem::take(&mut self.pending_mark);
        if big {
            self.down_ms += p;
            self.down_count += mark as u64;
        } else {
            self.small_ms += p;
            if p > 0 {
                self.product(product).run_ms += p;
            }
            self.small_count += mark as u64;
        }
    }
}

/// An open window of one machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenWindow {
    /// hour, shift or day.
    pub kind: WindowKind,
    /// Start (ms).
    pub start: i64,
    /// End (ms).
    pub end: i64,
    /// Shift name (the shift itself, or the shift an hour overlaps).
    pub shift: Option<String>,
    /// For shift windows: breaks (ms).
    pub breaks: Vec<(i64, i64)>,
    /// Accumulated parts.
    pub acc: Acc,
}

impl OpenWindow {
    /// A fresh window.
    pub fn new(kind: WindowKind, start: i64, end: i64) -> OpenWindow {
        OpenWindow {
            kind,
            start,
            end,
            shift: None,
            breaks: Vec::new(),
            acc: Acc::default(),
        }
    }
}

/// The additive fields from which every ratio is computed (ratio of sums).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Additive {
    /// Planned time.
    pub planned_ms: u64,
    /// Run time (incl. small stops).
    pub run_ms: u64,
    /// Downtime.
    pub down_ms: u64,
    /// Setup.
    pub setup_ms: u64,
    /// Planned stops.
    pub planned_stop_ms: u64,
    /// Unknown.
    pub unknown_ms: u64,
    /// Downtime stops.
    pub down_count: u64,
    /// Small stops.
    pub small_count: u64,
    /// Small stop time.
    pub small_ms: u64,
    /// Parts.
    pub total: u64,
    /// Good parts.
    pub good: u64,
    /// Rejects.
    pub reject: u64,
    /// Σ ideal × parts; `None` when some counted product has no ideal cycle time.
    pub ideal_ms: Option<u64>,
}

fn ratio(n: u64, d: u64) -> Option<f64> {
    (d > 0).then(|| n as f64 / d as f64)
}

fn secs(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

/// Fill the ratio and additive fields of `s` from `a` (shared by windows and aggregation).
pub fn apply_additive(s: &mut Summary, a: &Additive) {
    s.planned_time_s = secs(a.planned_ms);
    s.run_time_s = secs(a.run_ms);
    s.downtime_s = secs(a.down_ms);
    s.setup_time_s = secs(a.setup_ms);
    s.planned_stop_s = secs(a.planned_stop_ms);
    s.unknown_time_s = secs(a.unknown_ms);
    let scheduled = a.planned_ms + a.planned_stop_ms + a.unknown_ms;
    s.data_coverage = ratio(scheduled - a.unknown_ms, scheduled);
    s.downtime_count = a.down_count;
    s.small_stop_count = a.small_count;
    s.small_stop_time_s = secs(a.small_ms);
    s.total_count = a.total;
    s.good_count = a.good;
    s.reject_count = a.reject;
    s.ideal_time_s = secs(a.ideal_ms.unwrap_or(0));
    s.availability = ratio(a.run_ms, a.planned_ms);
    s.performance = a.ideal_ms.and_then(|i| ratio(i, a.run_ms));
    s.quality = ratio(a.good, a.total);
    s.oee = match (s.availability, s.performance, s.quality) {
        (Some(x), Some(y), Some(z)) => Some(x * y * z),
        _ => None,
    };
    s.avg_cycle_time_s = (a.total > 0).then(|| secs(a.run_ms) / a.total as f64);
    s.mtbf_s = (a.down_count > 0).then(|| secs(a.run_ms) / a.down_count as f64);
    s.mttr_s = (a.down_count > 0).then(|| secs(a.down_ms) / a.down_count as f64);
    let mut add = |f: &str, on: bool| {
        if on && !s.flags.iter().any(|x| x == f) {
            s.flags.push(f.to_owned());
        }
    };
    add(
        "performance_over_100",
        s.performance.is_some_and(|p| p > 1.0),
    );
    add(
        "low_coverage",
        s.data_coverage.is_some_and(|c| c < LOW_COVERAGE),
    );
    add("no_ideal_cycle_time", a.ideal_ms.is_none());
}

/// Nearest-rank percentile of (value, count) pairs sorted by value, `n` values in all.
fn percentile(sorted: &[(u32, u32)], n: u64, p: f64) -> u32 {
    let rank = ((p * n as f64).ceil() as u64).clamp(1, n.max(1));
    let mut seen = 0u64;
    for &(v, c) in sorted {
        seen += c as u64;
        if seen >= rank {
            return v;
        }
    }
    sorted.last().map_or(0, |c| c.0)
}

/// Everything finalization needs about the machine.
pub struct MachineInfo<'a> {
    /// Machine id.
    pub id: &'a MachineId,
    /// Static spec.
    pub spec: &'a MachineSpec,
    /// Interned codes.
    pub codes: &'a Interner,
    /// Counter roles present.
    pub mask: u8,
}

/// Turn a window into its summary (`kind`/`end` may be overridden for `current`).
pub fn finalize(w: &OpenWindow, kind: WindowKind, end: i64, m: &MachineInfo<'_>) -> Summary {
    let a = &w.acc;
    let (total, good, reject) = derive_counts(m.mask, a.counts[0], a.counts[1], a.counts[2]);
    let mut ideal_ms = Some(0u64);
    let mut products = Vec::with_capacity(a.products.len());
    for p in &a.products {
        let name = m.codes.name(p.product);
        let ideal = m.spec.ideal_of(name);
        let (pt, pg, pr) = derive_counts(m.mask, p.counts[0], p.counts[1], p.counts[2]);
        if pt > 0 {
            ideal_ms = match (ideal_ms, ideal) {
                (Some(s), Some(i)) => Some(s.saturating_add(i.saturating_mul(pt))),
                _ => None,
            };
        }
        if pt == 0 && p.run_ms == 0 && pg == 0 && pr == 0 {
            continue;
        }
        products.push(ProductSummary {
            product: name.to_owned(),
            ideal_cycle_time_s: secs(ideal.unwrap_or(0)),
            total_count: pt,
            good_count: pg,
            reject_count: pr,
            run_time_s: secs(p.run_ms),
            avg_cycle_time_s: (pt > 0).then(|| secs(p.run_ms) / pt as f64),
        });
    }
    let add = Additive {
        planned_ms: a.run_ms + a.small_ms + a.down_ms + a.pending_ms + a.setup_ms,
        run_ms: a.run_ms + a.small_ms,
        down_ms: a.down_ms + a.pending_ms,
        setup_ms: a.setup_ms,
        planned_stop_ms: a.planned_stop_ms,
        unknown_ms: a.unknown_ms,
        down_count: a.down_count,
        small_count: a.small_count,
        small_ms: a.small_ms,
        total,
        good,
        reject,
        ideal_ms: if total == 0 { Some(0) } else { ideal_ms },
    };
    let cycle_time = (!a.cycles.is_empty()).then(|| {
        let c = &a.cycles;
        let n: u64 = c.iter().map(|x| x.1 as u64).sum();
        CycleStats {
            cycles: n,
            p50_s: secs(percentile(c, n, 0.5) as u64),
            p90_s: secs(percentile(c, n, 0.9) as u64),
            max_s: secs(c.last().map_or(0, |x| x.0) as u64),
        }
    });
    let mut flags = Vec::new();
    for (bit, name) in [
        (F_RESET, "counter_reset"),
        (F_ROLLOVER, "counter_rollover"),
        (F_LATE, "late_samples_dropped"),
    ] {
        if a.flags & bit != 0 {
            flags.push(name.to_owned());
        }
    }
    let mut s = Summary {
        machine: m.id.clone(),
        line: m.spec.line.clone(),
        window: Window {
            kind,
            shift: w.shift.clone(),
            start: ts(w.start),
            end: ts(end),
        },
        planned_time_s: 0.0,
        run_time_s: 0.0,
        downtime_s: 0.0,
        setup_time_s: 0.0,
        planned_stop_s: 0.0,
        unknown_time_s: 0.0,
        data_coverage: None,
        downtime_count: 0,
        small_stop_count: 0,
        small_stop_time_s: 0.0,
        total_count: 0,
        good_count: 0,
        reject_count: 0,
        ideal_time_s: 0.0,
        availability: None,
        performance: None,
        quality: None,
        oee: None,
        avg_cycle_time_s: None,
        cycle_time,
        mtbf_s: None,
        mttr_s: None,
        products,
        flags,
    };
    apply_additive(&mut s, &add);
    s
}

/// Milliseconds → timestamp (saturating to the epoch on nonsense).
pub fn ts(ms: i64) -> Timestamp {
    Timestamp::from_millisecond(ms).unwrap_or(Timestamp::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank_over_counted_values() {
        let mut a = Acc::default();
        for ms in [
            10_000, 10_000, 10_000, 10_000, 10_000, 10_000, 10_000, 10_000, 20_000, 30_000,
        ] {
            a.add_cycle(ms);
        }
        assert_eq!(a.cycles, vec![(10_000, 8), (20_000, 1), (30_000, 1)]);
        assert_eq!(percentile(&a.cycles, 10, 0.5), 10_000);
        assert_eq!(percentile(&a.cycles, 10, 0.9), 20_000);
        assert_eq!(percentile(&a.cycles, 10, 1.0), 30_000);
    }
}
