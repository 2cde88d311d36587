//! `demo`: the simulator (5 machines, accelerated), the embedded broker, the agent on a temporary database,
//! and a live table refreshed every second. Nothing to install, no arguments needed.

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use jiff::Timestamp;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::agent::{run_agent, AgentSetup, LiveView};
use super::live_table;
use crate::cli::DemoArgs;
use crate::config::{self, HumanDuration};
use crate::publish::broker::EmbeddedBroker;
use crate::sim::{self, SimOptions};

/// Poll interval of the demo's Modbus devices (real time).
const POLL: HumanDuration = HumanDuration::from_secs(1);

/// The demo's agent config as YAML: ideal cycle times and the small-stop threshold scaled to real time, since
/// the simulated plant runs `speed` times faster than the clock that stamps the samples.
pub fn demo_yaml(opts: &SimOptions, sim_port: u16, broker_port: u16, db: &str) -> String {
    let machines = sim::real_time_machine_configs(opts, "127.0.0.1", sim_port, POLL);
    let small_stop = sim::real_time(HumanDuration::from_secs(120), opts.speed);
    let mut y = format!(
        "site: demo-plant\n\
         timezone: UTC\n\
         mqtt: {{ host: 127.0.0.1, port: {broker_port}, client_id: shopfloor-demo, topic_prefix: shopfloor }}\n\
         storage: {{ path: \"{db}\", snapshot_interval: 10s }}\n\
         live_interval: 2s\n\
         reorder_window: 1s\n\
         shifts:\n\
         \x20 - {{ name: early, start: \"06:00\", end: \"14:00\", breaks: [ {{ start: \"10:00\", end: \"10:15\" }} ] }}\n\
         \x20 - {{ name: late, start: \"14:00\", end: \"22:00\", breaks: [ {{ start: \"18:00\", end: \"18:15\" }} ] }}\n\
         \x20 - {{ name: night, start: \"22:00\", end: \"06:00\", breaks: [ {{ start: \"02:00\", end: \"02:15\" }} ] }}\n\
         small_stop_threshold: {small_stop}\n"
    );
    y.push_str(&sim::machines_yaml(&machines));
    y
}

/// Run the demo until `--duration` or Ctrl-C.
pub async fn run(args: DemoArgs) -> anyhow::Result<i32> {
    let duration = match args.duration.as_deref() {
        Some(d) => Some(
            d.parse::<HumanDuration>()
                .map_err(|e| anyhow::anyhow!("--duration: {e}"))?
                .to_std(),
        ),
        None => None,
    };
    let opts = SimOptions {
        machines: args.machines.max(1),
        seed: 1,
        speed: if args.speed > 0.0 { args.speed } else { 1.0 },
    };
    let cancel = CancellationToken::new();
    tokio::spawn(crate::ops::signals::cancel_on_signal(cancel.clone()));

    // 1. Simulated PLCs on a free loopback port.
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("cannot bind the simulator")?;
    let sim_port = listener.local_addr()?.port();
    let sim_cancel = CancellationToken::new();
    tokio::spawn(sim::serve(listener, opts, sim_cancel.clone()));

    // 2. Embedded broker on 1883, or a free port if it is taken.
    let broker_port = if std::net::TcpListener::bind("127.0.0.1:1883").is_ok() {
        1883
    } else {
        0
    };
    let broker =
        tokio::task::spawn_blocking(move || EmbeddedBroker::start("127.0.0.1", broker_port))
            .await?
            .context("cannot start the embedded MQTT broker")?;

    // 3. The agent on a temporary database.
    let dir = std::env::temp_dir().join(format!("shopfloor-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let db = dir.join("agent.db");
    let yaml = demo_yaml(&opts, sim_port, broker.port(), &db.display().to_string());
    let cfg = config::from_yaml_str(&yaml).map_err(|e| anyhow::anyhow!("demo config: {e}"))?;
    println!(
        "shopfloor-agent demo: {} simulated machines at {}x speed",
        opts.machines, opts.speed
    );
    println!("  Modbus simulator : 127.0.0.1:{sim_port}");
    println!("  MQTT broker      : {}", broker.addr());
    println!(
        "  watch the topics : mosquitto_sub -h 127.0.0.1 -p {} -t 'shopfloor/demo-plant/#' -v",
        broker.port()
    );
    println!("  database         : {}", db.display());
    println!();

    let (live_tx, mut live_rx) = watch::channel(LiveView::default());
    let agent_cancel = cancel.child_token();
    let agent = tokio::spawn(run_agent(
        AgentSetup {
            config: Arc::new(cfg),
            config_text: yaml,
            live: Some(live_tx),
        },
        agent_cancel.clone(),
    ));

    let deadline = duration.map(|d| tokio::time::Instant::now() + d);
    let tty = std::io::IsTerminal::is_terminal(&std::io::stdout());
    loop {
        let until_deadline = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = until_deadline => break,
            changed = live_rx.changed() => {
                if changed.is_err() { break; }
                let table = live_table::render(&live_rx.borrow_and_update(), Timestamp::now());
                let mut out = std::io::stdout().lock();
                if tty {
                    // Redraw in place: cursor home, clear below.
                    let _ = write!(out, "\x1b[H\x1b[J");
                }
                let _ = writeln!(out, "{}  (Ctrl-C to stop)\n{table}", Timestamp::now().strftime("%H:%M:%S"));
                let _ = out.flush();
            }
        }
    }
    agent_cancel.cancel();
    let result = tokio::time::timeout(Duration::from_secs(15), agent).await;
    sim_cancel.cancel();
    let _ = std::fs::remove_dir_all(&dir);
    match result {
        Ok(Ok(Ok(()))) => Ok(0),
        Ok(Ok(Err(e))) => Err(e),
        Ok(Err(e)) => Err(e.into()),
        Err(_) => anyhow::bail!("the agent did not stop within 15 s"),
    }
}
