//! The SQLite store on real files: transactions, order, migrations, batching, recovery data and the size bound.

use std::path::Path;
use std::time::Duration;

use jiff::Timestamp;
use shopfloor_agent::config::{HumanDuration, StorageConfig};
use shopfloor_agent::sample::{Sample, Signal, Value};
use shopfloor_agent::store::schema::{self, MIGRATIONS};
use shopfloor_agent::store::{
    Closed, OutMessage, StopRecord, Store, StoreError, StoreHandle, SummaryRecord, DROP_ORDER,
};

fn cfg(path: &Path) -> StorageConfig {
    StorageConfig {
        path: path.to_path_buf(),
        commit_interval: HumanDuration::from_millis(200),
        ..StorageConfig::default()
    }
}

fn ts(s: i64) -> Timestamp {
    Timestamp::from_second(1_700_000_000 + s).unwrap()
}

fn msg(topic: &str, msg_id: &str, payload_len: usize) -> OutMessage {
    OutMessage {
        topic: topic.into(),
        qos: 1,
        retain: false,
        msg_id: msg_id.into(),
        payload: vec![b'x'; payload_len],
    }
}

fn summary(kind: &str, machine: &str, start: i64, payload_len: usize) -> Closed {
    let id = format!("{machine}-{kind}-{start}");
    Closed::Summary {
        record: SummaryRecord {
            machine: machine.into(),
            kind: kind.into(),
            shift: (kind == "shift").then(|| "day".to_owned()),
            start: ts(start),
            end: ts(start + 3600),
            payload: "p".repeat(payload_len),
        },
        message: msg(
            &format!("shopfloor/s/l/{machine}/oee/{kind}"),
            &id,
            payload_len,
        ),
    }
}

fn stop(machine: &str, start: i64, payload_len: usize) -> Closed {
    Closed::Stop {
        record: StopRecord {
            machine: machine.into(),
            start: ts(start),
            end: ts(start + 60),
            payload: "s".repeat(payload_len),
        },
        message: msg(
            &format!("shopfloor/s/l/{machine}/stop"),
            &format!("{machine}-stop-{start}"),
            payload_len,
        ),
    }
}

fn sample(t: i64, n: i64) -> Sample {
    Sample::new(
        ts(t),
        "press-1".into(),
        Signal::TotalCount,
        Some(Value::Int(n)),
    )
}

#[test]
fn closed_summary_commits_with_its_outbox_row_and_a_replayed_close_is_not_queued_twice() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let mut store = Store::open(&path, &cfg(&path)).unwrap();
    let closed = vec![
        summary("hour", "m1", 0, 10),
        stop("m1", 100, 10),
        summary("shift", "m1", 0, 10),
    ];
    assert_eq!(store.commit_closed(&closed).unwrap(), 3);
    // A restart replays the journal and the engine closes the same windows again, with the same msg_ids.
    assert_eq!(store.commit_closed(&closed).unwrap(), 0);
    let rows = store.outbox_batch(0, 10).unwrap();
    let ids: Vec<&str> = rows.iter().map(|r| r.message.msg_id.as_str()).collect();
    assert_eq!(ids, ["m1-hour-0", "m1-stop-100", "m1-shift-0"]);
    assert_eq!(store.summaries_between(ts(-1), ts(1)).unwrap().len(), 2);
    let stops = store.stops_between(ts(0), ts(200)).unwrap();
    assert_eq!(stops.len(), 1);
    assert_eq!(stops[0].msg_id, "m1-stop-100");
    assert_eq!(stops[0].record.end, ts(160));
}

#[test]
fn outbox_is_read_in_id_order_and_only_deleted_rows_leave_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let mut store = Store::open(&path, &cfg(&path)).unwrap();
    for i in 0..10 {
        store
            .enqueue(&msg("t/a", &format!("m{i}"), 4), "other")
            .unwrap();
    }
    let first = store.outbox_batch(0, 4).unwrap();
    assert_eq!(
        first
            .iter()
            .map(|r| r.message.msg_id.clone())
            .collect::<Vec<_>>(),
        ["m0", "m1", "m2", "m3"]
    );
    let next = store.outbox_batch(first[3].id, 100).unwrap();
    assert_eq!(next.len(), 6);
    assert_eq!(next[0].message.msg_id, "m4");
    store.delete_outbox(&[first[0].id, first[2].id]).unwrap();
    drop(store);
    let store = Store::open(&path, &cfg(&path)).unwrap();
    let left: Vec<String> = store
        .outbox_batch(0, 100)
        .unwrap()
        .into_iter()
        .map(|r| r.message.msg_id)
        .collect();
    assert_eq!(left, ["m1", "m3", "m4", "m5", "m6", "m7", "m8", "m9"]);
}

#[test]
fn a_version_1_file_is_migrated_and_keeps_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.db");
    {
        let mut conn = rusqlite::Connection::open(&path).unwrap();
        schema::migrate_to(&mut conn, 1).unwrap();
        assert_eq!(schema::version(&conn).unwrap(), 1);
        conn.execute(
            "INSERT INTO outbox(topic, qos, retain, msg_id, payload, created) VALUES ('t/x', 1, 0, 'old-1', x'7b7d', 0)",
            [],
        )
        .unwrap();
    }
    let mut store = Store::open(&path, &cfg(&path)).unwrap();
    assert_eq!(
        schema::version(store.connection()).unwrap(),
        MIGRATIONS.len() as i64
    );
    let rows = store.outbox_batch(0, 10).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].message.msg_id, "old-1");
    assert_eq!(rows[0].message.payload, b"{}");
    // v2 added the drop ledger and the outbox kind (old rows default to `other`, never dropped).
    let kind: String = store
        .connection()
        .query_row("SELECT kind FROM outbox", [], |r| r.get(0))
        .unwrap();
    assert_eq!(kind, "other");
    assert!(store.drop_counts().unwrap().is_empty());
    store.enqueue(&msg("t/x", "new-1", 2), "hour").unwrap();
    assert_eq!(store.outbox_len().unwrap(), 2);
}

#[test]
fn a_file_from_a_newer_build_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
    }
    match Store::open(&path, &cfg(&path)) {
        Err(StoreError::TooNew { found: 99, .. }) => {}
        other => panic!("expected TooNew, got {other:?}"),
    }
}

#[test]
fn the_file_is_in_wal_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let store = Store::open(&path, &cfg(&path)).unwrap();
    let mode: String = store
        .connection()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn snapshot_marks_where_replay_starts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let mut store = Store::open(&path, &cfg(&path)).unwrap();
    store.append_journal(&[sample(0, 1), sample(1, 2)]).unwrap();
    let snap = store.save_snapshot(ts(1), r#"{"engine":1}"#).unwrap();
    store.append_journal(&[sample(2, 3), sample(1, 4)]).unwrap();
    let latest = store.latest_snapshot().unwrap().unwrap();
    assert_eq!(latest, snap);
    let after: Vec<_> = store.journal_after(latest.journal_id).unwrap();
    // Arrival order is kept, including a late sample whose ts is before the snapshot's.
    assert_eq!(after, vec![sample(2, 3), sample(1, 4)]);
    assert_eq!(
        store.journal_since(ts(1)).unwrap(),
        vec![sample(1, 2), sample(2, 3), sample(1, 4)]
    );
    for i in 0..5 {
        store.save_snapshot(ts(10 + i), "{}").unwrap();
    }
    let n: i64 = store
        .connection()
        .query_row("SELECT COUNT(*) FROM snapshot", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 2, "only the latest snapshots are kept");
}

#[test]
fn journal_ids_never_go_back_below_a_snapshot_after_the_journal_was_emptied() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let mut store = Store::open(&path, &cfg(&path)).unwrap();
    store
        .append_journal(&(0..10).map(|i| sample(i, i)).collect::<Vec<_>>())
        .unwrap();
    let snap = store.save_snapshot(ts(10), "{}").unwrap();
    // The size bound may delete every journal row behind the snapshot.
    store
        .connection()
        .execute("DELETE FROM journal", [])
        .unwrap();
    drop(store);
    let mut store = Store::open(&path, &cfg(&path)).unwrap();
    store.append_journal(&[sample(11, 42)]).unwrap();
    assert_eq!(
        store.journal_after(snap.journal_id).unwrap(),
        vec![sample(11, 42)],
        "a row written after the snapshot is replayed, not skipped"
    );
}

#[test]
fn null_and_text_values_round_trip_through_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let mut store = Store::open(&path, &cfg(&path)).unwrap();
    let samples = vec![
        Sample::new(ts(0), "m".into(), Signal::Running, None),
        Sample::new(
            ts(1),
            "m".into(),
            Signal::Product,
            Some(Value::Text("A-12".into())),
        ),
        Sample::new(ts(2), "m".into(), Signal::Running, Some(Value::Bool(true))),
        Sample::new(ts(3), "m".into(), Signal::State, Some(Value::Float(2.5))),
    ];
    store.append_journal(&samples).unwrap();
    assert_eq!(store.journal_since(ts(0)).unwrap(), samples);
}

#[test]
fn live_topics_keep_only_their_latest_value() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let mut store = Store::open(&path, &cfg(&path)).unwrap();
    for i in 0..5 {
        store
            .set_live(&msg("s/m1/state", &format!("st-{i}"), 3))
            .unwrap();
    }
    store.set_live(&msg("s/m2/state", "other-0", 3)).unwrap();
    let pending = store.live_pending().unwrap();
    assert_eq!(pending.len(), 2);
    assert_eq!(
        pending
            .iter()
            .find(|m| m.topic == "s/m1/state")
            .unwrap()
            .msg_id,
        "st-4"
    );
    store.mark_live_sent("s/m1/state", "st-4").unwrap();
    // A confirmation of an older value does not hide a newer one.
    store.set_live(&msg("s/m2/state", "other-1", 3)).unwrap();
    store.mark_live_sent("s/m2/state", "other-0").unwrap();
    let pending: Vec<String> = store
        .live_pending()
        .unwrap()
        .into_iter()
        .map(|m| m.msg_id)
        .collect();
    assert_eq!(pending, ["other-1"]);
    assert_eq!(store.live_all().unwrap().len(), 2);
}

#[test]
fn config_history_records_first_and_last_seen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let mut store = Store::open(&path, &cfg(&path)).unwrap();
    store.record_config("h1", "site: a", ts(0)).unwrap();
    store.record_config("h2", "site: b", ts(10)).unwrap();
    store.record_config("h1", "site: a", ts(20)).unwrap();
    let h = store.config_history().unwrap();
    assert_eq!(h.len(), 2);
    assert_eq!((h[0].0.as_str(), h[0].2, h[0].3), ("h1", ts(0), ts(20)));
    assert_eq!((h[1].0.as_str(), h[1].2, h[1].3), ("h2", ts(10), ts(10)));
}

/// Fill a store: old and recent journal before a snapshot, journal after it, hourly and shift summaries, stops.
fn filled_store(path: &Path) -> Store {
    let mut store = Store::open(path, &cfg(path)).unwrap();
    let day = 86_400;
    let old: Vec<Sample> = (0..6000).map(|i| sample(i, i)).collect();
    let recent: Vec<Sample> = (0..6000).map(|i| sample(9 * day + i, i)).collect();
    store.append_journal(&old).unwrap();
    store.append_journal(&recent).unwrap();
    store.save_snapshot(ts(9 * day + 6000), "{}").unwrap();
    let after: Vec<Sample> = (0..500).map(|i| sample(9 * day + 7000 + i, i)).collect();
    store.append_journal(&after).unwrap();
    let mut closed = Vec::new();
    for h in 0..200 {
        closed.push(summary("hour", "m1", h * 3600, 2000));
        if h % 8 == 0 {
            closed.push(summary("shift", "m1", h * 3600, 2000));
        }
        if h % 4 == 0 {
            closed.push(stop("m1", h * 3600 + 10, 1000));
        }
    }
    store.commit_closed(&closed).unwrap();
    // The first half was already published.
    let sent: Vec<i64> = store
        .outbox_batch(0, 200)
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    store.delete_outbox(&sent).unwrap();
    store
}

#[test]
fn size_bound_drops_old_journal_then_oldest_hourly_summaries_and_reports_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let mut store = filled_store(&path);
    let before = store.used_bytes().unwrap();
    let shifts = store
        .summaries_between(ts(0), ts(1_000_000))
        .unwrap()
        .iter()
        .filter(|s| s.record.kind == "shift")
        .count();
    // Protected data: 25 shift summaries and 50 stops (twice: table + outbox), recent journal. Leave room for
    // about half of the hourly summaries.
    let max = before / 2;
    let report = store.enforce_size(max).unwrap();
    assert!(!report.over_limit, "{report:?}");
    assert!(report.after_bytes <= max);
    let kinds: Vec<&str> = report.dropped.iter().map(|(w, _)| w.as_str()).collect();
    assert_eq!(
        kinds, DROP_ORDER,
        "every category dropped, in order: {report:?}"
    );
    assert_eq!(
        report.dropped[0].1, 6000,
        "journal older than 7 days and the snapshot"
    );
    assert_eq!(
        report.dropped[1].1, 6000,
        "rest of the journal before the snapshot"
    );
    let hours_dropped = report.dropped[2].1;
    assert!(hours_dropped > 0 && hours_dropped < 200, "{report:?}");

    // Never dropped: shift summaries, stops, journal since the snapshot.
    let kept = store.summaries_between(ts(0), ts(1_000_000)).unwrap();
    assert_eq!(
        kept.iter().filter(|s| s.record.kind == "shift").count(),
        shifts
    );
    assert_eq!(store.stops_between(ts(0), ts(1_000_000)).unwrap().len(), 50);
    assert_eq!(store.journal_len().unwrap(), 500);
    // The oldest hours went first: what is left is the newest ones.
    let hours: Vec<Timestamp> = kept
        .iter()
        .filter(|s| s.record.kind == "hour")
        .map(|s| s.record.start)
        .collect();
    assert_eq!(hours.len() as u64, 200 - hours_dropped);
    assert_eq!(hours[0], ts(hours_dropped as i64 * 3600));
    // Dropped hourly summaries left the outbox too; queued stops and shifts stayed.
    let queued = store.outbox_batch(0, 10_000).unwrap();
    assert!(queued.iter().all(|r| !r.message.topic.ends_with("oee/hour")
        || hours
            .iter()
            .any(|h| r.message.msg_id == format!("m1-hour-{}", h.as_second() - 1_700_000_000))));
    assert!(queued.iter().any(|r| r.message.topic.ends_with("/stop")));
    // Counted for agent/status.
    let counts = store.drop_counts().unwrap();
    assert_eq!(
        counts.iter().find(|(w, _)| w == "hour_summary").unwrap().1,
        hours_dropped
    );
    assert_eq!(
        counts.iter().map(|(_, n)| n).sum::<u64>(),
        12_000 + hours_dropped
    );
}

#[test]
fn size_bound_never_drops_shift_summaries_or_stops_even_when_still_over() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let mut store = filled_store(&path);
    let report = store.enforce_size(4096).unwrap();
    assert!(report.over_limit);
    let kept = store.summaries_between(ts(0), ts(1_000_000)).unwrap();
    assert!(kept.iter().all(|s| s.record.kind == "shift"));
    assert_eq!(kept.len(), 25);
    assert_eq!(store.stops_between(ts(0), ts(1_000_000)).unwrap().len(), 50);
    assert_eq!(store.journal_len().unwrap(), 500);
}

#[tokio::test]
async fn journal_batch_is_committed_within_the_commit_interval_without_a_flush() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let handle = StoreHandle::open(&path, &cfg(&path)).unwrap();
    handle
        .append_journal((0..100).map(|i| sample(i, i)).collect())
        .await
        .unwrap();
    // Another connection (as after a power cut: only committed data exists) sees the rows within the interval.
    let reader = Store::open(&path, &cfg(&path)).unwrap();
    let mut seen = 0;
    for _ in 0..50 {
        seen = reader.journal_len().unwrap();
        if seen == 100 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        seen, 100,
        "committed within commit_interval (200 ms) + tick"
    );
}

#[tokio::test]
async fn journal_and_closed_rows_survive_reopen_through_the_handle() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.db");
    let handle = StoreHandle::open(&path, &cfg(&path)).unwrap();
    handle
        .append_journal(vec![sample(0, 1), sample(1, 2)])
        .await
        .unwrap();
    let snap = handle
        .save_snapshot(ts(1), "{\"k\":1}".into())
        .await
        .unwrap();
    assert_eq!(
        snap.journal_id, 2,
        "buffered journal rows are committed before the snapshot"
    );
    handle.append_journal(vec![sample(2, 3)]).await.unwrap();
    let notify = handle.outbox_notify();
    assert_eq!(
        handle.commit_closed(vec![stop("m1", 5, 10)]).await.unwrap(),
        1
    );
    tokio::time::timeout(Duration::from_secs(1), notify.notified())
        .await
        .expect("publisher woken");
    handle.close().await.unwrap();
    assert!(matches!(handle.outbox_len().await, Err(StoreError::Closed)));

    let handle = StoreHandle::open(&path, &cfg(&path)).unwrap();
    let snap = handle.latest_snapshot().await.unwrap().unwrap();
    assert_eq!(snap.state, "{\"k\":1}");
    assert_eq!(
        handle.journal_after(snap.journal_id).await.unwrap(),
        vec![sample(2, 3)]
    );
    assert_eq!(handle.outbox_len().await.unwrap(), 1);
    assert_eq!(handle.stops_between(ts(0), ts(10)).await.unwrap().len(), 1);
}
