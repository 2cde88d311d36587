//! PLC simulator: a Modbus TCP server with N seeded machines (unit ids 1..=N), and the agent config
//! that reads it. Register map in `docs/MODBUS.md`.

pub mod machine;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::{ready, Ready};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::net::TcpListener;
use tokio_modbus::server::tcp::{accept_tcp_connection, Server};
use tokio_modbus::server::Service;
use tokio_modbus::{ExceptionCode, Request, Response, SlaveRequest};
use tokio_util::sync::CancellationToken;

use crate::config::{
    DataType, HumanDuration, MachineConfig, ModbusSource, RegisterKind, SignalConfig, SourceConfig,
    StateCategory,
};

pub use machine::{SimMachine, Snapshot};

/// Coil 0: running.
pub const COIL_RUNNING: u16 = 0;
/// Holding 0: state code (1 running, 2 stopped, 3 setup, 4 planned stop).
pub const HR_STATE: u16 = 0;
/// Holding 1–2: total parts, u32, high word first (ABCD).
pub const HR_TOTAL: u16 = 1;
/// Holding 3: good parts, u16 (wraps at 65536).
pub const HR_GOOD: u16 = 3;
/// Holding 4: rejected parts, u16.
pub const HR_REJECTS: u16 = 4;
/// Holding 5: product code.
pub const HR_PRODUCT: u16 = 5;
/// Holding 6: stop reason code (0 when not stopped).
pub const HR_REASON: u16 = 6;
/// Holding registers per unit.
pub const HOLDING_LEN: u16 = 7;

/// What to simulate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SimOptions {
    /// Number of machines (unit ids 1..=machines).
    pub machines: u16,
    /// Seed: the same seed gives the same production over simulated time.
    pub seed: u64,
    /// Simulated seconds per real second.
    pub speed: f64,
}

/// Ideal cycle times (ms) of products 1..=3 of machine `n` (1-based).
fn ideal_ms(n: u16) -> [u64; 3] {
    let f = 1000 + 250 * u64::from(n % 4);
    [2 * f, 3 * f, 9 * f / 2]
}

/// The simulated plant: machines behind one clock.
#[derive(Debug)]
pub struct Plant {
    machines: Vec<Mutex<SimMachine>>,
    started: Instant,
    speed: f64,
}

impl Plant {
    /// Build the plant of `opts`; its clock starts now.
    pub fn new(opts: &SimOptions) -> Self {
        let machines = (1..=opts.machines)
            .map(|n| {
                let ideal = ideal_ms(n).iter().map(|&ms| ms as f64 / 1000.0).collect();
                let seed = opts.seed.wrapping_mul(1_000_003).wrapping_add(u64::from(n));
                Mutex::new(SimMachine::new(seed, ideal))
            })
            .collect();
        Plant {
            machines,
            started: Instant::now(),
            speed: if opts.speed.is_finite() && opts.speed > 0.0 {
                opts.speed
            } else {
                1.0
            },
        }
    }

    /// The registers of unit `unit` now (simulated time = elapsed real time × speed).
    pub fn snapshot(&self, unit: u8) -> Option<Snapshot> {
        let m = self.machines.get(usize::from(unit).checked_sub(1)?)?;
        let t = self.started.elapsed().as_secs_f64() * self.speed;
        let mut m = m.lock().ok()?;
        m.advance(t);
        Some(m.snapshot())
    }

    fn answer(&self, req: SlaveRequest<'_>) -> Result<Response, ExceptionCode> {
        let s = self
            .snapshot(req.slave)
            .ok_or(ExceptionCode::GatewayTargetDevice)?;
        let holding = [
            s.state,
            (s.total >> 16) as u16,
            s.total as u16,
            s.good,
            s.rejects,
            s.product,
            s.reason,
        ];
        let coils = [s.running];
        fn slice<T: Copy>(t: &[T], a: u16, n: u16) -> Result<Vec<T>, ExceptionCode> {
            let (a, n) = (usize::from(a), usize::from(n));
            t.get(a..a + n)
                .filter(|_| n > 0)
                .map(<[T]>::to_vec)
                .ok_or(ExceptionCode::IllegalDataAddress)
        }
        match req.request {
            Request::ReadCoils(a, n) => Ok(Response::ReadCoils(slice(&coils, a, n)?)),
            Request::ReadHoldingRegisters(a, n) => {
                Ok(Response::ReadHoldingRegisters(slice(&holding, a, n)?))
            }
            // Read-only simulator: no discrete inputs or input registers, no writes.
            Request::ReadDiscreteInputs(..) | Request::ReadInputRegisters(..) => {
                Err(ExceptionCode::IllegalDataAddress)
            }
            _ => Err(ExceptionCode::IllegalFunction),
        }
    }
}

/// tokio-modbus service face of a shared [`Plant`].
#[derive(Debug, Clone)]
pub struct PlantService(pub Arc<Plant>);

impl Service for PlantService {
    type Request = SlaveRequest<'static>;
    type Response = Response;
    type Exception = ExceptionCode;
    type Future = Ready<Result<Response, ExceptionCode>>;
    fn call(&self, req: Self::Request) -> Self::Future {
        ready(self.0.answer(req))
    }
}

/// Serve the simulated plant on `listener` until `cancel`.
pub async fn serve(
    listener: TcpListener,
    opts: SimOptions,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    serve_plant(listener, Arc::new(Plant::new(&opts)), cancel).await
}

/// Serve an existing plant (several listeners may share one).
pub async fn serve_plant(
    listener: TcpListener,
    plant: Arc<Plant>,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    let server = Server::new(listener);
    let on_connected = |stream, addr| {
        let plant = plant.clone();
        async move {
            accept_tcp_connection(stream, addr, move |_| Ok(Some(PlantService(plant.clone()))))
        }
    };
    server
        .serve_until(
            &on_connected,
            |err| tracing::debug!(error = %err, "simulator connection ended"),
            cancel.cancelled_owned(),
        )
        .await
        .map(|_| ())
}

/// Scale a simulated-time duration to real time at `speed` (at least 1 ms).
pub fn real_time(d: HumanDuration, speed: f64) -> HumanDuration {
    HumanDuration::from_millis(((d.as_millis() as f64 / speed).round() as u64).max(1))
}

/// [`machine_configs`] for an agent that stamps samples with the real clock while the plant runs `speed` times
/// faster: ideal cycle times (machine and products) divided by `speed`.
pub fn real_time_machine_configs(
    opts: &SimOptions,
    host: &str,
    port: u16,
    interval: HumanDuration,
) -> Vec<MachineConfig> {
    let mut machines = machine_configs(opts, host, port, interval);
    for m in &mut machines {
        m.ideal_cycle_time = m.ideal_cycle_time.map(|d| real_time(d, opts.speed));
        for d in m.products.values_mut() {
            *d = real_time(*d, opts.speed);
        }
    }
    machines
}

/// The machine configs an agent needs to read the simulator at `host:port`.
pub fn machine_configs(
    opts: &SimOptions,
    host: &str,
    port: u16,
    interval: HumanDuration,
) -> Vec<MachineConfig> {
    let reg = |register, address, data_type| SignalConfig {
        register: Some(register),
        address: Some(u32::from(address)),
        data_type,
        ..SignalConfig::default()
    };
    (1..=opts.machines)
        .map(|n| {
            let ideal = ideal_ms(n);
            let products = ideal
                .iter()
                .enumerate()
                .map(|(i, &ms)| ((i + 1).to_string(), HumanDuration::from_millis(ms)))
                .collect();
            let state_codes = BTreeMap::from([
                ("1".to_string(), StateCategory::Running),
                ("2".to_string(), StateCategory::Stopped),
                ("3".to_string(), StateCategory::Setup),
                ("4".to_string(), StateCategory::PlannedStop),
            ]);
            let reasons = machine::REASONS
                .iter()
                .map(|(c, t)| (c.to_string(), (*t).to_string()))
                .collect();
            let signals = BTreeMap::from([
                (
                    "running".to_string(),
                    reg(RegisterKind::Coil, COIL_RUNNING, None),
                ),
                (
                    "state".to_string(),
                    reg(RegisterKind::Holding, HR_STATE, None),
                ),
                (
                    "total_count".to_string(),
                    reg(RegisterKind::Holding, HR_TOTAL, Some(DataType::U32)),
                ),
                (
                    "good_count".to_string(),
                    reg(RegisterKind::Holding, HR_GOOD, Some(DataType::U16)),
                ),
                (
                    "reject_count".to_string(),
                    reg(RegisterKind::Holding, HR_REJECTS, Some(DataType::U16)),
                ),
                (
                    "product".to_string(),
                    reg(RegisterKind::Holding, HR_PRODUCT, None),
                ),
                (
                    "reason".to_string(),
                    reg(RegisterKind::Holding, HR_REASON, None),
                ),
            ]);
            MachineConfig {
                id: format!("sim-{n:02}"),
                line: if n % 2 == 1 { "line-a" } else { "line-b" }.to_string(),
                ideal_cycle_time: Some(HumanDuration::from_millis(ideal[0])),
                products,
                state_codes,
                reasons,
                stop_after: None,
                source: SourceConfig {
                    modbus: Some(ModbusSource {
                        host: Some(host.to_string()),
                        port,
                        serial: None,
                        unit: n.min(255) as u8,
                        interval,
                        timeout: HumanDuration::from_millis(500),
                        max_gap: 10,
                        fail_after: 3,
                    }),
                    mqtt: None,
                },
                signals,
            }
        })
        .collect()
}

fn q(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// YAML of a `machines:` list of the shape [`machine_configs`] builds (a small emitter for that
/// fixed shape; JSON-quoted strings are valid YAML scalars).
pub fn machines_yaml(machines: &[MachineConfig]) -> String {
    let mut y = String::from("machines:\n");
    for m in machines {
        let _ = writeln!(y, "  - id: {}", q(&m.id));
        let _ = writeln!(y, "    line: {}", q(&m.line));
        if let Some(t) = m.ideal_cycle_time {
            let _ = writeln!(y, "    ideal_cycle_time: {t}");
        }
        let map = |y: &mut String, key: &str, items: Vec<(String, String)>| {
            if !items.is_empty() {
                let body: Vec<String> = items
                    .iter()
                    .map(|(k, v)| format!("{}: {v}", q(k)))
                    .collect();
                let _ = writeln!(y, "    {key}: {{ {} }}", body.join(", "));
            }
        };
        map(
            &mut y,
            "products",
            m.products
                .iter()
                .map(|(k, v)| (k.clone(), v.to_string()))
                .collect(),
        );
        map(
            &mut y,
            "state_codes",
            m.state_codes
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().to_string()))
                .collect(),
        );
        map(
            &mut y,
            "reasons",
            m.reasons.iter().map(|(k, v)| (k.clone(), q(v))).collect(),
        );
        if let Some(s) = &m.source.modbus {
            let _ = writeln!(y, "    source:");
            let _ = write!(y, "      modbus: {{ ");
            if let Some(h) = &s.host {
                let _ = write!(y, "host: {}, port: {}, ", q(h), s.port);
            }
            let _ = writeln!(
                y,
                "unit: {}, interval: {}, timeout: {}, max_gap: {}, fail_after: {} }}",
                s.unit, s.interval, s.timeout, s.max_gap, s.fail_after
            );
        }
        let _ = writeln!(y, "    signals:");
        for (role, sig) in &m.signals {
            let mut parts = Vec::new();
            if let Some(r) = sig.register {
                parts.push(format!("register: {}", r.as_str()));
            }
            if let Some(a) = sig.address {
                parts.push(format!("address: {a}"));
            }
            if let Some(t) = sig.data_type {
                parts.push(format!("type: {}", t.as_str()));
            }
            let _ = writeln!(y, "      {role}: {{ {} }}", parts.join(", "));
        }
    }
    y
}

/// A full agent config for the simulator at `host:port` (what `simulate --print-config` prints and
/// `config/demo.yaml` holds for 5 machines): three 8-hour shifts so there is always a shift.
pub fn demo_config_yaml(opts: &SimOptions, host: &str, port: u16) -> String {
    let mut y = String::from(
        "# Demo config: the agent reading `shopfloor-agent simulate` on 127.0.0.1.\n\
         # Generated by `shopfloor-agent simulate --print-config`; keep the two in step.\n\
         site: demo-plant\n\
         timezone: UTC\n\
         mqtt: { broker: embedded, host: 127.0.0.1, port: 1883, client_id: shopfloor-demo, topic_prefix: shopfloor }\n\
         storage: { path: shopfloor-demo.db }\n\
         shifts:\n\
         \x20 - { name: early, start: \"06:00\", end: \"14:00\", breaks: [ { start: \"10:00\", end: \"10:15\" } ] }\n\
         \x20 - { name: late, start: \"14:00\", end: \"22:00\", breaks: [ { start: \"18:00\", end: \"18:15\" } ] }\n\
         \x20 - { name: night, start: \"22:00\", end: \"06:00\", breaks: [ { start: \"02:00\", end: \"02:15\" } ] }\n\
         small_stop_threshold: 120s\n",
    );
    y.push_str(&machines_yaml(&machine_configs(
        opts,
        host,
        port,
        HumanDuration::from_secs(1),
    )));
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_yaml_reads_back_as_the_same_machines() {
        let opts = SimOptions {
            machines: 3,
            seed: 1,
            speed: 1.0,
        };
        let text = demo_config_yaml(&opts, "127.0.0.1", 5020);
        let cfg: crate::config::Config = ::config::Config::builder()
            .add_source(::config::File::from_str(&text, ::config::FileFormat::Yaml))
            .build()
            .and_then(|c| c.try_deserialize())
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        let want = machine_configs(&opts, "127.0.0.1", 5020, HumanDuration::from_secs(1));
        assert_eq!(cfg.machines.len(), 3);
        assert_eq!(cfg.shifts.len(), 3);
        for (got, want) in cfg.machines.iter().zip(&want) {
            assert_eq!(
                serde_json::to_value(got).unwrap(),
                serde_json::to_value(want).unwrap()
            );
        }
    }

    #[test]
    fn unknown_units_and_addresses_are_exceptions() {
        let plant = Plant::new(&SimOptions {
            machines: 2,
            seed: 1,
            speed: 1.0,
        });
        let req = |slave, request| SlaveRequest { slave, request };
        assert!(plant.snapshot(3).is_none());
        assert_eq!(
            plant.answer(req(3, Request::ReadHoldingRegisters(0, 1))),
            Err(ExceptionCode::GatewayTargetDevice)
        );
        assert_eq!(
            plant.answer(req(1, Request::ReadHoldingRegisters(5, 3))),
            Err(ExceptionCode::IllegalDataAddress)
        );
        assert_eq!(
            plant.answer(req(1, Request::WriteSingleRegister(0, 1))),
            Err(ExceptionCode::IllegalFunction)
        );
        assert!(matches!(
            plant.answer(req(1, Request::ReadHoldingRegisters(0, HOLDING_LEN))),
            Ok(Response::ReadHoldingRegisters(v)) if v.len() == 7
        ));
    }
}
