//! What comes out for speech, silence and odd inputs.

use hearth_plugin_api::{
    client::{Audio, Samples},
    testkit::{self, RecordingHost},
    Warmable,
};
use hearth_stt_whisper::{audio, WhisperStt};

use serde_json::json;

use crate::util::{self, engine, f32_audio, jfk, normalize, transcribe_f32, JFK};

#[test]
fn jfk_as_f32_gives_the_sentence_with_timed_segments() {
    let clip = jfk();
    let t = transcribe_f32(engine(), 16_000, 1, clip);
    assert_eq!(normalize(&t.text), JFK, "text: {:?}", t.text);
    assert_eq!(t.language, "en");
    assert!(!t.segments.is_empty());
    let joined: Vec<&str> = t.segments.iter().map(|s| s.text.as_str()).collect();
    assert_eq!(normalize(&joined.join(" ")), JFK);
    let clip_ms = clip.len() as u64 * 1000 / 16_000;
    let mut previous_end = 0;
    for s in t.segments.iter() {
        assert!(
            s.start_ms >= previous_end && s.start_ms < s.end_ms,
            "segment times {:?}",
            (s.start_ms, s.end_ms)
        );
        assert!(
            s.end_ms <= clip_ms + 500,
            "segment ends at {} ms, after the clip ({clip_ms} ms)",
            s.end_ms
        );
        previous_end = s.end_ms;
    }
    // The speech ends near the end of the 11 s clip.
    assert!(previous_end >= 9_000, "last segment ends at {previous_end} ms");
}

#[test]
fn jfk_as_pcm16_gives_the_same_text() {
    let pcm16: Vec<i16> = jfk()
        .iter()
        .map(|&v| (v * 32768.0).round().clamp(-32768.0, 32767.0) as i16)
        .collect();
    let audio = Audio {
        sample_rate: 16_000,
        channels: 1,
        samples: Samples::I16(pcm16),
    };
    let t = testkit::transcribe(engine(), &audio).unwrap();
    assert_eq!(normalize(&t.text), JFK, "text: {:?}", t.text);
}

#[test]
fn jfk_at_48k_stereo_gives_the_same_text_and_times() {
    let clip = jfk();
    let at_48k = audio::resample(clip, 16_000, 48_000).unwrap();
    assert_eq!(at_48k.len(), clip.len() * 3);
    // Left is the clip, right the clip at half level: the average is still
    // the clip, at three quarters.
    let stereo: Vec<f32> = at_48k.iter().flat_map(|&v| [v, 0.5 * v]).collect();
    let t = transcribe_f32(engine(), 48_000, 2, &stereo);
    assert_eq!(normalize(&t.text), JFK, "text: {:?}", t.text);
    let reference = transcribe_f32(engine(), 16_000, 1, clip);
    assert_eq!(t.segments.len(), reference.segments.len());
    for (a, b) in t.segments.iter().zip(reference.segments.iter()) {
        assert!(
            a.start_ms.abs_diff(b.start_ms) <= 200 && a.end_ms.abs_diff(b.end_ms) <= 200,
            "{a:?} vs {b:?}"
        );
    }
}

#[test]
fn every_encoder_window_and_quantized_model_gives_the_jfk_sentence() {
    let clip = jfk();
    for (model, audio_ctx, weight_type) in [
        (util::model_path(), json!("full"), "f16"),
        (util::model_path(), json!(700), "f16"),
        (util::quantized_model_path("q8_0"), json!("auto"), "q8_0"),
        (util::quantized_model_path("q8_0"), json!("full"), "q8_0"),
        (util::quantized_model_path("q5_1"), json!("auto"), "q5_1"),
    ] {
        let config = json!({ "model": model, "audio_ctx": audio_ctx }).to_string();
        let (engine, loaded) = util::load(&config);
        loaded.unwrap_or_else(|e| panic!("{config}: {e}"));
        assert_eq!(engine.model_info().unwrap().weight_type, weight_type);
        let t = transcribe_f32(&engine, 16_000, 1, clip);
        assert_eq!(normalize(&t.text), JFK, "{config}: {:?}", t.text);
    }
}

#[test]
fn the_fitted_window_hears_a_clip_of_22_s_to_its_end() {
    // Twice the clip: 1,100 frames plus the margin, still under the full
    // window of 1,500.
    let twice = [jfk(), jfk()].concat();
    let t = transcribe_f32(engine(), 16_000, 1, &twice);
    assert_eq!(normalize(&t.text), format!("{JFK} {JFK}"), "text: {:?}", t.text);
    assert!(
        t.segments.last().is_some_and(|s| s.end_ms >= 20_000),
        "{:?}",
        t.segments
    );
}

#[test]
fn silence_and_noise_give_no_text() {
    let zeros = vec![0.0f32; 5 * 16_000];
    let t = transcribe_f32(engine(), 16_000, 1, &zeros);
    assert_eq!(t.text, "", "digital silence: {:?}", t.segments);
    assert!(t.segments.is_empty());

    // Quiet white noise (about -50 dBFS), as from an idle microphone.
    let mut x: u32 = 0x9E37_79B9;
    let hiss: Vec<f32> = (0..5 * 44_100)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            0.005 * (x as f32 / u32::MAX as f32 * 2.0 - 1.0)
        })
        .collect();
    let t = transcribe_f32(engine(), 44_100, 1, &hiss);
    assert!(
        normalize(&t.text).split_whitespace().count() <= 1,
        "quiet noise should give (next to) nothing, got {:?}",
        t.text
    );
}

#[test]
fn too_short_or_empty_audio_gives_no_text_and_no_error() {
    assert_eq!(transcribe_f32(engine(), 16_000, 1, &[]).text, "");
    assert_eq!(transcribe_f32(engine(), 16_000, 1, &[0.1; 800]).text, "");
}

#[test]
fn malformed_audio_is_refused_with_a_reason() {
    let samples = [0.0f32; 3];
    let e = testkit::transcribe(engine(), &f32_audio(16_000, 2, &samples)).unwrap_err();
    assert!(e.0.contains("whole number of frames"), "{e}");
    let e = testkit::transcribe(engine(), &f32_audio(1_000, 1, &samples)).unwrap_err();
    assert!(e.0.contains("1000 Hz is not supported"), "{e}");
}

#[test]
fn lifecycle_describe_health_warmup_shutdown() {
    let engine = WhisperStt::default();
    let before = engine.describe();
    assert_eq!(before.name, "whisper");
    assert!(
        before.engine_version.starts_with("whisper.cpp 1."),
        "{}",
        before.engine_version
    );
    assert_eq!(before.model, None);
    assert!(engine.health().unwrap_err().0.contains("not loaded"));
    assert!(testkit::transcribe(&engine, &f32_audio(16_000, 1, &[0.0; 16]))
        .unwrap_err()
        .0
        .contains("not loaded"));

    let (loaded, host) = testkit::load(&engine, r#"{"threads": 1}"#, &util::root());
    loaded.unwrap();
    // Without `model`, the default: the q8_0 conversion.
    assert_eq!(engine.describe().model.as_deref(), Some("ggml-tiny.en-q8_0"));
    engine.health().unwrap();
    let info = engine.model_info().unwrap();
    assert_eq!((info.size_name, info.multilingual, info.tensors), ("tiny", false, 167));
    assert_eq!(info.weight_type, "q8_0");
    let progress = host.progress();
    assert!(
        progress
            .first()
            .is_some_and(|(f, m)| *f == 0.0 && m.starts_with("checking ggml-tiny.en")),
        "{progress:?}"
    );
    assert!(progress.last().is_some_and(|(f, _)| *f == 1.0), "{progress:?}");

    let warmed = engine.warmup(&RecordingHost::new().context(&util::root())).unwrap();
    assert!(
        warmed.contains("1 s of silence") && warmed.contains("no text") && warmed.contains("audio_ctx auto"),
        "{warmed}"
    );

    engine.shutdown();
    assert!(engine.health().is_err());
    assert_eq!(engine.describe().model, None);
}
