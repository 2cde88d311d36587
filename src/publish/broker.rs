//! The embedded MQTT broker (rumqttd in-process) for `demo`, `mqtt.broker: embedded` and the tests.
//! rumqttd cannot report its port nor shut down, so we pick the port and wait until it accepts.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

/// Errors starting the embedded broker.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// No port could be reserved.
    #[error("cannot reserve a port on {host}: {source}")]
    Bind {
        /// Host asked for.
        host: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The address did not parse.
    #[error("`{0}` is not a socket address")]
    Address(String),
    /// The broker never accepted connections.
    #[error("embedded broker on {0} did not start within {1:?}")]
    NotReady(SocketAddr, Duration),
}

/// A running embedded broker. It runs until the process exits (rumqttd has no shutdown API).
#[derive(Debug, Clone)]
pub struct EmbeddedBroker {
    addr: SocketAddr,
}

impl EmbeddedBroker {
    /// Start on `host:port`; port 0 picks a free port.
    pub fn start(host: &str, port: u16) -> Result<EmbeddedBroker, BrokerError> {
        let port = if port == 0 { free_port(host)? } else { port };
        let addr: SocketAddr = format!("{host}:{port}")
            .parse()
            .map_err(|_| BrokerError::Address(format!("{host}:{port}")))?;
        let mut broker = Broker::new(broker_config(addr));
        std::thread::Builder::new()
            .name("rumqttd".into())
            .spawn(move || {
                if let Err(e) = broker.start() {
                    tracing::error!(error = %e, "embedded broker stopped");
                }
            })
            .map_err(|e| BrokerError::Bind {
                host: host.to_owned(),
                source: e,
            })?;
        let deadline = Duration::from_secs(5);
        let t0 = Instant::now();
        while t0.elapsed() < deadline {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                tracing::info!(%addr, "embedded MQTT broker listening");
                return Ok(EmbeddedBroker { addr });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(BrokerError::NotReady(addr, deadline))
    }

    /// Start on a free loopback port (tests).
    pub fn start_local() -> Result<EmbeddedBroker, BrokerError> {
        Self::start("127.0.0.1", 0)
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

/// Reserve a free port on `host` (bind to 0, read the port, release it).
pub fn free_port(host: &str) -> Result<u16, BrokerError> {
    TcpListener::bind((host, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| BrokerError::Bind {
            host: host.to_owned(),
            source: e,
        })
}

fn broker_config(addr: SocketAddr) -> Config {
    let connections = ConnectionSettings {
        connection_timeout_ms: 60_000,
        max_payload_size: 1 << 20,
        max_inflight_count: 500,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    let server = ServerSettings {
        name: "v4-1".into(),
        listen: addr,
        tls: None,
        next_connection_delay_ms: 1,
        connections,
    };
    Config {
        id: 0,
        router: RouterConfig {
            max_connections: 1010,
            max_outgoing_packet_count: 200,
            max_segment_size: 100 << 20,
            max_segment_count: 10,
            ..Default::default()
        },
        v4: Some(HashMap::from([("v4-1".to_owned(), server)])),
        ..Default::default()
    }
}
