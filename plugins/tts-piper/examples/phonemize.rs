//! Prints how the engine splits and phonemizes text, for checking a
//! pronunciation without loading a model:
//!
//! ```sh
//! cargo run -p hearth-tts-piper --example phonemize -- [--voice en-us] "Text to check."
//! ```
//!
//! One line per sentence: the sentence, then the phonemes Piper's model gets.

use hearth_tts_piper::{espeak, text, voice};

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut espeak_voice = "en-us".to_owned();
    if args.first().map(String::as_str) == Some("--voice") && args.len() > 1 {
        espeak_voice = args.remove(1);
        args.remove(0);
    }
    let input = args.join(" ");
    if let Err(e) = espeak::init(None, &espeak_voice) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
    for sentence in text::sentences(&input) {
        let texts: Vec<&str> = sentence.clauses.iter().map(|c| c.text).collect();
        let phonemes = espeak::phonemize(&espeak_voice, &texts).unwrap_or_else(|e| {
            eprintln!("error: {e}");
            std::process::exit(1);
        });
        let clauses: Vec<_> = phonemes
            .into_iter()
            .zip(sentence.clauses.iter().map(|c| c.terminator))
            .collect();
        match voice::sentence_phonemes(&clauses) {
            Some(p) => println!("{}\t{p}", sentence.text),
            None => println!("{}\t(nothing to say)", sentence.text),
        }
    }
}
