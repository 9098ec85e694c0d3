//! The OpenAI dialect against the real llama.cpp `llama-server` with
//! SmolLM2-135M (from `scripts/fetch-models.sh`), each test on its own free
//! loopback port. The engine is called directly here; `entry_points.rs`
//! drives it through the plugin's exported entry points.
//!
//! Missing models fail the tests with what to run; they are never skipped.

mod util;

use std::time::{Duration, Instant};

use hearth_chat_http::HttpChat;
use hearth_plugin_api::{
    client::Message,
    testkit::{self, RecordingHost, TokenCollector},
    Warmable,
};
use serde_json::json;
use util::*;

/// A config that has the plugin start llama-server itself on `port`.
fn launch_config(port: u16) -> serde_json::Value {
    let (server, model) = llama_files();
    json!({
        "api": "openai",
        "url": format!("http://127.0.0.1:{port}"),
        "model": "smollm2",
        "max_tokens": 24,
        "temperature": 0.0,
        "seed": 1,
        "launch": {
            "command": server.display().to_string(),
            "args": llama_args(&model, port),
            "env": {"LD_LIBRARY_PATH": server.parent().unwrap().display().to_string()},
        },
    })
}

#[test]
fn launched_server_loads_warms_up_streams_stops_and_shuts_down() {
    let port = free_port();
    let engine = HttpChat::default();
    let (loaded, host) = testkit::load(&engine, &launch_config(port).to_string(), &repo_root());
    loaded.expect("load");

    let progress = host.progress();
    assert!(
        progress.iter().any(|(_, m)| m.starts_with("starting llama-server")),
        "{progress:?}"
    );
    assert!(
        progress.windows(2).all(|w| w[0].0 <= w[1].0),
        "progress goes forward: {progress:?}"
    );
    assert_eq!(progress.last().unwrap().0, 1.0);
    let described = engine.describe();
    assert_eq!(described.model.as_deref(), Some("smollm2"));
    assert_eq!(described.engine_version, "openai-compatible (llamacpp)");
    let pid = engine.managed_pid().expect("a managed server");

    let warmed = engine
        .warmup(&RecordingHost::new().context(&repo_root()))
        .expect("warmup");
    assert!(warmed.starts_with("1-token completion from smollm2 in "), "{warmed}");
    engine.health().expect("healthy");

    // A whole streamed reply.
    let mut reply = TokenCollector::new();
    let outcome = testkit::chat(&engine, &[Message::user("What is the capital of France?")], &mut reply).expect("chat");
    let pieces = &reply.pieces;
    assert!(pieces.len() > 1, "streamed in pieces: {pieces:?}");
    assert_eq!(outcome.tokens as usize, pieces.len());
    assert!(
        ["stop", "length"].contains(&outcome.finish_reason.as_str()),
        "{outcome:?}"
    );
    assert!(!reply.text().trim().is_empty());

    // The sink says stop after three pieces: the reply ends there.
    let mut reply = TokenCollector::stop_after(3);
    let outcome = testkit::chat(
        &engine,
        &[Message::user("Count from one to twenty in words.")],
        &mut reply,
    )
    .expect("stopped chat");
    assert_eq!(reply.pieces.len(), 3);
    assert_eq!(outcome.tokens, 3);
    assert_eq!(outcome.finish_reason, "cancelled");

    // The server still serves the next request after the dropped stream.
    testkit::chat(&engine, &[Message::user("Hi")], &mut TokenCollector::new()).expect("chat after a stop");

    engine.shutdown();
    assert!(
        !process_alive(pid),
        "llama-server (pid {pid}) still runs after shutdown"
    );
    assert!(!listening(port));
}

#[test]
fn a_killed_server_fails_health_and_chat_fast() {
    let port = free_port();
    let engine = HttpChat::default();
    testkit::load(&engine, &launch_config(port).to_string(), &repo_root())
        .0
        .expect("load");
    let pid = engine.managed_pid().expect("managed");

    // SAFETY: kill(2) on a process this test's engine started.
    unsafe {
        libc::kill(pid as i32, libc::SIGKILL);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while process_alive(pid) && engine.managed_pid().is_some() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }

    let health = engine.health().expect_err("health after the kill");
    assert!(
        health.0.contains("exited with signal 9 (SIGKILL) after it was ready"),
        "{health}"
    );
    let mut reply = TokenCollector::new();
    let (result, took) = timed_chat(&engine, &[Message::user("Hello?")], &mut reply);
    let error = result.expect_err("chat after the kill");
    assert!(error.0.starts_with("cannot chat: llama-server (pid"), "{error}");
    assert!(reply.pieces.is_empty());
    assert!(took < Duration::from_secs(2), "chat took {took:?} to fail");
    engine.shutdown();
}

#[test]
fn an_unmanaged_server_that_dies_fails_health_and_chat_fast() {
    let mut server = LlamaServer::start();
    let engine = HttpChat::default();
    let config = json!({"api": "openai", "url": format!("{}/v1", server.url())});
    testkit::load(&engine, &config.to_string(), &repo_root())
        .0
        .expect("load");
    // No `model`: the server's only model is taken.
    assert_eq!(engine.describe().model.as_deref(), Some("smollm2"));
    engine.health().expect("healthy");

    server.kill();
    let health = engine.health().expect_err("health after the kill");
    assert!(
        health
            .0
            .starts_with("OpenAI-compatible server not responding: nothing answers at"),
        "{health}"
    );
    let (result, took) = timed_chat(&engine, &[Message::user("Hello?")], &mut TokenCollector::new());
    let error = result.expect_err("chat after the kill");
    assert!(
        error
            .0
            .starts_with("OpenAI-compatible server not responding: nothing answers at"),
        "{error}"
    );
    assert!(took < Duration::from_secs(2), "chat took {took:?} to fail");
}

#[test]
fn an_unknown_model_is_a_clear_load_error() {
    let server = LlamaServer::start();
    let engine = HttpChat::default();
    let config = json!({"api": "openai", "url": server.url(), "model": "llama3.2"});
    let error = testkit::load(&engine, &config.to_string(), &repo_root())
        .0
        .expect_err("unknown model");
    assert_eq!(
        error.0,
        format!(
            "model llama3.2 is not served by {}/v1 (it serves: smollm2) — fix `model` in plugins.toml (llama-server names its model with --alias)",
            server.url()
        )
    );
    assert_eq!(engine.describe().model, None);
}

#[test]
fn launch_refuses_a_port_that_is_taken() {
    let server = LlamaServer::start();
    let engine = HttpChat::default();
    let error = testkit::load(&engine, &launch_config(server.port).to_string(), &repo_root())
        .0
        .expect_err("port taken");
    assert!(error.0.starts_with("something already answers at"), "{error}");
    assert!(error.0.contains("cannot start there"), "{error}");
}

#[test]
fn a_server_that_crashes_while_loading_is_reported_with_its_signal() {
    // Stands in for the prebuilt llama-server on a CPU it was not built for:
    // it prints a line and dies of SIGILL.
    let engine = HttpChat::default();
    let port = free_port();
    let config = json!({
        "api": "openai",
        "url": format!("http://127.0.0.1:{port}"),
        "launch": {"command": "/bin/sh", "args": ["-c", "echo 'load_tensors: loading model' >&2; kill -ILL $$"]},
    });
    let (result, _) = testkit::load(&engine, &config.to_string(), &repo_root());
    let error = result.expect_err("crash");
    assert!(
        error
            .0
            .contains("exited with signal 4 (SIGILL) while loading; its last output: load_tensors: loading model"),
        "{error}"
    );
}

#[test]
fn a_missing_server_binary_says_what_to_run() {
    let engine = HttpChat::default();
    let config = json!({
        "api": "openai",
        "url": format!("http://127.0.0.1:{}", free_port()),
        "launch": {"command": "models/llama/bin/no-such-server"},
    });
    let error = testkit::load(&engine, &config.to_string(), &repo_root())
        .0
        .expect_err("missing");
    assert!(
        error
            .0
            .starts_with("launch.command models/llama/bin/no-such-server not found"),
        "{error}"
    );
    assert!(error.0.contains("run scripts/fetch-models.sh"), "{error}");
}

#[test]
fn cancelling_the_load_stops_the_server() {
    let port = free_port();
    let engine = HttpChat::default();
    let mut config = launch_config(port);
    // Sleeps instead of loading, so the load is still waiting when cancelled.
    config["launch"] = json!({"command": "/bin/sh", "args": ["-c", "exec sleep 30"]});
    let host = RecordingHost::new();
    host.cancel();
    let parsed = serde_json::from_value(config).unwrap();
    let started = Instant::now();
    let error = engine.load(parsed, &host.context(&repo_root())).expect_err("cancelled");
    assert!(
        error.0.starts_with("cancelled by the host while sh was starting"),
        "{error}"
    );
    assert!(started.elapsed() < Duration::from_secs(7), "{:?}", started.elapsed());
}

#[test]
fn chat_before_load_is_an_error() {
    let engine = HttpChat::default();
    let result = testkit::chat(&engine, &[Message::user("Hi")], &mut TokenCollector::new());
    assert_eq!(result.unwrap_err().0, "the chat engine is not loaded");
}
