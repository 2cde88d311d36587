//! Test helpers: a TCP proxy that can cut, refuse, pause and restore connections, and an MQTT subscriber that
//! records what it receives.
#![allow(dead_code)]

#[path = "../common/mosquitto.rs"]
pub mod mosquitto;
#[allow(unused_imports)]
pub use mosquitto::Mosquitto;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

struct Control {
    refuse: bool,
    paused: bool,
    cut: CancellationToken,
}

/// A loopback TCP proxy in front of `upstream`.
pub struct Proxy {
    addr: SocketAddr,
    state: Arc<Mutex<Control>>,
    pause: watch::Sender<bool>,
    stop: CancellationToken,
}

impl Proxy {
    /// Listen on a free loopback port and forward every connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let state = Arc::new(Mutex::new(Control {
            refuse: false,
            paused: false,
            cut: CancellationToken::new(),
        }));
        let (pause, _) = watch::channel(false);
        let stop = CancellationToken::new();
        let (st, pause_rx, stop2) = (state.clone(), pause.subscribe(), stop.clone());
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = stop2.cancelled() => return,
                    a = listener.accept() => a,
                };
                let Ok((client, _)) = accepted else { continue };
                let (refuse, cut) = {
                    let c = st.lock().unwrap();
                    (c.refuse, c.cut.clone())
                };
                if refuse {
                    drop(client);
                    continue;
                }
                let pause_rx = pause_rx.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    tokio::select! {
                        _ = cut.cancelled() => {}
                        _ = pipe(cr, sw, pause_rx.clone()) => {}
                        _ = pipe(sr, cw, pause_rx) => {}
                    }
                });
            }
        });
        Proxy {
            addr,
            state,
            pause,
            stop,
        }
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Drop every open connection abruptly and refuse new ones until `restore`.
    pub fn cut(&self) {
        let mut c = self.state.lock().unwrap();
        c.refuse = true;
        c.cut.cancel();
        c.cut = CancellationToken::new();
    }

    /// Accept and forward again (and unpause).
    pub fn restore(&self) {
        let mut c = self.state.lock().unwrap();
        c.refuse = false;
        c.paused = false;
        let _ = self.pause.send(false);
    }

    /// Stop moving bytes in either direction, keeping connections open (a frozen network).
    pub fn pause(&self) {
        self.state.lock().unwrap().paused = true;
        let _ = self.pause.send(true);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.cancel();
        self.state.lock().unwrap().cut.cancel();
    }
}

async fn wait_unpaused(rx: &mut watch::Receiver<bool>) {
    while *rx.borrow_and_update() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut pause: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        wait_unpaused(&mut pause).await;
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        wait_unpaused(&mut pause).await;
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// One message as the subscriber got it.
#[derive(Debug, Clone)]
pub struct Received {
    pub topic: String,
    pub payload: serde_json::Value,
    pub retain: bool,
}

impl Received {
    pub fn msg_id(&self) -> &str {
        self.payload["msg_id"].as_str().unwrap_or("")
    }
}

/// An MQTT subscriber connected straight to the broker, recording every publish.
pub struct Subscriber {
    pub got: Arc<Mutex<Vec<Received>>>,
    stop: CancellationToken,
}

impl Subscriber {
    /// Connect to `127.0.0.1:port`, subscribe to `filter` at QoS 1, and return once the SUBACK arrived.
    pub async fn start(port: u16, id: &str, filter: &str) -> Subscriber {
        Self::start_with(port, id, filter, false).await
    }

    /// Like `start`; `persistent` keeps the broker session (and its queued messages) across reconnects.
    pub async fn start_with(port: u16, id: &str, filter: &str, persistent: bool) -> Subscriber {
        let mut opts = MqttOptions::new(id, "127.0.0.1", port);
        opts.set_clean_session(!persistent);
        opts.set_keep_alive(Duration::from_secs(5));
        opts.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut el) = AsyncClient::new(opts, 100);
        client.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        let (g, s) = (got.clone(), stop.clone());
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        tokio::spawn(async move {
            let _client = client;
            let mut ready = Some(ready_tx);
            loop {
                let ev = tokio::select! {
                    _ = s.cancelled() => return,
                    ev = el.poll() => ev,
                };
                match ev {
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        if let Some(r) = ready.take() {
                            let _ = r.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let payload = serde_json::from_slice(&p.payload).unwrap_or_else(|_| {
                            serde_json::Value::String(String::from_utf8_lossy(&p.payload).into())
                        });
                        g.lock().unwrap().push(Received {
                            topic: p.topic.clone(),
                            payload,
                            retain: p.retain,
                        });
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), ready_rx)
            .await
            .expect("SUBACK within 10 s")
            .expect("subscriber task alive");
        Subscriber { got, stop }
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Wait until `pred` holds on what was received, or panic after `timeout`.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        what: &str,
        pred: impl Fn(&[Received]) -> bool,
    ) -> Vec<Received> {
        let t0 = Instant::now();
        loop {
            let got = self.received();
            if pred(&got) {
                return got;
            }
            if t0.elapsed() > timeout {
                panic!(
                    "timed out after {timeout:?} waiting for {what}; got {} messages",
                    got.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Wait until `f` returns true, polling every 20 ms, or panic after `timeout`.
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let t0 = Instant::now();
    while !f().await {
        if t0.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every expected message arrived; per topic, first occurrences are in enqueue order (payload `seq`); every
/// duplicate repeats an earlier `msg_id` with the same payload. Returns the number of duplicates.
pub fn assert_complete_in_order(
    got: &[Received],
    expected: &std::collections::BTreeMap<String, usize>,
) -> usize {
    use std::collections::HashMap;
    let mut first: HashMap<String, serde_json::Value> = HashMap::new();
    let mut last_seq: HashMap<&str, i64> = HashMap::new();
    let mut per_topic: HashMap<&str, usize> = HashMap::new();
    let mut dups = 0;
    for r in got.iter().filter(|r| expected.contains_key(&r.topic)) {
        if let Some(p) = first.get(r.msg_id()) {
            assert_eq!(p, &r.payload, "a re-send carries the same payload");
            dups += 1;
            continue;
        }
        first.insert(r.msg_id().to_owned(), r.payload.clone());
        let seq = r.payload["seq"].as_i64().expect("seq in payload");
        let prev = last_seq.insert(&r.topic, seq).unwrap_or(-1);
        assert!(
            seq > prev,
            "{}: seq {seq} after {prev}: out of order",
            r.topic
        );
        *per_topic.entry(&r.topic).or_default() += 1;
    }
    for (topic, n) in expected {
        assert_eq!(
            per_topic.get(topic.as_str()).copied().unwrap_or(0),
            *n,
            "{topic}: every message arrived"
        );
    }
    dups
}

/// The birth the test publishers announce.
pub fn status() -> shopfloor_agent::publish::publisher::StatusInfo {
    shopfloor_agent::publish::publisher::StatusInfo {
        version: "9.9.9-test".into(),
        config_hash: "cafe1234".into(),
        started: jiff::Timestamp::from_second(1_700_000_000).expect("a valid time"),
    }
}

/// A store on a real file, journal committed every 100 ms.
pub fn open_store(path: &std::path::Path) -> shopfloor_agent::store::StoreHandle {
    let cfg = shopfloor_agent::config::StorageConfig {
        path: path.to_path_buf(),
        commit_interval: shopfloor_agent::config::HumanDuration::from_millis(100),
        ..shopfloor_agent::config::StorageConfig::default()
    };
    shopfloor_agent::store::StoreHandle::open(path, &cfg).expect("open store")
}

/// The publisher for site `plant` on `store`, with its cancel token.
pub fn start_publisher(
    mqtt: shopfloor_agent::config::MqttConfig,
    store: &shopfloor_agent::store::StoreHandle,
) -> (
    CancellationToken,
    tokio::task::JoinHandle<Result<(), shopfloor_agent::publish::publisher::PublishError>>,
) {
    let cancel = CancellationToken::new();
    let task = tokio::spawn(shopfloor_agent::publish::publisher::run(
        mqtt,
        "plant".into(),
        store.clone(),
        status(),
        cancel.clone(),
    ));
    (cancel, task)
}
