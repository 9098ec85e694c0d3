//! Binding the listener, starting the engines, serving, and shutting down
//! gracefully on Ctrl-C or SIGTERM with a bounded drain.

use std::time::Duration;

use crate::{
    config::Config,
    error::{HostError, Result},
    router::{router, AppState},
    services::Supervisor,
};

/// How often ready engines are asked for their health.
pub const HEALTH_INTERVAL: Duration = Duration::from_secs(10);

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C received, shutting down"),
        () = terminate => tracing::info!("SIGTERM received, shutting down"),
    }
}

/// Serves the router on `listener` until `state.shutdown` is cancelled,
/// then gives open connections at most `drain` to finish. Streams end on the
/// token by themselves; anything still open after `drain` is dropped.
pub async fn run_http(listener: tokio::net::TcpListener, state: AppState, drain: Duration) {
    let token = state.shutdown.clone();
    let app = router(state);
    let stop = token.clone();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move { stop.cancelled().await });
    let server = tokio::spawn(async move { server.await });
    token.cancelled().await;
    match tokio::time::timeout(drain, server).await {
        Ok(Ok(Ok(()))) => tracing::info!("all connections closed"),
        Ok(Ok(Err(e))) => tracing::warn!("server error while draining: {e}"),
        Ok(Err(e)) => tracing::warn!("server task failed: {e}"),
        Err(_) => tracing::warn!(
            "connections still open after {}; closing them",
            humantime::format_duration(drain)
        ),
    }
}

/// Serves `config` until a shutdown signal: binds first (so probes get
/// answers while models load), then starts the engines in the background,
/// and on Ctrl-C or SIGTERM drains connections and shuts the engines down.
pub async fn serve(config: Config) -> Result<()> {
    let listen = config.host.listen;
    let drain = config.host.shutdown_timeout;
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| {
        HostError::Other(format!(
            "cannot listen on {listen}: {e}; pick another address with --listen or [host] listen"
        ))
    })?;
    let local = listener.local_addr().map_err(|e| HostError::Other(e.to_string()))?;
    tracing::info!("listening on http://{local}");

    let (supervisor, _rx) = Supervisor::new(config);
    let state = AppState::new(supervisor.clone());
    let starter = supervisor.clone();
    tokio::spawn(async move { starter.start().await });
    let probes = supervisor.spawn_health_probes(HEALTH_INTERVAL);
    let token = state.shutdown.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        token.cancel();
    });
    run_http(listener, state, drain).await;
    probes.abort();
    supervisor.shutdown(drain).await;
    tracing::info!("stopped");
    Ok(())
}
