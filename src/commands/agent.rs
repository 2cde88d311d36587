//! The daemon's pipeline, shared by `run` and `demo`: sources → engine → store → publisher,
//! with restart recovery, periodic snapshots and an ordered shutdown.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use jiff::Timestamp;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::Config;
use crate::metrics::{Engine, EngineSnapshot, Ingested, Output, StateChange, Summary};
use crate::publish::message::{current_message, to_message, Message};
use crate::publish::publisher::{self, StatusInfo};
use crate::sample::{sample_channel, Sample};
use crate::store::{Closed, OutMessage, StopRecord, StoreHandle, SummaryRecord};

/// How long the outbox may drain at shutdown before the agent exits anyway.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(5);
/// Samples handled per wake-up of the engine loop (one journal append per batch).
const BATCH: usize = 512;

/// What the live table of `demo` shows: every machine's state and its shift-to-date figures.
#[derive(Debug, Clone, Default)]
pub struct LiveView {
    /// Last state per machine.
    pub states: Vec<StateChange>,
    /// Shift-to-date summary per machine.
    pub current: Vec<Summary>,
    /// Rows waiting in the outbox.
    pub outbox: u64,
}

/// Everything the pipeline needs to start.
pub struct AgentSetup {
    /// Validated configuration.
    pub config: Arc<Config>,
    /// The configuration file's text, recorded in the store's config history.
    pub config_text: String,
    /// Receives the live view every second (for `demo`).
    pub live: Option<watch::Sender<LiveView>>,
}

/// Run until `cancel`, then shut down in pipeline order: sources stop, the engine closes what is due and writes its
/// snapshot, the outbox drains up to [`DRAIN_DEADLINE`], the store closes.
pub async fn run_agent(setup: AgentSetup, cancel: CancellationToken) -> anyhow::Result<()> {
    let cfg = setup.config;
    let started = Timestamp::now();
    let config_hash = cfg.hash();
    if let Some(dir) = cfg.storage.path.parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create the storage folder {}", dir.display()))?;
        }
    }
    let store = StoreHandle::open(&cfg.storage.path, &cfg.storage)
        .with_context(|| format!("cannot open the store {}", cfg.storage.path.display()))?;
    store
        .record_config(config_hash.clone(), setup.config_text, started)
        .await?;

    let mut engine = recover(&cfg, &store, started).await?;
    // Snapshot at once: a second crash before the first periodic snapshot must not replay across this outage
    // (which `mark_down` recorded only in memory).
    save_snapshot(&store, &engine).await?;
    let site = cfg.site.clone();
    let prefix = cfg.mqtt.topic_prefix.clone();

    // Publisher first, so the outbox left by a previous run starts draining at once.
    let pub_cancel = CancellationToken::new();
    let publisher: JoinHandle<()> = {
        let (mqtt, site, store, cancel) = (
            cfg.mqtt.clone(),
            site.clone(),
            store.clone(),
            pub_cancel.clone(),
        );
        let status = StatusInfo {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            config_hash: config_hash.clone(),
            started,
        };
        tokio::spawn(async move {
            // The publisher returns only on cancel or on an error of the store or the config; retry the former
            // with a pause rather than leave the outbox growing until the next restart.
            while !cancel.is_cancelled() {
                match publisher::run(
                    mqtt.clone(),
                    site.clone(),
                    store.clone(),
                    status.clone(),
                    cancel.clone(),
                )
                .await
                {
                    Ok(()) => break,
                    Err(e) => {
                        warn!(error = %e, "publisher stopped; restarting it in 5 s");
                        tokio::select! {
                            _ = cancel.cancelled() => break,
                            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                        }
                    }
                }
            }
        })
    };

    // Sources.
    let src_cancel = cancel.child_token();
    let (tx, mut rx) = sample_channel();
    let mut sources: Vec<JoinHandle<()>> = Vec::new();
    {
        let (c, t, k) = (cfg.clone(), tx.clone(), src_cancel.clone());
        sources.push(tokio::spawn(async move {
            if let Err(e) = crate::sources::modbus::run(c, t, k).await {
                warn!(error = %e, "modbus source stopped");
            }
        }));
        let (c, t, k) = (cfg.clone(), tx, src_cancel.clone());
        sources.push(tokio::spawn(async move {
            if let Err(e) = crate::sources::mqtt::run(c, t, k).await {
                warn!(error = %e, "mqtt input stopped");
            }
        }));
    }

    // Engine loop.
    let mut outputs: Vec<Output> = Vec::new();
    let mut journal: Vec<Sample> = Vec::with_capacity(BATCH);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut live_every =
        tokio::time::interval(cfg.live_interval.to_std().max(Duration::from_millis(100)));
    live_every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut snapshot_every = tokio::time::interval(
        cfg.storage
            .snapshot_interval
            .to_std()
            .max(Duration::from_secs(1)),
    );
    snapshot_every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    snapshot_every.tick().await;
    let mut buf: Vec<Sample> = Vec::with_capacity(BATCH);

    loop {
        // Timers first (biased): a flood of samples must never starve window closing or snapshots.
        // (The store thread enforces `storage.max_size` on its own.)
        tokio::select! {
            biased;
            _ = src_cancel.cancelled() => break,
            _ = tick.tick() => {
                engine.tick(Timestamp::now(), &mut outputs);
                emit(&store, &site, &prefix, &mut outputs).await?;
                if let Some(live) = &setup.live {
                    let outbox = store.outbox_len().await.unwrap_or(0);
                    live.send_replace(LiveView {
                        states: engine.live_states(),
                        current: engine.current(Timestamp::now()),
                        outbox,
                    });
                }
            }
            _ = live_every.tick() => {
                for s in engine.current(Timestamp::now()) {
                    store.set_live(out_message(&current_message(&site, &prefix, &s))).await?;
                }
            }
            _ = snapshot_every.tick() => {
                save_snapshot(&store, &engine).await?;
            }
            n = rx.recv_many(&mut buf, BATCH) => {
                if n == 0 { break; }
                for s in buf.drain(..) {
                    if engine.ingest(&s, &mut outputs) == Ingested::Changed {
                        journal.push(s);
                    }
                }
                if !journal.is_empty() {
                    store.append_journal(std::mem::take(&mut journal)).await?;
                }
                emit(&store, &site, &prefix, &mut outputs).await?;
            }
        }
    }

    // Shutdown in pipeline order.
    info!("stopping sources");
    src_cancel.cancel();
    for s in sources {
        let _ = tokio::time::timeout(Duration::from_secs(3), s).await;
    }
    rx.close();
    while let Some(s) = rx.recv().await {
        if engine.ingest(&s, &mut outputs) == Ingested::Changed {
            journal.push(s);
        }
    }
    engine.tick(Timestamp::now(), &mut outputs);
    if !journal.is_empty() {
        store.append_journal(std::mem::take(&mut journal)).await?;
    }
    emit(&store, &site, &prefix, &mut outputs).await?;
    save_snapshot(&store, &engine).await?;
    info!("engine snapshot written; draining the outbox");
    if !publisher::wait_drained(&store, DRAIN_DEADLINE).await? {
        let left = store.outbox_len().await.unwrap_or(0);
        warn!(
            left,
            "outbox not fully drained before the deadline; it is kept for the next start"
        );
    }
    pub_cancel.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(3), publisher).await;
    store.close().await?;
    info!("stopped");
    Ok(())
}

/// Restore the latest snapshot and re-ingest the journal written after it; the time the agent was down
/// becomes unknown time. Without a snapshot, a fresh engine.
async fn recover(cfg: &Config, store: &StoreHandle, now: Timestamp) -> anyhow::Result<Engine> {
    let Some(snap) = store.latest_snapshot().await? else {
        return Ok(Engine::new(cfg)?);
    };
    let state: EngineSnapshot = match serde_json::from_str(&snap.state) {
        Ok(s) => s,
        Err(e) => {
            warn!(error = %e, "engine snapshot unreadable; starting a fresh engine");
            return Ok(Engine::new(cfg)?);
        }
    };
    let mut engine = match Engine::restore(cfg, state) {
        Ok(e) => e,
        Err(e) => {
            warn!(error = %e, "engine snapshot does not fit this configuration; starting a fresh engine");
            return Ok(Engine::new(cfg)?);
        }
    };
    let journal = store.journal_after(snap.journal_id).await?;
    let mut last = snap.ts;
    let mut outputs = Vec::new();
    let replayed = journal.len();
    // The live engine was ticked every second; tick the replay too as event time advances, so windows close and
    // samples are judged against the clock they were taken under (not the snapshot's).
    let mut ticked = snap.ts;
    for s in &journal {
        if s.ts.duration_since(ticked).as_secs() >= 1 {
            engine.tick(s.ts, &mut outputs);
            ticked = s.ts;
        }
        engine.ingest(s, &mut outputs);
        last = last.max(s.ts);
    }
    // Outputs closed again during the replay were committed before the crash, or were not: the store keeps one
    // of each (unique msg_id), so commit them all.
    emit(store, &cfg.site, &cfg.mqtt.topic_prefix, &mut outputs).await?;
    if now > last {
        engine.mark_down(last, now);
    }
    info!(snapshot = %snap.ts, replayed, down_since = %last, "recovered engine state");
    Ok(engine)
}

async fn save_snapshot(store: &StoreHandle, engine: &Engine) -> anyhow::Result<()> {
    let json = serde_json::to_string(&engine.snapshot())?;
    store.save_snapshot(Timestamp::now(), json).await?;
    Ok(())
}

/// Commit closed summaries and stops (table + outbox, one transaction) and set the latest state values.
async fn emit(
    store: &StoreHandle,
    site: &str,
    prefix: &str,
    outputs: &mut Vec<Output>,
) -> anyhow::Result<()> {
    if outputs.is_empty() {
        return Ok(());
    }
    let mut closed = Vec::new();
    for o in outputs.drain(..) {
        let m = to_message(site, prefix, &o);
        match o {
            Output::State(_) => store.set_live(out_message(&m)).await?,
            Output::Summary(s) => closed.push(Closed::Summary {
                record: SummaryRecord {
                    machine: s.machine.to_string(),
                    kind: s.window.kind.as_str().to_owned(),
                    shift: s.window.shift.clone(),
                    start: s.window.start,
                    end: s.window.end,
                    payload: m.payload.to_string(),
                },
                message: out_message(&m),
            }),
            Output::Stop(s) => closed.push(Closed::Stop {
                record: StopRecord {
                    machine: s.machine.to_string(),
                    start: s.start,
                    end: s.end,
                    payload: m.payload.to_string(),
                },
                message: out_message(&m),
            }),
        }
    }
    if !closed.is_empty() {
        store.commit_closed(closed).await?;
    }
    Ok(())
}

/// The store's view of a message: serialized payload bytes.
pub fn out_message(m: &Message) -> OutMessage {
    OutMessage {
        topic: m.topic.clone(),
        qos: m.qos,
        retain: m.retain,
        msg_id: m.msg_id.clone(),
        payload: m.payload.to_string().into_bytes(),
    }
}
