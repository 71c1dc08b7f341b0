//! Grounds the brief in its sources: each sentence without a citation gets the source whose
//! summary sentence it repeats (word overlap), and sentences the model wrote twice go.

use std::collections::{BTreeSet, HashSet};
use std::sync::LazyLock;

use regex::Regex;

use crate::check::{Flag, FlagKind};
use crate::segment;

/// Share of a brief sentence's words that must come from one summary sentence to cite it.
const MIN_OVERLAP: f64 = 0.6;

/// A citation: `[n]`, or several numbers in one pair of brackets, `[1, 2]`.
static CITATION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\[(\d+(?:\s*,\s*\d+)*)\]").expect("valid regex"));

/// Every source number the text cites.
pub fn cited_sources(text: &str) -> BTreeSet<usize> {
    CITATION
        .captures_iter(text)
        .flat_map(|cap| {
            cap[1]
                .split(',')
                .filter_map(|s| s.trim().parse::<usize>().ok())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Citations that name no source.
pub fn check_citations(brief: &str, n_sources: usize) -> Vec<Flag> {
    cited_sources(brief)
        .into_iter()
        .filter(|&n| n == 0 || n > n_sources)
        .map(|n| Flag {
            kind: FlagKind::Citation,
            message: format!("the brief cites [{n}], but there are only {n_sources} sources"),
        })
        .collect()
}

fn words(text: &str) -> HashSet<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() >= 3)
        .map(str::to_lowercase)
        .collect()
}

/// The source numbers (1-based) whose summaries contain a sentence this one mostly repeats.
fn attribute(sentence: &str, summaries: &[String]) -> Vec<usize> {
    let own = words(sentence);
    if own.is_empty() {
        return Vec::new();
    }
    let mut best = (0.0, Vec::new());
    for (i, summary) in summaries.iter().enumerate() {
        for candidate in segment::sentences(summary) {
            let shared = own.intersection(&words(&candidate)).count() as f64 / own.len() as f64;
            if shared > best.0 + 1e-9 {
                best = (shared, vec![i + 1]);
            } else if (shared - best.0).abs() <= 1e-9 && !best.1.contains(&(i + 1)) {
                best.1.push(i + 1);
            }
        }
    }
    if best.0 >= MIN_OVERLAP {
        best.1
    } else {
        Vec::new()
    }
}

/// Returns the brief with repeated sentences removed and citations added where a sentence
/// repeats a source's summary but cites nothing; also the number of citations added.
pub fn ground(brief: &str, summaries: &[String]) -> (String, usize) {
    let cite = &*CITATION;
    let mut seen = HashSet::new();
    let mut added = 0;
    let paragraphs: Vec<String> = brief
        .split("\n\n")
        .map(|paragraph| {
            let mut kept: Vec<String> = Vec::new();
            let mut trailing_groups = Vec::new();
            for sentence in segment::sentences(paragraph) {
                let bare = cite
                    .replace_all(&sentence, "")
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ");
                if bare.is_empty() {
                    // A citation group standing alone: kept only if it cites something the
                    // sentences do not already cite themselves.
                    trailing_groups.push(sentence.trim().to_string());
                    continue;
                }
                if !seen.insert(bare.to_lowercase()) {
                    continue;
                }
                if cite.is_match(&sentence) {
                    kept.push(sentence);
                    continue;
                }
                let sources = attribute(&bare, summaries);
                if sources.is_empty() {
                    kept.push(sentence);
                } else {
                    added += 1;
                    let tags: String = sources.iter().map(|n| format!("[{n}]")).collect();
                    let (body, end) = split_final_punctuation(&sentence);
                    kept.push(format!("{body} {tags}{end}"));
                }
            }
            if kept.iter().any(|s| !cite.is_match(s)) {
                kept.extend(trailing_groups);
            }
            kept.join(" ")
        })
        .filter(|p| !p.is_empty())
        .collect();
    (paragraphs.join("\n\n"), added)
}

fn split_final_punctuation(sentence: &str) -> (&str, &str) {
    let trimmed = sentence.trim_end();
    match trimmed.char_indices().last() {
        Some((i, '.' | '!' | '?')) => (&trimmed[..i], &trimmed[i..]),
        _ => (trimmed, ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uncited_sentences_get_the_source_they_repeat() {
        let summaries = vec![
            "CleanSpark hired Jeffrey Thomas to lead its AI data centers.".to_string(),
            "Nvidia invested $683 million in Nscale. Shares rose.".to_string(),
        ];
        let brief = "CleanSpark hired Jeffrey Thomas to lead AI data centers. Nvidia invested $683 million in Nscale [2]. Markets were calm.";
        let (grounded, added) = ground(brief, &summaries);
        assert_eq!(
            grounded,
            "CleanSpark hired Jeffrey Thomas to lead AI data centers [1]. Nvidia invested $683 million in Nscale [2]. Markets were calm."
        );
        assert_eq!(added, 1);
    }

    #[test]
    fn a_paragraph_citation_is_dropped_only_when_every_sentence_cites() {
        let (grounded, _) = ground("A fact [1]. Another fact [2]. [1][2]", &[]);
        assert_eq!(grounded, "A fact [1]. Another fact [2].");
        let (grounded, _) = ground("A fact [1]. An unsourced claim. [1][2]", &[]);
        assert_eq!(grounded, "A fact [1]. An unsourced claim. [1][2]");
    }

    #[test]
    fn citations_are_checked_against_the_source_count() {
        assert!(check_citations("A [1]. B [2, 3].", 3).is_empty());
        assert_eq!(check_citations("A [4]. B [0].", 3).len(), 2);
        assert_eq!(
            cited_sources("A [1][3]. B [2, 3]."),
            [1, 2, 3].into_iter().collect()
        );
    }

    #[test]
    fn repeated_sentences_are_dropped() {
        let (grounded, _) = ground("A fact here [1]. Another fact [2]. A fact here [1].", &[]);
        assert_eq!(grounded, "A fact here [1]. Another fact [2].");
    }
}
