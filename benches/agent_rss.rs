//! The daemon's footprint: `shopfloor-agent run` (release build, child process) polling 50 simulated machines every
//! second (simulator and embedded broker in this process), one-minute shifts so windows close during the run.
//! Samples the child's VmRSS / VmHWM (`/proc/PID/status`) and CPU (`/proc/PID/stat`) every second.
//! Budget: under 50 MB RSS. `cargo bench --bench agent_rss -- [--seconds 60] [--machines 50] [--speed 1]`.

#[path = "../tests/agent_support/mod.rs"]
mod agent_support;

use std::time::{Duration, Instant};

use agent_support::{count, one_minute_shifts, open_db, outbox_len, Agent, AgentConfig};
use jiff::Timestamp;
use shopfloor_agent::config::HumanDuration;
use shopfloor_agent::publish::broker::EmbeddedBroker;
use shopfloor_agent::sim::{self, SimOptions};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[path = "common/procfs.rs"]
mod procfs;
use procfs::{arg, clock_ticks_per_s, cpu_ticks, status_kb};

/// `(VmRSS, VmHWM)` in kB.
fn memory_kb(pid: u32) -> Option<(u64, u64)> {
    let pid = pid.to_string();
    Some((status_kb(&pid, "VmRSS:")?, status_kb(&pid, "VmHWM:")?))
}

const BUDGET_KB: u64 = 50 * 1024;

fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

fn main() {
    let seconds: u64 = arg("--seconds", 60);
    let machines: u16 = arg("--machines", 50);
    let speed: f64 = arg("--speed", 1.0);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let ok = rt.block_on(run(seconds, machines, speed));
    if !ok {
        std::process::exit(1);
    }
}

async fn run(seconds: u64, machines: u16, speed: f64) -> bool {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = EmbeddedBroker::start_local().expect("embedded broker");
    let opts = SimOptions {
        machines,
        seed: 1,
        speed,
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let sim_port = listener.local_addr().expect("addr").port();
    let sim_cancel = CancellationToken::new();
    tokio::spawn(sim::serve(listener, opts, sim_cancel.clone()));

    let db = dir.path().join("agent.db");
    let log = dir.path().join("agent.log");
    let config = AgentConfig {
        site: "rss",
        client_id: "rss-agent",
        broker_port: broker.port(),
        db: &db,
        sim_port,
        sim: opts,
        interval: HumanDuration::from_secs(1),
        shifts: one_minute_shifts(Timestamp::now(), 2, (seconds / 60 + 3) as i64),
        small_stop: HumanDuration::from_secs(120),
    }
    .write();

    println!(
        "agent_rss: `{} run` with {machines} machines (1 s poll, speed {speed}), {seconds} s",
        agent_support::binary()
    );
    let mut agent = Agent::start(&config, &log);
    let hz = clock_ticks_per_s();
    let t0 = Instant::now();
    let cpu0 = cpu_ticks(&agent.pid.to_string()).unwrap_or(0);
    let (mut rss_max, mut hwm, mut rss_last) = (0u64, 0u64, 0u64);
    let mut rss_sum = 0u64;
    let mut samples = 0u64;
    let mut prev_cpu = (cpu0, Instant::now());
    let mut cpu_peak = 0.0f64;
    for s in 1..=seconds {
        let at = t0 + Duration::from_secs(s);
        tokio::time::sleep_until(at.into()).await;
        if !agent.running() {
            println!("the agent exited early\n{}", agent.log_tail(30));
            return false;
        }
        let (Some((rss, h)), Some(cpu)) = (memory_kb(agent.pid), cpu_ticks(&agent.pid.to_string()))
        else {
            println!("cannot read /proc/{}", agent.pid);
            return false;
        };
        let now = Instant::now();
        let pct =
            (cpu - prev_cpu.0) as f64 / hz / now.duration_since(prev_cpu.1).as_secs_f64() * 100.0;
        prev_cpu = (cpu, now);
        cpu_peak = cpu_peak.max(pct);
        rss_max = rss_max.max(rss);
        hwm = hwm.max(h);
        rss_last = rss;
        rss_sum += rss;
        samples += 1;
        if s % 10 == 0 || s == seconds {
            println!(
                "  t={s:>4} s  VmRSS {:6.1} MB  VmHWM {:6.1} MB  CPU {pct:5.1} % (last second)",
                mb(rss),
                mb(h)
            );
        }
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu_total = cpu_ticks(&agent.pid.to_string())
        .unwrap_or(cpu0)
        .saturating_sub(cpu0) as f64
        / hz;

    let (journal, summaries, stops, outbox) = {
        let conn = open_db(&db);
        (
            count(&conn, "SELECT COUNT(*) FROM journal"),
            count(&conn, "SELECT COUNT(*) FROM summaries"),
            count(&conn, "SELECT COUNT(*) FROM stops"),
            outbox_len(&conn),
        )
    };
    let status = agent.terminate(Duration::from_secs(20));
    sim_cancel.cancel();

    println!("results ({machines} machines, {seconds} s):");
    println!(
        "  VmRSS  mean {:.1} MB, max {:.1} MB, last {:.1} MB",
        mb(rss_sum / samples.max(1)),
        mb(rss_max),
        mb(rss_last)
    );
    println!(
        "  VmHWM  {:.1} MB (budget {:.0} MB)",
        mb(hwm),
        mb(BUDGET_KB)
    );
    println!(
        "  CPU    {:.2} s in {elapsed:.0} s = {:.1} % of one core on average, peak {cpu_peak:.1} % over one second",
        cpu_total,
        cpu_total / elapsed * 100.0
    );
    println!(
        "  work   {journal} journal rows, {summaries} summaries, {stops} stops; outbox {outbox} before the stop; exit {status}"
    );
    let within = hwm < BUDGET_KB;
    println!(
        "  budget {}",
        if within {
            "met: peak RSS under 50 MB"
        } else {
            "EXCEEDED: peak RSS 50 MB or more"
        }
    );
    within && status.success() && journal > 0
}
