//! The OpenAI-compatible endpoints' own rules, against real servers on
//! loopback with the scripted engines and the plugin built for ABI 1.0:
//! what Hearth does for an engine that cannot honour an option (enforce it
//! or refuse it), the API key, and readiness. The `openai` SDK drives the
//! same endpoints with the real engines in `tests/openai/`.

use hearth::readiness::Overall;
use hearth_tests::{host_section, scripted, TestServer};
use serde_json::{json, Value};

async fn post(server: &TestServer, path: &str, body: Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(server.url(path))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A chat plugin built for ABI 1.0 knows no options: Hearth stops its reply
/// after `max_tokens` pieces and at a `stop` sequence itself.
#[tokio::test]
async fn options_an_old_engine_cannot_honour_are_enforced_by_the_host() {
    let config = format!(
        "{}{}[chat]\nplugin = {:?}\n",
        host_section(""),
        scripted("tts", ""),
        hearth_tests::abi_1_0_chat().display().to_string()
    );
    let server = TestServer::start(&config).await;
    server.wait_for("ready", |s| s.state == Overall::Ready).await;
    let message = json!([{"role": "user", "content": "one two three four"}]);

    let (status, body) = post(&server, "/v1/chat/completions", json!({"messages": message})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "You said: one two three four."
    );
    assert_eq!(body["choices"][0]["finish_reason"], "stop");

    let (status, body) = post(
        &server,
        "/v1/chat/completions",
        json!({"messages": message, "max_tokens": 3}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["message"]["content"], "You said: one");
    assert_eq!(body["choices"][0]["finish_reason"], "length");

    let (status, body) = post(
        &server,
        "/v1/chat/completions",
        json!({"messages": message, "stop": "three"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["message"]["content"], "You said: one two ");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
}

/// A speed the engine cannot do is refused before anything is spoken.
#[tokio::test]
async fn a_speed_the_engine_cannot_do_is_refused_and_one_it_can_is_honoured() {
    let config = |speed: bool| {
        format!(
            "{}{}{}",
            host_section(""),
            scripted("tts", &format!("speed = {speed}")),
            scripted("chat", "")
        )
    };
    let fixed = TestServer::start(&config(false)).await;
    fixed.wait_for("ready", |s| s.state == Overall::Ready).await;
    let (status, body) = post(
        &fixed,
        "/v1/audio/speech",
        json!({"input": "Hello.", "speed": 2.0, "response_format": "pcm"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot change its speed"),
        "{body}"
    );
    assert_eq!(body["error"]["type"], "invalid_request_error");

    let able = TestServer::start(&config(true)).await;
    able.wait_for("ready", |s| s.state == Overall::Ready).await;
    let bytes = |speed: f32| {
        let url = able.url("/v1/audio/speech");
        async move {
            let response = reqwest::Client::new()
                .post(url)
                .json(&json!({"input": "Hello there.", "speed": speed, "response_format": "pcm"}))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            assert_eq!(response.headers()["x-sample-rate"], "16000");
            response.bytes().await.unwrap().len()
        }
    };
    let (normal, fast) = (bytes(1.0).await, bytes(2.0).await);
    assert!(
        normal > 0 && fast * 2 <= normal + 4,
        "{normal} bytes at 1.0, {fast} at 2.0"
    );
}

#[tokio::test]
async fn an_api_key_guards_v1_alone() {
    let key = "a-test-key-of-enough-length";
    let dir = hearth_tests::Scratch::new("");
    let key_file = dir.config_path().with_file_name("api-key");
    std::fs::write(&key_file, format!("{key}\n")).unwrap();
    let config = format!(
        "{}{}{}",
        host_section(&format!("api_key_file = {:?}", key_file.display().to_string())),
        scripted("tts", ""),
        scripted("chat", "")
    );
    let server = TestServer::start(&config).await;
    server.wait_for("ready", |s| s.state == Overall::Ready).await;
    let client = reqwest::Client::new();
    let without = client.get(server.url("/v1/models")).send().await.unwrap();
    assert_eq!(without.status(), 401);
    let body: Value = without.json().await.unwrap();
    assert_eq!(body["error"]["type"], "authentication_error", "{body}");
    let wrong = client
        .get(server.url("/v1/models"))
        .bearer_auth("not-the-key-at-all")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let with = client
        .get(server.url("/v1/models"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    assert_eq!(with.status(), 200);
    // The rest of the API is not behind it.
    assert_eq!(client.get(server.url("/api/ready")).send().await.unwrap().status(), 200);
}

/// Before READY every endpoint answers 503 with `Retry-After` at once, in
/// OpenAI's error shape; after, it serves.
#[tokio::test]
async fn requests_before_ready_get_503_with_retry_after_then_succeed() {
    let config = format!(
        "{}{}{}",
        host_section(""),
        scripted("tts", "load_ms = 1500"),
        scripted("chat", "load_ms = 1500")
    );
    let server = TestServer::start(&config).await;
    let client = reqwest::Client::new();
    let early = [
        client.get(server.url("/v1/models")),
        client
            .post(server.url("/v1/chat/completions"))
            .json(&json!({"messages": [{"role": "user", "content": "hi"}]})),
        client
            .post(server.url("/v1/audio/speech"))
            .json(&json!({"input": "Hello."})),
    ];
    for request in early {
        let started = std::time::Instant::now();
        let response = request.send().await.unwrap();
        assert!(started.elapsed() < std::time::Duration::from_secs(1), "it waited");
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()["retry-after"], "1");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["type"], "service_unavailable", "{body}");
        assert_eq!(body["error"]["code"], "not_ready", "{body}");
    }
    server.wait_for("ready", |s| s.state == Overall::Ready).await;
    let models: Value = client
        .get(server.url("/v1/models"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let services: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["service"].as_str().unwrap())
        .collect();
    assert_eq!(services, ["tts", "chat"], "{models}");
    assert!(models["data"].as_array().unwrap().iter().all(|m| m["ready"] == true));
    let (status, _) = post(
        &server,
        "/v1/chat/completions",
        json!({"messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(status, 200);
}
