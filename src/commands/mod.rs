//! One function per CLI verb: the glue that wires the modules together (anyhow allowed here, as in main).

use crate::cli::Command;

pub mod agent;
pub mod check_config;
#[cfg(feature = "embedded-broker")]
pub mod demo;
pub mod live_table;
pub mod replay;
pub mod run;
pub mod simulate;

/// Run a parsed command; returns the process exit code.
pub async fn dispatch(command: Command) -> anyhow::Result<i32> {
    match command {
        Command::Run(args) => run::run(&args.config).await,
        #[cfg(feature = "embedded-broker")]
        Command::Demo(args) => demo::run(args).await,
        Command::CheckConfig(args) => Ok(check_config::run(&args.config)),
        Command::Replay(args) => replay::run(&args),
        Command::Simulate(args) => simulate::run(args).await,
        #[cfg(not(feature = "embedded-broker"))]
        Command::Demo(_) => {
            anyhow::bail!("`demo` needs the `embedded-broker` feature (on by default)")
        }
    }
}
