//! Modbus TCP/RTU polling: request planning, decoding, faults; one task per TCP endpoint or serial bus.
//! Only function codes 1–4 (reads) are ever sent.

pub mod decode;
pub mod plan;
mod poll;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::sample::{MachineId, SampleSender};

/// Errors of the Modbus source: only configuration problems end it; device faults are data.
#[derive(Debug, thiserror::Error)]
pub enum ModbusError {
    /// A signal (or the source) of a machine cannot be read as configured.
    #[error("machine `{machine}`, signal `{signal}`: {message}")]
    Signal {
        /// Machine id.
        machine: String,
        /// Signal role (or `source`).
        signal: String,
        /// What is wrong.
        message: String,
    },
    /// A polling task ended abnormally.
    #[error("a Modbus polling task failed: {0}")]
    Task(String),
}

/// Counters of one device (or of the whole source). All relaxed atomics: cheap to bump and read.
#[derive(Debug, Default)]
pub struct Counters {
    /// Read requests sent.
    pub requests: AtomicU64,
    /// Polls that failed (timeout, transport error, device in back-off).
    pub failures: AtomicU64,
    /// Modbus exception responses.
    pub exceptions: AtomicU64,
    /// Polls that started a whole interval or more late (skipped ticks).
    pub missed_ticks: AtomicU64,
    /// Samples emitted.
    pub samples: AtomicU64,
    /// Latency of the last successful read, in microseconds.
    pub last_latency_us: AtomicU64,
}

/// A plain copy of [`Counters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CounterSnapshot {
    /// Read requests sent.
    pub requests: u64,
    /// Failed polls.
    pub failures: u64,
    /// Exception responses.
    pub exceptions: u64,
    /// Missed ticks.
    pub missed_ticks: u64,
    /// Samples emitted.
    pub samples: u64,
    /// Last latency (µs).
    pub last_latency_us: u64,
}

impl Counters {
    /// Copy the counters.
    pub fn snapshot(&self) -> CounterSnapshot {
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CounterSnapshot {
            requests: r(&self.requests),
            failures: r(&self.failures),
            exceptions: r(&self.exceptions),
            missed_ticks: r(&self.missed_ticks),
            samples: r(&self.samples),
            last_latency_us: r(&self.last_latency_us),
        }
    }
}

/// Cheap cloneable handle on the polling counters: a total and one set per machine.
#[derive(Debug, Clone, Default)]
pub struct PollStats {
    total: Arc<Counters>,
    devices: Arc<Mutex<BTreeMap<MachineId, Arc<Counters>>>>,
}

impl PollStats {
    /// A fresh handle.
    pub fn new() -> Self {
        Self::default()
    }
    /// Totals over every device.
    pub fn total(&self) -> CounterSnapshot {
        self.total.snapshot()
    }
    /// Per machine.
    pub fn devices(&self) -> BTreeMap<MachineId, CounterSnapshot> {
        match self.devices.lock() {
            Ok(m) => m.iter().map(|(k, v)| (k.clone(), v.snapshot())).collect(),
            Err(_) => BTreeMap::new(),
        }
    }
    fn register(&self, machine: &MachineId) -> Arc<Counters> {
        let c = Arc::new(Counters::default());
        if let Ok(mut m) = self.devices.lock() {
            m.insert(machine.clone(), c.clone());
        }
        c
    }
}

/// Poll every Modbus machine of `config` until `cancel`; samples go to `tx`.
pub async fn run(
    config: Arc<Config>,
    tx: SampleSender,
    cancel: CancellationToken,
) -> Result<(), ModbusError> {
    run_with_stats(config, tx, cancel, PollStats::new()).await
}

/// [`run`], counting into `stats` (for a health endpoint or a benchmark).
pub async fn run_with_stats(
    config: Arc<Config>,
    tx: SampleSender,
    cancel: CancellationToken,
    stats: PollStats,
) -> Result<(), ModbusError> {
    let endpoints = plan::plan_config(&config)?;
    let total_units: usize = endpoints.iter().map(|(_, u)| u.len()).sum();
    let mut tasks = tokio::task::JoinSet::new();
    let mut index = 0usize;
    for (ep, units) in endpoints {
        let units: Vec<poll::Unit> = units
            .into_iter()
            .map(|p| {
                let counters = stats.register(&p.machine);
                let u = poll::Unit::new(p, index, total_units, counters);
                index += 1;
                u
            })
            .collect();
        tasks.spawn(poll::run_endpoint(
            ep,
            units,
            tx.clone(),
            cancel.clone(),
            stats.total.clone(),
        ));
    }
    drop(tx);
    let mut result = Ok(());
    while let Some(r) = tasks.join_next().await {
        if let Err(e) = r {
            result = Err(ModbusError::Task(e.to_string()));
        }
    }
    result
}
