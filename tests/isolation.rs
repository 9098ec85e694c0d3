//! Crash isolation: engines in worker processes. A plugin that aborts,
//! segfaults, exits, overflows its stack, runs out of memory or hangs — in
//! load, warmup, health or mid-request — fails its own service with a
//! reason naming what happened, while the host and the other services go
//! on; a retry starts a fresh worker; nothing is left behind, even when the
//! host is SIGKILLed. Driven by the scripted fixture's `crash` modes.

use std::{
    process::Command,
    time::{Duration, Instant},
};

use hearth::{config::ServiceName, readiness::Phase};
use hearth_plugin_api::Flow;
use hearth_tests::{
    hearth, hearth_bin, host_section, llama_chat, scripted, scripted_with, text, Scratch, ServeProcess, TestServer,
};

/// The failure message of `service`, waiting (at most 30 s) for it to fail.
async fn failure(server: &TestServer, service: ServiceName) -> String {
    let s = server
        .wait_for(&format!("{service} failed"), |s| {
            matches!(s.service(service).map(|r| &r.phase), Some(Phase::Failed { .. }))
        })
        .await;
    match &s.service(service).unwrap().phase {
        Phase::Failed { error } => error.clone(),
        _ => unreachable!(),
    }
}

async fn livez(server: &TestServer) -> u16 {
    reqwest::get(server.url("/livez")).await.unwrap().status().as_u16()
}

/// `(crash, what the reason must say)` for every way of dying.
const FAULTS: [(&str, &str); 4] = [
    ("abort", "died: signal 6 (SIGABRT)"),
    ("segv", "died: signal 11 (SIGSEGV)"),
    ("exit", "died: exit code 3"),
    ("stack_overflow", "died: signal"),
];

#[tokio::test]
async fn a_crash_in_load_or_warmup_fails_only_its_service() {
    for (crash, said) in FAULTS {
        for place in ["load", "warmup"] {
            let config = format!(
                "{}{}{}",
                host_section(""),
                scripted("tts", &format!("crash = \"{crash}\"\ncrash_in = \"{place}\"")),
                scripted("chat", ""),
            );
            let server = TestServer::start(&config).await;
            let error = failure(&server, ServiceName::Tts).await;
            assert!(error.contains("worker for tts (scripted-tts) "), "{error}");
            assert!(error.contains(said), "{crash} in {place}: {error}");
            assert!(
                error.contains(&format!("during {place}")),
                "{crash} in {place}: {error}"
            );
            assert!(error.contains("last stderr:"), "{error}");
            let s = server
                .wait_for("chat ready", |s| {
                    s.service(ServiceName::Chat).unwrap().phase == Phase::Ready
                })
                .await;
            assert_eq!(s.service(ServiceName::Chat).unwrap().phase, Phase::Ready);
            assert_eq!(livez(&server).await, 200);
        }
    }
}

#[tokio::test]
async fn running_out_of_memory_names_the_limit() {
    let config = format!(
        "{}{}{}",
        host_section(""),
        scripted_with("tts", "memory_limit = \"512MiB\"", "crash = \"oom\""),
        scripted("chat", ""),
    );
    let server = TestServer::start(&config).await;
    let error = failure(&server, ServiceName::Tts).await;
    assert!(error.contains("died: signal 6 (SIGABRT) during load"), "{error}");
    assert!(
        error.contains("out of memory: it exceeded its memory_limit of 512 MiB"),
        "{error}"
    );
    assert_eq!(livez(&server).await, 200);
}

#[tokio::test]
async fn a_crash_mid_request_fails_the_request_at_once_and_a_retry_starts_a_fresh_worker() {
    for (crash, said) in FAULTS {
        let config = format!(
            "{}{}{}",
            host_section(""),
            scripted("tts", &format!("crash = \"{crash}\"\ncrash_in = \"operation\"")),
            scripted("chat", ""),
        );
        let server = TestServer::start(&config).await;
        let s = server
            .wait_for("ready", |s| s.state == hearth::readiness::Overall::Ready)
            .await;
        let first_pid = s.service(ServiceName::Tts).unwrap().worker_pid.expect("a worker pid");
        let tts = server.supervisor.tts().expect("tts ready");
        let started = Instant::now();
        let mut chunks = 0;
        let result = tokio::task::spawn_blocking(move || {
            tts.synthesize("One. Two. Three.", |_| {
                chunks += 1;
                Flow::Continue
            })
            .map(|()| chunks)
        })
        .await
        .unwrap();
        let error = result.unwrap_err();
        assert!(
            error.contains(said) && error.contains("during synthesize"),
            "{crash}: {error}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{crash}: took {:?}",
            started.elapsed()
        );
        // The service failed with the same reason; the rest goes on.
        assert_eq!(failure(&server, ServiceName::Tts).await, error);
        assert_eq!(livez(&server).await, 200);
        assert!(server.supervisor.chat().is_some(), "chat still ready");
        // A retry starts a fresh worker, which serves until its own crash.
        server.supervisor.retry(ServiceName::Tts).expect("retry accepted");
        let s = server
            .wait_for("tts ready again", |s| {
                s.service(ServiceName::Tts).unwrap().phase == Phase::Ready
            })
            .await;
        let record = s.service(ServiceName::Tts).unwrap();
        assert_ne!(record.worker_pid, Some(first_pid));
        assert_eq!(record.workers_started, 2);
        let json = hearth_tests::ready_body(&s);
        assert_eq!(json["services"]["tts"]["isolation"], "process");
        assert_eq!(json["services"]["tts"]["restarts"], 1);
        assert_eq!(json["services"]["tts"]["pid"], record.worker_pid.unwrap());
    }
}

#[tokio::test]
async fn a_crash_in_a_health_check_fails_the_service_and_an_optional_one_keeps_ready() {
    let config = format!(
        "{}{}{}{}",
        host_section(""),
        scripted("tts", ""),
        scripted_with("stt", "required = false", "crash = \"segv\"\ncrash_in = \"health\""),
        scripted("chat", ""),
    );
    let server = TestServer::start(&config).await;
    server
        .wait_for("ready", |s| s.state == hearth::readiness::Overall::Ready)
        .await;
    let _probes = server.supervisor.spawn_health_probes(Duration::from_millis(100));
    let error = failure(&server, ServiceName::Stt).await;
    assert!(error.contains("died: signal 11 (SIGSEGV) during health"), "{error}");
    let s = server.readiness().current();
    assert_eq!(s.state, hearth::readiness::Overall::Ready, "stt is optional");
    assert_eq!(livez(&server).await, 200);
}

#[tokio::test]
async fn a_request_that_outlives_request_timeout_kills_its_worker() {
    let config = format!(
        "{}{}{}",
        host_section(""),
        scripted_with(
            "chat",
            "request_timeout = \"1s\"",
            "crash = \"hang\"\ncrash_in = \"operation\""
        ),
        scripted("tts", ""),
    );
    let server = TestServer::start(&config).await;
    server
        .wait_for("ready", |s| s.state == hearth::readiness::Overall::Ready)
        .await;
    let chat = server.supervisor.chat().expect("chat ready");
    let started = Instant::now();
    let error = tokio::task::spawn_blocking(move || chat.chat(&[], |_| Flow::Continue))
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        error.contains("worker for chat (scripted-chat) killed: chat timed out after 1s"),
        "{error}"
    );
    assert!(started.elapsed() < Duration::from_secs(8), "{:?}", started.elapsed());
    assert_eq!(failure(&server, ServiceName::Chat).await, error);
}

#[tokio::test]
async fn stop_from_the_sink_reaches_the_plugin_across_the_boundary() {
    let config = format!(
        "{}{}{}",
        host_section(""),
        scripted("tts", ""),
        scripted("chat", "token_ms = 20")
    );
    let server = TestServer::start(&config).await;
    server
        .wait_for("ready", |s| s.state == hearth::readiness::Overall::Ready)
        .await;
    let chat = server.supervisor.chat().unwrap();
    let (pieces, outcome) = tokio::task::spawn_blocking(move || {
        let mut pieces = 0;
        let outcome = chat
            .chat(&[hearth_plugin_api::client::Message::user("a b c d e f g h")], |_| {
                pieces += 1;
                if pieces == 2 {
                    Flow::Stop
                } else {
                    Flow::Continue
                }
            })
            .unwrap();
        (pieces, outcome)
    })
    .await
    .unwrap();
    assert_eq!(pieces, 2, "no piece after stop");
    assert_eq!(outcome.finish_reason, "cancelled");
    let tts = server.supervisor.tts().unwrap();
    let chunks = tokio::task::spawn_blocking(move || {
        let mut chunks = Vec::new();
        tts.synthesize("One. Two. Three.", |c| {
            chunks.push(c.text);
            Flow::Stop
        })
        .map(|()| chunks)
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(chunks, vec!["One."]);
}

/// Threads of process `pid`.
fn threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Live (not zombie) processes whose parent is `pid`.
fn children(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
        if fields.first() != Some(&"Z") && fields.get(1) == Some(&pid.to_string().as_str()) {
            found.push(child);
        }
    }
    found
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| !stat.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'))
        .unwrap_or(false)
}

#[test]
fn retries_of_a_hanging_service_leave_no_thread_or_process_behind() {
    let config = format!(
        "{}{}{}",
        host_section("load_timeout = \"1s\"\nretry_cooldown = \"100ms\""),
        scripted("tts", ""),
        scripted("chat", "hang_load = true"),
    );
    let served = ServeProcess::start(&config);
    served.wait("chat failed", |j| j["services"]["chat"]["status"] == "failed");
    served.wait("tts ready", |j| j["services"]["tts"]["status"] == "ready");
    let baseline_threads = threads(served.pid());
    let baseline_children = children(served.pid()).len();
    assert_eq!(baseline_children, 1, "one worker (tts) once chat's was killed");
    for attempt in 1..=4 {
        assert_eq!(served.post("/api/services/chat/retry"), 202, "retry {attempt}");
        let json = served.wait("chat failed again", |j| {
            j["services"]["chat"]["status"] == "failed" && j["services"]["chat"]["restarts"] == attempt
        });
        let error = json["services"]["chat"]["error"].as_str().unwrap();
        assert!(error.contains("killed: load timed out after 1s"), "{error}");
    }
    // Give the reaper threads a moment to end, then count.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        children(served.pid()).len(),
        baseline_children,
        "a worker was left behind"
    );
    let now = threads(served.pid());
    assert!(
        now <= baseline_threads + 1,
        "threads grew from {baseline_threads} to {now} over 4 retries"
    );
}

#[test]
fn workers_die_with_a_sigkilled_host() {
    let config = format!(
        "{}{}{}{}",
        host_section(""),
        scripted("tts", ""),
        scripted("stt", "transcript = \"x\""),
        scripted("chat", ""),
    );
    let mut served = ServeProcess::start(&config);
    let json = served.wait("ready", |j| {
        j["ready"] == true && j["services"]["stt"]["status"] == "ready"
    });
    let workers: Vec<u32> = ["tts", "stt", "chat"]
        .iter()
        .map(|s| json["services"][s]["pid"].as_u64().expect("a pid") as u32)
        .collect();
    assert!(workers.iter().all(|&pid| alive(pid)));
    assert_eq!(children(served.pid()).len(), 3);
    served.child.kill().unwrap(); // SIGKILL: no chance to clean up.
    served.child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while workers.iter().any(|&pid| alive(pid)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let survivors: Vec<_> = workers.iter().filter(|&&pid| alive(pid)).collect();
    assert!(survivors.is_empty(), "workers outlived the host: {survivors:?}");
}

#[test]
fn a_library_whose_constructor_crashes_is_reported_by_check_inspect_and_serve() {
    let scratch = Scratch::new(&format!(
        "{}{}{}",
        host_section(""),
        scripted("tts", ""),
        scripted("chat", "")
    ));
    let run = |args: &[&str]| {
        Command::new(hearth_bin())
            .args(args)
            .env("HEARTH_LOG", "error")
            .env("HEARTH_SCRIPTED_CONSTRUCTOR_CRASH", "abort")
            .output()
            .unwrap()
    };
    let out = run(&["check", "-c", scratch.config_path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("tts: PROBLEM: worker for tts (hearth_scripted_tts) died: signal 6 (SIGABRT)"),
        "{stdout}"
    );
    let out = run(&[
        "plugin",
        "inspect",
        hearth_tests::plugin("scripted-chat").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("died: signal 6 (SIGABRT) while opening the library"),
        "{}",
        text(&out.stdout)
    );
    // Without the fault, the same file is fine.
    let out = hearth(&[
        "plugin",
        "inspect",
        hearth_tests::plugin("scripted-chat").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stdout));
    // `hearth serve`: every worker dies opening its library; the host lives
    // and says why.
    let served = ServeProcess::start_with_env(
        &format!("{}{}{}", host_section(""), scripted("tts", ""), scripted("chat", "")),
        &[("HEARTH_SCRIPTED_CONSTRUCTOR_CRASH", "abort")],
    );
    let json = served.wait("tts failed", |j| j["services"]["tts"]["status"] == "failed");
    let error = json["services"]["tts"]["error"].as_str().unwrap();
    assert!(
        error.contains("died: signal 6 (SIGABRT) while opening the library"),
        "{error}"
    );
    assert_eq!(json["state"], "ERROR");
    assert_eq!(served.status("/livez"), 200, "the host lives");
}

/// Live descendants of `pid` (children, grandchildren, ...).
fn descendants(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    let mut frontier = vec![pid];
    while let Some(parent) = frontier.pop() {
        for child in children(parent) {
            found.push(child);
            frontier.push(child);
        }
    }
    found
}

#[test]
fn a_workers_own_children_die_with_a_sigkilled_host() {
    let port = hearth_tests::free_port();
    // The chat worker starts llama-server itself (the default setup).
    let config = format!("{}{}{}", host_section(""), scripted("tts", ""), llama_chat(port));
    let mut served = ServeProcess::start(&config);
    served.wait("ready", |j| j["ready"] == true);
    let family = descendants(served.pid());
    // Two workers and llama-server under the chat worker.
    assert!(family.len() >= 3, "expected workers and llama-server, found {family:?}");
    served.child.kill().unwrap();
    served.child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while family.iter().any(|&pid| alive(pid)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let survivors: Vec<_> = family.iter().filter(|&&pid| alive(pid)).collect();
    assert!(survivors.is_empty(), "outlived the host: {survivors:?}");
    // No llama-server of ours anywhere (not only among the descendants we
    // saw: a re-parented one would count too).
    let ours = format!("--port\0{port}\0");
    let left: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).into_owned())
        .filter(|c| c.contains("llama-server") && c.contains(&ours))
        .collect();
    assert!(left.is_empty(), "llama-server outlived the host: {left:?}");
}
