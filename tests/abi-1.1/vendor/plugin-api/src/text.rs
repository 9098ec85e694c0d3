//! Where speech is cut: the one sentence rule.
//!
//! Text is spoken one sentence at a time: the host cuts a streamed chat reply
//! into sentences and sends each one to TTS as soon as it ends, and a TTS
//! engine runs one inference (or sends one audio chunk) per sentence. Both
//! cut with this module, so a text is cut the same way wherever it goes, and
//! a sentence the host sends is one sentence to the engine too.
//!
//! # The rule
//!
//! 1. A sentence ends after a *terminator*: `.` `!` `?` `…` or the CJK
//!    full-width `。` `！` `？`. A run of terminators stays together (`?!`,
//!    `...`), and closing quotes and brackets right after it belong to the
//!    sentence too (`"` `'` `)` `]` `}` `»` `”` `’` `」` `』` `）` `】` `》`).
//! 2. The run ends the sentence only when white space or the end of the text
//!    follows it, so `3.5`, `example.com` and `e.g.` inside a word do not
//!    cut. A run with a full-width terminator needs no white space (CJK text
//!    puts none between sentences).
//! 3. A run of only `.` and `…` does not end the sentence when white space
//!    (without a newline) and then a lower-case letter follow it: `e.g. this`,
//!    `Wait... what`. (`Dr. Smith` is therefore two sentences.)
//! 4. Every newline ends a sentence. Chat replies break lines between list
//!    items and paragraphs, often without punctuation; the price is that
//!    text hard-wrapped mid-sentence is cut at its line ends.
//! 5. Clause marks (`,` `;` `:` and dashes) never end a sentence; an engine
//!    that cares about clauses splits a sentence further itself.
//! 6. Sentences are trimmed, and a fragment without any alphanumeric
//!    character (`...`, `—`, `**`) is dropped: there is nothing to say.
//! 7. A sentence is at most [`MAX_SENTENCE_CHARS`] characters, counted from
//!    its first non-blank one. When it reaches one character more without
//!    having ended, it is cut at the last white space among those
//!    characters, or after [`MAX_SENTENCE_CHARS`] of them if there is none,
//!    and the rest starts the next sentence.
//!
//! [`split_sentences`] cuts a whole text; [`SentenceSplitter`] cuts a stream
//! as it arrives, with the same result for any way the text is pieced (a
//! terminator at the end of what has arrived is decided by what comes next,
//! or by the end of the stream). Both take time linear in the text.

use std::ops::Range;

/// The longest sentence, in characters (Unicode scalar values): a longer one
/// is cut at its last white space before this many characters (rule 7 of the
/// [module doc](self)). It bounds one TTS call: 400 characters is about half
/// a minute of speech, far more than any sentence a person would say, and
/// keeps a reply without punctuation (or a paste of a table) from becoming
/// one huge inference.
pub const MAX_SENTENCE_CHARS: usize = 400;

/// Splits a whole `text` into sentences by [the rule](self): trimmed slices
/// of `text`, in order. White space only gives nothing.
pub fn split_sentences(text: &str) -> Vec<&str> {
    split_with_max(text, MAX_SENTENCE_CHARS)
}

fn split_with_max(text: &str, max: usize) -> Vec<&str> {
    let mut scanner = Scanner::new(max);
    let mut ranges = Vec::new();
    for (i, c) in text.char_indices() {
        scanner.step(i, c, &mut ranges);
    }
    scanner.finish(text.len(), &mut ranges);
    ranges.into_iter().filter_map(|r| sentence(&text[r])).collect()
}

/// Splits a stream into sentences by [the rule](self) as it arrives: push
/// pieces, get the sentences they complete, and the rest at the end. Pushing
/// a text in any pieces gives the sentences [`split_sentences`] gives for
/// the whole, in time linear in the text.
#[derive(Debug, Clone)]
pub struct SentenceSplitter {
    /// Text from the current sentence's start (and some already consumed
    /// text before it, dropped once it is the larger part).
    pending: String,
    scanner: Scanner,
    ranges: Vec<Range<usize>>,
}

impl Default for SentenceSplitter {
    fn default() -> Self {
        Self::new()
    }
}

impl SentenceSplitter {
    /// A splitter with nothing pending.
    pub fn new() -> Self {
        Self::with_max(MAX_SENTENCE_CHARS)
    }

    fn with_max(max: usize) -> Self {
        Self {
            pending: String::new(),
            scanner: Scanner::new(max),
            ranges: Vec::new(),
        }
    }

    /// Adds `piece`; returns the sentences it completed, trimmed. A
    /// terminator at the very end of what has arrived waits for the next
    /// piece (or [`finish`](Self::finish)) to decide.
    pub fn push(&mut self, piece: &str) -> Vec<String> {
        let from = self.pending.len();
        self.pending.push_str(piece);
        for (i, c) in piece.char_indices() {
            self.scanner.step(from + i, c, &mut self.ranges);
        }
        let out = self
            .ranges
            .drain(..)
            .filter_map(|r| sentence(&self.pending[r]).map(str::to_owned))
            .collect();
        // Drop consumed text once it is the larger part, so every byte is
        // moved a bounded number of times.
        let consumed = self.scanner.start;
        if consumed > self.pending.len() / 2 {
            self.pending.drain(..consumed);
            self.scanner.shift(consumed);
        }
        out
    }

    /// The rest, at the end of the stream: the last sentence, if it has
    /// anything to say. The splitter is then empty again.
    pub fn finish(&mut self) -> Option<String> {
        // `push` left no ranges; the end of the stream adds exactly one.
        self.scanner.finish(self.pending.len(), &mut self.ranges);
        let rest = self
            .ranges
            .pop()
            .and_then(|r| sentence(&self.pending[r]).map(str::to_owned));
        self.ranges.clear();
        self.pending.clear();
        self.scanner = Scanner::new(self.scanner.max);
        rest
    }
}

/// A cut fragment as spoken: trimmed, or nothing without an alphanumeric
/// character (rule 6).
fn sentence(fragment: &str) -> Option<&str> {
    let fragment = fragment.trim();
    fragment.chars().any(char::is_alphanumeric).then_some(fragment)
}

fn is_terminator(c: char) -> bool {
    matches!(c, '.' | '!' | '?' | '…') || is_full_width(c)
}

fn is_full_width(c: char) -> bool {
    matches!(c, '。' | '！' | '？')
}

fn is_dot(c: char) -> bool {
    matches!(c, '.' | '…')
}

fn is_closer(c: char) -> bool {
    matches!(
        c,
        '"' | '\'' | ')' | ']' | '}' | '»' | '”' | '’' | '」' | '』' | '）' | '】' | '》'
    )
}

/// Where the scanner is in the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Inside a sentence, nothing pending.
    Text,
    /// In a run of terminators, then closers (once `closers`), not yet
    /// decided: the next character decides.
    Run {
        full_width: bool,
        only_dots: bool,
        closers: bool,
    },
    /// After a run of only dots and white space: the sentence ends at `end`
    /// unless a lower-case letter comes next (rule 3).
    Blank { end: usize },
}

/// The rule as a state machine that sees every character once. Offsets are
/// bytes into the text it is fed; it reports sentences as byte ranges.
#[derive(Debug, Clone)]
struct Scanner {
    max: usize,
    state: State,
    /// Where the current sentence starts: its first non-blank character, or
    /// where the next character goes while it has none.
    start: usize,
    /// The current sentence's characters since `start`.
    chars: usize,
    /// The current sentence's last white space: its offset, the offset after
    /// it, and `chars` up to and including it.
    last_space: Option<(usize, usize, usize)>,
}

impl Scanner {
    fn new(max: usize) -> Self {
        assert!(max > 0, "a sentence holds at least one character");
        Self {
            max,
            state: State::Text,
            start: 0,
            chars: 0,
            last_space: None,
        }
    }

    /// Feeds `c`, found at offset `i`; adds to `out` the sentences it ends.
    fn step(&mut self, i: usize, c: char, out: &mut Vec<Range<usize>>) {
        match self.state {
            State::Text => {}
            State::Run {
                full_width,
                only_dots,
                closers,
            } => {
                if !closers && is_terminator(c) {
                    self.state = State::Run {
                        full_width: full_width || is_full_width(c),
                        only_dots: only_dots && is_dot(c),
                        closers,
                    };
                    return self.count(i, c, out);
                }
                if is_closer(c) {
                    self.state = State::Run {
                        full_width,
                        only_dots,
                        closers: true,
                    };
                    return self.count(i, c, out);
                }
                // The run is over: `c` decides (rules 2 and 3).
                self.state = State::Text;
                if full_width || c.is_whitespace() && (c == '\n' || !only_dots) {
                    self.cut(i, i, out);
                } else if c.is_whitespace() {
                    self.state = State::Blank { end: i };
                    return self.count(i, c, out);
                }
            }
            State::Blank { end } => {
                if c.is_whitespace() && c != '\n' {
                    return self.count(i, c, out);
                }
                self.state = State::Text;
                if !c.is_lowercase() {
                    self.cut(end, i, out);
                }
            }
        }
        if c == '\n' {
            self.cut(i, i, out);
        } else if is_terminator(c) {
            self.state = State::Run {
                full_width: is_full_width(c),
                only_dots: is_dot(c),
                closers: false,
            };
        }
        self.count(i, c, out);
    }

    /// The current sentence ends at `end`; the next one starts at `next`.
    fn cut(&mut self, end: usize, next: usize, out: &mut Vec<Range<usize>>) {
        out.push(self.start..end);
        self.start = next;
        self.chars = 0;
        self.last_space = None;
    }

    /// Counts `c` into the current sentence, cutting it when it gets too long
    /// (rule 7).
    fn count(&mut self, i: usize, c: char, out: &mut Vec<Range<usize>>) {
        let after = i + c.len_utf8();
        if c.is_whitespace() {
            if self.chars == 0 {
                self.start = after;
                return;
            }
            self.chars += 1;
            self.last_space = Some((i, after, self.chars));
        } else {
            self.chars += 1;
        }
        if self.chars <= self.max {
            return;
        }
        match self.last_space.take() {
            // Everything after the space is non-blank.
            Some((at, after_space, counted)) => {
                out.push(self.start..at);
                self.start = after_space;
                self.chars -= counted;
            }
            None => {
                out.push(self.start..i);
                self.start = i;
                self.chars = 1;
            }
        }
        // A pending end lies before the cut, which ended that sentence.
        if let State::Blank { .. } = self.state {
            self.state = State::Text;
        }
    }

    /// The end of the text, at offset `len`: the rest is the last sentence.
    fn finish(&mut self, len: usize, out: &mut Vec<Range<usize>>) {
        self.state = State::Text;
        self.cut(len, len, out);
    }

    /// The text lost its first `by` bytes (all before `start`).
    fn shift(&mut self, by: usize) {
        self.start -= by;
        if let State::Blank { end } = &mut self.state {
            *end -= by;
        }
        if let Some((at, after, _)) = &mut self.last_space {
            *at -= by;
            *after -= by;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn stream(pieces: &[&str]) -> Vec<String> {
        let mut s = SentenceSplitter::new();
        let mut out: Vec<String> = pieces.iter().flat_map(|p| s.push(p)).collect();
        out.extend(s.finish());
        out
    }

    /// Splits whole and streamed (one piece, and one character at a time),
    /// checks they agree, and returns the sentences.
    fn split(text: &str) -> Vec<&str> {
        let whole = split_sentences(text);
        assert_eq!(stream(&[text]), whole, "one piece: {text:?}");
        let chars: Vec<String> = text.chars().map(String::from).collect();
        let chars: Vec<&str> = chars.iter().map(String::as_str).collect();
        assert_eq!(stream(&chars), whole, "char by char: {text:?}");
        whole
    }

    #[test]
    fn terminators_followed_by_white_space_or_the_end() {
        assert_eq!(
            split("Hello there. How are you? Fine! Really… Done"),
            ["Hello there.", "How are you?", "Fine!", "Really…", "Done"]
        );
        assert_eq!(split("One.\tTwo.\u{a0}Three."), ["One.", "Two.", "Three."]);
    }

    #[test]
    fn terminators_inside_words_do_not_cut() {
        assert_eq!(
            split("It is 3.5 degrees at example.com, really?!yes"),
            ["It is 3.5 degrees at example.com, really?!yes"]
        );
    }

    #[test]
    fn runs_of_terminators_stay_together() {
        assert_eq!(
            split("Really?! Yes... Ok!!! No?"),
            ["Really?!", "Yes...", "Ok!!!", "No?"]
        );
    }

    #[test]
    fn closers_belong_to_the_sentence_they_close() {
        assert_eq!(
            split("He asked \"why?\" Then left. (See above.) She said 'no.' «Oui.» End"),
            [
                "He asked \"why?\"",
                "Then left.",
                "(See above.)",
                "She said 'no.'",
                "«Oui.»",
                "End"
            ]
        );
        // A closer not followed by white space: no end.
        assert_eq!(split("\"Why?\"she asked."), ["\"Why?\"she asked."]);
    }

    #[test]
    fn a_dot_before_a_lower_case_word_does_not_cut() {
        assert_eq!(
            split("Use e.g. this one. Then stop... and think. Wait… what? yes. Dr. Smith"),
            [
                "Use e.g. this one.",
                "Then stop... and think.",
                "Wait… what?",
                "yes.",
                "Dr.",
                "Smith"
            ]
        );
        // Digits and upper case are not lower case.
        assert_eq!(
            split("In 1990. 2000 came. Éclair"),
            ["In 1990.", "2000 came.", "Éclair"]
        );
        // Closers may sit between.
        assert_eq!(split("(etc.) and more"), ["(etc.) and more"]);
    }

    #[test]
    fn full_width_terminators_need_no_space() {
        assert_eq!(split("你好。我很好！你呢？好"), ["你好。", "我很好！", "你呢？", "好"]);
        assert_eq!(split("「好。」他说。"), ["「好。」", "他说。"]);
    }

    #[test]
    fn every_newline_cuts() {
        assert_eq!(
            split("Shopping list\n- eggs\n- milk\n\nThat is all"),
            ["Shopping list", "- eggs", "- milk", "That is all"]
        );
        // Even where a lower-case word follows, and with \r\n.
        assert_eq!(split("See e.g.\nthis one\r\nok"), ["See e.g.", "this one", "ok"]);
    }

    #[test]
    fn clause_marks_never_cut() {
        assert_eq!(
            split("One; two: three, four — five – six - seven"),
            ["One; two: three, four — five – six - seven"]
        );
    }

    #[test]
    fn fragments_without_alphanumerics_are_dropped() {
        assert_eq!(split("... Hi. . — ** ?! \n - \nBye"), ["Hi.", "Bye"]);
        assert!(split("").is_empty());
        assert!(split("  \n\n \t ").is_empty());
        assert!(split("...!?").is_empty());
    }

    #[test]
    fn long_sentences_are_cut_at_the_last_space_before_the_limit() {
        let words = "word ".repeat(300); // 1500 characters, no terminator
        let pieces = split(&words);
        assert!(pieces.iter().all(|p| p.chars().count() <= MAX_SENTENCE_CHARS));
        // 400 characters end with the space after the 80th word.
        assert_eq!(pieces[0], "word ".repeat(80).trim_end());
        assert_eq!(pieces.join(" "), words.trim_end());
        // A space right after the limit still counts.
        let exact = format!("{} tail", "x".repeat(MAX_SENTENCE_CHARS));
        assert_eq!(split(&exact), ["x".repeat(MAX_SENTENCE_CHARS).as_str(), "tail"]);
    }

    #[test]
    fn long_sentences_without_space_are_cut_at_the_limit() {
        let text = "é".repeat(MAX_SENTENCE_CHARS * 2 + 5);
        let pieces = split(&text);
        let lengths: Vec<usize> = pieces.iter().map(|p| p.chars().count()).collect();
        assert_eq!(lengths, [MAX_SENTENCE_CHARS, MAX_SENTENCE_CHARS, 5]);
    }

    #[test]
    fn a_sentence_of_exactly_the_limit_is_whole() {
        let sentence = format!("{}.", "a".repeat(MAX_SENTENCE_CHARS - 1));
        let text = format!("{sentence} Next.");
        assert_eq!(split(&text), [sentence.as_str(), "Next."]);
    }

    #[test]
    fn a_sentence_is_released_as_soon_as_it_is_decided() {
        let mut s = SentenceSplitter::new();
        assert!(s.push("It is 3.5 degrees.").is_empty());
        // A dot and a space: a lower-case word might follow.
        assert!(s.push(" ").is_empty());
        assert_eq!(s.push("Cold"), ["It is 3.5 degrees."]);
        assert!(s.push(" e.g.").is_empty());
        assert!(s.push(" ").is_empty());
        assert!(s.push("this?").is_empty());
        // `?` needs only the white space.
        assert_eq!(s.push(" "), ["Cold e.g. this?"]);
        assert!(s.push("\"Yes.").is_empty());
        assert!(s.push("\"").is_empty());
        assert_eq!(s.push("\nand"), ["\"Yes.\""]);
        assert!(s.push(" 好。").is_empty());
        assert_eq!(s.push("」x"), ["and 好。」"]);
        assert_eq!(s.finish().as_deref(), Some("x"));
        // Finished means empty again.
        assert_eq!(s.finish(), None);
        assert_eq!(s.push("Again. And"), ["Again."]);
        assert_eq!(s.finish().as_deref(), Some("And"));
    }

    #[test]
    fn the_end_of_the_stream_decides_a_trailing_terminator() {
        let mut s = SentenceSplitter::new();
        assert!(s.push("Done.").is_empty());
        assert!(s.push("  ").is_empty());
        assert_eq!(s.finish().as_deref(), Some("Done."));
        assert_eq!(SentenceSplitter::new().finish(), None);
    }

    #[test]
    fn streaming_is_linear() {
        let started = std::time::Instant::now();
        let mut total = 0;
        // 100 KB without punctuation, then 100 KB with a period every 8 words,
        // a token (a word and its space) at a time.
        let plain = "lorem ".repeat(100_000 / 6);
        let dotted = "Lorem ipsum dolor sit amet consectetur adipiscing elit. ".repeat(100_000 / 57);
        for text in [plain, dotted] {
            let mut s = SentenceSplitter::new();
            for token in text.split_inclusive(' ') {
                total += s.push(token).len();
            }
            total += usize::from(s.finish().is_some());
        }
        let elapsed = started.elapsed();
        assert!(total > 1700, "{total} sentences");
        assert!(elapsed.as_secs_f64() < 2.0, "took {elapsed:?}: quadratic?");
    }

    /// Characters that exercise every rule.
    const ALPHABET: &[char] = &[
        'a', 'b', 'Q', 'é', '7', ' ', ' ', '\n', '\t', '.', '.', '!', '?', '…', '。', '？', '"', ')', '」', ',', ';',
        '—', '*',
    ];

    fn text_and_cuts() -> impl Strategy<Value = (String, Vec<usize>)> {
        (
            prop::collection::vec(prop::sample::select(ALPHABET), 0..160),
            prop::collection::vec(0usize..160, 0..12),
        )
            .prop_map(|(chars, cuts)| (chars.into_iter().collect(), cuts))
    }

    /// Cuts `text` into pieces at the given character counts.
    fn pieces(text: &str, mut cuts: Vec<usize>) -> Vec<&str> {
        let bounds: Vec<usize> = text.char_indices().map(|(i, _)| i).chain([text.len()]).collect();
        cuts.iter_mut().for_each(|c| *c = bounds[(*c).min(bounds.len() - 1)]);
        cuts.sort_unstable();
        let mut out = Vec::new();
        let mut from = 0;
        for cut in cuts.into_iter().chain([text.len()]) {
            out.push(&text[from..cut]);
            from = cut;
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn streaming_agrees_with_whole_text((text, cuts) in text_and_cuts(), max in prop_oneof![1usize..12, Just(MAX_SENTENCE_CHARS)]) {
            let whole = split_with_max(&text, max);
            let mut splitter = SentenceSplitter::with_max(max);
            let mut streamed: Vec<String> = Vec::new();
            for piece in pieces(&text, cuts) {
                streamed.extend(splitter.push(piece));
            }
            streamed.extend(splitter.finish());
            prop_assert_eq!(&streamed, &whole);

            // Every sentence is trimmed, says something, fits the limit, and
            // no alphanumeric character is lost.
            for s in &whole {
                prop_assert_eq!(s.trim(), *s);
                prop_assert!(s.chars().any(char::is_alphanumeric));
                prop_assert!(s.chars().count() <= max, "{:?} longer than {}", s, max);
            }
            let said: String = whole.concat().chars().filter(|c| c.is_alphanumeric()).collect();
            let written: String = text.chars().filter(|c| c.is_alphanumeric()).collect();
            prop_assert_eq!(said, written);
        }
    }
}
