//! Shared helpers of the Modbus tests: an in-process tokio-modbus server with a known register map
//! that records every request's function code, config builders and sample collection.
#![allow(dead_code)]

use std::collections::{BTreeMap, HashSet};
use std::future::{ready, Ready};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shopfloor_agent::config::Config;
use shopfloor_agent::sample::{sample_channel, Sample, SampleReceiver};
use shopfloor_agent::sources::modbus::{self, ModbusError, PollStats};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_modbus::server::tcp::{accept_tcp_connection, Server};
use tokio_modbus::server::Service;
use tokio_modbus::{ExceptionCode, Request, Response, SlaveRequest};
use tokio_util::sync::CancellationToken;

/// One unit's tables.
#[derive(Debug, Default, Clone)]
pub struct Tables {
    pub coils: BTreeMap<u16, bool>,
    pub discrete: BTreeMap<u16, bool>,
    pub holding: BTreeMap<u16, u16>,
    pub input: BTreeMap<u16, u16>,
}

/// A register map server: reads of unmapped addresses answer IllegalDataAddress, writes IllegalFunction.
#[derive(Debug, Default)]
pub struct MapServer {
    pub units: Mutex<BTreeMap<u8, Tables>>,
    /// (unit, function code) of every request received.
    pub log: Mutex<Vec<(u8, u8)>>,
    /// Units that never answer.
    pub silent: Mutex<HashSet<u8>>,
}

impl MapServer {
    pub fn new(units: BTreeMap<u8, Tables>) -> Arc<Self> {
        Arc::new(MapServer {
            units: Mutex::new(units),
            ..MapServer::default()
        })
    }
    pub fn function_codes(&self) -> Vec<u8> {
        self.log.lock().unwrap().iter().map(|(_, fc)| *fc).collect()
    }
    fn answer(&self, req: SlaveRequest<'_>) -> Result<Option<Response>, ExceptionCode> {
        let unit = req.slave;
        let fc = req.request.function_code().value();
        self.log.lock().unwrap().push((unit, fc));
        if self.silent.lock().unwrap().contains(&unit) {
            return Ok(None);
        }
        let units = self.units.lock().unwrap();
        let t = units.get(&unit).ok_or(ExceptionCode::GatewayTargetDevice)?;
        fn range<T: Copy>(m: &BTreeMap<u16, T>, a: u16, n: u16) -> Result<Vec<T>, ExceptionCode> {
            (0..n)
                .map(|i| {
                    a.checked_add(i)
                        .and_then(|k| m.get(&k).copied())
                        .ok_or(ExceptionCode::IllegalDataAddress)
                })
                .collect()
        }
        Ok(Some(match req.request {
            Request::ReadCoils(a, n) => Response::ReadCoils(range(&t.coils, a, n)?),
            Request::ReadDiscreteInputs(a, n) => {
                Response::ReadDiscreteInputs(range(&t.discrete, a, n)?)
            }
            Request::ReadHoldingRegisters(a, n) => {
                Response::ReadHoldingRegisters(range(&t.holding, a, n)?)
            }
            Request::ReadInputRegisters(a, n) => {
                Response::ReadInputRegisters(range(&t.input, a, n)?)
            }
            _ => return Err(ExceptionCode::IllegalFunction),
        }))
    }
}

/// The tokio-modbus `Service` face of a shared [`MapServer`].
#[derive(Clone)]
pub struct MapService(pub Arc<MapServer>);

impl Service for MapService {
    type Request = SlaveRequest<'static>;
    type Response = Option<Response>;
    type Exception = ExceptionCode;
    type Future = Ready<Result<Option<Response>, ExceptionCode>>;
    fn call(&self, req: Self::Request) -> Self::Future {
        ready(self.0.answer(req))
    }
}

/// Serve `map` on `listener`; aborting the handle closes the listener and every connection.
pub fn serve(listener: TcpListener, map: Arc<MapServer>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let server = Server::new(listener);
        let on_connected = |stream, addr| {
            let map = map.clone();
            async move {
                accept_tcp_connection(stream, addr, move |_| Ok(Some(MapService(map.clone()))))
            }
        };
        let _ = server.serve(&on_connected, |_err| {}).await;
    })
}

/// Bind a free loopback port.
pub async fn listener() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    (l, a)
}

/// A config with the given machines (JSON values of `machines:` entries).
pub fn config(machines: Vec<serde_json::Value>) -> Arc<Config> {
    Arc::new(
        serde_json::from_value(serde_json::json!({
            "site": "test",
            "timezone": "UTC",
            "machines": machines,
        }))
        .unwrap(),
    )
}

/// A Modbus TCP machine entry.
pub fn machine(
    id: &str,
    port: u16,
    unit: u8,
    interval: &str,
    signals: serde_json::Value,
) -> serde_json::Value {
    serde_json::json!({
        "id": id,
        "ideal_cycle_time": "1s",
        "source": {"modbus": {"host": "127.0.0.1", "port": port, "unit": unit,
                               "interval": interval, "timeout": "200ms", "fail_after": 3}},
        "signals": signals,
    })
}

/// Receive samples until `pred` holds on what was collected or `limit` passes.
pub async fn collect_until(
    rx: &mut SampleReceiver,
    limit: Duration,
    pred: impl Fn(&[Sample]) -> bool,
) -> Vec<Sample> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut got = Vec::new();
    while !pred(&got) {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(s)) => got.push(s),
            Ok(None) | Err(_) => break,
        }
    }
    got
}

/// Receive every sample for `span`.
pub async fn collect_for(rx: &mut SampleReceiver, span: Duration) -> Vec<Sample> {
    collect_until(rx, span, |_| false).await
}

/// The Modbus source running in the background.
pub struct Agent {
    pub rx: SampleReceiver,
    pub cancel: CancellationToken,
    pub stats: PollStats,
    pub task: JoinHandle<Result<(), ModbusError>>,
}

/// Start the Modbus source on a config of `machines`.
pub fn start(machines: Vec<serde_json::Value>) -> Agent {
    let (tx, rx) = sample_channel();
    let cancel = CancellationToken::new();
    let stats = PollStats::new();
    let task = tokio::spawn(modbus::run_with_stats(
        config(machines),
        tx,
        cancel.clone(),
        stats.clone(),
    ));
    Agent {
        rx,
        cancel,
        stats,
        task,
    }
}

impl Agent {
    /// Cancel and check the source ends cleanly and promptly.
    pub async fn stop(self) {
        self.cancel.cancel();
        let r = tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("the source stops when cancelled");
        r.expect("task").expect("no error");
    }
}
