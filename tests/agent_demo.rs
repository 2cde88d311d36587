//! `shopfloor-agent demo --duration 20s` as a child process: it prints its broker address, publishes `state` and
//! `oee/current` for its 5 simulated machines, and exits 0 on its own.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use support::{Received, Subscriber};

const MACHINES: [&str; 5] = ["sim-01", "sim-02", "sim-03", "sim-04", "sim-05"];

/// The port of the `MQTT broker      : 127.0.0.1:PORT` line.
fn broker_port(line: &str) -> Option<u16> {
    let rest = line.split("MQTT broker").nth(1)?;
    rest.trim()
        .trim_start_matches(':')
        .trim()
        .rsplit(':')
        .next()?
        .trim()
        .parse()
        .ok()
}

fn leaf_for(got: &[Received], machine: &str, leaf: &str) -> Option<Received> {
    got.iter()
        .find(|r| r.topic.ends_with(&format!("/{machine}/{leaf}")))
        .cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_publishes_state_and_current_oee_for_all_five_machines_and_exits_by_itself() {
    let t0 = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_shopfloor-agent"))
        .args(["demo", "--duration", "20s"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn shopfloor-agent demo");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });

    // The broker line comes first, within a few seconds.
    let mut port = None;
    let mut head = Vec::new();
    while port.is_none() && t0.elapsed() < Duration::from_secs(15) {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                port = broker_port(&line);
                head.push(line);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let Some(port) = port else {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "no `MQTT broker : 127.0.0.1:PORT` line on stdout:\n{}",
            head.join("\n")
        );
    };

    let sub = Subscriber::start(port, "agent-demo-test", "shopfloor/demo-plant/#").await;
    let got = sub
        .wait_for(
            Duration::from_secs(18),
            "state and oee/current of 5 machines",
            |g| {
                MACHINES.iter().all(|m| {
                    leaf_for(g, m, "state").is_some() && leaf_for(g, m, "oee/current").is_some()
                })
            },
        )
        .await;
    for m in MACHINES {
        for leaf in ["state", "oee/current"] {
            let r = leaf_for(&got, m, leaf).expect("checked above");
            let p = &r.payload;
            let schema = p["schema"].as_str().unwrap_or_default();
            assert!(
                schema.starts_with("shopfloor.") && schema.ends_with(".v1"),
                "{}: schema {p}",
                r.topic
            );
            assert_eq!(
                p["msg_id"].as_str().map(str::len),
                Some(16),
                "{}: msg_id in {p}",
                r.topic
            );
            assert_eq!(p["site"], "demo-plant", "{}: site in {p}", r.topic);
            assert_eq!(p["machine"], m, "{}: machine in {p}", r.topic);
        }
        let current = leaf_for(&got, m, "oee/current").expect("checked above");
        assert_eq!(current.payload["window"]["kind"], "current");
    }

    // It ends by itself: 20 s after the start plus the ordered shutdown.
    let deadline = Instant::now() + Duration::from_secs(40);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for demo") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("demo --duration 20s still running after {:?}", t0.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "demo exit status {status}");
    assert!(
        t0.elapsed() >= Duration::from_secs(19),
        "demo ran its 20 s ({:?})",
        t0.elapsed()
    );
    drop(rx);
    let _ = reader.join();
}
