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
        tokio::spawn(async move { hearth::server::run_http(listener, serving, Duration::from_secs(2)).await });
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
        Err(_) => panic!(
            "timed out waiting for {what}; last state: {}",
            String::from_utf8_lossy(&rx.current().ready_json)
        ),
    }
}
