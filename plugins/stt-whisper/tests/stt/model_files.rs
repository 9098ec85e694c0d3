//! Missing, truncated and wrong model files fail `load` with a reason that
//! says what is wrong and what to do, and never take the process down.
//!
//! whisper.cpp itself aborts on some of these files (or loads a file cut
//! off after its vocabulary as an empty model), so each of these loads
//! would crash this test binary or pass if the plugin's own check were
//! missing.

use crate::util::{self, engine, jfk, load, normalize, transcribe_f32, ModelFile, JFK};

fn load_error(config_json: &str) -> String {
    let (engine, result) = load(config_json);
    assert!(
        hearth_plugin_api::Warmable::health(&engine).is_err(),
        "a failed load leaves the engine unloaded"
    );
    result.expect_err("load should fail")
}

#[test]
fn a_missing_model_says_to_fetch_it() {
    let e = load_error(r#"{"model": "models/whisper/ggml-nonexistent.bin"}"#);
    assert!(
        e.contains("not found") && e.contains("run scripts/fetch-models.sh"),
        "{e}"
    );
    assert!(e.contains("ggml-nonexistent.bin"), "{e}");
}

#[test]
fn truncated_models_fail_with_a_reason_and_the_process_lives_on() {
    let full = std::fs::metadata(util::model_path()).unwrap().len();
    // In the header, in the mel filters, in the vocabulary, right after the
    // vocabulary (whisper.cpp would load that as an empty model), in the
    // middle of the weights, and one byte short.
    let vocabulary_end = vocabulary_end(&std::fs::read(util::model_path()).unwrap());
    for len in [0, 3, 30, 1_000, 70_000, vocabulary_end, full / 2, full - 1] {
        let file = util::truncated_model(len);
        let e = load_error(&file.config);
        let expected = if len == 0 { "empty" } else { "truncated" };
        assert!(e.contains(expected), "{len} bytes: {e}");
        assert!(
            e.contains("unusable") && e.contains("run scripts/fetch-models.sh"),
            "{len} bytes: {e}"
        );
    }
    // Still alive, and the real model still works in this process.
    let t = transcribe_f32(engine(), 16_000, 1, jfk());
    assert_eq!(normalize(&t.text), JFK);
}

/// The offset where the tensors start, read from the file's own header.
fn vocabulary_end(bytes: &[u8]) -> u64 {
    let i32_at = |at: usize| i32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    let mut at = 4 + 11 * 4;
    let (n_mel, n_fft) = (i32_at(at), i32_at(at + 4));
    at += 8 + 4 * (n_mel * n_fft) as usize;
    let words = i32_at(at);
    at += 4;
    for _ in 0..words {
        at += 4 + i32_at(at) as usize;
    }
    at as u64
}

#[test]
fn trailing_garbage_is_refused() {
    let mut bytes = std::fs::read(util::model_path()).unwrap();
    bytes.extend_from_slice(&[0xff; 64]);
    let file = ModelFile::new("ggml-extra.bin", &bytes);
    let e = load_error(&file.config);
    assert!(e.contains("corrupt tensor header"), "{e}");
}

#[test]
fn whisper_cpp_s_own_refusal_is_passed_on() {
    // A well-formed file whose tensor names whisper.cpp does not know: the
    // plugin's check passes it, whisper.cpp refuses it cleanly, and its log
    // line becomes the reason.
    let mut bytes = std::fs::read(util::model_path()).unwrap();
    let name = b"encoder.conv1.weight";
    let at = bytes
        .windows(name.len())
        .position(|w| w == name)
        .expect("tensor name in the model");
    bytes[at + "encoder.conv".len()] = b'X'; // encoder.convX.weight
    let file = ModelFile::new("ggml-renamed.bin", &bytes);
    let e = load_error(&file.config);
    assert!(
        e.contains("whisper.cpp could not load") && e.contains("unknown tensor 'encoder.convX.weight'"),
        "{e}"
    );
}

#[test]
fn wrong_files_are_named_for_what_they_are() {
    let text = ModelFile::new("ggml-tiny.en.bin", b"<html><body>404 Not Found</body></html>\n");
    let e = load_error(&text.config);
    assert!(e.contains("not a ggml Whisper model") && e.contains("text file"), "{e}");

    let gguf = ModelFile::new("model.gguf", b"GGUF\x03\x00\x00\x00\x00\x00\x00\x00");
    let e = load_error(&gguf.config);
    assert!(e.contains("GGUF"), "{e}");

    let e = load_error(r#"{"model": "models/whisper"}"#);
    assert!(e.contains("is a directory"), "{e}");
}

#[test]
fn an_english_only_model_refuses_another_language() {
    let e = load_error(r#"{"language": "de"}"#);
    assert!(e.contains("English-only") && e.contains("language = \"en\""), "{e}");
}
