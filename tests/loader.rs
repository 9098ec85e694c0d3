//! Opening plugin files: what loads, and every kind of refusal, each naming
//! the plugin, its path, both ABI versions where they matter, and the reason.

use hearth::{plugin::Libraries, HostError};
use hearth_plugin_api::{EngineKind, ABI_VERSION};
use hearth_tests::{library, plugin};

fn refusal(path: &std::path::Path) -> String {
    match Libraries::default().open(path) {
        Ok(p) => panic!(
            "{} should have been refused, but opened as {:?}",
            path.display(),
            p.meta
        ),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_scripted_plugin_opens_and_describes_itself() {
    let path = plugin("scripted-chat");
    let opened = Libraries::default().open(&path).expect("opens");
    assert_eq!(opened.meta.name, "scripted-chat");
    assert_eq!(opened.meta.kind, EngineKind::CHAT);
    assert_eq!(opened.meta.abi, ABI_VERSION);
    assert_eq!(opened.meta.path, path);
}

#[test]
fn opening_twice_returns_the_same_library() {
    let libraries = Libraries::default();
    let a = libraries.open(&plugin("scripted-tts")).unwrap();
    let b = libraries.open(&plugin("scripted-tts")).unwrap();
    assert!(std::sync::Arc::ptr_eq(&a, &b));
}

#[test]
fn a_future_major_abi_is_refused_with_both_versions() {
    let path = library("libhearth_fixture_abi_v2.so");
    let message = refusal(&path);
    assert!(message.contains("plugin hearth_fixture_abi_v2"), "{message}");
    assert!(message.contains(&path.display().to_string()), "{message}");
    assert!(message.contains(&format!("host ABI {ABI_VERSION}")), "{message}");
    assert!(message.contains("plugin ABI 2.0.0"), "{message}");
    assert!(message.contains("major versions differ"), "{message}");
}

#[test]
fn a_plugin_needing_a_newer_minor_is_refused() {
    let message = refusal(&library("libhearth_fixture_abi_newer_minor.so"));
    assert!(message.contains("plugin ABI 1.7.0"), "{message}");
    assert!(message.contains("needs a newer host"), "{message}");
}

#[test]
fn a_layout_mismatch_is_refused() {
    let message = refusal(&library("libhearth_fixture_abi_layout.so"));
    assert!(message.contains("layout mismatch"), "{message}");
    assert!(message.contains("plugin ABI 1.0.0"), "{message}");
}

#[test]
fn a_library_that_is_not_a_plugin_is_refused_before_it_runs() {
    let message = refusal(&library("libhearth_fixture_not_a_plugin.so"));
    assert!(message.contains("not a Hearth plugin"), "{message}");
    assert!(message.contains("exports no abi_stable root module"), "{message}");
}

#[test]
fn a_file_that_is_not_a_library_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("libhearth_fake.so");
    std::fs::write(&fake, "this is text, not ELF").unwrap();
    let message = refusal(&fake);
    assert!(message.contains("not an ELF shared library"), "{message}");
}

#[test]
fn a_missing_file_is_reported_as_missing() {
    let err = Libraries::default()
        .open(std::path::Path::new("/nonexistent/libhearth_nothing.so"))
        .unwrap_err();
    assert!(matches!(err, HostError::PluginMissing { .. }), "{err}");
}

#[test]
fn check_config_reports_unknown_keys_without_loading() {
    let opened = Libraries::default().open(&plugin("scripted-tts")).unwrap();
    assert!(opened.check_config(r#"{"load_ms": 5}"#).is_ok());
    let error = opened.check_config(r#"{"lod_ms": 5}"#).unwrap_err();
    assert!(error.contains("unknown field `lod_ms`"), "{error}");
}

/// Serves the chat plugin at `path` built for ABI `abi` (older than this
/// host's) in `isolation`, and chats with it once with `options`: its
/// capabilities, the reply and the outcome.
async fn chat_with_an_older_plugin(
    path: &std::path::Path,
    abi: hearth_plugin_api::AbiVersion,
    isolation: &str,
    options: hearth_plugin_api::client::ChatOptions,
) -> (hearth_plugin_api::Capabilities, String, hearth_plugin_api::ChatOutcome) {
    use hearth_plugin_api::{client::Message, Flow};
    let opened = Libraries::default()
        .open(path)
        .expect("an older plugin opens in this host");
    assert_eq!(opened.meta.abi, abi);
    assert!(ABI_VERSION > abi, "this host is newer than {abi}");
    let config = format!(
        "{}[chat]\nplugin = {:?}\nisolation = \"{isolation}\"\n",
        hearth_tests::host_section(""),
        path.display().to_string()
    );
    let server = hearth_tests::TestServer::start(&config).await;
    // Only chat is configured: READY also waits for tts, so wait for chat.
    server
        .wait_for("chat ready", |s| {
            s.services[&hearth::config::ServiceName::Chat].phase == hearth::readiness::Phase::Ready
        })
        .await;
    let chat = server.supervisor.chat().expect("chat is ready");
    let capabilities = chat.capabilities();
    let (reply, outcome) = tokio::task::spawn_blocking(move || {
        let mut reply = String::new();
        let outcome = chat
            .chat_with(&[Message::user("hello there")], &options, |piece| {
                reply.push_str(piece);
                Flow::Continue
            })
            .unwrap();
        (reply, outcome)
    })
    .await
    .unwrap();
    (capabilities, reply, outcome)
}

/// The promise of a minor version: a plugin built for ABI 1.0 — before
/// per-request options existed — loads in this host, declares no
/// capabilities, and chats, the options it cannot know simply unused. In
/// this process and in a worker.
#[tokio::test]
async fn a_plugin_built_for_abi_1_0_loads_and_chats() {
    use hearth_plugin_api::{client::ChatOptions, Capabilities};
    let path = hearth_tests::abi_1_0_chat();
    for isolation in ["process", "in-process"] {
        let options = ChatOptions {
            max_tokens: Some(1),
            temperature: Some(0.5),
            stop: vec!["said".into()],
        };
        let (capabilities, reply, outcome) =
            chat_with_an_older_plugin(&path, hearth_plugin_api::ABI_V1_0, isolation, options).await;
        assert_eq!(capabilities, Capabilities::NONE, "{isolation}");
        assert_eq!(reply, "You said: hello there.", "{isolation}");
        assert_eq!(outcome.finish_reason, "stop", "{isolation}");
    }
}

/// The same promise for ABI 1.1, whose plugins have per-request options
/// but were built before the `vad` kind: this host opens it against 1.1's
/// layout and still honours its options, in this process and in a worker.
#[tokio::test]
async fn a_plugin_built_for_abi_1_1_loads_and_keeps_its_options() {
    use hearth_plugin_api::{client::ChatOptions, Capabilities};
    let path = hearth_tests::abi_1_1_chat();
    for isolation in ["process", "in-process"] {
        let options = ChatOptions {
            max_tokens: Some(2),
            ..ChatOptions::default()
        };
        let (capabilities, reply, outcome) =
            chat_with_an_older_plugin(&path, hearth_plugin_api::ABI_V1_1, isolation, options).await;
        assert_eq!(capabilities, Capabilities::MAX_TOKENS, "{isolation}");
        assert_eq!(reply, "You said:", "{isolation}");
        assert_eq!(outcome.finish_reason, "length", "{isolation}");
    }
}
