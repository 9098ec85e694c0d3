//! Live reconfiguration: edit `plugins.toml`, reload (HTTP, `hearth
//! reload`, SIGHUP), and each changed engine is swapped beside the running
//! one without downtime; an invalid file or a failing new engine changes
//! nothing that serves; a ready service can be restarted.

use std::{
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use futures_util::{SinkExt, StreamExt};
use hearth::{config::ServiceName, readiness::Overall};
use hearth_tests::{hearth, host_section, llama_chat, scripted, text, ServeProcess, TestServer};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

fn config(tts: &str, extra: &str) -> String {
    format!(
        "{}{}{}{extra}",
        host_section(""),
        scripted("tts", tts),
        scripted("chat", "reply = \"One. Two.\""),
    )
}

async fn post(server: &TestServer, path: &str) -> (u16, Value) {
    let response = reqwest::Client::new().post(server.url(path)).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

async fn ready_json(server: &TestServer) -> Value {
    reqwest::get(server.url("/api/ready"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Runs conversation turns in a loop until `stop`; returns (turns, failed
/// turns, sample rates of the audio in order).
async fn talk(url: String, stop: Arc<AtomicBool>) -> (usize, usize, Vec<u64>) {
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let _hello = socket.next().await;
    let (mut turns, mut failed, mut rates) = (0, 0, Vec::new());
    while !stop.load(Ordering::Relaxed) {
        socket
            .send(Message::Text(json!({"type": "text", "text": "hi"}).to_string().into()))
            .await
            .unwrap();
        loop {
            let Some(Ok(message)) = socket.next().await else {
                panic!("the conversation closed")
            };
            let Message::Text(t) = message else { continue };
            let event: Value = serde_json::from_str(&t).unwrap();
            if event["type"] == "audio" {
                rates.push(event["sample_rate"].as_u64().unwrap());
            }
            if event["type"] == "done" {
                turns += 1;
                if event["ok"] != true {
                    failed += 1;
                }
                break;
            }
        }
    }
    (turns, failed, rates)
}

#[tokio::test]
async fn a_swap_has_no_downtime_and_the_next_turn_uses_the_new_engine() {
    let server = TestServer::start(&config("sample_rate = 8000", "")).await;
    server.wait_for("ready", |s| s.state == Overall::Ready).await;
    let stop = Arc::new(AtomicBool::new(false));
    let talker = tokio::spawn(talk(server.ws_url("/ws/conversation"), Arc::clone(&stop)));
    let not_ready = Arc::new(AtomicUsize::new(0));
    let poller = {
        let (url, stop, not_ready) = (server.url("/readyz"), Arc::clone(&stop), Arc::clone(&not_ready));
        tokio::spawn(async move {
            let mut polls = 0;
            while !stop.load(Ordering::Relaxed) {
                if reqwest::get(&url).await.unwrap().status() != 200 {
                    not_ready.fetch_add(1, Ordering::Relaxed);
                }
                polls += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            polls
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The new engine takes a while to load: the old one serves meanwhile.
    std::fs::write(
        server.config_path(),
        config("sample_rate = 16000\nload_ms = 600\nload_steps = 3", ""),
    )
    .unwrap();
    let mut saw_next = false;
    let reload = {
        let client = reqwest::Client::new();
        let url = server.url("/api/reload");
        tokio::spawn(async move { client.post(url).send().await.unwrap().json::<Value>().await.unwrap() })
    };
    while !reload.is_finished() {
        let json = ready_json(&server).await;
        if json["services"]["tts"]["next"]["status"] == "loading" {
            saw_next = true;
            assert_eq!(json["services"]["tts"]["status"], "ready");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let answer = reload.await.unwrap();
    assert_eq!(answer["ok"], true, "{answer:#}");
    assert!(
        answer["summary"].as_str().unwrap().starts_with(
            "reload #1: tts swap scripted-tts → scripted-tts (config changed), stt unchanged, chat unchanged"
        ),
        "{answer:#}"
    );
    assert_eq!(answer["outcome"]["services"]["tts"]["outcome"], "swapped");
    assert!(saw_next, "the pending engine was never shown");
    tokio::time::sleep(Duration::from_millis(400)).await;
    stop.store(true, Ordering::Relaxed);
    let (turns, failed, rates) = talker.await.unwrap();
    let polls = poller.await.unwrap();
    assert_eq!(failed, 0, "failed turns during the swap");
    assert_eq!(
        not_ready.load(Ordering::Relaxed),
        0,
        "/readyz said 503 during the swap ({polls} polls)"
    );
    assert!(turns >= 3, "only {turns} turns");
    assert_eq!(rates.first(), Some(&8000));
    assert_eq!(rates.last(), Some(&16000), "the new engine serves after the swap");
    let switched = rates.iter().position(|&r| r == 16000).unwrap();
    assert!(rates[switched..].iter().all(|&r| r == 16000), "{rates:?}");
    let json = ready_json(&server).await;
    assert_eq!(json["services"]["tts"]["generation"], 2);
    assert!(json["services"]["tts"].get("next").is_none());
}

#[tokio::test]
async fn an_invalid_file_changes_nothing_and_says_where() {
    let server = TestServer::start(&config("", "")).await;
    server.wait_for("ready", |s| s.state == Overall::Ready).await;
    std::fs::write(
        server.config_path(),
        config("sampel_rate = 1", "").replace("[host]", "[host]\nlisten = 3"),
    )
    .unwrap();
    let (status, body) = post(&server, "/api/reload").await;
    assert_eq!(status, 400, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("plugins.toml:2:10"), "{message}");
    let json = ready_json(&server).await;
    assert_eq!(json["services"]["tts"]["generation"], 1);
    assert_eq!(json["ready"], true);
}

#[tokio::test]
async fn a_new_engine_that_fails_keeps_the_old_one_serving() {
    let server = TestServer::start(&config("sample_rate = 8000", "")).await;
    server.wait_for("ready", |s| s.state == Overall::Ready).await;
    std::fs::write(
        server.config_path(),
        config("fail_load = \"voice file is corrupt\"", ""),
    )
    .unwrap();
    let (status, body) = post(&server, "/api/reload").await;
    assert_eq!(status, 200);
    assert_eq!(body["ok"], false);
    assert_eq!(body["outcome"]["services"]["tts"]["outcome"], "kept_old");
    assert_eq!(body["outcome"]["services"]["tts"]["error"], "voice file is corrupt");
    let json = ready_json(&server).await;
    assert_eq!(json["ready"], true, "READY throughout");
    assert_eq!(json["services"]["tts"]["status"], "ready");
    assert_eq!(json["services"]["tts"]["reload_error"], "voice file is corrupt");
    assert_eq!(json["errors"][0], "tts: voice file is corrupt");
    // The old engine still answers.
    let tts = server.supervisor.tts().unwrap();
    let rate = tokio::task::spawn_blocking(move || {
        let mut rate = 0;
        tts.synthesize("Hi.", |c| {
            rate = c.sample_rate;
            hearth_plugin_api::Flow::Continue
        })
        .map(|()| rate)
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(rate, 8000);
    // A good reload clears the error.
    std::fs::write(server.config_path(), config("sample_rate = 16000", "")).unwrap();
    let (_, body) = post(&server, "/api/reload").await;
    assert_eq!(body["ok"], true, "{body}");
    let json = ready_json(&server).await;
    assert!(json["services"]["tts"].get("reload_error").is_none(), "{json}");
    assert_eq!(json["errors"], json!([]));
}

#[tokio::test]
async fn services_start_and_stop_and_become_optional_live() {
    let server = TestServer::start(&config("", "")).await;
    server.wait_for("ready", |s| s.state == Overall::Ready).await;
    assert!(server.supervisor.stt().is_none());
    // Enable STT.
    std::fs::write(
        server.config_path(),
        config("", &scripted("stt", "transcript = \"hi\"")),
    )
    .unwrap();
    let (_, body) = post(&server, "/api/reload").await;
    assert_eq!(body["outcome"]["services"]["stt"]["outcome"], "started", "{body}");
    assert!(server.supervisor.stt().is_some());
    // Disable it again, and make chat optional.
    let text = config("", "[stt]\nplugin = \"scripted-stt\"\nenabled = false\n").replace(
        "[chat]\nplugin = \"scripted-chat\"\n",
        "[chat]\nplugin = \"scripted-chat\"\nrequired = false\n",
    );
    std::fs::write(server.config_path(), text).unwrap();
    let (_, body) = post(&server, "/api/reload").await;
    assert_eq!(body["outcome"]["services"]["stt"]["outcome"], "stopped", "{body}");
    assert!(
        body["summary"]
            .as_str()
            .unwrap()
            .contains("chat unchanged (now optional)"),
        "{body}"
    );
    let json = ready_json(&server).await;
    assert_eq!(json["services"]["stt"]["status"], "not_installed");
    assert_eq!(json["services"]["chat"]["required"], false);
    assert!(server.supervisor.stt().is_none());
}

#[tokio::test]
async fn restart_swaps_in_a_fresh_engine_and_reloads_are_serialized() {
    let server = TestServer::start(&config("", "")).await;
    let s = server.wait_for("ready", |s| s.state == Overall::Ready).await;
    let pid = s.service(ServiceName::Chat).unwrap().worker_pid.unwrap();
    std::fs::write(server.config_path(), config("load_ms = 800", "")).unwrap();
    let (status, _) = post(&server, "/api/reload?wait=false").await;
    assert_eq!(status, 202);
    let (status, body) = post(&server, "/api/reload").await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("reload #1: tts swap"),
        "{body}"
    );
    let (status, _) = post(&server, "/api/services/chat/restart").await;
    assert_eq!(status, 409, "a restart waits for the reload");
    server
        .wait_for("tts swapped", |s| s.service(ServiceName::Tts).unwrap().generation == 2)
        .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, body) = post(&server, "/api/services/chat/restart").await;
    assert_eq!(status, 202, "{body}");
    let s = server
        .wait_for("chat restarted", |s| {
            s.service(ServiceName::Chat).unwrap().generation == 2
        })
        .await;
    let record = s.service(ServiceName::Chat).unwrap();
    assert_ne!(record.worker_pid, Some(pid), "a fresh worker");
    assert_eq!(s.state, Overall::Ready);
}

#[test]
fn hearth_reload_and_sighup_reach_a_running_server() {
    let text = |rate: u32| config(&format!("sample_rate = {rate}"), "");
    let served = ServeProcess::start(&text(8000));
    let path = served.scratch.config_path();
    let listen = format!("127.0.0.1:{}", served.port);
    wait_generation(&served, 1);
    // A reload is refused (409) while any service still starts: wait for all.
    served.wait("READY", |json| json["state"] == "READY");
    std::fs::write(&path, text(16000)).unwrap();
    let out = hearth(&["reload", "-c", path.to_str().unwrap(), "--listen", &listen]);
    assert!(out.status.success(), "{}{}", text_of(&out.stdout), text_of(&out.stderr));
    let stdout = text_of(&out.stdout);
    assert!(stdout.starts_with("reload #1: tts swap"), "{stdout}");
    assert!(stdout.contains("tts: swapped"), "{stdout}");
    wait_generation(&served, 2);
    // SIGHUP does the same.
    std::fs::write(&path, text(22050)).unwrap();
    // SAFETY: kill(2) on the child this test started and has not reaped.
    unsafe { libc::kill(served.pid() as i32, libc::SIGHUP) };
    wait_generation(&served, 3);
    // An invalid file: exit 2 with the place, before asking the server.
    std::fs::write(&path, "[host\n").unwrap();
    let out = hearth(&["reload", "-c", path.to_str().unwrap(), "--listen", &listen]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text_of(&out.stderr).contains("plugins.toml:1:"),
        "{}",
        text_of(&out.stderr)
    );
}

/// Waits (at most 20 s) until the TTS engine of `served` is the `want`th.
fn wait_generation(served: &ServeProcess, want: u64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = served
            .get("/api/ready")
            .and_then(|j| j["services"]["tts"]["generation"].as_u64());
        if now == Some(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "generation never reached {want} (at {now:?})"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn text_of(bytes: &[u8]) -> String {
    text(bytes)
}

#[test]
fn with_watch_an_editor_style_rename_over_the_file_reloads() {
    let text = |rate: u32| config(&format!("sample_rate = {rate}"), "").replace("[host]", "[host]\nwatch = true");
    let served = ServeProcess::start(&text(8000));
    let path = served.scratch.config_path();
    wait_generation(&served, 1);
    // A reload is refused (409) while any service still starts: wait for all.
    served.wait("READY", |json| json["state"] == "READY");
    // As vim or an IDE saves: a new file, renamed over the old one.
    let tmp = served.scratch.dir.path().join(".plugins.toml.swp");
    std::fs::write(&tmp, text(16000)).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    wait_generation(&served, 2);
    // A write in place is seen too, and an unrelated file is not.
    std::fs::write(served.scratch.dir.path().join("notes.txt"), "x").unwrap();
    std::fs::write(&path, text(22050)).unwrap();
    wait_generation(&served, 3);
    std::thread::sleep(Duration::from_millis(600));
    let generation = served
        .get("/api/ready")
        .and_then(|j| j["services"]["tts"]["generation"].as_u64());
    assert_eq!(generation, Some(3), "one reload per save");
}

/// Audio samples the TTS engine makes for `text`.
async fn samples_for(server: &TestServer, text: &'static str) -> usize {
    let tts = server.supervisor.tts().expect("tts ready");
    tokio::task::spawn_blocking(move || {
        let mut n = 0;
        tts.synthesize(text, |c| {
            n += c.samples.len();
            hearth_plugin_api::Flow::Continue
        })
        .map(|()| n)
    })
    .await
    .unwrap()
    .unwrap()
}

#[tokio::test]
async fn swapping_the_real_piper_voice_keeps_talking_and_changes_the_speech() {
    let root = hearth_tests::repo_root();
    let piper = |extra: &str| {
        format!(
            "{}[tts]\nplugin = \"tts-piper\"\n[tts.config]\nvoice = \"{root}/models/piper/en_US-joe-medium.onnx\"\n\
             runtime = \"{root}/models/onnxruntime/libonnxruntime.so.1.32.0\"\n{extra}\n{}",
            host_section(""),
            scripted("chat", "reply = \"One. Two.\""),
            root = root.display()
        )
    };
    let server = TestServer::start(&piper("")).await;
    server.wait_for("ready", |s| s.state == Overall::Ready).await;
    let before = samples_for(&server, "Hello there, how are you?").await;
    let stop = Arc::new(AtomicBool::new(false));
    let talker = tokio::spawn(talk(server.ws_url("/ws/conversation"), Arc::clone(&stop)));
    tokio::time::sleep(Duration::from_millis(300)).await;
    std::fs::write(server.config_path(), piper("length_scale = 1.6")).unwrap();
    let (status, body) = post(&server, "/api/reload").await;
    assert_eq!(status, 200);
    assert_eq!(body["outcome"]["services"]["tts"]["outcome"], "swapped", "{body}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let (turns, failed, _) = talker.await.unwrap();
    assert_eq!(failed, 0, "failed turns during the swap");
    assert!(turns >= 2, "{turns} turns");
    let after = samples_for(&server, "Hello there, how are you?").await;
    // A length scale of 1.6 speaks the same words about 1.6 times as long.
    assert!(
        after as f64 > before as f64 * 1.3,
        "{before} samples before, {after} after"
    );
}

#[tokio::test]
async fn a_dead_chat_server_shows_on_the_stream_and_a_restart_brings_it_back() {
    let port = hearth_tests::free_port();
    let config = format!("{}{}{}", host_section(""), scripted("tts", ""), llama_chat(port));
    let server = TestServer::start(&config).await;
    server.wait_for("ready", |s| s.state == Overall::Ready).await;
    let _probes = server.supervisor.spawn_health_probes(Duration::from_millis(200));
    let stream = reqwest::get(server.url("/api/ready/stream?follow=true")).await.unwrap();
    // Kill the server the plugin started.
    let ours = format!("--port\0{port}\0");
    let pid: i32 = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .find_map(|e| {
            let cmdline = String::from_utf8_lossy(&std::fs::read(e.path().join("cmdline")).ok()?).into_owned();
            (cmdline.contains("llama-server") && cmdline.contains(&ours))
                .then(|| e.file_name().to_string_lossy().parse().ok())
                .flatten()
        })
        .expect("the launched llama-server");
    // SAFETY: kill(2) on the llama-server this test's host launched.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    // The stream carries the health error as an event.
    let mut body = stream.bytes_stream();
    let mut buffer = String::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let complaint = loop {
        let chunk = tokio::time::timeout_at(deadline, body.next())
            .await
            .expect("no health_error event within 15 s")
            .unwrap()
            .unwrap();
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        let found = buffer
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .find_map(|e| e["services"]["chat"]["health_error"].as_str().map(str::to_owned));
        if let Some(found) = found {
            break found;
        }
    };
    assert!(!complaint.is_empty());
    assert_eq!(
        ready_json(&server).await["services"]["chat"]["status"],
        "ready",
        "still ready, with a complaint"
    );
    let (status, _) = post(&server, "/api/services/chat/restart").await;
    assert_eq!(status, 202);
    let s = server
        .wait_for("chat restarted and healthy", |s| {
            let chat = s.service(ServiceName::Chat).unwrap();
            chat.generation == 2 && chat.health_error.is_none()
        })
        .await;
    assert_eq!(s.state, Overall::Ready);
    let chat = server.supervisor.chat().unwrap();
    let reply = tokio::task::spawn_blocking(move || {
        let mut text = String::new();
        chat.chat(&[hearth_plugin_api::client::Message::user("Name a colour.")], |t| {
            text.push_str(t);
            hearth_plugin_api::Flow::Continue
        })
        .map(|_| text)
    })
    .await
    .unwrap()
    .unwrap();
    assert!(!reply.trim().is_empty(), "the restarted engine answers");
}

/// `hearth reload` against a server with an admin token sends it: from the
/// configuration's `admin_token_file`, from `--token-file`, or from
/// `HEARTH_ADMIN_TOKEN`; without one it is refused with what to do.
#[test]
fn hearth_reload_sends_the_admin_token() {
    let secrets = tempfile::tempdir().unwrap();
    let token = secrets.path().join("admin-token");
    std::fs::write(&token, "0123456789abcdef0123456789abcdef\n").unwrap();
    let with_token = |rate: u32| {
        format!(
            "{}{}{}",
            host_section(&format!("admin_token_file = {:?}", token.display().to_string())),
            scripted("tts", &format!("sample_rate = {rate}")),
            scripted("chat", "reply = \"One. Two.\""),
        )
    };
    let served = ServeProcess::start(&with_token(8000));
    let path = served.scratch.config_path();
    let listen = format!("127.0.0.1:{}", served.port);
    wait_generation(&served, 1);
    // A reload is refused (409) while any service still starts: wait for all.
    served.wait("READY", |json| json["state"] == "READY");
    // The configuration's own token file: the server's source, read the same way.
    std::fs::write(&path, with_token(16000)).unwrap();
    let out = hearth(&["reload", "-c", path.to_str().unwrap(), "--listen", &listen]);
    assert!(out.status.success(), "{}{}", text_of(&out.stdout), text_of(&out.stderr));
    assert!(
        text_of(&out.stdout).contains("tts: swapped"),
        "{}",
        text_of(&out.stdout)
    );
    wait_generation(&served, 2);
    // A configuration that names no token (an operator's copy, say): refused, saying how to give one.
    let bare = secrets.path().join("bare.toml");
    std::fs::write(&bare, config("sample_rate = 16000", "")).unwrap();
    std::fs::write(&path, with_token(22050)).unwrap();
    let out = hearth(&["reload", "-c", bare.to_str().unwrap(), "--listen", &listen]);
    assert_eq!(out.status.code(), Some(1), "{}", text_of(&out.stdout));
    let stdout = text_of(&out.stdout);
    assert!(stdout.contains("reload refused (401)"), "{stdout}");
    assert!(
        stdout.contains("--token-file") && stdout.contains("HEARTH_ADMIN_TOKEN"),
        "{stdout}"
    );
    // --token-file gives it.
    let out = hearth(&[
        "reload",
        "-c",
        bare.to_str().unwrap(),
        "--listen",
        &listen,
        "--token-file",
        token.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}{}", text_of(&out.stdout), text_of(&out.stderr));
    wait_generation(&served, 3);
    // So does HEARTH_ADMIN_TOKEN; a wrong one is refused.
    std::fs::write(&path, with_token(8000)).unwrap();
    let with_env = |value: &str| {
        std::process::Command::new(hearth_tests::hearth_bin())
            .args(["reload", "-c", bare.to_str().unwrap(), "--listen", &listen])
            .env("HEARTH_ADMIN_TOKEN", value)
            .output()
            .unwrap()
    };
    let out = with_env("not-the-token-but-long-enough");
    assert_eq!(out.status.code(), Some(1), "{}", text_of(&out.stdout));
    assert!(text_of(&out.stdout).contains("reload refused (401)"));
    let out = with_env("0123456789abcdef0123456789abcdef");
    assert!(out.status.success(), "{}{}", text_of(&out.stdout), text_of(&out.stderr));
    wait_generation(&served, 4);
}
