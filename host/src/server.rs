//! The composition root: binds every listener, starts the engines, wires
//! the fronts (HTTP, `/metrics`, Wyoming, systemd) to the one supervisor,
//! and shuts down gracefully on Ctrl-C or SIGTERM with a bounded drain. The
//! only place that knows every layer.

use std::{sync::Arc, time::Duration};

use hearth_core::{
    config::Config,
    error::{HostError, Result},
    net::bind,
    services::Supervisor,
};
use hearth_http::AppState;

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

/// Bounds shutdown, whatever a plugin is doing: after the first Ctrl-C or
/// SIGTERM the process leaves at the latest `limit` later (with 1 s to
/// spare for the log), and a second signal makes it leave at once. Runs on
/// its own thread, so a runtime full of stuck tasks cannot delay it.
fn exit_if_shutdown_stalls(limit: Duration) {
    let deadline = std::thread::Builder::new()
        .name("shutdown-deadline".into())
        .spawn(move || {
            std::thread::sleep(limit + Duration::from_secs(1));
            tracing::warn!(
                "shutdown took longer than shutdown_timeout ({}); exiting with work still running",
                humantime::format_duration(limit)
            );
            std::process::exit(0);
        });
    if let Err(e) = deadline {
        tracing::warn!("cannot bound the shutdown: {e}");
    }
    tokio::spawn(async {
        shutdown_signal().await;
        tracing::warn!("second signal: exiting at once");
        std::process::exit(130);
    });
}

/// Serves `config` until a shutdown signal: binds first (so probes get
/// answers while models load), then starts the engines in the background,
/// and on Ctrl-C or SIGTERM drains connections and shuts the engines down.
pub async fn serve(config: Config) -> Result<()> {
    hearth_http::guard::check_exposure(&config.host, &hearth_http::guard::Guard::new(&config.host)?)?;
    let listen = config.host.listen;
    let drain = config.host.shutdown_timeout;
    let listener = bind(listen).map_err(|e| {
        HostError::Other(format!(
            "cannot listen on {listen}: {e}; pick another address with --listen or [host] listen"
        ))
    })?;
    let local = listener.local_addr().map_err(|e| HostError::Other(e.to_string()))?;
    tracing::info!("listening on http://{local}");

    // Bound before anything loads too, so a bad address fails at once.
    let metrics_listener = match config.host.metrics_listen.filter(|_| config.host.metrics) {
        Some(at) => Some(bind(at).map_err(|e| {
            HostError::Other(format!(
                "cannot listen on {at} for /metrics: {e}; pick another [host] metrics_listen"
            ))
        })?),
        None => None,
    };
    // Likewise the Wyoming listener, when enabled.
    let wyoming_listener = config
        .wyoming
        .enabled
        .then(|| hearth_wyoming::bind(&config.wyoming))
        .transpose()?;
    let (supervisor, _rx) = Supervisor::new(config);
    let state = AppState::new(supervisor.clone())?;
    let wyoming = wyoming_listener
        .map(|listener| hearth_wyoming::spawn(listener, supervisor.clone(), state.shutdown.clone()))
        .transpose()?;
    if let Some(listener) = metrics_listener {
        if let Ok(at) = listener.local_addr() {
            tracing::info!("metrics on http://{at}/metrics");
        }
        tokio::spawn(hearth_http::server::serve_metrics(listener, state.clone()));
    }
    let systemd = crate::systemd::spawn(supervisor.clone(), state.shutdown.clone());
    let starter = supervisor.clone();
    tokio::spawn(async move { starter.start().await });
    let probes = supervisor.spawn_health_probes(HEALTH_INTERVAL);
    let token = state.shutdown.clone();
    // When the signal came: connections and engines share the one
    // `shutdown_timeout` from then.
    let stopping_since = Arc::new(std::sync::OnceLock::new());
    let since = Arc::clone(&stopping_since);
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = since.set(std::time::Instant::now());
        token.cancel();
        exit_if_shutdown_stalls(drain);
    });
    tokio::spawn(hearth_core::live::reload_on_sighup(supervisor.clone()));
    let _watcher = if supervisor.config().host.watch {
        hearth_core::live::watch_config(supervisor.clone())
    } else {
        None
    };
    hearth_http::server::run_http(listener, state, drain).await;
    if let Some(wyoming) = wyoming {
        // It drains its connections within the same `shutdown_timeout`.
        let _ = tokio::time::timeout(drain, wyoming).await;
    }
    if let Some(systemd) = systemd {
        // It says STOPPING=1 on the way out.
        let _ = tokio::time::timeout(Duration::from_secs(1), systemd).await;
    }
    probes.abort();
    // Connections and engines share the one `shutdown_timeout`.
    let spent = stopping_since.get().map_or(Duration::ZERO, |since| since.elapsed());
    let left = drain.saturating_sub(spent).max(Duration::from_millis(100));
    supervisor.shutdown(left).await;
    tracing::info!("stopped");
    Ok(())
}
