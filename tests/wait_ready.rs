//! `hearth wait-ready` against real `hearth serve` processes on loopback
//! (scripted engines that load slowly, fail, or never finish), and the
//! server's JSON log lines carrying the request id of `x-request-id`.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Output, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use hearth_tests::{free_port, hearth_bin, host_section, scripted, text, Scratch, ServeProcess};

/// Runs `hearth wait-ready ARGS` (stderr is a pipe: plain progress lines)
/// and waits for it.
fn wait_ready(args: &[&str]) -> Output {
    Command::new(hearth_bin())
        .arg("wait-ready")
        .args(args)
        .env("HEARTH_LOG", "warn")
        .output()
        .expect("hearth wait-ready runs")
}

fn url(server: &ServeProcess) -> String {
    format!("http://127.0.0.1:{}", server.port)
}

fn config(tts: &str, stt: Option<&str>, chat: &str) -> String {
    let stt = stt.map(|s| scripted("stt", s)).unwrap_or_default();
    format!(
        "{}{}{stt}{}",
        host_section(""),
        scripted("tts", tts),
        scripted("chat", chat)
    )
}

#[test]
fn it_follows_a_loading_server_and_exits_0_once_ready() {
    let server = ServeProcess::start(&config("load_ms = 2500\nload_steps = 5", None, "load_ms = 300"));
    let started = Instant::now();
    let out = wait_ready(&["--url", &url(&server), "--timeout", "60s"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(50), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    // Progress, one line per change, each with the time waited and every
    // service's status; then the final state.
    assert!(lines.len() >= 3, "{stderr}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with('[') && l.contains("LOADING_MODELS") && l.contains("tts: loading")),
        "{stderr}"
    );
    assert!(lines.iter().any(|l| l.contains("chat: ready")), "{stderr}");
    let last = lines.last().unwrap();
    assert!(last.starts_with("ready after "), "{stderr}");
    assert!(last.contains("s: READY 100% — tts: ready"), "{stderr}");
    assert!(out.stdout.is_empty(), "nothing on stdout without --json");
    // The server is ready now: a second wait returns at once.
    let out = wait_ready(&["--url", &url(&server), "--timeout", "10s"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn a_required_service_that_fails_exits_1_with_its_error() {
    let server = ServeProcess::start(&config("fail_load = \"disk on fire\"", None, ""));
    let out = wait_ready(&["--url", &url(&server), "--timeout", "60s"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("is in ERROR"), "{stderr}");
    assert!(stderr.contains("  tts: disk on fire"), "{stderr}");

    // --quiet: the same exit code, nothing printed.
    let out = wait_ready(&["--url", &url(&server), "--timeout", "60s", "--quiet"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty() && out.stderr.is_empty(), "{}", text(&out.stderr));
}

#[test]
fn a_timeout_exits_1_naming_what_is_not_ready() {
    let server = ServeProcess::start(&config("load_ms = 120000\nload_steps = 120", None, ""));
    let started = Instant::now();
    let out = wait_ready(&["--url", &url(&server), "--timeout", "2s"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(started.elapsed() < Duration::from_secs(30), "{stderr}");
    assert!(
        stderr.contains("error: not ready after 2s: still waiting for tts: loading"),
        "{stderr}"
    );
    assert!(
        !stderr.lines().last().unwrap().contains("chat"),
        "chat was ready: {stderr}"
    );
}

#[test]
fn require_waits_for_an_optional_service_and_fails_with_it() {
    // stt failing is fine for READY, not for --require stt.
    let server = ServeProcess::start(&config("", Some("fail_load = \"no speech model\""), ""));
    let out = wait_ready(&["--url", &url(&server), "--timeout", "60s"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let out = wait_ready(&["--url", &url(&server), "--timeout", "60s", "--require", "stt"]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot become ready as asked"), "{stderr}");
    assert!(
        stderr.contains("stt: failed (required by --require): no speech model"),
        "{stderr}"
    );
    drop(server);

    // A slow optional stt: READY comes first, --require stt waits for it.
    let server = ServeProcess::start(&config("", Some("load_ms = 3000\nload_steps = 3"), ""));
    let out = wait_ready(&["--url", &url(&server), "--timeout", "60s", "--require", "stt", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("readiness JSON on stdout");
    assert_eq!(json["services"]["stt"]["ready"], true, "{json}");
}

#[test]
fn started_before_the_server_it_waits_for_it() {
    let port = free_port();
    let child = Command::new(hearth_bin())
        .args(["wait-ready", "--url", &format!("127.0.0.1:{port}"), "--timeout", "60s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("hearth wait-ready starts");
    std::thread::sleep(Duration::from_millis(1500));
    let scratch = Scratch::new(&config("load_ms = 500", None, ""));
    let serve = Command::new(hearth_bin())
        .args(["serve", "-c", scratch.config_path().to_str().unwrap(), "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .env("HEARTH_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("hearth serve starts");
    let _server = ServeProcess {
        child: serve,
        port,
        scratch,
    };
    let out = child.wait_with_output().unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!("waiting for http://127.0.0.1:{port} — cannot connect")),
        "{stderr}"
    );
    assert!(
        stderr.trim_end().ends_with("chat: ready, vad: not installed"),
        "{stderr}"
    );
}

#[test]
fn json_prints_the_final_readiness_and_config_names_the_server() {
    let server = ServeProcess::start(&config("load_ms = 500", None, ""));
    // `--config`: the address comes from `[host] listen`; 0.0.0.0 means here.
    let client = Scratch::new(&format!("[host]\nlisten = \"0.0.0.0:{}\"\n", server.port));
    let out = wait_ready(&[
        "--config",
        client.config_path().to_str().unwrap(),
        "--json",
        "--timeout",
        "60s",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let json: serde_json::Value = serde_json::from_str(&stdout).expect("valid JSON");
    assert_eq!(json["ready"], true);
    assert_eq!(json["state"], "READY");
    assert_eq!(json["services"]["tts"]["status"], "ready");
    assert!(json["version"].is_u64(), "{json}");
}

#[test]
fn bad_arguments_exit_2() {
    let bad: &[&[&str]] = &[
        &["--timeout", "soon"],
        &["--require", "microphone"],
        &["--quiet", "--json"],
        &["--url", "http://127.0.0.1:1", "--config", "plugins.toml"],
        &["--url", "ftp://127.0.0.1"],
        &["--frobnicate"],
        &["--config", "/nonexistent/plugins.toml"],
    ];
    for args in bad {
        let out = wait_ready(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out.stderr));
        assert!(!out.stderr.is_empty(), "{args:?} says why");
    }
    let help = wait_ready(&["--help"]);
    assert_eq!(help.status.code(), Some(0));
    let help = text(&help.stdout);
    for needed in [
        "Exit codes:",
        "0  READY",
        "2  bad arguments",
        "Examples:",
        "initContainers",
    ] {
        assert!(help.contains(needed), "{needed}: {help}");
    }
}

#[test]
fn on_a_terminal_the_progress_is_one_line_redrawn_in_place() {
    // `script` gives the command a pseudo-terminal (util-linux; skip without).
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: no `script` to make a terminal");
        return;
    }
    let server = ServeProcess::start(&config("load_ms = 2000\nload_steps = 4", None, ""));
    let command = format!(
        "{} wait-ready --url {} --timeout 60s",
        hearth_bin().display(),
        url(&server)
    );
    let out = Command::new("script")
        .args(["-qefc", &command, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("script runs");
    let screen = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{screen}");
    // Redrawn with carriage return + erase line, never one line per change.
    assert!(screen.contains("\r\x1b[2K"), "{screen:?}");
    let final_lines: Vec<&str> = screen.split("\r\x1b[2K").last().unwrap().lines().collect();
    assert_eq!(final_lines.len(), 1, "{screen:?}");
    assert!(final_lines[0].starts_with("ready after "), "{screen:?}");
    assert!(!screen.contains("[   "), "no plain-style lines: {screen:?}");
}

/// `hearth serve` with its stderr read line by line into a channel.
struct LoggingServer {
    server: ServeProcess,
    lines: mpsc::Receiver<String>,
}

impl LoggingServer {
    fn start(env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let scratch = Scratch::new(&config("", None, ""));
        let mut child = Command::new(hearth_bin())
            .args(["serve", "-c", scratch.config_path().to_str().unwrap(), "--listen"])
            .arg(format!("127.0.0.1:{port}"))
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("hearth serve starts");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Self {
            server: ServeProcess { child, port, scratch },
            lines,
        }
    }

    /// Reads lines (at most 30 s) until one satisfies `done`; returns all read.
    fn read_until(&self, what: &str, done: impl Fn(&str) -> bool) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut read = Vec::new();
        loop {
            match self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) => {
                    let found = done(&line);
                    read.push(line);
                    if found {
                        return read;
                    }
                }
                Err(_) => panic!("no log line {what}: {read:#?}"),
            }
        }
    }
}

#[test]
fn json_logs_are_one_object_per_line_with_the_request_id() {
    let server = LoggingServer::start(&[("HEARTH_LOG_FORMAT", "json"), ("HEARTH_LOG", "info,hearth::http=debug")]);
    let mut lines = server.read_until("saying ready", |l| l.contains("ready after"));
    let client = reqwest::blocking::Client::new();
    let base = format!("http://127.0.0.1:{}", server.server.port);

    // A client's sane id is kept and answered back.
    let response = client
        .get(format!("{base}/api/ready"))
        .header("x-request-id", "ci-run-42.step-7")
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-request-id"], "ci-run-42.step-7");
    // Otherwise (none, or one that could forge log lines) a new one.
    let response = client
        .get(format!("{base}/no/such/path"))
        .header("x-request-id", "evil\" id")
        .send()
        .unwrap();
    assert_eq!(response.status(), 404);
    let id = response.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(id.len(), 16, "{id}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");

    for wanted in ["ci-run-42.step-7", id.as_str()] {
        lines.extend(server.read_until(&format!("for request {wanted}"), |l| l.contains(wanted)));
    }
    let parsed: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    for line in &parsed {
        assert!(line["timestamp"].is_string() && line["level"].is_string(), "{line}");
    }
    let answered = |id: &str| {
        parsed
            .iter()
            .find(|l| l["span"]["id"] == id)
            .unwrap_or_else(|| panic!("no line for {id}: {parsed:#?}"))
            .clone()
    };
    let line = answered("ci-run-42.step-7");
    assert_eq!(line["message"], "answered", "{line}");
    assert_eq!(line["status"], 200, "{line}");
    assert_eq!(line["span"]["name"], "request", "{line}");
    assert_eq!(line["span"]["method"], "GET", "{line}");
    assert_eq!(line["span"]["path"], "/api/ready", "{line}");
    let line = answered(&id);
    assert_eq!(line["span"]["path"], "/no/such/path", "{line}");
    assert_eq!(line["status"], 404, "{line}");
}

#[test]
fn an_unknown_log_format_is_refused_at_startup() {
    let scratch = Scratch::new(&config("", None, ""));
    let out = Command::new(hearth_bin())
        .args(["check", "-c", scratch.config_path().to_str().unwrap()])
        .env("HEARTH_LOG_FORMAT", "yaml")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("HEARTH_LOG_FORMAT=\"yaml\""), "{stderr}");
    assert!(stderr.contains("`text`") && stderr.contains("`json`"), "{stderr}");
    assert!(out.stdout.is_empty(), "nothing ran: {}", text(&out.stdout));
}

/// A conversation's session runs in a task of its own after the upgrade;
/// its log lines still carry the upgrade request's id.
#[test]
fn a_conversation_logs_with_its_upgrade_request_id() {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let server = LoggingServer::start(&[("HEARTH_LOG_FORMAT", "json"), ("HEARTH_LOG", "info")]);
    server.read_until("saying ready", |l| l.contains("ready after"));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let url = format!("ws://127.0.0.1:{}/ws/conversation", server.server.port);
        let mut request = url.into_client_request().unwrap();
        request
            .headers_mut()
            .insert("x-request-id", "ws-session-9".parse().unwrap());
        let (mut socket, response) = tokio_tungstenite::connect_async(request).await.unwrap();
        assert_eq!(response.headers()["x-request-id"], "ws-session-9");
        let _ready = socket.next().await;
        socket.close(None).await.unwrap();
        while let Some(Ok(_)) = socket.next().await {}
    });
    let lines = server.read_until("for the session's end", |l| l.contains("conversation ended"));
    let ended: serde_json::Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert_eq!(ended["span"]["id"], "ws-session-9", "{ended}");
    assert_eq!(ended["span"]["path"], "/ws/conversation", "{ended}");
}
