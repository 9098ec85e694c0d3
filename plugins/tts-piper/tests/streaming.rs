//! The split graph (`graph.rs`) and its streamed synthesis (`synth.rs`)
//! against the original graph run whole: the same audio, whatever the
//! number of workers, and the load log says which way the voice runs.

mod util;

use hearth_plugin_api::{client::Calls, testkit::RecordingHost};
use serde_json::json;
use util::{config, load, load_observed, sentences, speak};

/// A long first sentence (cut into parts), a short one and a third.
const TEXT: &str = "The old lighthouse stood at the edge of the cliff, watching the ships come and go. \
                    Yes. Every night its lamp turned slowly, throwing a beam across the dark water.";

/// The voice without noise (so each run gives the same audio) and without
/// normalisation (so gains do not depend on how a sentence was cut).
fn exact(extra: serde_json::Value) -> String {
    let mut keys = json!({"noise_scale": 0.0, "noise_w": 0.0, "normalize": false});
    for (k, v) in extra.as_object().unwrap() {
        keys[k] = v.clone();
    }
    config(keys)
}

#[test]
fn streamed_audio_is_the_whole_graphs_audio_on_any_number_of_workers() {
    let whole = load(&exact(json!({"stream": false, "threads": 1}))).unwrap();
    let reference = sentences(&speak(&whole, TEXT).unwrap());
    assert_eq!(reference.len(), 3);
    for threads in [1, 2, 3] {
        let engine = load(&exact(json!({"threads": threads}))).unwrap();
        let chunks = speak(&engine, TEXT).unwrap();
        assert!(
            chunks.len() > reference.len(),
            "{threads} workers: the first sentence was not cut"
        );
        let got = sentences(&chunks);
        assert_eq!(got.len(), reference.len());
        for (a, b) in got.iter().zip(&reference) {
            assert_eq!(a.text, b.text);
            assert_eq!(a.samples.len(), b.samples.len(), "{threads} workers: {:?}", a.text);
            // The 2-D convolutions round differently: a sample or two.
            let worst = a
                .samples
                .iter()
                .zip(&b.samples)
                .map(|(x, y)| (i32::from(*x) - i32::from(*y)).abs())
                .max()
                .unwrap_or(0);
            assert!(worst <= 2, "{threads} workers: {:?} differs by {worst}", a.text);
        }
    }
}

#[test]
fn the_load_log_says_how_the_voice_runs() {
    let host = RecordingHost::new();
    load_observed(&config(json!({"threads": 2})), &host).unwrap();
    let logs: Vec<String> = host.logs().into_iter().map(|(_, m)| m).collect();
    assert!(
        logs.iter()
            .any(|m| m.contains("loaded with 2 thread(s), streamed") && m.contains("256 samples a frame")),
        "{logs:?}"
    );
    let host = RecordingHost::new();
    load_observed(&config(json!({"stream": false})), &host).unwrap();
    let logs: Vec<String> = host.logs().into_iter().map(|(_, m)| m).collect();
    assert!(
        logs.iter().any(|m| m.contains("whole: one inference per sentence")),
        "{logs:?}"
    );
}

#[test]
fn a_stop_after_the_first_part_ends_the_call_at_once() {
    let engine = load(&config(json!({"threads": 2}))).unwrap();
    let chunks = util::speak_until(&engine, TEXT, 1).unwrap();
    assert_eq!(chunks.len(), 1);
    assert!(!chunks[0].text.is_empty());
    // And the engine goes on working afterwards.
    assert_eq!(sentences(&speak(&engine, "Still here.").unwrap()).len(), 1);
    engine.health().unwrap();
}
