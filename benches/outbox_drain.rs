//! Drain a backlog of 100,000 queued QoS 1 messages from the SQLite outbox to a local Mosquitto (budget
//! ≥ 10,000 msg/s). Skips with a message when `mosquitto` is not installed.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use jiff::Timestamp;
use shopfloor_agent::config::{MqttConfig, StorageConfig};
use shopfloor_agent::publish::publisher::{self, StatusInfo};
use shopfloor_agent::store::{Closed, OutMessage, Store, StoreHandle};
use support::Mosquitto;
use tokio_util::sync::CancellationToken;

const N: usize = 100_000;
const PAYLOAD: usize = 512;
const BUDGET: f64 = 10_000.0;

fn main() {
    if !support::mosquitto::available() {
        println!(
            "outbox_drain: SKIPPED — `mosquitto` is not installed (apt-get install -y mosquitto)"
        );
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port();
    let broker = Mosquitto::start(port, dir.path());
    let path = dir.path().join("bench.db");
    let cfg = StorageConfig {
        path: path.clone(),
        ..StorageConfig::default()
    };
    {
        let mut store = Store::open(&path, &cfg).expect("open store");
        let batch: Vec<Closed> = (0..N)
            .map(|i| {
                let msg_id = format!("bench-{i}");
                let mut payload = format!("{{\"msg_id\":\"{msg_id}\",\"seq\":{i},\"pad\":\"");
                payload.push_str(&"x".repeat(PAYLOAD.saturating_sub(payload.len() + 2)));
                payload.push_str("\"}");
                Closed::Evidence(OutMessage {
                    topic: format!("shopfloor/bench/line/m{}/oee/hour", i % 50),
                    qos: 1,
                    retain: false,
                    msg_id,
                    payload: payload.into_bytes(),
                })
            })
            .collect();
        store.commit_closed(&batch).expect("queue backlog");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (elapsed, left) = rt.block_on(async {
        let store = StoreHandle::open(&path, &cfg).expect("store handle");
        assert_eq!(store.outbox_len().await.expect("len"), N as u64);
        let mqtt = MqttConfig {
            port: broker.port(),
            client_id: "bench-drain".into(),
            ..MqttConfig::default()
        };
        let status = StatusInfo {
            version: env!("CARGO_PKG_VERSION").into(),
            config_hash: "bench".into(),
            started: Timestamp::now(),
        };
        let cancel = CancellationToken::new();
        let t0 = Instant::now();
        let task = tokio::spawn(publisher::run(
            mqtt,
            "bench".into(),
            store.clone(),
            status,
            cancel.clone(),
        ));
        let mut left = N as u64;
        while left > 0 && t0.elapsed() < Duration::from_secs(120) {
            tokio::time::sleep(Duration::from_millis(10)).await;
            left = store.outbox_len().await.expect("len");
        }
        let elapsed = t0.elapsed();
        cancel.cancel();
        let _ = task.await;
        (elapsed, left)
    });
    let sent = N as u64 - left;
    let rate = sent as f64 / elapsed.as_secs_f64();
    println!(
        "outbox_drain: {sent} of {N} messages ({PAYLOAD} B, QoS 1, inflight {}) PUBACKed and deleted in {:.2} s = {rate:.0} msg/s (budget ≥ {BUDGET:.0}) {}",
        MqttConfig::default().inflight,
        elapsed.as_secs_f64(),
        if rate >= BUDGET && left == 0 { "OK" } else { "BELOW BUDGET" }
    );
}
