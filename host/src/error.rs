//! The host's one error type.

use std::path::PathBuf;

use crate::config::ServiceName;

/// Everything that can go wrong in the host, with messages meant for the
/// operator reading them: each says what failed and what to do next.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// `plugins.toml` is unreadable or invalid. `location` is
    /// `file:line:column`.
    #[error("{location}: {message}")]
    Config {
        /// `file:line:column` (or just the file when no position applies).
        location: String,
        /// What is wrong and how to fix it.
        message: String,
    },

    /// A plugin file was refused before any of its code ran, or while
    /// `abi_stable` checked it.
    #[error("plugin {name} at {path} refused: {reason}")]
    PluginRefused {
        /// The plugin's name (its file stem when it is not a Hearth plugin).
        name: String,
        /// Where it was looked for.
        path: PathBuf,
        /// Why, with both ABI versions when they are the reason.
        reason: String,
    },

    /// A plugin file does not exist.
    #[error("plugin file {path} not found{hint}")]
    PluginMissing {
        /// Where it was looked for.
        path: PathBuf,
        /// What to do, starting with `: `.
        hint: String,
    },

    /// A plugin makes another kind of engine than its service needs.
    #[error("plugin {name} at {path} is a {found} engine, but [{service}] needs a {} engine", service.kind())]
    WrongKind {
        /// The plugin's name.
        name: String,
        /// Its file.
        path: PathBuf,
        /// The kind it makes.
        found: hearth_plugin_api::EngineKind,
        /// The service that named it.
        service: ServiceName,
    },

    /// An engine call returned an error or panicked.
    #[error("{service}: {message}")]
    Engine {
        /// The service the engine serves.
        service: ServiceName,
        /// The plugin's message.
        message: String,
    },

    /// A service is not in the configuration.
    #[error("unknown service `{0}`: the services are tts, stt and chat")]
    UnknownService(String),

    /// A service exists but cannot serve right now.
    #[error("{service} is not ready: {reason}")]
    NotReady {
        /// The service.
        service: ServiceName,
        /// Its state, in words.
        reason: String,
    },

    /// The request may not be made from where it comes (Host or Origin).
    #[error("{0}")]
    Forbidden(String),

    /// The request needs the admin token.
    #[error("{0}")]
    Unauthorized(String),

    /// The request conflicts with work already running.
    #[error("{0}")]
    Conflict(String),

    /// The request is malformed: a query or path it cannot parse, or a
    /// plain GET on a WebSocket endpoint.
    #[error("{0}")]
    BadRequest(String),

    /// A service cannot serve and will not by itself: it failed, or its
    /// plugin is not installed (503 without `Retry-After`).
    #[error("{service} is unavailable: {reason}")]
    Unavailable {
        /// The service.
        service: ServiceName,
        /// Why, and what the operator can do.
        reason: String,
    },

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

    /// The same request came again before its cooldown ended.
    #[error("{what}; try again in {} s", whole_seconds(*retry_after))]
    TooSoon {
        /// What was refused and why.
        what: String,
        /// When it may be asked again.
        retry_after: std::time::Duration,
    },

    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },

    /// No such endpoint.
    #[error("no endpoint {method} {path}; see the API list in README.md")]
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

    /// Anything else, with its message.
    #[error("{0}")]
    Other(String),
}

impl HostError {
    /// The process exit code for this error: 2 for configuration mistakes
    /// (as for command-line mistakes), 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Config { .. } => 2,
            _ => 1,
        }
    }
}

/// Seconds, rounded up (a `Retry-After` must not invite a refusal).
fn whole_seconds(d: std::time::Duration) -> u64 {
    d.as_millis().div_ceil(1000).max(1) as u64
}

/// The host's result type.
pub type Result<T, E = HostError> = std::result::Result<T, E>;

impl HostError {
    /// The HTTP status and the stable error code of this error.
    pub fn status_and_code(&self) -> (axum::http::StatusCode, &'static str) {
        use axum::http::StatusCode;
        match self {
            Self::UnknownService(_) => (StatusCode::NOT_FOUND, "unknown_service"),
            Self::NoRoute { .. } => (StatusCode::NOT_FOUND, "not_found"),
            Self::MethodNotAllowed { .. } => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::NotReady { .. } | Self::Starting(_) => (StatusCode::SERVICE_UNAVAILABLE, "not_ready"),
            Self::Unavailable { .. } => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::UnknownModel(_) => (StatusCode::NOT_FOUND, "model_not_found"),
            Self::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            Self::UnsupportedMedia(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::TooSoon { .. } => (StatusCode::TOO_MANY_REQUESTS, "too_soon"),
            Self::Config { .. } => (StatusCode::BAD_REQUEST, "invalid_config"),
            Self::Engine { .. } => (StatusCode::BAD_GATEWAY, "engine_error"),
            _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

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
    /// `unknown_service`, `not_ready`, `conflict`, `forbidden`,
    /// `unauthorized`, `too_soon`, `bad_request`, `invalid_config`, `engine_error`,
    /// `busy` (too many connections), `internal`.
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
pub fn error_type(status: axum::http::StatusCode) -> &'static str {
    use axum::http::StatusCode;
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
impl axum::response::IntoResponse for HostError {
    fn into_response(self) -> axum::response::Response {
        let (status, code) = self.status_and_code();
        let message = if status.is_server_error() && status != axum::http::StatusCode::SERVICE_UNAVAILABLE {
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
            Self::TooSoon { retry_after, .. } => Some(whole_seconds(*retry_after)),
            // Loading takes seconds: ask again in one.
            Self::NotReady { .. } | Self::Starting(_) => Some(1),
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
