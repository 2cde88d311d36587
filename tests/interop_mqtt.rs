//! The MQTT input against Mosquitto (Debian), fed by `mosquitto_pub` and by paho-mqtt
//! (`$SHOPFLOOR_PYTHON tests/interop/paho_publish.py`), including broker and agent restarts
//! with persistent sessions. Run by `.ci/run`: `cargo test --test interop_mqtt -- --ignored`.

mod mqtt_support;

use std::collections::BTreeSet;
use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use mqtt_support::mosquitto::Mosquitto;
use mqtt_support::{config, numbered_machine, Agent};
use serde_json::json;
use shopfloor_agent::publish::broker::free_port;
use shopfloor_agent::sample::{Signal, Value};
use shopfloor_agent::sources::mqtt::BadPayload;

fn python() -> String {
    std::env::var("SHOPFLOOR_PYTHON").unwrap_or_else(|_| "python3".into())
}

async fn run(mut cmd: Command) -> Output {
    let shown = format!("{cmd:?}");
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .unwrap_or_else(|e| panic!("{shown}: {e}"));
    assert!(
        out.status.success(),
        "{shown} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `mosquitto_pub -q 1` of one payload.
async fn mosquitto_pub(port: u16, topic: &str, payload: &str) {
    let mut c = Command::new("mosquitto_pub");
    c.args([
        "-h",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-q",
        "1",
        "-t",
        topic,
        "-m",
        payload,
    ]);
    run(c).await;
}

/// `mosquitto_pub -q 1 -l`: `{"n": i}` for every i in `range`, one message per line.
async fn mosquitto_pub_numbers(port: u16, topic: &str, range: std::ops::RangeInclusive<i64>) {
    let lines: String = range.map(|i| format!("{{\"n\": {i}}}\n")).collect();
    let port = port.to_string();
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new("mosquitto_pub")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-q",
                "1",
                "-t",
                &topic,
                "-l",
            ])
            .stdin(Stdio::piped())
            .spawn()
            .expect("mosquitto_pub on PATH");
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(lines.as_bytes())
                .expect("feed mosquitto_pub");
        }
        let status = child.wait().expect("mosquitto_pub exit");
        assert!(status.success(), "mosquitto_pub -l failed");
    })
    .await
    .expect("join");
}

async fn paho(port: u16, topic: &str, args: &[&str]) {
    let mut c = Command::new(python());
    c.arg(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/interop/paho_publish.py"
    ))
    .args(["--port", &port.to_string(), "--topic", topic])
    .args(args);
    run(c).await;
}

fn numbers(range: std::ops::RangeInclusive<i64>) -> BTreeSet<i64> {
    range.collect()
}

fn missing(want: &BTreeSet<i64>, seen: &BTreeSet<i64>) -> Vec<i64> {
    want.difference(seen).copied().take(20).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "interop: run by .ci/run"]
async fn mosquitto_pub_payloads_become_samples() {
    let dir = tempfile::tempdir().expect("tmp");
    let broker = Mosquitto::start(free_port("127.0.0.1").expect("port"), dir.path());
    let machines = json!([{"id": "press-1", "signals": {
        "total_count": {"topic": "mp/count"},
        "running": {"topic": "mp/run"},
        "state": {"topic": "mp/state", "map": {"RUN": 1, "IDLE": 2}},
        "good_count": {"topic": "mp/json", "json": "$.counters.good", "timestamp": "$.ts"},
        "reject_count": {"topic": "mp/bad", "json": "$.rej"}
    }}]);
    let mut agent = Agent::start(config(broker.port(), "mp-agent", machines, json!([])));
    agent.wait_subscribed().await;
    let p = broker.port();
    mosquitto_pub(p, "mp/count", "1234").await;
    mosquitto_pub(p, "mp/run", "true").await;
    mosquitto_pub(p, "mp/state", "RUN").await;
    mosquitto_pub(
        p,
        "mp/json",
        r#"{"counters":{"good":9},"ts":1709532000000}"#,
    )
    .await;
    mosquitto_pub(p, "mp/bad", "{oops").await;
    let s = agent.samples(5).await;
    let got: Vec<_> = s.iter().map(|s| (s.signal, s.value.clone())).collect();
    assert_eq!(
        got,
        [
            (Signal::TotalCount, Some(Value::Int(1234))),
            (Signal::Running, Some(Value::Bool(true))),
            (Signal::State, Some(Value::Int(1))),
            (Signal::GoodCount, Some(Value::Int(9))),
            (Signal::RejectCount, None),
        ]
    );
    assert_eq!(s[3].ts.as_millisecond(), 1_709_532_000_000);
    assert_eq!(agent.stats.snapshot().bad("mp/bad", BadPayload::NotJson), 1);
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "interop: run by .ci/run"]
async fn paho_payloads_and_wildcard_template_become_samples() {
    let dir = tempfile::tempdir().expect("tmp");
    let broker = Mosquitto::start(free_port("127.0.0.1").expect("port"), dir.path());
    let machines = json!([{"id": "cell-7"}, {"id": "cell-8"}]);
    let inputs = json!([
        {"topic": "paho/+/count", "machine_segment": 1, "signal": "total_count",
         "json": "/count", "scale": 10.0},
        {"topic": "paho/+/status", "machine_segment": 1, "signal": "running",
         "map": {"RUN": true, "IDLE": false}}
    ]);
    let mut agent = Agent::start(config(broker.port(), "paho-agent", machines, inputs));
    agent.wait_subscribed().await;
    let p = broker.port();
    paho(p, "paho/cell-7/count", &["--message", r#"{"count": 4}"#]).await;
    paho(p, "paho/cell-8/status", &["--message", "IDLE"]).await;
    paho(p, "paho/ghost/status", &["--message", "RUN"]).await;
    paho(p, "paho/cell-7/status", &["--hex", "ff28"]).await;
    let s = agent.samples(3).await;
    let got: Vec<_> = s
        .iter()
        .map(|s| (s.machine.to_string(), s.signal, s.value.clone()))
        .collect();
    assert_eq!(
        got,
        [
            ("cell-7".into(), Signal::TotalCount, Some(Value::Int(40))),
            ("cell-8".into(), Signal::Running, Some(Value::Bool(false))),
            ("cell-7".into(), Signal::Running, None),
        ]
    );
    let snap = agent.stats.snapshot();
    assert_eq!(snap.unknown_machine, 1);
    assert_eq!(snap.bad("paho/cell-7/status", BadPayload::NotUtf8), 1);
    agent.stop().await;
}

/// The agent stays subscribed with a persistent session while Mosquitto is stopped (SIGTERM,
/// persistence saved) and restarted on the same port: no QoS 1 message is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "interop: run by .ci/run"]
async fn broker_restart_mid_stream_loses_no_qos1_message() {
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_port("127.0.0.1").expect("port");
    let mut broker = Mosquitto::start(port, dir.path());
    let topic = "restart/count";
    let mut agent = Agent::start(config(
        port,
        "restart-agent",
        numbered_machine(topic),
        json!([]),
    ));
    agent.wait_subscribed().await;

    mosquitto_pub_numbers(port, topic, 1..=3000).await;
    // Stop right after the publisher's last PUBACK: what the agent has not yet taken is in the
    // broker's queue for its session and must survive through the persistence file.
    broker.stop();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut broker = Mosquitto::start(port, dir.path());
    let subscribed = agent.stats.snapshot().subscribed;
    paho(port, topic, &["--seq", "3001", "1000"]).await;
    mosquitto_pub_numbers(port, topic, 4001..=5000).await;

    let want = numbers(1..=5000);
    let seen = agent.collect_numbers(&want, Duration::from_secs(60)).await;
    assert!(
        want.is_subset(&seen),
        "missing after broker restart: {:?}…; broker log: {}",
        missing(&want, &seen),
        broker.log()
    );
    let snap = agent.stats.snapshot();
    assert!(snap.connects >= 2, "reconnected: {snap:?}");
    assert!(snap.subscribed >= subscribed);
    agent.stop().await;
    broker.stop();
}

/// Mosquitto is killed (SIGTERM) and restarted while a publisher streams numbered QoS 1 messages,
/// each re-sent until acknowledged: the agent reconnects with backoff and misses no number.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "interop: run by .ci/run"]
async fn broker_killed_while_streaming_then_restarted_loses_no_qos1_message() {
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_port("127.0.0.1").expect("port");
    let mut broker = Mosquitto::start(port, dir.path());
    let topic = "stream/count";
    let mut agent = Agent::start(config(
        port,
        "stream-agent",
        numbered_machine(topic),
        json!([]),
    ));
    agent.wait_subscribed().await;
    let mut publisher = Command::new(python());
    publisher
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/interop/paho_publish.py"
        ))
        .args(["--port", &port.to_string(), "--topic", topic])
        .args(["--seq", "1", "2000", "--resilient", "--delay-ms", "1"]);
    let streaming = tokio::spawn(run(publisher));
    // Mid-stream: let some hundreds through, stop the broker, leave it down, bring it back.
    let t0 = std::time::Instant::now();
    while agent.stats.messages() < 300 {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "stream did not start"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    broker.stop();
    let at_stop = agent.stats.messages();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let mut broker = Mosquitto::start(port, dir.path());
    tokio::time::timeout(Duration::from_secs(90), streaming)
        .await
        .expect("publisher finishes")
        .expect("publisher task");
    let want = numbers(1..=2000);
    let seen = agent.collect_numbers(&want, Duration::from_secs(30)).await;
    assert!(
        want.is_subset(&seen),
        "missing after a mid-stream broker restart: {:?}…",
        missing(&want, &seen)
    );
    assert!(
        at_stop < 2000,
        "the broker stopped mid-stream ({at_stop} received before)"
    );
    assert!(agent.stats.snapshot().connects >= 2);
    agent.stop().await;
    broker.stop();
}

/// Messages published while the agent is down are delivered when it comes back with the same
/// client id (persistent session, clean_session off).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "interop: run by .ci/run"]
async fn messages_sent_while_the_agent_is_down_arrive_when_it_returns() {
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_port("127.0.0.1").expect("port");
    let mut broker = Mosquitto::start(port, dir.path());
    let topic = "offline/count";
    let cfg = || config(port, "offline-agent", numbered_machine(topic), json!([]));
    let agent = Agent::start(cfg());
    agent.wait_subscribed().await;
    agent.stop().await;

    paho(port, topic, &["--seq", "1", "1500"]).await;
    mosquitto_pub_numbers(port, topic, 1501..=2000).await;

    let mut agent = Agent::start(cfg());
    let want = numbers(1..=2000);
    let seen = agent.collect_numbers(&want, Duration::from_secs(60)).await;
    assert!(
        want.is_subset(&seen),
        "missing after agent restart: {:?}…",
        missing(&want, &seen)
    );
    agent.stop().await;
    broker.stop();
}

/// Both restarts at once: the agent is down while the broker restarts, and queued messages
/// still arrive from the persisted session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "interop: run by .ci/run"]
async fn queued_messages_survive_a_broker_restart_while_the_agent_is_down() {
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_port("127.0.0.1").expect("port");
    let mut broker = Mosquitto::start(port, dir.path());
    let topic = "both/count";
    let cfg = || config(port, "both-agent", numbered_machine(topic), json!([]));
    let agent = Agent::start(cfg());
    agent.wait_subscribed().await;
    agent.stop().await;
    mosquitto_pub_numbers(port, topic, 1..=500).await;
    broker.stop();
    let mut broker = Mosquitto::start(port, dir.path());
    let mut agent = Agent::start(cfg());
    let want = numbers(1..=500);
    let seen = agent.collect_numbers(&want, Duration::from_secs(30)).await;
    assert!(
        want.is_subset(&seen),
        "missing: {:?}…",
        missing(&want, &seen)
    );
    agent.stop().await;
    broker.stop();
}
