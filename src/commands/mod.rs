//! One function per CLI verb: the glue that wires the modules together (anyhow allowed here, as in main).

use crate::cli::Command;

pub mod replay;

/// Run a parsed command; returns the process exit code.
pub async fn dispatch(command: Command) -> anyhow::Result<i32> {
    match command {
        Command::Replay(args) => replay::run(&args),
        other => anyhow::bail!("`{other:?}` is not available in this build yet"),
    }
}
