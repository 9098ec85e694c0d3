//! Helpers shared by the chat-http integration tests: where llama-server and
//! its model are, free loopback ports, the `[chat.config]` of
//! `plugins.toml` on another port, a timed chat, and a llama-server started
//! directly. Host contexts, token collectors and messages come from the
//! plugin API's test kit.
#![allow(dead_code)]

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use hearth_chat_http::{config::Config, http::Http, HttpChat};
use hearth_plugin_api::{
    client::Message,
    testkit::{self, TokenCollector},
    ChatOutcome, PluginResult,
};
use serde_json::json;

/// The repository root (where `plugins.toml` and `models/` live).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repo root")
}

/// The llama-server binary and the SmolLM2 model; fails with what to do
/// when they have not been fetched.
pub fn llama_files() -> (PathBuf, PathBuf) {
    let root = repo_root();
    let server = root.join("models/llama/bin/llama-server");
    let model = root.join("models/llama/SmolLM2-135M-Instruct.Q4_1.gguf");
    for path in [&server, &model] {
        assert!(
            path.exists(),
            "{} is missing: run scripts/fetch-models.sh (the project's test command does) before these tests",
            path.display()
        );
    }
    (server, model)
}

/// The arguments the tests start llama-server with.
pub fn llama_args(model: &Path, port: u16) -> Vec<String> {
    [
        "-m",
        &model.display().to_string(),
        "--alias",
        "smollm2",
        "--host",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "-c",
        "2048",
        // One thread: tests run several servers at once on two cores, and
        // llama.cpp's spinning workers slow to a crawl when oversubscribed.
        "-t",
        "1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The default `[chat.config]` of `plugins.toml` (a managed llama-server,
/// relative paths against [`repo_root`]) on `port` instead of 8089, with
/// `max_tokens` as given.
pub fn default_config(port: u16, max_tokens: u32) -> serde_json::Value {
    llama_files();
    json!({
        "api": "openai",
        "url": format!("http://127.0.0.1:{port}"),
        "model": "smollm2",
        "max_tokens": max_tokens,
        "launch": {
            "command": "models/llama/bin/llama-server",
            "args": llama_args(Path::new("models/llama/SmolLM2-135M-Instruct.Q4_1.gguf"), port),
            // Only the prebuilt server needs it; a static build ignores it.
            "env": {"LD_LIBRARY_PATH": "models/llama/bin"},
        },
    })
}

/// A loopback port nobody listened on a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Chats with `engine` into `collector`; returns the result and how long
/// the whole call took.
pub fn timed_chat(
    engine: &HttpChat,
    messages: &[Message],
    collector: &mut TokenCollector,
) -> (PluginResult<ChatOutcome>, Duration) {
    let started = Instant::now();
    let result = testkit::chat(engine, messages, collector);
    (result, started.elapsed())
}

/// A llama-server the test started itself, killed on drop.
pub struct LlamaServer {
    pub child: Child,
    pub port: u16,
}

impl LlamaServer {
    /// Starts llama-server on a free port and waits until its `/health`
    /// answers 200 (asked with the plugin's own HTTP client).
    pub fn start() -> Self {
        let (server, model) = llama_files();
        let port = free_port();
        let child = Command::new(&server)
            .args(llama_args(&model, port))
            .env("LD_LIBRARY_PATH", server.parent().unwrap())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start llama-server");
        let mut this = Self { child, port };
        let config: Config = serde_json::from_value(json!({"api": "openai", "url": this.url()})).unwrap();
        let http = Http::new(&config).unwrap();
        let health = config.root_url("/health");
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Some(status) = this.child.try_wait().unwrap() {
                panic!("llama-server exited with {status} before /health answered 200");
            }
            if matches!(http.block_on(http.get(&health, Duration::from_secs(2))), Ok(reply) if reply.status == 200) {
                return this;
            }
            assert!(Instant::now() < deadline, "llama-server did not become ready in 90 s");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Kills it with SIGKILL and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// True while some process answers on `port`.
pub fn listening(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// Whether process `pid` still exists (and is not a zombie).
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'),
        Err(_) => false,
    }
}
