//! MQTT subscriptions: topic filters, plain and JSON payloads, bad-payload accounting.
//! The event loop only stamps and forwards `(topic, payload, arrival)` with `try_send` to a decoder
//! task over a bounded channel of [`RAW_CHANNEL_CAPACITY`]; when it is full the newest message is
//! dropped, counted (`dropped_full`) and warned about at most once per 30 s (see docs/MQTT-INPUT.md).

pub mod conn;
pub mod ingest;
pub mod payload;
pub mod route;
pub mod stats;

use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, EventLoop, Outgoing, Packet, QoS, SubscribeFilter};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::Config;
use crate::sample::SampleSender;

pub use conn::{Backoff, ConnError, InputBroker};
pub use ingest::{Ingest, RawMessage};
pub use payload::{BadPayload, MAX_PAYLOAD_BYTES};
pub use route::{RouteError, Router};
pub use stats::{MqttInputStats, MqttInputStatsSnapshot};

/// Capacity of the event loop → decoder channel, in messages.
pub const RAW_CHANNEL_CAPACITY: usize = 4096;
/// First reconnect delay (before jitter); it doubles per failure up to [`BACKOFF_MAX`].
pub const BACKOFF_BASE: Duration = Duration::from_millis(250);
/// Longest reconnect delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How long shutdown waits for the DISCONNECT to go out and for the decoder to drain.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// Topic filters per SUBSCRIBE packet.
const FILTERS_PER_SUBSCRIBE: usize = 32;

/// Why the MQTT input could not run.
#[derive(Debug, thiserror::Error)]
pub enum MqttSourceError {
    /// Signal topics, roles or decoders in the config are unusable.
    #[error("MQTT input configuration: {0}")]
    Route(#[from] RouteError),
    /// Credentials or TLS files.
    #[error("MQTT input connection settings: {0}")]
    Conn(#[from] ConnError),
    /// The engine dropped its end of the sample channel.
    #[error("the sample channel is closed")]
    SamplesClosed,
}

/// Subscribe to every MQTT signal of `config` and send samples to `tx` until `cancel`.
/// Returns at once (after `cancel`) when no machine uses MQTT.
pub async fn run(
    config: Arc<Config>,
    tx: SampleSender,
    cancel: CancellationToken,
) -> Result<(), MqttSourceError> {
    run_with_stats(config, tx, cancel, MqttInputStats::new()).await
}

/// [`run`], counting into `stats` (keep a clone for a health endpoint).
pub async fn run_with_stats(
    config: Arc<Config>,
    tx: SampleSender,
    cancel: CancellationToken,
    stats: MqttInputStats,
) -> Result<(), MqttSourceError> {
    let router = Router::build(&config)?;
    if router.is_empty() {
        debug!("no machine uses MQTT input");
        cancel.cancelled().await;
        return Ok(());
    }
    let broker = InputBroker::from_config(&config);
    let options = broker.options()?;
    let subscriptions = router.subscriptions().to_vec();
    info!(host = %broker.host, port = broker.port, client_id = %broker.client_id,
        filters = subscriptions.len(), "MQTT input starting");
    let (raw_tx, raw_rx) = mpsc::channel(RAW_CHANNEL_CAPACITY);
    let mut decoder = tokio::spawn(decode(Ingest::new(router, stats.clone()), raw_rx, tx));
    let (client, mut eventloop) = AsyncClient::new(options, 16);
    eventloop.set_network_options(broker.network_options());
    let session = Session {
        client,
        subscriptions,
        stats,
        raw_tx,
    };
    let result = session.run(&mut eventloop, &broker, &cancel).await;
    // The session (and its raw sender) is gone: the decoder drains what is queued and ends.
    if tokio::time::timeout(SHUTDOWN_GRACE, &mut decoder)
        .await
        .is_err()
    {
        warn!("MQTT input decoder did not drain in time; aborted");
        decoder.abort();
    }
    info!("MQTT input stopped");
    result
}

/// The decoder task: raw messages → samples. Waiting on `tx` here never blocks the event loop.
async fn decode(mut ingest: Ingest, mut rx: mpsc::Receiver<RawMessage>, tx: SampleSender) {
    let mut out = Vec::with_capacity(8);
    while let Some(msg) = rx.recv().await {
        ingest.handle(&msg, &mut out);
        for sample in out.drain(..) {
            if tx.send(sample).await.is_err() {
                return;
            }
        }
    }
}

struct Session {
    client: AsyncClient,
    subscriptions: Vec<String>,
    stats: MqttInputStats,
    raw_tx: mpsc::Sender<RawMessage>,
}

impl Session {
    async fn run(
        self,
        eventloop: &mut EventLoop,
        broker: &InputBroker,
        cancel: &CancellationToken,
    ) -> Result<(), MqttSourceError> {
        let mut backoff = Backoff::new(BACKOFF_BASE, BACKOFF_MAX);
        let mut full_warn = stats::WarnLimiter::default();
        let mut connected = false;
        let result = loop {
            let event = tokio::select! {
                biased;
                _ = cancel.cancelled() => break Ok(()),
                ev = eventloop.poll() => ev,
            };
            match event {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    if self.forward(p, &mut full_warn).is_err() {
                        break Err(MqttSourceError::SamplesClosed);
                    }
                }
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    connected = true;
                    self.stats.connected();
                    info!(host = %broker.host, port = broker.port,
                        session_present = ack.session_present, failed_attempts = backoff.attempts(),
                        "MQTT input connected");
                    backoff.reset();
                    // Always (re)subscribe: the broker may have lost the session, or the config may
                    // name filters the stored session does not have. Subscribing again is idempotent.
                    self.subscribe();
                }
                Ok(Event::Incoming(Packet::SubAck(ack))) => {
                    self.stats.subscribed();
                    let refused = ack
                        .return_codes
                        .iter()
                        .filter(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure))
                        .count();
                    if refused > 0 {
                        warn!(refused, "broker refused MQTT input subscriptions");
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    connected = false;
                    let delay = backoff.next_delay();
                    warn!(host = %broker.host, port = broker.port, error = %e,
                        attempt = backoff.attempts(), retry_in_ms = delay.as_millis() as u64,
                        "MQTT input connection failed");
                    tokio::select! {
                        _ = cancel.cancelled() => break Ok(()),
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        };
        if connected {
            self.disconnect(eventloop, &mut full_warn).await;
        }
        result
    }

    /// Hand a message to the decoder without waiting: when the channel is full the newest is dropped.
    /// `Err` when the decoder is gone.
    fn forward(&self, p: rumqttc::Publish, full_warn: &mut stats::WarnLimiter) -> Result<(), ()> {
        self.stats.message();
        let msg = RawMessage {
            topic: p.topic,
            payload: p.payload,
            arrival: jiff::Timestamp::now(),
        };
        match self.raw_tx.try_send(msg) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(m)) => {
                self.stats.dropped_full();
                if let Some(suppressed) = full_warn.check("full", Instant::now()) {
                    warn!(topic = %m.topic, suppressed,
                        "MQTT input decoder is behind: newest message dropped");
                }
                Ok(())
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(()),
        }
    }

    fn subscribe(&self) {
        for chunk in self.subscriptions.chunks(FILTERS_PER_SUBSCRIBE) {
            let filters = chunk
                .iter()
                .map(|f| SubscribeFilter::new(f.clone(), QoS::AtLeastOnce));
            if let Err(e) = self.client.try_subscribe_many(filters) {
                warn!(error = %e, "MQTT input could not queue its subscriptions");
            }
        }
    }

    /// Send DISCONNECT and poll until it is out (bounded); no further poll, which would reconnect.
    /// Messages still arriving meanwhile are forwarded: rumqttc has already acknowledged them.
    async fn disconnect(&self, eventloop: &mut EventLoop, full_warn: &mut stats::WarnLimiter) {
        if self.client.try_disconnect().is_err() {
            return;
        }
        let _ = tokio::time::timeout(SHUTDOWN_GRACE, async {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Outgoing(Outgoing::Disconnect)) | Err(_) => break,
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        if self.forward(p, full_warn).is_err() {
                            break;
                        }
                    }
                    Ok(_) => {}
                }
            }
        })
        .await;
    }
}
