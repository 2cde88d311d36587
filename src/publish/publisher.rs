//! The MQTT publisher: drains the SQLite outbox in order with an inflight window, deletes a row only after its
//! PUBACK, re-sends every un-acked row after each new connection, sends live topics' latest values, birth and will.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use rand::Rng;
use rumqttc::{
    AsyncClient, Event, EventLoop, LastWill, MqttOptions, Outgoing, Packet, QoS, Transport,
};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::config::{BrokerMode, MqttConfig, TlsConfig};
use crate::store::{OutMessage, OutboxRow, StoreError, StoreHandle};

/// Outbox rows fetched from the store at a time.
const FETCH: usize = 500;
/// Acknowledged rows deleted in one transaction (or sooner, see `DELETE_EVERY`).
const DELETE_BATCH: usize = 500;
/// Acknowledged rows are deleted at least this often.
const DELETE_EVERY: Duration = Duration::from_millis(100);
/// Reconnect backoff bounds.
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How often the drop counters are checked to refresh the status message.
const STATUS_REFRESH: Duration = Duration::from_secs(30);
/// How long shutdown waits for the `offline` status to be acknowledged.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// What the birth message says about this agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusInfo {
    /// Agent version.
    pub version: String,
    /// Hash of the config in force.
    pub config_hash: String,
    /// When the agent started.
    pub started: Timestamp,
}

/// Errors that stop the publisher (connection failures are not errors: it reconnects).
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The store failed or closed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// A credentials or TLS file could not be read (its contents are never shown).
    #[error("cannot read {what} file {path}: {source}")]
    File {
        /// Which file (password, CA, certificate, key).
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// `mqtt.tls.cert_file` and `key_file` must come together.
    #[error("mqtt.tls: cert_file and key_file must both be set, or neither")]
    TlsPair,
    /// A topic segment is empty or holds `+`, `#` or `/`.
    #[error("invalid topic segment `{0}`")]
    Topic(String),
    /// The embedded broker could not start.
    #[error("embedded broker: {0}")]
    Broker(String),
}

/// The status topic: `{prefix}/{site}/agent/status`.
pub fn status_topic(prefix: &str, site: &str) -> Result<String, PublishError> {
    for seg in [prefix, site] {
        if seg.is_empty() || seg.contains(['+', '#', '/']) {
            return Err(PublishError::Topic(seg.to_owned()));
        }
    }
    Ok(format!("{prefix}/{site}/agent/status"))
}

fn read_file(what: &'static str, path: &Path) -> Result<Vec<u8>, PublishError> {
    std::fs::read(path).map_err(|source| PublishError::File {
        what,
        path: path.to_path_buf(),
        source,
    })
}

fn tls_transport(tls: &TlsConfig) -> Result<Transport, PublishError> {
    // rumqttc is built without a crypto provider; install ring once (a second install is a harmless no-op error).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let ca = read_file("CA", &tls.ca_file)?;
    let client_auth = match (&tls.cert_file, &tls.key_file) {
        (Some(c), Some(k)) => Some((read_file("certificate", c)?, read_file("key", k)?)),
        (None, None) => None,
        _ => return Err(PublishError::TlsPair),
    };
    Ok(Transport::tls(ca, client_auth, None))
}

/// Build the rumqttc options: clean session (the outbox is the only session state), last will, credentials, TLS.
fn mqtt_options(
    mqtt: &MqttConfig,
    status_topic: &str,
    site: &str,
) -> Result<MqttOptions, PublishError> {
    let mut opts = MqttOptions::new(&mqtt.client_id, &mqtt.host, mqtt.port);
    opts.set_keep_alive(mqtt.keep_alive.to_std().max(Duration::from_secs(1)));
    opts.set_clean_session(true);
    opts.set_inflight(mqtt.inflight.max(1));
    let max = usize::try_from(mqtt.max_packet_size.0).unwrap_or(usize::MAX);
    opts.set_max_packet_size(max, max);
    let will = json!({
        "schema": "shopfloor.status.v1",
        "status": "offline",
        "site": site,
        "msg_id": format!("{}-offline", mqtt.client_id),
    });
    opts.set_last_will(LastWill::new(
        status_topic,
        will.to_string(),
        QoS::AtLeastOnce,
        true,
    ));
    if let Some(user) = &mqtt.username {
        let password = match &mqtt.password_file {
            Some(p) => {
                let raw = read_file("password", p)?;
                String::from_utf8_lossy(&raw)
                    .trim_end_matches(['\r', '\n'])
                    .to_owned()
            }
            None => String::new(),
        };
        opts.set_credentials(user, password);
    }
    if let Some(tls) = &mqtt.tls {
        opts.set_transport(tls_transport(tls)?);
    }
    Ok(opts)
}

#[cfg(feature = "embedded-broker")]
fn start_embedded(mqtt: &MqttConfig) -> Result<(), PublishError> {
    let b = super::broker::EmbeddedBroker::start(&mqtt.host, mqtt.port)
        .map_err(|e| PublishError::Broker(e.to_string()))?;
    info!(addr = %b.addr(), "embedded broker started for publishing");
    Ok(())
}

#[cfg(not(feature = "embedded-broker"))]
fn start_embedded(_mqtt: &MqttConfig) -> Result<(), PublishError> {
    Err(PublishError::Broker(
        "this build has no embedded broker (feature `embedded-broker`)".into(),
    ))
}

/// Drop category of outbox rows that no broker would accept.
pub const UNPUBLISHABLE: &str = "unpublishable_message";

/// Why `m` can never be published: a wildcard or empty topic, or a packet over `max_packet` bytes.
fn unpublishable(m: &OutMessage, max_packet: usize) -> Option<String> {
    if m.topic.is_empty() || m.topic.contains(['+', '#', '\0']) {
        return Some(format!("invalid topic `{}`", m.topic));
    }
    // Fixed header (1 + up to 4 length bytes) + topic length + topic + packet id + payload.
    let size = 5 + 2 + m.topic.len() + 2 + m.payload.len();
    (size > max_packet).then(|| format!("{size} bytes exceed mqtt.max_packet_size ({max_packet})"))
}

/// What one connection's poller reports.
#[derive(Debug)]
enum Net {
    Connected,
    Sent(u16),
    Acked(u16),
    Down(String),
}

/// What an outgoing publish was, so its acknowledgement can be acted on.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    Outbox(i64),
    Live { topic: String, msg_id: String },
    Status,
}

/// One connection attempt: its own client and event loop (a fresh session, so nothing stale is ever re-sent
/// behind our back), polled by its own task.
struct Session {
    client: AsyncClient,
    events: mpsc::Receiver<Net>,
    connected: bool,
    /// Handed to rumqttc, packet id not yet known (rumqttc assigns ids in request order).
    awaiting_id: VecDeque<(Entry, u8)>,
    /// Sent, waiting for PUBACK.
    by_pkid: HashMap<u16, Entry>,
    outbox_inflight: usize,
    live_inflight: HashMap<String, String>,
}

fn spawn_session(opts: MqttOptions, window: usize) -> Session {
    let (client, eventloop) = AsyncClient::new(opts, window + 1024);
    let (tx, events) = mpsc::channel(4 * window + 256);
    tokio::spawn(poll_session(eventloop, tx));
    Session {
        client,
        events,
        connected: false,
        awaiting_id: VecDeque::new(),
        by_pkid: HashMap::new(),
        outbox_inflight: 0,
        live_inflight: HashMap::new(),
    }
}

async fn poll_session(mut eventloop: EventLoop, tx: mpsc::Sender<Net>) {
    eventloop.network_options.set_tcp_nodelay(true);
    loop {
        let net = match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => Net::Connected,
            Ok(Event::Incoming(Packet::PubAck(ack))) => Net::Acked(ack.pkid),
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => Net::Sent(pkid),
            Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                // Give the DISCONNECT packet a chance to be written, then stop: another poll would reconnect.
                let _ = tokio::time::timeout(Duration::from_millis(200), eventloop.poll()).await;
                return;
            }
            Ok(_) => continue,
            Err(e) => Net::Down(e.to_string()),
        };
        let down = matches!(net, Net::Down(_));
        if tx.send(net).await.is_err() || down {
            return;
        }
    }
}

/// The publisher's state across connections.
struct Publisher {
    store: StoreHandle,
    window: usize,
    max_packet: usize,
    status_topic: String,
    site: String,
    status: StatusInfo,
    client_id: String,
    births: u64,
    drops: Vec<(String, u64)>,
    /// Rows fetched from the outbox and not yet handed to rumqttc.
    buffer: VecDeque<OutboxRow>,
    /// Highest outbox id fetched in this session.
    fetched_to: i64,
    /// The outbox may hold rows beyond `fetched_to`.
    more: bool,
    live_dirty: bool,
    /// Every live value must be re-sent (new connection).
    live_all: bool,
    /// Acknowledged rows not yet deleted.
    acked: Vec<i64>,
}

impl Publisher {
    fn status_message(&mut self, state: &str) -> OutMessage {
        OutMessage {
            topic: self.status_topic.clone(),
            qos: 1,
            retain: true,
            msg_id: String::new(),
            payload: self.status_payload(state),
        }
    }

    fn status_payload(&mut self, state: &str) -> Vec<u8> {
        self.births += 1;
        let drops: serde_json::Map<String, serde_json::Value> = self
            .drops
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        json!({
            "schema": "shopfloor.status.v1",
            "status": state,
            "site": self.site,
            "version": self.status.version,
            "config_hash": self.status.config_hash,
            "started": self.status.started,
            "ts": Timestamp::now(),
            "drops": drops,
            "msg_id": format!("{}-{}-{}-{}", self.client_id, state, self.status.started.as_millisecond(), self.births),
        })
        .to_string()
        .into_bytes()
    }

    fn send(&self, s: &mut Session, m: &OutMessage, entry: Entry) -> bool {
        let qos = if m.qos == 0 {
            QoS::AtMostOnce
        } else {
            QoS::AtLeastOnce
        };
        match s
            .client
            .try_publish(m.topic.clone(), qos, m.retain, m.payload.clone())
        {
            Ok(()) => {
                s.awaiting_id.push_back((entry, m.qos.min(1)));
                true
            }
            Err(e) => {
                debug!(error = %e, "request channel full, retrying later");
                false
            }
        }
    }

    /// A new connection: everything not acknowledged is unsent; start again from the oldest row.
    async fn on_connected(&mut self, s: &mut Session) -> Result<(), PublishError> {
        s.connected = true;
        self.flush_acked().await?;
        self.buffer.clear();
        self.fetched_to = 0;
        self.more = true;
        self.drops = self.store.drop_counts().await?;
        let birth = self.status_message("online");
        self.send(s, &birth, Entry::Status);
        // Retained live values are re-sent on every connection: the broker may have lost them.
        s.live_inflight.clear();
        self.live_all = true;
        Ok(())
    }

    async fn on_sent(&mut self, s: &mut Session, pkid: u16) -> Result<(), PublishError> {
        let Some((entry, qos)) = s.awaiting_id.pop_front() else {
            warn!(pkid, "publish event with no matching request");
            return Ok(());
        };
        if qos == 0 {
            self.complete(s, entry).await
        } else {
            s.by_pkid.insert(pkid, entry);
            Ok(())
        }
    }

    async fn complete(&mut self, s: &mut Session, entry: Entry) -> Result<(), PublishError> {
        match entry {
            Entry::Outbox(id) => {
                s.outbox_inflight = s.outbox_inflight.saturating_sub(1);
                self.acked.push(id);
                if self.acked.len() >= DELETE_BATCH {
                    self.flush_acked().await?;
                }
            }
            Entry::Live { topic, msg_id } => {
                if s.live_inflight.get(&topic) == Some(&msg_id) {
                    s.live_inflight.remove(&topic);
                }
                self.store.mark_live_sent(topic, msg_id).await?;
            }
            Entry::Status => {}
        }
        Ok(())
    }

    async fn flush_acked(&mut self) -> Result<(), PublishError> {
        if !self.acked.is_empty() {
            let ids = std::mem::take(&mut self.acked);
            self.store.delete_outbox(ids).await?;
        }
        Ok(())
    }

    /// Hand rumqttc what the window allows: pending live values first (they are few), then outbox rows in order.
    async fn pump(&mut self, s: &mut Session) -> Result<(), PublishError> {
        if !s.connected {
            return Ok(());
        }
        if self.live_all || self.live_dirty {
            let all = std::mem::take(&mut self.live_all);
            self.live_dirty = false;
            let values = if all {
                self.store.live_all().await?
            } else {
                self.store.live_pending().await?
            };
            for m in values {
                if s.live_inflight.get(&m.topic) == Some(&m.msg_id) {
                    continue;
                }
                if let Some(why) = unpublishable(&m, self.max_packet) {
                    error!(topic = %m.topic, reason = %why, "live value can never be published: skipped");
                    self.store.mark_live_sent(m.topic, m.msg_id).await?;
                    continue;
                }
                let entry = Entry::Live {
                    topic: m.topic.clone(),
                    msg_id: m.msg_id.clone(),
                };
                if self.send(s, &m, entry) {
                    s.live_inflight.insert(m.topic.clone(), m.msg_id.clone());
                } else if all {
                    self.live_all = true;
                    break;
                } else {
                    self.live_dirty = true;
                    break;
                }
            }
        }
        while s.outbox_inflight < self.window {
            if self.buffer.is_empty() {
                if !self.more {
                    break;
                }
                let rows = self.store.outbox_batch(self.fetched_to, FETCH).await?;
                self.more = rows.len() == FETCH;
                if let Some(last) = rows.last() {
                    self.fetched_to = last.id;
                }
                self.buffer.extend(rows);
                if self.buffer.is_empty() {
                    break;
                }
            }
            let Some(row) = self.buffer.pop_front() else {
                break;
            };
            if let Some(why) = unpublishable(&row.message, self.max_packet) {
                // It would fail the connection on every attempt and block everything behind it.
                error!(topic = %row.message.topic, msg_id = %row.message.msg_id, reason = %why,
                    "outbox message can never be published: dropped and counted");
                let id = row.id;
                self.store
                    .call(move |st| st.discard_outbox(id, UNPUBLISHABLE))
                    .await?;
                continue;
            }
            if self.send(s, &row.message, Entry::Outbox(row.id)) {
                s.outbox_inflight += 1;
            } else {
                self.buffer.push_front(row);
                break;
            }
        }
        Ok(())
    }

    async fn refresh_status(&mut self, s: &mut Session) -> Result<(), PublishError> {
        let drops = self.store.drop_counts().await?;
        if s.connected && drops != self.drops {
            self.drops = drops;
            let m = self.status_message("online");
            self.send(s, &m, Entry::Status);
        }
        Ok(())
    }

    /// Publish `offline` (a clean disconnect suppresses the will), wait briefly for its PUBACK, disconnect.
    async fn shutdown(&mut self, mut s: Session) -> Result<(), PublishError> {
        if s.connected {
            let m = self.status_message("offline");
            if self.send(&mut s, &m, Entry::Status) {
                let _ = tokio::time::timeout(SHUTDOWN_GRACE, async {
                    while let Some(ev) = s.events.recv().await {
                        match ev {
                            Net::Sent(pkid) => self.on_sent(&mut s, pkid).await?,
                            Net::Acked(pkid) => {
                                if let Some(e) = s.by_pkid.remove(&pkid) {
                                    let status = e == Entry::Status;
                                    self.complete(&mut s, e).await?;
                                    if status {
                                        break;
                                    }
                                }
                            }
                            Net::Connected | Net::Down(_) => break,
                        }
                    }
                    Ok::<_, PublishError>(())
                })
                .await;
            }
            let _ = s.client.try_disconnect();
        }
        self.flush_acked().await?;
        info!("publisher stopped");
        Ok(())
    }
}

/// Wait until the outbox is empty or `timeout` passed (a draining shutdown: call before cancelling `run`).
/// Returns whether it drained.
pub async fn wait_drained(store: &StoreHandle, timeout: Duration) -> Result<bool, StoreError> {
    let t0 = tokio::time::Instant::now();
    loop {
        if store.outbox_len().await? == 0 {
            return Ok(true);
        }
        if t0.elapsed() >= timeout {
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn backoff_delay(attempt: u32) -> Duration {
    let base = BACKOFF_MIN
        .saturating_mul(1u32 << attempt.min(16))
        .min(BACKOFF_MAX);
    let jitter = rand::rng().random_range(0.75..1.25);
    base.mul_f64(jitter)
}

/// Run the publisher until `cancel`: connect (reconnecting with backoff and jitter), publish the birth, drain the
/// outbox and live values, and on cancel publish `offline` and disconnect.
pub async fn run(
    mqtt: MqttConfig,
    site: String,
    store: StoreHandle,
    status: StatusInfo,
    cancel: CancellationToken,
) -> Result<(), PublishError> {
    let status_topic = status_topic(&mqtt.topic_prefix, &site)?;
    if mqtt.broker == BrokerMode::Embedded {
        start_embedded(&mqtt)?;
    }
    let opts = mqtt_options(&mqtt, &status_topic, &site)?;
    let window = usize::from(mqtt.inflight.max(1));
    let notify = store.outbox_notify();
    let mut p = Publisher {
        store,
        window,
        max_packet: usize::try_from(mqtt.max_packet_size.0).unwrap_or(usize::MAX),
        status_topic,
        site,
        status,
        client_id: mqtt.client_id.clone(),
        births: 0,
        drops: Vec::new(),
        buffer: VecDeque::new(),
        fetched_to: 0,
        more: true,
        live_dirty: true,
        live_all: false,
        acked: Vec::new(),
    };
    let mut attempt = 0u32;
    let mut status_timer = tokio::time::interval(STATUS_REFRESH);
    status_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    info!(host = %mqtt.host, port = mqtt.port, client_id = %mqtt.client_id, tls = mqtt.tls.is_some(),
        "publisher connecting");
    let mut session = spawn_session(opts.clone(), window);
    loop {
        let ev = tokio::select! {
            biased;
            _ = cancel.cancelled() => return p.shutdown(session).await,
            ev = session.events.recv() => ev,
            _ = notify.notified() => {
                p.more = true;
                p.live_dirty = true;
                p.pump(&mut session).await?;
                continue;
            }
            _ = tokio::time::sleep(DELETE_EVERY), if !p.acked.is_empty() => {
                p.flush_acked().await?;
                continue;
            }
            _ = status_timer.tick() => {
                p.refresh_status(&mut session).await?;
                continue;
            }
        };
        let down = match ev {
            Some(Net::Connected) => {
                attempt = 0;
                info!(host = %mqtt.host, port = mqtt.port, "publisher connected");
                p.on_connected(&mut session).await?;
                None
            }
            Some(Net::Sent(pkid)) => {
                p.on_sent(&mut session, pkid).await?;
                None
            }
            Some(Net::Acked(pkid)) => {
                match session.by_pkid.remove(&pkid) {
                    Some(entry) => p.complete(&mut session, entry).await?,
                    None => warn!(pkid, "PUBACK for an unknown packet id"),
                }
                None
            }
            Some(Net::Down(error)) => Some(error),
            None => Some("connection task ended".to_owned()),
        };
        if let Some(error) = down {
            if session.connected {
                warn!(error = %error, "publisher disconnected; the outbox keeps what is not acknowledged");
            } else {
                warn!(error = %error, attempt, "publisher cannot connect");
            }
            p.flush_acked().await?;
            let delay = backoff_delay(attempt);
            attempt = attempt.saturating_add(1);
            tokio::select! {
                _ = cancel.cancelled() => {
                    info!("publisher stopped while disconnected");
                    return Ok(());
                }
                _ = tokio::time::sleep(delay) => {}
            }
            session = spawn_session(opts.clone(), window);
            continue;
        }
        p.pump(&mut session).await?;
    }
}
