//! Who may drive Hearth: the `Host` and `Origin` checks that keep other web
//! pages (and DNS rebinding) out, the admin token that guards the endpoints
//! that change engines, and CORS for the origins an operator allows.
//!
//! - **Host**: every request's `Host` must name this server: `localhost`,
//!   a loopback or the listen address, an IP literal when listening on all
//!   addresses, or one of `[host] allowed_hosts`. A DNS-rebound name
//!   (`evil.example` resolving to 127.0.0.1) is refused.
//! - **Origin**: WebSocket upgrades and every request that is not GET/HEAD
//!   must come from the page itself (`Origin` equal to `http://` + `Host`),
//!   from `[host] allowed_origins`, or carry no `Origin` (not a browser).
//! - **Admin**: the endpoints of the admin sub-router (`POST /api/warmup`,
//!   `/api/reload` and `/api/services/*/{retry,restart}`) need
//!   `Authorization: Bearer <token>` when a token is configured
//!   (`[host] admin_token_file` or `HEARTH_ADMIN_TOKEN`), compared in
//!   constant time ([`require_admin`]).
//! - **API key**: the `/v1` sub-router's endpoints need the API key when one
//!   is configured ([`require_api_key`]).
//!
//! Refusals are 403 (401 for a missing or wrong token) with a JSON error
//! naming the setting to change.

use hearth_core::error::HostError;
use std::net::{IpAddr, SocketAddr};

use axum::{
    extract::{Request, State},
    http::{header, HeaderMap, Method},
    middleware::Next,
    response::{IntoResponse, Response},
};
use subtle::ConstantTimeEq;

use hearth_core::{config::HostConfig, metrics::Refusal, secret};

use crate::{error::ApiError, AppState};

/// What the checks need, fixed at startup.
#[derive(Debug, Clone)]
pub struct Guard {
    listen: SocketAddr,
    allowed_hosts: Vec<String>,
    allowed_origins: Vec<String>,
    admin_token: Option<String>,
    api_key: Option<String>,
}

impl Guard {
    /// The checks for `host`'s settings, with the admin token read from its
    /// file or `HEARTH_ADMIN_TOKEN`.
    pub fn new(host: &HostConfig) -> Result<Self, HostError> {
        Ok(Self {
            listen: host.listen,
            allowed_hosts: host.allowed_hosts.iter().map(|h| h.to_ascii_lowercase()).collect(),
            allowed_origins: host
                .allowed_origins
                .iter()
                .map(|o| o.trim_end_matches('/').to_owned())
                .collect(),
            admin_token: secret::admin_token(host)?,
            api_key: secret::api_key(host)?,
        })
    }

    /// Whether an admin token is configured.
    pub fn has_token(&self) -> bool {
        self.admin_token.is_some()
    }

    fn host_allowed(&self, host: &str) -> bool {
        let host = host.to_ascii_lowercase();
        if self.allowed_hosts.contains(&host) {
            return true;
        }
        let name = match host.rsplit_once(':') {
            // `[::1]:8000`, `127.0.0.1:8000`, `localhost:8000`
            Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) && !name.ends_with(':') => name,
            _ => host.as_str(),
        };
        let name = name.trim_start_matches('[').trim_end_matches(']');
        if name == "localhost" || self.allowed_hosts.iter().any(|h| h == name) {
            return true;
        }
        match name.parse::<IpAddr>() {
            Ok(ip) => ip.is_loopback() || ip == self.listen.ip() || self.listen.ip().is_unspecified(),
            Err(_) => false,
        }
    }

    fn origin_allowed(&self, origin: &str, host: Option<&str>) -> bool {
        let origin = origin.trim_end_matches('/');
        host.is_some_and(|h| origin.eq_ignore_ascii_case(&format!("http://{h}")))
            || self.allowed_origins.iter().any(|o| o.eq_ignore_ascii_case(origin))
    }

    fn token_ok(&self, headers: &HeaderMap) -> bool {
        bearer_matches(self.admin_token.as_deref(), headers)
    }

    fn api_key_ok(&self, headers: &HeaderMap) -> bool {
        bearer_matches(self.api_key.as_deref(), headers)
    }
}

/// Whether `headers` carry `Authorization: Bearer <expected>` (compared in
/// constant time); anything goes when nothing is expected.
fn bearer_matches(expected: Option<&str>, headers: &HeaderMap) -> bool {
    let Some(expected) = expected else { return true };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    given.as_bytes().ct_eq(expected.as_bytes()).into()
}

/// The middleware of every request: the `Host` and `Origin` checks of the
/// module doc.
pub async fn check(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let guard = &state.guard;
    let headers = request.headers();
    // Fail closed: a Host that is not text is refused like a foreign one, and
    // an HTTP/1.1 request without one is malformed (RFC 9112, 3.2). Only an
    // HTTP/1.0 client (a bare health checker) may leave it out.
    let host = match headers.get(header::HOST).map(|v| v.to_str()) {
        Some(Ok(host)) => Some(host),
        Some(Err(_)) => {
            state.supervisor.metrics().refused(Refusal::Host);
            return ApiError::Forbidden(
                "the Host header is not plain text; send the name or address of this server".to_owned(),
            )
            .into_response();
        }
        None if request.version() >= axum::http::Version::HTTP_11 => {
            state.supervisor.metrics().refused(Refusal::Host);
            return ApiError::BadRequest("an HTTP/1.1 request needs a Host header naming this server".to_owned())
                .into_response();
        }
        None => None,
    };
    if let Some(host) = host {
        if !guard.host_allowed(host) {
            state.supervisor.metrics().refused(Refusal::Host);
            return ApiError::Forbidden(format!(
                "requests for host `{}` are not served here; add it to [host] allowed_hosts if it names this server",
                crate::error::echo(host)
            ))
            .into_response();
        }
    }
    let upgrade = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let changes = !matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if upgrade || changes {
        // An Origin that is not text names no page that may drive Hearth.
        let origin = headers.get(header::ORIGIN).map(|v| v.to_str().unwrap_or("\u{fffd}"));
        if let Some(origin) = origin {
            if !guard.origin_allowed(origin, host) {
                state.supervisor.metrics().refused(Refusal::Origin);
                return ApiError::Forbidden(format!(
                    "requests from the page at {} are not allowed; add it to [host] allowed_origins to let it drive Hearth",
                    crate::error::echo(origin)
                ))
                .into_response();
            }
        }
    }
    next.run(request).await
}

/// The route layer of the admin endpoints (those that change engines): the
/// admin token, when one is configured.
pub async fn require_admin(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if !state.guard.token_ok(request.headers()) {
        state.supervisor.metrics().refused(Refusal::Token);
        return ApiError::Unauthorized(
            "this endpoint needs the admin token: send `Authorization: Bearer <token>` (the token of [host] admin_token_file or HEARTH_ADMIN_TOKEN)"
                .to_owned(),
        )
        .into_response();
    }
    next.run(request).await
}

/// The route layer of the OpenAI-compatible `/v1` endpoints: the API key,
/// when one is configured.
pub async fn require_api_key(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if !state.guard.api_key_ok(request.headers()) {
        state.supervisor.metrics().refused(Refusal::ApiKey);
        return ApiError::Unauthorized(
            "the /v1 endpoints need the API key: send `Authorization: Bearer <key>` (the key of [host] api_key_file or HEARTH_API_KEY), as OpenAI clients do with api_key"
                .to_owned(),
        )
        .into_response();
    }
    next.run(request).await
}

/// Refuses to serve an open admin API beyond this machine.
pub fn check_exposure(host: &HostConfig, guard: &Guard) -> Result<(), HostError> {
    if host.listen.ip().is_loopback() || guard.has_token() || host.allow_open_admin {
        return Ok(());
    }
    Err(HostError::Other(format!(
        "refusing to listen on {} without an admin token: anyone on the network could reload, retry and re-warm engines. \
         Write a token to a file and set [host] admin_token_file (or HEARTH_ADMIN_TOKEN), \
         or set [host] allow_open_admin = true if that is what you want",
        host.listen
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(listen: &str, hosts: &[&str], origins: &[&str]) -> Guard {
        Guard {
            listen: listen.parse().unwrap(),
            allowed_hosts: hosts.iter().map(|s| s.to_string()).collect(),
            allowed_origins: origins.iter().map(|s| s.to_string()).collect(),
            admin_token: Some("0123456789abcdef".into()),
            api_key: None,
        }
    }

    #[test]
    fn hosts_name_this_server_or_are_refused() {
        let g = guard("127.0.0.1:8000", &["hearth.lan"], &[]);
        for ok in [
            "127.0.0.1:8000",
            "localhost:8000",
            "LOCALHOST",
            "[::1]:8000",
            "hearth.lan:8000",
            "hearth.lan",
        ] {
            assert!(g.host_allowed(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8000",
            "192.168.1.5:8000",
            "localhost.evil.example",
        ] {
            assert!(!g.host_allowed(bad), "{bad}");
        }
        let open = guard("0.0.0.0:8000", &[], &[]);
        assert!(open.host_allowed("192.168.1.5:8000"));
        assert!(!open.host_allowed("rebound.example:8000"));
    }

    #[test]
    fn origins_are_the_page_or_allowed() {
        let g = guard("127.0.0.1:8000", &[], &["https://app.example"]);
        assert!(g.origin_allowed("http://127.0.0.1:8000", Some("127.0.0.1:8000")));
        assert!(g.origin_allowed("https://app.example/", Some("127.0.0.1:8000")));
        assert!(!g.origin_allowed("http://evil.example", Some("127.0.0.1:8000")));
        assert!(!g.origin_allowed("http://localhost:8000", Some("127.0.0.1:8000")));
    }

    #[test]
    fn tokens_compare_exactly() {
        let g = guard("127.0.0.1:8000", &[], &[]);
        let mut headers = HeaderMap::new();
        assert!(!g.token_ok(&headers));
        headers.insert(header::AUTHORIZATION, "Bearer 0123456789abcdef".parse().unwrap());
        assert!(g.token_ok(&headers));
        headers.insert(header::AUTHORIZATION, "Bearer 0123456789abcdeX".parse().unwrap());
        assert!(!g.token_ok(&headers));
    }
}
