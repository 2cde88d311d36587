//! `kill -9` of the real daemon at 20 random moments of an accelerated run (simulator and broker in this
//! process, one-minute shifts): the database opens cleanly every time, no closed stop or summary ever
//! disappears from it, and after a last clean run the subscriber has received every one of them.

mod agent_support;
mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use agent_support::{
    closed_ids, count, integrity, one_minute_shifts, open_db, outbox_len, Agent, AgentConfig,
};
use jiff::Timestamp;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use shopfloor_agent::config::HumanDuration;
use shopfloor_agent::publish::broker::EmbeddedBroker;
use shopfloor_agent::sim::{self, SimOptions};
use support::Subscriber;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

const ROUNDS: usize = 20;
const SEED: u64 = 0x5eed_0009;
const SITE: &str = "k9";

fn is_closed_topic(topic: &str) -> bool {
    topic.ends_with("/stop") || topic.ends_with("/oee/shift") || topic.ends_with("/oee/hour")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_moments_never_corrupts_the_file_nor_loses_a_closed_stop_or_summary() {
    let t0 = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let broker = EmbeddedBroker::start_local().unwrap();
    let sub = Subscriber::start(broker.port(), "k9-sub", &format!("shopfloor/{SITE}/#")).await;

    let opts = SimOptions {
        machines: 5,
        seed: 9,
        speed: 60.0,
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim_port = listener.local_addr().unwrap().port();
    let sim_cancel = CancellationToken::new();
    tokio::spawn(sim::serve(listener, opts, sim_cancel.clone()));

    let db = dir.path().join("agent.db");
    let log = dir.path().join("agent.log");
    let config = AgentConfig {
        site: SITE,
        client_id: "k9-agent",
        broker_port: broker.port(),
        db: &db,
        sim_port,
        sim: opts,
        interval: HumanDuration::from_millis(250),
        shifts: one_minute_shifts(Timestamp::now(), 3, 15),
        small_stop: HumanDuration::from_secs(2),
    }
    .write();

    let mut rng = SmallRng::seed_from_u64(SEED);
    let mut seen: BTreeSet<String> = BTreeSet::new();
    for round in 0..ROUNDS {
        let mut agent = Agent::start(&config, &log);
        let alive = Duration::from_millis(rng.random_range(300..=2500));
        tokio::time::sleep(alive).await;
        assert!(
            agent.running(),
            "round {round}: the agent died by itself\n{}",
            agent.log_tail(30)
        );
        agent.kill9();
        if !db.exists() {
            assert!(seen.is_empty(), "round {round}: the database vanished");
            continue;
        }
        let conn = open_db(&db);
        assert_eq!(integrity(&conn), "ok", "round {round}: integrity_check");
        if count(
            &conn,
            "SELECT COUNT(*) FROM sqlite_master WHERE name = 'stops'",
        ) == 0
        {
            // Killed before the schema's first migration committed.
            assert!(seen.is_empty(), "round {round}: the schema vanished");
            continue;
        }
        let now = closed_ids(&conn);
        let lost: Vec<_> = seen.difference(&now).collect();
        assert!(
            lost.is_empty(),
            "round {round} (killed after {alive:?}): closed rows vanished: {lost:?}"
        );
        seen = now;
    }
    let after_kills = t0.elapsed();

    // A last run: until a shift has closed for every machine and the outbox is empty (at most 60 s), then a
    // clean stop.
    let mut agent = Agent::start(&config, &log);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let conn = open_db(&db);
        let shifts = count(&conn, "SELECT COUNT(*) FROM summaries WHERE kind = 'shift'");
        if shifts >= i64::from(opts.machines) && outbox_len(&conn) == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no shift closed or outbox not drained within 60 s (shifts {shifts}, outbox {})\n{}",
            outbox_len(&conn),
            agent.log_tail(30)
        );
    }
    let status = agent.terminate(Duration::from_secs(20));
    assert!(
        status.success(),
        "clean stop: {status}\n{}",
        agent.log_tail(30)
    );

    let conn = open_db(&db);
    assert_eq!(integrity(&conn), "ok", "after the clean stop");
    assert_eq!(outbox_len(&conn), 0, "the clean stop drained the outbox");
    let stored = closed_ids(&conn);
    assert!(seen.is_subset(&stored), "the last run lost nothing");
    let shifts = count(&conn, "SELECT COUNT(*) FROM summaries WHERE kind = 'shift'");
    let hours = count(&conn, "SELECT COUNT(*) FROM summaries WHERE kind = 'hour'");
    let stops = count(&conn, "SELECT COUNT(*) FROM stops");
    assert!(
        shifts >= i64::from(opts.machines),
        "a shift closed for every machine ({shifts})"
    );
    assert!(stops >= 5, "stops were produced ({stops})");

    // Every stored stop and summary reached the subscriber (duplicates allowed, none missing).
    let received = |g: &[support::Received]| -> BTreeSet<String> {
        g.iter()
            .filter(|r| is_closed_topic(&r.topic))
            .map(|r| r.msg_id().to_owned())
            .collect()
    };
    let got = sub
        .wait_for(
            Duration::from_secs(10),
            "every stored stop and summary",
            |g| stored.is_subset(&received(g)),
        )
        .await;
    let delivered = got.iter().filter(|r| is_closed_topic(&r.topic)).count();
    let unique = received(&got);
    assert!(unique.is_superset(&stored));
    println!(
        "{ROUNDS} kills in {after_kills:?}, total {:?}: {stops} stops, {shifts} shift and {hours} hour summaries \
         stored; {delivered} delivered ({} duplicates)",
        t0.elapsed(),
        delivered - unique.len()
    );
    sim_cancel.cancel();
}
