//! Command line (clap): one subcommand per job of DESIGN.md §5.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::ops::logging::LogFormat;

/// Edge daemon for shop-floor OEE: polls PLCs over Modbus, subscribes to MQTT, computes
/// availability × performance × quality per machine, hour and shift, buffers in SQLite and publishes to MQTT.
#[derive(Debug, Parser)]
#[command(name = "shopfloor-agent", version, about, propagate_version = true)]
pub struct Cli {
    /// Log filter (`info`, `debug`, `shopfloor_agent=debug`); overrides RUST_LOG.
    #[arg(long, global = true)]
    pub log_level: Option<String>,
    /// Log format: human text, or one JSON object per line for log shippers.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: acquire, compute, store and publish until SIGINT/SIGTERM.
    Run(ConfigArg),
    /// Check a configuration file: print a summary, or every error with its key path. Exit 0 when valid, 1 otherwise.
    CheckConfig(ConfigArg),
    /// Run the engine on recorded samples (JSON lines) and print every message `run` would publish.
    Replay(ReplayArgs),
    /// Serve simulated PLCs over Modbus TCP, one unit id per machine.
    Simulate(SimulateArgs),
    /// Everything on embedded defaults: simulated PLCs, embedded broker, the agent, and a live table.
    Demo(DemoArgs),
}

/// `-c FILE`.
#[derive(Debug, Args)]
pub struct ConfigArg {
    /// Configuration file (YAML).
    #[arg(short, long, value_name = "FILE")]
    pub config: PathBuf,
}

/// Arguments of `replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Configuration file (YAML).
    #[arg(short, long, value_name = "FILE")]
    pub config: PathBuf,
    /// Samples, one JSON object per line (`-` for stdin).
    #[arg(short, long, value_name = "FILE")]
    pub input: PathBuf,
    /// Close every window ending at or before this time (RFC 3339); default: the last sample.
    #[arg(long, value_name = "TS")]
    pub until: Option<String>,
}

/// Arguments of `simulate`.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Number of simulated machines (unit ids 1..=N).
    #[arg(long, default_value_t = 5)]
    pub machines: u16,
    /// TCP port on 127.0.0.1 (0 picks a free one and prints it).
    #[arg(long, default_value_t = 5020)]
    pub port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Random seed: the same seed gives the same production.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Time acceleration: 60 runs a simulated minute per second.
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
    /// Print the matching `machines:` YAML and exit.
    #[arg(long)]
    pub print_config: bool,
}

/// Arguments of `demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Stop after this long (`20s`, `5m`); default: until Ctrl-C.
    #[arg(long)]
    pub duration: Option<String>,
    /// Number of simulated machines.
    #[arg(long, default_value_t = 5)]
    pub machines: u16,
    /// Time acceleration of the simulated plant.
    #[arg(long, default_value_t = 60.0)]
    pub speed: f64,
}
