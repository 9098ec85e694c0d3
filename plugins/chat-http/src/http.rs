//! HTTP plumbing: a private tokio runtime, one `reqwest` client, and calls
//! that turn every failure into a sentence (nothing answers, timed out,
//! HTTP status with the server's own error message).
//!
//! # Why async `reqwest` on a private runtime, not `reqwest::blocking`
//!
//! The engine's methods are synchronous (the host calls them on blocking
//! threads), and `reqwest::blocking` would fit that, but it hides its own
//! runtime and offers one timeout per read. A streamed reply needs three
//! different bounds: until the *first* token (which may include the server
//! loading the model), between two tokens, and for the whole reply; and
//! `load` and `warmup` must notice the host's cancellation while waiting.
//! With a runtime of our own, each wait is an explicit `timeout_at` or
//! `select!`. `block_on` polls the request future on the calling thread, so
//! the host's token sink (which is not `Send`) is called from the thread
//! that called `chat`; the single worker thread only drives sockets and
//! timers.
//!
//! The runtime belongs to this library's copy of tokio, not the host's, so
//! calling `block_on` from a host thread is fine. It is shut down in the
//! background on drop, so dropping the engine never blocks or panics, even
//! inside some other async context.

use std::{future::Future, time::Duration};

use futures_util::StreamExt;
use reqwest::{header, StatusCode};
use serde_json::Value;
use tokio::{runtime::Runtime, time::Instant};

use crate::{
    config::{Config, Timeouts},
    wire::{self, LineSplitter},
};

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No connection: refused, unknown host, reset before any answer.
    Unreachable(String),
    /// No answer within the given time.
    TimedOut(Duration),
    /// The server answered with an error status and this message.
    Status(StatusCode, String),
    /// Anything else (broken stream, unreadable body).
    Other(String),
}

impl Failure {
    /// A sentence about calling `url`.
    pub fn describe(&self, url: &str) -> String {
        match self {
            Failure::Unreachable(why) => format!("nothing answers at {url} ({why})"),
            Failure::TimedOut(after) => {
                format!("no answer from {url} within {}", humantime::format_duration(*after))
            }
            Failure::Status(status, message) => format!("{url} answered HTTP {}: {message}", status.as_u16()),
            Failure::Other(why) => format!("{url}: {why}"),
        }
    }
}

/// A complete, non-streamed answer.
#[derive(Debug)]
pub struct Reply {
    /// The status.
    pub status: StatusCode,
    /// The body, as text.
    pub body: String,
}

impl Reply {
    /// The body as JSON, or `Null` when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    /// The server's error message, for non-2xx answers.
    pub fn error(&self) -> String {
        wire::error_body(&self.body)
    }
}

/// What the stream callback says after each line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Keep reading; no reply text was produced yet (first-token deadline
    /// still applies).
    Waiting,
    /// Keep reading; reply text has flowed (the between-token deadline
    /// applies from now on).
    Flowing,
    /// Stop reading and drop the connection.
    Stop,
}

/// How a stream ended, when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The server closed the body.
    Closed,
    /// The callback said [`Next::Stop`].
    Stopped,
}

/// The client and the runtime that drives it.
pub struct Http {
    runtime: Option<Runtime>,
    client: reqwest::Client,
    timeouts: Timeouts,
    api_key: Option<String>,
}

impl Drop for Http {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Http {
    /// Builds the runtime and the client.
    pub fn new(config: &Config) -> Result<Self, String> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("chat-http-io")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the HTTP runtime: {e}"))?;
        let client = reqwest::Client::builder()
            .connect_timeout(config.timeouts.connect)
            .tcp_nodelay(true)
            // A proxy from the environment would swallow loopback servers.
            .no_proxy()
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self {
            runtime: Some(runtime),
            client,
            timeouts: config.timeouts,
            api_key: config.api_key.clone(),
        })
    }

    /// The configured timeouts.
    pub fn timeouts(&self) -> &Timeouts {
        &self.timeouts
    }

    /// Runs `future` to completion on the calling thread.
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime
            .as_ref()
            .expect("runtime lives until drop")
            .block_on(future)
    }

    fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        let request = self.client.request(method, url);
        match &self.api_key {
            Some(key) => request.bearer_auth(key),
            None => request,
        }
    }

    /// GET `url`, the whole answer within `limit`.
    pub async fn get(&self, url: &str, limit: Duration) -> Result<Reply, Failure> {
        self.complete(self.request(reqwest::Method::GET, url), limit).await
    }

    /// POST `body` as JSON to `url`, the whole answer within `limit`.
    pub async fn post(&self, url: &str, body: &Value, limit: Duration) -> Result<Reply, Failure> {
        self.complete(self.request(reqwest::Method::POST, url).json(body), limit)
            .await
    }

    async fn complete(&self, request: reqwest::RequestBuilder, limit: Duration) -> Result<Reply, Failure> {
        let call = async {
            let response = request.send().await.map_err(classify)?;
            let status = response.status();
            let body = response.text().await.map_err(classify)?;
            Ok(Reply { status, body })
        };
        tokio::time::timeout(limit, call)
            .await
            .map_err(|_| Failure::TimedOut(limit))?
    }

    /// POSTs `body` and hands each line of the answer to `on_line` as it
    /// arrives, under the first-token, between-token and whole-request
    /// deadlines. A non-2xx answer is a [`Failure::Status`] carrying the
    /// server's error message. Returning [`Next::Stop`] drops the response,
    /// which closes the connection, so the server stops generating.
    pub async fn stream_lines(
        &self,
        url: &str,
        body: &Value,
        mut on_line: impl FnMut(&str) -> Next,
    ) -> Result<End, Failure> {
        let t = self.timeouts;
        let started = Instant::now();
        let end_of_request = started + t.request;
        let first_token_by = (started + t.first_token).min(end_of_request);
        let bound = |deadline: Instant| {
            let limit = if deadline == end_of_request {
                t.request
            } else {
                t.first_token
            };
            move |_| Failure::TimedOut(limit)
        };

        let request = self
            .request(reqwest::Method::POST, url)
            .header(
                header::ACCEPT,
                "text/event-stream, application/x-ndjson, application/json",
            )
            .json(body)
            .send();
        let response = tokio::time::timeout_at(first_token_by, request)
            .await
            .map_err(bound(first_token_by))?
            .map_err(classify)?;
        let status = response.status();
        if !status.is_success() {
            let text = tokio::time::timeout_at(first_token_by.max(Instant::now() + t.health), response.text())
                .await
                .map_err(|_| Failure::TimedOut(t.health))?
                .unwrap_or_default();
            return Err(Failure::Status(status, wire::error_body(&text)));
        }

        let mut chunks = response.bytes_stream();
        let mut lines = LineSplitter::default();
        let mut flowing = false;
        loop {
            let deadline = if flowing {
                (Instant::now() + t.read).min(end_of_request)
            } else {
                first_token_by
            };
            let limit = if deadline == end_of_request {
                t.request
            } else if flowing {
                t.read
            } else {
                t.first_token
            };
            let chunk = match tokio::time::timeout_at(deadline, chunks.next()).await {
                Err(_) => return Err(Failure::TimedOut(limit)),
                Ok(None) => break,
                Ok(Some(Err(e))) => return Err(Failure::Other(format!("the reply stream broke: {}", root_cause(&e)))),
                Ok(Some(Ok(chunk))) => chunk,
            };
            for line in lines.push(&chunk) {
                match on_line(&line) {
                    Next::Waiting => {}
                    Next::Flowing => flowing = true,
                    Next::Stop => return Ok(End::Stopped),
                }
            }
        }
        if let Some(line) = lines.finish() {
            if on_line(&line) == Next::Stop {
                return Ok(End::Stopped);
            }
        }
        Ok(End::Closed)
    }
}

/// Sorts a `reqwest` error into a [`Failure`].
fn classify(e: reqwest::Error) -> Failure {
    if e.is_timeout() {
        // Only the connect timeout is set on the client; the others are
        // enforced around the calls.
        return Failure::Unreachable(format!("connect timed out: {}", root_cause(&e)));
    }
    if e.is_connect() {
        return Failure::Unreachable(root_cause(&e));
    }
    if e.is_request() && !e.is_body() && !e.is_decode() {
        // Sending failed before any answer: a reset or a closed connection.
        return Failure::Unreachable(root_cause(&e));
    }
    Failure::Other(root_cause(&e))
}

/// The innermost message of an error chain, e.g.
/// `Connection refused (os error 111)` instead of reqwest's
/// `error sending request for url (...)`.
pub fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut deepest = e;
    while let Some(next) = deepest.source() {
        deepest = next;
    }
    deepest.to_string()
}
