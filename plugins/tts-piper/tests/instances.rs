//! Several engine instances in one process, as the host makes them for
//! retries and swaps: they share one ONNX Runtime environment and one
//! libespeak-ng, and each works on its own.

mod util;

use hearth_plugin_api::{
    client::Calls,
    testkit::{tempfile, RecordingHost},
};
use serde_json::json;
use util::{assert_audible, config, load, load_observed, seconds, speak};

#[test]
fn two_instances_work_side_by_side_and_after_one_shuts_down() {
    let first = load(&config(json!({}))).unwrap();
    let second = load(&config(json!({"threads": 2, "length_scale": 1.3}))).unwrap();
    first.warmup(&RecordingHost::new()).unwrap();
    second.warmup(&RecordingHost::new()).unwrap();

    // At the same time, from two threads.
    let text = "Two voices are speaking at once.";
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| speak(&first, text).unwrap());
        let b = s.spawn(|| speak(&second, text).unwrap());
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_audible(&a[0]);
    assert_audible(&b[0]);
    // length_scale 1.3 speaks more slowly.
    assert!(seconds(&b) > seconds(&a) * 1.1, "{} vs {}", seconds(&b), seconds(&a));

    first.shutdown();
    assert!(first.health().unwrap_err().contains("shut down"));
    assert!(speak(&first, text).unwrap_err().contains("shut down"));
    second.health().unwrap();
    assert_audible(&speak(&second, text).unwrap()[0]);
}

#[test]
fn a_new_instance_loads_after_a_failed_one() {
    let e = load(&config(json!({"voice": "models/piper/missing.onnx"}))).unwrap_err();
    assert!(e.contains("not found"), "{e}");
    let retry = load(&config(json!({}))).unwrap();
    assert_audible(&speak(&retry, "The retry worked.").unwrap()[0]);
}

#[test]
fn load_reports_progress_and_warmup_says_what_it_did() {
    let host = RecordingHost::new();
    let engine = load_observed(&config(json!({"warmup_text": "Ready when you are."})), &host).unwrap();
    let progress = host.progress();
    assert!(progress.len() >= 4, "{progress:?}");
    assert!(
        progress.windows(2).all(|w| w[0].0 <= w[1].0),
        "not monotonic: {progress:?}"
    );
    assert_eq!(progress.last().unwrap().0, 1.0);
    assert!(progress.iter().any(|(_, m)| m.contains("ONNX Runtime")), "{progress:?}");
    let report = engine.warmup(&RecordingHost::new()).unwrap();
    assert!(report.warmed.contains("Ready when you are."), "{}", report.warmed);
}

#[test]
fn another_runtime_library_is_refused_once_one_is_loaded() {
    // Make sure the real runtime is the loaded one.
    load(&config(json!({}))).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("libonnxruntime.so");
    std::fs::write(&other, b"not used: refused before it is opened").unwrap();
    let e = load(&config(json!({"runtime": other}))).unwrap_err();
    assert!(e.contains("already loaded") && e.contains("restart Hearth"), "{e}");
}
