//! The Ollama dialect against a stand-in server written here.
//!
//! Ollama itself cannot be installed on this project's machines (no
//! registry they reach ships it), so [`StandIn`] plays its part on a
//! loopback port, following Ollama's documented API to the letter:
//! `/api/version`; `/api/tags` listing pulled models as `name:tag`;
//! `POST /api/show`, 404 `{"error": ...}` for a model not pulled;
//! `POST /api/generate` with a model and no prompt preloads it and answers
//! `done_reason: "load"`; `POST /api/chat` streams NDJSON, one object per
//! line with `message.content` and `done: false`, then a last line with
//! `done: true`, `done_reason` and counts, no `[DONE]`. Every line is sent in
//! two HTTP chunks cut mid-object, an error can arrive as an NDJSON line
//! after the 200, and the stand-in notices when the client drops the stream.

mod util;

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use axum::{
    body::{Body, Bytes},
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use futures_util::stream::{self, Stream};
use hearth_chat_http::HttpChat;
use hearth_plugin_api::{
    client::Message,
    testkit::{self, RecordingHost, TokenCollector},
    Warmable,
};
use serde_json::{json, Value};
use util::*;

/// What the stand-in saw and did.
#[derive(Default)]
struct Seen {
    /// Bodies of `/api/chat` and `/api/generate` requests, in order.
    requests: Mutex<Vec<(String, Value)>>,
    /// Set when a client dropped a chat stream before its end.
    dropped: AtomicBool,
}

/// Models the stand-in has "pulled".
const PULLED: &[&str] = &["tiny:latest", "other:7b"];

fn pulled(model: &str) -> bool {
    let full = if model.contains(':') {
        model.to_owned()
    } else {
        format!("{model}:latest")
    };
    PULLED.contains(&full.as_str())
}

fn not_found(model: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(json!({"error": format!("model '{model}' not found")})),
    )
        .into_response()
}

fn line(value: Value) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(&value).unwrap();
    bytes.push(b'\n');
    bytes
}

fn piece(model: &str, text: &str) -> Vec<u8> {
    line(json!({
        "model": model, "created_at": "2026-11-27T12:00:00Z",
        "message": {"role": "assistant", "content": text}, "done": false,
    }))
}

fn last(model: &str, reason: &str, count: usize) -> Vec<u8> {
    line(json!({
        "model": model, "created_at": "2026-11-27T12:00:01Z",
        "message": {"role": "assistant", "content": ""},
        "done": true, "done_reason": reason,
        "total_duration": 120_000_000u64, "load_duration": 1_000_000u64,
        "prompt_eval_count": 12, "prompt_eval_duration": 10_000_000u64,
        "eval_count": count, "eval_duration": 100_000_000u64,
    }))
}

/// Notes in `Seen` when the body is dropped before it was sent to the end.
struct DropGuard {
    seen: Arc<Seen>,
    finished: bool,
}

impl DropGuard {
    /// The body was sent to its end.
    fn complete(mut self) {
        self.finished = true;
    }
}

impl Drop for DropGuard {
    fn drop(&mut self) {
        if !self.finished {
            self.seen.dropped.store(true, Ordering::SeqCst);
        }
    }
}

/// A streamed body: each line cut in two chunks, `gap` between chunks.
fn ndjson(lines: Vec<Vec<u8>>, gap: Duration, seen: Arc<Seen>) -> Body {
    Body::from_stream(split_lines(lines, gap, seen))
}

fn split_lines(lines: Vec<Vec<u8>>, gap: Duration, seen: Arc<Seen>) -> impl Stream<Item = Result<Bytes, Infallible>> {
    let chunks: Vec<Bytes> = lines
        .into_iter()
        .flat_map(|l| {
            let cut = l.len() / 2;
            [Bytes::copy_from_slice(&l[..cut]), Bytes::copy_from_slice(&l[cut..])]
        })
        .collect();
    let guard = DropGuard { seen, finished: false };
    stream::unfold(
        (chunks.into_iter(), guard, true),
        move |(mut it, guard, first)| async move {
            if !first {
                tokio::time::sleep(gap).await;
            }
            match it.next() {
                Some(chunk) => Some((Ok(chunk), (it, guard, false))),
                None => {
                    guard.complete();
                    None
                }
            }
        },
    )
}

async fn api_chat(State(seen): State<Arc<Seen>>, Json(body): Json<Value>) -> Response {
    seen.requests.lock().unwrap().push(("/api/chat".into(), body.clone()));
    let model = body["model"].as_str().unwrap_or("").to_owned();
    if !pulled(&model) {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("model \"{model}\" not found, try pulling it first")})),
        )
            .into_response();
    }
    let asked = body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_str())
        .unwrap_or("")
        .to_owned();
    let fast = Duration::from_millis(5);
    let (lines, gap) = match asked.as_str() {
        "please fail" => (
            vec![
                piece(&model, "Sure"),
                piece(&model, ", I"),
                line(json!({"error": "an error was encountered while running the model: out of memory"})),
            ],
            fast,
        ),
        "count slowly" => (
            (1..=200)
                .map(|i| piece(&model, &format!(" {i}")))
                .chain([last(&model, "stop", 200)])
                .collect(),
            Duration::from_millis(50),
        ),
        "say nothing" => (vec![], Duration::from_secs(30)),
        "cut off" => (vec![piece(&model, "Half"), piece(&model, " a")], fast),
        _ => {
            let words = ["Hello", " from", " the", " stand", "-in", " é", "!"];
            let mut lines: Vec<Vec<u8>> = words.iter().map(|w| piece(&model, w)).collect();
            lines.push(last(&model, "stop", words.len()));
            (lines, fast)
        }
    };
    let body = if asked == "say nothing" {
        // Headers, then silence: the first-token timeout must fire.
        Body::from_stream(stream::unfold((), |_| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Some((Ok::<_, Infallible>(Bytes::from_static(b"\n")), ()))
        }))
    } else {
        ndjson(lines, gap, Arc::clone(&seen))
    };
    Response::builder()
        .header("content-type", "application/x-ndjson")
        .body(body)
        .unwrap()
}

async fn api_generate(State(seen): State<Arc<Seen>>, Json(body): Json<Value>) -> Response {
    seen.requests
        .lock()
        .unwrap()
        .push(("/api/generate".into(), body.clone()));
    let model = body["model"].as_str().unwrap_or("").to_owned();
    if !pulled(&model) {
        return not_found(&model);
    }
    assert!(body.get("prompt").is_none(), "a preload has no prompt");
    Json(json!({
        "model": model, "created_at": "2026-11-27T12:00:00Z",
        "response": "", "done": true, "done_reason": "load",
    }))
    .into_response()
}

async fn api_show(Json(body): Json<Value>) -> Response {
    let model = body["model"].as_str().unwrap_or("").to_owned();
    if !pulled(&model) {
        return not_found(&model);
    }
    Json(json!({
        "modelfile": "FROM tiny", "parameters": "", "template": "{{ .Prompt }}",
        "details": {"format": "gguf", "family": "llama", "parameter_size": "135M", "quantization_level": "Q4_1"},
    }))
    .into_response()
}

async fn api_tags() -> Json<Value> {
    Json(json!({"models": PULLED.iter().map(|n| json!({"name": n, "model": n, "size": 1})).collect::<Vec<_>>()}))
}

/// The stand-in server on a loopback port, on a runtime of its own.
struct StandIn {
    addr: SocketAddr,
    seen: Arc<Seen>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl StandIn {
    fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let seen = Arc::new(Seen::default());
        let app = Router::new()
            .route("/api/version", get(|| async { Json(json!({"version": "0.5.7"})) }))
            .route("/api/tags", get(api_tags))
            .route("/api/show", post(api_show))
            .route("/api/generate", post(api_generate))
            .route("/api/chat", post(api_chat))
            .with_state(Arc::clone(&seen));
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        runtime.spawn(async move { axum::serve(listener, app).await });
        Self {
            addr,
            seen,
            runtime: Some(runtime),
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops serving: the listener and every connection close.
    fn stop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(1));
        }
    }

    fn requests(&self, path: &str) -> Vec<Value> {
        let requests = self.seen.requests.lock().unwrap();
        requests
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, b)| b.clone())
            .collect()
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.stop();
    }
}

fn loaded(stand_in: &StandIn, extra: Value) -> HttpChat {
    let mut config = json!({"api": "ollama", "url": stand_in.url(), "model": "tiny"});
    config
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let engine = HttpChat::default();
    testkit::load(&engine, &config.to_string(), &repo_root())
        .0
        .expect("load");
    engine
}

#[test]
fn loads_preloads_and_streams_split_ndjson_with_options() {
    let stand_in = StandIn::start();
    let engine = loaded(
        &stand_in,
        json!({
            "keep_alive": "10m", "num_ctx": 4096, "num_predict": 64, "temperature": 0.2,
            "stop": ["\n\n"], "seed": 7, "system_prompt": "Be brief.",
        }),
    );
    let described = engine.describe();
    assert_eq!(described.model.as_deref(), Some("tiny"));
    assert_eq!(described.engine_version, "ollama 0.5.7");

    let warmed = engine
        .warmup(&RecordingHost::new().context(&repo_root()))
        .expect("warmup");
    assert!(
        warmed.starts_with("loaded tiny into Ollama's memory (keep_alive 10m) in "),
        "{warmed}"
    );
    let preload = stand_in.requests("/api/generate");
    assert_eq!(
        preload,
        [json!({"model": "tiny", "keep_alive": "10m", "options": {"num_ctx": 4096}})]
    );
    engine.health().expect("healthy");

    let mut reply = TokenCollector::new();
    let outcome = testkit::chat(&engine, &[Message::user("Hi")], &mut reply).expect("chat");
    assert_eq!(reply.text(), "Hello from the stand-in é!");
    assert_eq!(reply.pieces.len(), 7);
    assert_eq!(outcome.tokens, 7);
    assert_eq!(outcome.finish_reason, "stop");

    let sent = &stand_in.requests("/api/chat")[0];
    assert_eq!(sent["stream"], true);
    assert_eq!(sent["keep_alive"], "10m");
    assert_eq!(
        sent["options"],
        json!({"temperature": 0.2, "num_predict": 64, "num_ctx": 4096, "stop": ["\n\n"], "seed": 7})
    );
    assert_eq!(
        sent["messages"],
        json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}])
    );

    // A conversation that brings its own system message keeps it alone.
    testkit::chat(
        &engine,
        &[Message::system("Answer in French."), Message::user("Hi")],
        &mut TokenCollector::new(),
    )
    .expect("chat");
    let sent = &stand_in.requests("/api/chat")[1];
    assert_eq!(
        sent["messages"],
        json!([{"role": "system", "content": "Answer in French."}, {"role": "user", "content": "Hi"}])
    );
}

#[test]
fn a_model_not_pulled_says_which_pull_to_run() {
    let stand_in = StandIn::start();
    let engine = HttpChat::default();
    let config = json!({"api": "ollama", "url": stand_in.url(), "model": "llama3.2"});
    let error = testkit::load(&engine, &config.to_string(), &repo_root())
        .0
        .expect_err("not pulled");
    assert_eq!(
        error.0,
        "model llama3.2 not pulled — run `ollama pull llama3.2` (pulled models: tiny:latest, other:7b)"
    );
}

#[test]
fn an_error_line_mid_stream_fails_the_chat() {
    let stand_in = StandIn::start();
    let engine = loaded(&stand_in, json!({}));
    let mut reply = TokenCollector::new();
    let result = testkit::chat(&engine, &[Message::user("please fail")], &mut reply);
    assert_eq!(reply.pieces, ["Sure", ", I"]);
    assert_eq!(
        result.unwrap_err().0,
        "Ollama reported an error after 2 tokens: an error was encountered while running the model: out of memory"
    );
}

#[test]
fn a_stream_cut_before_done_is_an_error() {
    let stand_in = StandIn::start();
    let engine = loaded(&stand_in, json!({}));
    let mut reply = TokenCollector::new();
    let result = testkit::chat(&engine, &[Message::user("cut off")], &mut reply);
    assert_eq!(reply.pieces, ["Half", " a"]);
    assert_eq!(
        result.unwrap_err().0,
        "Ollama closed the reply stream before it finished (after 2 tokens)"
    );
}

#[test]
fn stop_from_the_sink_drops_the_connection() {
    let stand_in = StandIn::start();
    let engine = loaded(&stand_in, json!({}));
    let started = Instant::now();
    let mut reply = TokenCollector::stop_after(3);
    let outcome = testkit::chat(&engine, &[Message::user("count slowly")], &mut reply).expect("stopped chat");
    assert_eq!(reply.pieces, [" 1", " 2", " 3"]);
    assert_eq!((outcome.tokens, outcome.finish_reason.as_str()), (3, "cancelled"));
    // The whole reply would take 10 s; the stand-in sees the stream dropped.
    let deadline = Instant::now() + Duration::from_secs(3);
    while !stand_in.seen.dropped.load(Ordering::SeqCst) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        stand_in.seen.dropped.load(Ordering::SeqCst),
        "the stand-in never saw the stream dropped"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[test]
fn silence_after_the_headers_hits_the_first_token_timeout() {
    let stand_in = StandIn::start();
    let engine = loaded(&stand_in, json!({"first_token_timeout": "300ms"}));
    let mut reply = TokenCollector::new();
    let (result, took) = timed_chat(&engine, &[Message::user("say nothing")], &mut reply);
    assert!(reply.pieces.is_empty());
    assert_eq!(
        result.unwrap_err().0,
        format!("no answer from {}/api/chat within 300ms", stand_in.url())
    );
    assert!(took < Duration::from_secs(2), "{took:?}");
}

#[test]
fn ollama_gone_fails_load_health_and_chat_with_reasons() {
    // Nothing listens: load says Ollama is not responding.
    let port = free_port();
    let engine = HttpChat::default();
    let config = json!({"api": "ollama", "url": format!("http://127.0.0.1:{port}"), "model": "tiny"});
    let error = testkit::load(&engine, &config.to_string(), &repo_root())
        .0
        .expect_err("nobody there");
    assert!(
        error.0.starts_with(&format!(
            "Ollama not responding at http://127.0.0.1:{port}: nothing answers at"
        )),
        "{error}"
    );
    assert!(
        error.0.ends_with("start it with `ollama serve` or fix `url`"),
        "{error}"
    );

    // Ollama stops after a good load: health and chat fail fast.
    let mut stand_in = StandIn::start();
    let engine = loaded(&stand_in, json!({}));
    stand_in.stop();
    let health = engine.health().expect_err("health");
    assert!(
        health.0.starts_with("Ollama not responding: nothing answers at"),
        "{health}"
    );
    let (result, took) = timed_chat(&engine, &[Message::user("Hi")], &mut TokenCollector::new());
    let error = result.unwrap_err();
    assert!(
        error.0.starts_with("Ollama not responding: nothing answers at"),
        "{error}"
    );
    assert!(error.0.ends_with("is `ollama serve` running?"), "{error}");
    assert!(took < Duration::from_secs(2), "{took:?}");
}

#[test]
fn an_openai_server_is_not_mistaken_for_ollama() {
    // The stand-in serves no /api/version under this prefix.
    let stand_in = StandIn::start();
    let engine = HttpChat::default();
    let config = json!({"api": "ollama", "url": format!("{}/v1", stand_in.url()), "model": "tiny"});
    let error = testkit::load(&engine, &config.to_string(), &repo_root())
        .0
        .expect_err("wrong dialect");
    assert!(
        error
            .0
            .contains("answered HTTP 404 without an Ollama version: is this an Ollama server?"),
        "{error}"
    );
}
