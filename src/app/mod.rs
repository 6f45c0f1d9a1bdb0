//! Process wiring: [`start`] builds every subsystem and returns the [`Running`]
//! value that owns each thread and task; [`Running::serve`] serves HTTP until told
//! to stop, then shuts down in the order [`lifecycle`] writes down.
//!
//! The listener answers at once (`/health/live` 200, `/health/ready` 503) while
//! the active version loads in the background.

pub mod lifecycle;
mod start;

use std::future::Future;

use tokio::net::TcpListener;

use crate::config::Config;
pub use lifecycle::Running;
pub use start::start;

/// Serves `config` on `listener` until `shutdown` resolves, then drains, stops
/// and joins everything it started, and returns. Fails if the model store cannot
/// be opened or the active version cannot be loaded.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    start(config)?.serve(listener, shutdown).await
}

/// Resolves on SIGTERM or ctrl-c.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
