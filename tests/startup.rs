//! Loading and warming real plugins in parallel, and every failure path:
//! panics, hangs, timeouts, optional and required failures, missing files,
//! retries. Driven by the scripted test engine.

use std::time::Duration;

use hearth::{
    config::ServiceName,
    readiness::{Overall, Phase, Snapshot},
    services::Supervisor,
};
use hearth_tests::{host_section, scripted, scripted_with, wait_for, Scratch};

fn supervisor(config: &str) -> (Supervisor, Scratch) {
    let scratch = Scratch::new(config);
    let (supervisor, _rx) = Supervisor::new(scratch.config());
    (supervisor, scratch)
}

fn phase(s: &Snapshot, name: ServiceName) -> &Phase {
    &s.service(name).expect("tracked").phase
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_slow_plugins_load_in_parallel() {
    let config = format!(
        "{}{}{}{}",
        host_section(""),
        scripted("tts", "load_ms = 1000"),
        scripted("stt", "load_ms = 1000"),
        scripted("chat", "load_ms = 1000"),
    );
    let (supervisor, _scratch) = supervisor(&config);
    supervisor.start().await;
    let s = supervisor.subscribe().current();
    assert_eq!(s.state, Overall::Ready, "{}", hearth_tests::ready_body(&s));
    // The load intervals, as the tracker recorded them, overlap: each one
    // started before any of them ended.
    let configured = [ServiceName::Tts, ServiceName::Stt, ServiceName::Chat];
    let timelines: Vec<_> = configured
        .iter()
        .map(|n| s.service(*n).unwrap().timeline.clone())
        .collect();
    let last_start = timelines.iter().map(|t| t.load_start_ms.unwrap()).max().unwrap();
    let first_end = timelines.iter().map(|t| t.load_end_ms.unwrap()).min().unwrap();
    assert!(last_start < first_end, "loads did not overlap: {timelines:?}");
    for name in configured {
        let r = s.service(name).unwrap();
        assert!(r.load_time_ms.unwrap() >= 1000, "{r:?}");
    }
}

#[tokio::test]
async fn a_panic_in_load_fails_that_service_only() {
    let config = format!(
        "{}{}{}",
        host_section(""),
        scripted("tts", "panic_load = \"voice exploded\""),
        scripted("chat", "load_ms = 10"),
    );
    let (supervisor, _scratch) = supervisor(&config);
    supervisor.start().await;
    let s = supervisor.subscribe().current();
    assert_eq!(
        phase(&s, ServiceName::Tts),
        &Phase::Failed {
            error: "panicked: voice exploded".into()
        }
    );
    assert_eq!(phase(&s, ServiceName::Chat), &Phase::Ready);
    // tts is required, so the whole backend is in ERROR, and says why.
    assert_eq!(s.state, Overall::Error);
    assert!(
        s.errors.iter().any(|e| e == "tts: panicked: voice exploded"),
        "{:?}",
        s.errors
    );
}

#[tokio::test]
async fn a_hang_in_warmup_times_out_and_the_host_goes_on() {
    // In the host process: the thread is abandoned (tests/isolation.rs
    // has the worker, which is killed instead).
    let config = format!(
        "{}{}{}",
        host_section("warmup_timeout = \"1s\""),
        scripted_with("tts", "isolation = \"in-process\"", "hang_warmup = true"),
        scripted("chat", ""),
    );
    let (supervisor, _scratch) = supervisor(&config);
    supervisor.start().await;
    let s = supervisor.subscribe().current();
    assert_eq!(
        phase(&s, ServiceName::Tts),
        &Phase::Failed {
            error: "warmup timed out after 1s".into()
        }
    );
    assert_eq!(phase(&s, ServiceName::Chat), &Phase::Ready);
    // The abandoned thread is counted and shown; while it runs, another
    // call that could pile up threads is refused with the reason.
    let s = supervisor.subscribe().current();
    assert_eq!(s.service(ServiceName::Tts).unwrap().abandoned_calls, 1);
    let json = hearth_tests::ready_body(&s);
    assert_eq!(json["services"]["tts"]["abandoned_calls"], 1);
    assert_eq!(json["services"]["tts"]["isolation"], "in-process");
    let refused = supervisor.rewarm().await.unwrap_err().to_string();
    assert!(
        refused.contains("tts: 1 earlier call(s) still run inside the host"),
        "{refused}"
    );
    let refused = supervisor.retry(ServiceName::Tts).unwrap_err().to_string();
    assert!(refused.contains("isolation = \"process\""), "{refused}");
}

#[tokio::test]
async fn a_hang_in_load_times_out() {
    let config = format!(
        "{}{}{}",
        host_section("load_timeout = \"1s\""),
        scripted("tts", ""),
        scripted_with("chat", "isolation = \"in-process\"", "hang_load = true"),
    );
    let (supervisor, _scratch) = supervisor(&config);
    supervisor.start().await;
    let s = supervisor.subscribe().current();
    assert_eq!(
        phase(&s, ServiceName::Chat),
        &Phase::Failed {
            error: "load timed out after 1s".into()
        }
    );
}

#[tokio::test]
async fn an_optional_failure_still_reaches_ready_with_the_error_listed() {
    let config = format!(
        "{}{}{}{}",
        host_section(""),
        scripted("tts", ""),
        scripted("stt", "fail_load = \"no microphone model\""),
        scripted("chat", ""),
    );
    let (supervisor, _scratch) = supervisor(&config);
    supervisor.start().await;
    let s = supervisor.subscribe().current();
    assert_eq!(s.state, Overall::Ready);
    assert_eq!(s.errors, vec!["stt: no microphone model".to_owned()]);
    assert!(s.startup_time_ms.is_some());
}

#[tokio::test]
async fn a_required_failure_is_error() {
    let config = format!(
        "{}{}{}",
        host_section(""),
        scripted("tts", ""),
        scripted("chat", "fail_warmup = \"model too big\""),
    );
    let (supervisor, _scratch) = supervisor(&config);
    supervisor.start().await;
    let s = supervisor.subscribe().current();
    assert_eq!(s.state, Overall::Error);
    assert_eq!(
        phase(&s, ServiceName::Chat),
        &Phase::Failed {
            error: "warmup failed: model too big".into()
        }
    );
    assert_eq!(s.startup_time_ms, None);
}

#[tokio::test]
async fn a_missing_plugin_file_is_not_installed() {
    let config = format!(
        "{}[tts]\nplugin = \"no-such-plugin\"\n{}",
        host_section(""),
        scripted("chat", "")
    );
    let (supervisor, _scratch) = supervisor(&config);
    supervisor.start().await;
    let s = supervisor.subscribe().current();
    match phase(&s, ServiceName::Tts) {
        Phase::NotInstalled { reason } => {
            assert!(reason.contains("libhearth_no_such_plugin.so not found"), "{reason}");
            assert!(reason.contains("plugins.toml:"), "{reason}");
        }
        other => panic!("expected not_installed, got {other:?}"),
    }
    assert_eq!(s.state, Overall::Error);
    assert!(!s.healthy);
}

#[tokio::test]
async fn a_plugin_of_the_wrong_kind_is_refused() {
    let config = format!(
        "{}[tts]\nplugin = \"scripted-chat\"\n{}",
        host_section(""),
        scripted("chat", "")
    );
    let (supervisor, _scratch) = supervisor(&config);
    supervisor.start().await;
    let s = supervisor.subscribe().current();
    match phase(&s, ServiceName::Tts) {
        Phase::NotInstalled { reason } => assert!(
            reason.contains("is a chat engine, but [tts] needs a tts engine"),
            "{reason}"
        ),
        other => panic!("expected not_installed, got {other:?}"),
    }
}

#[tokio::test]
async fn a_wrong_abi_plugin_is_refused_with_both_versions() {
    let path = hearth_tests::library("libhearth_fixture_abi_v2.so");
    let config = format!(
        "{}[tts]\nplugin = {:?}\n{}",
        host_section(""),
        path.display().to_string(),
        scripted("chat", "")
    );
    let (supervisor, _scratch) = supervisor(&config);
    supervisor.start().await;
    let s = supervisor.subscribe().current();
    match phase(&s, ServiceName::Tts) {
        Phase::NotInstalled { reason } => {
            let expected = format!("host ABI {}, plugin ABI 2.0.0", hearth_plugin_api::ABI_VERSION);
            assert!(reason.contains(&expected), "{reason}");
        }
        other => panic!("expected not_installed, got {other:?}"),
    }
}

#[tokio::test]
async fn disabled_and_absent_services_are_not_installed_without_errors() {
    let config = format!(
        "{}{}{}[stt]\nplugin = \"scripted-stt\"\nenabled = false\n",
        host_section(""),
        scripted("tts", ""),
        scripted("chat", "")
    );
    let (supervisor, _scratch) = supervisor(&config);
    supervisor.start().await;
    let s = supervisor.subscribe().current();
    assert_eq!(s.state, Overall::Ready);
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    assert_eq!(phase(&s, ServiceName::Stt).status().as_str(), "not_installed");
}

#[tokio::test]
async fn retry_of_a_failed_service_brings_it_back() {
    let config = format!(
        "{}{}{}",
        host_section(""),
        scripted("tts", "name = \"retry-startup\"\nfail_loads = 1"),
        scripted("chat", ""),
    );
    let (supervisor, _scratch) = supervisor(&config);
    supervisor.start().await;
    let s = supervisor.subscribe().current();
    assert_eq!(s.state, Overall::Error);
    // Retrying a service that is not failed is refused.
    let refused = supervisor.retry(ServiceName::Chat).unwrap_err().to_string();
    assert!(refused.contains("chat is ready, not failed"), "{refused}");
    supervisor.retry(ServiceName::Tts).expect("retry accepted");
    let s = wait_for(supervisor.subscribe(), "READY after retry", |s| {
        s.state == Overall::Ready
    })
    .await;
    assert_eq!(phase(&s, ServiceName::Tts), &Phase::Ready);
    assert!(s.errors.is_empty());
}

#[tokio::test]
async fn load_progress_is_published_and_never_goes_back() {
    let config = format!(
        "{}{}{}",
        host_section(""),
        scripted("tts", "load_ms = 800\nload_steps = 8"),
        scripted("chat", "load_ms = 400\nload_steps = 4"),
    );
    let (supervisor, _scratch) = supervisor(&config);
    let mut rx = supervisor.subscribe();
    let runner = supervisor.clone();
    let started = tokio::spawn(async move { runner.start().await });
    let mut seen = Vec::new();
    while let Ok(Some(s)) = tokio::time::timeout(Duration::from_secs(10), rx.changed()).await {
        seen.push((s.state, s.progress));
        if s.state.is_settled() {
            break;
        }
    }
    started.await.unwrap();
    assert!(
        seen.iter().any(|(state, _)| *state == Overall::LoadingModels),
        "{seen:?}"
    );
    assert_eq!(seen.last().unwrap(), &(Overall::Ready, 100));
    let progress: Vec<u8> = seen.iter().map(|(_, p)| *p).collect();
    assert!(
        progress.windows(2).all(|w| w[0] <= w[1]),
        "progress went back: {progress:?}"
    );
    let distinct: std::collections::BTreeSet<_> = progress.iter().collect();
    assert!(distinct.len() >= 5, "too few progress steps: {progress:?}");
}

#[tokio::test]
async fn the_engine_is_usable_once_ready() {
    let config = format!(
        "{}{}{}",
        host_section(""),
        scripted("tts", "sample_rate = 8000"),
        scripted("chat", "reply = \"One two. Three.\""),
    );
    let (supervisor, _scratch) = supervisor(&config);
    supervisor.start().await;
    let chat = supervisor.chat().expect("chat ready");
    let mut text = String::new();
    let report = chat
        .chat(&[], |t| {
            text.push_str(t);
            hearth_plugin_api::Flow::Continue
        })
        .unwrap();
    assert_eq!(text, "One two. Three.");
    assert_eq!(report.tokens, 3);
    let tts = supervisor.tts().expect("tts ready");
    let mut chunks = Vec::new();
    tts.synthesize("Hi. There!", |c| {
        chunks.push((c.sample_rate, c.samples.len(), c.text));
        hearth_plugin_api::Flow::Stop
    })
    .unwrap();
    // The sink said stop after the first sentence.
    assert_eq!(chunks, vec![(8000, 8000 * 60 / 1000 * 3, "Hi.".to_owned())]);
    assert!(supervisor.stt().is_none());
}

/// Reads the lines the scripted engines wrote at shutdown, waiting (at most
/// 5 s) until there are `n`.
async fn shutdown_lines(path: &std::path::Path, n: usize) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let lines: Vec<String> = std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect();
        if lines.len() >= n || tokio::time::Instant::now() > deadline {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn every_engine_is_shut_down_exactly_once_even_after_a_failed_load() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("shutdowns");
    let config = format!(
        "{}{}{}",
        host_section(""),
        scripted(
            "tts",
            &format!(
                "name = \"shutdown-once\"\nfail_loads = 1\nshutdown_file = {:?}",
                file.display().to_string()
            )
        ),
        scripted("chat", ""),
    );
    let (supervisor, _scratch) = supervisor(&config);
    supervisor.start().await;
    // The failed first instance is shut down once it is dropped.
    assert_eq!(shutdown_lines(&file, 1).await, vec!["shutdown shutdown-once"]);
    supervisor.retry(ServiceName::Tts).expect("retry accepted");
    wait_for(supervisor.subscribe(), "READY after retry", |s| {
        s.state == Overall::Ready
    })
    .await;
    // A user of the ready engine holds it across the host's shutdown...
    let tts = supervisor.tts().expect("tts ready");
    supervisor.shutdown(Duration::from_secs(5)).await;
    assert_eq!(
        shutdown_lines(&file, 2).await.len(),
        2,
        "the retried engine was shut down"
    );
    drop(tts);
    // ...and dropping it does not shut it down a second time.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(shutdown_lines(&file, 3).await.len(), 2);
}
