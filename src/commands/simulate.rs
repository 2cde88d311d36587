//! `simulate`: serve the PLC simulator over Modbus TCP, or print the agent config that reads it.

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use crate::cli::SimulateArgs;
use crate::sim::{self, SimOptions};

/// Run `simulate`; returns the exit code.
pub async fn run(args: SimulateArgs) -> anyhow::Result<i32> {
    let opts = SimOptions {
        machines: args.machines,
        seed: args.seed,
        speed: args.speed,
    };
    anyhow::ensure!(
        (1..=247).contains(&opts.machines),
        "--machines must be 1–247 (one Modbus unit id each)"
    );
    anyhow::ensure!(
        opts.speed.is_finite() && opts.speed > 0.0,
        "--speed must be a positive number"
    );
    if args.print_config {
        print!("{}", sim::demo_config_yaml(&opts, &args.host, args.port));
        return Ok(0);
    }
    let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", args.host, args.port))?;
    let addr = listener.local_addr()?;
    tracing::info!(%addr, machines = opts.machines, seed = opts.seed, speed = opts.speed, "simulator listening");
    println!(
        "simulating {} machines on {addr} (unit ids 1..={})",
        opts.machines, opts.machines
    );
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        stop.cancel();
    });
    sim::serve(listener, opts, cancel).await?;
    Ok(0)
}
