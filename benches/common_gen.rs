//! Shared generator of a realistic sample stream for the engine and replay benchmarks.
#![allow(dead_code)]

use serde_json::json;
use shopfloor_agent::config::Config;

/// Machines in the benchmark plant.
pub const MACHINES: usize = 40;

/// A plant: three 8-hour shifts with breaks, `MACHINES` machines with running/total/reject (+ product).
pub fn plant() -> Config {
    let machines: Vec<_> = (0..MACHINES)
        .map(|i| {
            let t = |leaf: &str| format!("plant/m{i:03}/{leaf}");
            json!({"id": format!("m{i:03}"), "line": format!("line{}", i % 4), "ideal_cycle_time": "2s",
                   "products": {"A": "2s", "B": "3s"},
                   "source": {"mqtt": {"topic": format!("plant/m{i:03}/#")}},
                   "signals": {"running": {"topic": t("running")},
                               "total_count": {"topic": t("total"), "rollover": 65536},
                               "reject_count": {"topic": t("reject")},
                               "product": {"topic": t("product")}}})
        })
        .collect();
    serde_json::from_value(json!({
        "site": "bench", "timezone": "Europe/Paris",
        "shifts": [
            {"name": "A", "start": "06:00", "end": "14:00", "breaks": [{"start": "10:00", "end": "10:15"}]},
            {"name": "B", "start": "14:00", "end": "22:00", "breaks": [{"start": "18:00", "end": "18:15"}]},
            {"name": "N", "start": "22:00", "end": "06:00", "breaks": [{"start": "02:00", "end": "02:15"}]}
        ],
        "machines": machines
    }))
    .expect("bench config")
}

/// One generated sample: (epoch seconds, machine index, signal, value).
pub type Raw = (i64, usize, &'static str, serde_json::Value);

/// `seconds` of 1 s polls of every machine: running every poll, counters every poll, product changes
/// and stops now and then (deterministic).
pub fn stream(start: i64, seconds: i64) -> Vec<Raw> {
    let mut out = Vec::with_capacity((seconds as usize) * MACHINES * 3);
    let mut total = vec![60_000i64; MACHINES];
    let mut reject = vec![0i64; MACHINES];
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut stopped_until = vec![0i64; MACHINES];
    for s in 0..seconds {
        let ts = start + s;
        for m in 0..MACHINES {
            let r = rnd();
            if stopped_until[m] <= ts && r % 900 == 0 {
                stopped_until[m] = ts + 30 + (r % 600) as i64;
            }
            let running = stopped_until[m] <= ts;
            out.push((ts, m, "running", json!(running)));
            if running && r % 2 == 0 {
                total[m] = (total[m] + 1) % 65536;
                if r % 97 == 0 {
                    reject[m] += 1;
                }
            }
            out.push((ts, m, "total_count", json!(total[m])));
            out.push((ts, m, "reject_count", json!(reject[m])));
            if r % 20_000 == 1 {
                out.push((ts, m, "product", json!(if r % 2 == 0 { "A" } else { "B" })));
            }
        }
    }
    out
}

/// CPU time (user + system) of the calling thread in seconds, from `/proc/thread-self/stat` (Linux);
/// `None` elsewhere. Unlike wall time it does not count the time other processes held the core.
pub fn thread_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / clock_ticks())
}

/// Clock ticks per second of `/proc` times (`getconf CLK_TCK`, 100 when unknown).
fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}
