//! The real Silero model on real speech, through the plugin's exported
//! entry points as the host drives them: the JFK clip between stretches of
//! silence, streamed in 20 ms pieces, gives speech starts and ends where the
//! speech is; silence and faint noise give none; streams are independent;
//! bad input and bad settings are refused with what to do.
//!
//! Missing assets fail the test with what to run; nothing is skipped.

use std::path::{Path, PathBuf};

use hearth_plugin_api::{
    client::{Audio, Calls, Instance, Module, QuietHost, Samples},
    VadEvent, VadEventKind,
};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

fn jfk() -> Vec<i16> {
    let path = root().join("samples/jfk.wav");
    assert!(
        path.is_file(),
        "{} is missing: run scripts/fetch-models.sh",
        path.display()
    );
    let mut reader = hound::WavReader::open(&path).expect("readable jfk.wav");
    assert_eq!(reader.spec().sample_rate, 16_000);
    reader.samples::<i16>().map(|s| s.expect("jfk.wav sample")).collect()
}

fn engine(config_json: &str) -> Result<Instance, String> {
    let model = root().join("models/vad/silero_vad.onnx");
    assert!(
        model.is_file(),
        "{} is missing: run scripts/fetch-models.sh",
        model.display()
    );
    let engine = Module::new(hearth_vad_silero::hearth_plugin_root_module()).new_engine()?;
    engine.load(config_json, &root(), &QuietHost::default())?;
    Ok(engine)
}

fn pcm(samples: &[i16]) -> Audio {
    Audio {
        sample_rate: 16_000,
        channels: 1,
        samples: Samples::I16(samples.to_vec()),
    }
}

/// Streams `samples` in 20 ms pieces, as a microphone would.
fn stream(engine: &Instance, id: u64, samples: &[i16]) -> Vec<VadEvent> {
    let events = samples
        .chunks(320)
        .flat_map(|piece| engine.vad_push(id, &pcm(piece)).expect("vad_push"))
        .collect();
    engine.vad_close(id);
    events
}

fn silence(ms: usize) -> Vec<i16> {
    vec![0; ms * 16]
}

#[test]
fn the_plugin_is_a_vad_engine() {
    let module = Module::new(hearth_vad_silero::hearth_plugin_root_module());
    assert_eq!(module.info().kind, "vad");
    assert_eq!(module.info().name, "vad-silero");
    let engine = engine("{}").unwrap();
    assert_eq!(engine.describe().unwrap().model.as_deref(), Some("silero_vad"));
    engine.warmup(&QuietHost::default()).unwrap();
    engine.health().unwrap();
}

#[test]
fn speech_between_silences_starts_and_ends_where_the_speech_is() {
    let engine = engine("{}").unwrap();
    let clip = jfk();
    let audio = [silence(1000), clip.clone(), silence(1500)].concat();
    let events = stream(&engine, 1, &audio);
    // Four phrases: "And so my fellow Americans, / ask not / what your
    // country can do for you, / ask what you can do for your country."
    assert_eq!(events.len(), 8, "{events:?}");
    // Starts and ends alternate, starting with a start and ending with an end.
    for (i, event) in events.iter().enumerate() {
        let want = if i % 2 == 0 {
            VadEventKind::SPEECH_START
        } else {
            VadEventKind::SPEECH_END
        };
        assert_eq!(event.kind, want, "{events:?}");
    }
    // JFK's first word is at about 0.3 s into the clip, its last ends
    // before 11 s (the clip's end); the pad is 100 ms.
    let first = events[0].at_ms;
    assert!((1000..=1600).contains(&first), "first start at {first} ms: {events:?}");
    let last = events.last().unwrap().at_ms;
    assert!((10_000..=12_100).contains(&last), "last end at {last} ms: {events:?}");
}

#[test]
fn silence_and_faint_noise_are_not_speech() {
    let engine = engine("{}").unwrap();
    assert_eq!(stream(&engine, 1, &silence(3000)), []);
    // Deterministic noise at about -50 dBFS.
    let mut x = 1u32;
    let noise: Vec<i16> = (0..48_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x % 200) as i16 - 100
        })
        .collect();
    assert_eq!(stream(&engine, 2, &noise), []);
}

#[test]
fn streams_side_by_side_are_independent() {
    let engine = engine("{}").unwrap();
    let speech = [silence(500), jfk(), silence(1000)].concat();
    let quiet = silence(speech.len() / 16);
    let alone = stream(&engine, 7, &speech);
    // The same speech interleaved, piece by piece, with a silent stream.
    let mut events = Vec::new();
    for (a, b) in speech.chunks(320).zip(quiet.chunks(320)) {
        events.extend(engine.vad_push(8, &pcm(a)).unwrap());
        assert_eq!(engine.vad_push(9, &pcm(b)).unwrap(), []);
    }
    assert_eq!(events, alone);
}

#[test]
fn other_rates_and_channels_are_refused_with_what_is_needed() {
    let engine = engine("{}").unwrap();
    let audio = Audio {
        sample_rate: 48_000,
        channels: 2,
        samples: Samples::I16(vec![0; 960]),
    };
    let error = engine.vad_push(1, &audio).unwrap_err();
    assert!(error.contains("16000 Hz mono"), "{error}");
    assert!(error.contains("48000 Hz with 2 channel(s)"), "{error}");
}

#[test]
fn bad_settings_and_missing_files_say_what_to_do() {
    let error = engine(r#"{"threshold": 1.5}"#).err().unwrap();
    assert!(error.contains("`threshold` = 1.5 is out of range"), "{error}");
    let error = engine(r#"{"model": "models/vad/nope.onnx"}"#).err().unwrap();
    assert!(error.contains("run scripts/fetch-models.sh"), "{error}");
    let error = engine(r#"{"min_silence": 200}"#).err().unwrap();
    assert!(error.contains("unknown field `min_silence`"), "{error}");
}
