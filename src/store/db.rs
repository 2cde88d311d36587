//! The synchronous SQLite store: one connection, WAL, every multi-row write in one transaction.

use std::path::Path;
use std::time::Duration;

use jiff::Timestamp;
use rusqlite::{params, Connection, OptionalExtension, Transaction};

use super::schema;
use super::StoreError;
use crate::config::StorageConfig;
use crate::sample::{Sample, Signal, Value};

/// A message to publish with QoS ≥ 0, as the outbox and the live table keep it (payload bytes are opaque here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutMessage {
    /// Full topic.
    pub topic: String,
    /// 0 or 1.
    pub qos: u8,
    /// Retained at the broker.
    pub retain: bool,
    /// Stable id, also inside the payload, so re-sends can be recognised.
    pub msg_id: String,
    /// The serialized payload.
    pub payload: Vec<u8>,
}

/// A closed summary as stored (the payload is the published JSON).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SummaryRecord {
    /// Machine id.
    pub machine: String,
    /// `hour`, `shift` or `day`.
    pub kind: String,
    /// Shift name, if any.
    pub shift: Option<String>,
    /// Window start.
    pub start: Timestamp,
    /// Window end.
    pub end: Timestamp,
    /// JSON payload.
    pub payload: String,
}

/// An ended stop as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopRecord {
    /// Machine id.
    pub machine: String,
    /// Stop start.
    pub start: Timestamp,
    /// Stop end.
    pub end: Timestamp,
    /// JSON payload.
    pub payload: String,
}

/// Something closed that must never be lost: its table row and its outbox message commit together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Closed {
    /// A closed hour/shift/day summary.
    Summary {
        /// Row of `summaries`.
        record: SummaryRecord,
        /// Its QoS 1 message (its `msg_id` is the row's unique key).
        message: OutMessage,
    },
    /// An ended stop.
    Stop {
        /// Row of `stops`.
        record: StopRecord,
        /// Its QoS 1 message.
        message: OutMessage,
    },
    /// Evidence (before/after report): outbox only, never dropped.
    Evidence(OutMessage),
}

/// One queued outbox message; `id` gives the publishing order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    /// Order of publication.
    pub id: i64,
    /// The message.
    pub message: OutMessage,
    /// When it was queued.
    pub created: Timestamp,
}

/// A stored summary or stop, read back for reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSummary {
    /// The record.
    pub record: SummaryRecord,
    /// Its message id.
    pub msg_id: String,
}

/// A stored stop, read back for reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredStop {
    /// The record.
    pub record: StopRecord,
    /// Its message id.
    pub msg_id: String,
}

/// The latest engine snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Event time the snapshot describes.
    pub ts: Timestamp,
    /// Opaque engine state (JSON).
    pub state: String,
    /// Highest journal row committed when it was taken: replay `journal_after(journal_id)`.
    pub journal_id: i64,
}

/// What `enforce_size` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DropReport {
    /// Used bytes before.
    pub before_bytes: u64,
    /// Used bytes after.
    pub after_bytes: u64,
    /// Rows dropped per category, in drop order (only non-zero entries).
    pub dropped: Vec<(String, u64)>,
    /// Still over the bound after every allowed drop (only protected data is left).
    pub over_limit: bool,
}

/// Drop categories, in the order they are dropped.
pub const DROP_ORDER: [&str; 3] = ["journal_expired", "journal_before_snapshot", "hour_summary"];

/// Journal rows older than this (before the newest journal row) are dropped first.
pub const JOURNAL_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Snapshots kept (older ones are deleted when a new one is saved).
const SNAPSHOTS_KEPT: i64 = 2;

/// Journal rows deleted per step of `enforce_size`.
const JOURNAL_CHUNK: i64 = 2000;
/// Hourly summaries deleted per step of `enforce_size` (fine-grained: each one is evidence).
const SUMMARY_CHUNK: i64 = 10;

/// The synchronous store. See `StoreHandle` for the threaded, async front.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
}

fn ms(ts: Timestamp) -> i64 {
    ts.as_millisecond()
}

fn from_ms(v: i64) -> Result<Timestamp, StoreError> {
    Timestamp::from_millisecond(v).map_err(|e| StoreError::BadRow(format!("timestamp {v}: {e}")))
}

impl Store {
    /// Open (or create) the file, set WAL and `synchronous=NORMAL`, and migrate to the current schema.
    pub fn open(path: &Path, _cfg: &StorageConfig) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Io(dir.to_path_buf(), e))?;
        }
        let mut conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        if schema::version(&conn)? == 0 {
            // Must precede the first table so deleted pages can be given back to the file system.
            conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
        }
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(mode = %mode, "store could not switch to WAL");
        }
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        schema::migrate_to(&mut conn, schema::SCHEMA_VERSION)?;
        Ok(Store { conn })
    }

    /// The raw connection (read-only uses in tests and tools).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// Record the config in force: insert it, or move its `last_seen`.
    pub fn record_config(
        &mut self,
        hash: &str,
        yaml: &str,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO config_history(hash, yaml, first_seen, last_seen) VALUES (?1, ?2, ?3, ?3)
             ON CONFLICT(hash) DO UPDATE SET last_seen = excluded.last_seen",
            params![hash, yaml, ms(now)],
        )?;
        Ok(())
    }

    /// The config history: `(hash, yaml, first_seen, last_seen)`, oldest first.
    pub fn config_history(
        &self,
    ) -> Result<Vec<(String, String, Timestamp, Timestamp)>, StoreError> {
        let mut st = self.conn.prepare(
            "SELECT hash, yaml, first_seen, last_seen FROM config_history ORDER BY first_seen",
        )?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (h, y, f, l) = row?;
            out.push((h, y, from_ms(f)?, from_ms(l)?));
        }
        Ok(out)
    }

    /// Append samples to the journal in one transaction.
    pub fn append_journal(&mut self, samples: &[Sample]) -> Result<(), StoreError> {
        if samples.is_empty() {
            return Ok(());
        }
        let tx = self.conn.transaction()?;
        insert_journal(&tx, samples)?;
        tx.commit()?;
        Ok(())
    }

    /// Journal samples with `ts >= since`, in the order they were appended.
    pub fn journal_since(&self, since: Timestamp) -> Result<Vec<Sample>, StoreError> {
        self.read_journal("WHERE ts >= ?1", ms(since))
    }

    /// Journal samples appended after row `journal_id` (see `Snapshot::journal_id`), in order.
    pub fn journal_after(&self, journal_id: i64) -> Result<Vec<Sample>, StoreError> {
        self.read_journal("WHERE id > ?1", journal_id)
    }

    fn read_journal(&self, filter: &str, arg: i64) -> Result<Vec<Sample>, StoreError> {
        let sql = format!("SELECT ts, machine, signal, value FROM journal {filter} ORDER BY id");
        let mut st = self.conn.prepare(&sql)?;
        let rows = st.query_map([arg], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (ts, machine, signal, value) = row?;
            let decoded = (|| {
                let signal: Signal = signal.parse().map_err(StoreError::BadRow)?;
                let value: Option<Value> = serde_json::from_str(&value)?;
                Ok::<_, StoreError>(Sample::new(from_ms(ts)?, machine.into(), signal, value))
            })();
            match decoded {
                Ok(s) => out.push(s),
                Err(e) => tracing::warn!(error = %e, "unreadable journal row skipped"),
            }
        }
        Ok(out)
    }

    /// Number of journal rows.
    pub fn journal_len(&self) -> Result<u64, StoreError> {
        self.count("journal")
    }

    /// Save an engine snapshot (opaque JSON) taken at event time `ts`; keeps the last two.
    pub fn save_snapshot(&mut self, ts: Timestamp, state: &str) -> Result<Snapshot, StoreError> {
        let tx = self.conn.transaction()?;
        let journal_id: i64 =
            tx.query_row("SELECT COALESCE(MAX(id), 0) FROM journal", [], |r| r.get(0))?;
        tx.execute(
            "INSERT INTO snapshot(ts, journal_id, state) VALUES (?1, ?2, ?3)",
            params![ms(ts), journal_id, state],
        )?;
        tx.execute(
            "DELETE FROM snapshot WHERE id NOT IN (SELECT id FROM snapshot ORDER BY id DESC LIMIT ?1)",
            [SNAPSHOTS_KEPT],
        )?;
        tx.commit()?;
        Ok(Snapshot {
            ts,
            state: state.to_owned(),
            journal_id,
        })
    }

    /// The newest snapshot, if any.
    pub fn latest_snapshot(&self) -> Result<Option<Snapshot>, StoreError> {
        let row = self
            .conn
            .query_row(
                "SELECT ts, state, journal_id FROM snapshot ORDER BY id DESC LIMIT 1",
                [],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                },
            )
            .optional()?;
        row.map(|(ts, state, journal_id)| {
            Ok(Snapshot {
                ts: from_ms(ts)?,
                state,
                journal_id,
            })
        })
        .transpose()
    }

    /// Commit closed summaries, stops and evidence with their outbox rows, all in one transaction.
    /// A summary or stop whose `msg_id` is already stored (a replay after restart closed it again) is skipped,
    /// so it is neither duplicated nor queued twice. Returns the number of outbox rows queued.
    pub fn commit_closed(&mut self, closed: &[Closed]) -> Result<usize, StoreError> {
        let now = ms(Timestamp::now());
        let tx = self.conn.transaction()?;
        let mut queued = 0;
        for c in closed {
            let (inserted, message, kind) = match c {
                Closed::Summary { record, message } => {
                    let n = tx.execute(
                        "INSERT OR IGNORE INTO summaries(machine, kind, start, end, shift, payload, msg_id)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                        params![
                            record.machine,
                            record.kind,
                            ms(record.start),
                            ms(record.end),
                            record.shift,
                            record.payload,
                            message.msg_id
                        ],
                    )?;
                    (n > 0, message, record.kind.as_str())
                }
                Closed::Stop { record, message } => {
                    let n = tx.execute(
                        "INSERT OR IGNORE INTO stops(machine, start, end, payload, msg_id) VALUES (?1, ?2, ?3, ?4, ?5)",
                        params![record.machine, ms(record.start), ms(record.end), record.payload, message.msg_id],
                    )?;
                    (n > 0, message, "stop")
                }
                Closed::Evidence(message) => (true, message, "evidence"),
            };
            if inserted {
                insert_outbox(&tx, message, kind, now)?;
                queued += 1;
            }
        }
        tx.commit()?;
        Ok(queued)
    }

    /// Queue one message in the outbox with a free-form kind (never dropped unless `hour`).
    pub fn enqueue(&mut self, message: &OutMessage, kind: &str) -> Result<i64, StoreError> {
        let tx = self.conn.transaction()?;
        let id = insert_outbox(&tx, message, kind, ms(Timestamp::now()))?;
        tx.commit()?;
        Ok(id)
    }

    /// Up to `limit` outbox rows with `id > after_id`, oldest first.
    pub fn outbox_batch(&self, after_id: i64, limit: usize) -> Result<Vec<OutboxRow>, StoreError> {
        let mut st = self.conn.prepare_cached(
            "SELECT id, topic, qos, retain, msg_id, payload, created FROM outbox WHERE id > ?1 ORDER BY id LIMIT ?2",
        )?;
        let rows = st.query_map(params![after_id, limit as i64], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                OutMessage {
                    topic: r.get(1)?,
                    qos: r.get(2)?,
                    retain: r.get(3)?,
                    msg_id: r.get(4)?,
                    payload: r.get(5)?,
                },
                r.get::<_, i64>(6)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, message, created) = row?;
            out.push(OutboxRow {
                id,
                message,
                created: from_ms(created)?,
            });
        }
        Ok(out)
    }

    /// Delete acknowledged outbox rows.
    pub fn delete_outbox(&mut self, ids: &[i64]) -> Result<usize, StoreError> {
        let tx = self.conn.transaction()?;
        let mut n = 0;
        {
            let mut st = tx.prepare_cached("DELETE FROM outbox WHERE id = ?1")?;
            for id in ids {
                n += st.execute([id])?;
            }
        }
        tx.commit()?;
        Ok(n)
    }

    /// Remove an outbox row that can never be published (invalid topic, larger than the packet limit), counting
    /// it in `drops` under `what` so the loss is visible in `agent/status`.
    pub fn discard_outbox(&mut self, id: i64, what: &str) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        let n = tx.execute("DELETE FROM outbox WHERE id = ?1", [id])?;
        if n > 0 {
            tx.execute(
                "INSERT INTO drops(what, count, at) VALUES (?1, ?2, ?3)",
                params![what, n as i64, ms(Timestamp::now())],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Number of queued outbox rows.
    pub fn outbox_len(&self) -> Result<u64, StoreError> {
        self.count("outbox")
    }

    /// Set the latest value of a live topic (replaces the previous one; only the latest is ever sent).
    pub fn set_live(&mut self, message: &OutMessage) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO live(topic, payload, msg_id, retain, qos, updated) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT(topic) DO UPDATE SET payload = excluded.payload, msg_id = excluded.msg_id,
                 retain = excluded.retain, qos = excluded.qos, updated = excluded.updated",
            params![
                message.topic,
                message.payload,
                message.msg_id,
                message.retain,
                message.qos,
                ms(Timestamp::now())
            ],
        )?;
        Ok(())
    }

    /// Live values not yet confirmed sent (their latest `msg_id` differs from the last one sent).
    pub fn live_pending(&self) -> Result<Vec<OutMessage>, StoreError> {
        self.read_live("WHERE sent_msg_id IS NULL OR sent_msg_id <> msg_id")
    }

    /// Every live value (re-sent after each new connection, so a broker that lost its retained store gets them).
    pub fn live_all(&self) -> Result<Vec<OutMessage>, StoreError> {
        self.read_live("")
    }

    fn read_live(&self, filter: &str) -> Result<Vec<OutMessage>, StoreError> {
        let sql = format!(
            "SELECT topic, payload, msg_id, retain, qos FROM live {filter} ORDER BY updated, topic"
        );
        let mut st = self.conn.prepare(&sql)?;
        let rows = st.query_map([], |r| {
            Ok(OutMessage {
                topic: r.get(0)?,
                payload: r.get(1)?,
                msg_id: r.get(2)?,
                retain: r.get(3)?,
                qos: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Mark the live value `msg_id` of `topic` as sent (a newer value stays pending).
    pub fn mark_live_sent(&mut self, topic: &str, msg_id: &str) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE live SET sent_msg_id = ?2 WHERE topic = ?1",
            params![topic, msg_id],
        )?;
        Ok(())
    }

    /// Closed summaries whose window starts in `[from, to)`, by start.
    pub fn summaries_between(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<StoredSummary>, StoreError> {
        let mut st = self.conn.prepare(
            "SELECT machine, kind, shift, start, end, payload, msg_id FROM summaries
             WHERE start >= ?1 AND start < ?2 ORDER BY start, machine, kind",
        )?;
        let rows = st.query_map(params![ms(from), ms(to)], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, String>(6)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (machine, kind, shift, start, end, payload, msg_id) = row?;
            out.push(StoredSummary {
                record: SummaryRecord {
                    machine,
                    kind,
                    shift,
                    start: from_ms(start)?,
                    end: from_ms(end)?,
                    payload,
                },
                msg_id,
            });
        }
        Ok(out)
    }

    /// Stops that start in `[from, to)`, by start.
    pub fn stops_between(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<StoredStop>, StoreError> {
        let mut st = self.conn.prepare(
            "SELECT machine, start, end, payload, msg_id FROM stops WHERE start >= ?1 AND start < ?2
             ORDER BY start, machine",
        )?;
        let rows = st.query_map(params![ms(from), ms(to)], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (machine, start, end, payload, msg_id) = row?;
            out.push(StoredStop {
                record: StopRecord {
                    machine,
                    start: from_ms(start)?,
                    end: from_ms(end)?,
                    payload,
                },
                msg_id,
            });
        }
        Ok(out)
    }

    /// Bytes used by live pages (free pages excluded).
    pub fn used_bytes(&self) -> Result<u64, StoreError> {
        let (count, free, size): (i64, i64, i64) = self.conn.query_row(
            "SELECT page_count, freelist_count, page_size FROM pragma_page_count, pragma_freelist_count, pragma_page_size",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        Ok(((count - free).max(0) * size) as u64)
    }

    /// Bring the used size under `max_bytes`, dropping in `DROP_ORDER`:
    /// 1. journal rows older than both the latest snapshot and `JOURNAL_RETENTION` before the newest journal row;
    /// 2. journal rows before the latest snapshot (not needed for recovery, only for recomputing closed windows);
    /// 3. the oldest hourly summaries, with their outbox rows if still queued.
    ///
    /// Shift and day summaries, stops, evidence, live values, the config history and the journal since the
    /// latest snapshot are never dropped. Every drop is counted in `drops`.
    pub fn enforce_size(&mut self, max_bytes: u64) -> Result<DropReport, StoreError> {
        let before = self.used_bytes()?;
        let mut report = DropReport {
            before_bytes: before,
            after_bytes: before,
            ..DropReport::default()
        };
        if before <= max_bytes {
            return Ok(report);
        }
        let snap = self.latest_snapshot()?;
        let newest: Option<i64> = self
            .conn
            .query_row("SELECT MAX(ts) FROM journal", [], |r| r.get(0))?;
        let now = ms(Timestamp::now());
        let mut used = before;
        for what in DROP_ORDER {
            let mut total = 0u64;
            while used > max_bytes {
                let tx = self.conn.transaction()?;
                let n = drop_chunk(&tx, what, snap.as_ref(), newest)?;
                if n > 0 {
                    tx.execute(
                        "INSERT INTO drops(what, count, at) VALUES (?1, ?2, ?3)",
                        params![what, n as i64, now],
                    )?;
                }
                tx.commit()?;
                if n == 0 {
                    break;
                }
                total += n as u64;
                used = self.used_bytes()?;
            }
            if total > 0 {
                tracing::warn!(
                    what,
                    rows = total,
                    max_bytes,
                    "store over its size bound: rows dropped"
                );
                report.dropped.push((what.to_owned(), total));
            }
        }
        self.conn.execute_batch("PRAGMA incremental_vacuum")?;
        report.after_bytes = self.used_bytes()?;
        report.over_limit = report.after_bytes > max_bytes;
        if report.over_limit {
            tracing::warn!(
                used = report.after_bytes,
                max_bytes,
                "store still over its size bound: only protected data is left"
            );
        }
        Ok(report)
    }

    /// Rows dropped so far, per category (for `agent/status`).
    pub fn drop_counts(&self) -> Result<Vec<(String, u64)>, StoreError> {
        let mut st = self
            .conn
            .prepare("SELECT what, SUM(count) FROM drops GROUP BY what ORDER BY what")?;
        let rows = st.query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Checkpoint the WAL into the main file (at shutdown).
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }

    fn count(&self, table: &str) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn
            .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))?;
        Ok(n as u64)
    }
}

fn insert_journal(tx: &Transaction<'_>, samples: &[Sample]) -> Result<(), StoreError> {
    let mut st = tx.prepare_cached(
        "INSERT INTO journal(ts, machine, signal, value) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for s in samples {
        let value = serde_json::to_string(&s.value)?;
        st.execute(params![ms(s.ts), &*s.machine, s.signal.as_str(), value])?;
    }
    Ok(())
}

fn insert_outbox(
    tx: &Transaction<'_>,
    m: &OutMessage,
    kind: &str,
    now: i64,
) -> Result<i64, StoreError> {
    let mut st = tx.prepare_cached(
        "INSERT INTO outbox(topic, qos, retain, msg_id, payload, created, kind) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    st.execute(params![
        m.topic, m.qos, m.retain, m.msg_id, m.payload, now, kind
    ])?;
    Ok(tx.last_insert_rowid())
}

fn drop_chunk(
    tx: &Transaction<'_>,
    what: &str,
    snap: Option<&Snapshot>,
    newest: Option<i64>,
) -> Result<usize, StoreError> {
    Ok(match (what, snap) {
        ("journal_expired", Some(s)) => {
            let horizon = newest.unwrap_or(0) - JOURNAL_RETENTION.as_millis() as i64;
            tx.execute(
                "DELETE FROM journal WHERE id IN (SELECT id FROM journal WHERE id <= ?1 AND ts < ?2 ORDER BY id LIMIT ?3)",
                params![s.journal_id, horizon, JOURNAL_CHUNK],
            )?
        }
        ("journal_before_snapshot", Some(s)) => tx.execute(
            "DELETE FROM journal WHERE id IN (SELECT id FROM journal WHERE id <= ?1 ORDER BY id LIMIT ?2)",
            params![s.journal_id, JOURNAL_CHUNK],
        )?,
        ("hour_summary", _) => {
            tx.execute_batch(
                "CREATE TEMP TABLE IF NOT EXISTS dropping(msg_id TEXT PRIMARY KEY); DELETE FROM dropping;",
            )?;
            tx.execute(
                "INSERT INTO dropping SELECT msg_id FROM summaries WHERE kind = 'hour' ORDER BY start, id LIMIT ?1",
                [SUMMARY_CHUNK],
            )?;
            tx.execute(
                "DELETE FROM outbox WHERE kind = 'hour' AND msg_id IN (SELECT msg_id FROM dropping)",
                [],
            )?;
            tx.execute("DELETE FROM summaries WHERE msg_id IN (SELECT msg_id FROM dropping)", [])?
        }
        _ => 0,
    })
}
