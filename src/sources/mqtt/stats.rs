//! Counters of the MQTT input (cheap to clone and to read for a health endpoint) and the
//! rate limiter for its warnings.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::payload::BadPayload;

/// At most this many distinct topics are counted apart; later ones share [`OTHER_TOPICS`].
pub const MAX_COUNTED_TOPICS: usize = 1024;
/// Label of the bucket for topics beyond [`MAX_COUNTED_TOPICS`].
pub const OTHER_TOPICS: &str = "(other topics)";
/// One warning per key per this interval; the rest are counted and reported with the next one.
pub const WARN_INTERVAL: Duration = Duration::from_secs(30);

#[derive(Debug, Default)]
struct Inner {
    messages: AtomicU64,
    samples: AtomicU64,
    dropped_full: AtomicU64,
    unmatched: AtomicU64,
    unknown_machine: AtomicU64,
    connects: AtomicU64,
    subscribed: AtomicU64,
    bad: Mutex<HashMap<String, [u64; BadPayload::ALL.len()]>>,
}

/// Shared counters of the MQTT input. Clones share the same counters.
#[derive(Debug, Clone, Default)]
pub struct MqttInputStats {
    inner: Arc<Inner>,
}

/// A point-in-time copy of [`MqttInputStats`].
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct MqttInputStatsSnapshot {
    /// PUBLISH packets received from the broker.
    pub messages: u64,
    /// Samples sent to the engine (null samples included).
    pub samples: u64,
    /// Messages dropped because the decode channel was full.
    pub dropped_full: u64,
    /// Messages on a subscribed topic that no route matches.
    pub unmatched: u64,
    /// Messages for a template whose topic segment names no configured machine.
    pub unknown_machine: u64,
    /// Successful connections (ConnAck) so far.
    pub connects: u64,
    /// SUBACKs received (subscriptions confirmed by the broker) so far.
    pub subscribed: u64,
    /// Bad payloads: topic → reason label → count.
    pub bad_payloads: BTreeMap<String, BTreeMap<&'static str, u64>>,
}

impl MqttInputStats {
    /// Fresh, all zero.
    pub fn new() -> Self {
        Self::default()
    }

    pub(crate) fn message(&self) {
        self.inner.messages.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn samples(&self, n: u64) {
        self.inner.samples.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn dropped_full(&self) {
        self.inner.dropped_full.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn unmatched(&self) {
        self.inner.unmatched.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn unknown_machine(&self) {
        self.inner.unknown_machine.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn connected(&self) {
        self.inner.connects.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn subscribed(&self) {
        self.inner.subscribed.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn bad(&self, topic: &str, reason: BadPayload) {
        let idx = BadPayload::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or_default();
        let mut map = self.inner.bad.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(row) = map.get_mut(topic) {
            row[idx] += 1;
            return;
        }
        let key = if map.len() < MAX_COUNTED_TOPICS {
            topic
        } else {
            OTHER_TOPICS
        };
        map.entry(key.to_owned()).or_default()[idx] += 1;
    }

    /// Messages received so far.
    pub fn messages(&self) -> u64 {
        self.inner.messages.load(Ordering::Relaxed)
    }

    /// Samples emitted so far.
    pub fn samples_sent(&self) -> u64 {
        self.inner.samples.load(Ordering::Relaxed)
    }

    /// Copy every counter.
    pub fn snapshot(&self) -> MqttInputStatsSnapshot {
        let bad = self.inner.bad.lock().unwrap_or_else(|p| p.into_inner());
        let bad_payloads = bad
            .iter()
            .map(|(topic, row)| {
                let reasons = BadPayload::ALL
                    .iter()
                    .zip(row)
                    .filter(|(_, n)| **n > 0)
                    .map(|(r, n)| (r.as_str(), *n))
                    .collect();
                (topic.clone(), reasons)
            })
            .collect();
        let i = &self.inner;
        MqttInputStatsSnapshot {
            messages: i.messages.load(Ordering::Relaxed),
            samples: i.samples.load(Ordering::Relaxed),
            dropped_full: i.dropped_full.load(Ordering::Relaxed),
            unmatched: i.unmatched.load(Ordering::Relaxed),
            unknown_machine: i.unknown_machine.load(Ordering::Relaxed),
            connects: i.connects.load(Ordering::Relaxed),
            subscribed: i.subscribed.load(Ordering::Relaxed),
            bad_payloads,
        }
    }
}

impl MqttInputStatsSnapshot {
    /// Bad payloads of one topic and reason.
    pub fn bad(&self, topic: &str, reason: BadPayload) -> u64 {
        self.bad_payloads
            .get(topic)
            .and_then(|m| m.get(reason.as_str()))
            .copied()
            .unwrap_or(0)
    }
}

/// Per-key warning limiter: `check` says whether to log now and how many were suppressed since.
#[derive(Debug, Default)]
pub struct WarnLimiter {
    last: HashMap<String, (Instant, u64)>,
}

impl WarnLimiter {
    /// `Some(suppressed)` when a warning for `key` may be logged at `now`; `None` to stay quiet.
    pub fn check(&mut self, key: &str, now: Instant) -> Option<u64> {
        if let Some((at, suppressed)) = self.last.get_mut(key) {
            if now.duration_since(*at) < WARN_INTERVAL {
                *suppressed += 1;
                return None;
            }
            let n = *suppressed;
            *at = now;
            *suppressed = 0;
            return Some(n);
        }
        if self.last.len() >= MAX_COUNTED_TOPICS {
            // Forget keys whose interval has passed, so the map stays bounded.
            self.last
                .retain(|_, (at, _)| now.duration_since(*at) < WARN_INTERVAL);
            if self.last.len() >= MAX_COUNTED_TOPICS {
                return None;
            }
        }
        self.last.insert(key.to_owned(), (now, 0));
        Some(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_are_limited_per_key_and_report_the_suppressed_count() {
        let mut w = WarnLimiter::default();
        let t0 = Instant::now();
        assert_eq!(w.check("a", t0), Some(0));
        assert_eq!(w.check("a", t0 + Duration::from_secs(1)), None);
        assert_eq!(w.check("a", t0 + Duration::from_secs(2)), None);
        assert_eq!(w.check("b", t0 + Duration::from_secs(2)), Some(0));
        assert_eq!(w.check("a", t0 + WARN_INTERVAL), Some(2));
        assert_eq!(w.check("a", t0 + WARN_INTERVAL), None);
    }

    #[test]
    fn bad_payloads_are_counted_per_topic_and_reason_with_a_bounded_topic_count() {
        let s = MqttInputStats::new();
        s.bad("t/1", BadPayload::NotJson);
        s.bad("t/1", BadPayload::NotJson);
        s.bad("t/1", BadPayload::TooLarge);
        for i in 0..MAX_COUNTED_TOPICS + 5 {
            s.bad(&format!("x/{i}"), BadPayload::WrongType);
        }
        let snap = s.snapshot();
        assert_eq!(snap.bad("t/1", BadPayload::NotJson), 2);
        assert_eq!(snap.bad("t/1", BadPayload::TooLarge), 1);
        assert_eq!(snap.bad_payloads.len(), MAX_COUNTED_TOPICS + 1);
        assert_eq!(snap.bad(OTHER_TOPICS, BadPayload::WrongType), 6);
    }
}
