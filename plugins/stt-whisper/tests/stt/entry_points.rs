//! The plugin driven through its exported entry points, exactly as the host
//! drives the library it opened (`hearth serve`, `hearth transcribe`).

use hearth_plugin_api::{
    client::{Calls, QuietHost},
    EngineKind,
};

use crate::util::{self, f32_audio, jfk, module, normalize, JFK};

#[test]
fn the_entry_points_load_warm_and_transcribe() {
    let plugin = module();
    assert_eq!(plugin.info().name, "stt-whisper");
    assert_eq!(plugin.kind(), EngineKind::STT);
    plugin
        .check_config(r#"{"model": "models/whisper/ggml-tiny.en.bin", "threads": 2}"#)
        .unwrap();
    let e = plugin.check_config(r#"{"modle": "x"}"#).unwrap_err();
    assert!(e.contains("unknown field `modle`"), "{e}");
    let e = plugin.check_config(r#"{"language": "xx"}"#).unwrap_err();
    assert!(e.contains("not a language"), "{e}");

    let engine = plugin.new_engine().unwrap();
    engine
        .load(
            r#"{"model": "models/whisper/ggml-tiny.en.bin"}"#,
            &util::root(),
            &QuietHost::default(),
        )
        .unwrap();
    engine.health().unwrap();
    let info = engine.describe().unwrap();
    assert_eq!(info.model.as_deref(), Some("ggml-tiny.en"));
    assert!(info.engine_version.starts_with("whisper.cpp"));
    let report = engine.warmup(&QuietHost::default()).unwrap();
    assert!(report.warmed.contains("silence"), "{}", report.warmed);

    let t = engine.transcribe(&f32_audio(16_000, 1, jfk())).unwrap();
    assert_eq!(normalize(&t.text), JFK);
    assert!(!t.segments.is_empty());
    engine.shutdown();
    assert!(engine.health().is_err());
}

#[test]
fn a_truncated_model_fails_load_through_the_entry_points_and_the_process_lives_on() {
    let plugin = module();
    let file = util::truncated_model(std::fs::metadata(util::model_path()).unwrap().len() / 3);
    let engine = plugin.new_engine().unwrap();
    let e = engine
        .load(&file.config, &util::root(), &QuietHost::default())
        .unwrap_err();
    assert!(e.contains("truncated") && e.contains("fetch-models.sh"), "{e}");
    assert!(engine.health().is_err());
    // A retry on a new engine from the same module works.
    let engine = plugin.new_engine().unwrap();
    engine.load("{}", &util::root(), &QuietHost::default()).unwrap();
    engine.health().unwrap();
}
