//! Interop: the agent polls a pymodbus 3.x server whose register map (tests/interop/pymodbus_server.py)
//! was written independently; the expected decoded values are hard-coded here.
//! Run by `.ci/run`: `SHOPFLOOR_PYTHON=/path/to/venv/bin/python cargo test --test interop_modbus -- --ignored`.

mod modbus_support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use modbus_support::*;
use serde_json::json;
use shopfloor_agent::sample::{Sample, Signal, Value};

/// The Python server process, killed by its own handle on drop.
struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_peer(port: u16) -> Peer {
    let python = std::env::var("SHOPFLOOR_PYTHON").unwrap_or_else(|_| {
        panic!("set SHOPFLOOR_PYTHON to a Python with pymodbus 3.x (python3 -m venv v && v/bin/pip install 'pymodbus==3.*')")
    });
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/interop/pymodbus_server.py"
    );
    let mut child = Command::new(&python)
        .args([script, &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {python}: {e}"));
    let out = child.stdout.take().expect("stdout");
    let (send, recv) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if line.trim() == "READY" {
                let _ = send.send(());
            }
        }
    });
    let peer = Peer(child);
    recv.recv_timeout(Duration::from_secs(20))
        .expect("pymodbus server printed READY");
    peer
}

fn value(got: &[Sample], machine: &str, signal: Signal) -> Option<Value> {
    got.iter()
        .rev()
        .find(|s| &*s.machine == machine && s.signal == signal)
        .unwrap_or_else(|| panic!("no {signal} sample from {machine}"))
        .value
        .clone()
}

#[tokio::test]
#[ignore = "interop: run by .ci/run"]
async fn agent_decodes_a_pymodbus_server() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let _peer = start_peer(port);
    let h = |address: u32, t: &str, order: &str| json!({"register": "holding", "address": address, "type": t, "order": order});
    let machines = vec![
        machine(
            "wide",
            port,
            1,
            "100ms",
            json!({
                "total_count": h(0, "u32", "ABCD"),
                "good_count": h(2, "i32", "CDAB"),
                "reject_count": h(4, "u64", "BADC"),
                "product": h(8, "i64", "DCBA"),
                "reason": h(12, "f32", "CDAB"),
                "state": h(14, "f64", "ABCD"),
                "running": {"register": "coil", "address": 0},
            }),
        ),
        machine(
            "narrow",
            port,
            1,
            "100ms",
            json!({
                "total_count": {"register": "holding", "address": 18, "type": "i16"},
                "running": {"register": "holding", "address": 19, "bit": 1},
                "good_count": {"register": "holding", "address": 19, "bit": 0},
                "state": {"register": "input", "address": 0, "scale": 0.1},
                "reason": {"register": "discrete", "address": 0},
                "product": {"register": "coil", "address": 1},
            }),
        ),
        machine(
            "gateway-2",
            port,
            2,
            "100ms",
            json!({
                "state": {"register": "holding", "address": 0},
                "reason": {"register": "holding", "address": 40},
            }),
        ),
    ];
    let mut agent = start(machines);
    let got = collect_until(&mut agent.rx, Duration::from_secs(15), |s| {
        s.len() >= 3 * 15
    })
    .await;
    let stats = agent.stats.clone();
    agent.stop().await;

    assert_eq!(
        value(&got, "wide", Signal::TotalCount),
        Some(Value::Int(3_000_000_000))
    );
    assert_eq!(
        value(&got, "wide", Signal::GoodCount),
        Some(Value::Int(-1_234_567))
    );
    assert_eq!(
        value(&got, "wide", Signal::RejectCount),
        Some(Value::Int(123_456_789_012_345))
    );
    assert_eq!(value(&got, "wide", Signal::Product), Some(Value::Int(-42)));
    assert_eq!(
        value(&got, "wide", Signal::Reason),
        Some(Value::Float(3.25))
    );
    assert_eq!(
        value(&got, "wide", Signal::State),
        Some(Value::Float(-1234.5))
    );
    assert_eq!(
        value(&got, "wide", Signal::Running),
        Some(Value::Bool(true))
    );

    assert_eq!(
        value(&got, "narrow", Signal::TotalCount),
        Some(Value::Int(-300))
    );
    assert_eq!(
        value(&got, "narrow", Signal::Running),
        Some(Value::Bool(true))
    );
    assert_eq!(
        value(&got, "narrow", Signal::GoodCount),
        Some(Value::Bool(false))
    );
    match value(&got, "narrow", Signal::State) {
        Some(Value::Float(f)) => assert!((f - 123.4).abs() < 1e-9, "{f}"),
        other => panic!("scaled input register: {other:?}"),
    }
    assert_eq!(
        value(&got, "narrow", Signal::Reason),
        Some(Value::Bool(true))
    );
    assert_eq!(
        value(&got, "narrow", Signal::Product),
        Some(Value::Bool(false))
    );

    assert_eq!(value(&got, "gateway-2", Signal::State), Some(Value::Int(7)));
    assert_eq!(
        value(&got, "gateway-2", Signal::Reason),
        None,
        "pymodbus answers an unmapped address with an exception: that signal is null"
    );
    assert!(stats.total().exceptions >= 1);
    assert_eq!(stats.total().failures, 0);
}
