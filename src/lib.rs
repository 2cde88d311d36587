//! shopfloor-agent: an edge daemon that turns PLC and sensor signals into OEE evidence.
//!
//! The data flows one way, and the module tree follows it:
//!
//! ```text
//!  sources::modbus (poll PLC registers: TCP, RTU) ┐
//!  sources::mqtt   (subscribe: JSON or plain)     ├─► Sample ─► model   (per machine: state, counters, product, reason)
//!  replay          (samples from a JSONL file)    ┘                 │  MachineEvent
//!                                                                   ▼
//!                                                 metrics (OEE + cycle time over hour/shift/day windows, shift calendar)
//!                                                                   │  Output: StateChange, Summary, StopEvent
//!                                                                   ▼
//!                                                 store   (SQLite: journal + outbox, WAL, recovery)
//!                                                                   │
//!                                                                   ▼
//!                                                 publish (MQTT QoS 1, store-and-forward, retained state, LWT)
//!  report (before/after evidence, reads store)            ops (logging, signals, health)
//! ```
//!
//! `model` and `metrics` are pure: time enters as sample timestamps and `tick(now)` arguments,
//! so the daemon, `replay` and `demo` share one code path. `commands` is the thin glue per CLI verb.

#![warn(missing_docs)]

pub mod cli;
pub mod commands;
pub mod config;
pub mod metrics;
pub mod model;
pub mod ops;
pub mod publish;
pub mod report;
pub mod sample;
pub mod sim;
pub mod sources;
pub mod store;
