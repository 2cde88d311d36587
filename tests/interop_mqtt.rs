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

/// `mosquitto_pub -h 127.0.0.1 -p PORT -q 1 -t TOPIC`, to complete.
fn mosquitto_pub_cmd(port: u16, topic: &str) -> Command {
    let mut c = Command::new("mosquitto_pub");
    c.args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-q", "1", "-t", topic]);
    c
}

/// `mosquitto_pub -q 1` of one payload.
async fn mosquitto_pub(port: u16, topic: &str, payload: &str) {
    let mut c = mosquitto_pub_cmd(port, topic);
    c.args(["-m", payload]);
    run(c).await;
}

/// `mosquitto_pub -q 1 -l`: `{"n": i}` for every i in `range`, one message per line.
async fn mosquitto_pub_numbers(port: u16, topic: &str, range: std::ops::RangeInclusive<i64>) {
    let lines: String = range.map(|i| format!("{{\"n\": {i}}}\n")).collect();
    let mut cmd = mosquitto_pub_cmd(port, topic);
    cmd.arg("-l");
    tokio::task::spawn_blocking(move || {
        let mut child = cmd
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

/// A CA and a server certificate for 127.0.0.1 (IP SAN), made with the openssl CLI in `dir`.
async fn make_certs(dir: &std::path::Path) {
    let d = dir.to_owned();
    let sh = |args: &[&str]| {
        let mut c = Command::new("openssl");
        c.current_dir(&d).args(args);
        c
    };
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .expect("ext.cnf");
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(sh(&[
        &["req", "-x509"][..],
        &ec,
        &[
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=shopfloor test CA",
        ],
    ]
    .concat()))
    .await;
    run(sh(&[
        &["req"][..],
        &ec,
        &[
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    ]
    .concat()))
    .await;
    run(sh(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]))
    .await;
}

/// TLS (rustls with the ring provider) and username + password_file against Mosquitto; a wrong
/// password keeps the source retrying without ever connecting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "interop: run by .ci/run"]
async fn tls_with_password_file_connects_and_a_wrong_password_does_not() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    make_certs(d).await;
    let mut passwd = Command::new("mosquitto_passwd");
    passwd
        .args(["-b", "-c"])
        .arg(d.join("passwd"))
        .args(["agent", "s3cret"]);
    run(passwd).await;
    let listener = format!(
        "allow_anonymous false\npassword_file {0}/passwd\ncafile {0}/ca.pem\n\
         certfile {0}/server.pem\nkeyfile {0}/server.key\n",
        d.display()
    );
    let port = free_port("127.0.0.1").expect("port");
    let mut broker = Mosquitto::start_with(port, d, &listener);
    std::fs::write(d.join("agent.pw"), "s3cret\n").expect("pw");
    std::fs::write(d.join("wrong.pw"), "guess\n").expect("pw");
    let tls_config = |client: &str, pw: &str| -> shopfloor_agent::config::Config {
        serde_json::from_value(json!({
            "site": "test", "timezone": "UTC",
            "mqtt": {"host": "127.0.0.1", "port": port, "client_id": client, "keep_alive": "5s",
                     "username": "agent", "password_file": d.join(pw),
                     "tls": {"ca_file": d.join("ca.pem")}},
            "machines": numbered_machine("tls/count")
        }))
        .expect("config")
    };
    let intruder = Agent::start(tls_config("tls-wrong", "wrong.pw"));
    let mut agent = Agent::start(tls_config("tls-agent", "agent.pw"));
    agent.wait_subscribed().await;
    let mut publish = mosquitto_pub_cmd(port, "tls/count");
    publish
        .args(["-u", "agent", "-P", "s3cret", "--cafile"])
        .arg(d.join("ca.pem"))
        .args(["-m", r#"{"n": 77}"#]);
    run(publish).await;
    let s = agent.samples(1).await;
    assert_eq!(s[0].value, Some(Value::Int(77)));
    assert_eq!(
        intruder.stats.snapshot().connects,
        0,
        "wrong password refused"
    );
    assert!(
        !intruder.handle.is_finished(),
        "refused source keeps retrying"
    );
    intruder.stop().await;
    agent.stop().await;
    broker.stop();
}

/// A payload far over every limit (2 MiB) is read, counted `too_large` and acknowledged: it must not
/// kill the connection and come back forever from the persistent session (a poison message).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "interop: run by .ci/run"]
async fn huge_payload_is_counted_not_a_poison_message() {
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_port("127.0.0.1").expect("port");
    let mut broker = Mosquitto::start(port, dir.path());
    let topic = "huge/count";
    let mut agent = Agent::start(config(
        port,
        "huge-agent",
        numbered_machine(topic),
        json!([]),
    ));
    agent.wait_subscribed().await;
    let big = dir.path().join("big.bin");
    std::fs::write(&big, vec![b'x'; 2 << 20]).expect("big payload");
    let mut c = mosquitto_pub_cmd(port, topic);
    c.arg("-f").arg(&big);
    run(c).await;
    mosquitto_pub(port, topic, r#"{"n": 5}"#).await;
    let s = agent.samples(2).await;
    assert_eq!(s[0].value, None);
    assert_eq!(s[1].value, Some(Value::Int(5)));
    let snap = agent.stats.snapshot();
    assert_eq!(snap.bad(topic, BadPayload::TooLarge), 1);
    assert_eq!(snap.connection_errors, 0, "{snap:?}");
    agent.stop().await;
    broker.stop();
}
