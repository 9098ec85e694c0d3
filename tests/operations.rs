//! What operators' machinery reads: Prometheus metrics (checked with the
//! real `promtool`) and systemd's notify protocol (read from a
//! `NOTIFY_SOCKET` the test binds, as systemd would), against real servers
//! on loopback and real `hearth serve` processes.

use std::{
    collections::BTreeMap,
    io::Write,
    os::unix::net::UnixDatagram,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use futures_util::{SinkExt, StreamExt};
use hearth::readiness::Overall;
use hearth_tests::{free_port, hearth_bin, host_section, scripted, Scratch, TestServer};
use tokio_tungstenite::tungstenite::Message;

/// The samples of a text exposition: `name{labels}` → value.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            Some((key.to_owned(), value.parse().ok()?))
        })
        .collect()
}

fn value(samples: &BTreeMap<String, f64>, key: &str) -> f64 {
    *samples
        .get(key)
        .unwrap_or_else(|| panic!("no sample {key} in {:#?}", samples.keys().collect::<Vec<_>>()))
}

/// `promtool check metrics` on `text`: its complaints, empty when clean.
fn promtool(text: &str) -> String {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs (Debian's prometheus package; scripts/install-deps.sh installs it)");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        String::new()
    } else {
        said
    }
}

async fn scrape(url: &str) -> String {
    let response = reqwest::get(url).await.unwrap();
    assert_eq!(response.status(), 200);
    let kind = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(kind.starts_with("text/plain; version=0.0.4"), "{kind}");
    response.text().await.unwrap()
}

#[tokio::test]
async fn metrics_follow_readiness_count_engine_calls_and_pass_promtool() {
    let config = format!(
        "{}{}{}",
        host_section(""),
        scripted("tts", "load_ms = 300"),
        scripted("chat", "reply = \"Hello there. How are you?\"")
    );
    let server = TestServer::start(&config).await;
    // While loading: not ready, in a loading state.
    let loading = samples(&scrape(&server.url("/metrics")).await);
    assert_eq!(value(&loading, "hearth_ready"), 0.0);
    assert_eq!(value(&loading, "hearth_state{state=\"READY\"}"), 0.0);

    server.wait_for("ready", |s| s.state == Overall::Ready).await;
    // One conversation turn, and one request from a foreign Host.
    let (mut socket, _) = tokio_tungstenite::connect_async(server.ws_url("/ws/conversation"))
        .await
        .unwrap();
    socket
        .send(Message::Text(r#"{"type":"text","text":"hi"}"#.into()))
        .await
        .unwrap();
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("the turn ends within 10 s")
            .unwrap()
            .unwrap();
        if let Message::Text(t) = message {
            if t.contains("\"done\"") {
                break;
            }
        }
    }
    let foreign = reqwest::Client::new()
        .get(server.url("/api/ready"))
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 403);
    // A readiness stream that stays open.
    let stream = reqwest::get(server.url("/api/ready/stream?follow=true")).await.unwrap();

    let text = scrape(&server.url("/metrics")).await;
    let ready = samples(&text);
    assert_eq!(value(&ready, "hearth_ready"), 1.0);
    assert_eq!(value(&ready, "hearth_state{state=\"READY\"}"), 1.0);
    assert_eq!(value(&ready, "hearth_state{state=\"LOADING_MODELS\"}"), 0.0);
    assert_eq!(value(&ready, "hearth_service_ready{service=\"tts\"}"), 1.0);
    assert_eq!(value(&ready, "hearth_service_required{service=\"tts\"}"), 1.0);
    assert_eq!(
        value(&ready, "hearth_service_state{service=\"chat\",state=\"ready\"}"),
        1.0
    );
    // No stt section: not installed, and not required.
    assert_eq!(value(&ready, "hearth_service_ready{service=\"stt\"}"), 0.0);
    assert_eq!(value(&ready, "hearth_service_required{service=\"stt\"}"), 0.0);
    assert!(value(&ready, "hearth_service_load_seconds{service=\"tts\"}") >= 0.3);
    assert!(value(&ready, "hearth_startup_seconds") >= 0.3);
    assert_eq!(
        value(&ready, "hearth_service_workers_started_total{service=\"tts\"}"),
        1.0
    );
    assert_eq!(value(&ready, "hearth_conversations_in_flight"), 1.0);
    assert_eq!(value(&ready, "hearth_conversations_total"), 1.0);
    assert_eq!(value(&ready, "hearth_stream_subscribers{transport=\"sse\"}"), 1.0);
    assert_eq!(value(&ready, "hearth_refused_total{reason=\"host\"}"), 1.0);
    // Two sentences spoken, one reply streamed, one first audio.
    assert_eq!(
        value(&ready, "hearth_tts_synthesis_seconds_count{service=\"tts\"}"),
        2.0
    );
    assert_eq!(
        value(&ready, "hearth_tts_first_chunk_seconds_count{service=\"tts\"}"),
        2.0
    );
    assert_eq!(
        value(&ready, "hearth_chat_first_token_seconds_count{service=\"chat\"}"),
        1.0
    );
    assert_eq!(value(&ready, "hearth_conversation_first_audio_seconds_count"), 1.0);
    assert_eq!(value(&ready, "hearth_worker_crashes_total{service=\"tts\"}"), 0.0);
    assert!(text.contains("# HELP hearth_ready "), "{text}");
    assert!(text.contains("# TYPE hearth_tts_synthesis_seconds histogram"), "{text}");
    assert_eq!(promtool(&text), "", "promtool check metrics complained");

    // A restart is counted.
    let restart = reqwest::Client::new()
        .post(server.url("/api/services/tts/restart"))
        .send()
        .await
        .unwrap();
    assert_eq!(restart.status(), 202);
    let now = samples(&scrape(&server.url("/metrics")).await);
    assert_eq!(
        value(&now, "hearth_service_restarts_total{service=\"tts\",kind=\"restart\"}"),
        1.0
    );
    assert_eq!(
        value(&now, "hearth_service_restarts_total{service=\"tts\",kind=\"retry\"}"),
        0.0
    );

    // Closing the conversation and the stream shows in the gauges.
    socket.close(None).await.unwrap();
    drop(stream);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = samples(&scrape(&server.url("/metrics")).await);
        if value(&now, "hearth_conversations_in_flight") == 0.0
            && value(&now, "hearth_stream_subscribers{transport=\"sse\"}") == 0.0
        {
            break;
        }
        assert!(Instant::now() < deadline, "the gauges did not come down");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_crashing_worker_and_a_panicking_plugin_are_counted() {
    let config = format!(
        "{}{}{}{}",
        host_section(""),
        scripted("tts", "crash = \"abort\"\ncrash_in = \"operation\""),
        scripted("stt", "panic_load = \"boom\""),
        scripted("chat", "")
    );
    let server = TestServer::start(&config).await;
    server
        .wait_for("ready, stt failed", |s| {
            s.state == Overall::Ready
                && matches!(
                    s.services[&hearth::config::ServiceName::Stt].phase,
                    hearth::readiness::Phase::Failed { .. }
                )
        })
        .await;
    let tts = server.supervisor.tts().unwrap();
    tokio::task::spawn_blocking(move || {
        assert!(tts.synthesize("Hello.", |_| hearth_plugin_api::Flow::Continue).is_err());
    })
    .await
    .unwrap();
    server
        .wait_for("tts failed", |s| {
            matches!(
                s.services[&hearth::config::ServiceName::Tts].phase,
                hearth::readiness::Phase::Failed { .. }
            )
        })
        .await;
    let now = samples(&scrape(&server.url("/metrics")).await);
    assert_eq!(value(&now, "hearth_worker_crashes_total{service=\"tts\"}"), 1.0);
    assert_eq!(value(&now, "hearth_engine_errors_total{service=\"tts\"}"), 1.0);
    assert_eq!(value(&now, "hearth_plugin_panics_total{service=\"stt\"}"), 1.0);
    assert_eq!(
        value(&now, "hearth_service_state{service=\"stt\",state=\"failed\"}"),
        1.0
    );
    assert_eq!(value(&now, "hearth_ready"), 0.0);
    assert_eq!(
        value(&now, "hearth_service_state{service=\"tts\",state=\"failed\"}"),
        1.0
    );
}

#[test]
fn metrics_can_move_to_a_listener_of_their_own_or_be_turned_off() {
    let port = free_port();
    let process = hearth_tests::ServeProcess::start(&format!(
        "{}{}{}",
        host_section(&format!("metrics_listen = \"127.0.0.1:{port}\"")),
        scripted("tts", ""),
        scripted("chat", "")
    ));
    process.wait("ready", |j| j["state"] == "READY");
    assert_eq!(process.status("/metrics"), 404);
    let own = reqwest::blocking::get(format!("http://127.0.0.1:{port}/metrics")).unwrap();
    assert_eq!(own.status(), 200);
    assert!(own.text().unwrap().contains("hearth_ready 1"));
    let probe = reqwest::blocking::get(format!("http://127.0.0.1:{port}/readyz")).unwrap();
    assert_eq!(probe.status(), 200);

    let off = hearth_tests::ServeProcess::start(&format!(
        "{}{}{}",
        host_section("metrics = false"),
        scripted("tts", ""),
        scripted("chat", "")
    ));
    off.wait("ready", |j| j["state"] == "READY");
    assert_eq!(off.status("/metrics"), 404);
}

/// A child process killed when the test ends, passed or not.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reads datagrams from `socket` into `seen` until one with the line
/// `want` arrives (or fails after `limit`); returns its index.
fn notifications_until(socket: &UnixDatagram, want: &str, limit: Duration, seen: &mut Vec<String>) -> usize {
    let deadline = Instant::now() + limit;
    let mut buf = vec![0u8; 4096];
    let from = seen.len();
    loop {
        if let Some(at) = seen[from..].iter().position(|m| m.lines().any(|l| l == want)) {
            return from + at;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no {want} within {limit:?}; got {seen:#?}");
        socket.set_read_timeout(Some(left)).unwrap();
        if let Ok(n) = socket.recv(&mut buf) {
            seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
}

#[test]
fn systemd_hears_status_ready_reloading_watchdog_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify");
    let socket = UnixDatagram::bind(&path).unwrap();
    let config = |reply: &str| {
        format!(
            "{}{}{}",
            host_section(""),
            scripted("tts", "load_ms = 1500"),
            scripted("chat", &format!("reply = \"{reply}\""))
        )
    };
    let scratch = Scratch::new(&config("One."));
    let port = free_port();
    // systemd names the watched process in WATCHDOG_PID: the shell's own
    // pid, which `exec` hands to hearth.
    let child = Command::new("sh")
        .arg("-c")
        .arg("WATCHDOG_PID=$$ exec \"$0\" \"$@\"")
        .arg(hearth_bin())
        .args(["serve", "-c", scratch.config_path().to_str().unwrap(), "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .env("NOTIFY_SOCKET", &path)
        .env("WATCHDOG_USEC", "400000")
        .env("HEARTH_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = Killed(child);
    let mut seen = Vec::new();
    let at = notifications_until(&socket, "READY=1", Duration::from_secs(30), &mut seen);
    let before_ready = &seen[..at];
    assert!(
        before_ready.iter().any(|m| m.contains("STATUS=LOADING_MODELS")),
        "{before_ready:#?}"
    );
    assert!(
        before_ready.iter().any(|m| m.starts_with("EXTEND_TIMEOUT_USEC=")),
        "{before_ready:#?}"
    );
    assert!(seen[at].contains("STATUS=READY 100% — "), "{}", seen[at]);
    notifications_until(&socket, "WATCHDOG=1", Duration::from_secs(5), &mut seen);

    // A reload (SIGHUP) is bracketed by RELOADING=1 and READY=1.
    std::fs::write(scratch.config_path(), config("Two.")).unwrap();
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.0.id() as i32, libc::SIGHUP) };
    let at = notifications_until(&socket, "RELOADING=1", Duration::from_secs(10), &mut seen);
    assert!(seen[at].contains("MONOTONIC_USEC="), "{}", seen[at]);
    notifications_until(&socket, "READY=1", Duration::from_secs(30), &mut seen);

    // SAFETY: as above.
    unsafe { libc::kill(child.0.id() as i32, libc::SIGTERM) };
    notifications_until(&socket, "STOPPING=1", Duration::from_secs(10), &mut seen);
    let status = child.0.wait().unwrap();
    assert!(status.success(), "{status}");
}
