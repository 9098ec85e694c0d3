//! Hearth's HTTP front: every HTTP endpoint, over the core's supervisor.
//!
//! This root owns [`AppState`] and builds the [`router`]; each module serves
//! its area (the readiness API and admin, the conversation, `/v1`, the page,
//! `/metrics`, the OpenAPI document) and takes the state from here.
//! [`error::ApiError`] is the layer's one error type and the one place any
//! error becomes a response. The layer depends on `hearth-core`, never on
//! another front.
//!
//! **Each endpoint is declared once**, in its handler's `#[utoipa::path]`
//! attribute: method, path, parameters, answers and tag. [`endpoints`]
//! registers the handlers with utoipa-axum's `routes!`, which takes the
//! route from that attribute, so the router and `/openapi.json` come from
//! the same declaration and cannot disagree. The endpoints that change
//! engines sit in one admin sub-router behind [`guard::require_admin`], the
//! OpenAI-compatible ones in one `/v1` sub-router behind
//! [`guard::require_api_key`]. `GET /openapi.json` lists them all;
//! `docs/http-api.md` describes them for people.
//!
//! Anything else answers a JSON error (404 or 405) from [`ApiError`].
//!
//! Every request passes [`guard::check`] first: the `Host` and `Origin`
//! checks.

use std::sync::Arc;

use axum::{
    extract::DefaultBodyLimit,
    http::{header, HeaderValue, Method, Uri},
    routing::get,
    Router,
};
use tower_http::cors::{AllowOrigin, CorsLayer};
use utoipa::OpenApi as _;
use utoipa_axum::{router::OpenApiRouter, routes};

use hearth_core::{readiness::ReadinessRx, services::Supervisor};

use crate::{error::ApiError, guard::Guard, readiness_view::ViewCache};

pub mod conversation;
pub mod conversation_events;
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
    /// The OpenAPI document of [`endpoints`], made with the router.
    pub openapi: Arc<std::sync::OnceLock<bytes::Bytes>>,
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
            openapi: Arc::default(),
            supervisor,
            shutdown: tokio_util::sync::CancellationToken::new(),
        })
    }
}

/// Every endpoint, each registered from its one declaration, with the
/// admin and `/v1` ones behind their checks.
pub fn endpoints(state: &AppState) -> OpenApiRouter<AppState> {
    let open = OpenApiRouter::new()
        .routes(routes!(readiness_api::livez))
        .routes(routes!(readiness_api::readyz))
        .routes(routes!(readiness_api::ready))
        .routes(routes!(readiness_api::health))
        .routes(routes!(readiness_api::ready_stream))
        .routes(routes!(readiness_api::ready_ws))
        .routes(routes!(readiness_api::test_ws))
        .routes(routes!(conversation::conversation_ws))
        .routes(routes!(page::index))
        .routes(routes!(page::asset))
        .routes(routes!(openapi::document))
        .routes(routes!(metrics::scrape_here));
    let admin = OpenApiRouter::new()
        .routes(routes!(readiness_api::warmup))
        .routes(routes!(readiness_api::retry))
        .routes(routes!(readiness_api::restart))
        .routes(routes!(readiness_api::reload))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::require_admin,
        ));
    let (schemas, paths, upload) = routes!(openai::transcriptions);
    let v1 = OpenApiRouter::new()
        .routes(routes!(openai::models))
        .routes(routes!(openai::model))
        .routes(routes!(openai::speech))
        .routes((
            schemas,
            paths,
            upload.layer(DefaultBodyLimit::max(openai::MAX_TRANSCRIPTION_BODY)),
        ))
        .routes(routes!(openai::chat_completions))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::require_api_key,
        ));
    open.merge(admin).merge(v1)
}

/// Builds the router of [`endpoints`], behind the [`crate::guard`] checks
/// and CORS for `[host] allowed_origins`, and keeps its OpenAPI document in
/// the state for `GET /openapi.json`.
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
    let (app, document) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(endpoints(&state))
        .split_for_parts();
    let _ = state.openapi.set(openapi::finish(document));
    app.fallback(no_route)
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
