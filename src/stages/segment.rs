//! Paragraphs → sentences → chunks that fit a translator's input limit. Each chunk knows its
//! paragraph and its place in it, so translations rebuild the paragraphs exactly.

use crate::error::Result;
use crate::language::sentences::sentences;

/// A piece of one paragraph sent to the translator as one unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub paragraph: usize,
    /// Position within the paragraph (0 for a paragraph that fits in one chunk).
    pub part: usize,
    pub text: String,
    pub tokens: usize,
}

/// Splits paragraphs into chunks of at most `max_tokens` as counted by `count`. A paragraph
/// that fits stays whole; a longer one is cut between sentences; a single sentence longer
/// than the limit is cut between words, and a single word longer than it between characters
/// (nothing is ever dropped, and no chunk is ever over the limit).
pub fn chunk_paragraphs(
    paragraphs: &[String],
    max_tokens: usize,
    count: &dyn Fn(&str) -> Result<usize>,
) -> Result<Vec<Chunk>> {
    let mut chunks = Vec::new();
    for (paragraph, text) in paragraphs.iter().enumerate() {
        let tokens = count(text)?;
        if tokens <= max_tokens {
            chunks.push(Chunk {
                paragraph,
                part: 0,
                text: text.clone(),
                tokens,
            });
            continue;
        }
        let mut pieces = Vec::new();
        for sentence in sentences(text) {
            if count(&sentence)? <= max_tokens {
                pieces.push(sentence);
            } else {
                pieces.extend(split_words(&sentence, max_tokens, count)?);
            }
        }
        let mut current = String::new();
        let mut part = 0;
        for piece in pieces {
            let candidate = if current.is_empty() {
                piece.clone()
            } else {
                format!("{current} {piece}")
            };
            if !current.is_empty() && count(&candidate)? > max_tokens {
                let tokens = count(&current)?;
                chunks.push(Chunk {
                    paragraph,
                    part,
                    text: std::mem::replace(&mut current, piece),
                    tokens,
                });
                part += 1;
            } else {
                current = candidate;
            }
        }
        if !current.is_empty() {
            let tokens = count(&current)?;
            chunks.push(Chunk {
                paragraph,
                part,
                text: current,
                tokens,
            });
        }
    }
    Ok(chunks)
}

fn split_words(
    sentence: &str,
    max_tokens: usize,
    count: &dyn Fn(&str) -> Result<usize>,
) -> Result<Vec<String>> {
    let mut pieces = Vec::new();
    let mut current = String::new();
    for word in sentence.split(' ') {
        if count(word)? > max_tokens {
            if !current.is_empty() {
                pieces.push(std::mem::take(&mut current));
            }
            let mut parts = split_characters(word, max_tokens, count)?;
            current = parts.pop().unwrap_or_default();
            pieces.extend(parts);
            continue;
        }
        let candidate = if current.is_empty() {
            word.to_string()
        } else {
            format!("{current} {word}")
        };
        if !current.is_empty() && count(&candidate)? > max_tokens {
            pieces.push(std::mem::replace(&mut current, word.to_string()));
        } else {
            current = candidate;
        }
    }
    if !current.is_empty() {
        pieces.push(current);
    }
    Ok(pieces)
}

/// A token covers at most this many characters (byte-level BPE merges and SentencePiece
/// pieces run shorter): the window each cut of an over-long word is searched in.
const MAX_CHARS_PER_TOKEN: usize = 32;

/// Cuts a word with no spaces (an encoded blob, a run of letters) into pieces of at most
/// `max_tokens`: each piece is the longest prefix that fits, found by bisection over the
/// characters of a bounded window, so the cost stays linear in the word's length.
fn split_characters(
    word: &str,
    max_tokens: usize,
    count: &dyn Fn(&str) -> Result<usize>,
) -> Result<Vec<String>> {
    let mut pieces = Vec::new();
    let mut rest = word;
    while !rest.is_empty() {
        // bounds[k]: the byte offset after k + 1 characters, within the window.
        let bounds: Vec<usize> = rest
            .char_indices()
            .map(|(i, c)| i + c.len_utf8())
            .take(max_tokens.max(1) * MAX_CHARS_PER_TOKEN)
            .collect();
        let fits = |end: usize| count(&rest[..end]).map(|n| n <= max_tokens);
        let last = bounds.len() - 1;
        let end = if fits(bounds[last])? {
            bounds[last]
        } else {
            // bounds[low] fits (one character always does), bounds[high] does not.
            let (mut low, mut high) = (0, last);
            while low + 1 < high {
                let mid = (low + high) / 2;
                if fits(bounds[mid])? {
                    low = mid;
                } else {
                    high = mid;
                }
            }
            bounds[low]
        };
        pieces.push(rest[..end].to_string());
        rest = &rest[end..];
    }
    Ok(pieces)
}

/// Puts translated chunks back into paragraphs, in order; `n_paragraphs` of the source.
pub fn rebuild_paragraphs(
    chunks: &[Chunk],
    translations: &[String],
    n_paragraphs: usize,
) -> Vec<String> {
    let mut paragraphs = vec![String::new(); n_paragraphs];
    let mut order: Vec<usize> = (0..chunks.len()).collect();
    order.sort_by_key(|&i| (chunks[i].paragraph, chunks[i].part));
    for i in order {
        let target = &mut paragraphs[chunks[i].paragraph];
        if !target.is_empty() {
            target.push(' ');
        }
        target.push_str(translations[i].trim());
    }
    paragraphs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_word_longer_than_the_limit_is_cut_between_characters() {
        // One token per three characters, as a stand-in tokenizer.
        let count = |s: &str| Ok(s.chars().count().div_ceil(3));
        let word = "é".repeat(1000);
        let text = format!("Avant {word} après.");
        let chunks = chunk_paragraphs(std::slice::from_ref(&text), 50, &count).unwrap();
        assert!(chunks.iter().all(|c| c.tokens <= 50), "{chunks:?}");
        let rebuilt: String = chunks.iter().map(|c| c.text.replace(' ', "")).collect();
        assert_eq!(rebuilt, text.replace(' ', ""));
    }

    fn words(s: &str) -> Result<usize> {
        Ok(s.split_whitespace().count())
    }

    #[test]
    fn keeps_abbreviations_and_initials_inside_sentences() {
        assert_eq!(
            sentences("A igreja de St. Martin fechou. O Sr. Silva e J. K. Rowling falaram. Fim."),
            [
                "A igreja de St. Martin fechou.",
                "O Sr. Silva e J. K. Rowling falaram.",
                "Fim."
            ]
        );
    }

    #[test]
    fn splits_sentences_in_three_languages() {
        assert_eq!(
            sentences("Il pleut. Le vent souffle! Et après?"),
            ["Il pleut.", "Le vent souffle!", "Et après?"]
        );
        assert_eq!(
            sentences("A taxa subiu 2,5%. O mercado reagiu."),
            ["A taxa subiu 2,5%.", "O mercado reagiu."]
        );
        assert_eq!(
            sentences("ارتفعت الأسهم. وقال المحلل إن السوق قوي؟ نعم."),
            ["ارتفعت الأسهم.", "وقال المحلل إن السوق قوي؟", "نعم."]
        );
    }

    #[test]
    fn chunks_respect_the_limit_and_keep_every_word() {
        let paragraphs = vec![
            "Short one.".to_string(),
            "One two three four. Five six seven. Eight nine ten eleven twelve thirteen fourteen."
                .to_string(),
        ];
        let chunks = chunk_paragraphs(&paragraphs, 5, &words).unwrap();
        assert!(chunks.iter().all(|c| c.tokens <= 5), "{chunks:?}");
        assert_eq!(
            chunks[0],
            Chunk {
                paragraph: 0,
                part: 0,
                text: "Short one.".into(),
                tokens: 2
            }
        );
        let rebuilt = rebuild_paragraphs(
            &chunks,
            &chunks.iter().map(|c| c.text.clone()).collect::<Vec<_>>(),
            2,
        );
        assert_eq!(rebuilt, paragraphs);
    }

    #[test]
    fn rebuild_restores_order_from_shuffled_chunks() {
        let chunks = vec![
            Chunk {
                paragraph: 1,
                part: 1,
                text: "d".into(),
                tokens: 1,
            },
            Chunk {
                paragraph: 0,
                part: 0,
                text: "a".into(),
                tokens: 1,
            },
            Chunk {
                paragraph: 1,
                part: 0,
                text: "c".into(),
                tokens: 1,
            },
        ];
        let out = rebuild_paragraphs(&chunks, &["D".into(), "A".into(), "C".into()], 2);
        assert_eq!(out, ["A", "C D"]);
    }
}
