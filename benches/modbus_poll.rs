//! Modbus polling benchmark (a bench binary, not a timed test).
//!
//! 1. Load: N devices (default 500), each its own Modbus TCP server port with 20 holding registers,
//!    polled every 100 ms by the agent's Modbus source for `--seconds` (default 60). The servers run in
//!    a child process (this binary with `--serve`), so the CPU and RSS read from /proc/self belong
//!    to the agent side only. Reports CPU % of one core, RSS, requests, failures, missed ticks.
//! 2. Flat out: one device polled back to back (interval 0) by the agent vs a bare tokio-modbus
//!    client loop on the same server, alternating, in one run. Reports the ratio.
//!
//! `cargo bench --bench modbus_poll -- [--seconds 60] [--devices 500] [--flat-seconds 5]`

use std::future::{ready, Ready};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use shopfloor_agent::config::Config;
use shopfloor_agent::sample::sample_channel;
use shopfloor_agent::sources::modbus::{self, PollStats};
use tokio_modbus::client::Reader;
use tokio_modbus::server::tcp::{accept_tcp_connection, Server};
use tokio_modbus::server::Service;
use tokio_modbus::{ExceptionCode, Request, Response, SlaveRequest};
use tokio_util::sync::CancellationToken;

#[path = "common/procfs.rs"]
mod procfs;
use procfs::{arg, cpu_seconds};

fn status_kb(key: &str) -> u64 {
    procfs::status_kb("self", key).unwrap_or(0)
}

const REGISTERS: u16 = 20;

/// 20 holding registers whose contents move with every request.
#[derive(Clone, Default)]
struct Device(Arc<AtomicU64>);

impl Service for Device {
    type Request = SlaveRequest<'static>;
    type Response = Response;
    type Exception = ExceptionCode;
    type Future = Ready<Result<Response, ExceptionCode>>;
    fn call(&self, req: Self::Request) -> Self::Future {
        let n = self.0.fetch_add(1, Ordering::Relaxed);
        ready(match req.request {
            Request::ReadHoldingRegisters(a, c)
                if u32::from(a) + u32::from(c) <= u32::from(REGISTERS) =>
            {
                Ok(Response::ReadHoldingRegisters(
                    (a..a + c).map(|i| (n as u16).wrapping_add(i)).collect(),
                ))
            }
            Request::ReadHoldingRegisters(..) => Err(ExceptionCode::IllegalDataAddress),
            _ => Err(ExceptionCode::IllegalFunction),
        })
    }
}

/// Child process: serve `devices` + 1 ports, print `PORTS p1 … pN pflat`, serve until stdin closes.
fn serve(devices: usize) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async move {
        let mut ports = Vec::new();
        for _ in 0..=devices {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            ports.push(l.local_addr().expect("addr").port().to_string());
            tokio::spawn(async move {
                let server = Server::new(l);
                let dev = Device::default();
                let on_connected = |stream, addr| {
                    let dev = dev.clone();
                    async move { accept_tcp_connection(stream, addr, move |_| Ok(Some(dev.clone()))) }
                };
                let _ = server.serve(&on_connected, |_| {}).await;
            });
        }
        println!("PORTS {}", ports.join(" "));
        let _ = std::io::stdout().flush();
        // Serve until the parent closes our stdin (it exits or is done).
        tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            let _ = std::io::stdin().read_line(&mut line);
        })
        .await
        .ok();
    });
}

fn machines(ports: &[u16], interval: &str) -> Config {
    let h = |address: u16, t: &str| serde_json::json!({"register": "holding", "address": address, "type": t});
    let machines: Vec<serde_json::Value> = ports
        .iter()
        .enumerate()
        .map(|(i, port)| {
            serde_json::json!({
                "id": format!("dev-{i:03}"),
                "ideal_cycle_time": "1s",
                "source": {"modbus": {"host": "127.0.0.1", "port": port, "unit": 1,
                                      "interval": interval, "timeout": "500ms"}},
                // 7 signals over 20 registers: one read of holding 0..20 per poll.
                "signals": {
                    "total_count": h(0, "u64"), "good_count": h(4, "u64"), "reject_count": h(8, "u64"),
                    "state": h(12, "u32"), "product": h(14, "u32"), "reason": h(16, "u32"),
                    "running": {"register": "holding", "address": 19, "bit": 0},
                },
            })
        })
        .collect();
    serde_json::from_value(
        serde_json::json!({"site": "bench", "timezone": "UTC", "machines": machines}),
    )
    .expect("bench config")
}

/// Run the agent on `config` for `span` after `warmup`; returns (stats delta, cpu s, wall s).
async fn run_agent(
    config: Config,
    warmup: Duration,
    span: Duration,
) -> (modbus::CounterSnapshot, f64, f64) {
    let (tx, mut rx) = sample_channel();
    let cancel = CancellationToken::new();
    let stats = PollStats::new();
    let agent = tokio::spawn(modbus::run_with_stats(
        Arc::new(config),
        tx,
        cancel.clone(),
        stats.clone(),
    ));
    let drain = tokio::spawn(async move {
        let mut n = 0u64;
        while rx.recv().await.is_some() {
            n += 1;
        }
        n
    });
    tokio::time::sleep(warmup).await;
    let (s0, c0, t0) = (stats.total(), cpu_seconds("self"), Instant::now());
    tokio::time::sleep(span).await;
    let (s1, c1, wall) = (
        stats.total(),
        cpu_seconds("self"),
        t0.elapsed().as_secs_f64(),
    );
    cancel.cancel();
    let _ = agent.await;
    let _ = drain.await;
    let d = modbus::CounterSnapshot {
        requests: s1.requests - s0.requests,
        failures: s1.failures - s0.failures,
        exceptions: s1.exceptions - s0.exceptions,
        missed_ticks: s1.missed_ticks - s0.missed_ticks,
        samples: s1.samples - s0.samples,
        last_latency_us: s1.last_latency_us,
    };
    (d, c1 - c0, wall)
}

async fn bare_loop(port: u16, span: Duration) -> u64 {
    // Same socket option as the agent (TCP_NODELAY), so the ratio measures the agent's own overhead.
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    let mut ctx = tokio_modbus::client::tcp::attach_slave(stream, tokio_modbus::Slave(1));
    let end = Instant::now() + span;
    let mut n = 0u64;
    while Instant::now() < end {
        if let Ok(Ok(_)) = ctx.read_holding_registers(0, REGISTERS).await {
            n += 1;
        }
    }
    n
}

fn main() {
    if std::env::args().any(|a| a == "--serve") {
        serve(arg("--devices", 500));
        return;
    }
    let seconds: u64 = arg("--seconds", 60);
    let devices: usize = arg("--devices", 500);
    let flat_seconds: u64 = arg("--flat-seconds", 5);

    let exe = std::env::current_exe().expect("exe");
    let mut child = Command::new(exe)
        .args(["--serve", "--devices", &devices.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the server process");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("child stdout"))
        .read_line(&mut line)
        .expect("ports line");
    let mut ports: Vec<u16> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|p| p.parse().ok())
        .collect();
    let flat_port = ports.pop().expect("flat-out port");
    assert_eq!(ports.len(), devices, "server ports");
    let child_pid = child.id().to_string();

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        // 1. Load.
        let server_cpu0 = cpu_seconds(&child_pid);
        let (d, cpu, wall) = run_agent(
            machines(&ports, "100ms"),
            Duration::from_secs(2),
            Duration::from_secs(seconds),
        )
        .await;
        let server_cpu = cpu_seconds(&child_pid) - server_cpu0;
        let expected = devices as f64 * wall * 10.0;
        println!("load: {devices} devices x {REGISTERS} registers every 100 ms for {wall:.1} s");
        println!(
            "  agent CPU {:.1} % of one core, RSS {} MB (peak {} MB)",
            100.0 * cpu / wall,
            status_kb("VmRSS:") / 1024,
            status_kb("VmHWM:") / 1024
        );
        println!(
            "  requests {} ({:.0}/s, {:.1} % of the {:.0} scheduled), failures {}, missed ticks {}, samples {:.0}/s",
            d.requests,
            d.requests as f64 / wall,
            100.0 * d.requests as f64 / expected,
            expected,
            d.failures,
            d.missed_ticks,
            d.samples as f64 / wall
        );
        println!("  (server process CPU {:.1} % of one core)", 100.0 * server_cpu / wall);

        // 2. Flat out, alternating agent / bare client twice.
        let span = Duration::from_secs(flat_seconds);
        let (mut agent_n, mut bare_n, mut t_agent) = (0u64, 0u64, 0.0f64);
        for _ in 0..2 {
            let (d, _, wall) = run_agent(machines(&[flat_port], "0ms"), Duration::from_millis(200), span).await;
            agent_n += d.requests;
            t_agent += wall;
            // Spawned like the agent's tasks (not on the block_on thread), for a like-for-like run.
            bare_n += tokio::spawn(bare_loop(flat_port, span)).await.expect("bare loop");
        }
        let agent_rate = agent_n as f64 / t_agent;
        let bare_rate = bare_n as f64 / (2.0 * span.as_secs_f64());
        println!(
            "flat out: agent {agent_rate:.0} polls/s, bare tokio-modbus loop {bare_rate:.0} reads/s, ratio {:.2}",
            agent_rate / bare_rate
        );
    });
    drop(child.stdin.take());
    let _ = child.wait();
}
