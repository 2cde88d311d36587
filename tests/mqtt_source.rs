//! The MQTT input against a real broker over TCP (rumqttd in-process), fed by a second rumqttc client.

mod mqtt_support;

use std::collections::BTreeMap;
use std::time::Duration;

use mqtt_support::{config, Agent, Publisher};
use serde_json::json;
use shopfloor_agent::publish::broker::{free_port, EmbeddedBroker};
use shopfloor_agent::sample::{Sample, Signal, Value};
use shopfloor_agent::sources::mqtt::{BadPayload, MAX_PAYLOAD_BYTES};

fn by_signal(samples: &[Sample]) -> BTreeMap<(String, Signal), Option<Value>> {
    samples
        .iter()
        .map(|s| ((s.machine.to_string(), s.signal), s.value.clone()))
        .collect()
}

fn key(m: &str, s: Signal) -> (String, Signal) {
    (m.to_owned(), s)
}

#[tokio::test]
async fn every_payload_form_becomes_a_sample() {
    let broker = EmbeddedBroker::start_local().expect("broker");
    let machines = json!([
        {"id": "press-1", "source": {"mqtt": {"topic": "plant/press1/#"}}, "signals": {
            "total_count": {"topic": "plant/press1/count"},
            "running": {"topic": "plant/press1/run"},
            "state": {"topic": "plant/press1/state", "map": {"RUN": 1, "IDLE": 2}},
            "reject_count": {"topic": "plant/press1/rej", "scale": 2.0},
            "good_count": {"topic": "plant/press1/json", "json": "$.good"}
        }},
        {"id": "lathe-2", "signals": {
            "total_count": {"topic": "plant/lathe2/data", "json": "/counters/total",
                            "timestamp": "$.ts"},
            "product": {"topic": "plant/lathe2/data", "json": "$.job.product"},
            "reason": {"topic": "plant/lathe2/data", "json": "$.alarms[0]"},
            "running": {"topic": "plant/lathe2/data", "json": "$.run",
                        "map": {"RUN": true, "STOP": false}}
        }}
    ]);
    let mut agent = Agent::start(config(broker.port(), "forms", machines, json!([])));
    agent.wait_subscribed().await;
    let before = jiff::Timestamp::now();
    let p = Publisher::connect(broker.port(), "forms-pub");
    p.send("plant/press1/count", "1234").await;
    p.send("plant/press1/run", "true").await;
    p.send("plant/press1/state", "IDLE").await;
    p.send("plant/press1/rej", "2.5").await;
    p.send("plant/press1/json", r#"{"good": 17}"#).await;
    p.send(
        "plant/lathe2/data",
        r#"{"ts":"2024-03-04T06:00:00Z","counters":{"total":900},"job":{"product":"A-12"},
            "alarms":[42,7],"run":"RUN"}"#,
    )
    .await;
    let samples = agent.samples(9).await;
    let got = by_signal(&samples);
    assert_eq!(
        got[&key("press-1", Signal::TotalCount)],
        Some(Value::Int(1234))
    );
    assert_eq!(
        got[&key("press-1", Signal::Running)],
        Some(Value::Bool(true))
    );
    assert_eq!(got[&key("press-1", Signal::State)], Some(Value::Int(2)));
    assert_eq!(
        got[&key("press-1", Signal::RejectCount)],
        Some(Value::Int(5))
    );
    assert_eq!(
        got[&key("press-1", Signal::GoodCount)],
        Some(Value::Int(17))
    );
    assert_eq!(
        got[&key("lathe-2", Signal::TotalCount)],
        Some(Value::Int(900))
    );
    assert_eq!(
        got[&key("lathe-2", Signal::Product)],
        Some(Value::Text("A-12".into()))
    );
    assert_eq!(got[&key("lathe-2", Signal::Reason)], Some(Value::Int(42)));
    assert_eq!(
        got[&key("lathe-2", Signal::Running)],
        Some(Value::Bool(true))
    );
    for s in &samples {
        if &*s.machine == "lathe-2" && s.signal == Signal::TotalCount {
            assert_eq!(
                s.ts.to_string(),
                "2024-03-04T06:00:00Z",
                "payload timestamp"
            );
        } else {
            assert!(s.ts >= before, "arrival time without a timestamp field");
        }
    }
    let snap = agent.stats.snapshot();
    assert_eq!((snap.messages, snap.samples), (6, 9));
    assert!(snap.bad_payloads.is_empty());
    agent.stop().await;
}

#[tokio::test]
async fn every_bad_payload_class_gives_a_null_sample_and_a_counter() {
    let broker = EmbeddedBroker::start_local().expect("broker");
    let machines = json!([{"id": "m", "signals": {
        "total_count": {"topic": "bad/json", "json": "$.count"},
        "good_count": {"topic": "bad/plain"},
        "running": {"topic": "bad/ts", "json": "$.run", "timestamp": "$.ts"}
    }}]);
    let mut agent = Agent::start(config(broker.port(), "bad", machines, json!([])));
    agent.wait_subscribed().await;
    let p = Publisher::connect(broker.port(), "bad-pub");
    let cases: Vec<(&str, Vec<u8>, BadPayload)> = vec![
        ("bad/json", b"{not json".to_vec(), BadPayload::NotJson),
        (
            "bad/json",
            br#"{"other":1}"#.to_vec(),
            BadPayload::MissingField,
        ),
        (
            "bad/json",
            br#"{"count":[1,2]}"#.to_vec(),
            BadPayload::WrongType,
        ),
        (
            "bad/json",
            br#"{"count":"NaN"}"#.to_vec(),
            BadPayload::NotFinite,
        ),
        (
            "bad/json",
            br#"{"count":1e999}"#.to_vec(),
            BadPayload::NotFinite,
        ),
        (
            "bad/json",
            vec![b'{', 0xff, 0xfe, b'}'],
            BadPayload::NotUtf8,
        ),
        (
            "bad/json",
            vec![b' '; MAX_PAYLOAD_BYTES + 10],
            BadPayload::TooLarge,
        ),
        ("bad/plain", b"inf".to_vec(), BadPayload::NotFinite),
        ("bad/plain", b"lots".to_vec(), BadPayload::WrongType),
        (
            "bad/ts",
            br#"{"run":true,"ts":"not a time"}"#.to_vec(),
            BadPayload::BadTimestamp,
        ),
    ];
    for (topic, payload, _) in &cases {
        p.send(topic, payload.clone()).await;
    }
    let samples = agent.samples(cases.len()).await;
    assert!(
        samples.iter().all(|s| s.value.is_none()),
        "every bad payload is a null sample: {samples:?}"
    );
    let snap = agent.stats.snapshot();
    let mut expected: BTreeMap<(&str, BadPayload), u64> = BTreeMap::new();
    for (topic, _, reason) in &cases {
        *expected.entry((topic, *reason)).or_default() += 1;
    }
    for ((topic, reason), n) in expected {
        assert_eq!(snap.bad(topic, reason), n, "{topic} {}", reason.as_str());
    }
    agent.stop().await;
}

#[tokio::test]
async fn wildcard_template_takes_machine_id_from_topic_and_drops_unknown_ids() {
    let broker = EmbeddedBroker::start_local().expect("broker");
    let machines = json!([{"id": "press-1"}, {"id": "press-2"}]);
    let inputs = json!([{"topic": "sensors/+/count", "machine_segment": 1,
                         "signal": "total_count", "json": "$.n"}]);
    let mut agent = Agent::start(config(broker.port(), "tpl", machines, inputs));
    agent.wait_subscribed().await;
    let p = Publisher::connect(broker.port(), "tpl-pub");
    p.send("sensors/press-2/count", r#"{"n": 5}"#).await;
    p.send("sensors/ghost/count", r#"{"n": 6}"#).await;
    p.send("sensors/press-1/count", r#"{"n": 7}"#).await;
    let samples = agent.samples(2).await;
    let got = by_signal(&samples);
    assert_eq!(
        got[&key("press-2", Signal::TotalCount)],
        Some(Value::Int(5))
    );
    assert_eq!(
        got[&key("press-1", Signal::TotalCount)],
        Some(Value::Int(7))
    );
    let snap = agent.stats.snapshot();
    assert_eq!((snap.messages, snap.unknown_machine), (3, 1));
    agent.stop().await;
}

#[tokio::test]
async fn source_keeps_running_after_a_thousand_garbage_messages() {
    let broker = EmbeddedBroker::start_local().expect("broker");
    let machines = json!([{"id": "m", "signals": {
        "total_count": {"topic": "g/count", "json": "$.n"}}}]);
    let mut agent = Agent::start(config(broker.port(), "garbage", machines, json!([])));
    agent.wait_subscribed().await;
    let p = Publisher::connect(broker.port(), "garbage-pub");
    for i in 0..1000u32 {
        let junk: Vec<u8> = match i % 4 {
            0 => vec![0xc3, 0x28, i as u8],
            1 => format!("garbage {i}").into_bytes(),
            2 => br#"{"n": "x"}"#.to_vec(),
            _ => Vec::new(),
        };
        p.send("g/count", junk).await;
    }
    p.send("g/count", r#"{"n": 41}"#).await;
    let samples = agent.samples(1001).await;
    assert!(samples[..1000].iter().all(|s| s.value.is_none()));
    assert_eq!(samples[1000].value, Some(Value::Int(41)));
    let snap = agent.stats.snapshot();
    let bad: u64 = snap.bad_payloads["g/count"].values().sum();
    assert_eq!(bad, 1000);
    agent.stop().await;
}

#[tokio::test]
async fn cancellation_ends_run_promptly_and_disconnects() {
    let broker = EmbeddedBroker::start_local().expect("broker");
    let machines = json!([{"id": "m", "signals": {"running": {"topic": "c/run"}}}]);
    let agent = Agent::start(config(broker.port(), "cancel", machines, json!([])));
    agent.wait_subscribed().await;
    let took = agent.stop().await;
    assert!(took < Duration::from_secs(3), "took {took:?}");
}

#[tokio::test]
async fn no_mqtt_machine_means_run_just_waits_for_cancel() {
    let machines = json!([{"id": "plc", "source": {"modbus": {"host": "127.0.0.1"}},
                           "signals": {"running": {"register": "coil", "address": 0}}}]);
    // Port 9 (discard) is never contacted: nothing to subscribe to.
    let agent = Agent::start(config(9, "none", machines, json!([])));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!agent.handle.is_finished());
    assert_eq!(agent.stats.snapshot().connects, 0);
    let took = agent.stop().await;
    assert!(took < Duration::from_secs(1));
}

#[tokio::test]
async fn source_connects_with_backoff_once_the_broker_appears() {
    let port = free_port("127.0.0.1").expect("port");
    let machines = json!([{"id": "m", "signals": {"total_count": {"topic": "late/count"}}}]);
    let mut agent = Agent::start(config(port, "late", machines, json!([])));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(agent.stats.snapshot().connects, 0);
    let broker = EmbeddedBroker::start("127.0.0.1", port).expect("broker on the reserved port");
    agent.wait_subscribed().await;
    let p = Publisher::connect(broker.port(), "late-pub");
    p.send("late/count", "3").await;
    let s = agent.samples(1).await;
    assert_eq!(s[0].value, Some(Value::Int(3)));
    agent.stop().await;
}

#[tokio::test]
async fn cancel_while_the_broker_is_unreachable_ends_run_promptly() {
    let port = free_port("127.0.0.1").expect("port");
    let machines = json!([{"id": "m", "signals": {"total_count": {"topic": "x/count"}}}]);
    let agent = Agent::start(config(port, "unreachable", machines, json!([])));
    tokio::time::sleep(Duration::from_millis(700)).await;
    let took = agent.stop().await;
    assert!(took < Duration::from_secs(1), "took {took:?}");
}
