//! Modbus RTU through a pseudo-terminal pair (socat): two units on one serial bus, served by a
//! tokio-modbus RTU server, polled in turn by one bus task.

mod modbus_support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use modbus_support::*;
use serde_json::json;
use shopfloor_agent::sample::{Signal, Value};

/// A socat process linking two ptys; killed (by its own handle) on drop.
struct PtyPair {
    child: Child,
    a: String,
    b: String,
}

impl Drop for PtyPair {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pty_pair() -> PtyPair {
    let mut child = Command::new("socat")
        .args(["-d", "-d", "pty,raw,echo=0", "pty,raw,echo=0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "this test needs socat (apt-get install -y socat) for a pseudo-terminal pair: {e}"
            )
        });
    let stderr = child.stderr.take().expect("socat stderr");
    let (send, recv) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut paths = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(p) = line.split("PTY is ").nth(1) {
                paths.push(p.trim().to_string());
                if paths.len() == 2 {
                    let _ = send.send(paths.clone());
                }
            }
        }
    });
    let paths = recv
        .recv_timeout(Duration::from_secs(5))
        .expect("socat printed two /dev/pts paths");
    PtyPair {
        child,
        a: paths[0].clone(),
        b: paths[1].clone(),
    }
}

fn unit(state: u16, total: u32, running: bool) -> Tables {
    let mut t = Tables::default();
    t.holding.insert(0, state);
    t.holding.insert(1, (total >> 16) as u16);
    t.holding.insert(2, total as u16);
    t.coils.insert(0, running);
    t
}

fn rtu_machine(id: &str, path: &str, unit: u8) -> serde_json::Value {
    json!({
        "id": id,
        "ideal_cycle_time": "1s",
        "source": {"modbus": {"serial": {"port": path, "baud": 38400}, "unit": unit,
                              "interval": "100ms", "timeout": "300ms"}},
        "signals": {
            "state": {"register": "holding", "address": 0},
            "total_count": {"register": "holding", "address": 1, "type": "u32"},
            "running": {"register": "coil", "address": 0},
        },
    })
}

#[tokio::test]
async fn two_units_on_one_rtu_bus_are_polled_in_turn() {
    let pty = pty_pair();
    let map = MapServer::new(BTreeMap::from([
        (1, unit(1, 70_000, true)),
        (2, unit(2, 5, false)),
    ]));
    let port = tokio_serial::SerialStream::open(&tokio_serial::new(pty.b.as_str(), 38400))
        .expect("open the server end of the pty");
    let server = tokio::spawn(
        tokio_modbus::server::rtu::Server::new(port).serve_forever(MapService(map.clone())),
    );

    let mut agent = start(vec![
        rtu_machine("rtu-1", &pty.a, 1),
        rtu_machine("rtu-2", &pty.a, 2),
    ]);
    let got = collect_for(&mut agent.rx, Duration::from_millis(1500)).await;
    let stats = agent.stats.clone();
    agent.stop().await;
    server.abort();

    let values = |m: &str, sig: Signal| -> Vec<Option<Value>> {
        got.iter()
            .filter(|s| &*s.machine == m && s.signal == sig)
            .map(|s| s.value.clone())
            .collect()
    };
    for (m, state, total, running) in [("rtu-1", 1, 70_000, true), ("rtu-2", 2, 5, false)] {
        let st = values(m, Signal::State);
        assert!(st.len() >= 5, "{m}: {} polls in 1.5 s", st.len());
        assert!(
            st.iter().all(|v| *v == Some(Value::Int(state))),
            "{m} {st:?}"
        );
        assert!(values(m, Signal::TotalCount)
            .iter()
            .all(|v| *v == Some(Value::Int(total))));
        assert!(values(m, Signal::Running)
            .iter()
            .all(|v| *v == Some(Value::Bool(running))));
    }
    // Both units answered on the one bus, in turn, and only with reads.
    let log = map.log.lock().unwrap().clone();
    assert!(log.iter().any(|(u, _)| *u == 1) && log.iter().any(|(u, _)| *u == 2));
    assert!(log.iter().all(|(_, fc)| (1..=4).contains(fc)));
    assert_eq!(stats.total().failures, 0);
}
