//! Which translations to trust and which to decode again. Each segment's first translation
//! gets a calibrated confidence ([`Scorer`]); one below the threshold or failing a check is
//! decoded again as several candidates, and the candidate with the fewest check problems and
//! the highest expected chrF against the others is kept (minimum Bayes risk). How far the
//! candidates disagree lowers the kept one's confidence. The kept text is then split into
//! sentences, each with its own confidence and the reasons for a low one.

use crate::config::calibration::{uncalibrated, Calibration, ConsensusSettings};
use crate::config::decoding::ConsensusMode;
use crate::domain::{FidelityCheck, Flag, FlagKind, Problem, Signals, TranslatedSentence};
use crate::language::metrics::sentence_chrf;
use crate::language::sentences::sentences;

/// Confidence and re-decoding decisions for one translator model.
#[derive(Debug, Clone, Copy)]
pub struct Scorer<'a> {
    pub calibration: Option<&'a Calibration>,
    pub settings: ConsensusSettings,
    pub mode: ConsensusMode,
}

impl Scorer<'_> {
    pub fn threshold(&self) -> f64 {
        self.calibration
            .map_or(self.settings.threshold, |c| c.threshold)
    }

    pub fn calibrated(&self) -> bool {
        self.calibration.is_some()
    }

    /// Confidence in [0, 1] of a translation from `lang` with `signals`.
    pub fn score(&self, lang: &str, signals: &Signals) -> f64 {
        match self.calibration {
            Some(c) => c.score(lang, signals).0,
            None => uncalibrated(signals),
        }
    }

    /// Whether a first translation with this confidence and check verdict is decoded again.
    pub fn redecode(&self, confidence: f64, failed_check: bool) -> bool {
        match self.mode {
            ConsensusMode::Off => false,
            ConsensusMode::All => true,
            ConsensusMode::Auto => failed_check || confidence < self.threshold(),
        }
    }

    /// Why a sentence with `signals` scored low, in words, strongest reason first.
    pub fn reasons(&self, lang: &str, signals: &Signals) -> Vec<String> {
        let Some(calibration) = self.calibration else {
            return vec![format!(
                "low token probability (mean {:.0}%; no calibration for this model)",
                100.0 * signals.mean_logprob.exp()
            )];
        };
        let (_, mut pulls) = calibration.score(lang, signals);
        pulls.sort_by(|a, b| a.1.total_cmp(&b.1));
        let mut out: Vec<String> = pulls
            .into_iter()
            .filter(|(_, pull)| *pull < -0.25)
            .filter_map(|(feature, _)| match feature {
                "mean_logprob" => Some(format!(
                    "the model was unsure of its words (mean token probability {:.0}%)",
                    100.0 * signals.mean_logprob.exp()
                )),
                "weakest_logprob" => Some(format!(
                    "a stretch the model was unsure of (token probability {:.0}%)",
                    100.0 * signals.weakest_logprob.exp()
                )),
                "mean_entropy" => Some("the model hesitated between many words".to_string()),
                "disagreement" => signals.disagreement.map(|d| {
                    format!(
                        "re-decoded candidates disagreed (agreement {:.0} chrF)",
                        100.0 * (1.0 - d)
                    )
                }),
                "problems" if signals.problems > 0 => {
                    Some("the fidelity check found problems".to_string())
                }
                _ => None,
            })
            .collect();
        if out.is_empty() {
            out.push("low calibrated confidence".to_string());
        }
        out
    }
}

/// Of `candidates` (text and number of check problems), the index of the one to keep — the
/// fewest problems, then the highest mean chrF against all the others — and its
/// disagreement, 1 − that mean / 100. A single candidate disagrees with nothing (0).
pub fn choose(candidates: &[(&str, usize)]) -> (usize, f64) {
    let n = candidates.len();
    if n <= 1 {
        return (0, 0.0);
    }
    let fewest = candidates.iter().map(|c| c.1).min().unwrap_or(0);
    let mut best = (0, f64::NEG_INFINITY);
    for (i, (text, problems)) in candidates.iter().enumerate() {
        if *problems != fewest {
            continue;
        }
        let agreement = candidates
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, (other, _))| sentence_chrf(text, other))
            .sum::<f64>()
            / (n - 1) as f64;
        // Ties keep the earlier candidate (the greedy one comes first).
        if agreement > best.1 + 1e-9 {
            best = (i, agreement);
        }
    }
    (best.0, (1.0 - best.1 / 100.0).clamp(0.0, 1.0))
}

/// One sentence of a kept translation with its evidence, before scoring.
#[derive(Debug, Clone, Default)]
pub struct KeptSentence {
    /// Its own source sentence, or the whole segment where the sentences did not line up.
    pub source: String,
    pub text: String,
    pub logprobs: Vec<f32>,
    pub entropies: Vec<f32>,
    pub problems: Vec<Problem>,
    /// Set when it was chosen by consensus.
    pub disagreement: Option<f64>,
}

/// `text` split into sentences, each with its share of the tokens (by non-space
/// characters: the tidied text keeps the decoded text's characters but not its spacing).
pub fn split_tokens(
    text: &str,
    logprobs: &[f32],
    entropies: &[f32],
) -> Vec<(String, Vec<f32>, Vec<f32>)> {
    let parts = sentences(text);
    let weight = |s: &str| s.chars().filter(|c| !c.is_whitespace()).count();
    let total = parts.iter().map(|p| weight(p)).sum::<usize>().max(1);
    let with_entropy = entropies.len() == logprobs.len();
    let mut out = Vec::with_capacity(parts.len());
    let (mut consumed, mut start) = (0, 0);
    for (k, part) in parts.iter().enumerate() {
        consumed += weight(part);
        // Every sentence gets at least one token while there are enough to go round.
        let left = parts.len() - k - 1;
        let end = if left == 0 {
            logprobs.len()
        } else {
            (logprobs.len() * consumed / total)
                .max(start + 1)
                .min(logprobs.len().saturating_sub(left))
                .max(start)
        };
        let entropy = if with_entropy {
            entropies[start..end].to_vec()
        } else {
            Vec::new()
        };
        out.push((part.clone(), logprobs[start..end].to_vec(), entropy));
        start = end;
    }
    out
}

/// The sentences of a segment's kept translation that could not be matched to source
/// sentences: each checked against the whole segment on what a fragment can show (a name
/// or figure it adds, task talk, source script), all sharing the segment's disagreement.
pub fn unaligned_sentences(
    checker: &dyn FidelityCheck,
    lang: &str,
    source: &str,
    text: &str,
    logprobs: &[f32],
    entropies: &[f32],
    disagreement: Option<f64>,
) -> Vec<KeptSentence> {
    let mut parts = split_tokens(text, logprobs, entropies);
    if parts.is_empty() && !source.trim().is_empty() {
        // An empty translation of a real source is a sentence too: the least trusted.
        parts.push((String::new(), Vec::new(), Vec::new()));
    }
    let single = parts.len() == 1;
    parts
        .into_iter()
        .map(|(text, logprobs, entropies)| {
            let mut problems = checker.problems(source, lang, &text);
            if !single {
                problems.retain(|p| {
                    matches!(
                        p.kind,
                        FlagKind::InsertedName
                            | FlagKind::TaskTalk
                            | FlagKind::SourceScript
                            | FlagKind::ExtraNumber
                            | FlagKind::Repetition
                    )
                });
            }
            KeptSentence {
                source: source.to_string(),
                text,
                logprobs,
                entropies,
                problems,
                disagreement,
            }
        })
        .collect()
}

/// Scores kept sentences of unit `unit`: confidence, and flags for what the checks found and
/// why a confidence is low.
pub fn records(
    scorer: &Scorer,
    lang: &str,
    unit: usize,
    kept: &[KeptSentence],
) -> Vec<TranslatedSentence> {
    kept.iter()
        .map(|k| {
            let mut signals = Signals::from_tokens(&k.logprobs, &k.entropies, k.problems.len());
            signals.disagreement = k.disagreement;
            // Nothing decoded for it (an empty translation): no evidence of a translation.
            let confidence = if k.logprobs.is_empty() {
                0.0
            } else {
                scorer.score(lang, &signals)
            };
            let low = confidence.is_nan() || confidence < scorer.threshold();
            let mut flags: Vec<Flag> = k
                .problems
                .iter()
                .filter(|p| p.kind != FlagKind::TokenBudget)
                .map(|p| Flag {
                    kind: p.kind,
                    message: p.describe(),
                })
                .collect();
            if low {
                flags.push(Flag {
                    kind: FlagKind::LowConfidence,
                    message: scorer.reasons(lang, &signals).join("; "),
                });
            }
            TranslatedSentence {
                unit,
                source: k.source.clone(),
                text: k.text.clone(),
                // Four decimals: a dedicated translator's log-probabilities move in the
                // seventh with the padding of the batch a sentence shares (its text does not),
                // and a reader needs two. A score that is not a number is the lowest: JSON
                // cannot hold NaN, and the sentence is to verify.
                confidence: if confidence.is_finite() {
                    (confidence * 1e4).round() / 1e4
                } else {
                    0.0
                },
                low_confidence: low,
                flags,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_candidate_closest_to_the_others_is_kept() {
        let candidates = [
            ("Shares rose 11% on Monday.", 0),
            ("An explosion of the Sun.", 0),
            ("Shares rose by 11% on Monday.", 0),
            ("The shares rose 11% Monday.", 0),
        ];
        let (kept, disagreement) = choose(&candidates);
        assert_ne!(kept, 1);
        assert!(disagreement > 0.1 && disagreement < 0.7, "{disagreement}");
        // Fewer check problems come first, however well the others agree.
        let candidates = [
            ("Shares rose 12%.", 1),
            ("Shares rose 12%.", 1),
            ("Shares rose 11%.", 0),
        ];
        assert_eq!(choose(&candidates).0, 2);
        assert_eq!(choose(&[("Alone.", 0)]), (0, 0.0));
    }

    #[test]
    fn agreeing_candidates_disagree_less_than_scattered_ones() {
        let agree = [
            ("The minister resigned on Friday.", 0),
            ("The minister resigned on Friday.", 0),
            ("The minister quit on Friday.", 0),
        ];
        let scatter = [
            ("The minister resigned on Friday.", 0),
            ("A tsunami hit Jakarta.", 0),
            ("The sun exploded.", 0),
        ];
        assert!(choose(&agree).1 < choose(&scatter).1);
    }
}
