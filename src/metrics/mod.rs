//! Pure OEE engine: shift calendar, hour/shift/day windows, summaries, stop events and cycle times.
//! Time enters only as arguments; no clock reads, no I/O.

pub mod output;

pub use output::*;
