//! Binding the listener, starting the engines, serving, and shutting down
//! gracefully on Ctrl-C or SIGTERM with a bounded drain.

use std::{sync::Arc, time::Duration};

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

/// With `[host] watch = true`: reloads when `plugins.toml` changes on disk.
/// Watches the file's directory, not the file, so that editors that save
/// by writing a new file and renaming it over the old one are seen; a burst
/// of events becomes one reload 300 ms after the last of them. Returns the
/// watcher, which stops when dropped.
fn watch_config(supervisor: Supervisor) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher;
    let path = supervisor.config().path.clone();
    let path = std::path::absolute(&path).unwrap_or(path);
    let (dir, name) = (path.parent()?.to_path_buf(), path.file_name()?.to_owned());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event {
            if event.paths.iter().any(|p| p.file_name() == Some(name.as_os_str())) && !event.kind.is_access() {
                let _ = tx.send(());
            }
        }
    })
    .inspect_err(|e| tracing::warn!("cannot watch {}: {e}; reload with SIGHUP instead", path.display()))
    .ok()?;
    if let Err(e) = watcher.watch(&dir, notify::RecursiveMode::NonRecursive) {
        tracing::warn!("cannot watch {}: {e}; reload with SIGHUP instead", dir.display());
        return None;
    }
    tracing::info!(config = %path.display(), "watching the configuration for changes");
    tokio::spawn(async move {
        while rx.recv().await.is_some() {
            // Debounce: wait until the file has been quiet for 300 ms.
            while let Ok(Some(())) = tokio::time::timeout(Duration::from_millis(300), rx.recv()).await {}
            tracing::info!("the configuration changed on disk, reloading");
            reload_from_disk(&supervisor).await;
        }
    });
    Some(watcher)
}

/// Reads the configuration file again and applies it, logging the plan and
/// its outcome; an invalid file changes nothing.
async fn reload_from_disk(supervisor: &Supervisor) {
    let path = supervisor.config().path.clone();
    let loaded = tokio::task::spawn_blocking(move || Config::load(&path)).await;
    let new = match loaded {
        Ok(Ok(new)) => new,
        Ok(Err(e)) => return tracing::error!("reload refused, nothing changed: {e}"),
        Err(e) => return tracing::error!("reload failed: {e}"),
    };
    match supervisor.reload(new) {
        // The plan and its outcome are logged by the supervisor.
        Ok((_, outcome)) => {
            let _ = outcome.await;
        }
        Err(e) => tracing::warn!("reload refused: {e}"),
    }
}

/// Reloads `plugins.toml` on every SIGHUP (like `POST /api/reload`),
/// logging the plan and its outcome; an invalid file changes nothing.
async fn reload_on_sighup(supervisor: Supervisor) {
    let Ok(mut hangups) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP; reload with POST /api/reload instead");
        return;
    };
    while hangups.recv().await.is_some() {
        tracing::info!("SIGHUP received, reloading");
        reload_from_disk(&supervisor).await;
    }
}

/// Serves the router on `listener` until `state.shutdown` is cancelled,
/// then gives open connections at most `drain` to finish. Streams end on the
/// token by themselves; anything still open after `drain` is dropped.
///
/// One hyper HTTP/1 connection per accepted socket (with upgrades, for the
/// WebSockets), at most `[host] max_connections` at once — one more is
/// answered 503 with `Retry-After` and closed — and each must send its
/// request headers within `header_read_timeout`.
pub async fn run_http(listener: tokio::net::TcpListener, state: AppState, drain: Duration) {
    use hyper_util::{
        rt::{TokioIo, TokioTimer},
        service::TowerToHyperService,
    };
    use tower::ServiceExt as _;
    let token = state.shutdown.clone();
    let host = state.supervisor.config().host.clone();
    let slots = Arc::clone(&state.connections);
    let metrics = Arc::clone(state.supervisor.metrics());
    let app = router(state);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors, say: wait a moment, do not spin.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = token.cancelled() => break,
        };
        // Streams write small pieces (a token, a chunk of audio): send each
        // at once rather than wait for the peer's delayed ACK.
        let _ = stream.set_nodelay(true);
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            metrics.refused(crate::metrics::Refusal::MaxConnections);
            tokio::spawn(refuse_busy(stream, host.max_connections));
            continue;
        };
        // The permit rides in the request too, so a WebSocket handler can
        // keep it for as long as the upgraded connection lives.
        let permit = Arc::new(permit);
        let slot = ConnectionSlot(Arc::clone(&permit));
        let service = TowerToHyperService::new(app.clone().map_request(
            move |mut request: axum::http::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(slot.clone());
                request
            },
        ));
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(host.header_read_timeout)
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        let stop = token.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                () = stop.cancelled() => {
                    // Finish the request in flight, then close.
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
    // Every connection holds a permit until it ends.
    let all = u32::try_from(host.max_connections).unwrap_or(u32::MAX);
    let closed = tokio::time::timeout(drain, slots.acquire_many(all)).await;
    match closed {
        Ok(_) => tracing::info!("all connections closed"),
        Err(_) => tracing::warn!(
            "connections still open after {}; closing them",
            humantime::format_duration(drain)
        ),
    }
}

/// One of the `max_connections` slots, held by a connection until it ends.
/// A WebSocket handler takes it (an `Extension`) into its session, because
/// after the upgrade hyper's connection task is done but the socket is not.
#[derive(Clone)]
pub struct ConnectionSlot(#[allow(dead_code)] Arc<tokio::sync::OwnedSemaphorePermit>);

/// What an upgraded WebSocket's session keeps from its upgrade request:
/// the connection slot, and the request's span (so its log lines carry the
/// request id). Made in the handler; the session runs in a task of its own.
pub struct Upgraded {
    slot: Option<axum::Extension<ConnectionSlot>>,
    span: tracing::Span,
}

impl Upgraded {
    /// Takes the slot, in the current (request's) span.
    pub fn new(slot: Option<axum::Extension<ConnectionSlot>>) -> Self {
        Self {
            slot,
            span: tracing::Span::current(),
        }
    }

    /// Runs `session` holding the slot, in the request's span.
    pub async fn run(self, session: impl std::future::Future<Output = ()>) {
        use tracing::Instrument as _;
        let _slot = self.slot;
        session.instrument(self.span).await;
    }
}

/// The listen backlog: room for a storm of connects (10,000 SSE
/// subscribers at once) while the accept loop catches up. The kernel caps
/// it at `net.core.somaxconn`.
const BACKLOG: u32 = 16_384;

/// Binds `addr` with [`BACKLOG`].
fn bind(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Answers a connection over `max_connections` with 503 and closes it.
async fn refuse_busy(mut stream: tokio::net::TcpStream, max: usize) {
    use tokio::io::AsyncWriteExt;
    let body = format!(
        "{{\"error\":{{\"code\":\"busy\",\"type\":\"service_unavailable\",\"message\":\"{max} connections are open (max_connections); retry in a second\"}}}}"
    );
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(2), stream.write_all(response.as_bytes())).await;
    let _ = stream.shutdown().await;
}

/// Serves `config` until a shutdown signal: binds first (so probes get
/// answers while models load), then starts the engines in the background,
/// and on Ctrl-C or SIGTERM drains connections and shuts the engines down.
pub async fn serve(config: Config) -> Result<()> {
    crate::guard::check_exposure(&config.host, &crate::guard::Guard::new(&config.host)?)?;
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
        .then(|| crate::wyoming::bind(&config.wyoming))
        .transpose()?;
    let (supervisor, _rx) = Supervisor::new(config);
    let state = AppState::new(supervisor.clone())?;
    let wyoming = wyoming_listener
        .map(|listener| crate::wyoming::spawn(listener, supervisor.clone(), state.shutdown.clone()))
        .transpose()?;
    if let Some(listener) = metrics_listener {
        if let Ok(at) = listener.local_addr() {
            tracing::info!("metrics on http://{at}/metrics");
        }
        let app = crate::router::metrics_router(state.clone());
        let stop = state.shutdown.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await;
        });
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
    tokio::spawn(reload_on_sighup(supervisor.clone()));
    let _watcher = if supervisor.config().host.watch {
        watch_config(supervisor.clone())
    } else {
        None
    };
    run_http(listener, state, drain).await;
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
