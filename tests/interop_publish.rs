//! Interop with a real Mosquitto process: a broker restart in the middle of a drain loses nothing; TLS with a
//! client certificate. Run by `.ci/run` (needs `mosquitto` and `openssl`).

mod support;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::json;
use shopfloor_agent::config::{HumanDuration, MqttConfig, TlsConfig};
use shopfloor_agent::publish::broker::free_port;
use shopfloor_agent::store::{OutMessage, StoreHandle};
use support::{
    assert_complete_in_order, eventually, open_store, start_publisher, Mosquitto, Subscriber,
};

const LONG: Duration = Duration::from_secs(60);

async fn enqueue(store: &StoreHandle, topics: &[String], n: usize) {
    for i in 0..n {
        let topic = &topics[i % topics.len()];
        let msg_id = format!("{topic}#{i}");
        let payload = json!({"msg_id": msg_id, "seq": i}).to_string().into_bytes();
        let m = OutMessage {
            topic: topic.clone(),
            qos: 1,
            retain: false,
            msg_id,
            payload,
        };
        store.enqueue(m, "hour").await.unwrap();
    }
}

#[tokio::test]
#[ignore = "interop: run by .ci/run"]
async fn mosquitto_restart_mid_drain_loses_no_message() {
    let broker_dir = tempfile::tempdir().unwrap();
    let mut broker = Mosquitto::start(free_port("127.0.0.1").unwrap(), broker_dir.path());
    let sub = Subscriber::start_with(broker.port(), "interop-sub", "shopfloor/#", true).await;
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir.path().join("a.db"));
    let topics: Vec<String> = (0..4)
        .map(|m| format!("shopfloor/plant/l/m{m}/oee/hour"))
        .collect();
    const N: usize = 20_000;
    enqueue(&store, &topics, N).await;

    let mqtt = MqttConfig {
        port: broker.port(),
        client_id: "interop-pub".into(),
        keep_alive: HumanDuration::from_secs(5),
        ..MqttConfig::default()
    };
    let (cancel, task) = start_publisher(mqtt, &store);
    sub.wait_for(LONG, "drain under way", |g| g.len() > 2000)
        .await;
    let before = store.outbox_len().await.unwrap();
    assert!(before > 0, "restart happens mid-drain");
    broker.restart();

    let got = sub
        .wait_for(LONG, "every message", |g| {
            g.iter()
                .filter(|r| r.topic.ends_with("oee/hour"))
                .map(|r| r.msg_id())
                .collect::<HashSet<_>>()
                .len()
                == N
        })
        .await;
    let expected: BTreeMap<String, usize> = topics
        .iter()
        .map(|t| (t.clone(), N / topics.len()))
        .collect();
    let dups = assert_complete_in_order(&got, &expected);
    eprintln!("mosquitto restart with {before} rows queued: {N} delivered, {dups} duplicates (same msg_id)");
    eventually(LONG, "outbox empty", || async {
        store.outbox_len().await.unwrap() == 0
    })
    .await;
    cancel.cancel();
    task.await.unwrap().unwrap();
}

fn openssl(dir: &Path, args: &[&str]) {
    let ok = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl installed")
        .success();
    assert!(ok, "openssl {args:?}");
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA.
fn make_certs(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=test-ca",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
        ],
    );
    for (name, ext) in [
        ("server", "subjectAltName=IP:127.0.0.1"),
        ("client", "extendedKeyUsage=clientAuth"),
    ] {
        std::fs::write(dir.join(format!("{name}.ext")), format!("{ext}\n")).unwrap();
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                &format!("/CN={name}"),
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &format!("{name}.ext"),
                "-out",
                &format!("{name}.crt"),
            ],
        );
    }
}

#[tokio::test]
#[ignore = "interop: run by .ci/run"]
async fn tls_with_client_certificate_publishes_to_mosquitto() {
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path());
    let c = certs.path().display().to_string();
    // A TLS listener requiring client certificates, and a plain one for the test's subscriber.
    let plain = free_port("127.0.0.1").unwrap();
    let conf = format!(
        "allow_anonymous true\ncafile {c}/ca.crt\ncertfile {c}/server.crt\nkeyfile {c}/server.key\n\
         require_certificate true\nlistener {plain} 127.0.0.1\nallow_anonymous true\n"
    );
    let broker_dir = tempfile::tempdir().unwrap();
    let broker = Mosquitto::start_with(free_port("127.0.0.1").unwrap(), broker_dir.path(), &conf);
    let sub = Subscriber::start(plain, "tls-sub", "shopfloor/#").await;
    let dir = tempfile::tempdir().unwrap();
    let store = open_store(&dir.path().join("a.db"));
    let topics = vec!["shopfloor/plant/l/m1/stop".to_owned()];
    enqueue(&store, &topics, 10).await;
    let mqtt = MqttConfig {
        port: broker.port(),
        client_id: "tls-pub".into(),
        tls: Some(TlsConfig {
            ca_file: certs.path().join("ca.crt"),
            cert_file: Some(certs.path().join("client.crt")),
            key_file: Some(certs.path().join("client.key")),
        }),
        ..MqttConfig::default()
    };
    let (cancel, task) = start_publisher(mqtt, &store);
    let got = sub
        .wait_for(LONG, "10 messages over TLS", |g| {
            g.iter().filter(|r| r.topic == topics[0]).count() >= 10
        })
        .await;
    assert_complete_in_order(&got, &BTreeMap::from([(topics[0].clone(), 10)]));
    assert!(
        got.iter().any(|r| r.payload["status"] == "online"),
        "birth over TLS"
    );
    cancel.cancel();
    task.await.unwrap().unwrap();
}
