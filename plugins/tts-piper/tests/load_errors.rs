//! Loading fails with a reason people can act on: which file is wrong and
//! what to do about it. The host shows these messages verbatim.

mod util;

use hearth_plugin_api::testkit::tempfile;
use serde_json::json;
use util::{config, load, models};

fn load_error(config_json: &str) -> String {
    match load(config_json) {
        Ok(_) => panic!("load succeeded with {config_json}"),
        Err(e) => e,
    }
}

fn assert_mentions(message: &str, parts: &[&str]) {
    for part in parts {
        assert!(message.contains(part), "{message:?} does not mention {part:?}");
    }
}

#[test]
fn a_missing_voice_names_the_file_and_the_fix() {
    let e = load_error(&config(json!({"voice": "models/piper/no-such-voice.onnx"})));
    assert_mentions(
        &e,
        &[
            "voice model",
            "no-such-voice.onnx",
            "not found",
            "run scripts/fetch-models.sh",
        ],
    );
}

#[test]
fn a_corrupt_model_is_reported_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let voice = dir.path().join("broken.onnx");
    std::fs::write(
        &voice,
        b"this is not an ONNX model, just some garbage bytes \x00\x01\x02\xff",
    )
    .unwrap();
    let real_json = format!("{}.json", models().voice.display());
    std::fs::copy(real_json, dir.path().join("broken.onnx.json")).unwrap();
    let e = load_error(&config(json!({"voice": voice})));
    assert_mentions(
        &e,
        &[
            "broken.onnx",
            "damaged or not an ONNX model",
            "run scripts/fetch-models.sh",
        ],
    );
}

#[test]
fn an_empty_model_is_reported_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let voice = dir.path().join("empty.onnx");
    std::fs::write(&voice, b"").unwrap();
    let e = load_error(&config(json!({"voice": voice})));
    assert_mentions(&e, &["empty.onnx", "is empty", "run scripts/fetch-models.sh"]);
}

#[test]
fn a_missing_or_broken_voice_config_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let missing = load_error(&config(json!({"voice_config": dir.path().join("none.onnx.json")})));
    assert_mentions(&missing, &["voice config", "none.onnx.json", "not found"]);

    let broken = dir.path().join("broken.onnx.json");
    std::fs::write(&broken, "{\"audio\": {\"sample_rate\": ").unwrap();
    let e = load_error(&config(json!({"voice_config": broken})));
    assert_mentions(&e, &["broken.onnx.json", "not a valid Piper voice config"]);

    let no_ids = dir.path().join("no-ids.onnx.json");
    std::fs::write(
        &no_ids,
        r#"{"audio": {"sample_rate": 22050}, "espeak": {"voice": "en-us"}, "phoneme_id_map": {"a": [1]}}"#,
    )
    .unwrap();
    let e = load_error(&config(json!({"voice_config": no_ids})));
    assert_mentions(&e, &["no-ids.onnx.json", "phoneme_id_map"]);
}

#[test]
fn an_unknown_espeak_voice_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let real_json = std::fs::read_to_string(format!("{}.json", models().voice.display())).unwrap();
    let mut voice: serde_json::Value = serde_json::from_str(&real_json).unwrap();
    voice["espeak"]["voice"] = json!("xx-nowhere");
    let path = dir.path().join("odd.onnx.json");
    std::fs::write(&path, voice.to_string()).unwrap();
    let e = load_error(&config(json!({"voice_config": path})));
    assert_mentions(&e, &["espeak-ng has no voice", "xx-nowhere"]);
}

#[test]
fn missing_espeak_data_is_reported() {
    let e = load_error(&config(json!({"espeak_data": "/nonexistent/espeak-ng-data"})));
    assert_mentions(
        &e,
        &[
            "espeak-ng data not found",
            "/nonexistent/espeak-ng-data",
            "espeak-ng-data",
        ],
    );
}

#[test]
fn a_missing_runtime_names_the_file_and_the_fix() {
    let e = load_error(&config(json!({"runtime": "models/onnxruntime/libnothing.so"})));
    assert_mentions(
        &e,
        &[
            "ONNX Runtime library",
            "libnothing.so",
            "not found",
            "run scripts/fetch-models.sh",
        ],
    );
}

#[test]
fn bad_settings_are_refused_at_load() {
    let e = load_error(&config(json!({"threads": 0})));
    assert_mentions(&e, &["threads = 0"]);
    let e = load_error(&config(json!({"speaker": 2})));
    assert_mentions(&e, &["single speaker"]);
    let e = load_error(&config(json!({"length_scale": -1.0})));
    assert_mentions(&e, &["length_scale"]);
}

#[test]
fn unknown_keys_are_refused_without_loading() {
    let plugin = util::module();
    let e = plugin.check_config(&config(json!({"treads": 2}))).unwrap_err();
    assert_mentions(&e, &["unknown field `treads`"]);
    let e = plugin.check_config("{}").unwrap_err();
    assert_mentions(&e, &["missing field `voice`"]);
    plugin
        .check_config(&config(json!({"threads": 2, "speaker": "x"})))
        .unwrap();
}
