//! The readiness API on the wire: router tests with `oneshot`, and SSE and
//! WebSocket tested with real clients against servers on loopback port 0,
//! driven by the scripted engine.

use std::time::Duration;

use axum::{
    body::Body,
    http::{Request, StatusCode},
};
use futures_util::{SinkExt, StreamExt};
use hearth::{
    readiness::Overall,
    router::{router, AppState},
    services::Supervisor,
};
use hearth_tests::{host_section, scripted, Scratch, TestServer};
use http_body_util::BodyExt;
use tokio_tungstenite::tungstenite::Message;
use tower::ServiceExt;

fn slow_config() -> String {
    format!(
        "{}{}{}",
        host_section(""),
        scripted("tts", "load_ms = 1200\nload_steps = 6\nwarmup_ms = 200"),
        scripted("chat", "load_ms = 600\nload_steps = 3\nmodel = \"tiny-chat\""),
    )
}

async fn body_json(response: axum::response::Response) -> serde_json::Value {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)))
}

/// A router whose engines have not started loading.
fn idle_router() -> (axum::Router, Scratch) {
    let scratch = Scratch::new(&slow_config());
    let (supervisor, _rx) = Supervisor::new(scratch.config());
    (router(AppState::new(supervisor).expect("app state")), scratch)
}

async fn get(app: &axum::Router, uri: &str) -> axum::response::Response {
    app.clone()
        .oneshot(
            Request::get(uri)
                .header("host", "localhost")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn livez_is_200_and_independent_of_engines() {
    let (app, _s) = idle_router();
    let response = get(&app, "/livez").await;
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn ready_is_503_with_retry_after_before_loading() {
    let (app, _s) = idle_router();
    let response = get(&app, "/api/ready").await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "1");
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.headers()["content-type"], "application/json");
    let json = body_json(response).await;
    assert_eq!(json["ready"], false);
    assert_eq!(json["state"], "INITIALIZING");
    assert_eq!(json["progress"], 0);
    assert_eq!(json["services"]["tts"]["status"], "pending");
    assert_eq!(json["startup_time_ms"], serde_json::Value::Null);
    let readyz = get(&app, "/readyz").await;
    assert_eq!(readyz.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn unknown_paths_and_methods_get_json_errors() {
    let (app, _s) = idle_router();
    let response = get(&app, "/api/nope").await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(body_json(response).await["error"]["code"], "not_found");
    let response = app
        .clone()
        .oneshot(
            Request::delete("/api/ready")
                .header("host", "localhost")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body_json(response).await["error"]["code"], "method_not_allowed");
}

#[tokio::test]
async fn retry_of_unknown_or_healthy_services_is_refused() {
    let (app, _s) = idle_router();
    // As every HTTP/1.1 client does, the requests name the server.
    let post = |uri: &str| {
        Request::post(uri)
            .header("host", "localhost")
            .body(Body::empty())
            .unwrap()
    };
    let response = app.clone().oneshot(post("/api/services/vision/retry")).await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let json = body_json(response).await;
    assert!(json["error"]["message"]
        .as_str()
        .unwrap()
        .contains("unknown service `vision`"));
    let response = app.clone().oneshot(post("/api/services/tts/retry")).await.unwrap();
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let response = app.clone().oneshot(post("/api/warmup")).await.unwrap();
    assert_eq!(response.status(), StatusCode::CONFLICT);
}

#[tokio::test]
async fn health_answers_at_once_while_a_plugin_is_still_loading() {
    let server = TestServer::start(&slow_config()).await;
    server.wait_for("loading", |s| s.state == Overall::LoadingModels).await;
    let response = reqwest::get(server.url("/api/health")).await.unwrap();
    assert_eq!(response.status(), 200);
    let json: serde_json::Value = response.json().await.unwrap();
    assert_eq!(json["status"], "healthy");
    assert_eq!(json["ready"], false);
    assert_eq!(json["ready_state"], "LOADING_MODELS");
    assert_eq!(json["services"]["tts"]["installed"], true);
    assert_eq!(json["services"]["tts"]["available"], false);
}

#[tokio::test]
async fn health_is_503_when_a_required_plugin_is_not_installed() {
    let config = format!(
        "{}[tts]\nplugin = \"nowhere\"\n{}",
        host_section(""),
        scripted("chat", "")
    );
    let server = TestServer::start(&config).await;
    server.wait_for("error", |s| s.state == Overall::Error).await;
    let response = reqwest::get(server.url("/api/health")).await.unwrap();
    assert_eq!(response.status(), 503);
    let json: serde_json::Value = response.json().await.unwrap();
    assert_eq!(json["status"], "unhealthy");
    assert_eq!(json["services"]["tts"]["installed"], false);
}

#[tokio::test]
async fn ready_flips_from_503_to_200() {
    let server = TestServer::start(&slow_config()).await;
    let first = reqwest::get(server.url("/api/ready")).await.unwrap();
    assert_eq!(first.status(), 503);
    server.wait_for("ready", |s| s.state == Overall::Ready).await;
    let response = reqwest::get(server.url("/api/ready")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("retry-after").is_none());
    let json: serde_json::Value = response.json().await.unwrap();
    assert_eq!(json["ready"], true);
    assert_eq!(json["state"], "READY");
    assert_eq!(json["progress"], 100);
    assert_eq!(json["services"]["chat"]["model"], "tiny-chat");
    assert!(json["startup_time_ms"].as_u64().unwrap() >= 1200);
    assert_eq!(reqwest::get(server.url("/readyz")).await.unwrap().status(), 200);
}

#[tokio::test]
async fn optional_failure_is_200_with_the_error_listed() {
    let config = format!(
        "{}{}{}{}",
        host_section(""),
        scripted("tts", ""),
        scripted("stt", "fail_load = \"whisper model missing\""),
        scripted("chat", "")
    );
    let server = TestServer::start(&config).await;
    // READY may come before the optional service has failed: wait for both.
    server
        .wait_for("ready with stt failed", |s| {
            s.state == Overall::Ready && !s.errors.is_empty()
        })
        .await;
    let response = reqwest::get(server.url("/api/ready")).await.unwrap();
    assert_eq!(response.status(), 200);
    let json: serde_json::Value = response.json().await.unwrap();
    assert_eq!(json["errors"][0], "stt: whisper model missing");
    assert_eq!(json["services"]["stt"]["status"], "failed");
    assert_eq!(json["services"]["stt"]["error"], "whisper model missing");
}

/// Reads SSE `data:` payloads from a response until it ends or `limit`.
async fn sse_events(response: reqwest::Response, limit: Duration) -> (Vec<serde_json::Value>, bool) {
    let mut stream = response.bytes_stream();
    let mut buffer = String::new();
    let mut events = Vec::new();
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let chunk = match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) => return (events, false),
            Ok(None) => return (events, true),
            Ok(Some(chunk)) => chunk.unwrap(),
        };
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            for line in block.lines() {
                if let Some(data) = line.strip_prefix("data: ") {
                    events.push(serde_json::from_str(data).unwrap());
                }
            }
        }
    }
}

#[tokio::test]
async fn sse_pushes_every_change_then_ends_at_ready() {
    let server = TestServer::start(&slow_config()).await;
    let response = reqwest::get(server.url("/api/ready/stream")).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let (events, ended) = sse_events(response, Duration::from_secs(20)).await;
    assert!(ended, "the stream should end after READY");
    let states: Vec<&str> = events.iter().map(|e| e["state"].as_str().unwrap()).collect();
    assert!(states.contains(&"LOADING_MODELS"), "{states:?}");
    assert_eq!(states.last(), Some(&"READY"));
    // Progress rises through many distinct values: the plugins report 9
    // sub-steps 100–200 ms apart, which only a push (not a once-a-second
    // poll) delivers one by one.
    let progress: Vec<u64> = events.iter().map(|e| e["progress"].as_u64().unwrap()).collect();
    assert!(progress.windows(2).all(|w| w[0] <= w[1]), "{progress:?}");
    let distinct: std::collections::BTreeSet<_> = progress.iter().collect();
    assert!(distinct.len() >= 6, "{progress:?}");
    let versions: Vec<u64> = events.iter().map(|e| e["version"].as_u64().unwrap()).collect();
    assert!(versions.windows(2).all(|w| w[0] < w[1]), "{versions:?}");
}

#[tokio::test]
async fn sse_ends_at_error_and_retry_endpoint_brings_the_service_back() {
    let config = format!(
        "{}{}{}",
        host_section(""),
        scripted("tts", ""),
        scripted("chat", "name = \"api-retry\"\nfail_loads = 1\nload_ms = 100"),
    );
    let server = TestServer::start(&config).await;
    let response = reqwest::get(server.url("/api/ready/stream")).await.unwrap();
    let (events, ended) = sse_events(response, Duration::from_secs(20)).await;
    assert!(ended);
    let last = events.last().unwrap();
    assert_eq!(last["state"], "ERROR");
    assert_eq!(last["services"]["chat"]["error"], "scripted failure 1 of 1");
    assert_eq!(reqwest::get(server.url("/api/ready")).await.unwrap().status(), 503);

    // Follow the stream across the retry.
    let follow = reqwest::get(server.url("/api/ready/stream?follow=true")).await.unwrap();
    let client = reqwest::Client::new();
    let retry = client
        .post(server.url("/api/services/chat/retry"))
        .send()
        .await
        .unwrap();
    assert_eq!(retry.status(), 202);
    let again = client
        .post(server.url("/api/services/chat/retry"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        again.status(),
        409,
        "a retry of a service that is already starting is refused"
    );
    let (events, ended) = sse_events(follow, Duration::from_secs(3)).await;
    assert!(!ended, "follow=true keeps the stream open");
    let states: Vec<&str> = events.iter().map(|e| e["state"].as_str().unwrap()).collect();
    assert_eq!(states.first(), Some(&"ERROR"));
    assert!(states.contains(&"LOADING_MODELS"), "{states:?}");
    assert_eq!(states.last(), Some(&"READY"), "{states:?}");
    assert_eq!(reqwest::get(server.url("/api/ready")).await.unwrap().status(), 200);
}

#[tokio::test]
async fn websocket_pushes_the_same_events() {
    let server = TestServer::start(&slow_config()).await;
    let (mut socket, _) = tokio_tungstenite::connect_async(server.ws_url("/ws/ready"))
        .await
        .unwrap();
    let mut states = Vec::new();
    let mut closed = false;
    while let Ok(Some(message)) = tokio::time::timeout(Duration::from_secs(20), socket.next()).await {
        match message.unwrap() {
            Message::Text(text) => {
                let json: serde_json::Value = serde_json::from_str(&text).unwrap();
                states.push(json["state"].as_str().unwrap().to_owned());
            }
            Message::Close(frame) => {
                assert_eq!(u16::from(frame.unwrap().code), 1000);
                closed = true;
                break;
            }
            _ => {}
        }
    }
    assert!(closed, "closed after READY: {states:?}");
    assert!(states.iter().any(|s| s == "LOADING_MODELS"), "{states:?}");
    assert_eq!(states.last().map(String::as_str), Some("READY"));
}

#[tokio::test]
async fn ws_test_greets_echoes_and_answers_pings() {
    let server = TestServer::start(&slow_config()).await;
    let (mut socket, _) = tokio_tungstenite::connect_async(server.ws_url("/ws/test"))
        .await
        .unwrap();
    let hello = socket.next().await.unwrap().unwrap();
    let hello: serde_json::Value = serde_json::from_str(hello.to_text().unwrap()).unwrap();
    assert_eq!(hello["type"], "connected");
    assert_eq!(hello["ready"], false);
    assert!(hello["readiness"]["services"].is_object());
    socket.send(Message::Text("marco".into())).await.unwrap();
    assert_eq!(socket.next().await.unwrap().unwrap(), Message::Text("marco".into()));
    socket.send(Message::Binary(vec![1u8, 2, 3].into())).await.unwrap();
    assert_eq!(
        socket.next().await.unwrap().unwrap(),
        Message::Binary(vec![1u8, 2, 3].into())
    );
    socket.send(Message::Ping(b"p".to_vec().into())).await.unwrap();
    assert_eq!(
        socket.next().await.unwrap().unwrap(),
        Message::Pong(b"p".to_vec().into())
    );
}

#[tokio::test]
async fn warmup_rewarms_ready_services_and_refuses_overlap() {
    let config = format!(
        "{}{}{}",
        host_section(""),
        scripted("tts", "warmup_ms = 600"),
        scripted("chat", "warmup_ms = 300"),
    );
    let server = TestServer::start(&config).await;
    server.wait_for("ready", |s| s.state == Overall::Ready).await;
    let client = reqwest::Client::new();
    let first = client.post(server.url("/api/warmup")).send();
    let second = async {
        tokio::time::sleep(Duration::from_millis(150)).await;
        client.post(server.url("/api/warmup")).send().await.unwrap()
    };
    let (first, second) = tokio::join!(first, second);
    assert_eq!(second.status(), 409);
    let first = first.unwrap();
    assert_eq!(first.status(), 200);
    let json: serde_json::Value = first.json().await.unwrap();
    assert_eq!(json["ok"], true);
    let services = json["services"].as_array().unwrap();
    assert_eq!(services.len(), 2);
    for s in services {
        assert!(s["warmup_time_ms"].as_u64().unwrap() >= 300, "{s}");
    }
    // Still ready throughout.
    assert_eq!(reqwest::get(server.url("/api/ready")).await.unwrap().status(), 200);
}
