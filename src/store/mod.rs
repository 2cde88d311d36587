//! SQLite store: journal of engine events, summaries and stops, engine snapshots, the outbox; WAL, migrations,
//! bounded size. `Store` is synchronous; `StoreHandle` runs it on its own thread (see docs/STORAGE.md).

pub mod db;
pub mod handle;
pub mod schema;

use std::path::PathBuf;

pub use db::{
    Closed, DropReport, OutMessage, OutboxRow, Snapshot, StopRecord, Store, StoredStop,
    StoredSummary, SummaryRecord, DROP_ORDER,
};
pub use handle::StoreHandle;

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A JSON value could not be encoded or decoded.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// File system error.
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    /// The file was written by a newer build.
    #[error("database schema version {found} is newer than this build knows ({known})")]
    TooNew {
        /// Version in the file.
        found: i64,
        /// Latest version known here.
        known: i64,
    },
    /// A stored row could not be decoded.
    #[error("bad stored row: {0}")]
    BadRow(String),
    /// The store thread has stopped.
    #[error("the store is closed")]
    Closed,
}
