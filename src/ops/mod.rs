//! Operations: logging setup, signals and shutdown; later health, metrics and systemd notify.

pub mod logging;
pub mod signals;
