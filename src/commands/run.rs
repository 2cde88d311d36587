//! `run -c FILE`: the daemon. Invalid config → every error and exit 1; SIGINT/SIGTERM → ordered shutdown, exit 0.

use std::path::Path;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::agent::{run_agent, AgentSetup};
use crate::config;

/// Load, validate and run until a signal.
pub async fn run(path: &Path) -> anyhow::Result<i32> {
    let (cfg, text) = match config::load_with_text(path) {
        Ok(loaded) => loaded,
        Err(errors) => {
            eprint!("{}", errors.report(path));
            return Ok(1);
        }
    };
    tracing::info!(
        site = %cfg.site,
        machines = cfg.machines.len(),
        config_hash = %cfg.hash(),
        version = env!("CARGO_PKG_VERSION"),
        "starting"
    );
    let cancel = CancellationToken::new();
    tokio::spawn(crate::ops::signals::cancel_on_signal(cancel.clone()));
    run_agent(
        AgentSetup {
            config: Arc::new(cfg),
            config_text: text,
            live: None,
        },
        cancel,
    )
    .await?;
    Ok(0)
}
