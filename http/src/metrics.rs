//! `GET /metrics`: the core's metrics, with the HTTP layer's own gauges
//! (open conversations and connections), in Prometheus' text format.

/// `GET /metrics`.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "meta",
    summary = "Prometheus metrics",
    description = "The metrics in the Prometheus text exposition format 0.0.4. Served on the main listener \
        while `[host] metrics = true` (the default), or on `[host] metrics_listen` instead when that is set.",
    responses(
        (status = 200, description = "The metrics", content_type = "text/plain; version=0.0.4", body = String),
        (status = 404, description = "Metrics are off (`[host] metrics = false`) or served on their own \
            `metrics_listen`", body = crate::error::ErrorBody),
    ),
)]
pub async fn scrape(axum::extract::State(state): axum::extract::State<crate::AppState>) -> axum::response::Response {
    use axum::{
        http::{header, HeaderValue},
        response::IntoResponse,
    };
    let config = state.supervisor.config();
    let conversations = config
        .conversation
        .max_conversations
        .saturating_sub(state.conversations.available_permits());
    let connections = config
        .host
        .max_connections
        .saturating_sub(state.connections.available_permits());
    let snapshot = state.readiness.current();
    let body = state.supervisor.metrics().render(&snapshot, conversations, connections);
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}
