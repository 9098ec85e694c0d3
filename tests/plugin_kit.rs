//! The plugin SDK as a plugin author meets it: `hearth plugin test` (the
//! conformance kit) on every bundled plugin with its default configuration,
//! on plugins that break the contract, and `hearth plugin new` crates of
//! every kind built and tested from scratch.

use std::{path::Path, process::Command};

use hearth_tests::{hearth, plugin, repo_root, target_dir, text};
use serde_json::Value;

/// Runs `hearth plugin test` with `--json` (engines in worker processes,
/// the default); returns the exit status and the report.
fn kit(path: &Path, config: Option<&Path>) -> (bool, Value) {
    kit_with(path, config, &[])
}

/// [`kit`] with more arguments (e.g. `--isolation in-process`).
fn kit_with(path: &Path, config: Option<&Path>, more: &[&str]) -> (bool, Value) {
    let mut args = vec!["plugin", "test", "--json", path.to_str().unwrap()];
    args.extend_from_slice(more);
    if let Some(config) = config {
        args.extend(["--config", config.to_str().unwrap()]);
    }
    let out = hearth(&args);
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", text(&out.stdout), text(&out.stderr)));
    assert_eq!(report["passed"].as_bool(), Some(out.status.success()), "{report:#}");
    (out.status.success(), report)
}

fn failed_checks(report: &Value) -> Vec<String> {
    report["checks"]
        .as_array()
        .map(|checks| {
            checks
                .iter()
                .filter(|c| c["outcome"] == "fail")
                .map(|c| format!("{}: {}", c["check"], c["detail"]))
                .collect()
        })
        .unwrap_or_default()
}

fn settings(dir: &Path, toml: &str) -> std::path::PathBuf {
    let path = dir.join("settings.toml");
    std::fs::write(&path, toml).unwrap();
    path
}

#[test]
fn the_scripted_fixtures_pass_with_a_config_that_makes_them_pass() {
    let dir = tempfile::tempdir().unwrap();
    for (name, config) in [
        ("scripted-tts", ""),
        ("scripted-stt", "transcript = \"hello\""),
        ("scripted-chat", "token_ms = 5"),
    ] {
        let (ok, report) = kit(&plugin(name), Some(&settings(dir.path(), config)));
        assert!(ok, "{name}: {:?}", failed_checks(&report));
        let checks = report["checks"].as_array().unwrap();
        assert!(checks.len() >= 14, "{name}: only {} checks", checks.len());
        // The fixture declares deny_unknown_fields: the unknown-key check runs.
        assert!(
            checks
                .iter()
                .any(|c| c["check"] == "check_config refuses an unknown key" && c["outcome"] == "pass"),
            "{report:#}"
        );
    }
}

#[test]
fn a_plugin_that_breaks_the_contract_fails_the_named_checks() {
    let dir = tempfile::tempdir().unwrap();
    // A recognizer that hears words in silence, a slow health check.
    let (ok, report) = kit(
        &plugin("scripted-stt"),
        Some(&settings(dir.path(), "transcript = \"hello\"\nhealth_ms = 300")),
    );
    assert!(!ok);
    let failed = failed_checks(&report);
    assert!(
        failed
            .iter()
            .any(|f| f.contains("health answers within 100 ms while idle")),
        "{failed:?}"
    );
    // Without a transcript the recognizer hears nothing in speech.
    let (ok, report) = kit(&plugin("scripted-stt"), None);
    assert!(!ok);
    let failed = failed_checks(&report);
    assert!(
        failed.iter().any(|f| f.contains("returns words for a spoken sentence")),
        "{failed:?}"
    );
    // A load that fails stops the run with the plugin's message.
    let (ok, report) = kit(
        &plugin("scripted-tts"),
        Some(&settings(dir.path(), "fail_load = \"disk on fire\"")),
    );
    assert!(!ok);
    assert!(
        failed_checks(&report).iter().any(|f| f.contains("disk on fire")),
        "{report:#}"
    );
}

#[test]
fn the_text_output_has_one_line_per_check() {
    let out = hearth(&["plugin", "test", plugin("scripted-tts").to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stdout));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("testing scripted-tts"), "{stdout}");
    assert!(
        stdout.contains("pass  synthesize speaks two sentences, each in its own chunks of audio"),
        "{stdout}"
    );
    assert!(
        stdout.contains("pass  a sink that answers stop after the first chunk gets no more"),
        "{stdout}"
    );
    assert!(stdout.contains("pass  shutdown returns (second instance)"), "{stdout}");
}

#[test]
fn a_library_that_is_not_a_plugin_is_refused() {
    let out = hearth(&[
        "plugin",
        "test",
        hearth_tests::library("libhearth_fixture_abi_v2.so").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("refused: ") && stdout.contains("major versions differ"),
        "{stdout}"
    );
}

#[test]
fn the_real_tts_and_stt_plugins_pass_with_the_default_config_in_both_modes() {
    let config = repo_root().join("plugins.toml");
    for name in ["tts-piper", "stt-whisper"] {
        for mode in ["process", "in-process"] {
            let (ok, report) = kit_with(&plugin(name), Some(&config), &["--isolation", mode]);
            assert!(ok, "{name} ({mode}): {:?}", failed_checks(&report));
        }
    }
}

/// The VAD plugin (ABI 1.2's new kind) through the real loader: in a
/// worker process its streams travel over the worker protocol.
#[test]
fn the_real_vad_plugin_passes_in_both_modes() {
    let dir = tempfile::tempdir().unwrap();
    let models = repo_root().join("models");
    let config = settings(
        dir.path(),
        &format!(
            "model = {:?}\nruntime = {:?}\n",
            models.join("vad/silero_vad.onnx").display().to_string(),
            models
                .join("onnxruntime/libonnxruntime.so.1.32.0")
                .display()
                .to_string()
        ),
    );
    for mode in ["process", "in-process"] {
        let (ok, report) = kit_with(&plugin("vad-silero"), Some(&config), &["--isolation", mode]);
        assert!(ok, "vad-silero ({mode}): {:?}", failed_checks(&report));
        assert!(report["plugin"].as_str().unwrap().contains("(vad)"), "{report:#}");
    }
}

#[test]
fn the_real_chat_plugin_passes_with_its_managed_server() {
    let root = repo_root();
    assert!(
        root.join("models/llama/bin/llama-server").exists(),
        "models/llama is missing: run scripts/fetch-models.sh"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // The default [chat.config] on a free port, in a file beside the
    // repository's plugins.toml so its relative paths resolve alike.
    let dir = tempfile::tempdir_in(root.join("target")).unwrap();
    let config = format!(
        "api = \"openai\"\nurl = \"http://127.0.0.1:{port}\"\nmodel = \"smollm2\"\nmax_tokens = 24\n\
         [launch]\ncommand = \"{root}/models/llama/bin/llama-server\"\n\
         args = [\"-m\", \"{root}/models/llama/SmolLM2-135M-Instruct.Q4_1.gguf\", \"--alias\", \"smollm2\", \
         \"--host\", \"127.0.0.1\", \"--port\", \"{port}\", \"-c\", \"2048\", \"-t\", \"1\"]\n",
        root = root.display()
    );
    let (ok, report) = kit(&plugin("chat-http"), Some(&settings(dir.path(), &config)));
    assert!(ok, "{:?}", failed_checks(&report));
}

/// `hearth plugin new` for each kind, then `cargo test` in the new crate
/// (the kit in process) and `hearth plugin test` on the library it built.
#[test]
fn new_plugins_of_every_kind_build_and_pass_the_kit() {
    let dir = tempfile::tempdir().unwrap();
    // One target directory for the four crates, kept between runs, so
    // their dependencies build once.
    let target = target_dir().join("plugin-template");
    for kind in ["tts", "stt", "chat", "vad"] {
        let name = format!("my-{kind}");
        let crate_dir = dir.path().join(&name);
        let out = hearth(&[
            "plugin",
            "new",
            &name,
            "--kind",
            kind,
            "--dir",
            crate_dir.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
        // The workspace's lock file, so the crate builds with the versions
        // already fetched.
        std::fs::copy(repo_root().join("Cargo.lock"), crate_dir.join("Cargo.lock")).unwrap();
        let cargo = |args: &[&str]| {
            let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
                .args(args)
                .current_dir(&crate_dir)
                .env("CARGO_TARGET_DIR", &target)
                .output()
                .expect("cargo runs");
            assert!(
                out.status.success(),
                "cargo {args:?} in {}: {}{}",
                crate_dir.display(),
                text(&out.stdout),
                text(&out.stderr)
            );
        };
        cargo(&["test", "--quiet"]);
        cargo(&["build", "--quiet"]);
        let library = target.join("debug").join(format!("libhearth_my_{kind}.so"));
        let (ok, report) = kit(&library, None);
        assert!(ok, "{kind}: {:?}", failed_checks(&report));
        assert_eq!(report["checks"][0]["outcome"], "pass");
    }
}

#[test]
fn plugin_new_refuses_a_bad_name_and_a_non_empty_directory() {
    let out = hearth(&["plugin", "new", "My Voice", "--kind", "tts"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("is not a plugin name"),
        "{}",
        text(&out.stderr)
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("x"), "").unwrap();
    let out = hearth(&[
        "plugin",
        "new",
        "voice",
        "--kind",
        "tts",
        "--dir",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("not empty"), "{}", text(&out.stderr));
}
