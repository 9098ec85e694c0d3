//! Removes what Whisper writes for sounds rather than words.
//!
//! Whisper was trained on subtitles, so on silence, music or noise it writes
//! annotations like `[BLANK_AUDIO]`, `[Music]`, `(upbeat music)`, `*sigh*`
//! or `♪`. A voice assistant must not answer those, so they are removed
//! from every segment; a segment left with no letters or digits is dropped.

/// `text` without bracketed, parenthesised or starred annotations and music
/// signs, with whitespace collapsed. Returns an empty string when nothing
/// spoken is left (only punctuation counts as nothing).
pub fn strip_non_speech(text: &str) -> String {
    let mut kept = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        let closing = match c {
            '[' => Some(']'),
            '(' => Some(')'),
            '*' => Some('*'),
            _ => None,
        };
        if let Some(end) = closing.and_then(|close| rest[1..].find(close)) {
            // Skip the annotation; a space keeps the words around it apart.
            rest = &rest[1 + end + 1..];
            kept.push(' ');
            continue;
        }
        if !matches!(c, '♪' | '♫' | '♬' | '♩') {
            kept.push(c);
        }
        rest = &rest[c.len_utf8()..];
    }
    let collapsed = kept.split_whitespace().collect::<Vec<_>>().join(" ");
    if collapsed.chars().any(char::is_alphanumeric) {
        collapsed
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotations_go_words_stay() {
        for (input, expected) in [
            (" [BLANK_AUDIO]", ""),
            ("[ Silence ]", ""),
            (" (upbeat music)", ""),
            ("♪ ♪ ♪", ""),
            (" *sigh* ...", ""),
            (" Hello [BLANK_AUDIO] there.", "Hello there."),
            ("So (laughs) yes", "So yes"),
            (" And so, my fellow Americans.", "And so, my fellow Americans."),
            ("a [ b", "a [ b"),
            ("The 3 of us", "The 3 of us"),
        ] {
            assert_eq!(strip_non_speech(input), expected, "{input:?}");
        }
    }
}
