//! One function per CLI verb: the glue that wires the modules together (anyhow allowed here, as in main).

use crate::cli::Command;

pub mod check_config;
pub mod replay;
pub mod simulate;

/// Run a parsed command; returns the process exit code.
#[allow(clippy::match_single_binding)]
pub async fn dispatch(command: Command) -> anyhow::Result<i32> {
    match command {
        Command::CheckConfig(args) => Ok(check_config::run(&args.config)),
        Command::Replay(args) => replay::run(&args),
        Command::Simulate(args) => simulate::run(args).await,
        other => anyhow::bail!("`{other:?}` is not available in this build yet"),
    }
}
