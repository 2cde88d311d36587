//! Pure OEE engine: shift calendar, hour/shift/day windows, summaries, stop events and cycle times.
//! Time enters only as arguments; no clock reads, no I/O.

pub mod aggregate;
pub mod calendar;
pub mod engine;
pub mod output;
pub mod window;

pub use engine::{Engine, EngineSnapshot, Ingested};
pub use output::*;

/// Why the engine could not be built from a configuration or a snapshot.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// `timezone` is not a known IANA zone.
    #[error("timezone `{zone}` is not a known IANA time zone: {reason}")]
    TimeZone {
        /// The configured zone.
        zone: String,
        /// jiff's explanation.
        reason: String,
    },
    /// A shift or break time is not `HH:MM`.
    #[error("shift `{shift}`: `{value}` is not a local time HH:MM")]
    ShiftTime {
        /// Shift name.
        shift: String,
        /// The bad value.
        value: String,
    },
    /// A non-production date is not `YYYY-MM-DD`.
    #[error("non_production_dates: `{value}` is not a date YYYY-MM-DD")]
    Date {
        /// The bad value.
        value: String,
    },
    /// Two machines share an id.
    #[error("machine id `{id}` is used twice")]
    DuplicateMachine {
        /// The id.
        id: String,
    },
    /// The snapshot was written by another format version.
    #[error("engine snapshot version {found} cannot be restored (expected {expected})")]
    SnapshotVersion {
        /// Found.
        found: u32,
        /// Expected.
        expected: u32,
    },
}
