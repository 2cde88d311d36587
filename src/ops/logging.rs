//! Logging with tracing: `RUST_LOG` or `--log-level`, human text or JSON lines, on stdout for journald.

use tracing_subscriber::EnvFilter;

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable text.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Install the global subscriber. `level` (e.g. `info`, `debug`, `shopfloor_agent=debug`) wins over `RUST_LOG`.
/// The embedded broker's ordinary disconnect noise is silenced unless asked for.
pub fn init(level: Option<&str>, format: LogFormat) {
    let base = level
        .map(str::to_owned)
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "info".to_owned());
    let spec = if base.contains("rumqttd") {
        base
    } else {
        format!("{base},rumqttd=off")
    };
    let filter = EnvFilter::try_new(&spec).unwrap_or_else(|_| EnvFilter::new("info,rumqttd=off"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stdout);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
