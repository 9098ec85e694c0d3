//! Splitting text into sentences and clauses, the way Piper groups speech.
//!
//! Piper runs one inference per sentence and appends each clause's
//! punctuation to its phonemes, because the voices were trained with it. The
//! upstream recipe gets clause boundaries and their punctuation from a
//! patched espeak-ng (`espeak_TextToPhonemesWithTerminator`); the espeak-ng
//! 1.51 that Debian ships has no such function, and its text pointer runs past
//! the terminator, so the punctuation is lost. We therefore split here and
//! hand espeak-ng one clause at a time.
//!
//! **Sentences** are cut by Hearth's one sentence rule,
//! [`hearth_plugin_api::text`] (the cut the host makes when it streams a
//! reply), so a sentence the host sends is one inference here, and no
//! sentence is longer than
//! [`MAX_SENTENCE_CHARS`](hearth_plugin_api::text::MAX_SENTENCE_CHARS)
//! characters.
//!
//! **Clauses** are cut inside each sentence, with espeak-ng's own rules where
//! they matter:
//!
//! * `,` `;` `:` end a clause when followed by white space or the end of the
//!   sentence (closing quotes and brackets may sit in between). So `1,000`
//!   and `10:30` do not split. The sentence's own `.` `!` `?` ends its last
//!   clause the same way and is the punctuation Piper keeps for it.
//! * A `.` followed by a lower-case word does not end anything (`e.g. this`),
//!   as in espeak-ng (and in the sentence rule).
//! * A spaced em or en dash ends a clause that Piper marks with `;`, as
//!   espeak-ng's clause table does.
//! * An ellipsis `…` ends a clause without punctuation (`Wait… what`: one
//!   sentence, two clauses).

use hearth_plugin_api::text::split_sentences;

/// One clause: the text handed to espeak-ng and the punctuation Piper keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clause<'a> {
    /// The clause's text, terminator included, trimmed.
    pub text: &'a str,
    /// The punctuation appended to the clause's phonemes, if any.
    pub terminator: Option<char>,
}

/// One sentence: what one inference speaks and one audio chunk carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sentence<'a> {
    /// The sentence as written, trimmed; sent along with its audio.
    pub text: &'a str,
    /// Its clauses, in order; never empty.
    pub clauses: Vec<Clause<'a>>,
}

/// Characters that may follow a terminator before the white space.
fn is_closer(c: char) -> bool {
    matches!(c, '"' | '\'' | ')' | ']' | '}' | '»' | '”' | '’')
}

/// Whether a character ends a clause, and if so the punctuation Piper keeps
/// for that clause.
fn clause_end(c: char) -> Option<Option<char>> {
    match c {
        '.' | '!' | '?' | ',' | ';' | ':' => Some(Some(c)),
        '—' | '–' => Some(Some(';')),
        '…' => Some(None),
        _ => None,
    }
}

/// Splits `text` into sentences (by [the shared rule](hearth_plugin_api::text))
/// of clauses. White space only gives nothing.
pub fn sentences(text: &str) -> Vec<Sentence<'_>> {
    split_sentences(text)
        .into_iter()
        .map(|text| Sentence {
            text,
            clauses: clauses(text),
        })
        .collect()
}

/// Splits one sentence into its clauses; a sentence has something to say, so
/// there is at least one.
fn clauses(sentence: &str) -> Vec<Clause<'_>> {
    let mut out = Vec::new();
    let mut clause_start = 0;
    let chars: Vec<(usize, char)> = sentence.char_indices().collect();
    let mut k = 0;
    while k < chars.len() {
        let c = chars[k].1;
        let Some(terminator) = clause_end(c) else {
            k += 1;
            continue;
        };
        // Closing quotes and brackets belong to the clause they close.
        let mut m = k + 1;
        while m < chars.len() && is_closer(chars[m].1) {
            m += 1;
        }
        let end = chars.get(m).map_or(sentence.len(), |&(j, _)| j);
        let at_boundary = match chars.get(m) {
            None => true,
            Some(&(_, next)) => next.is_whitespace() && !(c == '.' && lower_case_follows(&chars[m..])),
        };
        if !at_boundary {
            k += 1;
            continue;
        }
        push_clause(&mut out, &sentence[clause_start..end], terminator);
        clause_start = end;
        k = m;
    }
    push_clause(&mut out, &sentence[clause_start..], None);
    out
}

/// True when the next non-blank character is a lower-case letter.
fn lower_case_follows(rest: &[(usize, char)]) -> bool {
    rest.iter()
        .map(|&(_, c)| c)
        .find(|c| !c.is_whitespace())
        .is_some_and(char::is_lowercase)
}

fn push_clause<'a>(clauses: &mut Vec<Clause<'a>>, text: &'a str, terminator: Option<char>) {
    let text = text.trim();
    if !text.is_empty() {
        clauses.push(Clause { text, terminator });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(text: &str) -> Vec<Vec<(&str, Option<char>)>> {
        sentences(text)
            .into_iter()
            .map(|s| s.clauses.into_iter().map(|c| (c.text, c.terminator)).collect())
            .collect()
    }

    #[test]
    fn sentences_and_clauses() {
        assert_eq!(
            shape("Hello world. How are you, my friend? Fine"),
            vec![
                vec![("Hello world.", Some('.'))],
                vec![("How are you,", Some(',')), ("my friend?", Some('?'))],
                vec![("Fine", None)],
            ]
        );
    }

    #[test]
    fn sentence_text_is_the_original_span() {
        let s = sentences("  One: two.  Three!  ");
        assert_eq!(
            s.iter().map(|s| s.text).collect::<Vec<_>>(),
            vec!["One: two.", "Three!"]
        );
    }

    #[test]
    fn numbers_and_abbreviations_do_not_split() {
        assert_eq!(
            shape("It costs $3.50, or 1,000 at 10:30; e.g. this one."),
            vec![vec![
                ("It costs $3.50,", Some(',')),
                ("or 1,000 at 10:30;", Some(';')),
                ("e.g. this one.", Some('.')),
            ]]
        );
    }

    #[test]
    fn quotes_stay_with_their_clause() {
        assert_eq!(
            shape("He asked \"why?\" Then left."),
            vec![vec![("He asked \"why?\"", Some('?'))], vec![("Then left.", Some('.'))]]
        );
    }

    #[test]
    fn dashes_ellipses_and_line_breaks() {
        assert_eq!(
            shape("Café déjà vu — naïve! One… two\n\nThree"),
            vec![
                vec![("Café déjà vu —", Some(';')), ("naïve!", Some('!'))],
                vec![("One…", None), ("two", None)],
                vec![("Three", None)],
            ]
        );
        // An unspaced dash is part of a word.
        assert_eq!(shape("1990–2000"), vec![vec![("1990–2000", None)]]);
    }

    #[test]
    fn repeated_punctuation_ends_once() {
        assert_eq!(
            shape("Really?! Yes..."),
            vec![vec![("Really?!", Some('!'))], vec![("Yes...", Some('.'))]]
        );
    }

    #[test]
    fn sentences_are_the_shared_rules() {
        let text = "Wait… what? One; two: three\nfour e.g. five. ... Dr. Smith 好。好";
        assert_eq!(
            sentences(text).iter().map(|s| s.text).collect::<Vec<_>>(),
            hearth_plugin_api::text::split_sentences(text)
        );
        assert_eq!(
            shape(text),
            vec![
                vec![("Wait…", None), ("what?", Some('?'))],
                vec![("One;", Some(';')), ("two:", Some(':')), ("three", None)],
                vec![("four e.g. five.", Some('.'))],
                vec![("Dr.", Some('.'))],
                vec![("Smith 好。", None)],
                vec![("好", None)],
            ]
        );
    }

    #[test]
    fn long_sentences_are_cut() {
        let text = "word ".repeat(200);
        let s = sentences(&text);
        assert_eq!(s.len(), 3);
        assert!(s
            .iter()
            .all(|s| s.text.chars().count() <= hearth_plugin_api::text::MAX_SENTENCE_CHARS));
    }

    #[test]
    fn nothing_to_say() {
        assert!(sentences("").is_empty());
        assert!(sentences("  \n\n \t ").is_empty());
        assert!(sentences("... — !").is_empty());
    }
}
