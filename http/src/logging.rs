//! The span every HTTP request and WebSocket upgrade runs in, carrying a
//! request id that is also sent back in `x-request-id`.

use std::{
    hash::BuildHasher,
    sync::{
        atomic::{AtomicU64, Ordering},
        OnceLock,
    },
    time::Instant,
};

use axum::{
    extract::Request,
    http::{HeaderName, HeaderValue},
    middleware::Next,
    response::Response,
};
use tracing::Instrument;

/// The header carrying the request id, both ways.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest incoming request id that is kept.
const MAX_ID_LEN: usize = 64;

/// Whether an incoming `x-request-id` is a token we can log as it is:
/// short, and only letters, digits and `-_.:+/=` (UUIDs, ULIDs, hex,
/// base64 and tracing headers of common proxies), so it cannot forge log
/// lines or fields.
fn sane(id: &str) -> bool {
    (1..=MAX_ID_LEN).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:+/=".contains(&b))
}

/// A fresh id: 16 hex digits, unique within the process (a counter)
/// and unlikely to repeat across restarts (hashed with a per-process
/// random key).
fn new_id() -> String {
    static KEY: OnceLock<std::collections::hash_map::RandomState> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{:016x}", KEY.get_or_init(Default::default).hash_one(n))
}

/// The middleware: gives the request an id (the client's `x-request-id`
/// when it is [sane](sane), else a new one), runs the rest of the stack
/// inside a `request` span with `id`, `method` and `path`, logs the
/// status at debug level (target `hearth::http`) and returns the id in
/// `x-request-id`.
///
/// The span is at ERROR level so that it is enabled whatever the log
/// level is: a warning or error a request causes always names its id.
/// Work a handler spawns (a WebSocket session after the upgrade, a
/// blocking task) leaves the span unless the handler passes it on with
/// `.instrument(tracing::Span::current())`.
pub async fn request_span(mut request: Request, next: Next) -> Response {
    let given = request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| sane(v));
    let id = given.map_or_else(new_id, str::to_owned);
    // Only sane characters: the conversion cannot fail.
    let header = HeaderValue::from_str(&id).unwrap_or_else(|_| HeaderValue::from_static("invalid"));
    // Handlers see the id the log shows.
    request.headers_mut().insert(REQUEST_ID, header.clone());
    let span = tracing::error_span!(
        target: "hearth::http",
        "request",
        id = %id,
        method = %request.method(),
        path = %request.uri().path(),
    );
    let started = Instant::now();
    let mut response = next.run(request).instrument(span.clone()).await;
    span.in_scope(|| {
        tracing::debug!(
            target: "hearth::http",
            status = response.status().as_u16(),
            // Whole microseconds, so the JSON shows `0.183`, not
            // `0.18265299999999998`.
            ms = started.elapsed().as_micros() as f64 / 1e3,
            "answered"
        );
    });
    response.headers_mut().insert(REQUEST_ID, header);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_short_plain_ids_are_taken_from_clients() {
        assert!(sane("3f2c9a1e-7b4d-4c1a-9e2f-0a1b2c3d4e5f"));
        assert!(sane("Root=1-5759e988-bd862e3fe1be46a994272793"));
        assert!(!sane(""));
        assert!(!sane("a b"));
        assert!(!sane("x\ny"));
        assert!(!sane("\"quoted\""));
        assert!(!sane(&"a".repeat(65)));
    }

    #[test]
    fn new_ids_differ() {
        let a = new_id();
        let b = new_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 16);
        assert!(sane(&a));
    }
}
