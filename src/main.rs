//! The `shopfloor-agent` binary: parse the command line, set up logging, dispatch.

use clap::Parser;
use shopfloor_agent::cli::{Cli, Command};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // The demo's live table owns the terminal: only warnings unless asked for more.
    let demo_default =
        matches!(cli.command, Command::Demo(_)) && std::env::var_os("RUST_LOG").is_none();
    let level = cli
        .log_level
        .as_deref()
        .or(if demo_default { Some("warn") } else { None });
    shopfloor_agent::ops::logging::init(level, cli.log_format);
    match shopfloor_agent::commands::dispatch(cli.command).await {
        Ok(code) => std::process::ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
