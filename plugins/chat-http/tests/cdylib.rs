//! The built cdylib loaded the way `hearth serve` loads it: opened and
//! checked by the host's loader, then configured with the JSON the host
//! makes of `[chat.config]`, with relative paths resolved against the
//! directory of `plugins.toml` (here the repository root, as in the default
//! configuration).

mod util;

use std::{sync::Arc, time::Instant};

use hearth::plugin::Libraries;
use hearth_plugin_api::{ChatMessage, EngineKind, Flow};
use serde_json::json;
use util::*;

#[test]
fn the_cdylib_runs_a_managed_llama_server_through_the_host() {
    llama_files();
    let libraries = Libraries::default();
    let plugin = libraries.open(&cdylib()).expect("the host accepts the plugin");
    assert_eq!(plugin.meta.name, "chat-http");
    assert_eq!(plugin.meta.kind, EngineKind::CHAT);

    // Refused by `hearth check` without starting anything.
    let typo = plugin
        .check_config(r#"{"api": "openai", "temprature": 0.1}"#)
        .unwrap_err();
    assert!(typo.contains("unknown field `temprature`"), "{typo}");

    let port = free_port();
    // Relative paths, as in the default plugins.toml at the repository root.
    let config = json!({
        "api": "openai",
        "url": format!("http://127.0.0.1:{port}"),
        "model": "smollm2",
        "max_tokens": 16,
        "launch": {
            "command": "models/llama/bin/llama-server",
            "args": ["-m", "models/llama/SmolLM2-135M-Instruct.Q4_1.gguf", "--alias", "smollm2",
                     "--host", "127.0.0.1", "--port", port.to_string(), "-c", "2048", "-t", "1"],
            "env": {"LD_LIBRARY_PATH": "models/llama/bin"},
        },
    });
    let engine = Arc::clone(&plugin).new_engine().expect("engine");
    let observer = TestHost::default();
    engine
        .load(&config.to_string(), &repo_root(), &observer)
        .expect("load through the host");
    let info = engine.describe();
    assert_eq!(
        info.model.into_option().map(|m| m.into_string()).as_deref(),
        Some("smollm2")
    );
    assert!(!observer.progress.lock().unwrap().is_empty());

    let report = engine.warmup(&observer).expect("warmup");
    assert!(report.warmed.as_str().starts_with("1-token completion from smollm2"));
    engine.health().expect("healthy");

    let messages = [ChatMessage {
        role: hearth_plugin_api::ChatRole::USER,
        content: "Name a colour.".into(),
    }];
    let mut text = String::new();
    let started = Instant::now();
    let mut first = None;
    let report = engine
        .chat(&messages, |piece| {
            first.get_or_insert_with(|| started.elapsed());
            text.push_str(piece);
            Flow::Continue
        })
        .expect("chat");
    assert!(report.tokens > 0 && !text.trim().is_empty(), "{report:?} {text:?}");
    assert!(first.is_some());

    engine.shutdown();
    assert!(!listening(port), "llama-server still listens after shutdown");
}
