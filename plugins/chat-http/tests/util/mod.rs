//! Helpers shared by the chat-http integration tests: where the models and
//! the built cdylib are, free loopback ports, a host context for calling the
//! engine directly, a token collector, and a directly started llama-server.
#![allow(dead_code)]

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicBool, Ordering},
        Mutex,
    },
    time::{Duration, Instant},
};

use abi_stable::{sabi_trait::TD_Opaque, std_types::RStr};
use hearth_chat_http::HttpChat;
use hearth_plugin_api::{
    ChatEngine, ChatMessage, ChatOutcome, ChatRole, Context, Flow, HostContext, HostContext_TO, PluginResult, TokenOut,
    TokenSink, TokenSink_TO, Warmable,
};

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

/// A loopback port nobody listened on a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The plugin's cdylib as cargo built it; fails with what to do when not.
pub fn cdylib() -> PathBuf {
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => repo_root().join("target"),
    };
    let profile = if cfg!(debug_assertions) { "debug" } else { "release" };
    let path = target.join(profile).join("libhearth_chat_http.so");
    assert!(
        path.exists(),
        "{} is not built: run `cargo build -p hearth-chat-http` (cargo test builds it too) with the same CARGO_TARGET_DIR",
        path.display()
    );
    path
}

/// A host context for tests: records progress and log lines, can cancel.
#[derive(Default)]
pub struct TestHost {
    pub progress: Mutex<Vec<(f32, String)>>,
    pub log: Mutex<Vec<String>>,
    pub cancelled: AtomicBool,
}

impl HostContext for TestHost {
    fn progress(&self, fraction: f32, message: RStr<'_>) {
        self.progress
            .lock()
            .unwrap()
            .push((fraction, message.as_str().to_owned()));
    }

    fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    fn log(&self, _level: u8, message: RStr<'_>) {
        self.log.lock().unwrap().push(message.as_str().to_owned());
    }
}

impl hearth::plugin::LoadObserver for TestHost {
    fn progress(&self, fraction: f32, message: &str) {
        self.progress.lock().unwrap().push((fraction, message.to_owned()));
    }

    fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    fn service(&self) -> &str {
        "chat"
    }
}

impl TestHost {
    /// Runs `f` with a [`Context`] backed by this host.
    pub fn with_ctx<T>(&self, base_dir: &Path, f: impl FnOnce(&Context<'_>) -> T) -> T {
        let host = HostContext_TO::from_ptr(self, TD_Opaque);
        let ctx = Context::new(host, base_dir);
        f(&ctx)
    }
}

/// Loads `engine` with a JSON config, relative paths against `base_dir`.
pub fn load(engine: &HttpChat, config: serde_json::Value, base_dir: &Path) -> (PluginResult<()>, TestHost) {
    let host = TestHost::default();
    let parsed: Result<<HttpChat as Warmable>::Config, _> = serde_json::from_value(config);
    let result = match parsed {
        Ok(config) => host.with_ctx(base_dir, |ctx| engine.load(config, ctx)),
        Err(e) => Err(e.to_string().into()),
    };
    (result, host)
}

/// Warms `engine` up.
pub fn warmup(engine: &HttpChat) -> PluginResult<String> {
    TestHost::default().with_ctx(Path::new("/"), |ctx| engine.warmup(ctx))
}

/// A user message.
pub fn user(text: &str) -> ChatMessage {
    ChatMessage {
        role: ChatRole::USER,
        content: text.into(),
    }
}

/// A system message.
pub fn system(text: &str) -> ChatMessage {
    ChatMessage {
        role: ChatRole::SYSTEM,
        content: text.into(),
    }
}

/// Collects tokens; says stop after `stop_after` of them, if given.
pub struct Collector {
    pub pieces: Vec<String>,
    pub stop_after: Option<usize>,
    pub first_at: Option<Instant>,
}

impl TokenSink for Collector {
    fn token(&mut self, text: RStr<'_>) -> Flow {
        self.first_at.get_or_insert_with(Instant::now);
        self.pieces.push(text.as_str().to_owned());
        match self.stop_after {
            Some(n) if self.pieces.len() >= n => Flow::Stop,
            _ => Flow::Continue,
        }
    }
}

/// Runs a chat, returning the result, the pieces and how long it took.
pub fn chat(
    engine: &HttpChat,
    messages: &[ChatMessage],
    stop_after: Option<usize>,
) -> (PluginResult<ChatOutcome>, Vec<String>, Duration) {
    let mut collector = Collector {
        pieces: Vec::new(),
        stop_after,
        first_at: None,
    };
    let started = Instant::now();
    let result = {
        let sink = TokenSink_TO::from_ptr(&mut collector, TD_Opaque);
        let mut out = TokenOut::new(sink);
        engine.chat(messages, &mut out)
    };
    (result, collector.pieces, started.elapsed())
}

/// A llama-server the test started itself, killed on drop.
pub struct LlamaServer {
    pub child: Child,
    pub port: u16,
}

impl LlamaServer {
    /// Starts llama-server on a free port and waits for `/health` 200.
    pub fn start() -> Self {
        let (server, model) = llama_files();
        let port = free_port();
        let child = Command::new(&server)
            .args(llama_args(&model, port))
            // Only the prebuilt server needs it; a static build ignores it.
            .env("LD_LIBRARY_PATH", server.parent().unwrap())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start llama-server");
        let mut this = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Some(status) = this.child.try_wait().unwrap() {
                panic!("llama-server exited with {status} before /health answered 200");
            }
            if http_status(port, "/health") == Some(200) {
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

/// The status of a GET on loopback, or `None` when nothing answers.
pub fn http_status(port: u16, path: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
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
