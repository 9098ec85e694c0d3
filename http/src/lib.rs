//! Hearth's HTTP front: every HTTP endpoint, over the core's supervisor.
//!
//! This root owns [`AppState`] and builds the [`router`]; each module serves
//! its area (the readiness API and admin, the conversation, `/v1`, the page,
//! `/metrics`, the OpenAPI document) and takes the state from here.
//! [`error::ApiError`] is the layer's one error type and the one place any
//! error becomes a response. The layer depends on `hearth-core`, never on
//! another front.
//!
//! | Method | Path | What |
//! |---|---|---|
//! | GET | `/livez` | Liveness: 200 while the process serves; no engine involved. |
//! | GET | `/readyz` | Readiness for probes: 200 when READY, 503 otherwise; tiny body. |
//! | GET | `/api/ready` | Readiness as JSON (state, progress, services, errors); 200 when READY, 503 with `Retry-After` otherwise. |
//! | GET | `/api/health` | Are the services installed and configured; never waits on loading; 503 only when a required service is not installed or disabled. |
//! | GET | `/api/ready/stream` | Server-Sent Events: the state now, then one event per change; ends after READY or ERROR unless `?follow=true`. |
//! | GET | `/ws/ready` | The same events over WebSocket. |
//! | POST | `/api/warmup` | Re-runs warmup of the ready services; 409 while one runs. |
//! | POST | `/api/services/{name}/retry` | Retries a failed service; 202, 404 unknown, 409 not failed. |
//! | POST | `/api/services/{name}/restart` | A fresh engine beside the running one, swapped in when ready (a failed service is retried); 202, 409 while a reload runs. |
//! | POST | `/api/reload` | Reads `plugins.toml` again and applies it per service (swap, start, stop); 400 invalid (nothing changes), 409 while one runs; `?wait=false` answers 202 with the plan at once. |
//! | GET | `/ws/test` | WebSocket connectivity check: greets with the readiness, echoes, answers pings. |
//! | GET | `/ws/conversation` | The voice conversation (see `docs/conversation-protocol.md`); refused with close code 1013 before READY. |
//! | GET | `/` | The web page: loading screen until READY, then the conversation. |
//! | GET | `/assets/{file}` | The page's scripts and styles, embedded in the binary. |
//! | GET | `/v1/models` | OpenAI-compatible: the engines as models; 503 with `Retry-After` until READY. |
//! | GET | `/v1/models/{id}` | One of them; 404 for another id. |
//! | POST | `/v1/audio/speech` | OpenAI-compatible text to speech, streamed (wav, pcm, flac, opus, mp3; or SSE). |
//! | POST | `/v1/audio/transcriptions` | OpenAI-compatible speech to text (multipart upload, at most 25 MB). |
//! | POST | `/v1/chat/completions` | OpenAI-compatible chat, optionally streamed. |
//! | GET | `/metrics` | Prometheus metrics (text format 0.0.4); on `[host] metrics_listen` instead when that is set, absent when `metrics = false`. |
//! | GET | `/openapi.json` | The OpenAPI 3.1 document of these endpoints (see [`crate::openapi`]). |
//!
//! Anything else answers a JSON error (404 or 405) from [`ApiError`].
//!
//! Every request passes [`guard::check`] first: `Host` and `Origin` checks,
//! and the admin token on the POST endpoints that change engines.

use std::sync::Arc;

use axum::{
    extract::DefaultBodyLimit,
    http::{header, HeaderValue, Method, Uri},
    routing::{get, post},
    Router,
};
use tower_http::cors::{AllowOrigin, CorsLayer};

use hearth_core::{readiness::ReadinessRx, services::Supervisor};

use crate::{error::ApiError, guard::Guard, readiness_view::ViewCache};

pub mod conversation;
pub mod error;
pub mod extract;
pub mod guard;
pub mod logging;
pub mod metrics;
pub mod openai;
pub mod openapi;
pub mod page;
pub mod readiness_api;
pub mod readiness_view;
pub mod schemas;
pub mod server;

/// What every handler can reach; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// Runs the engines.
    pub supervisor: Supervisor,
    /// Who may drive Hearth.
    pub guard: Arc<Guard>,
    /// Reads the readiness state.
    pub readiness: ReadinessRx,
    /// The readiness state's JSON bodies and SSE event, rendered once per
    /// version.
    pub views: Arc<ViewCache>,
    /// Cancelled when the server shuts down; long-lived streams end on it.
    pub shutdown: tokio_util::sync::CancellationToken,
    /// One permit per open conversation (`max_conversations`).
    pub conversations: Arc<tokio::sync::Semaphore>,
    /// One permit per open connection (`max_connections`), taken by the
    /// accept loop in [`crate::server`].
    pub connections: Arc<tokio::sync::Semaphore>,
}

impl AppState {
    /// State for a supervisor, with the Host/Origin/admin checks of its
    /// configuration (fails when the admin token file cannot be read).
    pub fn new(supervisor: Supervisor) -> hearth_core::Result<Self> {
        let config = supervisor.config();
        let guard = Arc::new(Guard::new(&config.host)?);
        let conversations = Arc::new(tokio::sync::Semaphore::new(config.conversation.max_conversations));
        let connections = Arc::new(tokio::sync::Semaphore::new(config.host.max_connections));
        Ok(Self {
            guard,
            conversations,
            connections,
            readiness: supervisor.subscribe(),
            views: Arc::default(),
            supervisor,
            shutdown: tokio_util::sync::CancellationToken::new(),
        })
    }
}

/// Builds the router with every endpoint listed in this module's header,
/// behind the [`crate::guard`] checks and CORS for `[host] allowed_origins`.
pub fn router(state: AppState) -> Router {
    let origins: Vec<HeaderValue> = state
        .supervisor
        .config()
        .host
        .allowed_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok())
        .collect();
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE]);
    let host = &state.supervisor.config().host;
    // `/metrics` is here unless it has a listener of its own (or is off).
    let metrics_here = host.metrics && host.metrics_listen.is_none();
    let app = Router::new();
    let app = if metrics_here {
        app.route("/metrics", get(metrics::scrape))
    } else {
        app
    };
    app.route("/livez", get(readiness_api::livez))
        .route("/readyz", get(readiness_api::readyz))
        .route("/api/ready", get(readiness_api::ready))
        .route("/api/health", get(readiness_api::health))
        .route("/api/ready/stream", get(readiness_api::ready_stream))
        .route("/ws/ready", get(readiness_api::ready_ws))
        .route("/api/warmup", post(readiness_api::warmup))
        .route("/api/services/{name}/retry", post(readiness_api::retry))
        .route("/api/services/{name}/restart", post(readiness_api::restart))
        .route("/api/reload", post(readiness_api::reload))
        .route("/ws/test", get(readiness_api::test_ws))
        .route("/ws/conversation", get(conversation::conversation_ws))
        .route("/", get(page::index))
        .route("/assets/{file}", get(page::asset))
        .route("/openapi.json", get(crate::openapi::document))
        .route("/v1/models", get(openai::models))
        .route("/v1/models/{id}", get(openai::model))
        .route("/v1/audio/speech", post(openai::speech))
        .route(
            "/v1/audio/transcriptions",
            post(openai::transcriptions).layer(DefaultBodyLimit::max(openai::MAX_TRANSCRIPTION_BODY)),
        )
        .route("/v1/chat/completions", post(openai::chat_completions))
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard::check))
        .layer(cors)
        .layer(axum::middleware::from_fn(crate::logging::request_span))
        .with_state(state)
}

/// The router of `[host] metrics_listen`: `/metrics` and the probes only,
/// without the Host and Origin checks (nothing there changes anything).
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics::scrape))
        .route("/livez", get(readiness_api::livez))
        .route("/readyz", get(readiness_api::readyz))
        .fallback(no_route)
        .with_state(state)
}

async fn no_route(method: Method, uri: Uri) -> ApiError {
    ApiError::NoRoute {
        method: method.to_string(),
        path: uri.path().to_owned(),
    }
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::MethodNotAllowed {
        method: method.to_string(),
        path: uri.path().to_owned(),
    }
}
