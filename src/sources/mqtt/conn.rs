//! Connection settings of the input session (broker, persistent session, credentials, TLS)
//! and the reconnect backoff that rumqttc lacks.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rumqttc::{MqttOptions, TlsConfiguration, Transport};

use crate::config::{Config, TlsConfig};

/// Why the input session could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    /// A credential or TLS file could not be read.
    #[error("cannot read {what} `{path}`: {source}")]
    File {
        /// Which file (password, CA, …).
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// Persistent sessions need a client id.
    #[error("the MQTT input client id is empty")]
    EmptyClientId,
}

/// Where and how the input session connects (resolved from `mqtt` and `mqtt.input`).
#[derive(Clone)]
pub struct InputBroker {
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Stable client id of the persistent session.
    pub client_id: String,
    username: Option<String>,
    password_file: Option<PathBuf>,
    tls: Option<TlsConfig>,
    keep_alive: Duration,
    max_packet: usize,
}

impl std::fmt::Debug for InputBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InputBroker")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("client_id", &self.client_id)
            .field("username", &self.username)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl InputBroker {
    /// The input broker: `mqtt.input` when set, else the publishing broker with client id `<client_id>-in`
    /// (the publisher keeps its own id; two connections with one id would evict each other).
    pub fn from_config(config: &Config) -> InputBroker {
        let m = &config.mqtt;
        let keep_alive = m.keep_alive.to_std().max(Duration::from_secs(1));
        let max_packet = usize::try_from(m.max_packet_size.0).unwrap_or(usize::MAX);
        match &m.input {
            Some(i) => InputBroker {
                host: i.host.clone(),
                port: i.port,
                client_id: i.client_id.clone(),
                username: i.username.clone(),
                password_file: i.password_file.clone(),
                tls: i.tls.clone(),
                keep_alive,
                max_packet,
            },
            None => InputBroker {
                host: m.host.clone(),
                port: m.port,
                client_id: format!("{}-in", m.client_id),
                username: m.username.clone(),
                password_file: m.password_file.clone(),
                tls: m.tls.clone(),
                keep_alive,
                max_packet,
            },
        }
    }

    /// rumqttc options: clean session off, keep-alive, raised packet limit, credentials, TLS.
    /// Files are read here, once; the password is never logged.
    pub fn options(&self) -> Result<MqttOptions, ConnError> {
        if self.client_id.is_empty() {
            return Err(ConnError::EmptyClientId);
        }
        let mut o = MqttOptions::new(&self.client_id, &self.host, self.port);
        o.set_clean_session(false);
        o.set_keep_alive(self.keep_alive);
        // Incoming: a bit over the payload limit so oversized payloads arrive and are counted
        // instead of killing the connection; bigger ones up to max_packet_size still arrive.
        let incoming = self.max_packet.max(super::payload::MAX_PAYLOAD_BYTES * 2);
        o.set_max_packet_size(incoming, 64 * 1024);
        o.set_inflight(100);
        if let Some(user) = &self.username {
            let password = match &self.password_file {
                Some(p) => read("password file", p).map(|b| {
                    String::from_utf8_lossy(&b)
                        .trim_end_matches(['\r', '\n'])
                        .to_owned()
                })?,
                None => String::new(),
            };
            o.set_credentials(user.clone(), password);
        }
        if let Some(tls) = &self.tls {
            install_crypto_provider();
            let ca = read("CA file", &tls.ca_file)?;
            let client_auth = match (&tls.cert_file, &tls.key_file) {
                (Some(c), Some(k)) => {
                    Some((read("client certificate", c)?, read("client key", k)?))
                }
                _ => None,
            };
            o.set_transport(Transport::Tls(TlsConfiguration::Simple {
                ca,
                alpn: None,
                client_auth,
            }));
        }
        Ok(o)
    }

    /// Socket options: no Nagle delay, a 10 s connect timeout.
    pub fn network_options(&self) -> rumqttc::NetworkOptions {
        let mut net = rumqttc::NetworkOptions::new();
        net.set_tcp_nodelay(true);
        net.set_connection_timeout(10);
        net
    }
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, ConnError> {
    std::fs::read(path).map_err(|source| ConnError::File {
        what,
        path: path.to_owned(),
        source,
    })
}

/// rumqttc is built without a rustls crypto provider; install ring once (a no-op if one is set).
fn install_crypto_provider() {
    let _already_installed = rustls::crypto::ring::default_provider().install_default();
}

/// Exponential reconnect backoff with jitter: 0.5–1 × min(max, base × 2^attempt).
#[derive(Debug)]
pub struct Backoff {
    base: Duration,
    max: Duration,
    attempt: u32,
    rng: SmallRng,
}

impl Backoff {
    /// A backoff from `base` doubling up to `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Backoff {
            base,
            max,
            attempt: 0,
            rng: SmallRng::from_rng(&mut rand::rng()),
        }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        let exp = self.base.saturating_mul(1u32 << self.attempt.min(20));
        let cap = exp.min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        cap.mul_f64(self.rng.random_range(0.5..=1.0))
    }

    /// Back to the first delay (after a successful connection).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// Failed attempts since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_up_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        let first = b.next_delay();
        assert!((Duration::from_millis(50)..=Duration::from_millis(100)).contains(&first));
        let d: Vec<_> = (0..10).map(|_| b.next_delay()).collect();
        assert!(d
            .iter()
            .all(|x| *x >= Duration::from_millis(100) && *x <= Duration::from_secs(2)));
        assert!(d[9] >= Duration::from_secs(1));
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }

    #[test]
    fn password_file_is_read_and_trimmed_and_input_uses_its_own_client_id() {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "s3cret\n").unwrap();
        let config: Config = serde_json::from_value(serde_json::json!({
            "site": "s", "timezone": "UTC", "machines": [],
            "mqtt": {"client_id": "agent", "username": "u", "password_file": pw}
        }))
        .unwrap();
        let b = InputBroker::from_config(&config);
        assert_eq!(b.client_id, "agent-in");
        let o = b.options().unwrap();
        let login = o.credentials().unwrap();
        assert_eq!(
            (login.username.as_str(), login.password.as_str()),
            ("u", "s3cret")
        );
        assert!(!o.clean_session());
        assert!(!format!("{b:?}").contains("s3cret"));
    }

    #[test]
    fn missing_password_file_is_an_error_naming_the_file() {
        let config: Config = serde_json::from_value(serde_json::json!({
            "site": "s", "timezone": "UTC", "machines": [],
            "mqtt": {"input": {"host": "127.0.0.1", "username": "u",
                               "password_file": "/nonexistent/pw"}}
        }))
        .unwrap();
        let err = InputBroker::from_config(&config).options().unwrap_err();
        assert!(err.to_string().contains("/nonexistent/pw"));
    }
}
