//! What the engine hands downstream (store, publish): state changes, closed summaries, ended stops.
//! The field names are the dashboard contract of DESIGN.md §4.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::config::StateCategory;
use crate::sample::MachineId;

/// Kind of summary window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowKind {
    /// A clock hour (in the plant's zone; a half-hour-offset zone gives half-hour boundaries in UTC).
    Hour,
    /// A shift of the calendar.
    Shift,
    /// A local calendar day.
    Day,
    /// Shift to date (`oee/current`), not closed.
    Current,
}

impl WindowKind {
    /// snake_case name, also the topic leaf (`oee/hour`).
    pub fn as_str(self) -> &'static str {
        match self {
            WindowKind::Hour => "hour",
            WindowKind::Shift => "shift",
            WindowKind::Day => "day",
            WindowKind::Current => "current",
        }
    }
}

/// The window a summary covers: `[start, end)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Window {
    /// hour, shift, day or current.
    pub kind: WindowKind,
    /// Shift name, when the window lies in (or is) a shift.
    pub shift: Option<String>,
    /// Start (inclusive).
    pub start: Timestamp,
    /// End (exclusive); for `current`, the time of the figures.
    pub end: Timestamp,
}

/// Per-product part of a summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProductSummary {
    /// Product code or name (`default` when the machine reports none).
    pub product: String,
    /// Ideal cycle time of this product.
    pub ideal_cycle_time_s: f64,
    /// Parts of this product.
    pub total_count: u64,
    /// Good parts.
    pub good_count: u64,
    /// Rejected parts.
    pub reject_count: u64,
    /// Run time while this product was in production.
    pub run_time_s: f64,
    /// run_time / total_count for this product; `None` without parts.
    #[serde(default)]
    pub avg_cycle_time_s: Option<f64>,
}

/// Distribution of single observed cycles (counter steps of one between polls).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CycleStats {
    /// Cycles observed.
    pub cycles: u64,
    /// Median.
    pub p50_s: f64,
    /// 90th percentile.
    pub p90_s: f64,
    /// Longest.
    pub max_s: f64,
}

/// OEE summary of one machine over one window (DESIGN.md §3–§4). Ratios are `None` (JSON `null`) when undefined.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Machine id.
    pub machine: MachineId,
    /// Line of the machine.
    pub line: String,
    /// The window.
    pub window: Window,
    /// Window − breaks − planned stops − unknown time.
    pub planned_time_s: f64,
    /// planned − downtime − setup.
    pub run_time_s: f64,
    /// Unplanned stops at or over the small-stop threshold.
    pub downtime_s: f64,
    /// Changeover time.
    pub setup_time_s: f64,
    /// Planned stops (excluded from planned time).
    pub planned_stop_s: f64,
    /// Time with no valid data (excluded from planned time).
    pub unknown_time_s: f64,
    /// Share of the scheduled time (window − breaks) with valid data; `None` when nothing was scheduled.
    pub data_coverage: Option<f64>,
    /// Unplanned stops counted as downtime (starting in this window).
    pub downtime_count: u64,
    /// Stops under the small-stop threshold (counted as run time).
    pub small_stop_count: u64,
    /// Their time.
    pub small_stop_time_s: f64,
    /// All parts.
    pub total_count: u64,
    /// Good parts.
    pub good_count: u64,
    /// Rejected parts.
    pub reject_count: u64,
    /// Σ ideal cycle time × parts, over products.
    pub ideal_time_s: f64,
    /// run / planned.
    pub availability: Option<f64>,
    /// ideal / run (not clamped; flagged above 1).
    pub performance: Option<f64>,
    /// good / total.
    pub quality: Option<f64>,
    /// availability × performance × quality.
    pub oee: Option<f64>,
    /// run / total.
    pub avg_cycle_time_s: Option<f64>,
    /// Single-cycle distribution, when observable.
    pub cycle_time: Option<CycleStats>,
    /// Mean time between failures (run time / unplanned stops).
    pub mtbf_s: Option<f64>,
    /// Mean time to repair (downtime / unplanned stops).
    pub mttr_s: Option<f64>,
    /// Per-product breakdown.
    pub products: Vec<ProductSummary>,
    /// Data-quality and plausibility flags (`performance_over_100`, `low_coverage`, `counter_reset`, …).
    pub flags: Vec<String>,
}

/// A stop that ended, with its full span (published once, even when it crossed windows).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StopEvent {
    /// Machine id.
    pub machine: MachineId,
    /// Line of the machine.
    pub line: String,
    /// Start.
    pub start: Timestamp,
    /// End.
    pub end: Timestamp,
    /// end − start.
    pub duration_s: f64,
    /// stopped, setup or planned_stop.
    pub category: StateCategory,
    /// Reason code, when one was reported during the stop.
    pub reason: Option<String>,
    /// Reason text from the machine's `reasons` map.
    pub reason_text: Option<String>,
    /// True when shorter than the small-stop threshold.
    pub small_stop: bool,
}

/// A machine's state changed (retained `…/state`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateChange {
    /// Machine id.
    pub machine: MachineId,
    /// Line of the machine.
    pub line: String,
    /// When the new state began.
    pub ts: Timestamp,
    /// New state.
    pub state: StateCategory,
    /// Previous state.
    pub previous: StateCategory,
    /// Product in production.
    pub product: Option<String>,
    /// Current stop reason code.
    pub reason: Option<String>,
}

/// One thing the engine produced (rare: per state change or window, so the size gap is harmless).
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Output {
    /// State change (retained).
    State(StateChange),
    /// Closed hour/shift/day summary.
    Summary(Summary),
    /// Ended stop.
    Stop(StopEvent),
}
