//! The HTTP layer's one error type, [`ApiError`]: the core's errors plus what
//! only HTTP can refuse (a foreign Host, a missing token, a body too large, a
//! route that does not exist), and the one place any of them becomes a
//! response.

use axum::http::StatusCode;
use hearth_core::error::{whole_seconds, HostError};

/// Everything an HTTP request can be refused with. Messages are for the
/// person reading them: each says what failed and what to do next.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The core refused or failed (a service not ready, an engine error, ...).
    #[error(transparent)]
    Core(#[from] HostError),

    /// The request may not be made from where it comes (Host or Origin).
    #[error("{0}")]
    Forbidden(String),

    /// The request needs the admin token or the API key.
    #[error("{0}")]
    Unauthorized(String),

    /// The request is malformed: a query or path it cannot parse, or a
    /// plain GET on a WebSocket endpoint.
    #[error("{0}")]
    BadRequest(String),

    /// Hearth as a whole is not READY yet.
    #[error("{0}")]
    Starting(String),

    /// The request names a model this server does not serve.
    #[error("{0}")]
    UnknownModel(String),

    /// The request's body is larger than the endpoint accepts.
    #[error("{0}")]
    TooLarge(String),

    /// The request's body is in a format the endpoint does not read.
    #[error("{0}")]
    UnsupportedMedia(String),

    /// No such endpoint.
    #[error("no endpoint {method} {path}; see the API list in docs/http-api.md")]
    NoRoute {
        /// The request's method.
        method: String,
        /// The request's path.
        path: String,
    },

    /// The endpoint exists but not with this method.
    #[error("{method} is not allowed on {path}")]
    MethodNotAllowed {
        /// The request's method.
        method: String,
        /// The request's path.
        path: String,
    },
}

impl ApiError {
    /// Anything else, with its message (an internal error: logged, not sent).
    pub fn other(message: impl Into<String>) -> Self {
        Self::Core(HostError::Other(message.into()))
    }

    /// The HTTP status and the stable error code of this error.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::Core(core) => (core_status(core), core.code()),
            Self::NoRoute { .. } => (StatusCode::NOT_FOUND, "not_found"),
            Self::MethodNotAllowed { .. } => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::Starting(_) => (StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::UnknownModel(_) => (StatusCode::NOT_FOUND, "model_not_found"),
            Self::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            Self::UnsupportedMedia(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
        }
    }
}

/// The status of each core error.
fn core_status(error: &HostError) -> StatusCode {
    match error {
        HostError::UnknownService(_) => StatusCode::NOT_FOUND,
        HostError::NotReady { .. } | HostError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        HostError::Conflict(_) => StatusCode::CONFLICT,
        HostError::TooSoon { .. } => StatusCode::TOO_MANY_REQUESTS,
        HostError::Config { .. } => StatusCode::BAD_REQUEST,
        HostError::Engine { .. } => StatusCode::BAD_GATEWAY,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The longest piece of a client's value an error message repeats.
pub const ECHO_CHARS: usize = 64;

/// A client's value as an error message repeats it: at most
/// [`ECHO_CHARS`] characters, then `…`, so that a megabyte sent as a model
/// name is not sent back (or logged) whole.
pub fn echo(value: &str) -> String {
    match value.char_indices().nth(ECHO_CHARS) {
        Some((at, _)) => format!("{}…", &value[..at]),
        None => value.to_owned(),
    }
}

/// The HTTP layer's result type.
pub type Result<T, E = ApiError> = std::result::Result<T, E>;

/// The body of every error answer: `{"error": {"code", "type", "message"}}`
/// — also the shape OpenAI's API uses, so `/v1` clients read it too.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// What went wrong, in an error answer.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable and machine-readable: `not_found`, `method_not_allowed`,
    /// `unknown_service`, `model_not_found`, `not_ready`, `unavailable`,
    /// `conflict`, `forbidden`, `unauthorized`, `too_soon`, `bad_request`,
    /// `too_large`, `unsupported_media_type`, `invalid_config`,
    /// `engine_error`, `busy` (too many connections), `internal`.
    #[schema(example = "not_found")]
    pub code: &'static str,
    /// The class of error, as OpenAI names them: `invalid_request_error`,
    /// `authentication_error`, `permission_error`, `rate_limit_error`,
    /// `service_unavailable`, `server_error`.
    #[serde(rename = "type")]
    #[schema(example = "invalid_request_error")]
    pub kind: &'static str,
    /// For people: what failed and what to do next.
    pub message: String,
}

/// OpenAI's class of an error with this status.
pub fn error_type(status: StatusCode) -> &'static str {
    match status {
        StatusCode::UNAUTHORIZED => "authentication_error",
        StatusCode::FORBIDDEN => "permission_error",
        StatusCode::TOO_MANY_REQUESTS => "rate_limit_error",
        StatusCode::SERVICE_UNAVAILABLE => "service_unavailable",
        s if s.is_server_error() => "server_error",
        _ => "invalid_request_error",
    }
}

/// The one way errors become HTTP responses: `{"error": {"code", "message"}}`.
/// Errors the client can act on carry their message; internal ones are
/// logged in full and answered with a generic message.
impl axum::response::IntoResponse for ApiError {
    fn into_response(self) -> axum::response::Response {
        let (status, code) = self.status_and_code();
        let message = if status.is_server_error() && status != StatusCode::SERVICE_UNAVAILABLE {
            tracing::error!("request failed: {self}");
            "internal error; the server log has the details".to_owned()
        } else {
            self.to_string()
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code,
                kind: error_type(status),
                message,
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        let retry_after = match &self {
            Self::Core(HostError::TooSoon { retry_after, .. }) => Some(whole_seconds(*retry_after)),
            // Loading takes seconds: ask again in one.
            Self::Core(HostError::NotReady { .. }) | Self::Starting(_) => Some(1),
            _ => None,
        };
        // Refused before the body was read: say the connection ends, so a
        // client does not send its next request down it.
        if matches!(self, Self::TooLarge(_) | Self::Unauthorized(_) | Self::Forbidden(_)) {
            response.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
        }
        if let Some(seconds) = retry_after {
            if let Ok(value) = axum::http::HeaderValue::from_str(&seconds.to_string()) {
                response.headers_mut().insert(axum::http::header::RETRY_AFTER, value);
            }
        }
        response
    }
}
