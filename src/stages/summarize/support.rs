//! Whether an English sentence (of a summary or of the brief) says only what its evidence
//! (the English text of the articles it rests on) says: its names, its figures, and its
//! content words, clause by clause. A clause between commas that the evidence does not
//! support ("CleanSpark, a leading provider of AI data centers, hired …") is cut from the
//! sentence; a sentence with an unsupported name, figure or main clause is unsupported.
//! Also: which translated sentences a claim rests on, to carry their low confidence over.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use regex::Regex;

use crate::domain::{Flag, FlagKind, TranslatedSentence};
use crate::language;
use crate::language::names::english_name_words;
use crate::language::numbers;

/// Share of a clause's content words the evidence must have.
const MIN_CLAUSE_SUPPORT: f64 = 0.5;
/// Share of a whole sentence's content words the evidence must have.
const MIN_SENTENCE_SUPPORT: f64 = 0.6;
/// Content words a clause may miss before its share is looked at.
const FORGIVEN_WORDS: usize = 1;

static CLAUSE_COMMA: LazyLock<Regex> = LazyLock::new(|| Regex::new(r",\s+").expect("valid regex"));
static CITATION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\s*\[\d+(?:\s*,\s*\d+)*\]").expect("valid regex"));

/// A word's stem for matching: its first five letters (appointed ~ appointment), the whole
/// word when shorter. Crude, but English inflection lives mostly at the end.
fn stem(word: &str) -> String {
    word.chars().take(5).collect()
}

/// The lower-cased content words of `text`: letters only, three or more, no function words.
fn content_words(text: &str) -> Vec<String> {
    let function = &language::english().function_words;
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 3 && w.chars().all(char::is_alphabetic))
        .map(str::to_lowercase)
        .filter(|w| !function.contains(w))
        .collect()
}

/// What the evidence offers: its word stems, name words and figures.
pub struct Evidence {
    stems: BTreeSet<String>,
    names: BTreeSet<String>,
    values: Vec<f64>,
}

impl Evidence {
    /// Evidence from English texts, plus the figures of the originals (`(text, lang)`).
    pub fn new(english: &[&str], originals: &[(&str, &str)]) -> Evidence {
        let mut stems = BTreeSet::new();
        let mut names = BTreeSet::new();
        let mut values = Vec::new();
        for text in english {
            stems.extend(content_words(text).iter().map(|w| stem(w)));
            names.extend(
                text.split(|c: char| !c.is_alphanumeric())
                    .filter(|w| !w.is_empty())
                    .map(str::to_lowercase),
            );
            values.extend(numbers::all_values(text, "en"));
        }
        for (text, lang) in originals {
            values.extend(numbers::all_values(text, lang));
            // Latin-script names of the original count as written.
            names.extend(
                text.split(|c: char| !c.is_alphanumeric())
                    .filter(|w| !w.is_empty())
                    .map(str::to_lowercase),
            );
        }
        Evidence {
            stems,
            names,
            values,
        }
    }

    fn supports_word(&self, word: &str) -> bool {
        self.stems.contains(&stem(word))
    }
}

/// The verdict on one sentence.
#[derive(Debug, Clone, PartialEq)]
pub enum Support {
    /// Supported as written.
    Supported,
    /// Supported once these clauses are cut; the repaired sentence.
    Repaired { sentence: String, cut: Vec<String> },
    /// Not supported, and why.
    Unsupported(String),
}

/// Checks `sentence` (citations ignored) against `evidence`.
pub fn check(sentence: &str, evidence: &Evidence) -> Support {
    let bare = CITATION.replace_all(sentence, "").to_string();
    let english = language::english();
    // The first word is capitalized as a sentence start ("Additionally, …"): a name only
    // when it looks like one (CamelCase, an acronym).
    let opening = bare
        .split_whitespace()
        .next()
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()))
        .filter(|w| w.chars().skip(1).all(|c| !c.is_uppercase()))
        .map(str::to_lowercase);
    let names: Vec<String> = english_name_words(&bare, 3)
        .into_iter()
        .filter(|n| Some(n) != opening.as_ref())
        .filter(|n| !english.common_words.contains(n) && !english.function_words.contains(n))
        // "Nevada-based", "O'Brien": the evidence holds their parts.
        .filter(|n| {
            n.split(['-', '\'', '’', '&'])
                .filter(|part| part.chars().count() >= 3)
                .any(|part| !evidence.names.contains(part))
        })
        .collect();
    if !names.is_empty() {
        return Support::Unsupported(format!("no source names {}", names.join(", ")));
    }
    let figures: Vec<String> = numbers::numbers(&bare, "en")
        .into_iter()
        .filter(|(_, values)| {
            !values
                .iter()
                .any(|v| evidence.values.iter().any(|e| numbers::same(*v, *e)))
        })
        .map(|(literal, _)| literal)
        .collect();
    if !figures.is_empty() {
        return Support::Unsupported(format!("no source gives {}", figures.join(", ")));
    }
    // Clause by clause: a clause set off by commas on both sides can go on its own. Only a
    // comma before a space ends a clause ("1,200" is one number).
    let pieces: Vec<&str> = CLAUSE_COMMA.split(sentence).collect();
    let mut cut = Vec::new();
    let mut repaired = String::new();
    let mut after_cut = false;
    for (i, piece) in pieces.iter().enumerate() {
        let own = content_words(piece);
        let missing = own.iter().filter(|w| !evidence.supports_word(w)).count();
        let unsupported = missing > FORGIVEN_WORDS
            && ((own.len() - missing) as f64) <= MIN_CLAUSE_SUPPORT * own.len() as f64;
        if unsupported {
            if i == 0 || i + 1 == pieces.len() {
                return Support::Unsupported(format!(
                    "its sources do not support \"{}\"",
                    piece.trim()
                ));
            }
            cut.push(piece.trim().to_string());
            after_cut = true;
            continue;
        }
        // A clause cut from between two commas takes both commas with it.
        if i > 0 {
            repaired.push_str(if after_cut { " " } else { ", " });
        }
        repaired.push_str(piece.trim_start());
        after_cut = false;
    }
    // What is left must rest on its sources as a whole.
    let words = content_words(&CITATION.replace_all(&repaired, ""));
    let supported = words.iter().filter(|w| evidence.supports_word(w)).count();
    if !words.is_empty() && (supported as f64) < MIN_SENTENCE_SUPPORT * words.len() as f64 {
        return Support::Unsupported(format!(
            "only {supported} of its {} content words are in its sources",
            words.len()
        ));
    }
    if cut.is_empty() {
        return Support::Supported;
    }
    Support::Repaired {
        sentence: repaired,
        cut,
    }
}

/// `sentence` as kept once checked against `evidence`: as written, repaired, or `None` when
/// removed; what was cut or removed from `place` ("the summary") is flagged, a cut saying
/// `cut_because` ("the article does not say it").
pub fn keep_supported(
    sentence: String,
    evidence: &Evidence,
    place: &str,
    cut_because: &str,
    flags: &mut Vec<Flag>,
) -> Option<String> {
    match check(&sentence, evidence) {
        Support::Supported => Some(sentence),
        Support::Repaired { sentence, cut } => {
            flags.push(Flag {
                kind: FlagKind::UnsupportedClaim,
                message: format!(
                    "cut from {place}, as {cut_because}: \"{}\"",
                    cut.join("\", \"")
                ),
            });
            Some(sentence)
        }
        Support::Unsupported(why) => {
            flags.push(Flag {
                kind: FlagKind::UnsupportedClaim,
                message: format!("removed from {place} ({why}): \"{}\"", sentence.trim()),
            });
            None
        }
    }
}

/// The translated sentences that `claim` rests on most: the best word overlap among
/// `sentences` (at least a fifth of the claim's content words).
pub fn resting_on<'a>(
    claim: &str,
    sentences: &'a [TranslatedSentence],
) -> Option<&'a TranslatedSentence> {
    let own: BTreeSet<String> = content_words(claim).iter().map(|w| stem(w)).collect();
    if own.is_empty() {
        return None;
    }
    let mut best: Option<(&TranslatedSentence, usize)> = None;
    for s in sentences {
        let theirs: BTreeSet<String> = content_words(&s.text).iter().map(|w| stem(w)).collect();
        let shared = own.intersection(&theirs).count();
        if best.is_none_or(|(_, b)| shared > b) {
            best = Some((s, shared));
        }
    }
    best.filter(|(_, shared)| *shared * 5 >= own.len() && *shared > 0)
        .map(|(s, _)| s)
}

/// Near-duplicate sentences: most content words shared (Jaccard ≥ 0.8 on stems).
pub fn same_claim(a: &str, b: &str) -> bool {
    let sa: BTreeSet<String> = content_words(a).iter().map(|w| stem(w)).collect();
    let sb: BTreeSet<String> = content_words(b).iter().map(|w| stem(w)).collect();
    if sa.is_empty() || sb.is_empty() {
        return a.trim() == b.trim();
    }
    let shared = sa.intersection(&sb).count() as f64;
    shared / (sa.len() + sb.len()) as f64 * 2.0 >= 0.8
        || shared / sa.union(&sb).count() as f64 >= 0.8
}

#[cfg(test)]
mod tests {
    use super::*;

    fn evidence() -> Evidence {
        Evidence::new(
            &["CleanSpark, the Bitcoin mining company, named Jeffrey Thomas to lead its new AI data centers division. Its shares rose 11% on Monday."],
            &[],
        )
    }

    #[test]
    fn a_faithful_sentence_is_supported() {
        assert_eq!(
            check(
                "CleanSpark named Jeffrey Thomas to lead its AI data centers [1].",
                &evidence()
            ),
            Support::Supported
        );
    }

    #[test]
    fn an_unsupported_characterisation_is_cut() {
        let verdict = check(
            "CleanSpark, a leading provider of cloud services worldwide, named Jeffrey Thomas to lead its AI data centers [1].",
            &evidence(),
        );
        match verdict {
            Support::Repaired { sentence, cut } => {
                assert_eq!(
                    sentence,
                    "CleanSpark named Jeffrey Thomas to lead its AI data centers [1]."
                );
                assert_eq!(cut, ["a leading provider of cloud services worldwide"]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn openers_compounds_and_grouped_numbers_are_read_as_written() {
        let evidence = Evidence::new(
            &["The Nevada-based miner CleanSpark will hire 1,200 technicians, its chief said."],
            &[],
        );
        for sentence in [
            "Additionally, the Nevada-based CleanSpark will hire 1,200 technicians [1].",
            "Overall, CleanSpark will hire 1,200 technicians, its chief said [1].",
        ] {
            assert_eq!(check(sentence, &evidence), Support::Supported, "{sentence}");
        }
    }

    #[test]
    fn invented_names_figures_and_claims_are_unsupported() {
        for sentence in [
            "CleanSpark named Maria Lopez to lead its AI data centers [1].",
            "CleanSpark shares rose 14% on Monday [1].",
            "The regulator fined the firm over environmental violations in Texas [1].",
        ] {
            assert!(
                matches!(check(sentence, &evidence()), Support::Unsupported(_)),
                "{sentence}"
            );
        }
    }

    #[test]
    fn near_duplicates_are_one_claim() {
        assert!(same_claim(
            "CleanSpark named Jeffrey Thomas to lead AI data centers.",
            "CleanSpark has named Jeffrey Thomas to lead its AI data centers."
        ));
        assert!(!same_claim(
            "CleanSpark named Jeffrey Thomas.",
            "Shares rose 11% on Monday."
        ));
    }
}
