//! The `shopfloor-agent` binary: parse the command line, set up logging, dispatch.

use clap::Parser;
use shopfloor_agent::cli::Cli;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    shopfloor_agent::ops::logging::init(cli.log_level.as_deref(), cli.log_format);
    match shopfloor_agent::commands::dispatch(cli.command).await {
        Ok(code) => std::process::ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
