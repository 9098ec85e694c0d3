//! Handlers of the readiness, probe and admin endpoints (registered by
//! [`crate::endpoints`]).
//!
//! `/api/ready` and `/api/health` answer with bodies rendered once per
//! snapshot version ([`crate::readiness_view::ViewCache`]), so a request
//! costs a lock and a clone of a `Bytes`.
//! The stream endpoints wake on the tracker's `watch` channel: an event goes
//! out as soon as a transition happens, with no polling.

use hearth_core::error::HostError;
use std::{convert::Infallible, sync::Arc, time::Duration};

use axum::{
    extract::{
        ws::{Message, WebSocket},
        State,
    },
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Extension, Json,
};
use futures_util::{stream, Stream, StreamExt as _};
use serde::Deserialize;

use hearth_core::{
    config::ServiceName,
    metrics::Transport,
    readiness::{ReadinessRx, Snapshot},
};

use crate::{
    error::ApiError,
    extract::{Path, Query, Upgrade},
    readiness_view::ViewCache,
    server::{ConnectionSlot, Upgraded},
    AppState,
};

/// Seconds a client should wait before asking again while not ready.
const RETRY_AFTER_SECS: &str = "1";

fn json_response(status: StatusCode, body: bytes::Bytes) -> Response {
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn not_ready_headers(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECS));
    response
}

/// `GET /livez`.
#[utoipa::path(get, path = "/livez", tag = "probes", summary = "Liveness: 200 while the process serves",
    responses((status = 200, description = "`ok`", body = String, example = "ok\n")))]
pub async fn livez() -> Response {
    let mut response = (StatusCode::OK, "ok\n").into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `GET /readyz`.
#[utoipa::path(get, path = "/readyz", tag = "probes", summary = "Readiness for probes: 200 when READY",
    responses(
        (status = 200, description = "READY: `ready`", body = String, example = "ready\n"),
        (status = 503, description = "Not ready: the state's name (`LOADING_MODELS`, `ERROR`, ...)", body = String,
            headers(("Retry-After" = u32, description = "Seconds to wait")), example = "LOADING_MODELS\n"),
    ))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let snapshot = state.readiness.current();
    if snapshot.is_ready() {
        let mut response = (StatusCode::OK, "ready\n").into_response();
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    } else {
        let body = format!("{}\n", snapshot.state.as_str());
        let mut response = (StatusCode::SERVICE_UNAVAILABLE, body).into_response();
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        not_ready_headers(response)
    }
}

/// `GET /api/ready`.
#[utoipa::path(get, path = "/api/ready", tag = "readiness", summary = "Readiness as JSON: 200 when READY, else 503",
    responses(
        (status = 200, description = "READY", body = crate::readiness_view::ReadyJson),
        (status = 503, description = "Not ready (loading, warming, or ERROR)", body = crate::readiness_view::ReadyJson,
            headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ))]
pub async fn ready(State(state): State<AppState>) -> Response {
    let snapshot = state.readiness.current();
    let body = state.views.of(&snapshot).ready_json.clone();
    if snapshot.is_ready() {
        json_response(StatusCode::OK, body)
    } else {
        not_ready_headers(json_response(StatusCode::SERVICE_UNAVAILABLE, body))
    }
}

/// `GET /api/health`.
#[utoipa::path(get, path = "/api/health", tag = "readiness",
    summary = "Are the services installed and configured; never waits on loading",
    responses(
        (status = 200, description = "Healthy", body = crate::readiness_view::HealthJson),
        (status = 503, description = "A required service is not installed or disabled", body = crate::readiness_view::HealthJson),
    ))]
pub async fn health(State(state): State<AppState>) -> Response {
    let snapshot = state.readiness.current();
    let status = if snapshot.healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json_response(status, state.views.of(&snapshot).health_json.clone())
}

/// `?follow=true` on the stream endpoints.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Keep the stream open after READY or ERROR.
    #[serde(default)]
    pub follow: bool,
}

/// Yields the current snapshot at once, then each new one, until the state
/// settles (unless `follow`) or the server shuts down.
fn snapshots(
    mut rx: ReadinessRx,
    follow: bool,
    shutdown: tokio_util::sync::CancellationToken,
) -> impl Stream<Item = Arc<Snapshot>> {
    let first = rx.mark_seen();
    // The shutdown future is made once per stream and kept: re-registering
    // it with the token at every event would take the token's lock once per
    // subscriber per transition.
    let stopped = Box::pin(shutdown.cancelled_owned());
    stream::unfold(
        (rx, Some(first), false, stopped),
        move |(mut rx, first, done, mut stopped)| async move {
            if done {
                return None;
            }
            let snapshot = match first {
                Some(s) => s,
                None => tokio::select! {
                    next = rx.changed() => next?,
                    () = &mut stopped => return None,
                },
            };
            let done = !follow && snapshot.state.is_settled();
            Some((snapshot, (rx, None, done, stopped)))
        },
    )
}

fn body_text(views: &ViewCache, snapshot: &Snapshot) -> String {
    String::from_utf8_lossy(&views.of(snapshot).ready_json).into_owned()
}

/// How often a stream sends a comment, so proxies keep it open and the
/// server notices clients that went away. Sent on a fixed beat (not reset by
/// events), which keeps a transition from touching thousands of timers.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// `GET /api/ready/stream`.
///
/// Server-Sent Events written as pre-framed bytes: each snapshot's event is
/// framed once ([`crate::readiness_view::ViewCache`]), so a transition costs
/// every subscriber a reference count and a write. (axum's `Sse` would copy
/// and re-frame the event for each subscriber; the fan-out benchmark in
/// `bench/readiness.sh` is why this endpoint does not use it.)
#[utoipa::path(get, path = "/api/ready/stream", tag = "readiness", params(StreamQuery),
    summary = "Server-Sent Events: the readiness now, then one event per change",
    description = "Each event is `id: <version>` and `data: <the /api/ready body (schema Readiness) on one line>`; \
        `: keep-alive` comments come every 15 s. Ends after READY or ERROR unless `follow=true`.",
    responses(
        (status = 200, description = "The event stream; the schema is one event's", content_type = "text/event-stream",
            body = crate::schemas::ReadinessEvent),
        (status = 400, description = "`follow` is not `true` or `false`", body = crate::error::ErrorBody),
    ))]
pub async fn ready_stream(State(state): State<AppState>, Query(query): Query<StreamQuery>) -> Response {
    let rx = state.supervisor.subscribe();
    let events = snapshots(rx, query.follow, state.shutdown.clone());
    // Counted while the body lives: hyper drops it when the client goes.
    let counted = state.supervisor.metrics().subscriber(Transport::Sse);
    let views = Arc::clone(&state.views);
    let events = events.map(move |snapshot| {
        let _counted = &counted;
        views.of(&snapshot).sse_event.clone()
    });
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + KEEP_ALIVE, KEEP_ALIVE);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let body = stream::unfold((Box::pin(events), ticker), |(mut events, mut ticker)| async move {
        tokio::select! {
            next = futures_util::StreamExt::next(&mut events) => {
                let event = next?;
                Some((Ok::<_, Infallible>(event), (events, ticker)))
            }
            _ = ticker.tick() => Some((Ok(bytes::Bytes::from_static(b": keep-alive\n\n")), (events, ticker))),
        }
    });
    let mut response = axum::body::Body::from_stream(body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Tells nginx-style proxies not to buffer the stream.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// `GET /ws/ready`.
#[utoipa::path(get, path = "/ws/ready", tag = "websocket", params(StreamQuery),
    summary = "The readiness events over WebSocket",
    description = "Each text message is the `/api/ready` body (schema Readiness); closes with 1000 once settled \
        unless `follow=true`. Messages from the client are ignored (at most 64 KiB).",
    responses(
        (status = 101, description = "Switching Protocols: the WebSocket opens"),
        (status = 400, description = "Not a WebSocket upgrade (a plain GET), or `follow` is not `true` or `false`",
            body = crate::error::ErrorBody),
    ))]
pub async fn ready_ws(
    State(state): State<AppState>,
    Query(query): Query<StreamQuery>,
    slot: Option<Extension<ConnectionSlot>>,
    Upgrade(upgrade): Upgrade,
) -> Response {
    let upgraded = Upgraded::new(slot);
    upgrade
        .max_message_size(SMALL_MESSAGE)
        .max_frame_size(SMALL_MESSAGE)
        .on_upgrade(move |socket| upgraded.run(push_readiness(socket, state, query.follow)))
}

async fn push_readiness(mut socket: WebSocket, state: AppState, follow: bool) {
    let _counted = state.supervisor.metrics().subscriber(Transport::WebSocket);
    let rx = state.supervisor.subscribe();
    let mut snapshots = Box::pin(snapshots(rx, follow, state.shutdown.clone()));
    loop {
        tokio::select! {
            next = futures_util::StreamExt::next(&mut snapshots) => {
                let Some(snapshot) = next else { break };
                if socket.send(Message::Text(body_text(&state.views, &snapshot).into())).await.is_err() {
                    return;
                }
            }
            incoming = socket.recv() => match incoming {
                // Pings are answered by the WebSocket layer; other messages
                // from the client are ignored; a close or error ends it.
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                Some(Ok(_)) => {}
            },
        }
    }
    let _ = socket
        .send(Message::Close(Some(axum::extract::ws::CloseFrame {
            code: 1000,
            reason: "readiness settled".into(),
        })))
        .await;
}

/// `POST /api/warmup`.
#[utoipa::path(post, path = "/api/warmup", tag = "admin", summary = "Re-runs warmup of every ready service",
    responses(
        (status = 200, description = "Warmed (see `ok` and each service's)", body = crate::schemas::Warmup),
        (status = 409, description = "A warmup runs already, or no service is ready", body = crate::error::ErrorBody),
    ))]
pub async fn warmup(State(state): State<AppState>) -> Result<Response, ApiError> {
    let snapshot = state.readiness.current();
    if !snapshot
        .services
        .values()
        .any(|s| s.phase == hearth_core::readiness::Phase::Ready)
    {
        return Err(ApiError::Core(HostError::Conflict(format!(
            "no service is ready to warm up (state {})",
            snapshot.state.as_str()
        ))));
    }
    let results = state.supervisor.rewarm().await?;
    let ok = results.iter().all(|r| r.ok);
    Ok(Json(serde_json::json!({ "ok": ok, "services": results })).into_response())
}

/// `POST /api/services/{name}/retry`.
#[utoipa::path(post, path = "/api/services/{name}/retry", tag = "admin",
    summary = "Starts a failed (or not installed) service again",
    params(("name" = crate::schemas::ServiceName, Path, description = "The service")),
    responses(
        (status = 202, description = "Starting; follow /api/ready/stream", body = crate::schemas::Accepted),
        (status = 400, description = "The name is not UTF-8 once percent-decoded (code `bad_request`)",
            body = crate::error::ErrorBody),
        (status = 404, description = "No such service (code `unknown_service`)", body = crate::error::ErrorBody),
        (status = 409, description = "Not failed, or already starting", body = crate::error::ErrorBody),
        (status = 429, description = "Retried or restarted within `retry_cooldown` (code `too_soon`)",
            body = crate::error::ErrorBody, headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ))]
pub async fn retry(State(state): State<AppState>, Path(name): Path<String>) -> Result<Response, ApiError> {
    let service = ServiceName::parse(&name).ok_or(ApiError::Core(HostError::UnknownService(name)))?;
    state.supervisor.retry(service)?;
    let body = serde_json::json!({
        "accepted": true,
        "service": service,
        "message": format!("{service} is starting again; follow /api/ready/stream for its progress"),
    });
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

/// `?wait=` of `POST /api/reload`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReloadQuery {
    /// Answer only when the plan has been applied (default true).
    #[serde(default = "yes")]
    wait: bool,
}

fn yes() -> bool {
    true
}

/// `POST /api/reload`: reads `plugins.toml` again and applies it. 400 with
/// `file:line:column` when it is invalid (nothing changes), 409 while
/// another reload or a restart runs; else the plan, and with `wait` (the
/// default) each service's outcome once done.
#[utoipa::path(post, path = "/api/reload", tag = "admin", params(ReloadQuery),
    summary = "Reads plugins.toml again and applies it",
    responses(
        (status = 200, description = "Applied: the plan and each service's outcome", body = crate::schemas::Reloaded),
        (status = 202, description = "`wait=false`: the plan, applied in the background", body = crate::schemas::ReloadPlanned),
        (status = 400, description = "The file is invalid (code `invalid_config`, `file:line:column`; nothing \
            changed), or `wait` is not `true` or `false` (code `bad_request`)",
            body = crate::error::ErrorBody),
        (status = 409, description = "Another reload or a restart runs", body = crate::error::ErrorBody),
        (status = 500, description = "The file could not be read, or the reload task failed (code `internal`)",
            body = crate::error::ErrorBody),
    ))]
pub async fn reload(State(state): State<AppState>, Query(query): Query<ReloadQuery>) -> Result<Response, ApiError> {
    let path = state.supervisor.config().path.clone();
    let new = tokio::task::spawn_blocking(move || hearth_core::config::Config::load(&path))
        .await
        .map_err(|e| ApiError::Core(HostError::Other(format!("reading the configuration failed: {e}"))))?
        .inspect_err(|e| tracing::warn!("reload refused, nothing changed: {e}"))?;
    let (plan, outcome) = state.supervisor.reload(new)?;
    let summary = plan.to_string();
    if !query.wait {
        let body = serde_json::json!({ "plan": plan, "summary": summary });
        return Ok((StatusCode::ACCEPTED, Json(body)).into_response());
    }
    let outcome = outcome
        .await
        .map_err(|e| ApiError::Core(HostError::Other(format!("the reload task failed: {e}"))))?;
    let body = serde_json::json!({ "ok": outcome.ok(), "plan": plan, "summary": summary, "outcome": outcome });
    Ok(Json(body).into_response())
}

/// `POST /api/services/{name}/restart`.
#[utoipa::path(post, path = "/api/services/{name}/restart", tag = "admin",
    summary = "A fresh engine beside the running one, swapped in when ready",
    params(("name" = crate::schemas::ServiceName, Path, description = "The service")),
    responses(
        (status = 202, description = "Starting; follow /api/ready/stream", body = crate::schemas::Accepted),
        (status = 400, description = "The name is not UTF-8 once percent-decoded (code `bad_request`)",
            body = crate::error::ErrorBody),
        (status = 404, description = "No such service (code `unknown_service`)", body = crate::error::ErrorBody),
        (status = 409, description = "A reload or restart runs", body = crate::error::ErrorBody),
        (status = 429, description = "Retried or restarted within `retry_cooldown` (code `too_soon`)",
            body = crate::error::ErrorBody, headers(("Retry-After" = u32, description = "Seconds to wait"))),
    ))]
pub async fn restart(State(state): State<AppState>, Path(name): Path<String>) -> Result<Response, ApiError> {
    let service = ServiceName::parse(&name).ok_or(ApiError::Core(HostError::UnknownService(name)))?;
    state.supervisor.restart(service)?;
    let body = serde_json::json!({
        "accepted": true,
        "service": service,
        "message": format!("a fresh {service} engine is starting beside the current one; follow /api/ready/stream"),
    });
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

/// `GET /ws/test`.
#[utoipa::path(get, path = "/ws/test", tag = "websocket", summary = "WebSocket check",
    description = "Greets with `{\"type\": \"connected\", \"ready\", \"state\", \"readiness\"}`, echoes text and \
        binary messages (at most 64 KiB), answers pings.",
    responses(
        (status = 101, description = "Switching Protocols: the WebSocket opens"),
        (status = 400, description = "Not a WebSocket upgrade (a plain GET)", body = crate::error::ErrorBody),
    ))]
pub async fn test_ws(
    State(state): State<AppState>,
    slot: Option<Extension<ConnectionSlot>>,
    Upgrade(upgrade): Upgrade,
) -> Response {
    let upgraded = Upgraded::new(slot);
    upgrade
        .max_message_size(SMALL_MESSAGE)
        .max_frame_size(SMALL_MESSAGE)
        .on_upgrade(move |socket| upgraded.run(echo(socket, state)))
}

/// The largest message `/ws/test` and `/ws/ready` accept (64 KiB): neither
/// needs more, and an echo of megabytes to a client that does not read
/// would only fill the server's memory. Larger ones close the socket (1009).
pub const SMALL_MESSAGE: usize = 64 << 10;

async fn echo(mut socket: WebSocket, state: AppState) {
    let snapshot = state.readiness.current();
    let ready: serde_json::Value = serde_json::from_slice(&state.views.of(&snapshot).ready_json).unwrap_or_default();
    let hello = serde_json::json!({ "type": "connected", "ready": snapshot.is_ready(), "state": snapshot.state, "readiness": ready });
    if socket.send(Message::Text(hello.to_string().into())).await.is_err() {
        return;
    }
    loop {
        let incoming = tokio::select! {
            m = socket.recv() => m,
            () = state.shutdown.cancelled() => break,
        };
        let reply = match incoming {
            Some(Ok(Message::Text(text))) => Message::Text(text),
            Some(Ok(Message::Binary(data))) => Message::Binary(data),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
        };
        if socket.send(reply).await.is_err() {
            return;
        }
    }
    let _ = socket.send(Message::Close(None)).await;
}
