//! The task of one endpoint (TCP host:port or serial bus): its units polled in turn, each at its own
//! interval, with per-request timeouts, reconnects with back-off, `null` on failure, recovery logs.

use std::future::poll_fn;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use jiff::Timestamp;
use rand::Rng;
use tokio::time::{timeout, Instant, Interval, MissedTickBehavior};
use tokio_modbus::client::{Context, Reader};
use tokio_modbus::prelude::SlaveContext;
use tokio_modbus::Slave;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::Parity;
use crate::sample::{Sample, SampleSender, Value, SAMPLE_CHANNEL_CAPACITY};

use super::plan::{Endpoint, ReadRequest, UnitPlan};
use super::Counters;

/// Back-off cap after repeated failures.
const BACKOFF_CAP: Duration = Duration::from_secs(30);
/// Back-off base (smaller when the poll interval is smaller).
const BACKOFF_BASE: Duration = Duration::from_millis(100);
/// At most one warning per device in this window; the others are counted and reported with the next.
const WARN_EVERY: Duration = Duration::from_secs(30);

/// Exponential back-off with jitter (each delay drawn in [½, 1] × base·2ⁿ, capped).
#[derive(Debug)]
struct Backoff {
    base: Duration,
    attempts: u32,
    until: Option<Instant>,
}

impl Backoff {
    fn blocked(&self, now: Instant) -> bool {
        self.until.is_some_and(|u| now < u)
    }
    fn fail(&mut self, now: Instant) {
        let exp = self.base.saturating_mul(1u32 << self.attempts.min(16));
        let full = exp.min(BACKOFF_CAP);
        let jitter: f64 = rand::rng().random_range(0.5..=1.0);
        self.until = Some(now + full.mul_f64(jitter));
        self.attempts = self.attempts.saturating_add(1);
    }
    fn succeed(&mut self) {
        self.attempts = 0;
        self.until = None;
    }
}

/// Rate limiter of warnings: one per window, with a count of the ones suppressed.
#[derive(Debug, Default)]
struct WarnLimiter {
    last: Option<Instant>,
    suppressed: u64,
}

impl WarnLimiter {
    /// `Some(suppressed since last)` when a warning may be logged now.
    fn allow(&mut self, now: Instant) -> Option<u64> {
        if self
            .last
            .is_some_and(|l| now.duration_since(l) < WARN_EVERY)
        {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

/// One unit (machine) of an endpoint and its polling state.
pub(super) struct Unit {
    plan: UnitPlan,
    /// `None` for a zero interval: always due.
    ticker: Option<Interval>,
    failures: u32,
    nulled: bool,
    backoff: Backoff,
    warn: WarnLimiter,
    counters: Arc<Counters>,
}

impl Unit {
    /// Units are phase-shifted by their index so many devices do not all fire at the same instant.
    pub(super) fn new(plan: UnitPlan, index: usize, total: usize, counters: Arc<Counters>) -> Self {
        let slots = total.clamp(1, 16);
        let phase = plan.interval.mul_f64((index % slots) as f64 / slots as f64);
        // Skip: a late poll (slow device, busy bus) is not followed by a burst of catch-up polls that
        // would hammer the device and crowd samples together; the schedule stays on the grid.
        let ticker = (!plan.interval.is_zero()).then(|| {
            let mut t = tokio::time::interval_at(Instant::now() + phase, plan.interval);
            t.set_missed_tick_behavior(MissedTickBehavior::Skip);
            t
        });
        let base = plan.interval.min(BACKOFF_BASE);
        Unit {
            plan,
            ticker,
            failures: 0,
            nulled: false,
            backoff: Backoff {
                base,
                attempts: 0,
                until: None,
            },
            warn: WarnLimiter::default(),
            counters,
        }
    }
}

/// The connection (TCP socket or serial port) of an endpoint, opened lazily.
struct Conn {
    endpoint: Endpoint,
    ctx: Option<Context>,
    /// Silent time between RTU frames (3.5 characters); zero for TCP.
    frame_gap: Duration,
    last_io: Option<Instant>,
}

impl Conn {
    fn new(endpoint: Endpoint) -> Self {
        let frame_gap = match &endpoint {
            Endpoint::Tcp { .. } => Duration::ZERO,
            Endpoint::Rtu {
                baud,
                parity,
                data_bits,
                stop_bits,
                ..
            } => rtu_frame_gap(*baud, *parity, *data_bits, *stop_bits),
        };
        Conn {
            endpoint,
            ctx: None,
            frame_gap,
            last_io: None,
        }
    }

    async fn open(&mut self, unit: u8, limit: Duration) -> std::io::Result<&mut Context> {
        if self.ctx.is_none() {
            let ctx = match &self.endpoint {
                Endpoint::Tcp { host, port } => {
                    let stream = timeout(
                        limit,
                        tokio::net::TcpStream::connect((host.as_str(), *port)),
                    )
                    .await
                    .map_err(|_| {
                        std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out")
                    })??;
                    stream.set_nodelay(true)?;
                    tokio_modbus::client::tcp::attach_slave(stream, Slave(unit))
                }
                Endpoint::Rtu {
                    path,
                    baud,
                    parity,
                    data_bits,
                    stop_bits,
                } => {
                    let builder = tokio_serial::new(path.as_str(), *baud)
                        .parity(match parity {
                            Parity::None => tokio_serial::Parity::None,
                            Parity::Even => tokio_serial::Parity::Even,
                            Parity::Odd => tokio_serial::Parity::Odd,
                        })
                        .data_bits(if *data_bits == 7 {
                            tokio_serial::DataBits::Seven
                        } else {
                            tokio_serial::DataBits::Eight
                        })
                        .stop_bits(if *stop_bits == 2 {
                            tokio_serial::StopBits::Two
                        } else {
                            tokio_serial::StopBits::One
                        });
                    let port = tokio_serial::SerialStream::open(&builder)
                        .map_err(std::io::Error::other)?;
                    tokio_modbus::client::rtu::attach_slave(port, Slave(unit))
                }
            };
            debug!(endpoint = %self.endpoint, "connected");
            self.ctx = Some(ctx);
        }
        match self.ctx.as_mut() {
            Some(c) => {
                c.set_slave(Slave(unit));
                Ok(c)
            }
            None => Err(std::io::Error::other("no connection")),
        }
    }

    /// When the next frame may start (RTU silence after the last one).
    fn next_frame_at(&self) -> Option<Instant> {
        self.last_io
            .filter(|_| !self.frame_gap.is_zero())
            .map(|last| last + self.frame_gap)
    }
}

/// Modbus RTU t3.5: 3.5 character times (fixed 1.75 ms above 19200 baud, as the spec says).
pub(super) fn rtu_frame_gap(baud: u32, parity: Parity, data_bits: u8, stop_bits: u8) -> Duration {
    if baud > 19_200 || baud == 0 {
        return Duration::from_micros(1750);
    }
    let bits = 1 + u32::from(data_bits) + u32::from(parity != Parity::None) + u32::from(stop_bits);
    Duration::from_secs_f64(3.5 * f64::from(bits) / f64::from(baud))
}

enum Data {
    Bits(Vec<bool>),
    Words(Vec<u16>),
}

async fn read(ctx: &mut Context, r: &ReadRequest) -> tokio_modbus::Result<Data> {
    use crate::config::RegisterKind as K;
    Ok(match r.kind {
        K::Coil => ctx.read_coils(r.start, r.count).await?.map(Data::Bits),
        K::Discrete => ctx
            .read_discrete_inputs(r.start, r.count)
            .await?
            .map(Data::Bits),
        K::Holding => ctx
            .read_holding_registers(r.start, r.count)
            .await?
            .map(Data::Words),
        K::Input => ctx
            .read_input_registers(r.start, r.count)
            .await?
            .map(Data::Words),
    })
}

/// Poll the units of one endpoint until cancelled (or the sample channel closes).
pub(super) async fn run_endpoint(
    endpoint: Endpoint,
    mut units: Vec<Unit>,
    tx: SampleSender,
    cancel: CancellationToken,
    total: Arc<Counters>,
) {
    if units.is_empty() {
        return;
    }
    let mut conn = Conn::new(endpoint);
    let mut cursor = 0usize;
    loop {
        let n = units.len();
        // Scan from a rotating start so every due unit gets its turn.
        let due = poll_fn(|cx| {
            for k in 0..n {
                let i = (cursor + k) % n;
                let ready = match units[i].ticker.as_mut() {
                    Some(t) => t.poll_tick(cx),
                    None => Poll::Ready(Instant::now()),
                };
                if let Poll::Ready(t) = ready {
                    return Poll::Ready((i, t));
                }
            }
            Poll::Pending
        });
        let (i, scheduled) = tokio::select! {
            _ = cancel.cancelled() => return,
            d = due => d,
        };
        cursor = (i + 1) % n;
        let unit = &mut units[i];
        let late = Instant::now().saturating_duration_since(scheduled);
        if !unit.plan.interval.is_zero() && late >= unit.plan.interval {
            let missed = (late.as_nanos() / unit.plan.interval.as_nanos().max(1)) as u64;
            unit.counters
                .missed_ticks
                .fetch_add(missed, Ordering::Relaxed);
            total.missed_ticks.fetch_add(missed, Ordering::Relaxed);
        }
        let samples = tokio::select! {
            _ = cancel.cancelled() => return,
            s = poll_unit(&mut conn, unit, &total) => s,
        };
        let n = samples.len() as u64;
        if !samples.is_empty() {
            // One wait for room for the whole poll, then the sends do not wait.
            let permits = tokio::select! {
                _ = cancel.cancelled() => return,
                r = tx.reserve_many(samples.len().min(SAMPLE_CHANNEL_CAPACITY)) => r,
            };
            let Ok(permits) = permits else { return };
            for (permit, s) in permits.zip(samples) {
                permit.send(s);
            }
        }
        unit.counters.samples.fetch_add(n, Ordering::Relaxed);
        total.samples.fetch_add(n, Ordering::Relaxed);
        // A back-to-back unit in back-off waits it out instead of spinning.
        if let (None, Some(until)) = (unit.ticker.as_ref(), unit.backoff.until) {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tokio::time::sleep_until(until) => {}
            }
        }
    }
}

fn bump(a: &Counters, b: &Counters, f: impl Fn(&Counters) -> &std::sync::atomic::AtomicU64) {
    f(a).fetch_add(1, Ordering::Relaxed);
    f(b).fetch_add(1, Ordering::Relaxed);
}

/// One poll of one unit: every read in turn; returns the samples to emit.
async fn poll_unit(conn: &mut Conn, unit: &mut Unit, total: &Counters) -> Vec<Sample> {
    let plan = &unit.plan;
    let mut out = Vec::with_capacity(plan.signals.len());
    let mut failure: Option<String> = None;
    for r in &plan.reads {
        let now = Instant::now();
        if unit.backoff.blocked(now) {
            failure = Some("waiting to reconnect".into());
            break;
        }
        if let Some(at) = conn.next_frame_at() {
            tokio::time::sleep_until(at).await;
        }
        let ctx = match conn.open(plan.unit, plan.timeout).await {
            Ok(c) => c,
            Err(e) => {
                conn.last_io = Some(Instant::now());
                failure = Some(format!("connect to {}: {e}", conn.endpoint));
                unit.backoff.fail(Instant::now());
                break;
            }
        };
        bump(&unit.counters, total, |c| &c.requests);
        let t0 = Instant::now();
        let res = timeout(plan.timeout, read(ctx, r)).await;
        conn.last_io = Some(Instant::now());
        let ts = Timestamp::now();
        match res {
            Ok(Ok(Ok(data))) => {
                let us = t0.elapsed().as_micros() as u64;
                unit.counters.last_latency_us.store(us, Ordering::Relaxed);
                total.last_latency_us.store(us, Ordering::Relaxed);
                for &si in &r.signals {
                    let s = &plan.signals[si];
                    let off = usize::from(s.address - r.start);
                    let value = match &data {
                        Data::Bits(b) => b.get(off).and_then(|&b| s.decoder.decode_bit(b)),
                        Data::Words(w) => w.get(off..).and_then(|w| s.decoder.decode_words(w)),
                    };
                    out.push(Sample::new(ts, plan.machine.clone(), s.signal, value));
                }
            }
            Ok(Ok(Err(exc))) => {
                bump(&unit.counters, total, |c| &c.exceptions);
                if let Some(suppressed) = unit.warn.allow(Instant::now()) {
                    warn!(device = %plan.machine, unit = plan.unit, function = r.function_code(),
                        start = r.start, count = r.count, exception = %exc, suppressed,
                        "Modbus exception; the signals of this read are null");
                }
                out.extend(r.signals.iter().map(|&si| null(ts, plan, si)));
            }
            Ok(Err(e)) => {
                conn.ctx = None;
                failure = Some(format!("{e}"));
                unit.backoff.fail(Instant::now());
                break;
            }
            Err(_) => {
                conn.ctx = None;
                failure = Some(format!("no answer within {:?}", plan.timeout));
                unit.backoff.fail(Instant::now());
                break;
            }
        }
    }
    match failure {
        None => {
            unit.backoff.succeed();
            if unit.nulled {
                info!(device = %plan.machine, "poll recovered");
            }
            unit.failures = 0;
            unit.nulled = false;
        }
        Some(why) => {
            bump(&unit.counters, total, |c| &c.failures);
            unit.failures = unit.failures.saturating_add(1);
            if let Some(suppressed) = unit.warn.allow(Instant::now()) {
                warn!(device = %plan.machine, unit = plan.unit, failures = unit.failures,
                    suppressed, error = %why, "poll failed");
            }
            if unit.failures >= plan.fail_after && !unit.nulled {
                unit.nulled = true;
                let ts = Timestamp::now();
                out.clear();
                out.extend((0..plan.signals.len()).map(|si| null(ts, plan, si)));
            }
        }
    }
    out
}

fn null(ts: Timestamp, plan: &UnitPlan, si: usize) -> Sample {
    Sample::new(
        ts,
        plan.machine.clone(),
        plan.signals[si].signal,
        None::<Value>,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtu_gap_is_three_and_a_half_characters() {
        let g = rtu_frame_gap(9600, Parity::None, 8, 1);
        assert!((g.as_secs_f64() - 3.5 * 10.0 / 9600.0).abs() < 1e-9);
        assert_eq!(
            rtu_frame_gap(115_200, Parity::Even, 8, 1),
            Duration::from_micros(1750)
        );
    }

    #[test]
    fn backoff_grows_with_jitter_up_to_the_cap() {
        let mut b = Backoff {
            base: Duration::from_millis(100),
            attempts: 0,
            until: None,
        };
        let now = Instant::now();
        let mut last = Duration::ZERO;
        for n in 0..20u32 {
            b.fail(now);
            let d = b.until.map(|u| u - now).unwrap_or_default();
            let full = Duration::from_millis(100)
                .saturating_mul(1 << n.min(16))
                .min(BACKOFF_CAP);
            assert!(d >= full / 2 && d <= full, "attempt {n}: {d:?} vs {full:?}");
            last = d;
        }
        assert!(last >= BACKOFF_CAP / 2);
        assert!(b.blocked(now));
        b.succeed();
        assert!(!b.blocked(now));
    }

    #[test]
    fn warnings_are_rate_limited_with_a_suppressed_count() {
        let mut w = WarnLimiter::default();
        let t = Instant::now();
        assert_eq!(w.allow(t), Some(0));
        assert_eq!(w.allow(t + Duration::from_secs(1)), None);
        assert_eq!(w.allow(t + Duration::from_secs(2)), None);
        assert_eq!(w.allow(t + Duration::from_secs(31)), Some(2));
    }
}
