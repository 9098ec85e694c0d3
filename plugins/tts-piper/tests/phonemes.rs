//! Text to phonemes to ids, through the library directly (no model): the
//! phonemes must match what piper-tts 1.8 feeds the same voice.
//!
//! The expected strings are what piper-tts 1.8 produced for these sentences,
//! except where the espeak-ng it bundles (1.52-dev) and Debian 12's 1.51
//! differ; those sentences are left out. If a Debian update of espeak-ng-data
//! changes a pronunciation, update the string.

use hearth_tts_piper::{espeak, text, voice};

fn phonemes(input: &str) -> Vec<String> {
    espeak::init(None, "en-us").unwrap_or_else(|e| panic!("{e}: install espeak-ng (scripts/install-deps.sh)"));
    text::sentences(input)
        .iter()
        .filter_map(|sentence| {
            let texts: Vec<&str> = sentence.clauses.iter().map(|c| c.text).collect();
            let parts = espeak::phonemize("en-us", &texts).unwrap();
            let clauses: Vec<_> = parts
                .into_iter()
                .zip(sentence.clauses.iter().map(|c| c.terminator))
                .collect();
            voice::sentence_phonemes(&clauses)
        })
        .collect()
}

#[test]
fn phonemes_match_piper() {
    assert_eq!(
        phonemes(
            "Hello world. Café déjà vu — naïve! Dr. Smith e.g. that; ok, fine. \
             It costs $3.50, or 1,000 at 10:30. Then left. Zoë's façade cost €5, señor."
        ),
        [
            "həlˈoʊ wˈɜːld.",
            "kæfˈeɪ dˌeɪʒɑː vˈuː; naɪˈiːv!",
            "dˈɑːktɚ.",
            "smˈɪθ fˌɔːɹɛɡzˈæmpəl ðˈæt; ˌoʊkˈeɪ, fˈaɪn.",
            "ɪt kˈɔsts dˈɑːlɚ θɹˈiː pɔɪnt fˈaɪv zˈiəɹoʊ, ɔːɹ wˈʌn θˈaʊzənd æt tˈɛn θˈɜːɾi.",
            "ðˈɛn lˈɛft.",
            "zˈoʊiz fəsˈɑːd kˈɔst jˈʊɹɹoʊz fˈaɪv, sɛnjˈɔːɹ.",
        ]
    );
}

#[test]
fn phonemizing_leaves_no_state_behind() {
    // espeak-ng reads one character ahead; each clause must start clean.
    let once = phonemes("Open the door.");
    phonemes("Wait, what?");
    assert_eq!(phonemes("Open the door."), once);
}

#[test]
fn ids_use_the_voices_map() {
    let json = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/piper/en_US-joe-medium.onnx.json"),
    )
    .unwrap_or_else(|e| panic!("{e}: run scripts/fetch-models.sh"));
    let config: voice::VoiceConfig = serde_json::from_str(&json).unwrap();
    let ids = voice::PhonemeIds::new(&config.phoneme_id_map).unwrap();
    // ^ _ h _ ə _ l _ ˈ _ o _ ʊ _ . _ $
    assert_eq!(
        ids.ids("həlˈoʊ."),
        [1, 0, 20, 0, 59, 0, 24, 0, 120, 0, 27, 0, 100, 0, 10, 0, 2]
    );
}
