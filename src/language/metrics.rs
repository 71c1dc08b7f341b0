//! Corpus-level chrF and BLEU with sacrebleu's default settings (chrF: character 6-grams,
//! β = 2, whitespace ignored; BLEU: 13a tokenization, 4-grams, exponential smoothing), so the
//! figures compare with published ones. Written here because no maintained crate offers
//! both with sacrebleu's exact tokenization and smoothing; the unit tests pin the numbers
//! sacrebleu 2.5.1 gives on the same pairs.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::LazyLock;

use regex::Regex;

const CHAR_ORDER: usize = 6;
const BETA: f64 = 2.0;
const BLEU_ORDER: usize = 4;

/// Counts of every n-gram of `items` of length `n`.
fn ngrams<T: Eq + Hash + Clone>(items: &[T], n: usize) -> HashMap<&[T], usize> {
    let mut counts = HashMap::new();
    if items.len() >= n {
        for w in items.windows(n) {
            *counts.entry(w).or_insert(0) += 1;
        }
    }
    counts
}

/// Matches of `hyp` n-grams in `reference`, each clipped to its count there.
fn clipped_matches<T: Eq + Hash>(
    hyp: &HashMap<&[T], usize>,
    reference: &HashMap<&[T], usize>,
) -> usize {
    hyp.iter()
        .map(|(g, &c)| c.min(reference.get(g).copied().unwrap_or(0)))
        .sum()
}

/// chrF of hypotheses against one reference each, 0–100.
pub fn chrf(hypotheses: &[String], references: &[String]) -> f64 {
    // Per order: hypothesis n-grams, reference n-grams, matches; summed over the corpus.
    let mut stats = [[0usize; 3]; CHAR_ORDER];
    for (hyp, reference) in hypotheses.iter().zip(references) {
        let hyp: Vec<char> = hyp.chars().filter(|c| !c.is_whitespace()).collect();
        let reference: Vec<char> = reference.chars().filter(|c| !c.is_whitespace()).collect();
        for (n, s) in stats.iter_mut().enumerate() {
            let h = ngrams(&hyp, n + 1);
            let r = ngrams(&reference, n + 1);
            s[0] += h.values().sum::<usize>();
            s[1] += r.values().sum::<usize>();
            s[2] += clipped_matches(&h, &r);
        }
    }
    // sacrebleu averages precision and recall over the orders both sides have, then takes
    // one F-score of the averages.
    let (mut precision, mut recall, mut orders) = (0.0, 0.0, 0);
    for [n_hyp, n_ref, n_match] in stats {
        if n_hyp > 0 && n_ref > 0 {
            precision += n_match as f64 / n_hyp as f64;
            recall += n_match as f64 / n_ref as f64;
            orders += 1;
        }
    }
    if orders == 0 {
        return 0.0;
    }
    let (p, r) = (precision / orders as f64, recall / orders as f64);
    let factor = BETA * BETA;
    if p + r == 0.0 {
        0.0
    } else {
        100.0 * (1.0 + factor) * p * r / (factor * p + r)
    }
}

/// chrF of one hypothesis against one reference, 0–100 (sentence chrF: the quality target
/// of confidence calibration and the similarity of consensus candidates).
pub fn sentence_chrf(hypothesis: &str, reference: &str) -> f64 {
    chrf(&[hypothesis.to_string()], &[reference.to_string()])
}

/// Area under the ROC curve of `scores` for telling `positives` from the rest: the chance
/// that a random positive scores above a random negative (ties count half). `None` without
/// both classes.
pub fn auroc(scores: &[f64], positives: &[bool]) -> Option<f64> {
    let mut ranked: Vec<(f64, bool)> = scores
        .iter()
        .copied()
        .zip(positives.iter().copied())
        .collect();
    ranked.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n_pos = positives.iter().filter(|&&p| p).count();
    let n_neg = positives.len() - n_pos;
    if n_pos == 0 || n_neg == 0 {
        return None;
    }
    // Mann–Whitney U from average ranks over tied groups.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < ranked.len() {
        let mut j = i;
        while j + 1 < ranked.len() && ranked[j + 1].0 == ranked[i].0 {
            j += 1;
        }
        let average_rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += average_rank * ranked[i..=j].iter().filter(|r| r.1).count() as f64;
        i = j + 1;
    }
    let u = rank_sum - (n_pos * (n_pos + 1)) as f64 / 2.0;
    Some(u / (n_pos * n_neg) as f64)
}

/// The "13a" tokenization of mteval-v13a.pl, as sacrebleu applies it by default.
fn tokenize_13a(line: &str) -> Vec<String> {
    static RULES: LazyLock<[(Regex, &str); 4]> = LazyLock::new(|| {
        [
            // punctuation and symbols become tokens
            (Regex::new(r"([\{-~\[-` -&\(-\+:-@/])").unwrap(), " $1 "),
            // a period or comma not preceded by a digit
            (Regex::new(r"([^0-9])([\.,])").unwrap(), "$1 $2 "),
            // a period or comma not followed by a digit
            (Regex::new(r"([\.,])([^0-9])").unwrap(), " $1 $2"),
            // a dash preceded by a digit
            (Regex::new(r"([0-9])(-)").unwrap(), "$1 $2 "),
        ]
    });
    let mut line = line
        .replace("<skipped>", "")
        .replace("-\n", "")
        .replace('\n', " ");
    if line.contains('&') {
        line = line
            .replace("&quot;", "\"")
            .replace("&amp;", "&")
            .replace("&lt;", "<")
            .replace("&gt;", ">");
    }
    let mut line = format!(" {line} ");
    for (re, replacement) in RULES.iter() {
        line = re.replace_all(&line, *replacement).into_owned();
    }
    line.split_whitespace().map(str::to_string).collect()
}

/// BLEU of hypotheses against one reference each, 0–100.
pub fn bleu(hypotheses: &[String], references: &[String]) -> f64 {
    let (mut correct, mut total) = ([0usize; BLEU_ORDER], [0usize; BLEU_ORDER]);
    let (mut hyp_len, mut ref_len) = (0usize, 0usize);
    for (hyp, reference) in hypotheses.iter().zip(references) {
        let hyp = tokenize_13a(hyp);
        let reference = tokenize_13a(reference);
        hyp_len += hyp.len();
        ref_len += reference.len();
        for n in 1..=BLEU_ORDER {
            let h = ngrams(&hyp, n);
            correct[n - 1] += clipped_matches(&h, &ngrams(&reference, n));
            total[n - 1] += hyp.len().saturating_sub(n - 1);
        }
    }
    let mut log_sum = 0.0;
    let mut smoothing = 1.0;
    for n in 0..BLEU_ORDER {
        if total[n] == 0 {
            return 0.0;
        }
        let precision = if correct[n] == 0 {
            // "exp" smoothing: each order without a match counts half the one before
            smoothing *= 2.0;
            100.0 / (smoothing * total[n] as f64)
        } else {
            100.0 * correct[n] as f64 / total[n] as f64
        };
        log_sum += precision.ln();
    }
    let brevity = if hyp_len < ref_len {
        (1.0 - ref_len as f64 / hyp_len as f64).exp()
    } else {
        1.0
    };
    brevity * (log_sum / BLEU_ORDER as f64).exp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auroc_counts_ordered_pairs() {
        assert_eq!(
            auroc(&[0.9, 0.8, 0.2, 0.1], &[true, true, false, false]),
            Some(1.0)
        );
        assert_eq!(
            auroc(&[0.1, 0.2, 0.8, 0.9], &[true, true, false, false]),
            Some(0.0)
        );
        assert_eq!(auroc(&[0.5, 0.5], &[true, false]), Some(0.5));
        assert_eq!(auroc(&[0.3, 0.7, 0.5], &[true, false, true]), Some(0.0));
        assert_eq!(
            auroc(&[0.3, 0.7, 0.5, 0.6], &[true, false, true, false]),
            Some(0.0)
        );
        assert_eq!(
            auroc(&[0.8, 0.7, 0.5, 0.6], &[true, false, true, false]),
            Some(0.5)
        );
        assert_eq!(auroc(&[0.3], &[true]), None);
    }

    fn lines(s: &[&str]) -> Vec<String> {
        s.iter().map(|l| l.to_string()).collect()
    }

    // Expected figures: sacrebleu 2.5.1, `corpus_chrf(hyp, [ref]).score` and
    // `corpus_bleu(hyp, [ref]).score` on these very lines.
    #[test]
    fn matches_sacrebleu_on_a_known_pair() {
        let hyp = lines(&[
            "The cat sat on the mat, didn't it?",
            "Shares rose 11.5% on Monday to $21.86 - a four-year high.",
            "He said: \"AI deals are crucial\" (for the company).",
        ]);
        let reference = lines(&[
            "The cat was sitting on the mat, wasn't it?",
            "The shares gained 11.5% on Monday, to $21.86, near a four-year high.",
            "He said AI deals were \"crucial\" for the company.",
        ]);
        assert!(
            (chrf(&hyp, &reference) - CHRF_EXPECTED).abs() < 0.005,
            "{}",
            chrf(&hyp, &reference)
        );
        assert!(
            (bleu(&hyp, &reference) - BLEU_EXPECTED).abs() < 0.005,
            "{}",
            bleu(&hyp, &reference)
        );
    }

    #[test]
    fn identical_text_scores_100_and_nothing_scores_0() {
        let text = lines(&["Nvidia invested 683 million dollars in Nscale."]);
        assert!((chrf(&text, &text) - 100.0).abs() < 1e-9);
        assert!((bleu(&text, &text) - 100.0).abs() < 1e-9);
        let empty = lines(&[""]);
        assert_eq!(chrf(&empty, &text), 0.0);
        assert_eq!(bleu(&empty, &text), 0.0);
    }

    #[test]
    fn tokenizes_like_13a() {
        assert_eq!(
            tokenize_13a("It cost $21.86, i.e. 1,000 units - in 2024-25."),
            [
                "It", "cost", "$", "21.86", ",", "i", ".", "e", ".", "1,000", "units", "-", "in",
                "2024", "-", "25", "."
            ]
        );
    }

    const CHRF_EXPECTED: f64 = 57.850_503_539;
    const BLEU_EXPECTED: f64 = 30.287_604_030;
}
