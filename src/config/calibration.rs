//! How far to trust a translated sentence: a model's calibration
//! (`models/<manifest>.calibration.toml`, fitted by `crossbrief calibrate` on the NTREX dev
//! set) turns the decoder's and the checks' [`Signals`] into a probability that the sentence
//! is good (sentence chrF ≥ 30), per source language. Re-decoded sentences are scored by a
//! second model that also weighs how far the candidates disagreed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::domain::Signals;
use crate::error::{Error, Result};
use crate::resources::ResourceFile;

/// Names of the features, in the order [`features`] gives them; a calibration file lists
/// them so that a file fitted on other features is refused rather than misread.
pub const BASE_FEATURES: [&str; 5] = [
    "mean_logprob",
    "weakest_logprob",
    "mean_entropy",
    "problems",
    "log_tokens",
];
pub const CONSENSUS_FEATURES: [&str; 6] = [
    "mean_logprob",
    "weakest_logprob",
    "mean_entropy",
    "problems",
    "log_tokens",
    "disagreement",
];

/// The feature vector of `signals`; with `disagreement` when the sentence was re-decoded.
pub fn features(signals: &Signals) -> Vec<f64> {
    let mut x = vec![
        signals.mean_logprob,
        signals.weakest_logprob,
        signals.mean_entropy,
        signals.problems.min(3) as f64,
        (1.0 + signals.tokens as f64).ln(),
    ];
    if let Some(d) = signals.disagreement {
        x.push(d);
    }
    x
}

/// Logistic regression on standardized features: P(good) = σ(bias + Σ wᵢ (xᵢ − meanᵢ) / scaleᵢ).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Logistic {
    pub features: Vec<String>,
    pub mean: Vec<f64>,
    pub scale: Vec<f64>,
    pub weights: Vec<f64>,
    pub bias: f64,
}

impl Logistic {
    /// Each feature's pull on the log-odds for `x` (standardized value times weight).
    pub fn contributions(&self, x: &[f64]) -> Vec<f64> {
        x.iter()
            .zip(&self.mean)
            .zip(&self.scale)
            .zip(&self.weights)
            .map(|(((x, m), s), w)| w * (x - m) / s.max(1e-9))
            .collect()
    }

    pub fn probability(&self, x: &[f64]) -> f64 {
        let z = self.bias + self.contributions(x).iter().sum::<f64>();
        1.0 / (1.0 + (-z).exp())
    }

    fn check(&self, expected: &[&str], origin: &str) -> Result<()> {
        let n = expected.len();
        if self.features != expected
            || self.mean.len() != n
            || self.scale.len() != n
            || self.weights.len() != n
        {
            return Err(Error::Config {
                path: origin.into(),
                problem: format!(
                    "calibration features {:?} do not match {expected:?} (refit it with `crossbrief calibrate`)",
                    self.features
                ),
            });
        }
        Ok(())
    }
}

/// One language's two models.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LanguageCalibration {
    /// Sentences as first decoded.
    pub base: Logistic,
    /// Sentences kept by consensus re-decoding.
    pub consensus: Logistic,
    /// Dev-set sentences it was fitted on, and the share of them that were bad.
    pub sentences: usize,
    pub bad_share: f64,
}

/// A model's calibration file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// What it was fitted on, with which command.
    pub fitted_on: String,
    /// Below this confidence a sentence is low confidence: re-decoded, then marked.
    pub threshold: f64,
    /// By source language; `any` serves languages without their own (fitted on all).
    pub languages: BTreeMap<String, LanguageCalibration>,
}

impl Calibration {
    pub fn parse(file: &ResourceFile) -> Result<Self> {
        let calibration: Calibration = toml::from_str(&file.text).map_err(|e| Error::Config {
            path: file.origin.clone(),
            problem: e.to_string(),
        })?;
        let origin = file.origin.display().to_string();
        for own in calibration.languages.values() {
            own.base.check(&BASE_FEATURES, &origin)?;
            own.consensus.check(&CONSENSUS_FEATURES, &origin)?;
        }
        Ok(calibration)
    }

    fn for_language(&self, lang: &str) -> Option<&LanguageCalibration> {
        self.languages
            .get(lang)
            .or_else(|| self.languages.get("any"))
    }

    /// The confidence of a sentence with `signals`, in [0, 1], and each feature's pull on it.
    pub fn score(&self, lang: &str, signals: &Signals) -> (f64, Vec<(&'static str, f64)>) {
        let x = features(signals);
        let Some(own) = self.for_language(lang) else {
            return (uncalibrated(signals), Vec::new());
        };
        let (model, names): (&Logistic, &[&'static str]) = match signals.disagreement {
            Some(_) => (&own.consensus, &CONSENSUS_FEATURES),
            None => (&own.base, &BASE_FEATURES),
        };
        let pulls = names.iter().copied().zip(model.contributions(&x)).collect();
        (model.probability(&x), pulls)
    }
}

/// The confidence of a model without a calibration file: the mean token probability, less
/// a quarter per check problem (a rough stand-in, said so in the reports' `calibrated`).
pub fn uncalibrated(signals: &Signals) -> f64 {
    let mut p = signals.mean_logprob.exp();
    if let Some(d) = signals.disagreement {
        p *= 1.0 - d;
    }
    (p - 0.25 * signals.problems as f64).clamp(0.0, 1.0)
}

/// Consensus re-decoding (`[consensus]` of a manifest): for a sentence below the threshold
/// or failing a check, candidates besides the first translation, and how they are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsensusSettings {
    /// Sampled candidates (LLM) or n-best width (beam search of a dedicated translator).
    pub candidates: usize,
    pub temperature: f64,
    pub top_p: f64,
    /// Threshold when the model has no calibration file.
    pub threshold: f64,
}

impl Default for ConsensusSettings {
    fn default() -> Self {
        ConsensusSettings {
            candidates: 3,
            temperature: 0.7,
            top_p: 0.95,
            threshold: 0.5,
        }
    }
}
