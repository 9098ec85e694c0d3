//! `GET /metrics`: the core's metrics, with the HTTP layer's own gauges
//! (open conversations and connections), in Prometheus' text format.

/// `GET /metrics` on the main listener: the metrics while `[host] metrics`
/// is on and they have no listener of their own; else a 404 that says where
/// they are.
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
pub async fn scrape_here(state: axum::extract::State<crate::AppState>) -> axum::response::Response {
    use axum::response::IntoResponse;
    let host = &state.supervisor.config().host;
    let elsewhere = match host.metrics_listen {
        _ if !host.metrics => Some("metrics are off ([host] metrics = false); set it to true to serve them".to_owned()),
        Some(at) => Some(format!(
            "metrics are served on their own listener, http://{at}/metrics ([host] metrics_listen)"
        )),
        None => None,
    };
    match elsewhere {
        Some(message) => (
            axum::http::StatusCode::NOT_FOUND,
            axum::Json(crate::error::ErrorBody {
                error: crate::error::ErrorDetail {
                    code: "not_found",
                    kind: "invalid_request_error",
                    message,
                },
            }),
        )
            .into_response(),
        None => scrape(state).await,
    }
}

/// `GET /metrics` on `[host] metrics_listen`, or through [`scrape_here`].
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
