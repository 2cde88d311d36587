//! Shared by the MQTT input tests: a config builder, the agent's source under test, a publisher.
#![allow(dead_code)]

#[path = "../common/mosquitto.rs"]
pub mod mosquitto;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, MqttOptions, QoS};
use serde_json::json;
use shopfloor_agent::config::Config;
use shopfloor_agent::sample::{sample_channel, Sample, SampleReceiver, Value};
use shopfloor_agent::sources::mqtt::{self, MqttInputStats};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const WAIT: Duration = Duration::from_secs(15);

pub fn config(
    port: u16,
    client: &str,
    machines: serde_json::Value,
    inputs: serde_json::Value,
) -> Config {
    serde_json::from_value(json!({
        "site": "test", "timezone": "UTC",
        "mqtt": {"host": "127.0.0.1", "port": port, "client_id": client, "keep_alive": "5s"},
        "machines": machines, "mqtt_inputs": inputs
    }))
    .expect("test config")
}

pub struct Agent {
    pub stats: MqttInputStats,
    pub rx: SampleReceiver,
    pub cancel: CancellationToken,
    pub handle: JoinHandle<Result<(), mqtt::MqttSourceError>>,
}

impl Agent {
    pub fn start(config: Config) -> Agent {
        let (tx, rx) = sample_channel();
        let stats = MqttInputStats::new();
        let cancel = CancellationToken::new();
        let handle = tokio::spawn(mqtt::run_with_stats(
            Arc::new(config),
            tx,
            cancel.clone(),
            stats.clone(),
        ));
        Agent {
            stats,
            rx,
            cancel,
            handle,
        }
    }

    pub async fn wait_subscribed(&self) {
        let t0 = Instant::now();
        while self.stats.snapshot().subscribed == 0 {
            assert!(t0.elapsed() < WAIT, "agent never subscribed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Exactly `n` samples, or a panic after the bound.
    pub async fn samples(&mut self, n: usize) -> Vec<Sample> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            match tokio::time::timeout(WAIT, self.rx.recv()).await {
                Ok(Some(s)) => out.push(s),
                other => panic!("got {} of {n} samples, then {other:?}", out.len()),
            }
        }
        out
    }

    pub async fn stop(self) -> Duration {
        let t0 = Instant::now();
        self.cancel.cancel();
        let r = tokio::time::timeout(Duration::from_secs(5), self.handle)
            .await
            .expect("run ends within 5 s of cancel");
        r.expect("task").expect("run ends cleanly");
        t0.elapsed()
    }
}

pub struct Publisher {
    pub client: AsyncClient,
}

impl Publisher {
    pub fn connect(port: u16, id: &str) -> Publisher {
        let mut o = MqttOptions::new(id, "127.0.0.1", port);
        o.set_keep_alive(Duration::from_secs(5));
        o.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut el) = AsyncClient::new(o, 2000);
        tokio::spawn(async move {
            // Drives the publisher until its connection ends or the test's runtime stops.
            while el.poll().await.is_ok() {}
        });
        Publisher { client }
    }

    pub async fn send(&self, topic: &str, payload: impl Into<Vec<u8>>) {
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload.into())
            .await
            .expect("publish queued");
    }
}

impl Agent {
    /// Collect integer sample values until every number of `want` is seen (duplicates allowed).
    pub async fn collect_numbers(
        &mut self,
        want: &BTreeSet<i64>,
        within: Duration,
    ) -> BTreeSet<i64> {
        let mut seen = BTreeSet::new();
        let deadline = tokio::time::Instant::now() + within;
        while !want.is_subset(&seen) {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(Sample {
                    value: Some(Value::Int(n)),
                    ..
                })) => {
                    seen.insert(n);
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        seen
    }
}

/// One machine whose `total_count` is `$.n` of the JSON messages on `topic`.
pub fn numbered_machine(topic: &str) -> serde_json::Value {
    json!([{"id": "m", "signals": {"total_count": {"topic": topic, "json": "$.n"}}}])
}
