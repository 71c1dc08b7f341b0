//! Sentences: where they end (Unicode boundaries, not after the packs' abbreviations and
//! initials), and the shape of text that is no sentence at all (a decoding loop).

use std::collections::BTreeSet;
use std::sync::LazyLock;

use unicode_segmentation::UnicodeSegmentation;

use crate::language;

/// Whether text ends as a sentence or clause does (so a line ending otherwise was wrapped,
/// and a generation ending otherwise was cut).
pub fn ends_sentence(text: &str) -> bool {
    text.trim_end()
        .ends_with(['.', '!', '?', ':', ';', '"', '”', '»', ')', '؟', '。'])
}

/// Titles and abbreviations after which a full stop does not end the sentence: every pack's
/// (a text's language is not always known where it is split, and an English translation
/// keeps its source's "Sr."). Unicode sentence boundaries alone split "St. Martin" and
/// "Sr. Silva" in two.
static ABBREVIATIONS: LazyLock<BTreeSet<String>> = LazyLock::new(|| {
    language::packs()
        .all()
        .flat_map(|p| p.abbreviations.iter().cloned())
        .collect()
});

/// Whether a full stop at the end of `piece` belongs to an abbreviation or an initial.
fn ends_with_abbreviation(piece: &str) -> bool {
    let Some(last) = piece.split_whitespace().last() else {
        return false;
    };
    let word = last.trim_start_matches(['(', '"', '“', '«', '\'']);
    if ABBREVIATIONS.contains(word) {
        return true;
    }
    // An initial: one capital letter and a full stop ("J. K. Rowling").
    let mut chars = word.chars();
    matches!((chars.next(), chars.next(), chars.next()), (Some(c), Some('.'), None) if c.is_uppercase())
}

/// Sentences of a paragraph (Unicode sentence boundaries, not after abbreviations and
/// initials, nor before a lower-case continuation), trimmed.
pub fn sentences(paragraph: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut join_next = false;
    for piece in paragraph.split_sentence_bounds().map(str::trim) {
        if piece.is_empty() {
            continue;
        }
        let continues = piece.chars().next().is_some_and(|c| c.is_lowercase());
        match out.last_mut() {
            Some(prev) if join_next || continues => {
                prev.push(' ');
                prev.push_str(piece);
            }
            _ => out.push(piece.to_string()),
        }
        join_next = ends_with_abbreviation(out.last().expect("pushed above"));
    }
    out
}

/// Drops the last of `sentences` when it is unfinished (a generation cut by its token
/// budget), unless it is the only one.
pub fn drop_unfinished_last(sentences: &mut Vec<String>) {
    if sentences.len() > 1 && !sentences.last().is_some_and(|s| ends_sentence(s)) {
        sentences.pop();
    }
}

/// True when some run of `n` words repeats at least `times` times back to back at the end,
/// the usual shape of a decoding loop.
pub fn has_repetition_loop(text: &str) -> bool {
    let words: Vec<&str> = text.split_whitespace().collect();
    (1..=8).any(|n| {
        let times = if n < 3 { 8 } else { 4 };
        if words.len() < n * times {
            return false;
        }
        let tail = &words[words.len() - n * times..];
        tail.chunks(n).all(|c| c == &tail[..n])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abbreviations_and_initials_do_not_end_sentences() {
        assert_eq!(
            sentences("O Sr. Silva chegou. J. K. Rowling escreveu. Fim."),
            ["O Sr. Silva chegou.", "J. K. Rowling escreveu.", "Fim."]
        );
    }

    #[test]
    fn detects_loops() {
        assert!(has_repetition_loop(&["the market"; 10].join(" ")));
        assert!(!has_repetition_loop(
            "Shares rose 11% on Monday, near a four-year high."
        ));
    }
}
