//! Fits a model's confidence calibration from evaluated dev-set lines (`eval --lines-out`,
//! best with `--consensus all`, so every line has both its first and its re-decoded
//! signals): per language and pooled (`any`), a logistic regression of "good" (sentence
//! chrF ≥ 30) on the base features of first translations, and one on the consensus
//! features of re-decoded ones. Written here because the fit is a few lines of gradient
//! descent and the maintained crates for it (linfa, smartcore) would bring their own linear
//! algebra stacks into the build.

use std::collections::BTreeMap;

use super::{LineRecord, BAD_CHRF};
use crate::config::calibration::{
    features, Calibration, LanguageCalibration, Logistic, BASE_FEATURES, CONSENSUS_FEATURES,
};
use crate::domain::Signals;
use crate::stages::check;

/// L2 penalty on the standardized weights: keeps the fit stable on a few hundred lines.
const L2: f64 = 1e-2;
const STEPS: usize = 4000;
const LEARNING_RATE: f64 = 0.3;
/// Fewest lines a model is fitted on.
const MIN_ROWS: usize = 30;

/// Logistic regression of `labels` (true: good) on `rows`, features standardized first.
pub fn fit_logistic(rows: &[Vec<f64>], labels: &[bool], names: &[&str]) -> Logistic {
    let n = rows.len().max(1) as f64;
    let dims = names.len();
    let mut mean = vec![0.0; dims];
    let mut scale = vec![0.0; dims];
    for row in rows {
        for (m, x) in mean.iter_mut().zip(row) {
            *m += x / n;
        }
    }
    for row in rows {
        for ((s, x), m) in scale.iter_mut().zip(row).zip(&mean) {
            *s += (x - m).powi(2) / n;
        }
    }
    for s in &mut scale {
        *s = s.sqrt().max(1e-6);
    }
    let standardized: Vec<Vec<f64>> = rows
        .iter()
        .map(|row| {
            row.iter()
                .zip(&mean)
                .zip(&scale)
                .map(|((x, m), s)| (x - m) / s)
                .collect()
        })
        .collect();
    let mut weights = vec![0.0; dims];
    let positives = labels.iter().filter(|&&l| l).count() as f64;
    // Start from the base rate, so a feature-less fit is still calibrated.
    let base_rate = (positives / n).clamp(1e-3, 1.0 - 1e-3);
    let mut bias = (base_rate / (1.0 - base_rate)).ln();
    for _ in 0..STEPS {
        let mut grad_w = vec![0.0; dims];
        let mut grad_b = 0.0;
        for (x, &label) in standardized.iter().zip(labels) {
            let z = bias + x.iter().zip(&weights).map(|(a, w)| a * w).sum::<f64>();
            let error = 1.0 / (1.0 + (-z).exp()) - f64::from(u8::from(label));
            grad_b += error / n;
            for (g, a) in grad_w.iter_mut().zip(x) {
                *g += error * a / n;
            }
        }
        for (w, g) in weights.iter_mut().zip(&grad_w) {
            *w -= LEARNING_RATE * (g + L2 * *w);
        }
        bias -= LEARNING_RATE * grad_b;
    }
    Logistic {
        features: names.iter().map(|s| s.to_string()).collect(),
        mean,
        scale,
        weights,
        bias,
    }
}

/// One language's calibration from its lines.
fn fit_language(lines: &[&LineRecord]) -> LanguageCalibration {
    let base_rows: Vec<Vec<f64>> = lines
        .iter()
        .map(|l| features(&base(&l.first_signals)))
        .collect();
    let base_labels: Vec<bool> = lines.iter().map(|l| l.first_chrf >= BAD_CHRF).collect();
    let redecoded: Vec<&&LineRecord> = lines
        .iter()
        .filter(|l| l.redecoded && l.signals.disagreement.is_some())
        .collect();
    let consensus_rows: Vec<Vec<f64>> = redecoded.iter().map(|l| features(&l.signals)).collect();
    let consensus_labels: Vec<bool> = redecoded.iter().map(|l| l.chrf >= BAD_CHRF).collect();
    let base = fit_logistic(&base_rows, &base_labels, &BASE_FEATURES);
    // Too few re-decoded lines to fit on: the base model, disagreement weighing nothing.
    let consensus = if consensus_rows.len() < MIN_ROWS {
        let mut extended = base.clone();
        extended.features = CONSENSUS_FEATURES.iter().map(|s| s.to_string()).collect();
        extended.mean.push(0.0);
        extended.scale.push(1.0);
        extended.weights.push(0.0);
        extended
    } else {
        fit_logistic(&consensus_rows, &consensus_labels, &CONSENSUS_FEATURES)
    };
    LanguageCalibration {
        base,
        consensus,
        sentences: lines.len(),
        bad_share: base_labels.iter().filter(|&&g| !g).count() as f64 / lines.len().max(1) as f64,
    }
}

/// The first translation's signals without any disagreement (the base model's input).
fn base(signals: &Signals) -> Signals {
    Signals {
        disagreement: None,
        ..signals.clone()
    }
}

/// Counts each line's check problems again with the current checks, where the line carries
/// its source: a change to a check then needs no new translation of the dev set.
pub fn refresh_problems(lines: &mut [LineRecord]) {
    for line in lines.iter_mut().filter(|l| !l.source.is_empty()) {
        line.first_signals.problems =
            check::problems(&line.source, &line.lang, &line.first_text).len();
        line.signals.problems = check::problems(&line.source, &line.lang, &line.text).len();
    }
}

/// A calibration for every language of `lines` and one pooled over all (`any`).
pub fn calibrate(lines: &[LineRecord], threshold: f64, fitted_on: &str) -> Calibration {
    let mut by_language: BTreeMap<String, Vec<&LineRecord>> = BTreeMap::new();
    for line in lines {
        by_language.entry(line.lang.clone()).or_default().push(line);
    }
    let mut languages: BTreeMap<String, LanguageCalibration> = by_language
        .iter()
        .map(|(lang, own)| (lang.clone(), fit_language(own)))
        .collect();
    let all: Vec<&LineRecord> = lines.iter().collect();
    languages.insert("any".to_string(), fit_language(&all));
    Calibration {
        fitted_on: fitted_on.to_string(),
        threshold,
        languages,
    }
}

/// How `calibration` would do on `lines` of `lang` as a run uses it: consensus only for
/// lines below the threshold or failing a check (the all-candidates lines hold what it would
/// choose; sampling rows are seeded alone, so the choice is the same), then the detector's
/// figures and the corpus scores with and without consensus.
pub fn cascade(calibration: &Calibration, lang: &str, lines: &[LineRecord]) -> String {
    let threshold = calibration.threshold;
    let mut kept_lines = Vec::with_capacity(lines.len());
    let mut redecoded = 0;
    for l in lines.iter().filter(|l| l.lang == lang) {
        let first = calibration.score(lang, &base(&l.first_signals)).0;
        let mut line = l.clone();
        line.first_confidence = first;
        if first < threshold || l.first_signals.problems > 0 {
            redecoded += 1;
            line.confidence = calibration.score(lang, &l.signals).0;
            line.redecoded = true;
        } else {
            line.text = l.first_text.clone();
            line.chrf = l.first_chrf;
            line.signals = base(&l.first_signals);
            line.confidence = first;
            line.redecoded = false;
        }
        kept_lines.push(line);
    }
    let report = super::confidence_report(&kept_lines, threshold, true);
    let references: Vec<String> = kept_lines.iter().map(|l| l.reference.clone()).collect();
    let score = |texts: Vec<String>| {
        (
            super::metrics::chrf(&texts, &references),
            super::metrics::bleu(&texts, &references),
        )
    };
    let first = score(kept_lines.iter().map(|l| l.first_text.clone()).collect());
    let all = score(
        lines
            .iter()
            .filter(|l| l.lang == lang)
            .map(|l| l.text.clone())
            .collect(),
    );
    let auto = score(kept_lines.iter().map(|l| l.text.clone()).collect());
    let auroc = |a: Option<f64>| a.map_or("n/a".to_string(), |v| format!("{v:.3}"));
    format!(
        "{lang}: {} lines, threshold {threshold:.2}: AUROC for bad lines {} (first translations {}); \
         {} bad, {} flagged, mean chrF flagged {:.1} vs unflagged {:.1}; \
         chrF/BLEU without consensus {:.2}/{:.2}, consensus on the {redecoded} low or failing lines {:.2}/{:.2}, on every line {:.2}/{:.2}",
        kept_lines.len(),
        auroc(report.auroc_bad),
        auroc(report.auroc_bad_first),
        report.bad_lines,
        report.flagged,
        report.mean_chrf_flagged,
        report.mean_chrf_unflagged,
        first.0,
        first.1,
        auto.0,
        auto.1,
        all.0,
        all.1,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_separable_signal_gets_a_steep_positive_weight() {
        let rows: Vec<Vec<f64>> = (0..40).map(|i| vec![i as f64 / 40.0]).collect();
        let labels: Vec<bool> = (0..40).map(|i| i >= 20).collect();
        let model = fit_logistic(&rows, &labels, &["x"]);
        assert!(model.weights[0] > 1.0, "{model:?}");
        assert!(model.probability(&[0.9]) > 0.8);
        assert!(model.probability(&[0.1]) < 0.2);
    }
}
