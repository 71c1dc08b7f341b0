//! Grounds the brief in its sources: each sentence without a citation gets the source whose
//! summary sentence it repeats (word overlap), and sentences the model wrote twice go.

use std::collections::{BTreeSet, HashSet};
use std::sync::LazyLock;

use regex::Regex;

use crate::domain::{Flag, FlagKind};
use crate::language::numbers;
use crate::language::sentences::sentences;

/// Share of a brief sentence's words that must come from one summary sentence to cite it.
const MIN_OVERLAP: f64 = 0.6;

/// A citation: `[n]`, or several numbers in one pair of brackets, `[1, 2]`.
static CITATION: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\[(\d+(?:\s*,\s*\d+)*)\]").expect("valid regex"));

/// Every citation group of `text`: its byte range and the source numbers it names.
pub fn citation_groups(text: &str) -> Vec<(std::ops::Range<usize>, Vec<usize>)> {
    CITATION
        .captures_iter(text)
        .map(|cap| {
            let numbers = cap[1]
                .split(',')
                .filter_map(|s| s.trim().parse::<usize>().ok())
                .collect();
            (cap.get(0).expect("the whole match").range(), numbers)
        })
        .collect()
}

/// Every source number the text cites.
pub fn cited_sources(text: &str) -> BTreeSet<usize> {
    citation_groups(text)
        .into_iter()
        .flat_map(|(_, numbers)| numbers)
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

/// The source numbers (1-based) whose summaries this sentence mostly repeats: one of their
/// sentences, or else several of them merged into one (then the whole summary is compared).
fn attribute(sentence: &str, summaries: &[String]) -> Vec<usize> {
    let own = words(sentence);
    if own.is_empty() {
        return Vec::new();
    }
    for whole_summaries in [false, true] {
        let mut best = (0.0, Vec::new());
        for (i, summary) in summaries.iter().enumerate() {
            let candidates = if whole_summaries {
                vec![summary.clone()]
            } else {
                sentences(summary)
            };
            for candidate in candidates {
                let shared = own.intersection(&words(&candidate)).count() as f64 / own.len() as f64;
                if shared > best.0 + 1e-9 {
                    best = (shared, vec![i + 1]);
                } else if (shared - best.0).abs() <= 1e-9 && !best.1.contains(&(i + 1)) {
                    best.1.push(i + 1);
                }
            }
        }
        if best.0 >= MIN_OVERLAP {
            return best.1;
        }
    }
    Vec::new()
}

/// Citation groups placed after a sentence's period go before it ("… high. [2]" becomes
/// "… high [2]."), and a group repeated back to back is kept once, so that each sentence
/// carries its own citations.
pub fn normalize_citations(text: &str) -> String {
    static AFTER_PERIOD: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"([.!?])((?:\s*\[\d+(?:\s*,\s*\d+)*\])+)").expect("valid regex")
    });
    static REPEATED: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(\[\d+(?:\s*,\s*\d+)*\])(?:\s*\[\d+(?:\s*,\s*\d+)*\])+").expect("valid regex")
    });
    let moved = AFTER_PERIOD.replace_all(text, |c: &regex::Captures| {
        let groups: String = c[2].split_whitespace().collect();
        format!(" {groups}{}", &c[1])
    });
    let deduped = REPEATED.replace_all(&moved, |c: &regex::Captures| {
        let mut seen: Vec<String> = Vec::new();
        for g in CITATION.find_iter(&c[0]) {
            let g = g.as_str().to_string();
            if !seen.contains(&g) {
                seen.push(g);
            }
        }
        seen.concat()
    });
    deduped
        .split(' ')
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
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
            for sentence in sentences(paragraph) {
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
                // Compared on words alone: "volatility [3]." and "volatility[3]." are one.
                let key: Vec<String> = bare
                    .split(|c: char| !c.is_alphanumeric())
                    .filter(|w| !w.is_empty())
                    .map(str::to_lowercase)
                    .collect();
                if !seen.insert(key.join(" ")) {
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

/// Removes the sentences of `brief` that give a number whose value is none of `supported`
/// (the numbers of the source articles), with a flag for each: a figure in a brief must
/// come from a source. Citations are not figures.
pub fn drop_unsupported_numbers(brief: &str, supported: &[f64]) -> (String, Vec<Flag>) {
    let mut flags = Vec::new();
    let paragraphs: Vec<String> = brief
        .split("\n\n")
        .map(|paragraph| {
            sentences(paragraph)
                .into_iter()
                .filter(|sentence| {
                    let bare = CITATION.replace_all(sentence, "");
                    let unsupported: Vec<String> = numbers::numbers(&bare, "en")
                        .into_iter()
                        .filter(|(_, values)| {
                            !values
                                .iter()
                                .any(|v| supported.iter().any(|s| numbers::same(*v, *s)))
                        })
                        .map(|(literal, _)| literal)
                        .collect();
                    if unsupported.is_empty() {
                        return true;
                    }
                    flags.push(Flag {
                        kind: FlagKind::UnsupportedNumber,
                        message: format!(
                            "removed from the brief, as no source article has {}: \"{}\"",
                            unsupported.join(", "),
                            sentence.trim()
                        ),
                    });
                    false
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|p| !p.is_empty())
        .collect();
    (paragraphs.join("\n\n"), flags)
}

/// A sentence without its final period, and that period with any closing quotes after it
/// (`worked on "beauti-computing."`: a citation placed after the quote would begin the next
/// sentence, so it goes before the period).
pub fn split_final_punctuation(sentence: &str) -> (&str, &str) {
    let trimmed = sentence.trim_end();
    let unquoted = trimmed.trim_end_matches(['"', '”', '»', '’', '\'']);
    match unquoted.char_indices().last() {
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
        // Facts of several sentences of one summary merged into one sentence.
        let summaries = vec![
            "Thomas has 40 years of experience. He built world-class teams. He closed deals with cloud giants.".to_string(),
            "Nvidia invested $683 million in Nscale.".to_string(),
        ];
        let (grounded, _) = ground(
            "Thomas has 40 years of experience, built world-class teams and closed deals with cloud giants.",
            &summaries,
        );
        assert!(grounded.ends_with("cloud giants [1]."), "{grounded}");
        // A sentence ending in a quotation keeps its citation: after the quote it would begin
        // the next sentence (the sample brief's "beauti-computing" sentence lost its [1]).
        let summaries = vec!["Thomas built teams and worked on \"beauti-computing.\"".to_string()];
        let (grounded, _) = ground(
            "Thomas built teams and worked on \"beauti-computing.\" [1, 2] Markets rose.",
            &summaries,
        );
        assert_eq!(
            sentences(&grounded)[0],
            "Thomas built teams and worked on \"beauti-computing [1].\""
        );
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
    fn sentences_with_figures_no_source_has_are_removed() {
        let supported = [683e6, 11.0, 1000.0];
        let (kept, flags) = drop_unsupported_numbers(
            "Nvidia invested $683 million [3]. Shares rose 14% [1]. It hires 1,000 people [2].",
            &supported,
        );
        assert_eq!(
            kept,
            "Nvidia invested $683 million [3]. It hires 1,000 people [2]."
        );
        assert_eq!(flags.len(), 1);
        assert!(flags[0].message.contains("14"), "{}", flags[0].message);
    }

    #[test]
    fn citations_after_a_period_move_before_it() {
        assert_eq!(
            normalize_citations("Shares rose 11%. [2] Thomas leads it [1][1]. Done [3]."),
            "Shares rose 11% [2]. Thomas leads it [1]. Done [3]."
        );
        assert_eq!(
            normalize_citations("A source [5]. [5] Next one."),
            "A source [5]. Next one."
        );
    }

    #[test]
    fn repeated_sentences_are_dropped() {
        let (grounded, _) = ground("A fact here [1]. Another fact [2]. A fact here [1].", &[]);
        assert_eq!(grounded, "A fact here [1]. Another fact [2].");
        let (grounded, _) = ground("Markets are volatile [3]. Markets are volatile[3].", &[]);
        assert_eq!(grounded, "Markets are volatile [3].");
    }
}
