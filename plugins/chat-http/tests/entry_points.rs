//! The plugin driven through its exported entry points, the way `hearth
//! serve` drives the library it opened: configured with the JSON the host
//! makes of `[chat.config]`, with relative paths resolved against the
//! directory of `plugins.toml` (here the repository root, as in the default
//! configuration).

mod util;

use hearth_plugin_api::{
    client::{Calls, Message, Module},
    testkit::{RecordingHost, TokenCollector},
    EngineKind,
};
use util::*;

#[test]
fn the_entry_points_run_a_managed_llama_server() {
    let plugin = Module::new(hearth_chat_http::hearth_plugin_root_module());
    assert_eq!(plugin.info().name, "chat-http");
    assert_eq!(plugin.kind(), EngineKind::CHAT);

    // Refused by `hearth check` without starting anything.
    let typo = plugin
        .check_config(r#"{"api": "openai", "temprature": 0.1}"#)
        .unwrap_err();
    assert!(typo.contains("unknown field `temprature`"), "{typo}");

    let port = free_port();
    let engine = plugin.new_engine().expect("engine");
    let host = RecordingHost::new();
    engine
        .load(&default_config(port, 16).to_string(), &repo_root(), &host)
        .expect("load through the entry points");
    assert_eq!(engine.describe().unwrap().model.as_deref(), Some("smollm2"));
    assert!(!host.progress().is_empty());

    let report = engine.warmup(&host).expect("warmup");
    assert!(report.warmed.starts_with("1-token completion from smollm2"));
    engine.health().expect("healthy");

    let mut reply = TokenCollector::new();
    let report = engine
        .chat(&[Message::user("Name a colour.")], &mut |piece| reply.take(piece))
        .expect("chat");
    assert!(
        report.tokens > 0 && !reply.text().trim().is_empty(),
        "{report:?} {:?}",
        reply.text()
    );
    assert!(reply.first_at.is_some());

    engine.shutdown();
    assert!(!listening(port), "llama-server still listens after shutdown");
}
