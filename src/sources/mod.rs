//! Acquisition: Modbus polling and MQTT subscriptions, both emitting [`crate::sample::Sample`]s
//! into the bounded channel of [`crate::sample::sample_channel`].

pub mod modbus;
pub mod mqtt;
