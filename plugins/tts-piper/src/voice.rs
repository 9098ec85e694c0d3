//! A Piper voice's `.onnx.json`: sample rate, espeak-ng voice, synthesis
//! defaults, speakers, and the map from phonemes to model input ids.

use std::collections::HashMap;

use serde::Deserialize;
use unicode_normalization::UnicodeNormalization;

/// The parts of a Piper voice config this engine uses. Other fields are
/// ignored: the format belongs to Piper and grows.
#[derive(Debug, Clone, Deserialize)]
pub struct VoiceConfig {
    /// `audio`.
    pub audio: AudioSection,
    /// `espeak`; absent in voices that do not use espeak-ng phonemes.
    pub espeak: Option<EspeakSection>,
    /// `inference`: default scales.
    #[serde(default)]
    pub inference: InferenceSection,
    /// `phoneme_type`: only `espeak` is supported.
    #[serde(default = "default_phoneme_type")]
    pub phoneme_type: String,
    /// Phoneme (one character, or a cluster) to model ids.
    pub phoneme_id_map: HashMap<String, Vec<i64>>,
    /// Number of speakers; more than one means the model takes `sid`.
    #[serde(default = "one")]
    pub num_speakers: u32,
    /// Speaker name to id.
    #[serde(default)]
    pub speaker_id_map: HashMap<String, i64>,
}

/// `audio` of a voice config.
#[derive(Debug, Clone, Deserialize)]
pub struct AudioSection {
    /// The rate the model's output is at.
    pub sample_rate: u32,
}

/// `espeak` of a voice config.
#[derive(Debug, Clone, Deserialize)]
pub struct EspeakSection {
    /// The espeak-ng voice, e.g. `en-us`.
    pub voice: String,
}

/// `inference` of a voice config: Piper's defaults when absent.
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct InferenceSection {
    /// Variation in the generated audio.
    pub noise_scale: f32,
    /// Speaking rate: larger is slower.
    pub length_scale: f32,
    /// Variation in phoneme durations.
    pub noise_w: f32,
}

impl Default for InferenceSection {
    fn default() -> Self {
        Self {
            noise_scale: 0.667,
            length_scale: 1.0,
            noise_w: 0.8,
        }
    }
}

fn default_phoneme_type() -> String {
    "espeak".to_owned()
}

fn one() -> u32 {
    1
}

/// Beginning of sentence, end of sentence, and the pad after each phoneme.
const BOS: &str = "^";
const EOS: &str = "$";
const PAD: &str = "_";

/// Clause punctuation that Piper follows with a space.
fn is_clause_punctuation(c: char) -> bool {
    matches!(c, ',' | ';' | ':')
}

/// Turns phoneme strings into model input ids with a voice's map.
#[derive(Debug, Clone)]
pub struct PhonemeIds {
    map: HashMap<char, Vec<i64>>,
    bos: Vec<i64>,
    eos: Vec<i64>,
    pad: Vec<i64>,
}

impl PhonemeIds {
    /// Builds the mapper, refusing a map without `^`, `$` or `_`.
    pub fn new(map: &HashMap<String, Vec<i64>>) -> Result<Self, String> {
        let special = |key: &str| {
            map.get(key)
                .cloned()
                .ok_or_else(|| format!("its phoneme_id_map has no {key:?} entry"))
        };
        // Multi-character keys (vowel clusters of some newer voices) are
        // not produced by our phonemizer; such voices still work, with the
        // cluster spoken as its parts.
        let single = map
            .iter()
            .filter_map(|(k, v)| {
                let mut chars = k.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) => Some((c, v.clone())),
                    _ => None,
                }
            })
            .collect();
        Ok(Self {
            map: single,
            bos: special(BOS)?,
            eos: special(EOS)?,
            pad: special(PAD)?,
        })
    }

    /// Ids for one sentence: `^ _`, each phoneme followed by `_`, then `$`.
    /// Phonemes the voice does not know are skipped, as Piper does.
    pub fn ids(&self, phonemes: &str) -> Vec<i64> {
        let mut ids = Vec::with_capacity(2 * phonemes.len() + 3);
        ids.extend_from_slice(&self.bos);
        ids.extend_from_slice(&self.pad);
        for c in phonemes.nfd() {
            if let Some(id) = self.map.get(&c) {
                ids.extend_from_slice(id);
                ids.extend_from_slice(&self.pad);
            }
        }
        ids.extend_from_slice(&self.eos);
        ids
    }
}

/// Joins a sentence's clause phonemes the way Piper does: each clause's
/// punctuation is appended, clause punctuation (`,` `;` `:`) gets a space
/// after it, and clauses without punctuation are separated by a space.
/// Returns `None` when nothing speakable is left.
pub fn sentence_phonemes(clauses: &[(String, Option<char>)]) -> Option<String> {
    let mut out = String::new();
    for (phonemes, terminator) in clauses {
        if !out.is_empty() && !out.ends_with(' ') {
            out.push(' ');
        }
        out.push_str(phonemes);
        if let Some(t) = terminator {
            out.push(*t);
            if is_clause_punctuation(*t) {
                out.push(' ');
            }
        }
    }
    let speakable = out.chars().any(|c| !(c.is_whitespace() || c.is_ascii_punctuation()));
    speakable.then(|| out.trim_end().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn voice_map() -> HashMap<String, Vec<i64>> {
        [
            ("_", 0),
            ("^", 1),
            ("$", 2),
            (" ", 3),
            ("!", 4),
            (",", 8),
            (".", 10),
            ("a", 14),
            ("e", 18),
            ("ɪ", 74),
        ]
        .into_iter()
        .chain([("\u{301}", 141)])
        .map(|(k, v)| (k.to_owned(), vec![v]))
        .collect()
    }

    #[test]
    fn ids_follow_pipers_layout() {
        let ids = PhonemeIds::new(&voice_map()).unwrap();
        assert_eq!(ids.ids("a ɪ."), vec![1, 0, 14, 0, 3, 0, 74, 0, 10, 0, 2]);
    }

    #[test]
    fn ids_decompose_and_skip_unknown() {
        let ids = PhonemeIds::new(&voice_map()).unwrap();
        // "é" decomposes into "e" and a combining acute accent; "q" is unknown.
        assert_eq!(ids.ids("éq"), vec![1, 0, 18, 0, 141, 0, 2]);
    }

    #[test]
    fn map_without_specials_is_refused() {
        let mut map = voice_map();
        map.remove("$");
        assert!(PhonemeIds::new(&map).unwrap_err().contains("\"$\""));
    }

    #[test]
    fn clauses_join_like_piper() {
        let clauses = vec![
            ("həlˈoʊ".to_owned(), Some(',')),
            ("wˈɜːld".to_owned(), None),
            ("ðɛɹ".to_owned(), Some('!')),
        ];
        assert_eq!(sentence_phonemes(&clauses).unwrap(), "həlˈoʊ, wˈɜːld ðɛɹ!");
        assert_eq!(sentence_phonemes(&[(String::new(), Some('.'))]), None);
        assert_eq!(sentence_phonemes(&[]), None);
    }

    #[test]
    fn piper_defaults_when_inference_is_absent() {
        let json =
            r#"{"audio":{"sample_rate":16000},"espeak":{"voice":"de"},"phoneme_id_map":{"_":[0],"^":[1],"$":[2]}}"#;
        let config: VoiceConfig = serde_json::from_str(json).unwrap();
        assert_eq!(config.inference.noise_w, 0.8);
        assert_eq!(config.num_speakers, 1);
        assert_eq!(config.phoneme_type, "espeak");
    }
}
