//! Helpers shared by the integration tests: where the built plugins and the
//! `hearth` binary are, scratch configurations, and in-process servers on
//! loopback port 0.
//!
//! The tests load the real cdylibs cargo built; the README's test command
//! builds the whole workspace before running them.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use hearth::{
    config::Config,
    readiness::{ReadinessRx, Snapshot},
    router::AppState,
    services::Supervisor,
};

/// The cargo target directory the workspace builds into.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
    }
}

/// The profile directory holding the binary and the plugin libraries.
pub fn build_dir() -> PathBuf {
    let profile = if cfg!(debug_assertions) { "debug" } else { "release" };
    target_dir().join(profile)
}

/// A built library by file name, e.g. `libhearth_scripted_tts.so`; panics
/// with what to do when it has not been built.
pub fn library(file: &str) -> PathBuf {
    let path = build_dir().join(file);
    assert!(
        path.exists(),
        "{} is not built: run `cargo build --workspace` (the README's test command does) before the tests",
        path.display()
    );
    path
}

/// A built plugin by name, e.g. `scripted-tts`.
pub fn plugin(name: &str) -> PathBuf {
    library(&hearth::config::plugin_file_name(name))
}

/// A chat plugin built for ABI 1.0 (`tests/abi-1.0`, against the pinned
/// copy of that API), built on first use into `target/abi-1.0`.
pub fn abi_1_0_chat() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| build_pinned("abi-1.0", "hearth_fixture_abi_1_0_chat"))
        .clone()
}

/// A chat plugin built for ABI 1.1 (`tests/abi-1.1`, against the pinned
/// copy of that API), built on first use into `target/abi-1.1`.
pub fn abi_1_1_chat() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| build_pinned("abi-1.1", "hearth_fixture_abi_1_1_chat"))
        .clone()
}

/// Builds the workspace `tests/<dir>` (a plugin against a pinned copy of
/// an older API) into `target/<dir>` and returns its library `lib<name>.so`.
fn build_pinned(dir: &str, name: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let target = target_dir().join(dir);
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    // Several test binaries may ask at once: cargo's lock on the target
    // directory lets one build and the others wait.
    let status = std::process::Command::new(cargo)
        .args(["build", "--locked", "--quiet", "--manifest-path"])
        .arg(root.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building the fixtures in tests/{dir} failed");
    target.join(format!("debug/lib{name}.so"))
}

/// The built `hearth` binary.
pub fn hearth_bin() -> PathBuf {
    library("hearth")
}

/// Runs the built `hearth` with `args` (log level warn) and waits for it.
pub fn hearth(args: &[&str]) -> std::process::Output {
    std::process::Command::new(hearth_bin())
        .args(args)
        .env("HEARTH_LOG", "warn")
        .output()
        .expect("hearth runs")
}

/// Output bytes as text.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("repository root")
}

/// A scratch directory holding `plugins.toml` with `text`.
pub struct Scratch {
    /// Removed on drop.
    pub dir: tempfile::TempDir,
}

impl Scratch {
    /// Writes `text` to `plugins.toml` in a new directory.
    pub fn new(text: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("plugins.toml"), text).expect("write config");
        Self { dir }
    }

    /// Path of `plugins.toml`.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("plugins.toml")
    }

    /// The parsed configuration.
    pub fn config(&self) -> Config {
        Config::load(&self.config_path()).expect("valid config")
    }
}

/// A `[host]` section pointing at the built plugins.
pub fn host_section(extra: &str) -> String {
    format!(
        "[host]\nplugin_dir = {:?}\n{extra}\n",
        build_dir().display().to_string()
    )
}

/// A service section using a scripted plugin with `config` as its table.
pub fn scripted(service: &str, config: &str) -> String {
    scripted_with(service, "", config)
}

/// Like [`scripted`], with `settings` (e.g. `isolation = "in-process"`)
/// in the service's section.
pub fn scripted_with(service: &str, settings: &str, config: &str) -> String {
    let settings = if settings.is_empty() {
        String::new()
    } else {
        format!("{settings}\n")
    };
    format!("[{service}]\nplugin = \"scripted-{service}\"\n{settings}[{service}.config]\n{config}\n")
}

/// A server running in this process on a loopback port.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its supervisor.
    pub supervisor: Supervisor,
    /// Its state, for cancelling.
    pub state: AppState,
    /// Keeps the config directory alive.
    pub _scratch: Scratch,
}

impl TestServer {
    /// Starts a server for `config_text` on 127.0.0.1:0 and starts loading.
    pub async fn start(config_text: &str) -> Self {
        let scratch = Scratch::new(config_text);
        let (supervisor, _rx) = Supervisor::new(scratch.config());
        let state = AppState::new(supervisor.clone()).expect("app state");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let serving = state.clone();
        tokio::spawn(async move { hearth_http::server::run_http(listener, serving, Duration::from_secs(2)).await });
        let starter = supervisor.clone();
        tokio::spawn(async move { starter.start().await });
        Self {
            addr,
            supervisor,
            state,
            _scratch: scratch,
        }
    }

    /// `http://addr` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Its `plugins.toml`, to edit before a reload.
    pub fn config_path(&self) -> PathBuf {
        self._scratch.config_path()
    }

    /// `ws://addr` + `path`.
    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    /// A reader of the readiness state.
    pub fn readiness(&self) -> ReadinessRx {
        self.supervisor.subscribe()
    }

    /// Waits (at most 30 s) until `done` holds.
    pub async fn wait_for(&self, what: &str, done: impl FnMut(&Snapshot) -> bool) -> std::sync::Arc<Snapshot> {
        wait_for(self.readiness(), what, done).await
    }

    /// [`TestServer::start`], then waits until it is READY with every
    /// service settled: READY does not wait for the optional ones (STT,
    /// VAD), but a test may need to know whether they are there.
    pub async fn settled(config_text: &str) -> Self {
        use hearth::readiness::{Overall, Phase};
        let server = Self::start(config_text).await;
        server
            .wait_for("ready with every service settled", |s| {
                s.state == Overall::Ready
                    && s.services
                        .values()
                        .all(|r| !matches!(r.phase, Phase::Pending | Phase::Loading { .. } | Phase::Warming))
            })
            .await;
        server
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.state.shutdown.cancel();
    }
}

/// Waits (at most 30 s) until `done` holds for the state `rx` reads.
pub async fn wait_for(
    mut rx: ReadinessRx,
    what: &str,
    done: impl FnMut(&Snapshot) -> bool,
) -> std::sync::Arc<Snapshot> {
    match tokio::time::timeout(Duration::from_secs(30), rx.wait_for(done)).await {
        Ok(Some(s)) => s,
        Ok(None) => panic!("tracker dropped while waiting for {what}"),
        Err(_) => panic!("timed out waiting for {what}; last state: {:?}", rx.current()),
    }
}

/// A real `hearth serve` process on a free loopback port, killed on drop.
pub struct ServeProcess {
    /// The process.
    pub child: std::process::Child,
    /// Where it listens.
    pub port: u16,
    /// Its configuration's directory.
    pub scratch: Scratch,
}

impl ServeProcess {
    /// Starts `hearth serve` with `config` (its `[host] listen` is
    /// overridden by `--listen` on a free port).
    pub fn start(config: &str) -> Self {
        Self::start_with_env(config, &[])
    }

    /// Like [`ServeProcess::start`], with environment variables set.
    pub fn start_with_env(config: &str, env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let scratch = Scratch::new(config);
        let child = std::process::Command::new(hearth_bin())
            .args(["serve", "-c", scratch.config_path().to_str().unwrap(), "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .envs(env.iter().copied())
            .env("HEARTH_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("hearth serve starts");
        Self { child, port, scratch }
    }

    /// A GET's JSON body, or `None`.
    pub fn get(&self, path: &str) -> Option<serde_json::Value> {
        let body = reqwest::blocking::get(format!("http://127.0.0.1:{}{path}", self.port)).ok()?;
        body.json().ok()
    }

    /// A GET's status, 0 when nothing answers.
    pub fn status(&self, path: &str) -> u16 {
        reqwest::blocking::get(format!("http://127.0.0.1:{}{path}", self.port)).map_or(0, |r| r.status().as_u16())
    }

    /// A POST's status, 0 when nothing answers.
    pub fn post(&self, path: &str) -> u16 {
        reqwest::blocking::Client::new()
            .post(format!("http://127.0.0.1:{}{path}", self.port))
            .send()
            .map_or(0, |r| r.status().as_u16())
    }

    /// Polls `/api/ready` (at most 30 s) until `done` holds.
    pub fn wait(&self, what: &str, done: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(json) = self.get("/api/ready") {
                if done(&json) {
                    return json;
                }
            }
            assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port nobody listened on a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A `[chat]` section for chat-http launching the fetched llama-server on
/// `port` (absolute paths into the repository's `models/`).
pub fn llama_chat(port: u16) -> String {
    let root = repo_root();
    format!(
        "[chat]\nplugin = \"chat-http\"\n[chat.config]\napi = \"openai\"\nurl = \"http://127.0.0.1:{port}\"\n\
         model = \"smollm2\"\nmax_tokens = 8\n[chat.config.launch]\ncommand = \"{root}/models/llama/bin/llama-server\"\n\
         args = [\"-m\", \"{root}/models/llama/SmolLM2-135M-Instruct.Q4_1.gguf\", \"--alias\", \"smollm2\", \"--host\", \
         \"127.0.0.1\", \"--port\", \"{port}\", \"-c\", \"512\", \"-t\", \"1\"]\n",
        root = root.display()
    )
}

/// The `/api/ready` body of a snapshot, as the HTTP front renders it.
pub fn ready_body(snapshot: &Snapshot) -> serde_json::Value {
    let views = hearth_http::readiness_view::ViewCache::default();
    serde_json::from_slice(&views.of(snapshot).ready_json).expect("the readiness JSON parses")
}
