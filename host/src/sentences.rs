//! Splits a streamed reply into sentences as the tokens arrive, so each
//! finished sentence can go to TTS while the model keeps generating.

/// Accumulates text and hands out complete sentences.
#[derive(Debug, Default)]
pub struct SentenceSplitter {
    pending: String,
}

/// Characters that end a sentence when followed by whitespace.
fn is_terminator(c: char) -> bool {
    matches!(c, '.' | '!' | '?' | '…' | '。' | '！' | '？' | ';' | ':') || c == '\n'
}

impl SentenceSplitter {
    /// A splitter with nothing pending.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `text`; returns the sentences it completed. A sentence is
    /// complete at a terminator followed by whitespace (so "3.5" and "e.g."
    /// inside words do not split), or at a newline.
    pub fn push(&mut self, text: &str) -> Vec<String> {
        self.pending.push_str(text);
        let mut out = Vec::new();
        loop {
            let mut cut = None;
            let mut chars = self.pending.char_indices().peekable();
            while let Some((i, c)) = chars.next() {
                if c == '\n' {
                    cut = Some(i + 1);
                    break;
                }
                if !is_terminator(c) {
                    continue;
                }
                // Swallow runs of terminators and closing quotes ("?!", ".”).
                let mut end = i + c.len_utf8();
                while let Some(&(j, next)) = chars.peek() {
                    if is_terminator(next) && next != '\n' || matches!(next, '"' | '\'' | '”' | '’' | ')') {
                        end = j + next.len_utf8();
                        chars.next();
                    } else {
                        break;
                    }
                }
                if matches!(chars.peek(), Some(&(_, next)) if next.is_whitespace()) {
                    cut = Some(end);
                    break;
                }
            }
            let Some(cut) = cut else { break };
            let sentence: String = self.pending.drain(..cut).collect();
            let sentence = sentence.trim();
            if sentence.chars().any(char::is_alphanumeric) {
                out.push(sentence.to_owned());
            }
        }
        out
    }

    /// The rest, at the end of the stream.
    pub fn finish(&mut self) -> Option<String> {
        let rest = std::mem::take(&mut self.pending);
        let rest = rest.trim();
        rest.chars().any(char::is_alphanumeric).then(|| rest.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(pieces: &[&str]) -> Vec<String> {
        let mut s = SentenceSplitter::new();
        let mut out: Vec<String> = pieces.iter().flat_map(|p| s.push(p)).collect();
        out.extend(s.finish());
        out
    }

    #[test]
    fn splits_at_terminators_followed_by_space() {
        assert_eq!(
            split(&["Hello", " there.", " How are", " you?", " Fine"]),
            vec!["Hello there.", "How are you?", "Fine"]
        );
    }

    #[test]
    fn a_sentence_is_released_as_soon_as_the_next_word_starts() {
        let mut s = SentenceSplitter::new();
        assert!(s.push("It is 3.5 degrees.").is_empty());
        assert_eq!(s.push(" Cold"), vec!["It is 3.5 degrees."]);
    }

    #[test]
    fn keeps_runs_of_punctuation_and_quotes_together() {
        assert_eq!(split(&["Really?! \"Yes.\" Ok"]), vec!["Really?!", "\"Yes.\"", "Ok"]);
    }

    #[test]
    fn drops_fragments_without_words() {
        assert_eq!(split(&["... ", "Hi. ", " . "]), vec!["Hi."]);
    }

    #[test]
    fn newlines_end_sentences() {
        assert_eq!(split(&["First line\nSecond line"]), vec!["First line", "Second line"]);
    }
}
