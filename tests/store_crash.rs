//! Process death: a child process writing through the `StoreHandle` is killed with SIGKILL at random moments;
//! the file must open cleanly every time and hold every close the child saw committed.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use rand::Rng;
use shopfloor_agent::config::{HumanDuration, StorageConfig};
use shopfloor_agent::sample::{Sample, Signal, Value};
use shopfloor_agent::store::{Closed, OutMessage, StopRecord, Store, StoreHandle};

const CHILD_ENV: &str = "SHOPFLOOR_STORE_CRASH_CHILD";
const ROUNDS: usize = 12;

fn cfg(path: &Path) -> StorageConfig {
    StorageConfig {
        path: path.to_path_buf(),
        commit_interval: HumanDuration::from_millis(100),
        ..StorageConfig::default()
    }
}

/// The child: journal samples, close stops, update live values and delete outbox rows as fast as it can,
/// printing `closed <msg_id>` after each `commit_closed` returned.
fn child(path: &Path) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = StoreHandle::open(path, &cfg(path)).unwrap();
        let base: i64 = store
            .call(|s| {
                s.connection()
                    .query_row("SELECT COUNT(*) FROM stops", [], |r| r.get(0))
                    .map_err(Into::into)
            })
            .await
            .unwrap();
        let mut out = std::io::stdout().lock();
        for i in base..base + 1_000_000 {
            let ts = Timestamp::from_second(1_700_000_000 + i).unwrap();
            let samples = (0..20)
                .map(|k| {
                    Sample::new(
                        ts,
                        "m1".into(),
                        Signal::TotalCount,
                        Some(Value::Int(i * 20 + k)),
                    )
                })
                .collect();
            store.append_journal(samples).await.unwrap();
            let msg_id = format!("stop-{i}");
            let message = OutMessage {
                topic: "s/p/l/m1/stop".into(),
                qos: 1,
                retain: false,
                msg_id: msg_id.clone(),
                payload: vec![b'x'; 300],
            };
            let record = StopRecord {
                machine: "m1".into(),
                start: ts,
                end: ts,
                payload: "{}".into(),
            };
            store
                .commit_closed(vec![Closed::Stop { record, message }])
                .await
                .unwrap();
            writeln!(out, "closed {msg_id}").unwrap();
            out.flush().unwrap();
            let live = OutMessage {
                topic: "s/p/l/m1/state".into(),
                qos: 1,
                retain: true,
                msg_id: format!("st-{i}"),
                payload: b"{}".to_vec(),
            };
            store.set_live(live).await.unwrap();
            if i % 10 == 0 {
                let ids: Vec<i64> = store
                    .outbox_batch(0, 5)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|r| r.id)
                    .collect();
                store.delete_outbox(ids).await.unwrap();
            }
        }
    });
}

#[test]
fn killed_writer_leaves_a_file_that_opens_cleanly_with_every_committed_close() {
    if let Ok(path) = std::env::var(CHILD_ENV) {
        child(Path::new(&path));
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.db");
    let exe = std::env::current_exe().unwrap();
    let mut rng = rand::rng();
    for round in 0..ROUNDS {
        let mut proc = Command::new(&exe)
            .args([
                "--exact",
                "killed_writer_leaves_a_file_that_opens_cleanly_with_every_committed_close",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let seen: Arc<Mutex<Vec<String>>> = Arc::default();
        let reader = {
            let (seen, stdout) = (seen.clone(), proc.stdout.take().unwrap());
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if let Some(id) = line.strip_prefix("closed ") {
                        seen.lock().unwrap().push(id.to_owned());
                    }
                }
            })
        };
        // Let it get going, then kill it at a random moment.
        let t0 = Instant::now();
        while seen.lock().unwrap().is_empty() {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "child never committed (round {round})"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(rng.random_range(10..400)));
        proc.kill().unwrap();
        proc.wait().unwrap();
        reader.join().unwrap();

        let store = Store::open(&path, &cfg(&path)).unwrap();
        let check: String = store
            .connection()
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok", "round {round}");
        let stored: std::collections::HashSet<String> = store
            .stops_between(
                Timestamp::from_second(0).unwrap(),
                Timestamp::from_second(4_000_000_000).unwrap(),
            )
            .unwrap()
            .into_iter()
            .map(|s| s.msg_id)
            .collect();
        let seen = seen.lock().unwrap();
        let missing: Vec<&String> = seen.iter().filter(|id| !stored.contains(*id)).collect();
        assert!(
            missing.is_empty(),
            "round {round}: committed closes missing after kill -9: {missing:?}"
        );
        // Journal rows appended before a close are committed with it (the store thread commits buffered rows
        // before any other command).
        assert!(
            store.journal_len().unwrap() >= 20 * stored.len() as u64,
            "round {round}"
        );
    }
}
