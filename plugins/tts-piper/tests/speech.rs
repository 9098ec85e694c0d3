//! What the voice says: rate, length, loudness and chunking of real speech,
//! through the plugin's exported entry points.

mod util;

use hearth_plugin_api::client::Calls;
use util::{assert_audible, assert_plausible_length, seconds, sentences, shared_engine, speak, speak_until};

#[test]
fn the_plugin_describes_itself() {
    let info = util::module().info();
    assert_eq!(info.name, "tts-piper");
    assert_eq!(info.kind, "tts");
    let info = shared_engine().describe().unwrap();
    assert_eq!(info.name, "piper");
    assert_eq!(info.model.as_deref(), Some("en_US-joe-medium"));
    let version = info.engine_version;
    assert!(version.starts_with("onnxruntime 1.32.0"), "{version}");
    assert!(version.contains("espeak-ng"), "{version}");
    shared_engine().health().expect("healthy once loaded");
}

#[test]
fn the_first_sentence_starts_with_a_short_chunk_then_the_rest() {
    let text = "Hello world, this is Hearth speaking.";
    let chunks = speak(shared_engine(), text).unwrap();
    let texts: Vec<&str> = chunks.iter().map(|c| c.text.as_str()).collect();
    assert_eq!(texts, [text, ""]);
    // 32 frames of 256 samples: the first part of the sentence, sent before
    // the rest is decoded.
    assert_eq!(chunks[0].samples.len(), 32 * 256);
    assert!(chunks[1].samples.len() > chunks[0].samples.len());
    chunks.iter().for_each(assert_audible);
    assert_plausible_length(text, &chunks);
    // Joined, it is one sentence whose loudest sample is full scale.
    let whole = &sentences(&chunks)[0];
    assert_eq!(whole.samples.iter().map(|s| s.unsigned_abs()).max(), Some(32767));
}

#[test]
fn each_sentence_is_its_own_chunk_after_the_first() {
    let text = "The sun is up. Is it warm outside? Yes, it is! Let's go";
    let chunks = speak(shared_engine(), text).unwrap();
    let texts: Vec<&str> = chunks.iter().map(|c| c.text.as_str()).collect();
    assert_eq!(
        texts,
        ["The sun is up.", "", "Is it warm outside?", "Yes, it is!", "Let's go"]
    );
    chunks.iter().for_each(assert_audible);
    assert_plausible_length(text, &chunks);
}

#[test]
fn longer_text_gives_longer_audio() {
    let short = seconds(&speak(shared_engine(), "Yes.").unwrap());
    let long = seconds(
        &speak(
            shared_engine(),
            "Yes, and then we walked all the way down to the harbour.",
        )
        .unwrap(),
    );
    assert!(long > 2.5 * short, "short {short:.2} s, long {long:.2} s");
}

#[test]
fn empty_text_gives_no_chunks() {
    for text in ["", "   ", "\n\n\t", "...", " — "] {
        let chunks = speak(shared_engine(), text).unwrap();
        assert!(chunks.is_empty(), "{text:?} gave {} chunk(s)", chunks.len());
    }
}

#[test]
fn non_ascii_text_is_spoken() {
    for text in [
        "Café déjà vu — naïve!",
        "Zoë's façade cost €5, señor.",
        "Ünïcödé, ßtraße; 東京.",
    ] {
        let chunks = sentences(&speak(shared_engine(), text).unwrap());
        assert_eq!(chunks.len(), 1, "{text:?}");
        assert_eq!(chunks[0].text, text);
        assert_audible(&chunks[0]);
    }
}

#[test]
fn very_long_text_is_spoken_sentence_by_sentence() {
    let paragraph = "The old lighthouse stood at the edge of the cliff, watching the ships come and go. \
                     Every night its lamp turned slowly, throwing a beam across the dark water. \
                     Sailors knew the light and trusted it to guide them home. ";
    let text = paragraph.repeat(2000 / paragraph.len() + 1);
    assert!(text.len() >= 2000);
    let chunks = sentences(&speak(shared_engine(), &text).unwrap());
    assert_eq!(chunks.len(), 3 * (2000 / paragraph.len() + 1));
    chunks.iter().for_each(assert_audible);
    assert_plausible_length(&text, &chunks);
}

#[test]
fn a_long_sentence_without_punctuation_is_one_sentence() {
    // 340 characters: long, but under the shared rule's 400-character cap.
    let text = "and the band played on while the people danced and sang and laughed ".repeat(5);
    let chunks = sentences(&speak(shared_engine(), &text).unwrap());
    assert_eq!(chunks.len(), 1);
    assert_audible(&chunks[0]);
    assert_plausible_length(&text, &chunks);
}

#[test]
fn stop_after_the_first_chunk_stops() {
    let text = "First sentence. Second sentence. Third sentence.";
    let chunks = speak_until(shared_engine(), text, 1).unwrap();
    assert_eq!(chunks.len(), 1);
    assert_eq!(chunks[0].text, "First sentence.");
}
