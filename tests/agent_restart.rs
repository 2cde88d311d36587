//! A restart in the middle of a shift costs only the gap: two real daemons poll the same simulated plant (one
//! `Plant` behind one port, identical registers), A uninterrupted, B stopped mid-shift (SIGTERM, or `kill -9`)
//! and restarted about 5 s later. B's summary of that shift equals A's except for the gap, which is unknown
//! time; for a shift neither was interrupted in, the two summaries agree.
//!
//! Tolerances come from the sampling, not from guesswork: the two agents poll at different instants, so a count
//! may differ at each window edge by the parts made within one poll interval (plus scheduling jitter), and a
//! state change is seen up to one poll interval apart.

mod agent_support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use agent_support::{
    first_sample_ms, minute_ceil, one_minute_shifts, open_db, shift_summaries, Agent, AgentConfig,
};
use jiff::{SignedDuration, Timestamp};
use serde_json::Value;
use shopfloor_agent::config::HumanDuration;
use shopfloor_agent::publish::broker::EmbeddedBroker;
use shopfloor_agent::sim::{self, Plant, SimOptions};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Simulated seconds per real second. At 20×, microstops (10–90 s simulated) last 0.5–4.5 s and breakdowns
/// (180 s or more) at least 9 s, so a 6 s small-stop threshold classifies every stop the same way in both agents;
/// the first planned stop comes after 216 s, later than the test ends.
const SPEED: f64 = 20.0;
const MACHINES: u16 = 5;
const POLL: Duration = Duration::from_millis(250);
/// Late polls on a loaded machine.
const JITTER: Duration = Duration::from_millis(250);
const GAP: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Copy, PartialEq)]
enum Interrupt {
    Sigterm,
    Kill9,
}

fn f(p: &Value, key: &str) -> f64 {
    p[key]
        .as_f64()
        .unwrap_or_else(|| panic!("`{key}` is a number in {p}"))
}

fn secs(d: SignedDuration) -> f64 {
    d.as_secs_f64()
}

async fn sleep_until(t: Timestamp) {
    let left = t.duration_since(Timestamp::now());
    if left.is_positive() {
        tokio::time::sleep(left.unsigned_abs()).await;
    }
}

/// Ideal cycle time of product 1 of machine `n` (simulated seconds): the fastest product (see `sim`).
fn fastest_cycle_s(n: u16) -> f64 {
    2.0 * (1.0 + 0.25 * f64::from(n % 4))
}

/// Upper bound of the parts machine `n` makes in `d` of real time (cycles are at least 0.97 × ideal).
fn parts_in(n: u16, d: Duration) -> f64 {
    (d.as_secs_f64() * SPEED / (fastest_cycle_s(n) * 0.97)).ceil()
}

fn plant_totals(plant: &Plant) -> BTreeMap<String, u32> {
    (1..=MACHINES)
        .map(|n| {
            let s = plant
                .snapshot(n as u8)
                .expect("the unit exists in the plant");
            (format!("sim-{n:02}"), s.total)
        })
        .collect()
}

/// One shift's summaries from both databases (every machine present in each), added to `report`.
fn both(
    a: &rusqlite::Connection,
    b: &rusqlite::Connection,
    start: Timestamp,
    label: &str,
    report: &mut Vec<String>,
) -> Vec<(u16, String, Value, Value)> {
    let (a, b) = (shift_summaries(a, start), shift_summaries(b, start));
    (1..=MACHINES)
        .map(|n| {
            let m = format!("sim-{n:02}");
            let pa = a.get(&m).unwrap_or_else(|| panic!("A has {label} of {m}"));
            let pb = b.get(&m).unwrap_or_else(|| panic!("B has {label} of {m}"));
            report.push(row(&format!("{label} A"), n, pa));
            report.push(row(&format!("{label} B"), n, pb));
            (n, m, pa.clone(), pb.clone())
        })
        .collect()
}

fn row(label: &str, m: u16, p: &Value) -> String {
    format!(
        "{label} sim-{m:02}: planned {:6.2} unknown {:6.2} run {:6.2} down {:6.2} small_stops {:2} total {:4} good {:4}",
        f(p, "planned_time_s"),
        f(p, "unknown_time_s"),
        f(p, "run_time_s"),
        f(p, "downtime_s"),
        f(p, "small_stop_count"),
        f(p, "total_count"),
        f(p, "good_count"),
    )
}

async fn restart_mid_shift(kind: Interrupt, site: &str) {
    let dir = tempfile::tempdir().unwrap();
    let broker = EmbeddedBroker::start_local().unwrap();
    let opts = SimOptions {
        machines: MACHINES,
        seed: 7,
        speed: SPEED,
    };
    let plant = Arc::new(Plant::new(&opts));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim_port = listener.local_addr().unwrap().port();
    let sim_cancel = CancellationToken::new();
    tokio::spawn(sim::serve_plant(
        listener,
        plant.clone(),
        sim_cancel.clone(),
    ));

    let shifts = one_minute_shifts(Timestamp::now(), 2, 5);
    let write = |name: &str| {
        let db = dir.path().join(format!("{name}.db"));
        let cfg = AgentConfig {
            site: &format!("{site}-{name}"),
            client_id: &format!("{site}-{name}"),
            broker_port: broker.port(),
            db: &db,
            sim_port,
            sim: opts,
            interval: HumanDuration::from_millis(POLL.as_millis() as u64),
            shifts: shifts.clone(),
            small_stop: HumanDuration::from_secs(6),
        }
        .write();
        (db, cfg, dir.path().join(format!("{name}.log")))
    };
    let (db_a, cfg_a, log_a) = write("a");
    let (db_b, cfg_b, log_b) = write("b");

    let mut a = Agent::start(&cfg_a, &log_a);
    let mut b = Agent::start(&cfg_b, &log_b);
    // X: the shift both agents start in and run through; Y: the next one, B stopped 20 s into it.
    let y = minute_ceil(Timestamp::now() + SignedDuration::from_secs(8));
    let x = y - SignedDuration::from_secs(60);
    let y_end = y + SignedDuration::from_secs(60);

    sleep_until(y + SignedDuration::from_secs(18)).await;
    let before = plant_totals(&plant);
    sleep_until(y + SignedDuration::from_secs(20)).await;
    let stopped = Timestamp::now();
    match kind {
        Interrupt::Sigterm => {
            let status = b.terminate(Duration::from_secs(15));
            assert!(
                status.success(),
                "B stops cleanly: {status}\n{}",
                b.log_tail(30)
            );
        }
        Interrupt::Kill9 => b.kill9(),
    }
    sleep_until(stopped + SignedDuration::try_from(GAP).unwrap()).await;
    let restarted = Timestamp::now();
    let mut b = Agent::start(&cfg_b, &log_b);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let after = plant_totals(&plant);
    let gap = secs(restarted.duration_since(stopped));
    assert!(
        restarted < y_end - SignedDuration::from_secs(20),
        "the gap lies inside shift Y"
    );

    // Wait until both have closed Y for every machine (a stop in progress may hold a close up to 6 s).
    let deadline = y_end + SignedDuration::from_secs(30);
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let done = [&db_a, &db_b]
            .iter()
            .all(|db| shift_summaries(&open_db(db), y).len() == usize::from(MACHINES));
        if done {
            break;
        }
        assert!(
            Timestamp::now() < deadline,
            "shift {y} not closed by both agents in time\n{}\n{}",
            a.log_tail(20),
            b.log_tail(20)
        );
    }
    for agent in [&mut a, &mut b] {
        let status = agent.terminate(Duration::from_secs(15));
        assert!(
            status.success(),
            "clean stop: {status}\n{}",
            agent.log_tail(30)
        );
    }
    sim_cancel.cancel();

    let (conn_a, conn_b) = (open_db(&db_a), open_db(&db_b));
    let (first_a, first_b) = (first_sample_ms(&conn_a), first_sample_ms(&conn_b));
    let poll = POLL.as_secs_f64();
    let mut report = vec![format!("{kind:?}: gap {gap:.2} s inside shift {y}")];

    let ys = both(&conn_a, &conn_b, y, "Y", &mut report);
    let xs = both(&conn_a, &conn_b, x, "X", &mut report);
    println!("{}", report.join("\n"));

    // Y: B's summary is A's with the gap turned into unknown time.
    for (n, m, pa, pb) in ys {
        let unknown_a = f(&pa, "unknown_time_s");
        let unknown_b = f(&pb, "unknown_time_s");
        assert!(
            unknown_a <= poll + 0.05,
            "{m}: A ran through Y ({unknown_a} s unknown)"
        );
        let extra = unknown_b - unknown_a;
        match kind {
            // The snapshot at shutdown marks the last known instant; the gap ends at the first poll after restart.
            Interrupt::Sigterm => assert!(
                (extra - gap).abs() <= 1.5,
                "{m}: B's extra unknown time {extra:.2} s is the gap {gap:.2} s (±1.5 s)"
            ),
            // The gap runs from the last journaled sample (committed every second) to the first poll after restart.
            Interrupt::Kill9 => {
                assert!(
                    unknown_b >= gap,
                    "{m}: B's unknown time {unknown_b:.2} s covers the gap {gap:.2} s"
                );
                assert!(
                    extra <= gap + 3.0,
                    "{m}: B's extra unknown time {extra:.2} s is the gap {gap:.2} s plus at most the uncommitted second and the start-up"
                );
            }
        }
        let planned_a = f(&pa, "planned_time_s");
        let planned_b = f(&pb, "planned_time_s");
        assert!(
            (planned_a - planned_b - extra).abs() <= 0.05,
            "{m}: planned time lost = unknown time gained ({planned_a:.2} − {planned_b:.2} vs {extra:.2})"
        );
        if kind == Interrupt::Sigterm {
            assert!(
                (planned_a - gap - planned_b).abs() <= 1.5,
                "{m}: B planned {planned_b:.2} s ≈ A planned {planned_a:.2} s − gap {gap:.2} s"
            );
        }
        let total_a = f(&pa, "total_count");
        let total_b = f(&pb, "total_count");
        let edges = 2.0 * parts_in(n, POLL + JITTER);
        let during_gap = f64::from(after[&m].wrapping_sub(before[&m]));
        assert!(
            total_b <= total_a + edges,
            "{m}: B counted {total_b} parts, A {total_a} (edges ±{edges})"
        );
        assert!(
            total_a - total_b <= during_gap + edges,
            "{m}: B misses {} parts, at most the {during_gap} made around the gap (edges ±{edges})",
            total_a - total_b
        );
    }

    // X: neither agent was interrupted; both started in it, a few hundred ms apart.
    for (n, m, pa, pb) in xs {
        let skew = (first_a[&m] - first_b[&m]).abs() as f64 / 1000.0;
        let long_stops = f(&pa, "downtime_count").max(f(&pb, "downtime_count"))
            + f64::from(u8::from(f(&pa, "setup_time_s") > 0.0));
        let time_tol = skew + poll * (1.0 + 2.0 * long_stops) + 0.05;
        for key in [
            "unknown_time_s",
            "planned_time_s",
            "run_time_s",
            "downtime_s",
            "setup_time_s",
        ] {
            let (va, vb) = (f(&pa, key), f(&pb, key));
            assert!(
                (va - vb).abs() <= time_tol,
                "{m} X {key}: A {va:.2} vs B {vb:.2} (start skew {skew:.2} s, tolerance {time_tol:.2} s)"
            );
        }
        let count_tol =
            parts_in(n, POLL + JITTER) + parts_in(n, Duration::from_secs_f64(skew) + JITTER);
        for key in ["total_count", "good_count"] {
            let (va, vb) = (f(&pa, key), f(&pb, key));
            assert!(
                (va - vb).abs() <= count_tol,
                "{m} X {key}: A {va} vs B {vb} (tolerance {count_tol})"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_shift_and_restart_costs_only_the_gap_as_unknown_time() {
    restart_mid_shift(Interrupt::Sigterm, "rs-term").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_shift_and_restart_costs_the_gap_since_the_last_journaled_sample() {
    restart_mid_shift(Interrupt::Kill9, "rs-kill").await;
}
