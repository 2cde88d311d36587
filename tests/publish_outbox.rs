//! The publisher against a real broker (rumqttd in-process) over TCP, through a proxy that cuts and freezes
//! connections, with the outbox in a real SQLite file.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::json;
use shopfloor_agent::config::{BrokerMode, HumanDuration, MqttConfig, StorageConfig};
use shopfloor_agent::publish::broker::{free_port, EmbeddedBroker};
use shopfloor_agent::publish::publisher::{self, PublishError};
use shopfloor_agent::store::{OutMessage, StoreHandle};
use support::{
    assert_complete_in_order, eventually, open_store, start_publisher, Proxy, Received, Subscriber,
};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const STATUS: &str = "shopfloor/plant/agent/status";
const LONG: Duration = Duration::from_secs(30);

fn mqtt(port: u16, client_id: &str) -> MqttConfig {
    MqttConfig {
        port,
        client_id: client_id.into(),
        inflight: 20,
        keep_alive: HumanDuration::from_secs(5),
        ..MqttConfig::default()
    }
}

async fn stop(cancel: CancellationToken, task: JoinHandle<Result<(), PublishError>>) {
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("publisher stops within 10 s")
        .expect("publisher task")
        .expect("publisher ends cleanly");
}

fn message(topic: &str, msg_id: &str, seq: usize, qos: u8, retain: bool) -> OutMessage {
    OutMessage {
        topic: topic.into(),
        qos,
        retain,
        msg_id: msg_id.into(),
        payload: json!({"msg_id": msg_id, "seq": seq})
            .to_string()
            .into_bytes(),
    }
}

async fn enqueue(store: &StoreHandle, topic: &str, range: std::ops::Range<usize>) {
    for i in range {
        store
            .enqueue(message(topic, &format!("{topic}#{i}"), i, 1, false), "stop")
            .await
            .unwrap();
    }
}

fn statuses(got: &[Received]) -> Vec<String> {
    got.iter()
        .filter(|r| r.topic == STATUS)
        .map(|r| r.payload["status"].as_str().unwrap_or("").to_owned())
        .collect()
}

fn online_count(got: &[Received]) -> usize {
    statuses(got).iter().filter(|s| *s == "online").count()
}

#[tokio::test]
async fn outbox_drains_in_order_and_rows_are_deleted_only_after_their_puback() {
    let broker = EmbeddedBroker::start_local().unwrap();
    let proxy = Proxy::start(broker.addr()).await;
    let sub = Subscriber::start(broker.port(), "sub-order", "shopfloor/#").await;
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir.path().join("a.db"));
    let (cancel, task) = start_publisher(mqtt(proxy.port(), "pub-order"), &store);
    sub.wait_for(LONG, "birth", |g| online_count(g) == 1).await;

    // Frozen network: the rows are handed to the client and written, but no PUBACK can come back.
    proxy.pause();
    enqueue(&store, "shopfloor/plant/l/m1/stop", 0..100).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        store.outbox_len().await.unwrap(),
        100,
        "nothing deleted without a PUBACK"
    );
    assert!(sub.received().iter().all(|r| r.topic == STATUS));

    proxy.restore();
    let expected = BTreeMap::from([("shopfloor/plant/l/m1/stop".to_owned(), 100)]);
    let got = sub
        .wait_for(LONG, "100 messages", |g| {
            g.iter().filter(|r| r.topic.ends_with("/stop")).count() >= 100
        })
        .await;
    assert_eq!(
        assert_complete_in_order(&got, &expected),
        0,
        "no re-send was needed"
    );
    eventually(LONG, "outbox empty", || async {
        store.outbox_len().await.unwrap() == 0
    })
    .await;
    stop(cancel, task).await;
}

#[tokio::test]
async fn broker_outage_mid_production_loses_no_qos1_message_and_keeps_order_per_topic() {
    let broker = EmbeddedBroker::start_local().unwrap();
    let proxy = Proxy::start(broker.addr()).await;
    let sub = Subscriber::start(broker.port(), "sub-outage", "shopfloor/#").await;
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir.path().join("a.db"));
    let (cancel, task) = start_publisher(mqtt(proxy.port(), "pub-outage"), &store);
    sub.wait_for(LONG, "birth", |g| online_count(g) == 1).await;

    let topics: Vec<String> = (0..3)
        .map(|m| format!("shopfloor/plant/l/m{m}/oee/hour"))
        .collect();
    let producer = {
        let (store, topics) = (store.clone(), topics.clone());
        tokio::spawn(async move {
            for i in 0..1500 {
                let t = &topics[i % 3];
                store
                    .enqueue(message(t, &format!("{t}#{i}"), i, 1, false), "hour")
                    .await
                    .unwrap();
                if i % 10 == 9 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(800)).await;
    proxy.cut();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during = store.outbox_len().await.unwrap();
    assert!(during > 0, "the outbox grows during the outage");
    proxy.restore();
    producer.await.unwrap();

    let expected: BTreeMap<String, usize> = topics.iter().map(|t| (t.clone(), 500)).collect();
    let got = sub
        .wait_for(LONG, "all 1500 distinct messages", |g| {
            let ids: std::collections::HashSet<&str> = g
                .iter()
                .filter(|r| r.topic.ends_with("oee/hour"))
                .map(|r| r.msg_id())
                .collect();
            ids.len() == 1500
        })
        .await;
    let dups = assert_complete_in_order(&got, &expected);
    eprintln!("outage: {during} rows queued during the cut; 1500 delivered, {dups} duplicates (same msg_id)");
    // The outage was real: the broker published the will, then the agent was born again.
    let st = statuses(&got);
    let offline = st
        .iter()
        .position(|s| s == "offline")
        .expect("will published on the cut");
    assert!(st[offline..].iter().any(|s| s == "online"), "{st:?}");
    eventually(LONG, "outbox empty", || async {
        store.outbox_len().await.unwrap() == 0
    })
    .await;
    stop(cancel, task).await;
}

#[tokio::test]
async fn restarted_publisher_resends_rows_that_were_never_acknowledged() {
    let broker = EmbeddedBroker::start_local().unwrap();
    let proxy = Proxy::start(broker.addr()).await;
    let sub = Subscriber::start(broker.port(), "sub-restart", "shopfloor/#").await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let topic = "shopfloor/plant/l/m1/oee/shift";
    {
        let store = open_store(&path);
        let (cancel, task) = start_publisher(mqtt(proxy.port(), "pub-restart"), &store);
        sub.wait_for(LONG, "birth", |g| online_count(g) == 1).await;
        proxy.pause();
        enqueue(&store, topic, 0..50).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop(cancel, task).await;
        proxy.cut();
        store.close().await.unwrap();
    }
    let store = open_store(&path);
    assert_eq!(
        store.outbox_len().await.unwrap(),
        50,
        "un-acked rows survive the restart"
    );
    let (cancel, task) = start_publisher(mqtt(broker.port(), "pub-restart"), &store);
    let got = sub
        .wait_for(LONG, "50 messages", |g| {
            g.iter().filter(|r| r.topic == topic).count() >= 50
        })
        .await;
    assert_complete_in_order(&got, &BTreeMap::from([(topic.to_owned(), 50)]));
    eventually(LONG, "outbox empty", || async {
        store.outbox_len().await.unwrap() == 0
    })
    .await;
    stop(cancel, task).await;
}

#[tokio::test]
async fn live_topics_send_only_their_latest_value_after_an_outage() {
    let broker = EmbeddedBroker::start_local().unwrap();
    let proxy = Proxy::start(broker.addr()).await;
    let sub = Subscriber::start(broker.port(), "sub-live", "shopfloor/#").await;
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir.path().join("a.db"));
    proxy.cut();
    let (cancel, task) = start_publisher(mqtt(proxy.port(), "pub-live"), &store);
    let state = "shopfloor/plant/l/m1/state";
    let current = "shopfloor/plant/l/m1/oee/current";
    for i in 0..30 {
        store
            .set_live(message(state, &format!("st-{i}"), i, 1, true))
            .await
            .unwrap();
        store
            .set_live(message(current, &format!("cur-{i}"), i, 0, true))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.restore();
    sub.wait_for(LONG, "latest live values", |g| {
        g.iter().any(|r| r.msg_id() == "st-29") && g.iter().any(|r| r.msg_id() == "cur-29")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ids = |topic: &str| -> Vec<String> {
        sub.received()
            .iter()
            .filter(|r| r.topic == topic)
            .map(|r| r.msg_id().to_owned())
            .collect()
    };
    assert_eq!(ids(state), ["st-29"]);
    assert_eq!(ids(current), ["cur-29"]);
    eventually(LONG, "QoS 1 live value confirmed", || async {
        store.live_pending().await.unwrap().is_empty()
    })
    .await;

    // Connected: a new value goes out at once.
    store
        .set_live(message(state, "st-30", 30, 1, true))
        .await
        .unwrap();
    sub.wait_for(LONG, "st-30", |g| g.iter().any(|r| r.msg_id() == "st-30"))
        .await;
    stop(cancel, task).await;
}

#[tokio::test]
async fn birth_is_retained_online_and_the_will_says_offline_when_the_connection_is_cut() {
    let broker = EmbeddedBroker::start_local().unwrap();
    let proxy = Proxy::start(broker.addr()).await;
    let sub = Subscriber::start(broker.port(), "sub-status", STATUS).await;
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir.path().join("a.db"));
    let (cancel, task) = start_publisher(mqtt(proxy.port(), "pub-status"), &store);
    let got = sub.wait_for(LONG, "birth", |g| online_count(g) == 1).await;
    let birth = &got.iter().find(|r| r.topic == STATUS).unwrap().payload;
    assert_eq!(birth["schema"], "shopfloor.status.v1");
    assert_eq!(birth["version"], "9.9.9-test");
    assert_eq!(birth["config_hash"], "cafe1234");
    assert_eq!(birth["started"], "2023-11-14T22:13:20Z");
    assert!(birth["drops"].is_object());
    assert!(birth["msg_id"].as_str().is_some_and(|s| !s.is_empty()));

    // A dashboard arriving later gets the retained birth.
    let late = Subscriber::start(broker.port(), "sub-late", STATUS).await;
    let got = late
        .wait_for(LONG, "retained birth", |g| !g.is_empty())
        .await;
    assert!(got[0].retain);
    assert_eq!(got[0].payload["status"], "online");
    drop(late);

    proxy.cut();
    sub.wait_for(LONG, "will", |g| {
        statuses(g).last().is_some_and(|s| s == "offline")
    })
    .await;
    proxy.restore();
    sub.wait_for(LONG, "second birth", |g| online_count(g) == 2)
        .await;

    // A clean stop says offline itself (a clean DISCONNECT suppresses the will; rumqttd may still race one in,
    // so only the explicit message, which carries the version, is required).
    stop(cancel, task).await;
    let got = sub
        .wait_for(LONG, "explicit offline", |g| {
            g.iter()
                .any(|r| r.payload["status"] == "offline" && r.payload["version"] == "9.9.9-test")
        })
        .await;
    let st = statuses(&got);
    assert_eq!(st[..3], ["online", "offline", "online"]);
    assert!(st[3..].iter().all(|s| s == "offline"), "{st:?}");
}

#[tokio::test]
async fn embedded_broker_mode_starts_a_broker_and_publishes_to_it() {
    let port = free_port("127.0.0.1").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir.path().join("a.db"));
    let mut cfg = mqtt(port, "pub-embedded");
    cfg.broker = BrokerMode::Embedded;
    let (cancel, task) = start_publisher(cfg, &store);
    eventually(LONG, "embedded broker listening", || async move {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
    })
    .await;
    let sub = Subscriber::start(port, "sub-embedded", "shopfloor/#").await;
    enqueue(&store, "shopfloor/plant/l/m1/stop", 0..5).await;
    sub.wait_for(LONG, "5 messages", |g| {
        g.iter().filter(|r| r.topic.ends_with("/stop")).count() == 5
    })
    .await;
    stop(cancel, task).await;
}

#[path = "common/logbuf.rs"]
mod logbuf;
use logbuf::LogBuf;

#[tokio::test(flavor = "current_thread")]
async fn password_is_read_from_its_file_and_never_logged() {
    const SECRET: &str = "s3cr3t-Pa55-q7";
    let logs = LogBuf::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let broker = EmbeddedBroker::start_local().unwrap();
    let proxy = Proxy::start(broker.addr()).await;
    let sub = Subscriber::start(broker.port(), "sub-secret", STATUS).await;
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("password");
    std::fs::write(&pw, format!("{SECRET}\n")).unwrap();
    let store = open_store(&dir.path().join("a.db"));
    let mut cfg = mqtt(proxy.port(), "pub-secret");
    cfg.username = Some("agent".into());
    cfg.password_file = Some(pw);
    let (cancel, task) = start_publisher(cfg.clone(), &store);
    sub.wait_for(LONG, "birth", |g| online_count(g) == 1).await;
    proxy.cut();
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.restore();
    sub.wait_for(LONG, "second birth", |g| online_count(g) == 2)
        .await;
    stop(cancel, task).await;

    // A missing password file is an error naming the file, never its contents.
    cfg.password_file = Some(dir.path().join("missing"));
    let err = publisher::run(
        cfg,
        "plant".into(),
        store.clone(),
        support::status(),
        CancellationToken::new(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            PublishError::File {
                what: "password",
                ..
            }
        ),
        "{err}"
    );

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("publisher connected"), "logs were captured");
    assert!(text.contains("publisher disconnected"));
    assert!(!text.contains(SECRET), "the password appears in the logs");
}

#[tokio::test]
async fn a_message_no_broker_would_accept_is_dropped_and_counted_without_blocking_the_rest() {
    let broker = EmbeddedBroker::start_local().unwrap();
    let sub = Subscriber::start(broker.port(), "sub-poison", "shopfloor/#").await;
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir.path().join("a.db"));
    let topic = "shopfloor/plant/l/m1/stop";
    enqueue(&store, topic, 0..3).await;
    store
        .enqueue(
            message("shopfloor/plant/+/bad", "wild", 3, 1, false),
            "stop",
        )
        .await
        .unwrap();
    let mut huge = message(topic, "huge", 4, 1, false);
    huge.payload = vec![b'x'; 2 << 20];
    store.enqueue(huge, "stop").await.unwrap();
    for i in 5..8 {
        store
            .enqueue(message(topic, &format!("{topic}#{i}"), i, 1, false), "stop")
            .await
            .unwrap();
    }
    let (cancel, task) = start_publisher(mqtt(broker.port(), "pub-poison"), &store);
    let got = sub
        .wait_for(LONG, "6 good messages", |g| {
            g.iter().filter(|r| r.topic == topic).count() >= 6
        })
        .await;
    assert_complete_in_order(&got, &BTreeMap::from([(topic.to_owned(), 6)]));
    eventually(LONG, "outbox empty", || async {
        store.outbox_len().await.unwrap() == 0
    })
    .await;
    let drops = store.drop_counts().await.unwrap();
    assert_eq!(drops, [(publisher::UNPUBLISHABLE.to_owned(), 2)]);
    stop(cancel, task).await;
}

#[tokio::test]
async fn drops_by_the_size_bound_are_reported_in_the_status_birth() {
    let broker = EmbeddedBroker::start_local().unwrap();
    let sub = Subscriber::start(broker.port(), "sub-drops", STATUS).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    {
        let cfg = StorageConfig {
            path: path.clone(),
            ..StorageConfig::default()
        };
        let mut store = shopfloor_agent::store::Store::open(&path, &cfg).unwrap();
        let closed: Vec<_> = (0..40)
            .map(|h| {
                let start = Timestamp::from_second(1_700_000_000 + h * 3600).unwrap();
                let msg_id = format!("m1-hour-{h}");
                shopfloor_agent::store::Closed::Summary {
                    record: shopfloor_agent::store::SummaryRecord {
                        machine: "m1".into(),
                        kind: "hour".into(),
                        shift: None,
                        start,
                        end: start,
                        payload: "p".repeat(4000),
                    },
                    message: message(
                        "shopfloor/plant/l/m1/oee/hour",
                        &msg_id,
                        h as usize,
                        1,
                        false,
                    ),
                }
            })
            .collect();
        store.commit_closed(&closed).unwrap();
        let report = store.enforce_size(64 * 1024).unwrap();
        assert!(
            report
                .dropped
                .iter()
                .any(|(w, n)| w == "hour_summary" && *n > 0),
            "{report:?}"
        );
    }
    let store = open_store(&path);
    let dropped = store.drop_counts().await.unwrap()[0].1;
    let (cancel, task) = start_publisher(mqtt(broker.port(), "pub-drops"), &store);
    let got = sub.wait_for(LONG, "birth", |g| online_count(g) == 1).await;
    assert_eq!(got[0].payload["drops"]["hour_summary"], dropped);
    assert!(publisher::wait_drained(&store, LONG).await.unwrap());
    stop(cancel, task).await;
}
