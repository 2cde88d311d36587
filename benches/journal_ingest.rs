//! Journal ingest through the `StoreHandle` into a real SQLite file (budget ≥ 50,000 samples/s), with the
//! engine's likely shapes: one sample per call, and small batches.

use std::time::Instant;

use jiff::Timestamp;
use shopfloor_agent::config::StorageConfig;
use shopfloor_agent::sample::{Sample, Signal, Value};
use shopfloor_agent::store::StoreHandle;

const N: usize = 500_000;
const BUDGET: f64 = 50_000.0;

fn sample(i: usize) -> Sample {
    let ts = Timestamp::from_millisecond(1_700_000_000_000 + i as i64 * 10).expect("timestamp");
    let machine = format!("m{}", i % 50);
    let (signal, value) = match i % 3 {
        0 => (Signal::TotalCount, Some(Value::Int(i as i64))),
        1 => (Signal::Running, Some(Value::Bool(i.is_multiple_of(2)))),
        _ => (Signal::State, None),
    };
    Sample::new(ts, machine.into(), signal, value)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    for batch in [1usize, 64] {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("journal.db");
        let cfg = StorageConfig {
            path: path.clone(),
            ..StorageConfig::default()
        };
        let samples: Vec<Sample> = (0..N).map(sample).collect();
        let (secs, rows) = rt.block_on(async {
            let store = StoreHandle::open(&path, &cfg).expect("store");
            let t0 = Instant::now();
            for chunk in samples.chunks(batch) {
                store.append_journal(chunk.to_vec()).await.expect("append");
            }
            store.flush().await.expect("flush");
            let secs = t0.elapsed().as_secs_f64();
            let rows = store.call(|s| s.journal_len()).await.expect("len");
            store.close().await.expect("close");
            (secs, rows)
        });
        assert_eq!(rows, N as u64);
        let rate = N as f64 / secs;
        println!(
            "journal_ingest: {N} samples in calls of {batch} committed in {secs:.2} s = {rate:.0} samples/s (budget ≥ {BUDGET:.0}) {}",
            if rate >= BUDGET { "OK" } else { "BELOW BUDGET" }
        );
    }
}
