//! The HTTP listener's accept loop: one hyper HTTP/1 connection per socket,
//! at most `[host] max_connections` at once, each holding its slot (and a
//! WebSocket its slot for as long as it lives), drained on shutdown.

use std::{sync::Arc, time::Duration};

use crate::{router, AppState};

use hearth_core::metrics::Refusal;

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
            metrics.refused(Refusal::MaxConnections);
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

/// Serves [`crate::metrics_router`] (`/metrics` and the probes) on the
/// listener of `[host] metrics_listen` until `state.shutdown` is cancelled.
pub async fn serve_metrics(listener: tokio::net::TcpListener, state: AppState) {
    let stop = state.shutdown.clone();
    let app = crate::metrics_router(state);
    let _ = axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await;
}
