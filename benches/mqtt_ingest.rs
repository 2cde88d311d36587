//! QoS 1 messages from a local Mosquitto into samples, sustained, with the agent's MQTT input on a
//! single-threaded tokio runtime (one core); `mosquitto_sub -q 1` counts the same stream for comparison.
//! `cargo bench --bench mqtt_ingest [-- MESSAGES]` (default 200000). Skips when `mosquitto` is absent.

#[path = "../tests/common/mosquitto.rs"]
mod mosquitto;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};
use shopfloor_agent::config::Config;
use shopfloor_agent::publish::broker::free_port;
use shopfloor_agent::sample::sample_channel;
use shopfloor_agent::sources::mqtt::{self, MqttInputStats};
use tokio_util::sync::CancellationToken;

/// Each phase has its own topic so the first phase's session does not queue the second's messages.
fn topic(phase: &str) -> String {
    format!("bench/{phase}/press-1/count")
}
const BOUND: Duration = Duration::from_secs(300);

/// First and last arrival of a counted stream.
#[derive(Debug, Clone, Copy, Default)]
struct Span {
    count: u64,
    first: Option<Instant>,
    last: Option<Instant>,
}

impl Span {
    fn hit(&mut self, now: Instant) {
        self.first.get_or_insert(now);
        self.last = Some(now);
        self.count += 1;
    }

    fn rate(&self) -> f64 {
        match (self.first, self.last) {
            (Some(a), Some(b)) if b > a && self.count > 1 => {
                (self.count - 1) as f64 / (b - a).as_secs_f64()
            }
            _ => f64::NAN,
        }
    }
}

fn main() {
    let n: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(200_000);
    if !mosquitto::available() {
        println!("mqtt_ingest: skipped, `mosquitto` is not on PATH (apt-get install -y mosquitto mosquitto-clients)");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port("127.0.0.1").expect("free port");
    let mut broker = mosquitto::Mosquitto::start(port, dir.path());
    println!("mqtt_ingest: {n} QoS 1 messages via Mosquitto on 127.0.0.1 (JSON payloads, `$.n`, template route)");

    // 1. Live stream: agent and mosquitto_sub connected while the publisher pushes.
    let stats = MqttInputStats::new();
    let cancel = CancellationToken::new();
    let agent = spawn_agent(port, "live", n, &stats, &cancel);
    wait_subscribed(&stats);
    let sub = MosquittoSub::start(port, "live", n, None);
    // mosquitto_sub has no "subscribed" signal: give it a moment.
    std::thread::sleep(Duration::from_secs(1));
    let t = Instant::now();
    let published = publisher(port, "live", n);
    let secs = t.elapsed().as_secs_f64();
    println!(
        "  publisher (rumqttc, inflight 1000): {published} acknowledged in {secs:.2} s = {:.0} msg/s",
        published as f64 / secs
    );
    report(
        "live stream",
        agent.join().expect("agent"),
        &stats,
        sub.finish(),
    );

    // 2. Backlog drain: both subscribe with persistent sessions, go away, the broker queues n
    //    messages for each, then both come back at once and drain as fast as they can.
    let stats = MqttInputStats::new();
    let cancel = CancellationToken::new();
    spawn_agent(port, "backlog", 0, &stats, &cancel)
        .join()
        .expect("agent registers its session");
    MosquittoSub::start(port, "backlog", 1, Some("bench-sub-backlog"))
        .finish_after(Duration::from_secs(1));
    let published = publisher(port, "backlog", n);
    assert_eq!(published, n, "backlog published");
    let stats = MqttInputStats::new();
    let agent = spawn_agent(port, "backlog", n, &stats, &cancel);
    let sub = MosquittoSub::start(port, "backlog", n, Some("bench-sub-backlog"));
    report(
        "backlog drain",
        agent.join().expect("agent"),
        &stats,
        sub.finish(),
    );
    broker.stop();
}

fn wait_subscribed(stats: &MqttInputStats) {
    let t0 = Instant::now();
    while stats.snapshot().subscribed == 0 {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "agent never subscribed"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn report(phase: &str, agent: Span, stats: &MqttInputStats, sub: Span) {
    let snap = stats.snapshot();
    let (agent_rate, sub_rate) = (agent.rate(), sub.rate());
    println!("  [{phase}]");
    println!(
        "    agent MQTT input (1 core, current_thread): {} samples, {} messages, dropped_full {}: {:.0} msg/s",
        agent.count, snap.messages, snap.dropped_full, agent_rate
    );
    println!(
        "    mosquitto_sub -q 1: {} messages: {:.0} msg/s",
        sub.count, sub_rate
    );
    println!(
        "    ratio agent / mosquitto_sub: {:.2}; budget >= 20000 msg/s: {}; aim ratio >= 0.8: {}",
        agent_rate / sub_rate,
        if agent_rate >= 20_000.0 {
            "met"
        } else {
            "NOT met"
        },
        if agent_rate / sub_rate >= 0.8 {
            "met"
        } else {
            "NOT met"
        }
    );
}

/// `mosquitto_sub -q 1 -C n`, its lines timed by a reader thread.
struct MosquittoSub {
    child: std::process::Child,
    reader: std::thread::JoinHandle<Span>,
}

impl MosquittoSub {
    fn start(port: u16, phase: &str, n: u64, persistent_id: Option<&str>) -> MosquittoSub {
        let mut cmd = Command::new("mosquitto_sub");
        cmd.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
            .args(["-t", &topic(phase), "-C", &n.to_string()])
            .stdout(Stdio::piped());
        if let Some(id) = persistent_id {
            cmd.args(["-c", "-i", id]);
        }
        let mut child = cmd.spawn().expect("mosquitto_sub on PATH");
        let out = child.stdout.take().expect("mosquitto_sub stdout");
        let reader = std::thread::spawn(move || {
            let mut span = Span::default();
            for line in BufReader::new(out).lines() {
                if line.is_err() {
                    break;
                }
                span.hit(Instant::now());
            }
            span
        });
        MosquittoSub { child, reader }
    }

    fn finish(mut self) -> Span {
        let span = self.reader.join().expect("mosquitto_sub reader");
        let _ = self.child.wait();
        span
    }

    /// Stop it after `after` (used to register a persistent session).
    fn finish_after(mut self, after: Duration) {
        std::thread::sleep(after);
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
        let _ = self.reader.join();
    }
}

fn spawn_agent(
    port: u16,
    phase: &'static str,
    n: u64,
    stats: &MqttInputStats,
    cancel: &CancellationToken,
) -> std::thread::JoinHandle<Span> {
    let (stats, cancel) = (stats.clone(), cancel.child_token());
    std::thread::spawn(move || agent_thread(port, phase, n, stats, cancel))
}

/// The agent's MQTT input on a current_thread runtime; counts `n` samples (with `n == 0`, it only
/// registers its persistent session and leaves).
fn agent_thread(
    port: u16,
    phase: &str,
    n: u64,
    stats: MqttInputStats,
    cancel: CancellationToken,
) -> Span {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let config: Config = serde_json::from_value(serde_json::json!({
            "site": "bench", "timezone": "UTC",
            "mqtt": {"host": "127.0.0.1", "port": port, "client_id": format!("bench-{phase}")},
            "machines": [{"id": "press-1"}],
            "mqtt_inputs": [{"topic": format!("bench/{phase}/+/count"), "machine_segment": 2,
                             "signal": "total_count", "json": "$.n"}]
        }))
        .expect("bench config");
        let (tx, mut rx) = sample_channel();
        let run = tokio::spawn(mqtt::run_with_stats(
            Arc::new(config),
            tx,
            cancel.clone(),
            stats.clone(),
        ));
        let mut span = Span::default();
        let deadline = tokio::time::Instant::now() + BOUND;
        if n == 0 {
            while stats.snapshot().subscribed == 0 && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        while span.count < n {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(_sample)) => span.hit(Instant::now()),
                _ => break,
            }
        }
        cancel.cancel();
        let _ = run.await;
        span
    })
}

/// Publish `n` QoS 1 messages as fast as the broker acknowledges them; returns the PUBACK count.
fn publisher(port: u16, phase: &str, n: u64) -> u64 {
    let topic = topic(phase);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let mut o = MqttOptions::new("bench-pub", "127.0.0.1", port);
        o.set_keep_alive(Duration::from_secs(30));
        o.set_inflight(1000);
        let (client, mut el) = AsyncClient::new(o, 10_000);
        let feeder = tokio::spawn(async move {
            for i in 0..n {
                let payload = format!("{{\"n\":{i},\"ok\":true}}");
                if client
                    .publish(topic.as_str(), QoS::AtLeastOnce, false, payload)
                    .await
                    .is_err()
                {
                    break;
                }
            }
            client
        });
        let mut acked = 0u64;
        let deadline = tokio::time::Instant::now() + BOUND;
        while acked < n {
            match tokio::time::timeout_at(deadline, el.poll()).await {
                Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => acked += 1,
                Ok(Ok(Event::Outgoing(Outgoing::Disconnect))) | Ok(Err(_)) | Err(_) => break,
                Ok(Ok(_)) => {}
            }
        }
        if let Ok(client) = feeder.await {
            let _ = client.try_disconnect();
            let _ = tokio::time::timeout(Duration::from_secs(1), el.poll()).await;
        }
        acked
    })
}
