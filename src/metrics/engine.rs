//! The engine: samples in, state changes, closed hour/shift/day summaries and stop events out.
//!
//! Conventions (DESIGN.md §3; the reference scenarios check them), all in integer milliseconds:
//! - **Time.** The state in force from one state sample to the next is the machine's state over that span.
//!   Only *scheduled* time counts: inside a shift and outside its breaks (with no shift configured, every
//!   hour is scheduled, 24/7). planned = scheduled − planned stops − unknown; run = planned − downtime − setup.
//!   Before a machine's first sample, after a `null` state and while the agent was down (`mark_down`), the
//!   state is unknown.
//! - **Parts.** A counter delta observed at `t` belongs to the window with `start < t ≤ end` (the delta at
//!   14:00:00 counts in the shift ending at 14:00) and counts only when `t` lies in a shift (breaks
//!   included; anywhere with no shift configured), so hours add up to their shift. It is attributed to the
//!   product in production just before `t` (a product change stamped `t` applies to later deltas). With
//!   total and reject given, good = total − reject per window, 0 if rejects outrun totals in that window.
//! - **Stops.** A stop is *small* when its full span (start to the next state) is under
//!   `small_stop_threshold`: its scheduled time is run time, counted in `small_stop_count/_time_s`. Other
//!   unplanned stops are downtime, counted once (`downtime_count`) in the window holding their first
//!   scheduled instant. A stop is split by time over the windows it crosses and published once, when it
//!   ends, with its full span. Stops without any scheduled time (wholly inside a break or outside shifts)
//!   are neither counted nor published. Setup and planned stops are published too (never small). A reason
//!   code reported during the stop, or in the same poll as its start, is attached (last one wins).
//! - **Closing.** A window closes once every sample up to its end was applied (reorder window passed) and
//!   the state through its end is known: a stop in progress waits until it ends or reaches the threshold, a
//!   parts-only machine until a part arrives or `stop_after` passes. Live windows may therefore close up to
//!   `small_stop_threshold` (or `stop_after`) late; their figures are the same as in a replay.
//!   `close_until` (end of a replay) closes regardless: a stop still in progress is classified by its span
//!   so far.
//! - **Windows.** Hours are local clock hours; days local calendar days (23 h or 25 h over DST); shifts as
//!   configured, local times resolved with jiff's compatible disambiguation. Hour and day windows are
//!   emitted only when they overlap a shift (always with no shift configured).
//! - **Cycles.** `avg_cycle_time_s` = run / parts. A single cycle is observed when two consecutive part
//!   increments are both steps of one, with the machine running and the product unchanged in between; its
//!   time is the time between the two increments; a counter `null`, reset or rollover breaks the chain.
//!   p50/p90 are nearest-rank percentiles.
//! - **Counters.** A drop with a known width (`rollover:` or an unsigned register type) is a rollover, else
//!   a reset counting from 0; both are flagged on the window and logged. After `null`, a restart or
//!   `mark_down`, the next value is a new baseline (parts made meanwhile are not counted).

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use tracing::warn;

use super::calendar::{scheduled_overlap, Calendar, ShiftInstance};
use super::output::{Output, StateChange, StopEvent, Summary, WindowKind};
use super::window::{finalize, ts, Acc, MachineInfo, OpenWindow, F_LATE, F_RESET, F_ROLLOVER};
use super::EngineError;
use crate::config::{Config, StateCategory};
use crate::model::{
    Item, MachineEvent, MachineSpec, ModelState, ReorderBuffer, Step, Val, GOOD, TOTAL,
};
use crate::sample::{MachineId, Sample, Signal};

const HOUR: usize = 0;
const SHIFT: usize = 1;
const DAY: usize = 2;

/// What `ingest` did with a sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingested {
    /// Accepted: it changes (or will change, once released from the reorder buffer) the model state.
    Changed,
    /// An exact duplicate: ignored.
    Unchanged,
    /// Older than the reorder window: dropped and counted.
    Late,
    /// Not a configured machine.
    UnknownMachine,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum StopClass {
    Pending,
    Big,
    Small,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct StopTrack {
    cat: StateCategory,
    start: i64,
    class: StopClass,
    sched_ms: u64,
    marked: [bool; 3],
    product: u32,
    reason: Option<u32>,
}

/// Dynamic state of one machine (everything a snapshot must hold).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct MachineRt {
    started: bool,
    model: ModelState,
    buffer: ReorderBuffer,
    max_ts: i64,
    wm: i64,
    last_released: Vec<Option<Item>>,
    late: u64,
    state: StateCategory,
    prev_state: StateCategory,
    since: i64,
    acc_until: i64,
    product: u32,
    prev_product: u32,
    product_since: i64,
    reason: Option<(u32, i64)>,
    stop: Option<StopTrack>,
    last_inc: Option<(i64, bool)>,
    /// Windows per slot (hour, shift, day), oldest first: the last one reaches the present, older ones
    /// wait for the state through their end to be known.
    slots: [VecDeque<OpenWindow>; 3],
    /// End of the newest window pushed per slot.
    last_end: [i64; 3],
    /// No shift instance starts before this time (the calendar was searched up to it).
    shift_horizon: i64,
}

impl MachineRt {
    fn new() -> MachineRt {
        MachineRt {
            started: false,
            model: ModelState::default(),
            buffer: ReorderBuffer::default(),
            max_ts: i64::MIN,
            wm: i64::MIN,
            last_released: vec![None; Signal::ALL.len()],
            late: 0,
            state: StateCategory::Unknown,
            prev_state: StateCategory::Unknown,
            since: 0,
            acc_until: 0,
            product: 0,
            prev_product: 0,
            product_since: i64::MIN,
            reason: None,
            stop: None,
            last_inc: None,
            slots: [VecDeque::new(), VecDeque::new(), VecDeque::new()],
            last_end: [i64::MIN; 3],
            shift_horizon: i64::MIN,
        }
    }
}

/// Serializable state of the whole engine (open windows, reorder buffers, pending outputs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EngineSnapshot {
    /// Format version.
    pub version: u32,
    machines: Vec<(String, MachineRt)>,
    pending_out: Vec<Output>,
    #[serde(default)]
    last_now: Option<i64>,
}

/// Identity hasher for pointer keys.
#[derive(Default)]
struct PtrHasher(u64);
impl Hasher for PtrHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ *b as u64).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_usize(&mut self, n: usize) {
        self.0 = (n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}
type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<PtrHasher>>;

/// Static per-engine parameters.
struct Params {
    small_ms: i64,
    reorder_ms: i64,
}

/// The OEE engine over every configured machine. Pure: time enters only through arguments.
pub struct Engine {
    cal: Calendar,
    params: Params,
    ids: Vec<MachineId>,
    specs: Vec<MachineSpec>,
    by_ptr: FastMap<usize, u32>,
    by_name: FastMap<Box<str>, u32>,
    rts: Vec<MachineRt>,
    pending_out: Vec<Output>,
    /// `now` of the last tick (live runs): samples stamped far beyond it are refused.
    last_now: Option<i64>,
}

impl Engine {
    /// Build an engine for a configuration.
    pub fn new(config: &Config) -> Result<Engine, EngineError> {
        let cal = Calendar::new(config)?;
        let mut ids = Vec::with_capacity(config.machines.len());
        let mut specs = Vec::with_capacity(config.machines.len());
        let mut by_ptr = FastMap::default();
        let mut by_name = FastMap::default();
        for (i, m) in config.machines.iter().enumerate() {
            if by_name
                .insert(m.id.clone().into_boxed_str(), i as u32)
                .is_some()
            {
                return Err(EngineError::DuplicateMachine { id: m.id.clone() });
            }
            let id: MachineId = Arc::from(m.id.as_str());
            by_ptr.insert(Arc::as_ptr(&id) as *const u8 as usize, i as u32);
            ids.push(id);
            let mut spec = MachineSpec::from_config(m);
            // Machines fed by `mqtt_inputs` templates take their counters' `rollover` from the template.
            for (i, role) in [Signal::TotalCount, Signal::GoodCount, Signal::RejectCount]
                .into_iter()
                .enumerate()
            {
                if spec.moduli[i].is_none() {
                    spec.moduli[i] = config.counter_modulus(m, role);
                }
            }
            specs.push(spec);
        }
        Ok(Engine {
            cal,
            params: Params {
                small_ms: config.small_stop_threshold.as_millis() as i64,
                reorder_ms: config.reorder_window.as_millis() as i64,
            },
            rts: vec![MachineRt::new(); ids.len()],
            ids,
            specs,
            by_ptr,
            by_name,
            pending_out: Vec::new(),
            last_now: None,
        })
    }

    /// Rebuild an engine from a snapshot (machines no longer configured are dropped, new ones start fresh).
    pub fn restore(config: &Config, snap: EngineSnapshot) -> Result<Engine, EngineError> {
        if snap.version != SNAPSHOT_VERSION {
            return Err(EngineError::SnapshotVersion {
                found: snap.version,
                expected: SNAPSHOT_VERSION,
            });
        }
        let mut e = Engine::new(config)?;
        for (id, rt) in snap.machines {
            if let Some(&i) = e.by_name.get(id.as_str()) {
                e.rts[i as usize] = rt;
            }
        }
        e.pending_out = snap.pending_out;
        e.last_now = snap.last_now;
        Ok(e)
    }

    /// The whole state, for persistence.
    pub fn snapshot(&self) -> EngineSnapshot {
        EngineSnapshot {
            version: SNAPSHOT_VERSION,
            machines: self
                .specs
                .iter()
                .zip(&self.rts)
                .map(|(s, r)| (s.id.clone(), r.clone()))
                .collect(),
            pending_out: self.pending_out.clone(),
            last_now: self.last_now,
        }
    }

    /// The engine's interned id of a machine (samples built with it are looked up fastest).
    pub fn machine_id(&self, id: &str) -> Option<MachineId> {
        self.by_name.get(id).map(|&i| self.ids[i as usize].clone())
    }

    fn lookup(&self, id: &MachineId) -> Option<usize> {
        if let Some(&i) = self.by_ptr.get(&(Arc::as_ptr(id) as *const u8 as usize)) {
            return Some(i as usize);
        }
        self.by_name.get(&**id).map(|&i| i as usize)
    }

    fn split(&mut self, i: usize) -> (Ctx<'_>, &mut MachineRt) {
        (
            Ctx {
                cal: &self.cal,
                params: &self.params,
                spec: &self.specs[i],
                id: &self.ids[i],
            },
            &mut self.rts[i],
        )
    }

    fn ctx(&self, i: usize) -> Ctx<'_> {
        Ctx {
            cal: &self.cal,
            params: &self.params,
            spec: &self.specs[i],
            id: &self.ids[i],
        }
    }

    /// Feed one sample.
    pub fn ingest(&mut self, sample: &Sample, out: &mut Vec<Output>) -> Ingested {
        if !self.pending_out.is_empty() {
            out.append(&mut self.pending_out);
        }
        let Some(i) = self.lookup(&sample.machine) else {
            return Ingested::UnknownMachine;
        };
        let ts = sample.ts.as_millisecond();
        let future = self
            .last_now
            .is_some_and(|n| ts > n.saturating_add(FUTURE_TOLERANCE_MS));
        let (ctx, rt) = self.split(i);
        if future {
            rt.late += 1;
            if rt.late == 1 || rt.late.is_power_of_two() {
                warn!(machine = %ctx.spec.id, ts = %sample.ts, "sample stamped too far ahead of the clock: dropped");
            }
            return Ingested::Late;
        }
        let val = rt
            .model
            .decode(ctx.spec, sample.signal, sample.value.as_ref());
        let item = Item {
            ts,
            signal: sample.signal,
            val,
        };
        if ts < rt.wm {
            if rt.last_released[sample.signal as usize] == Some(item) {
                return Ingested::Unchanged;
            }
            rt.late += 1;
            if rt.late == 1 || rt.late.is_power_of_two() {
                warn!(machine = %ctx.spec.id, late = rt.late, "samples older than the reorder window dropped");
            }
            for w in rt.slots.iter_mut().flatten() {
                w.acc.flags |= F_LATE;
            }
            return Ingested::Late;
        }
        if !rt.buffer.insert(item) {
            return Ingested::Unchanged;
        }
        if ts > rt.max_ts {
            rt.max_ts = ts;
            let wm = ts.saturating_sub(ctx.params.reorder_ms);
            if wm > rt.wm {
                rt.wm = wm;
                rt.release(&ctx, wm, out);
                rt.advance(&ctx, wm, out);
            }
        }
        Ingested::Changed
    }

    /// Periodic call of live runs (every second): flush reorder buffers older than `now − reorder_window`,
    /// infer parts-only stops, close the windows that ended. A machine not heard from yet gets its windows
    /// opened at the first tick (unknown time until it speaks), so a silent machine still reports. Samples
    /// stamped more than 5 minutes after the latest `now` are dropped as late from then on.
    pub fn tick(&mut self, now: Timestamp, out: &mut Vec<Output>) {
        out.append(&mut self.pending_out);
        let now = now.as_millisecond();
        self.last_now = Some(self.last_now.map_or(now, |n| n.max(now)));
        for i in 0..self.rts.len() {
            let (ctx, rt) = self.split(i);
            let wm = now.saturating_sub(ctx.params.reorder_ms);
            if wm > rt.wm {
                rt.wm = wm;
            }
            let wm = rt.wm;
            rt.release(&ctx, wm, out);
            if !rt.started && rt.buffer.is_empty() {
                // A machine not heard from yet: its windows open now, unknown until it speaks.
                rt.init(&ctx, wm);
            }
            rt.advance(&ctx, wm, out);
        }
    }

    /// Close every window ending at or before `until` (end of a replay): buffered samples up to
    /// `until` are applied first, a stop in progress is classified by its span so far.
    pub fn close_until(&mut self, until: Timestamp, out: &mut Vec<Output>) {
        out.append(&mut self.pending_out);
        let until = until.as_millisecond();
        for i in 0..self.rts.len() {
            let (ctx, rt) = self.split(i);
            rt.release(&ctx, until.saturating_add(1), out);
            if !rt.started {
                continue;
            }
            rt.force_close(&ctx, until, out);
            rt.wm = rt.wm.max(until.saturating_add(1));
        }
    }

    /// The agent was not running over `[since, until)`: unknown time for every machine, and the state
    /// after it is unknown until a valid value arrives (counters re-baseline). Outputs come out of the
    /// next `ingest`/`tick`/`close_until`.
    pub fn mark_down(&mut self, since: Timestamp, until: Timestamp) {
        let (since, until) = (since.as_millisecond(), until.as_millisecond());
        let mut out = std::mem::take(&mut self.pending_out);
        for i in 0..self.rts.len() {
            let (ctx, rt) = self.split(i);
            rt.release(&ctx, i64::MAX, &mut out);
            if !rt.started {
                continue;
            }
            // Samples applied after `since` (released from the buffer just now) stand.
            let at = since.max(rt.acc_until).max(rt.max_ts);
            let mut evs = Events::default();
            rt.model.mark_unknown(at, &mut |e| evs.push(e));
            rt.last_inc = None;
            for e in evs.iter() {
                rt.on_event(&ctx, e, &mut out);
            }
            rt.max_ts = rt.max_ts.max(until);
            rt.wm = rt.wm.max(until);
            let wm = rt.wm;
            rt.advance(&ctx, wm, &mut out);
        }
        self.pending_out = out;
    }

    /// Shift to date per machine (`WindowKind::Current`), for `oee/current`. Machines outside any shift
    /// (or not yet heard from) are left out; with no shift configured, the day to date.
    pub fn current(&self, now: Timestamp) -> Vec<Summary> {
        let now = now.as_millisecond();
        (0..self.rts.len())
            .filter_map(|i| self.rts[i].current(&self.ctx(i), now))
            .collect()
    }

    /// Last state of every machine heard from, for the live table.
    pub fn live_states(&self) -> Vec<StateChange> {
        (0..self.rts.len())
            .filter(|&i| self.rts[i].started)
            .map(|i| self.rts[i].state_change(&self.ctx(i)))
            .collect()
    }

    /// Samples dropped as late, per machine id.
    pub fn late_counts(&self) -> Vec<(MachineId, u64)> {
        self.ids
            .iter()
            .cloned()
            .zip(self.rts.iter().map(|r| r.late))
            .collect()
    }
}

/// Version of `EngineSnapshot`.
pub const SNAPSHOT_VERSION: u32 = 1;

/// Live runs: samples stamped more than this ahead of the last tick's `now` are dropped (a device clock
/// far ahead would otherwise push the machine's reorder watermark into the future).
const FUTURE_TOLERANCE_MS: i64 = 5 * 60_000;

/// How far the calendar is searched for the next shift before giving up for that long.
const SHIFT_HORIZON_MS: i64 = 400 * 86_400_000;

struct Ctx<'a> {
    cal: &'a Calendar,
    params: &'a Params,
    spec: &'a MachineSpec,
    id: &'a MachineId,
}

/// Up to four model events from one item, on the stack.
#[derive(Default)]
struct Events {
    n: usize,
    e: [Option<MachineEvent>; 4],
}

impl Events {
    fn push(&mut self, e: MachineEvent) {
        if self.n < self.e.len() {
            self.e[self.n] = Some(e);
            self.n += 1;
        }
    }
    fn iter(&self) -> impl Iterator<Item = MachineEvent> + '_ {
        self.e[..self.n].iter().flatten().copied()
    }
}

fn is_stop(c: StateCategory) -> bool {
    matches!(
        c,
        StateCategory::Stopped | StateCategory::Setup | StateCategory::PlannedStop
    )
}

impl MachineRt {
    fn init(&mut self, ctx: &Ctx<'_>, t: i64) {
        self.started = true;
        let (hs, he) = ctx.cal.hour_window(t);
        let (ds, de) = ctx.cal.day_window(t);
        self.slots[HOUR].push_back(OpenWindow::new(WindowKind::Hour, hs, he));
        self.slots[DAY].push_back(OpenWindow::new(WindowKind::Day, ds, de));
        self.last_end = [he, i64::MIN, de];
        let mut first = hs.min(ds);
        match ctx.cal.shift_at_or_after(t) {
            Some(i) => {
                first = first.min(i.start.min(t));
                self.last_end[SHIFT] = i.end;
                self.slots[SHIFT].push_back(shift_window(i));
            }
            None => self.shift_horizon = t.saturating_add(SHIFT_HORIZON_MS),
        }
        self.acc_until = first;
        self.since = first;
        self.state = StateCategory::Unknown;
        self.prev_state = StateCategory::Unknown;
    }

    /// Open windows so that every slot has one containing `t` (`start < t ≤ end`).
    fn ensure(&mut self, ctx: &Ctx<'_>, t: i64) {
        while self.last_end[HOUR] < t {
            let (s, e) = ctx.cal.next_hour(self.last_end[HOUR]);
            self.slots[HOUR].push_back(OpenWindow::new(WindowKind::Hour, s, e));
            self.last_end[HOUR] = e;
        }
        while self.last_end[DAY] < t {
            let s = self.last_end[DAY];
            let e = ctx.cal.day_window(s).1.max(s + 1);
            self.slots[DAY].push_back(OpenWindow::new(WindowKind::Day, s, e));
            self.last_end[DAY] = e;
        }
        if ctx.cal.all_day() {
            return;
        }
        while self.last_end[SHIFT] < t && self.shift_horizon < t {
            let from = self.last_end[SHIFT].max(self.shift_horizon);
            match ctx.cal.next_shift(from) {
                Some(i) => {
                    self.last_end[SHIFT] = i.end;
                    self.slots[SHIFT].push_back(shift_window(i));
                }
                None => self.shift_horizon = from.saturating_add(SHIFT_HORIZON_MS),
            }
        }
    }

    /// Apply buffered items older than `before`, in time order.
    fn release(&mut self, ctx: &Ctx<'_>, before: i64, out: &mut Vec<Output>) {
        while let Some(item) = self.buffer.pop_before(before) {
            self.last_released[item.signal as usize] = Some(item);
            self.process(ctx, &item, out);
        }
    }

    fn process(&mut self, ctx: &Ctx<'_>, item: &Item, out: &mut Vec<Output>) {
        if !self.started {
            self.init(ctx, item.ts);
        }
        if item.signal.is_counter() && !matches!(item.val, Val::Int(_)) {
            // No valid counter value: the chain of single cycles is broken.
            self.last_inc = None;
        }
        self.advance(ctx, item.ts, out);
        let mut evs = Events::default();
        self.model.apply(ctx.spec, item, &mut |e| evs.push(e));
        for e in evs.iter() {
            self.on_event(ctx, e, out);
        }
    }

    /// Everything before `now` is applied: infer, classify, close windows ending before `now`.
    fn advance(&mut self, ctx: &Ctx<'_>, now: i64, out: &mut Vec<Output>) {
        if !self.started {
            return;
        }
        let mut evs = Events::default();
        self.model.infer(ctx.spec, now, &mut |e| evs.push(e));
        for e in evs.iter() {
            self.on_event(ctx, e, out);
        }
        self.classify_due(ctx, now);
        self.ensure(ctx, now);
        let settled = self.model.settled_until(ctx.spec, now);
        while let Some((k, end)) = self.next_close() {
            if end >= now || end > settled {
                break;
            }
            if self
                .stop
                .as_ref()
                .is_some_and(|s| s.class == StopClass::Pending && s.start < end)
            {
                break;
            }
            self.close(ctx, k, out);
        }
    }

    fn force_close(&mut self, ctx: &Ctx<'_>, until: i64, out: &mut Vec<Output>) {
        let mut evs = Events::default();
        self.model.infer(ctx.spec, until, &mut |e| evs.push(e));
        for e in evs.iter() {
            self.on_event(ctx, e, out);
        }
        if let Some(s) = &self.stop {
            if s.class == StopClass::Pending && s.start < until {
                let big = until - s.start >= ctx.params.small_ms;
                self.classify(big);
            }
        }
        self.ensure(ctx, until);
        while let Some((k, end)) = self.next_close() {
            if end > until {
                break;
            }
            self.close(ctx, k, out);
        }
    }

    /// The slot whose oldest window ends first.
    fn next_close(&self) -> Option<(usize, i64)> {
        let mut best: Option<(usize, i64)> = None;
        for (k, q) in self.slots.iter().enumerate() {
            if let Some(w) = q.front() {
                if best.is_none_or(|(_, e)| w.end < e) {
                    best = Some((k, w.end));
                }
            }
        }
        best
    }

    fn close(&mut self, ctx: &Ctx<'_>, k: usize, out: &mut Vec<Output>) {
        let Some(end) = self.slots[k].front().map(|w| w.end) else {
            return;
        };
        self.account(ctx, end);
        let Some(w) = self.slots[k].pop_front() else {
            return;
        };
        if k == SHIFT || ctx.cal.all_day() || w.acc.shift_ms > 0 {
            let info = MachineInfo {
                id: ctx.id,
                spec: ctx.spec,
                codes: &self.model.codes,
                mask: self.model.counter_mask(ctx.spec),
            };
            out.push(Output::Summary(finalize(&w, w.kind, w.end, &info)));
        }
    }

    fn classify_due(&mut self, ctx: &Ctx<'_>, now: i64) {
        if let Some(s) = &self.stop {
            if s.class == StopClass::Pending && now - s.start >= ctx.params.small_ms {
                self.classify(true);
            }
        }
    }

    fn classify(&mut self, big: bool) {
        let Some(stop) = self.stop.as_mut() else {
            return;
        };
        if stop.class != StopClass::Pending {
            return;
        }
        stop.class = if big {
            StopClass::Big
        } else {
            StopClass::Small
        };
        let product = stop.product;
        for w in self.slots.iter_mut().flatten() {
            w.acc.settle_pending(big, product);
        }
    }

    /// Distribute `[acc_until, t)` of the current state into the open windows.
    fn account(&mut self, ctx: &Ctx<'_>, t: i64) {
        let a = self.acc_until;
        if t <= a {
            return;
        }
        self.ensure(ctx, t);
        self.acc_until = t;
        let all_day = ctx.cal.all_day();
        let shifts = &self.slots[SHIFT];
        // (scheduled, in-shift) ms of [x, y) and the name of a shift it touches.
        let sched = |x: i64, y: i64| -> (i64, i64, Option<&str>) {
            if all_day {
                return (y - x, y - x, None);
            }
            let mut r = (0, 0, None);
            for w in shifts {
                let (s, i) = overlap(w, x, y);
                if i > 0 {
                    r.0 += s;
                    r.1 += i;
                    r.2 = r.2.or(w.shift.as_deref());
                }
            }
            r
        };
        if let Some(s) = self.stop.as_mut() {
            s.sched_ms += sched(a, t).0 as u64;
        }
        let mut parts: Vec<(usize, usize, i64, i64, Option<String>)> = Vec::new();
        for (k, q) in self.slots.iter().enumerate() {
            for (j, w) in q.iter().enumerate() {
                let x = a.max(w.start);
                let y = t.min(w.end);
                if y > x {
                    let (s, i, name) = sched(x, y);
                    let name = (k == HOUR && i > 0 && w.shift.is_none())
                        .then(|| name.map(str::to_owned))
                        .flatten();
                    parts.push((k, j, s, i, name));
                }
            }
        }
        for (k, j, sched, in_shift, name) in parts {
            let w = &mut self.slots[k][j];
            if in_shift > 0 {
                w.acc.shift_ms += in_shift as u64;
                if name.is_some() {
                    w.shift = name;
                }
            }
            if sched > 0 {
                add_state(
                    &mut w.acc,
                    k,
                    sched as u64,
                    self.state,
                    self.product,
                    self.stop.as_mut(),
                );
            }
        }
    }

    fn on_event(&mut self, ctx: &Ctx<'_>, e: MachineEvent, out: &mut Vec<Output>) {
        match e {
            MachineEvent::State { at, state } => self.change_state(ctx, at, state, out),
            MachineEvent::Count { at, role, step } => self.count(ctx, at, role, step),
            MachineEvent::Product { at, product } => {
                if product != self.product {
                    // A parts-only machine may already be stopped since its last part without knowing it yet:
                    // account only up to what is settled, so a stop inferred later still dates from that part.
                    let settled = self.model.settled_until(ctx.spec, at);
                    self.account(ctx, settled);
                    self.prev_product = self.product;
                    self.product = product;
                    self.product_since = at;
                    self.last_inc = None;
                }
            }
            MachineEvent::Reason { at, reason } => {
                self.reason = reason.map(|r| (r, at));
                if let (Some(r), Some(s)) = (reason, self.stop.as_mut()) {
                    s.reason = Some(r);
                }
            }
        }
    }

    fn change_state(
        &mut self,
        ctx: &Ctx<'_>,
        at: i64,
        state: StateCategory,
        out: &mut Vec<Output>,
    ) {
        if state == self.state {
            return;
        }
        let at = at.max(self.acc_until);
        self.account(ctx, at);
        if self
            .stop
            .as_ref()
            .is_some_and(|s| s.class == StopClass::Pending)
        {
            let big = self
                .stop
                .as_ref()
                .is_some_and(|s| at - s.start >= ctx.params.small_ms);
            self.classify(big);
        }
        if let Some(stop) = self.stop.take() {
            if stop.sched_ms > 0 {
                out.push(Output::Stop(StopEvent {
                    machine: ctx.id.clone(),
                    line: ctx.spec.line.clone(),
                    start: ts(stop.start),
                    end: ts(at),
                    duration_s: (at - stop.start) as f64 / 1000.0,
                    category: stop.cat,
                    reason: stop.reason.map(|r| self.model.codes.name(r).to_owned()),
                    reason_text: stop
                        .reason
                        .and_then(|r| ctx.spec.reason_text(self.model.codes.name(r))),
                    small_stop: stop.class == StopClass::Small,
                }));
            }
        }
        self.prev_state = self.state;
        self.state = state;
        self.since = at;
        self.last_inc = None;
        if is_stop(state) {
            self.stop = Some(StopTrack {
                cat: state,
                start: at,
                class: if state == StateCategory::Stopped && ctx.params.small_ms > 0 {
                    StopClass::Pending
                } else {
                    StopClass::Big
                },
                sched_ms: 0,
                marked: [false; 3],
                product: self.product,
                reason: self.reason.filter(|(_, t)| *t == at).map(|(r, _)| r),
            });
        }
        out.push(Output::State(self.state_change(ctx)));
    }

    fn state_change(&self, ctx: &Ctx<'_>) -> StateChange {
        StateChange {
            machine: ctx.id.clone(),
            line: ctx.spec.line.clone(),
            ts: ts(self.since),
            state: self.state,
            previous: self.prev_state,
            product: (self.product != 0).then(|| self.model.codes.name(self.product).to_owned()),
            reason: self
                .stop
                .as_ref()
                .and_then(|s| s.reason)
                .map(|r| self.model.codes.name(r).to_owned()),
        }
    }

    fn count(&mut self, ctx: &Ctx<'_>, at: i64, role: usize, step: Step) {
        let flag = match step {
            Step::Reset(_) => F_RESET,
            Step::Rollover(_) => F_ROLLOVER,
            _ => 0,
        };
        let parts = step.parts();
        self.ensure(ctx, at);
        let in_shift = ctx.cal.all_day()
            || self.slots[SHIFT]
                .iter()
                .any(|w| w.start < at && at <= w.end);
        let product = if at <= self.product_since {
            self.prev_product
        } else {
            self.product
        };
        let mask = self.model.counter_mask(ctx.spec);
        let main = if mask & 1 != 0 { TOTAL } else { GOOD };
        let mut cycle = None;
        let single = matches!(step, Step::Delta(1));
        if role == main && parts > 0 {
            if let Some((last, one)) = self.last_inc {
                if single
                    && one
                    && self.state == StateCategory::Running
                    && self.since <= last
                    && self.product_since <= last
                {
                    cycle = u32::try_from(at - last).ok();
                }
            }
            self.last_inc = Some((at, single));
        }
        for w in self.slots.iter_mut().flatten() {
            if !(w.start < at && at <= w.end) {
                continue;
            }
            w.acc.flags |= flag;
            if !in_shift {
                continue;
            }
            w.acc.counts[role] = w.acc.counts[role].saturating_add(parts);
            let p = w.acc.product(product);
            p.counts[role] = p.counts[role].saturating_add(parts);
            if let Some(c) = cycle {
                p.cycles += 1;
                w.acc.add_cycle(c);
            }
        }
    }

    fn current(&self, ctx: &Ctx<'_>, now: i64) -> Option<Summary> {
        if !self.started {
            return None;
        }
        let k = if ctx.cal.all_day() { DAY } else { SHIFT };
        let w = self.slots[k]
            .iter()
            .rev()
            .find(|w| w.start <= now && (now <= w.end || k == DAY))?;
        let mut w = w.clone();
        let mut stop = self.stop.clone();
        if let Some(s) = stop.as_mut() {
            if s.class == StopClass::Pending {
                let big = now - s.start >= ctx.params.small_ms;
                s.class = if big {
                    StopClass::Big
                } else {
                    StopClass::Small
                };
                w.acc.settle_pending(big, s.product);
            }
        }
        let y = now.min(w.end);
        let x = self.acc_until.max(w.start);
        if y > x {
            let (sched, in_shift) = if ctx.cal.all_day() {
                (y - x, y - x)
            } else {
                overlap(&w, x, y)
            };
            w.acc.shift_ms += in_shift as u64;
            if sched > 0 {
                add_state(
                    &mut w.acc,
                    k,
                    sched as u64,
                    self.state,
                    self.product,
                    stop.as_mut(),
                );
            }
        }
        let info = MachineInfo {
            id: ctx.id,
            spec: ctx.spec,
            codes: &self.model.codes,
            mask: self.model.counter_mask(ctx.spec),
        };
        Some(finalize(&w, WindowKind::Current, now.max(w.start), &info))
    }
}

fn shift_window(i: ShiftInstance) -> OpenWindow {
    let mut w = OpenWindow::new(WindowKind::Shift, i.start, i.end);
    w.shift = Some(i.name);
    w.breaks = i.breaks;
    w
}

/// (scheduled, in-shift) ms of `[a, b)` in a shift window.
fn overlap(w: &OpenWindow, a: i64, b: i64) -> (i64, i64) {
    scheduled_overlap(w.start, w.end, &w.breaks, a, b)
}

fn add_state(
    acc: &mut Acc,
    k: usize,
    ms: u64,
    state: StateCategory,
    product: u32,
    stop: Option<&mut StopTrack>,
) {
    match state {
        StateCategory::Running => {
            acc.run_ms += ms;
            acc.product(product).run_ms += ms;
        }
        StateCategory::Stopped => {
            let Some(s) = stop else {
                acc.down_ms += ms;
                return;
            };
            let first = !s.marked[k];
            s.marked[k] = true;
            match s.class {
                StopClass::Pending => {
                    acc.pending_ms += ms;
                    acc.pending_mark |= first;
                }
                StopClass::Big => {
                    acc.down_ms += ms;
                    acc.down_count += first as u64;
                }
                StopClass::Small => {
                    acc.small_ms += ms;
                    acc.product(s.product).run_ms += ms;
                    acc.small_count += first as u64;
                }
            }
        }
        StateCategory::Setup => acc.setup_ms += ms,
        StateCategory::PlannedStop => acc.planned_stop_ms += ms,
        StateCategory::Unknown => acc.unknown_ms += ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_and_snapshot_can_move_between_threads() {
        fn send<T: Send + Sync>() {}
        send::<Engine>();
        send::<EngineSnapshot>();
    }
}
