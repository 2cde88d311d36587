//! MQTT publishing: topics and payloads of DESIGN.md §4, outbox drain with PUBACK tracking, birth and last will.

#[cfg(feature = "embedded-broker")]
pub mod broker;
pub mod message;
pub mod publisher;
