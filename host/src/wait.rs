//! `hearth wait-ready`: follows a server's readiness stream until it is
//! READY (exit 0), in ERROR or out of time (exit 1), showing the progress.
//!
//! It reads `GET /api/ready/stream?follow=true` (Server-Sent Events, one
//! `/api/ready` body per event): with `follow` the stream stays open after
//! READY, so a `--require`d optional service that is still loading is seen
//! becoming ready. Connection failures (the server not listening yet, a
//! restart) and dropped streams are retried with a short backoff until the
//! deadline; a 4xx answer (a Host check refusal, another program on the
//! port) ends the wait at once, since retrying cannot change it.
//!
//! Progress goes to stderr: on a terminal one line, redrawn in place (with a
//! spinner and the time waited); otherwise one line per change, for CI logs.

use std::{
    collections::BTreeMap,
    io::{IsTerminal, Write},
    net::SocketAddr,
    time::Duration,
};

use futures_util::StreamExt;
use serde::Deserialize;
use tokio::time::Instant;

use crate::{
    config::ServiceName,
    error::{HostError, Result},
};

/// What `hearth wait-ready` was asked.
#[derive(Debug, Clone)]
pub struct Options {
    /// The server's base URL.
    pub url: reqwest::Url,
    /// Give up after this long.
    pub timeout: Duration,
    /// Optional services that must be ready too.
    pub require: Vec<ServiceName>,
    /// What to print.
    pub output: Output,
}

/// What `hearth wait-ready` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Progress and the outcome on stderr.
    Human,
    /// As `Human`, and the last readiness JSON on stdout.
    Json,
    /// Nothing.
    Quiet,
}

/// Parses `--url`: an `http://` or `https://` URL, or `host:port` (taken
/// as `http://host:port`).
pub fn parse_url(text: &str) -> std::result::Result<reqwest::Url, String> {
    let text = text.trim();
    let full = if text.contains("://") {
        text.to_owned()
    } else {
        format!("http://{text}")
    };
    let url =
        reqwest::Url::parse(&full).map_err(|e| format!("{text:?} is not a URL ({e}), e.g. http://127.0.0.1:8000"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(format!("{text:?} is not an http:// or https:// URL with a host"));
    }
    Ok(url)
}

/// The URL of a server listening on `listen`; an unspecified address
/// (0.0.0.0, [::]) is reached on loopback.
pub fn url_of(mut listen: SocketAddr) -> reqwest::Url {
    if listen.ip().is_unspecified() {
        listen.set_ip(if listen.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    // A socket address always makes a valid URL.
    reqwest::Url::parse(&format!("http://{listen}")).expect("a socket address is a valid URL authority")
}

/// Waits as `options` say; returns the exit code (0 ready, 1 not).
pub fn run(options: &Options) -> Result<i32> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| HostError::Other(format!("cannot start the async runtime: {e}")))?;
    let started = std::time::Instant::now();
    let outcome = runtime.block_on(wait(options));
    Ok(report(options, &outcome, started.elapsed()))
}

// ---------------------------------------------------------------------------
// The readiness JSON, as far as this command reads it.

/// An `/api/ready` body (unknown fields ignored: newer servers add some).
#[derive(Debug, Clone, Deserialize)]
struct Readiness {
    ready: bool,
    state: String,
    #[serde(default)]
    progress: u8,
    #[serde(default)]
    services: BTreeMap<String, Service>,
    #[serde(default)]
    errors: Vec<String>,
}

/// One service in it.
#[derive(Debug, Clone, Deserialize)]
struct Service {
    ready: bool,
    status: String,
    #[serde(default)]
    required: bool,
    #[serde(default)]
    progress: u8,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

/// A readiness state as received: parsed, and the text for `--json`.
#[derive(Debug, Clone)]
struct Seen {
    readiness: Readiness,
    json: String,
}

impl Readiness {
    /// The services in display order (tts, stt, chat, then any other).
    fn services(&self) -> Vec<(&str, &Service)> {
        let mut services: Vec<_> = self.services.iter().map(|(n, s)| (n.as_str(), s)).collect();
        services.sort_by_key(|(name, _)| ServiceName::parse(name).map_or(usize::MAX, |s| s as usize));
        services
    }

    /// `LOADING_MODELS 42% — tts: loading 60% (loading voice), stt: pending, chat: ready`.
    fn line(&self) -> String {
        self.line_with(true)
    }

    /// The line, with or without what each loading service says it does
    /// (the terminal drops those when the line would not fit).
    fn line_with(&self, messages: bool) -> String {
        let services: Vec<String> = self
            .services()
            .into_iter()
            .map(|(name, service)| format!("{name}: {}", service.describe(messages)))
            .collect();
        if services.is_empty() {
            format!("{} {}%", self.state, self.progress)
        } else {
            format!("{} {}% — {}", self.state, self.progress, services.join(", "))
        }
    }

    /// Whether `name` is one this wait needs: required by the server, or
    /// named by `--require`.
    fn needed(name: &str, service: &Service, require: &[ServiceName]) -> bool {
        service.required || require.iter().any(|r| r.as_str() == name)
    }

    /// Where this state leaves the wait.
    fn verdict(&self, require: &[ServiceName]) -> Verdict {
        if self.state == "ERROR" {
            let mut errors = self.errors.clone();
            if errors.is_empty() {
                errors = self
                    .services()
                    .into_iter()
                    .filter(|(_, s)| s.required && !s.ready)
                    .map(|(name, s)| format!("{name}: {}", s.describe(true)))
                    .collect();
            }
            return Verdict::Failed(errors);
        }
        let mut failed = Vec::new();
        for name in require {
            match self.services.get(name.as_str()) {
                None => failed.push(format!("{name}: not configured on this server (required by --require)")),
                Some(s) if s.status == "failed" => failed.push(format!(
                    "{name}: failed (required by --require): {}",
                    s.error.as_deref().unwrap_or("no reason given")
                )),
                Some(s) if s.status == "not_installed" => failed.push(format!(
                    "{name}: not installed (required by --require): {}",
                    s.reason.as_deref().unwrap_or("no reason given")
                )),
                Some(_) => {}
            }
        }
        if !failed.is_empty() {
            return Verdict::Failed(failed);
        }
        let required_ready = require
            .iter()
            .all(|name| self.services.get(name.as_str()).is_some_and(|s| s.ready));
        if self.ready && required_ready {
            Verdict::Ready
        } else {
            Verdict::Waiting
        }
    }

    /// `tts: loading 60% (loading voice); chat: pending`: the needed
    /// services that are not ready.
    fn not_ready(&self, require: &[ServiceName]) -> String {
        let waiting: Vec<String> = self
            .services()
            .into_iter()
            .filter(|(name, s)| Self::needed(name, s, require) && !s.ready)
            .map(|(name, s)| format!("{name}: {}", s.describe(true)))
            .collect();
        let missing: Vec<String> = require
            .iter()
            .filter(|name| !self.services.contains_key(name.as_str()))
            .map(|name| format!("{name}: not configured"))
            .collect();
        let all = [waiting, missing].concat();
        if all.is_empty() {
            format!("the server is {} {}%", self.state, self.progress)
        } else {
            all.join("; ")
        }
    }
}

impl Service {
    /// `loading 60% (loading voice)` (without the message unless
    /// `messages`), `ready`, `failed: disk on fire`.
    fn describe(&self, messages: bool) -> String {
        match self.status.as_str() {
            "loading" => match self.message.as_deref().filter(|m| messages && !m.is_empty()) {
                Some(message) => format!("loading {}% ({message})", self.progress),
                None => format!("loading {}%", self.progress),
            },
            "failed" => match &self.error {
                Some(error) => format!("failed: {}", first_line(error)),
                None => "failed".to_owned(),
            },
            "not_installed" => "not installed".to_owned(),
            other => other.to_owned(),
        }
    }
}

/// A URL as a person writes it: `http://127.0.0.1:8000`, no trailing `/`.
fn shown(url: &reqwest::Url) -> &str {
    url.as_str().trim_end_matches('/')
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

/// Where a readiness state leaves the wait.
#[derive(Debug, PartialEq)]
enum Verdict {
    Ready,
    /// Cannot become ready without someone's help: the reasons.
    Failed(Vec<String>),
    Waiting,
}

// ---------------------------------------------------------------------------
// Server-Sent Events.

/// Splits an SSE byte stream into the data of its events (comments, `id:`,
/// `event:` and `retry:` lines are skipped; multi-line data is joined with
/// newlines, as the spec says).
#[derive(Debug, Default)]
struct SseParser {
    pending: Vec<u8>,
    data: Option<String>,
}

impl SseParser {
    /// Feeds bytes; returns the data of the events they completed.
    fn push(&mut self, bytes: &[u8]) -> Vec<String> {
        self.pending.extend_from_slice(bytes);
        let mut events = Vec::new();
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line[..end]);
            let line = line.strip_suffix('\r').unwrap_or(&line);
            if line.is_empty() {
                events.extend(self.data.take());
            } else if let Some(value) = line.strip_prefix("data") {
                let Some(value) = value.strip_prefix(':').or(value.is_empty().then_some("")) else {
                    continue;
                };
                let value = value.strip_prefix(' ').unwrap_or(value);
                match &mut self.data {
                    Some(data) => {
                        data.push('\n');
                        data.push_str(value);
                    }
                    None => self.data = Some(value.to_owned()),
                }
            }
        }
        events
    }
}

// ---------------------------------------------------------------------------
// Waiting.

/// How the wait ended.
#[derive(Debug)]
enum Outcome {
    Ready(Seen),
    Failed(Seen, Vec<String>),
    /// The deadline passed: the last state seen, and the last reason no
    /// stream was open (when none was).
    TimedOut(Option<Seen>, Option<String>),
    /// The server answered in a way retrying cannot change.
    Refused(Option<Seen>, String),
}

/// Why opening the stream failed.
enum OpenError {
    /// Try again shortly (nothing listens yet, a 5xx, a dropped stream).
    Retry(String),
    /// Do not (a 4xx: a refusal, or not Hearth).
    Fatal(String),
}

/// No byte for this long (the server sends a comment every 15 s) means
/// the connection is dead: open a new one.
const SILENCE: Duration = Duration::from_secs(45);
/// Backoff between attempts: from the first to the last, doubling.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// How often the terminal line is redrawn while nothing happens.
const REDRAW: Duration = Duration::from_millis(200);

async fn wait(options: &Options) -> Outcome {
    let started = Instant::now();
    let deadline = started + options.timeout;
    let mut progress = Progress::new(options.output, started);
    let client = match reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .user_agent(concat!("hearth-wait-ready/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(client) => client,
        Err(e) => return Outcome::Refused(None, format!("cannot make an HTTP client: {e}")),
    };
    let mut stream_url = options.url.clone();
    stream_url.set_path(&format!(
        "{}/api/ready/stream",
        options.url.path().trim_end_matches('/')
    ));
    stream_url.set_query(Some("follow=true"));
    let mut last: Option<Seen> = None;
    let mut problem: Option<String> = None;
    let mut backoff = FIRST_BACKOFF;
    let mut ticker = tokio::time::interval(REDRAW);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let opened = tokio::select! {
            opened = open(&client, &stream_url) => opened,
            () = tokio::time::sleep_until(deadline) => {
                progress.finish();
                return Outcome::TimedOut(last, problem.or(Some("no answer yet".to_owned())));
            }
        };
        let mut body = match opened {
            Ok(response) => response.bytes_stream(),
            Err(OpenError::Fatal(message)) => {
                progress.finish();
                return Outcome::Refused(last, message);
            }
            Err(OpenError::Retry(reason)) => {
                progress.waiting(&options.url, &reason);
                problem = Some(reason);
                let until = (Instant::now() + backoff).min(deadline);
                backoff = (backoff * 2).min(MAX_BACKOFF);
                loop {
                    tokio::select! {
                        () = tokio::time::sleep_until(until) => break,
                        _ = ticker.tick() => progress.redraw(),
                    }
                }
                if Instant::now() >= deadline {
                    progress.finish();
                    return Outcome::TimedOut(last, problem);
                }
                continue;
            }
        };
        backoff = FIRST_BACKOFF;
        let mut parser = SseParser::default();
        let ended = loop {
            let silence = (Instant::now() + SILENCE).min(deadline);
            let chunk = tokio::select! {
                chunk = body.next() => chunk,
                _ = ticker.tick() => {
                    progress.redraw();
                    continue;
                }
                () = tokio::time::sleep_until(silence) => {
                    if Instant::now() >= deadline {
                        progress.finish();
                        return Outcome::TimedOut(last, None);
                    }
                    break "no event or keep-alive for 45 s".to_owned();
                }
            };
            let bytes = match chunk {
                Some(Ok(bytes)) => bytes,
                Some(Err(e)) => break format!("the stream broke: {}", error_chain(&e)),
                None => break "the server ended the stream".to_owned(),
            };
            for data in parser.push(&bytes) {
                let readiness: Readiness = match serde_json::from_str(&data) {
                    Ok(readiness) => readiness,
                    Err(e) => {
                        progress.finish();
                        return Outcome::Refused(
                            last,
                            format!("{stream_url} sent an event that is not readiness JSON: {e}"),
                        );
                    }
                };
                let verdict = readiness.verdict(&options.require);
                let seen = Seen { readiness, json: data };
                match verdict {
                    Verdict::Ready => {
                        progress.finish();
                        return Outcome::Ready(seen);
                    }
                    Verdict::Failed(errors) => {
                        progress.finish();
                        return Outcome::Failed(seen, errors);
                    }
                    Verdict::Waiting => {
                        progress.update(&seen.readiness);
                        last = Some(seen);
                    }
                }
            }
        };
        // The stream ended (a restart, a proxy's timeout): open a new one.
        progress.waiting(&options.url, &ended);
        problem = Some(ended);
        tokio::time::sleep_until((Instant::now() + FIRST_BACKOFF).min(deadline)).await;
    }
}

/// Opens the stream: a 200 `text/event-stream` response, or why not.
async fn open(client: &reqwest::Client, url: &reqwest::Url) -> std::result::Result<reqwest::Response, OpenError> {
    let response = client
        .get(url.clone())
        .header(reqwest::header::ACCEPT, "text/event-stream")
        .send()
        .await
        .map_err(|e| OpenError::Retry(request_error(&e)))?;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    // The server's JSON error message when it sent one.
    let body = response.text().await.unwrap_or_default();
    let message = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| first_line(body.trim()).chars().take(200).collect());
    let said = if message.is_empty() {
        format!("{url} answered {status}")
    } else {
        format!("{url} answered {status}: {message}")
    };
    if status.is_client_error() && status != reqwest::StatusCode::TOO_MANY_REQUESTS {
        Err(OpenError::Fatal(said))
    } else {
        Err(OpenError::Retry(said))
    }
}

/// Why a request failed, in a few words: `cannot connect: Connection
/// refused (os error 111)` rather than reqwest's whole chain.
fn request_error(error: &reqwest::Error) -> String {
    if error.is_connect() {
        let mut innermost: &dyn std::error::Error = error;
        while let Some(cause) = innermost.source() {
            innermost = cause;
        }
        format!("cannot connect: {innermost}")
    } else if error.is_timeout() {
        "timed out".to_owned()
    } else {
        error_chain(error)
    }
}

/// An error with its causes (`error sending request: ... : Connection
/// refused`), which reqwest keeps in its source chain.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Prints the outcome (after `waited`); returns the exit code.
fn report(options: &Options, outcome: &Outcome, waited: Duration) -> i32 {
    let human = options.output != Output::Quiet;
    let seen = match outcome {
        Outcome::Ready(seen) | Outcome::Failed(seen, _) => Some(seen),
        Outcome::TimedOut(seen, _) | Outcome::Refused(seen, _) => seen.as_ref(),
    };
    if options.output == Output::Json {
        if let Some(seen) = seen {
            outln!("{}", seen.json);
        }
    }
    let code = match outcome {
        Outcome::Ready(_) => 0,
        _ => 1,
    };
    if !human {
        return code;
    }
    let mut err = std::io::stderr().lock();
    let _ = match outcome {
        Outcome::Ready(seen) => writeln!(
            err,
            "ready after {:.1}s: {}",
            waited.as_secs_f64(),
            seen.readiness.line()
        ),
        Outcome::Failed(seen, errors) => {
            let _ = writeln!(err, "{}", seen.readiness.line());
            let what = if seen.readiness.state == "ERROR" {
                format!("Hearth at {} is in ERROR:", shown(&options.url))
            } else {
                format!("Hearth at {} cannot become ready as asked:", shown(&options.url))
            };
            let _ = writeln!(err, "error: {what}");
            errors.iter().try_for_each(|e| writeln!(err, "  {e}"))
        }
        Outcome::TimedOut(Some(seen), _) => writeln!(
            err,
            "error: not ready after {}: still waiting for {}",
            humantime::format_duration(options.timeout),
            seen.readiness.not_ready(&options.require)
        ),
        Outcome::TimedOut(None, problem) => writeln!(
            err,
            "error: not ready after {}: no readiness from {} ({})",
            humantime::format_duration(options.timeout),
            shown(&options.url),
            problem.as_deref().unwrap_or("no answer")
        ),
        Outcome::Refused(_, message) => writeln!(err, "error: {message}"),
    };
    code
}

// ---------------------------------------------------------------------------
// Progress on stderr.

/// Shows the progress: a line redrawn in place on a terminal, one line
/// per change otherwise, nothing when quiet.
struct Progress {
    style: Style,
    started: Instant,
    /// What the line says now (without spinner and time).
    line: String,
    /// A shorter form of it, for a narrow terminal.
    short: String,
    /// The last line printed in `Plain` style, to print changes only.
    printed: String,
    /// Whether a terminal line is on screen (and must be cleared).
    drawn: bool,
    frame: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    Terminal,
    Plain,
    Silent,
}

const SPINNER: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

impl Progress {
    fn new(output: Output, started: Instant) -> Self {
        let style = match output {
            Output::Quiet => Style::Silent,
            _ if std::io::stderr().is_terminal() => Style::Terminal,
            _ => Style::Plain,
        };
        Self {
            style,
            started,
            line: String::new(),
            short: String::new(),
            printed: String::new(),
            drawn: false,
            frame: 0,
        }
    }

    fn waiting(&mut self, url: &reqwest::Url, reason: &str) {
        let line = format!("waiting for {} — {reason}", shown(url));
        self.show(line.clone(), line);
    }

    fn update(&mut self, readiness: &Readiness) {
        self.show(readiness.line(), readiness.line_with(false));
    }

    fn show(&mut self, line: String, short: String) {
        self.line = line;
        self.short = short;
        match self.style {
            Style::Silent => {}
            Style::Terminal => self.redraw(),
            Style::Plain => {
                if self.line != self.printed {
                    self.printed.clone_from(&self.line);
                    let elapsed = self.started.elapsed().as_secs_f64();
                    let _ = writeln!(std::io::stderr().lock(), "[{elapsed:6.1}s] {}", self.line);
                }
            }
        }
    }

    /// Redraws the terminal line (the spinner turns, the time goes on).
    fn redraw(&mut self) {
        if self.style != Style::Terminal || self.line.is_empty() {
            return;
        }
        self.frame = (self.frame + 1) % SPINNER.len();
        let elapsed = self.started.elapsed().as_secs();
        // A line longer than the terminal would wrap, and `\r` would then
        // redraw only its last row: shorten it, else cut it.
        let room = terminal_width().saturating_sub(1);
        let mut full = format!("{} {elapsed}s {}", SPINNER[self.frame], self.line);
        if full.chars().count() > room {
            full = format!("{} {elapsed}s {}", SPINNER[self.frame], self.short);
        }
        let shown: String = full.chars().take(room).collect();
        let _ = write!(std::io::stderr().lock(), "\r\x1b[2K{shown}");
        self.drawn = true;
    }

    /// Clears the terminal line before the outcome is printed.
    fn finish(&mut self) {
        if self.drawn {
            let _ = write!(std::io::stderr().lock(), "\r\x1b[2K");
            self.drawn = false;
        }
    }
}

/// Columns of the terminal on stderr (80 when unknown).
fn terminal_width() -> usize {
    // SAFETY: TIOCGWINSZ writes a `winsize` into the zeroed one passed; a
    // failure leaves it zeroed, which is handled below.
    let columns = unsafe {
        let mut size: libc::winsize = std::mem::zeroed();
        if libc::ioctl(libc::STDERR_FILENO, libc::TIOCGWINSZ, &mut size) == 0 {
            usize::from(size.ws_col)
        } else {
            0
        }
    };
    if columns > 0 {
        columns
    } else {
        80
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn readiness(json: &str) -> Readiness {
        serde_json::from_str(json).expect("readiness json")
    }

    const LOADING: &str = r#"{"ready":false,"state":"LOADING_MODELS","progress":42,"services":{
        "chat":{"ready":true,"status":"ready","required":true,"progress":100},
        "stt":{"ready":false,"status":"pending","required":false,"progress":0},
        "tts":{"ready":false,"status":"loading","required":true,"progress":60,"message":"loading voice"}},
        "errors":[],"version":3}"#;

    #[test]
    fn a_state_reads_as_one_line_in_service_order() {
        assert_eq!(
            readiness(LOADING).line(),
            "LOADING_MODELS 42% — tts: loading 60% (loading voice), stt: pending, chat: ready"
        );
    }

    #[test]
    fn ready_needs_the_required_services_too() {
        let ready = readiness(
            r#"{"ready":true,"state":"READY","progress":90,"services":{
            "tts":{"ready":true,"status":"ready","required":true},
            "stt":{"ready":false,"status":"loading","required":false,"progress":20}},"errors":[]}"#,
        );
        assert_eq!(ready.verdict(&[]), Verdict::Ready);
        assert_eq!(ready.verdict(&[ServiceName::Stt]), Verdict::Waiting);
        assert_eq!(ready.not_ready(&[ServiceName::Stt]), "stt: loading 20%");
        assert!(
            matches!(ready.verdict(&[ServiceName::Chat]), Verdict::Failed(e) if e[0].contains("chat: not configured"))
        );
    }

    #[test]
    fn a_failed_required_or_required_by_flag_service_ends_the_wait() {
        let error = readiness(
            r#"{"ready":false,"state":"ERROR","progress":100,"services":{
            "tts":{"ready":false,"status":"failed","required":true,"error":"disk on fire"}},"errors":["tts: disk on fire"]}"#,
        );
        assert_eq!(
            error.verdict(&[]),
            Verdict::Failed(vec!["tts: disk on fire".to_owned()])
        );
        let stt_failed = readiness(
            r#"{"ready":false,"state":"LOADING_MODELS","progress":50,"services":{
            "stt":{"ready":false,"status":"failed","required":false,"error":"no model\nmore"}},"errors":[]}"#,
        );
        assert_eq!(stt_failed.verdict(&[]), Verdict::Waiting);
        assert_eq!(
            stt_failed.verdict(&[ServiceName::Stt]),
            Verdict::Failed(vec!["stt: failed (required by --require): no model\nmore".to_owned()])
        );
    }

    #[test]
    fn sse_events_are_split_whatever_the_chunks() {
        let stream = b": keep-alive\n\nid: 1\ndata: {\"a\":1}\n\nid: 2\r\ndata: x\r\ndata:y\r\n\r\ndata\n\n";
        for size in [1, 2, 7, stream.len()] {
            let mut parser = SseParser::default();
            let events: Vec<String> = stream.chunks(size).flat_map(|c| parser.push(c)).collect();
            assert_eq!(events, vec!["{\"a\":1}", "x\ny", ""], "chunks of {size}");
        }
    }

    #[test]
    fn urls_are_http_with_a_host() {
        assert_eq!(parse_url("127.0.0.1:8000").unwrap().as_str(), "http://127.0.0.1:8000/");
        assert_eq!(parse_url("https://hearth.lan").unwrap().as_str(), "https://hearth.lan/");
        assert!(parse_url("ftp://x").is_err());
        assert!(parse_url("http://").is_err());
        assert_eq!(
            url_of("0.0.0.0:9000".parse().unwrap()).as_str(),
            "http://127.0.0.1:9000/"
        );
        assert_eq!(url_of("[::]:9000".parse().unwrap()).as_str(), "http://[::1]:9000/");
    }
}
