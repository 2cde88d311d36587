//! SIGINT/SIGTERM → one cancellation token that every task watches; shutdown then runs in pipeline order.

use tokio_util::sync::CancellationToken;

/// Cancel `token` on the first SIGINT or SIGTERM (or when the token is cancelled elsewhere).
pub async fn cancel_on_signal(token: CancellationToken) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; Ctrl-C only");
                let _ = tokio::select! {
                    r = tokio::signal::ctrl_c() => r,
                    _ = token.cancelled() => Ok(()),
                };
                token.cancel();
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received, shutting down"),
            _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
            _ = token.cancelled() => {}
        }
    }
    #[cfg(not(unix))]
    {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => tracing::info!("Ctrl-C received, shutting down"),
            _ = token.cancelled() => {}
        }
    }
    token.cancel();
}
