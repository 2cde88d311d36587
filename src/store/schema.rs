//! Versioned schema: `PRAGMA user_version` counts the migration steps applied; each step runs in one transaction.

use rusqlite::Connection;

use super::StoreError;

/// Migration steps, in order. Step `i` brings the file from version `i` to `i + 1`. Append only: never edit a step
/// that has shipped.
pub const MIGRATIONS: &[&str] = &[
    // v1: journal, snapshots, closed summaries and stops, outbox, live values, config history.
    r#"
    CREATE TABLE journal (
        id      INTEGER PRIMARY KEY,
        ts      INTEGER NOT NULL,
        machine TEXT    NOT NULL,
        signal  TEXT    NOT NULL,
        value   TEXT    NOT NULL
    );
    CREATE INDEX journal_ts ON journal(ts);
    CREATE TABLE snapshot (
        id         INTEGER PRIMARY KEY,
        ts         INTEGER NOT NULL,
        journal_id INTEGER NOT NULL,
        state      TEXT    NOT NULL
    );
    CREATE TABLE summaries (
        id       INTEGER PRIMARY KEY,
        machine  TEXT    NOT NULL,
        kind     TEXT    NOT NULL,
        start    INTEGER NOT NULL,
        end      INTEGER NOT NULL,
        shift    TEXT,
        payload  TEXT    NOT NULL,
        msg_id   TEXT    NOT NULL UNIQUE
    );
    CREATE INDEX summaries_start ON summaries(start);
    CREATE TABLE stops (
        id       INTEGER PRIMARY KEY,
        machine  TEXT    NOT NULL,
        start    INTEGER NOT NULL,
        end      INTEGER NOT NULL,
        payload  TEXT    NOT NULL,
        msg_id   TEXT    NOT NULL UNIQUE
    );
    CREATE INDEX stops_start ON stops(start);
    CREATE TABLE outbox (
        id       INTEGER PRIMARY KEY AUTOINCREMENT,
        topic    TEXT    NOT NULL,
        qos      INTEGER NOT NULL,
        retain   INTEGER NOT NULL,
        msg_id   TEXT    NOT NULL,
        payload  BLOB    NOT NULL,
        created  INTEGER NOT NULL
    );
    CREATE TABLE live (
        topic    TEXT PRIMARY KEY,
        payload  BLOB    NOT NULL,
        msg_id   TEXT    NOT NULL,
        retain   INTEGER NOT NULL,
        qos      INTEGER NOT NULL,
        updated  INTEGER NOT NULL,
        sent_msg_id TEXT
    );
    CREATE TABLE config_history (
        hash       TEXT PRIMARY KEY,
        yaml       TEXT    NOT NULL,
        first_seen INTEGER NOT NULL,
        last_seen  INTEGER NOT NULL
    );
    "#,
    // v2: bounded size. Outbox rows say what they carry (so hourly summaries can be dropped first) and every
    // drop is counted.
    r#"
    ALTER TABLE outbox ADD COLUMN kind TEXT NOT NULL DEFAULT 'other';
    CREATE INDEX outbox_kind ON outbox(kind);
    CREATE INDEX summaries_kind_start ON summaries(kind, start);
    CREATE TABLE drops (
        id    INTEGER PRIMARY KEY,
        what  TEXT    NOT NULL,
        count INTEGER NOT NULL,
        at    INTEGER NOT NULL
    );
    "#,
    // v3: journal ids never come back (AUTOINCREMENT). Without it, an emptied journal handed out id 1 again, below
    // the latest snapshot's `journal_id`, so recovery skipped and the size bound deleted rows written after it.
    r#"
    CREATE TABLE journal_v3 (
        id      INTEGER PRIMARY KEY AUTOINCREMENT,
        ts      INTEGER NOT NULL,
        machine TEXT    NOT NULL,
        signal  TEXT    NOT NULL,
        value   TEXT    NOT NULL
    );
    INSERT INTO journal_v3 (id, ts, machine, signal, value) SELECT id, ts, machine, signal, value FROM journal;
    DROP TABLE journal;
    ALTER TABLE journal_v3 RENAME TO journal;
    CREATE INDEX journal_ts ON journal(ts);
    DELETE FROM sqlite_sequence WHERE name IN ('journal', 'journal_v3');
    INSERT INTO sqlite_sequence (name, seq) VALUES ('journal', max(
        coalesce((SELECT max(id) FROM journal), 0),
        coalesce((SELECT max(journal_id) FROM snapshot), 0)));
    "#,
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// The file's schema version.
pub fn version(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.query_row("PRAGMA user_version", [], |r| r.get(0))?)
}

/// Apply the missing steps up to `target`, each with its `user_version` bump in one transaction.
pub fn migrate_to(conn: &mut Connection, target: i64) -> Result<i64, StoreError> {
    let from = version(conn)?;
    if from > SCHEMA_VERSION {
        return Err(StoreError::TooNew {
            found: from,
            known: SCHEMA_VERSION,
        });
    }
    let target = target.min(SCHEMA_VERSION);
    for v in from..target {
        let tx = conn.transaction()?;
        tx.execute_batch(MIGRATIONS[v as usize])?;
        tx.pragma_update(None, "user_version", v + 1)?;
        tx.commit()?;
        tracing::info!(version = v + 1, "store schema migrated");
    }
    Ok(from)
}
