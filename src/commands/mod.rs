//! One function per CLI verb: the glue that wires the modules together (anyhow allowed here, as in main).

pub mod simulate;

use crate::cli::Command;

/// Run a parsed command; returns the process exit code.
pub async fn dispatch(command: Command) -> anyhow::Result<i32> {
    match command {
        Command::Simulate(args) => simulate::run(args).await,
        other => anyhow::bail!("`{other:?}` is not available in this build yet"),
    }
}
