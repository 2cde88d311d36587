//! The decoder side of the MQTT input: one received message → zero or more samples,
//! with bad payloads counted, logged rate-limited and turned into `null` samples.

use std::time::Instant;

use bytes::Bytes;
use jiff::Timestamp;
use tracing::warn;

use crate::sample::Sample;

use super::payload::ParsedPayload;
use super::route::{Hit, Router};
use super::stats::{MqttInputStats, WarnLimiter};

/// A message as the event loop hands it over: topic, payload and arrival time.
#[derive(Debug, Clone)]
pub struct RawMessage {
    /// Topic name.
    pub topic: String,
    /// Payload bytes (shared with rumqttc's buffer, not copied).
    pub payload: Bytes,
    /// Arrival time at the edge, used when the payload carries no timestamp.
    pub arrival: Timestamp,
}

/// Turns raw messages into samples.
#[derive(Debug)]
pub struct Ingest {
    router: Router,
    stats: MqttInputStats,
    warn: WarnLimiter,
}

impl Ingest {
    /// A decoder over a compiled router, counting into `stats`.
    pub fn new(router: Router, stats: MqttInputStats) -> Self {
        Ingest {
            router,
            stats,
            warn: WarnLimiter::default(),
        }
    }

    /// Decode one message, appending its samples to `out`.
    pub fn handle(&mut self, msg: &RawMessage, out: &mut Vec<Sample>) {
        let before = out.len();
        let mut payload = ParsedPayload::new(&msg.payload);
        let mut matched = false;
        for hit in self.router.resolve(&msg.topic) {
            matched = true;
            let (machine, route) = match hit {
                Hit::Machine(m, r) => (m, r),
                Hit::UnknownMachine(name) => {
                    self.stats.unknown_machine();
                    if let Some(suppressed) = self.warn.check(&msg.topic, Instant::now()) {
                        warn!(topic = %msg.topic, machine = %name, suppressed,
                            "MQTT message for an unconfigured machine id, dropped");
                    }
                    continue;
                }
            };
            let (ts, value) = route.decoder.decode(&mut payload, msg.arrival);
            let value = match value {
                Ok(v) => v,
                Err(reason) => {
                    self.stats.bad(&msg.topic, reason);
                    if let Some(suppressed) = self.warn.check(&msg.topic, Instant::now()) {
                        warn!(topic = %msg.topic, machine = %machine, signal = %route.signal,
                            reason = reason.as_str(), suppressed, "bad MQTT payload, null sample");
                    }
                    None
                }
            };
            out.push(Sample::new(ts, machine.clone(), route.signal, value));
        }
        if !matched {
            self.stats.unmatched();
        }
        self.stats.samples((out.len() - before) as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::sample::{Signal, Value};
    use crate::sources::mqtt::payload::BadPayload;

    fn ingest() -> (Ingest, MqttInputStats) {
        let config: Config = serde_json::from_value(serde_json::json!({
            "site": "s", "timezone": "UTC",
            "machines": [{"id": "m1", "signals": {
                "total_count": {"topic": "m1/data", "json": "$.n"},
                "running": {"topic": "m1/data", "json": "$.run"}}}],
            "mqtt_inputs": [{"topic": "s/+/c", "machine_segment": 1, "signal": "good_count"}]
        }))
        .unwrap();
        let stats = MqttInputStats::new();
        (
            Ingest::new(Router::build(&config).unwrap(), stats.clone()),
            stats,
        )
    }

    fn msg(topic: &str, payload: &'static [u8]) -> RawMessage {
        RawMessage {
            topic: topic.into(),
            payload: Bytes::from_static(payload),
            arrival: "2024-03-04T06:00:00Z".parse().unwrap(),
        }
    }

    #[test]
    fn one_message_feeds_every_signal_on_its_topic() {
        let (mut ing, stats) = ingest();
        let mut out = Vec::new();
        ing.handle(&msg("m1/data", br#"{"n":5,"run":true}"#), &mut out);
        let got: Vec<_> = out.iter().map(|s| (s.signal, s.value.clone())).collect();
        assert_eq!(
            got,
            [
                (Signal::Running, Some(Value::Bool(true))),
                (Signal::TotalCount, Some(Value::Int(5)))
            ]
        );
        assert_eq!(stats.snapshot().samples, 2);
    }

    #[test]
    fn bad_payload_gives_null_samples_and_counts_per_signal() {
        let (mut ing, stats) = ingest();
        let mut out = Vec::new();
        ing.handle(&msg("m1/data", b"garbage"), &mut out);
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|s| s.value.is_none()));
        assert_eq!(stats.snapshot().bad("m1/data", BadPayload::NotJson), 2);
    }

    #[test]
    fn unknown_template_machine_and_unmatched_topics_are_counted_and_dropped() {
        let (mut ing, stats) = ingest();
        let mut out = Vec::new();
        ing.handle(&msg("s/ghost/c", b"1"), &mut out);
        ing.handle(&msg("s/m1/c", b"3"), &mut out);
        ing.handle(&msg("elsewhere", b"1"), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(&*out[0].machine, "m1");
        let snap = stats.snapshot();
        assert_eq!((snap.unknown_machine, snap.unmatched), (1, 1));
    }
}
