//! Where the sources of a brief disagree. Facts are read from each article's English text
//! clause by clause: an amount with its unit (percent, a currency, or a count of a topic the
//! English pack marks as counted: jobs, power), the names and the topic around it. A fact is kept only when its value is
//! also in the article's original text, so a translation slip cannot create a disagreement.
//! Two facts about the same name and topic in the same unit with different values disagree:
//! across articles, or between an article's headline and its body.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use crate::domain::{Claim, Difference};
use crate::language;
use crate::language::names::{capitalized_words, english_name_words};
use crate::language::numbers::{self, amounts_with_spans, bare_counts, Unit};
use crate::language::sentences::sentences;
use regex::Regex;

/// One article as the reconciliation sees it.
pub struct Source<'a> {
    /// Its number in the brief, from 1.
    pub n: usize,
    /// The original text and its language.
    pub original: &'a str,
    pub lang: &'a str,
    pub title_en: &'a str,
    pub body_en: &'a str,
}

#[derive(Debug, Clone)]
struct Fact {
    source: usize,
    value: f64,
    shown: String,
    unit: Unit,
    names: BTreeSet<String>,
    topics: BTreeSet<&'static str>,
    times: BTreeSet<String>,
    in_headline: bool,
    clause: String,
}

static CLAUSE_BREAK: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[,;:()]|\s(?:while|whereas|but|and|after|before|although)\s").expect("valid regex")
});
static TIME_MARK: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday|january|february|march|april|may|june|july|august|september|october|november|december|(?:19|20)\d\d|\d+ (?:hours?|days?|weeks?|months?|years?)|this (?:week|month|year|quarter))\b").expect("valid regex")
});
static QUALIFIER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)\b(?:more than|over|about|around|nearly|almost|up to|at least|roughly|approximately|some|close to|less than|under)$").expect("valid regex")
});

fn words(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '/'))
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// The facts of one text (headline or body) of source `n`, kept when `original` has the value.
fn facts_of(text: &str, n: usize, in_headline: bool, original: &[f64]) -> Vec<Fact> {
    let mut out = Vec::new();
    let topics_of = &language::english().topics;
    for sentence in sentences(text) {
        for clause in CLAUSE_BREAK.split(&sentence) {
            let clause = clause.trim();
            let lower = words(clause);
            let topics: BTreeSet<&'static str> = topics_of
                .iter()
                .filter(|t| t.words.iter().any(|m| lower.contains(m)))
                .map(|t| t.name.as_str())
                .collect();
            let names: BTreeSet<String> = english_name_words(clause, 2)
                .into_iter()
                .filter(|w| !TIME_MARK.is_match(w))
                .collect();
            if topics.is_empty() || names.is_empty() {
                continue;
            }
            let times = TIME_MARK
                .find_iter(clause)
                .map(|m| m.as_str().to_lowercase())
                .collect();
            let mut amounts = amounts_with_spans(clause, "en");
            let counted = topics_of
                .iter()
                .any(|t| t.counted && topics.contains(t.name.as_str()));
            if counted {
                amounts.extend(bare_counts(clause));
            }
            for (start, literal, values, unit) in amounts {
                let Some(&value) = values.first() else {
                    continue;
                };
                if !original.iter().any(|v| numbers::same(*v, value)) {
                    continue;
                }
                let before = clause[..start].trim_end_matches(['$', '€', '£', 'R', 'U', 'S', ' ']);
                let qualifier = QUALIFIER
                    .find(before)
                    .map(|m| format!("{} ", m.as_str().trim().to_lowercase()))
                    .unwrap_or_default();
                out.push(Fact {
                    source: n,
                    value,
                    shown: format!("{qualifier}{}", unit.show(&literal)),
                    unit,
                    names: names.clone(),
                    topics: topics.clone(),
                    times: BTreeSet::clone(&times),
                    in_headline,
                    clause: clause.to_string(),
                });
            }
        }
    }
    out
}

/// Whether two facts can be about the same thing: a shared name and topic, the same unit,
/// and no two different time marks (Monday's rise is not the year's).
fn comparable(a: &Fact, b: &Fact) -> bool {
    a.unit == b.unit
        && !a.names.is_disjoint(&b.names)
        && !a.topics.is_disjoint(&b.topics)
        && (a.times.is_empty() || b.times.is_empty() || !a.times.is_disjoint(&b.times))
}

/// The figures the sources disagree on.
pub fn differences(sources: &[Source]) -> Vec<Difference> {
    let mut facts = Vec::new();
    for s in sources {
        let original: Vec<f64> = numbers::numbers(s.original, s.lang)
            .into_iter()
            .flat_map(|(_, v)| v)
            .collect();
        facts.extend(facts_of(s.title_en, s.n, true, &original));
        facts.extend(facts_of(s.body_en, s.n, false, &original));
    }
    // Pairs that disagree: other sources, or one source's headline against its body.
    let mut pairs: Vec<(usize, usize)> = Vec::new();
    for i in 0..facts.len() {
        for j in i + 1..facts.len() {
            let (a, b) = (&facts[i], &facts[j]);
            let other_source = a.source != b.source || a.in_headline != b.in_headline;
            if other_source && comparable(a, b) && !numbers::same(a.value, b.value) {
                pairs.push((i, j));
            }
        }
    }
    // One difference per group of facts linked by disagreeing pairs.
    let mut group: Vec<usize> = (0..facts.len()).collect();
    fn root(group: &mut [usize], i: usize) -> usize {
        let mut r = i;
        while group[r] != r {
            r = group[r];
        }
        group[i] = r;
        r
    }
    for &(i, j) in &pairs {
        let (a, b) = (root(&mut group, i), root(&mut group, j));
        group[a.max(b)] = a.min(b);
    }
    let mut members: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for &(i, j) in &pairs {
        for k in [i, j] {
            let r = root(&mut group, k);
            let list = members.entry(r).or_default();
            if !list.contains(&k) {
                list.push(k);
            }
        }
    }
    members
        .into_values()
        .map(|mut list| {
            list.sort_by_key(|&k| (facts[k].source, !facts[k].in_headline));
            // A source that says the same twice is listed once.
            let mut said: Vec<(usize, bool, f64)> = Vec::new();
            list.retain(|&k| {
                let f = &facts[k];
                let repeat = said.iter().any(|&(s, h, v)| {
                    s == f.source && h == f.in_headline && numbers::same(v, f.value)
                });
                said.push((f.source, f.in_headline, f.value));
                !repeat
            });
            let shared_names = list
                .iter()
                .map(|&k| facts[k].names.clone())
                .reduce(|a, b| a.intersection(&b).cloned().collect())
                .unwrap_or_default();
            let shared_topics = list
                .iter()
                .map(|&k| facts[k].topics.clone())
                .reduce(|a, b| a.intersection(&b).copied().collect())
                .unwrap_or_default();
            // Spelt as the first body text has it (headlines are often in capitals).
            let spelling = list
                .iter()
                .find(|&&k| !facts[k].in_headline)
                .unwrap_or(&list[0]);
            let name = shared_names
                .iter()
                .next()
                .map(|n| display_name(n, &facts[*spelling].clause))
                .unwrap_or_default();
            let topic = shared_topics.iter().next().copied().unwrap_or("figure");
            Difference {
                subject: format!("{name} {topic}").trim().to_string(),
                claims: list
                    .iter()
                    .map(|&k| Claim {
                        source: facts[k].source,
                        value: facts[k].shown.clone(),
                        in_headline: facts[k].in_headline,
                        context: facts[k].clause.clone(),
                    })
                    .collect(),
            }
        })
        .collect()
}

/// A name as the text capitalizes it ("nvidia" in "… Nvidia …" is "Nvidia").
fn display_name(lower: &str, text: &str) -> String {
    capitalized_words(text)
        .map(|w| w.trim_end_matches("'s"))
        .find(|w| w.to_lowercase() == lower)
        .unwrap_or(lower)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stock_rise_and_the_headline_figure_disagree() {
        let sources = [
            Source {
                n: 1,
                original: "L'action CleanSpark a augmenté de plus de 11% lundi.",
                lang: "fr",
                title_en: "CleanSpark names a new executive",
                body_en: "CleanSpark's stock increased by over 11% on Monday, trading near a four-year high. CleanSpark's stock rose by more than 11% on Monday.",
            },
            Source {
                n: 2,
                original: "ارتفع سعر CleanSpark بنسبة 14%، وارتفع متوسط الأسعار 9.72%",
                lang: "ar",
                title_en: "CleanSpark appoints an executive",
                body_en: "Their average price has increased by 9.72% over the past 24 hours, while CleanSpark's price has increased by 14%.",
            },
            Source {
                n: 3,
                original: "A NVIDIA investiu 680 milhões de dólares. A Nvidia anunciou um investimento de 683 milhões de dólares na Nscale.",
                lang: "pt",
                title_en: "NVIDIA has invested $680 million in a British AI company",
                body_en: "Chipmaker Nvidia recently announced a $683 million investment in the British AI infrastructure company Nscale.",
            },
        ];
        let found = differences(&sources);
        assert_eq!(found.len(), 2, "{found:#?}");
        assert_eq!(found[0].subject, "CleanSpark shares");
        let values: Vec<(usize, &str)> = found[0]
            .claims
            .iter()
            .map(|c| (c.source, c.value.as_str()))
            .collect();
        assert_eq!(values, [(1, "over 11%"), (2, "14%")]);
        assert_eq!(found[1].subject, "Nvidia investment");
        let values: Vec<(usize, &str, bool)> = found[1]
            .claims
            .iter()
            .map(|c| (c.source, c.value.as_str(), c.in_headline))
            .collect();
        assert_eq!(
            values,
            [(3, "$680 million", true), (3, "$683 million", false)]
        );
        let md = crate::output::markdown::differences_section(&found);
        assert!(
            md.contains("- CleanSpark shares: over 11% [1]; 14% [2]"),
            "{md}"
        );
    }

    #[test]
    fn a_value_missing_from_the_original_is_not_a_fact() {
        // The translation says 10,000 staff, the original 1.000: a translation slip, flagged
        // elsewhere, must not become a disagreement between sources.
        let sources = [
            Source {
                n: 1,
                original: "A Datavolt vai contratar 1.000 técnicos.",
                lang: "pt",
                title_en: "",
                body_en: "Datavolt will hire 10,000 technicians.",
            },
            Source {
                n: 2,
                original: "Datavolt recrutera 1 000 techniciens.",
                lang: "fr",
                title_en: "",
                body_en: "Datavolt will hire 1,000 technicians.",
            },
        ];
        assert!(differences(&sources).is_empty());
    }

    #[test]
    fn different_periods_do_not_disagree() {
        let sources = [
            Source {
                n: 1,
                original: "A ação da CleanSpark subiu 11% na segunda-feira.",
                lang: "pt",
                title_en: "",
                body_en: "CleanSpark's stock rose 11% on Monday.",
            },
            Source {
                n: 2,
                original: "L'action CleanSpark a gagné 150 % en 2025.",
                lang: "fr",
                title_en: "",
                body_en: "CleanSpark's stock gained 150% in 2025.",
            },
        ];
        assert!(differences(&sources).is_empty());
    }
}
