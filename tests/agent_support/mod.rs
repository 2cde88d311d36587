//! Helpers for the daemon tests (and `benches/agent_rss.rs`): a config for the in-process simulator, the real
//! `shopfloor-agent` binary as a child process, and read-only looks into its SQLite file.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use rusqlite::{Connection, OpenFlags};
use shopfloor_agent::config::HumanDuration;
use shopfloor_agent::sim::{self, SimOptions};

/// What the agent under test reads and where it writes.
pub struct AgentConfig<'a> {
    /// Plant id (topic segment).
    pub site: &'a str,
    /// MQTT client id (two agents on one broker need two).
    pub client_id: &'a str,
    /// Broker port on 127.0.0.1.
    pub broker_port: u16,
    /// SQLite file.
    pub db: &'a Path,
    /// Simulator port on 127.0.0.1.
    pub sim_port: u16,
    /// The simulated plant (machines, speed).
    pub sim: SimOptions,
    /// Modbus poll interval.
    pub interval: HumanDuration,
    /// `shifts:` list, e.g. from [`one_minute_shifts`].
    pub shifts: String,
    /// Stops shorter than this are small stops (real time).
    pub small_stop: HumanDuration,
}

impl AgentConfig<'_> {
    /// The YAML text of the config.
    pub fn yaml(&self) -> String {
        let mut machines =
            sim::real_time_machine_configs(&self.sim, "127.0.0.1", self.sim_port, self.interval);
        for m in &mut machines {
            // A request must time out before the next poll is due.
            if let Some(src) = m.source.modbus.as_mut() {
                let cap = HumanDuration::from_millis((self.interval.as_millis() * 4 / 5).max(1));
                if src.timeout.as_millis() >= self.interval.as_millis() {
                    src.timeout = cap;
                }
            }
        }
        let mut y = format!(
            "site: {site}\n\
             timezone: UTC\n\
             mqtt: {{ host: 127.0.0.1, port: {port}, client_id: {client}, topic_prefix: shopfloor }}\n\
             storage: {{ path: \"{db}\", snapshot_interval: 1s }}\n\
             live_interval: 1s\n\
             reorder_window: 1s\n\
             small_stop_threshold: {small}\n\
             shifts:\n{shifts}",
            site = self.site,
            port = self.broker_port,
            client = self.client_id,
            db = self.db.display(),
            small = self.small_stop,
            shifts = self.shifts,
        );
        y.push_str(&sim::machines_yaml(&machines));
        y
    }

    /// Write the config next to the database; returns its path.
    pub fn write(&self) -> PathBuf {
        let path = self.db.with_extension("yaml");
        std::fs::write(&path, self.yaml()).expect("write the agent config");
        path
    }
}

/// Start of the UTC minute holding `t`.
pub fn minute_floor(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second().div_euclid(60) * 60).expect("a minute boundary")
}

/// The first minute boundary at or after `t`.
pub fn minute_ceil(t: Timestamp) -> Timestamp {
    let floor = minute_floor(t);
    if floor == t {
        floor
    } else {
        Timestamp::from_second(floor.as_second() + 60).expect("a minute boundary")
    }
}

/// A `shifts:` YAML list of one-minute shifts (UTC), named `mHHMM`, from `before` minutes before the minute of
/// `now` to `after` minutes after it (wrapping at midnight).
pub fn one_minute_shifts(now: Timestamp, before: i64, after: i64) -> String {
    let minute = now.as_second().div_euclid(60).rem_euclid(24 * 60);
    let hhmm = |m: i64| format!("{:02}:{:02}", m / 60, m % 60);
    let mut y = String::new();
    for k in -before..after {
        let m = (minute + k).rem_euclid(24 * 60);
        let e = (m + 1) % (24 * 60);
        let _ = writeln!(
            y,
            "  - {{ name: m{}, start: \"{}\", end: \"{}\" }}",
            hhmm(m).replace(':', ""),
            hhmm(m),
            hhmm(e)
        );
    }
    y
}

/// The `shopfloor-agent` binary cargo built for this test or bench.
pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_shopfloor-agent")
}

/// A `shopfloor-agent run -c FILE` child process; its output is appended to a log file. Killed on drop.
pub struct Agent {
    child: Option<Child>,
    /// Its process id.
    pub pid: u32,
    log: PathBuf,
}

impl Agent {
    /// Spawn `run -c config`, output appended to `log`.
    pub fn start(config: &Path, log: &Path) -> Agent {
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("open the agent log");
        let err = out.try_clone().expect("clone the log handle");
        let child = Command::new(binary())
            .args(["--log-level", "shopfloor_agent=info"])
            .arg("run")
            .arg("-c")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn shopfloor-agent run");
        Agent {
            pid: child.id(),
            child: Some(child),
            log: log.to_path_buf(),
        }
    }

    /// SIGKILL and reap.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().expect("SIGKILL the agent");
            c.wait().expect("reap the agent");
        }
    }

    /// SIGTERM, then wait up to `timeout` for the exit (SIGKILL and panic past it).
    pub fn terminate(&mut self, timeout: Duration) -> ExitStatus {
        let mut c = self.child.take().expect("the agent is running");
        let sent = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status()
            .expect("run kill -TERM");
        assert!(sent.success(), "kill -TERM {} failed", c.id());
        let t0 = Instant::now();
        loop {
            if let Some(status) = c.try_wait().expect("wait for the agent") {
                return status;
            }
            if t0.elapsed() > timeout {
                let _ = c.kill();
                let _ = c.wait();
                panic!(
                    "the agent did not exit within {timeout:?} of SIGTERM\n{}",
                    log_tail(&self.log, 40)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Still running?
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// The last lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.log, lines)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// The last `lines` lines of a log file (for failure messages).
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    let from = all.len().saturating_sub(lines);
    format!(
        "--- last lines of {} ---\n{}",
        path.display(),
        all[from..].join("\n")
    )
}

/// Open the agent's database as a second reader (the agent may be running).
pub fn open_db(path: &Path) -> Connection {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    conn.busy_timeout(Duration::from_secs(5))
        .expect("busy timeout");
    conn
}

/// `PRAGMA integrity_check` result.
pub fn integrity(conn: &Connection) -> String {
    conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check")
}

/// msg_ids returned by `sql`.
pub fn ids(conn: &Connection, sql: &str) -> BTreeSet<String> {
    let mut stmt = conn.prepare(sql).expect("prepare");
    let rows = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .expect("query");
    rows.map(|r| r.expect("row")).collect()
}

/// msg_ids of every closed stop and summary.
pub fn closed_ids(conn: &Connection) -> BTreeSet<String> {
    ids(
        conn,
        "SELECT msg_id FROM stops UNION SELECT msg_id FROM summaries",
    )
}

/// A single integer from `sql`.
pub fn count(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).expect("count query")
}

/// Rows waiting in the outbox.
pub fn outbox_len(conn: &Connection) -> i64 {
    count(conn, "SELECT COUNT(*) FROM outbox")
}

/// Closed shift summaries (payload JSON) of the shift starting at `start`, by machine.
pub fn shift_summaries(
    conn: &Connection,
    start: Timestamp,
) -> std::collections::BTreeMap<String, serde_json::Value> {
    let mut stmt = conn
        .prepare("SELECT machine, payload FROM summaries WHERE kind = 'shift' AND start = ?1")
        .expect("prepare");
    let rows = stmt
        .query_map([start.as_millisecond()], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })
        .expect("query");
    rows.map(|r| {
        let (m, p) = r.expect("row");
        (
            m,
            serde_json::from_str(&p).expect("summary payload is JSON"),
        )
    })
    .collect()
}

/// Earliest journaled sample per machine (ms), i.e. when the agent first heard from it.
pub fn first_sample_ms(conn: &Connection) -> std::collections::BTreeMap<String, i64> {
    let mut stmt = conn
        .prepare("SELECT machine, MIN(ts) FROM journal GROUP BY machine")
        .expect("prepare");
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
        .expect("query");
    rows.map(|r| r.expect("row")).collect()
}
