//! Hostile input, replayed against real servers and the real binary: each
//! finding of the hardening review (other pages and rebound names, the
//! admin token, oversized and invalid frames, clients that stop reading or
//! never finish their headers, connection floods including open
//! WebSockets, retry storms, stuck plugins at shutdown, absurd values in
//! `plugins.toml`, a FIFO or a device as a plugin path) and the behaviour
//! that now answers it.

use std::{
    process::Command,
    time::{Duration, Instant},
};

use futures_util::{SinkExt, StreamExt};
use hearth_tests::{hearth_bin, host_section, scripted, text, Scratch, ServeProcess, TestServer};
use tokio_tungstenite::tungstenite::{protocol::frame::coding::CloseCode, Message};

#[tokio::test]
async fn the_small_websockets_refuse_large_messages_with_1009() {
    let server = TestServer::start(&format!(
        "{}{}{}",
        host_section(""),
        scripted("tts", ""),
        scripted("chat", "")
    ))
    .await;
    for path in ["/ws/test", "/ws/ready?follow=true"] {
        let (mut socket, _) = tokio_tungstenite::connect_async(server.ws_url(path)).await.unwrap();
        let _greeting = socket.next().await;
        // 3 MiB: far over the 64 KiB these endpoints accept.
        let _ = socket.send(Message::Binary(vec![7u8; 3 << 20].into())).await;
        let deadline = Instant::now() + Duration::from_secs(5);
        let code = loop {
            assert!(
                Instant::now() < deadline,
                "{path}: still open after an oversized message"
            );
            match tokio::time::timeout(Duration::from_secs(5), socket.next()).await {
                Ok(Some(Ok(Message::Close(frame)))) => break frame.map(|f| f.code),
                Ok(Some(Ok(_))) => continue,
                // The server may reset the connection right after its close.
                Ok(Some(Err(_))) | Ok(None) => break None,
                Err(_) => panic!("{path}: no answer to an oversized message"),
            }
        };
        assert!(
            matches!(code, Some(CloseCode::Size) | None),
            "{path}: closed with {code:?}"
        );
        // And nothing was echoed back.
    }
}

fn check(config: &str) -> (Option<i32>, String, Duration) {
    let scratch = Scratch::new(config);
    let started = Instant::now();
    let out = Command::new(hearth_bin())
        .args(["check", "-c", scratch.config_path().to_str().unwrap()])
        .env("HEARTH_LOG", "error")
        .output()
        .unwrap();
    (
        out.status.code(),
        format!("{}{}", text(&out.stdout), text(&out.stderr)),
        started.elapsed(),
    )
}

#[test]
fn a_fifo_or_a_device_as_the_plugin_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("libhearth_fifo.so");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    for path in [fifo.to_str().unwrap(), "/dev/zero"] {
        let (code, output, took) = check(&format!(
            "{}[tts]\nplugin = {path:?}\n{}",
            host_section(""),
            scripted("chat", "")
        ));
        assert_eq!(code, Some(1), "{output}");
        assert!(output.contains("not a regular file"), "{path}: {output}");
        assert!(took < Duration::from_secs(10), "{path}: took {took:?}");
    }
}

#[test]
fn absurd_durations_and_counts_are_refused_with_their_place() {
    let (code, output, _) = check(&format!(
        "{}{}{}",
        host_section("shutdown_timeout = \"300000000000years\""),
        scripted("tts", ""),
        scripted("chat", "")
    ));
    assert_eq!(code, Some(2), "{output}");
    assert!(
        output.contains("plugins.toml:3:20: `shutdown_timeout`") && output.contains("at most 1 day"),
        "{output}"
    );
    let (code, output, _) = check(&format!(
        "{}{}{}[conversation]\nmax_conversations = 9223372036854775807\n",
        host_section(""),
        scripted("tts", ""),
        scripted("chat", "")
    ));
    assert_eq!(code, Some(2), "{output}");
    assert!(output.contains("from 1 to 10000"), "{output}");
}

#[tokio::test]
async fn retries_of_a_failing_service_are_rate_limited() {
    let server = TestServer::start(&format!(
        "{}{}{}",
        host_section("retry_cooldown = \"2s\""),
        scripted("tts", "fail_load = \"broken voice\""),
        scripted("chat", "")
    ))
    .await;
    server
        .wait_for("tts failed", |s| s.state == hearth::readiness::Overall::Error)
        .await;
    let client = reqwest::Client::new();
    let url = server.url("/api/services/tts/retry");
    assert_eq!(client.post(&url).send().await.unwrap().status(), 202);
    server
        .wait_for("tts failed again", |s| s.state == hearth::readiness::Overall::Error)
        .await;
    let refused = client.post(&url).send().await.unwrap();
    assert_eq!(refused.status(), 429);
    let wait: u64 = refused.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&wait), "Retry-After: {wait}");
    let body: serde_json::Value = refused.json().await.unwrap();
    assert!(
        body["error"]["message"].as_str().unwrap().contains("retry_cooldown"),
        "{body}"
    );
    tokio::time::sleep(Duration::from_secs(wait)).await;
    assert_eq!(
        client.post(&url).send().await.unwrap().status(),
        202,
        "allowed after the cooldown"
    );
}

/// A real `hearth serve` whose chat engine is mid-turn and ignores stop
/// (30 s between tokens) and whose TTS engine hangs in `shutdown`; returns
/// the server, its configuration and the socket of the turn.
async fn serving_a_stuck_turn(
    shutdown_timeout: &str,
) -> (
    std::process::Child,
    Scratch,
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let scratch = Scratch::new(&format!(
        "{}{}{}",
        host_section(&format!(
            "listen = \"127.0.0.1:{port}\"\nshutdown_timeout = \"{shutdown_timeout}\""
        )),
        scripted("tts", "crash = \"hang\"\ncrash_in = \"shutdown\""),
        scripted("chat", "token_ms = 30000"),
    ));
    let child = Command::new(hearth_bin())
        .args(["serve", "-c", scratch.config_path().to_str().unwrap()])
        .env("HEARTH_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/readyz")).await {
            if r.status() == 200 {
                break;
            }
        }
        assert!(Instant::now() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/ws/conversation"))
        .await
        .unwrap();
    let _hello = socket.next().await;
    socket
        .send(Message::Text(
            serde_json::json!({"type": "text", "text": "hi"}).to_string().into(),
        ))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    (child, scratch, socket)
}

fn signal(child: &std::process::Child, signal: i32) {
    // SAFETY: kill(2) on a child this test started and has not reaped.
    unsafe { libc::kill(child.id() as i32, signal) };
}

/// Waits (at most `limit`) for the child to exit; its status and how long.
fn exit_within(child: &mut std::process::Child, limit: Duration) -> (Option<std::process::ExitStatus>, Duration) {
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Some(status) = child.try_wait().unwrap() {
            return (Some(status), started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    (None, started.elapsed())
}

#[tokio::test]
async fn sigterm_ends_within_shutdown_timeout_whatever_a_plugin_does() {
    let (mut child, _scratch, mut socket) = serving_a_stuck_turn("1s").await;
    signal(&child, libc::SIGTERM);
    // The conversation is told the server is going away.
    let closed = tokio::time::timeout(Duration::from_secs(3), async {
        while let Some(Ok(message)) = socket.next().await {
            if let Message::Close(frame) = message {
                return frame.map(|f| u16::from(f.code));
            }
        }
        None
    })
    .await
    .ok()
    .flatten();
    assert_eq!(closed, Some(1001));
    let (status, took) = tokio::task::spawn_blocking(move || exit_within(&mut child, Duration::from_secs(10)))
        .await
        .unwrap();
    assert!(status.is_some(), "still running 10 s after SIGTERM");
    // shutdown_timeout, the 1 s the deadline spares, and some slack.
    assert!(took < Duration::from_millis(2800), "exited {took:?} after SIGTERM");
}

#[tokio::test]
async fn a_second_sigterm_exits_at_once() {
    let (mut child, _scratch, _socket) = serving_a_stuck_turn("60s").await;
    signal(&child, libc::SIGTERM);
    tokio::time::sleep(Duration::from_millis(300)).await;
    signal(&child, libc::SIGTERM);
    let (status, took) = tokio::task::spawn_blocking(move || exit_within(&mut child, Duration::from_secs(10)))
        .await
        .unwrap();
    let status = status.expect("still running after a second SIGTERM");
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert_eq!(status.code(), Some(130));
}

fn ready_config(host: &str) -> String {
    format!("{}{}{}", host_section(host), scripted("tts", ""), scripted("chat", ""))
}

#[tokio::test]
async fn another_page_cannot_drive_hearth_and_a_rebound_name_is_not_served() {
    let server = TestServer::start(&ready_config("allowed_origins = [\"https://app.example\"]")).await;
    server
        .wait_for("ready", |s| s.state == hearth::readiness::Overall::Ready)
        .await;
    // A conversation opened by a page on another site: refused.
    let mut request = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        server.ws_url("/ws/conversation"),
    )
    .unwrap();
    request
        .headers_mut()
        .insert("origin", "http://evil.example".parse().unwrap());
    let refused = tokio_tungstenite::connect_async(request).await.unwrap_err();
    assert!(refused.to_string().contains("403"), "{refused}");
    // The same from the page itself, and from an allowed origin, works.
    for origin in [format!("http://{}", server.addr), "https://app.example".to_owned()] {
        let mut request = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
            server.ws_url("/ws/conversation"),
        )
        .unwrap();
        request.headers_mut().insert("origin", origin.parse().unwrap());
        assert!(tokio_tungstenite::connect_async(request).await.is_ok(), "{origin}");
    }
    let client = reqwest::Client::new();
    // A cross-site POST: refused, naming the setting.
    let response = client
        .post(server.url("/api/warmup"))
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(
        body["error"]["message"].as_str().unwrap().contains("allowed_origins"),
        "{body}"
    );
    // DNS rebinding: a foreign Host is not served, even for a GET.
    let response = client
        .get(server.url("/api/ready"))
        .header("host", format!("rebound.example:{}", server.addr.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    // CORS lets the allowed origin read the readiness.
    let response = client
        .get(server.url("/api/ready"))
        .header("origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["access-control-allow-origin"], "https://app.example");
}

#[tokio::test]
async fn admin_endpoints_need_the_token_when_one_is_set() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "s3cret-s3cret-s3cret\n").unwrap();
    let server = TestServer::start(&ready_config(&format!(
        "admin_token_file = {:?}",
        token_file.display().to_string()
    )))
    .await;
    server
        .wait_for("ready", |s| s.state == hearth::readiness::Overall::Ready)
        .await;
    let client = reqwest::Client::new();
    for path in [
        "/api/warmup",
        "/api/reload",
        "/api/services/tts/restart",
        "/api/services/tts/retry",
    ] {
        let response = client.post(server.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 401, "{path}");
        // The refusal says where the token comes from.
        let body: serde_json::Value = response.json().await.unwrap();
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("admin_token_file") && message.contains("HEARTH_ADMIN_TOKEN"),
            "{path}: {message}"
        );
        let wrong = client
            .post(server.url(path))
            .bearer_auth("s3cret-s3cret-s3creX")
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), 401, "{path}");
    }
    let response = client
        .post(server.url("/api/warmup"))
        .bearer_auth("s3cret-s3cret-s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // Reading stays open.
    assert_eq!(reqwest::get(server.url("/api/ready")).await.unwrap().status(), 200);
}

#[test]
fn serving_beyond_loopback_without_a_token_is_refused_at_startup() {
    let scratch = Scratch::new(&ready_config("listen = \"0.0.0.0:0\""));
    let out = Command::new(hearth_bin())
        .args(["serve", "-c", scratch.config_path().to_str().unwrap()])
        .env("HEARTH_LOG", "error")
        .env_remove("HEARTH_ADMIN_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("without an admin token")
            && stderr.contains("admin_token_file")
            && stderr.contains("allow_open_admin"),
        "{stderr}"
    );
}

#[tokio::test]
async fn an_idle_conversation_is_closed_and_frees_its_slot() {
    let server = TestServer::start(&format!(
        "{}[conversation]\nidle_timeout = \"300ms\"\nmax_conversations = 1\n",
        ready_config("")
    ))
    .await;
    server
        .wait_for("ready", |s| s.state == hearth::readiness::Overall::Ready)
        .await;
    let (mut socket, _) = tokio_tungstenite::connect_async(server.ws_url("/ws/conversation"))
        .await
        .unwrap();
    let started = Instant::now();
    let close = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(message)) = socket.next().await {
            if let Message::Close(frame) = message {
                return frame;
            }
        }
        None
    })
    .await
    .expect("not closed within 5 s")
    .expect("a close frame");
    assert_eq!(u16::from(close.code), 1001);
    assert!(close.reason.contains("idle for 300ms"), "{}", close.reason);
    assert!(started.elapsed() >= Duration::from_millis(300));
    // The slot is free again.
    let (mut next, _) = tokio_tungstenite::connect_async(server.ws_url("/ws/conversation"))
        .await
        .unwrap();
    let hello = next.next().await.unwrap().unwrap();
    assert!(hello.to_text().unwrap().contains("\"ready\""), "{hello:?}");
}

#[tokio::test]
async fn a_client_that_stops_reading_is_dropped_and_its_slot_freed() {
    // A long reply spoken at 48 kHz: tens of MiB of audio, far more than
    // the socket buffers hold.
    let reply = "All work and no play makes a dull voice. ".repeat(120);
    let server = TestServer::start(&format!(
        "{}{}{}[conversation]\nsend_timeout = \"1s\"\nmax_conversations = 1\n",
        host_section(""),
        scripted("tts", "sample_rate = 48000"),
        scripted("chat", &format!("reply = {reply:?}")),
    ))
    .await;
    server
        .wait_for("ready", |s| s.state == hearth::readiness::Overall::Ready)
        .await;
    let (mut socket, _) = tokio_tungstenite::connect_async(server.ws_url("/ws/conversation"))
        .await
        .unwrap();
    let _hello = socket.next().await;
    socket
        .send(Message::Text(
            serde_json::json!({"type": "text", "text": "hi"}).to_string().into(),
        ))
        .await
        .unwrap();
    // Never read again. The server gives up on this client within
    // send_timeout of its buffers filling, and takes the next one.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (mut next, _) = tokio_tungstenite::connect_async(server.ws_url("/ws/conversation"))
            .await
            .unwrap();
        match next.next().await {
            Some(Ok(Message::Text(t))) if t.contains("\"ready\"") => break,
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "the stalled client still holds the only slot"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(socket);
}

/// The next text event and the close frame of a conversation, after a bad
/// frame.
async fn error_then_close<S>(socket: &mut tokio_tungstenite::WebSocketStream<S>) -> (serde_json::Value, Option<u16>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut error = serde_json::Value::Null;
    let close = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(message)) = socket.next().await {
            match message {
                Message::Text(t) => {
                    let v: serde_json::Value = serde_json::from_str(&t).unwrap();
                    if v["type"] == "error" {
                        error = v;
                    }
                }
                Message::Close(frame) => return frame.map(|f| u16::from(f.code)),
                _ => {}
            }
        }
        None
    })
    .await
    .expect("no close within 5 s");
    (error, close)
}

#[tokio::test]
async fn oversized_frames_and_invalid_utf8_on_the_conversation_are_answered() {
    let server = TestServer::start(&ready_config("")).await;
    server
        .wait_for("ready", |s| s.state == hearth::readiness::Overall::Ready)
        .await;
    // 3 MiB and 20 MiB against the default 1 MiB limit.
    for size in [3usize << 20, 20 << 20] {
        let (mut socket, _) = tokio_tungstenite::connect_async(server.ws_url("/ws/conversation"))
            .await
            .unwrap();
        let _hello = socket.next().await;
        let _ = socket.send(Message::Binary(vec![1u8; size].into())).await;
        let (error, close) = error_then_close(&mut socket).await;
        assert_eq!(error["code"], "message_too_big", "{size}: {error}");
        // The server keeps the socket a moment after its close frame, so a
        // client still writing megabytes reads it before any reset.
        assert_eq!(close, Some(1009), "{size}");
    }
    // A text frame that is not UTF-8 (sent as raw frame bytes).
    let stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let (mut socket, _) = tokio_tungstenite::client_async(server.ws_url("/ws/conversation"), stream)
        .await
        .unwrap();
    let _hello = socket.next().await;
    let bad = tokio_tungstenite::tungstenite::protocol::frame::Frame::message(
        vec![0xff, 0xfe, 0xfd],
        tokio_tungstenite::tungstenite::protocol::frame::coding::OpCode::Data(
            tokio_tungstenite::tungstenite::protocol::frame::coding::Data::Text,
        ),
        true,
    );
    let _ = socket.send(Message::Frame(bad)).await;
    let (error, close) = error_then_close(&mut socket).await;
    assert_eq!(error["code"], "bad_message", "{error}");
    assert_eq!(close, Some(1007));
    assert_eq!(reqwest::get(server.url("/livez")).await.unwrap().status(), 200);
}

#[tokio::test]
async fn connections_are_capped_and_half_sent_headers_time_out() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestServer::start(&ready_config("max_connections = 3\nheader_read_timeout = \"700ms\"")).await;
    server
        .wait_for("ready", |s| s.state == hearth::readiness::Overall::Ready)
        .await;
    // Three clients that send half a request header and stop.
    let mut stalled = Vec::new();
    for _ in 0..3 {
        let mut s = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        s.write_all(b"GET /api/ready HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            .await
            .unwrap();
        stalled.push(s);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // A fourth is answered 503 with Retry-After at once.
    let mut fourth = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(3), fourth.read_to_string(&mut answer))
        .await
        .expect("no answer over the cap")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.contains("Retry-After: 1") && answer.contains("max_connections"),
        "{answer}"
    );
    // The stalled ones are closed by the header timeout...
    for mut s in stalled {
        let mut rest = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut rest)).await;
        assert!(closed.is_ok(), "a half-sent header kept its connection open");
    }
    // ...which frees their slots.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(reqwest::get(server.url("/livez")).await.unwrap().status(), 200);
}

#[tokio::test]
async fn open_websockets_hold_their_connection_slots() {
    use tokio::io::AsyncReadExt;
    let server = TestServer::start(&ready_config("max_connections = 2")).await;
    server
        .wait_for("ready", |s| s.state == hearth::readiness::Overall::Ready)
        .await;
    // Two upgraded WebSockets fill the cap: after the upgrade hyper's
    // connection is done, but the socket still counts.
    let mut sockets = Vec::new();
    for path in ["/ws/test", "/ws/ready?follow=true"] {
        let (mut socket, _) = tokio_tungstenite::connect_async(server.ws_url(path)).await.unwrap();
        let _greeting = socket.next().await;
        sockets.push(socket);
    }
    let mut third = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(3), third.read_to_string(&mut answer))
        .await
        .expect("no answer over the cap")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    // Closing one frees its slot.
    let mut first = sockets.remove(0);
    first.close(None).await.unwrap();
    while let Some(Ok(_)) = first.next().await {}
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match reqwest::get(server.url("/livez")).await {
            Ok(r) if r.status() == 200 => break,
            _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(50)).await,
            other => panic!("the closed WebSocket's slot was not freed: {other:?}"),
        }
    }
}

/// 800 KB of nested ID3v2 tag headers, uploaded for transcription, once overflowed the stack
/// of the host thread that sniffed the file's format: the process aborted, taking every front
/// and worker with it. It is refused as not audio, and the same process serves on.
#[test]
fn an_upload_of_nested_id3_tags_is_refused_and_the_host_serves_on() {
    let server = ServeProcess::start(&format!("{}{}", ready_config(""), scripted("stt", "")));
    server.wait("ready", |json| json["state"] == "READY");
    let nested = b"ID3\x04\0\0\0\0\0\0".repeat(80_000);
    let form = reqwest::blocking::multipart::Form::new()
        .text("model", "whisper-1")
        .part(
            "file",
            reqwest::blocking::multipart::Part::bytes(nested).file_name("tags.mp3"),
        );
    let response = reqwest::blocking::Client::new()
        .post(format!("http://127.0.0.1:{}/v1/audio/transcriptions", server.port))
        .multipart(form)
        .send()
        .expect("the host answers the upload");
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().expect("a JSON error");
    assert_eq!(status, 415, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("ID3 tags"),
        "{body}"
    );
    assert_eq!(server.status("/livez"), 200, "the host still serves");
    let mut server = server;
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the host process is still running"
    );
}

/// A FIFO, a device or a huge file given as the configuration, the admin
/// token file or the API key file is refused at once, saying what is wrong,
/// not read until the process hangs or runs out of memory.
#[test]
fn a_fifo_or_a_device_as_the_configuration_or_a_secret_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("plugins.toml");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    for config in [fifo.to_str().unwrap(), "/dev/zero"] {
        let started = Instant::now();
        let out = Command::new(hearth_bin())
            .args(["check", "-c", config])
            .env("HEARTH_LOG", "error")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{config}");
        assert!(
            text(&out.stderr).contains("not a regular file"),
            "{config}: {}",
            text(&out.stderr)
        );
        assert!(started.elapsed() < Duration::from_secs(10), "{config}");
    }
    let big = dir.path().join("big.toml");
    std::fs::write(&big, vec![b'#'; 2 << 20]).unwrap();
    let out = Command::new(hearth_bin())
        .args(["check", "-c", big.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("bytes, more than"), "{}", text(&out.stderr));
    for key in ["admin_token_file", "api_key_file"] {
        let scratch = Scratch::new(&ready_config(&format!("{key} = \"/dev/zero\"")));
        let started = Instant::now();
        let out = Command::new(hearth_bin())
            .args([
                "serve",
                "-c",
                scratch.config_path().to_str().unwrap(),
                "--listen",
                "127.0.0.1:0",
            ])
            .env("HEARTH_LOG", "error")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{key}");
        assert!(
            text(&out.stderr).contains("not a regular file"),
            "{key}: {}",
            text(&out.stderr)
        );
        assert!(started.elapsed() < Duration::from_secs(10), "{key}");
    }
}

/// Sends `request` as it is on a fresh connection and returns the status.
fn raw_status(addr: std::net::SocketAddr, request: &[u8]) -> u16 {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.write_all(request).unwrap();
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).unwrap();
    std::str::from_utf8(&head[9..12]).unwrap().parse().unwrap()
}

/// A missing Host (HTTP/1.1) or one that is not text, and an Origin that is
/// not text, are refused like foreign ones; an HTTP/1.0 health checker may
/// still leave Host out.
#[tokio::test]
async fn a_missing_or_binary_host_or_origin_is_refused() {
    let server = TestServer::start(&ready_config("")).await;
    server
        .wait_for("ready", |s| s.state == hearth::readiness::Overall::Ready)
        .await;
    let addr = server.addr;
    let results = tokio::task::spawn_blocking(move || {
        let host = format!("Host: 127.0.0.1:{}\r\n", addr.port());
        [
            raw_status(addr, b"GET /api/ready HTTP/1.1\r\nConnection: close\r\n\r\n"),
            raw_status(addr, b"GET /api/ready HTTP/1.1\r\nHost: \xff\xfe\r\nConnection: close\r\n\r\n"),
            raw_status(addr, b"GET /readyz HTTP/1.0\r\n\r\n"),
            raw_status(
                addr,
                format!("POST /api/warmup HTTP/1.1\r\n{host}Origin: http://evil.example\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            ),
            raw_status(
                addr,
                &[
                    format!("POST /api/warmup HTTP/1.1\r\n{host}Origin: ").as_bytes(),
                    b"\xff\xfe",
                    b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                ]
                .concat(),
            ),
        ]
    })
    .await
    .unwrap();
    assert_eq!(results[0], 400, "HTTP/1.1 without Host");
    assert_eq!(results[1], 403, "a Host that is not text");
    assert_eq!(results[2], 200, "HTTP/1.0 without Host, on a probe");
    assert_eq!(results[3], 403, "a foreign Origin");
    assert_eq!(results[4], 403, "an Origin that is not text");
}

/// A client's value is repeated in an error at most 64 characters long,
/// however long it was.
#[tokio::test]
async fn a_huge_field_is_not_echoed_back() {
    let server = TestServer::start(&ready_config("")).await;
    server
        .wait_for("ready", |s| s.state == hearth::readiness::Overall::Ready)
        .await;
    let model = "m".repeat(1 << 20);
    let response = reqwest::Client::new()
        .post(server.url("/v1/audio/speech"))
        .json(&serde_json::json!({ "model": model, "input": "hi", "voice": "alloy" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let body = response.text().await.unwrap();
    assert!(body.len() < 1000, "{} bytes came back", body.len());
    assert!(body.contains(&format!("`{}…`", "m".repeat(64))), "{body}");
}
