//! `StoreHandle`: the `Store` on its own OS thread, driven through a bounded command channel.
//! Journal appends are batched and committed at least every `commit_interval`; other writes commit at once.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use tokio::sync::{mpsc, oneshot, Notify};

use super::db::{
    Closed, DropReport, OutMessage, OutboxRow, Snapshot, Store, StoredStop, StoredSummary,
};
use super::StoreError;
use crate::config::StorageConfig;
use crate::sample::Sample;

/// Capacity of the command channel.
const COMMANDS: usize = 1024;
/// Journal rows buffered before a commit even when `commit_interval` has not passed.
const JOURNAL_BATCH: usize = 8192;
/// How often the size bound is enforced by the store thread.
const SIZE_CHECK_EVERY: Duration = Duration::from_secs(30);

type Job = Box<dyn FnOnce(&mut Store) + Send>;

enum Cmd {
    Journal(Vec<Sample>),
    Call(Job),
    Tick,
    Close(oneshot::Sender<Result<(), StoreError>>),
}

/// Cheap-to-clone async front of the store thread.
#[derive(Debug, Clone)]
pub struct StoreHandle {
    tx: mpsc::Sender<Cmd>,
    notify: Arc<Notify>,
}

impl std::fmt::Debug for Cmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Cmd::Journal(_) => "Journal",
            Cmd::Call(_) => "Call",
            Cmd::Tick => "Tick",
            Cmd::Close(_) => "Close",
        })
    }
}

impl StoreHandle {
    /// Open the file (errors surface here) and start the store thread.
    pub fn open(path: &Path, cfg: &StorageConfig) -> Result<StoreHandle, StoreError> {
        let store = Store::open(path, cfg)?;
        let (tx, rx) = mpsc::channel(COMMANDS);
        let commit_every = cfg.commit_interval.to_std().max(Duration::from_millis(10));
        let max_bytes = cfg.max_size.0;
        std::thread::Builder::new()
            .name("store".into())
            .spawn(move || store_thread(store, rx, commit_every, max_bytes))
            .map_err(|e| StoreError::Io(path.to_path_buf(), e))?;
        let weak = tx.downgrade();
        std::thread::Builder::new()
            .name("store-tick".into())
            .spawn(move || loop {
                std::thread::sleep(commit_every / 4);
                match weak.upgrade() {
                    Some(tx) => {
                        if tx.is_closed() {
                            break;
                        }
                        // A full channel means the store thread is busy and will check its timer anyway.
                        let _ = tx.try_send(Cmd::Tick);
                    }
                    None => break,
                }
            })
            .map_err(|e| StoreError::Io(path.to_path_buf(), e))?;
        Ok(StoreHandle {
            tx,
            notify: Arc::new(Notify::new()),
        })
    }

    /// Woken whenever outbox or live rows are committed (the publisher waits on it).
    pub fn outbox_notify(&self) -> Arc<Notify> {
        self.notify.clone()
    }

    /// Run `f` on the store thread (after any buffered journal rows are committed) and return its result.
    pub async fn call<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Store) -> Result<R, StoreError> + Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let job: Job = Box::new(move |s| {
            let _ = reply.send(f(s));
        });
        self.tx
            .send(Cmd::Call(job))
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Queue samples for the journal; they are committed within `commit_interval` (or sooner in large batches).
    /// Waits only when the command channel is full (back-pressure).
    pub async fn append_journal(&self, samples: Vec<Sample>) -> Result<(), StoreError> {
        if samples.is_empty() {
            return Ok(());
        }
        self.tx
            .send(Cmd::Journal(samples))
            .await
            .map_err(|_| StoreError::Closed)
    }

    /// Commit every buffered journal row now.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.call(|_| Ok(())).await
    }

    /// See `Store::record_config`.
    pub async fn record_config(
        &self,
        hash: String,
        yaml: String,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.call(move |s| s.record_config(&hash, &yaml, now)).await
    }

    /// See `Store::journal_since`.
    pub async fn journal_since(&self, since: Timestamp) -> Result<Vec<Sample>, StoreError> {
        self.call(move |s| s.journal_since(since)).await
    }

    /// See `Store::journal_after`.
    pub async fn journal_after(&self, journal_id: i64) -> Result<Vec<Sample>, StoreError> {
        self.call(move |s| s.journal_after(journal_id)).await
    }

    /// See `Store::save_snapshot` (buffered journal rows are committed first, so `journal_id` covers them).
    pub async fn save_snapshot(
        &self,
        ts: Timestamp,
        state: String,
    ) -> Result<Snapshot, StoreError> {
        self.call(move |s| s.save_snapshot(ts, &state)).await
    }

    /// See `Store::latest_snapshot`.
    pub async fn latest_snapshot(&self) -> Result<Option<Snapshot>, StoreError> {
        self.call(|s| s.latest_snapshot()).await
    }

    /// Commit closed summaries/stops/evidence with their outbox rows (one transaction), then wake the publisher.
    pub async fn commit_closed(&self, closed: Vec<Closed>) -> Result<usize, StoreError> {
        let n = self.call(move |s| s.commit_closed(&closed)).await?;
        if n > 0 {
            self.notify.notify_one();
        }
        Ok(n)
    }

    /// Queue one outbox message of `kind`, then wake the publisher.
    pub async fn enqueue(
        &self,
        message: OutMessage,
        kind: &'static str,
    ) -> Result<i64, StoreError> {
        let id = self.call(move |s| s.enqueue(&message, kind)).await?;
        self.notify.notify_one();
        Ok(id)
    }

    /// Replace the latest value of a live topic, then wake the publisher.
    pub async fn set_live(&self, message: OutMessage) -> Result<(), StoreError> {
        self.call(move |s| s.set_live(&message)).await?;
        self.notify.notify_one();
        Ok(())
    }

    /// See `Store::outbox_batch`.
    pub async fn outbox_batch(
        &self,
        after_id: i64,
        limit: usize,
    ) -> Result<Vec<OutboxRow>, StoreError> {
        self.call(move |s| s.outbox_batch(after_id, limit)).await
    }

    /// See `Store::delete_outbox`.
    pub async fn delete_outbox(&self, ids: Vec<i64>) -> Result<usize, StoreError> {
        self.call(move |s| s.delete_outbox(&ids)).await
    }

    /// See `Store::outbox_len`.
    pub async fn outbox_len(&self) -> Result<u64, StoreError> {
        self.call(|s| s.outbox_len()).await
    }

    /// See `Store::live_pending`.
    pub async fn live_pending(&self) -> Result<Vec<OutMessage>, StoreError> {
        self.call(|s| s.live_pending()).await
    }

    /// See `Store::live_all`.
    pub async fn live_all(&self) -> Result<Vec<OutMessage>, StoreError> {
        self.call(|s| s.live_all()).await
    }

    /// See `Store::mark_live_sent`.
    pub async fn mark_live_sent(&self, topic: String, msg_id: String) -> Result<(), StoreError> {
        self.call(move |s| s.mark_live_sent(&topic, &msg_id)).await
    }

    /// See `Store::enforce_size`.
    pub async fn enforce_size(&self, max_bytes: u64) -> Result<DropReport, StoreError> {
        self.call(move |s| s.enforce_size(max_bytes)).await
    }

    /// See `Store::drop_counts`.
    pub async fn drop_counts(&self) -> Result<Vec<(String, u64)>, StoreError> {
        self.call(|s| s.drop_counts()).await
    }

    /// See `Store::summaries_between`.
    pub async fn summaries_between(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<StoredSummary>, StoreError> {
        self.call(move |s| s.summaries_between(from, to)).await
    }

    /// See `Store::stops_between`.
    pub async fn stops_between(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<StoredStop>, StoreError> {
        self.call(move |s| s.stops_between(from, to)).await
    }

    /// Commit everything, checkpoint the WAL and stop the store thread; later calls on any clone fail with
    /// `StoreError::Closed`.
    pub async fn close(&self) -> Result<(), StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Close(reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }
}

struct Journal {
    rows: Vec<Sample>,
    since: Option<Instant>,
}

impl Journal {
    fn commit(&mut self, store: &mut Store) -> Result<(), StoreError> {
        if self.rows.is_empty() {
            return Ok(());
        }
        let result = store.append_journal(&self.rows);
        if let Err(e) = &result {
            tracing::error!(error = %e, rows = self.rows.len(), "journal commit failed");
        }
        self.rows.clear();
        self.since = None;
        result
    }

    /// Ticks come every quarter interval, so committing at half the interval keeps every row's wait under it.
    fn due(&self, every: Duration) -> bool {
        self.rows.len() >= JOURNAL_BATCH || self.since.is_some_and(|t| t.elapsed() >= every / 2)
    }
}

fn store_thread(
    mut store: Store,
    mut rx: mpsc::Receiver<Cmd>,
    commit_every: Duration,
    max_bytes: u64,
) {
    let mut journal = Journal {
        rows: Vec::new(),
        since: None,
    };
    let mut last_size_check = Instant::now();
    if let Err(e) = store.enforce_size(max_bytes) {
        tracing::error!(error = %e, "store size check failed");
    }
    while let Some(cmd) = rx.blocking_recv() {
        match cmd {
            Cmd::Journal(samples) => {
                journal.since.get_or_insert_with(Instant::now);
                journal.rows.extend(samples);
            }
            Cmd::Call(job) => {
                let _ = journal.commit(&mut store);
                job(&mut store);
            }
            Cmd::Tick => {
                if last_size_check.elapsed() >= SIZE_CHECK_EVERY {
                    last_size_check = Instant::now();
                    let _ = journal.commit(&mut store);
                    match store.enforce_size(max_bytes) {
                        Ok(r) if !r.dropped.is_empty() => tracing::warn!(
                            dropped = ?r.dropped, over_limit = r.over_limit,
                            "storage bound reached: rows dropped in the documented order"
                        ),
                        Ok(_) => {}
                        Err(e) => tracing::error!(error = %e, "store size check failed"),
                    }
                }
            }
            Cmd::Close(reply) => {
                let r = journal.commit(&mut store).and_then(|_| store.checkpoint());
                let _ = reply.send(r);
                return;
            }
        }
        if journal.due(commit_every) {
            let _ = journal.commit(&mut store);
        }
    }
    let _ = journal.commit(&mut store);
    if let Err(e) = store.checkpoint() {
        tracing::warn!(error = %e, "store checkpoint at exit failed");
    }
}
