//! Splitting text into sentences and clauses, the way Piper groups speech.
//!
//! Piper runs one inference per sentence and appends each clause's
//! punctuation to its phonemes, because the voices were trained with it. The
//! upstream recipe gets clause boundaries and their punctuation from a
//! patched espeak-ng (`espeak_TextToPhonemesWithTerminator`); the espeak-ng
//! 1.51 that Debian ships has no such function, and its text pointer runs past
//! the terminator, so the punctuation is lost. We therefore split here, with
//! espeak-ng's own rules where they matter, and hand espeak-ng one clause at a
//! time:
//!
//! * `.` `!` `?` end a sentence, `,` `;` `:` end a clause, when followed by
//!   white space or the end of the text (closing quotes and brackets may sit
//!   in between). So `3.50`, `1,000` and `10:30` do not split.
//! * A `.` followed by a lower-case word does not end anything (`e.g. this`),
//!   as in espeak-ng.
//! * A spaced em or en dash ends a clause that Piper marks with `;`, as
//!   espeak-ng's clause table does.
//! * An ellipsis `…` ends a clause without punctuation.
//! * A blank line ends a sentence without punctuation.

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

/// What a character ends, if it ends something: `(terminator, ends_sentence)`.
fn boundary_kind(c: char) -> Option<(Option<char>, bool)> {
    match c {
        '.' | '!' | '?' => Some((Some(c), true)),
        ',' | ';' | ':' => Some((Some(c), false)),
        '—' | '–' => Some((Some(';'), false)),
        '…' => Some((None, false)),
        _ => None,
    }
}

/// Splits `text` into sentences of clauses. White space only gives nothing.
pub fn sentences(text: &str) -> Vec<Sentence<'_>> {
    let mut out = Vec::new();
    let mut clauses = Vec::new();
    let mut sentence_start = 0;
    let mut clause_start = 0;
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut k = 0;
    while k < chars.len() {
        let (i, c) = chars[k];
        // A blank line: a newline, optional blanks, another newline.
        if c == '\n' {
            let mut m = k + 1;
            while m < chars.len() && chars[m].1 != '\n' && chars[m].1.is_whitespace() {
                m += 1;
            }
            if m < chars.len() && chars[m].1 == '\n' {
                push_clause(&mut clauses, &text[clause_start..i], None);
                finish_sentence(&mut out, &mut clauses, &text[sentence_start..i]);
                clause_start = i;
                sentence_start = i;
                k = m + 1;
                continue;
            }
        }
        let Some((terminator, ends_sentence)) = boundary_kind(c) else {
            k += 1;
            continue;
        };
        // Closing quotes and brackets belong to the clause they close.
        let mut m = k + 1;
        while m < chars.len() && is_closer(chars[m].1) {
            m += 1;
        }
        let end = chars.get(m).map_or(text.len(), |&(j, _)| j);
        let at_boundary = match chars.get(m) {
            None => true,
            Some(&(_, next)) => next.is_whitespace() && !(c == '.' && lower_case_follows(&chars[m..])),
        };
        if !at_boundary {
            k += 1;
            continue;
        }
        push_clause(&mut clauses, &text[clause_start..end], terminator);
        clause_start = end;
        if ends_sentence {
            finish_sentence(&mut out, &mut clauses, &text[sentence_start..end]);
            sentence_start = end;
        }
        k = m;
    }
    push_clause(&mut clauses, &text[clause_start..], None);
    finish_sentence(&mut out, &mut clauses, &text[sentence_start..]);
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

fn finish_sentence<'a>(out: &mut Vec<Sentence<'a>>, clauses: &mut Vec<Clause<'a>>, text: &'a str) {
    if !clauses.is_empty() {
        out.push(Sentence {
            text: text.trim(),
            clauses: std::mem::take(clauses),
        });
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
    fn dashes_ellipses_and_blank_lines() {
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
    fn nothing_to_say() {
        assert!(sentences("").is_empty());
        assert!(sentences("  \n\n \t ").is_empty());
    }
}
