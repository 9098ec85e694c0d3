//! The built cdylib, opened and driven by the host's own plugin loader, as
//! `hearth serve` and `hearth transcribe` do.

use std::sync::{Arc, OnceLock};

use hearth::plugin::{Libraries, Plugin, Unobserved};
use hearth_plugin_api::{EngineKind, PcmInput, PcmSamples};

use crate::util::{self, jfk, normalize, JFK};

/// One set of libraries for the process, as in the host.
fn plugin() -> Arc<Plugin> {
    static LIBRARIES: OnceLock<Libraries> = OnceLock::new();
    let path = util::plugin_library();
    LIBRARIES
        .get_or_init(Libraries::default)
        .open(&path)
        .unwrap_or_else(|e| panic!("the host refused {}: {e}", path.display()))
}

#[test]
fn the_host_loads_warms_and_transcribes_with_the_plugin() {
    let plugin = plugin();
    assert_eq!(plugin.meta.name, "stt-whisper");
    assert_eq!(plugin.meta.kind, EngineKind::STT);
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
            &Unobserved("stt"),
        )
        .unwrap();
    engine.health().unwrap();
    let info = engine.describe();
    assert_eq!(info.model.into_option().unwrap().as_str(), "ggml-tiny.en");
    assert!(info.engine_version.as_str().starts_with("whisper.cpp"));
    let report = engine.warmup(&Unobserved("stt")).unwrap();
    assert!(report.warmed.as_str().contains("silence"), "{}", report.warmed);

    let clip = jfk();
    let t = engine
        .transcribe(PcmInput {
            sample_rate: clip.sample_rate,
            channels: clip.channels,
            samples: PcmSamples::F32(clip.samples.as_slice().into()),
        })
        .unwrap();
    assert_eq!(normalize(&t.text), JFK);
    assert!(!t.segments.is_empty());
    engine.shutdown();
    assert!(engine.health().is_err());
}

#[test]
fn a_truncated_model_fails_load_through_the_host_which_lives_on() {
    let plugin = plugin();
    let file = util::truncated_model(std::fs::metadata(util::model_path()).unwrap().len() / 3);
    let engine = plugin.new_engine().unwrap();
    let e = engine
        .load(
            &format!(r#"{{"model": {}}}"#, file.json()),
            &util::root(),
            &Unobserved("stt"),
        )
        .unwrap_err();
    assert!(e.contains("truncated") && e.contains("fetch-models.sh"), "{e}");
    assert!(engine.health().is_err());
    // A retry on a new engine from the same library works.
    let engine = plugin.new_engine().unwrap();
    engine.load("{}", &util::root(), &Unobserved("stt")).unwrap();
    engine.health().unwrap();
}
