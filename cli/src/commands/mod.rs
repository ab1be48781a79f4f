//! One module per subcommand.

pub mod api;
pub mod bridge;
pub mod components;
pub mod dev;
pub mod dlq;
pub mod endpoint;
pub mod ingest;
pub mod inspect;
pub mod listen;
pub mod produce;
pub mod replay;
pub mod status;
pub mod topics;

use tokio_util::sync::CancellationToken;

/// Returns a token that is cancelled on SIGTERM or Ctrl-C.
pub fn shutdown_on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!(
            "Shutdown requested; finishing work in flight. Signal again to stop at once."
        );
        cancel.cancel();
        wait_for_signal().await;
        tracing::warn!(
            "Stopping at once; work in flight is left uncommitted and will be processed again."
        );
        std::process::exit(130);
    });
    token
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut terminate) => {
            tokio::select! {
                _ = ctrl_c => {}
                _ = terminate.recv() => {}
            }
        }
        Err(_) => {
            let _ = ctrl_c.await;
        }
    }
}
