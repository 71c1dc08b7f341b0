//! `crossbrief eval`: translates a sentence-aligned corpus with the profile's translator (or
//! a chosen model) and scores it against English references with chrF and BLEU, line by
//! line or, given document ids, document by document as articles are translated.

/// The scores live with the other text measures (consensus ranks candidates by chrF too).
pub use crate::language::metrics;
pub mod calibrate;

use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use crate::context::Context;
use crate::domain::{Signals, StageStats, Translated};
use crate::error::{Error, Result};
use crate::stages::check::Fidelity;
use crate::stages::clean;
use crate::stages::translate::{self, Segmentation};

/// An aligned corpus: source lines, their references and, optionally, document ids.
pub struct Corpus {
    pub sources: Vec<String>,
    pub references: Vec<String>,
    /// One id per line; consecutive lines with the same id form one document.
    pub doc_ids: Option<Vec<String>>,
}

impl Corpus {
    /// The corpus without its first `n` documents.
    pub fn skip_documents(self, n: usize) -> Corpus {
        let Some(ids) = &self.doc_ids else {
            return self;
        };
        let mut seen = 0;
        let mut start = ids.len();
        for (i, id) in ids.iter().enumerate() {
            if i == 0 || ids[i - 1] != *id {
                if seen == n {
                    start = i;
                    break;
                }
                seen += 1;
            }
        }
        Corpus {
            sources: self.sources[start..].to_vec(),
            references: self.references[start..].to_vec(),
            doc_ids: Some(ids[start..].to_vec()),
        }
    }
}

fn read_lines(path: &Path) -> Result<Vec<String>> {
    // Regular files only: a FIFO given as a corpus would block forever.
    let bytes = crate::stages::load::read_bounded(path, 1 << 30)?;
    let text = String::from_utf8(bytes).map_err(|e| Error::Input {
        path: path.to_path_buf(),
        problem: format!("not UTF-8 text ({e})"),
    })?;
    Ok(text
        .lines()
        .map(|l| clean::normalize(l).replace('\n', " "))
        .collect())
}

impl Corpus {
    /// Reads the files, checking that they have the same number of lines.
    pub fn load(src: &Path, reference: &Path, doc_ids: Option<&Path>) -> Result<Self> {
        let sources = read_lines(src)?;
        let references = read_lines(reference)?;
        let doc_ids = doc_ids
            .map(|p| Ok::<_, Error>((p, read_lines(p)?)))
            .transpose()?;
        let others = std::iter::once((reference, references.len()))
            .chain(doc_ids.as_ref().map(|(p, ids)| (*p, ids.len())));
        for (path, lines) in others {
            if lines != sources.len() {
                return Err(Error::Input {
                    path: path.to_path_buf(),
                    problem: format!(
                        "{lines} lines, but {} has {}; the files must be line-aligned",
                        src.display(),
                        sources.len()
                    ),
                });
            }
        }
        Ok(Corpus {
            sources,
            references,
            doc_ids: doc_ids.map(|(_, ids)| ids),
        })
    }
}

/// How a corpus scored.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    pub lang: String,
    pub translator: String,
    /// "sentences" (each line translated alone) or "documents" (each document as one article).
    pub mode: &'static str,
    /// Lines, or documents in document mode.
    pub segments: usize,
    /// With consensus re-decoding (as the run keeps them).
    pub chrf: f64,
    pub bleu: f64,
    /// The first translations, without consensus.
    pub chrf_without_consensus: f64,
    pub bleu_without_consensus: f64,
    /// Lines re-decoded, and the seconds the re-decoding round took.
    pub redecoded: usize,
    pub consensus_s: f64,
    pub wall_s: f64,
    /// How well the confidence tells bad lines (sentence chrF < 30) from the rest.
    pub confidence: ConfidenceReport,
    /// Translation figures (tokens, prefill and decode rates) as a run reports them.
    pub stage: StageStats,
    #[serde(skip)]
    pub hypotheses: Vec<String>,
    /// Sentences mode: every line's translations, signals and scores.
    #[serde(skip)]
    pub lines: Vec<LineRecord>,
}

/// Sentence chrF below which a line counts as a bad translation.
pub const BAD_CHRF: f64 = 30.0;

/// The detector's figures on one corpus.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ConfidenceReport {
    pub calibrated: bool,
    pub threshold: f64,
    /// AUROC of (1 − confidence) for bad kept lines, and of the first translations'
    /// confidence for bad first translations.
    pub auroc_bad: Option<f64>,
    pub auroc_bad_first: Option<f64>,
    pub bad_lines: usize,
    /// Lines flagged low confidence (check problems weigh in the confidence) and their mean sentence chrF, and
    /// the same for the rest.
    pub flagged: usize,
    pub mean_chrf_flagged: f64,
    pub mean_chrf_unflagged: f64,
}

/// One line of a corpus as translated and scored (`eval --lines-out` writes these).
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct LineRecord {
    pub lang: String,
    pub line: usize,
    /// The source line (so that `calibrate` can run the current checks again) and its
    /// reference.
    #[serde(default)]
    pub source: String,
    #[serde(default)]
    pub reference: String,
    pub first_text: String,
    pub first_signals: Signals,
    pub first_confidence: f64,
    pub first_chrf: f64,
    pub text: String,
    pub signals: Signals,
    pub confidence: f64,
    pub chrf: f64,
    pub redecoded: bool,
}

/// Translates and scores `corpus` from `lang` with `model`.
/// `by_document`: translate and score whole documents (needs document ids).
pub fn evaluate(
    ctx: &mut Context,
    lang: &str,
    model: &str,
    corpus: &Corpus,
    by_document: bool,
) -> Result<EvalReport> {
    let started = Instant::now();
    let (units, references, mode, segmentation) =
        match corpus.doc_ids.as_ref().filter(|_| by_document) {
            None => (
                corpus.sources.clone(),
                corpus.references.clone(),
                "sentences",
                Segmentation::WholeUnits,
            ),
            Some(ids) => (
                join_documents(ids, &corpus.sources),
                join_documents(ids, &corpus.references),
                "documents",
                Segmentation::Sentences,
            ),
        };
    let mut stage = StageStats::new("translate");
    let bar = ctx.progress.stage("eval", 0, "chunks");
    let docs = vec![(lang.to_string(), units.clone())];
    let translated =
        translate::translate_group(ctx, &Fidelity, model, &docs, segmentation, &mut stage, &bar)?
            .remove(0);
    bar.finish_and_clear();
    stage.finish(started);
    let tidy = |t: &str| t.split_whitespace().collect::<Vec<_>>().join(" ");
    let hypotheses: Vec<String> = translated.units.iter().map(|t| tidy(t)).collect();
    let firsts = first_translations(&translated, units.len());
    let lines = if mode == "sentences" {
        line_records(lang, &translated, &references)
    } else {
        Vec::new()
    };
    let manifest = ctx.catalog.model(model)?;
    let threshold = manifest
        .calibration
        .as_ref()
        .map_or(manifest.consensus.threshold, |c| c.threshold);
    Ok(EvalReport {
        lang: lang.to_string(),
        translator: translated.translator.clone(),
        mode,
        segments: units.len(),
        chrf: metrics::chrf(&hypotheses, &references),
        bleu: metrics::bleu(&hypotheses, &references),
        chrf_without_consensus: metrics::chrf(&firsts, &references),
        bleu_without_consensus: metrics::bleu(&firsts, &references),
        redecoded: translated.segments.iter().filter(|s| s.redecoded).count(),
        consensus_s: translated.consensus_s,
        wall_s: started.elapsed().as_secs_f64(),
        confidence: confidence_report(&lines, threshold, translated.calibrated),
        stage,
        hypotheses,
        lines,
    })
}

/// Each unit's first translations (before any re-decoding), joined as the run joins them.
fn first_translations(translated: &Translated, units: usize) -> Vec<String> {
    let mut out = vec![String::new(); units];
    for s in &translated.segments {
        let text = &mut out[s.unit];
        if !text.is_empty() {
            text.push(' ');
        }
        text.push_str(&s.first_text);
    }
    out.iter()
        .map(|t| t.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

/// One record per line translated as one segment (a line split into several is left out:
/// its signals describe parts, its reference the whole).
fn line_records(lang: &str, translated: &Translated, references: &[String]) -> Vec<LineRecord> {
    let mut per_unit = vec![0usize; references.len()];
    for s in &translated.segments {
        per_unit[s.unit] += 1;
    }
    translated
        .segments
        .iter()
        .filter(|s| per_unit[s.unit] == 1)
        .map(|s| LineRecord {
            lang: lang.to_string(),
            line: s.unit,
            source: s.source.clone(),
            reference: references[s.unit].clone(),
            first_chrf: metrics::sentence_chrf(&s.first_text, &references[s.unit]),
            first_text: s.first_text.clone(),
            first_signals: s.first_signals.clone(),
            first_confidence: s.first_confidence,
            chrf: metrics::sentence_chrf(&s.text, &references[s.unit]),
            text: s.text.clone(),
            signals: s.signals.clone(),
            confidence: s.confidence,
            redecoded: s.redecoded,
        })
        .collect()
}

/// The detector's figures over `lines`.
pub fn confidence_report(
    lines: &[LineRecord],
    threshold: f64,
    calibrated: bool,
) -> ConfidenceReport {
    let bad: Vec<bool> = lines.iter().map(|l| l.chrf < BAD_CHRF).collect();
    let doubt: Vec<f64> = lines.iter().map(|l| 1.0 - l.confidence).collect();
    let first_bad: Vec<bool> = lines.iter().map(|l| l.first_chrf < BAD_CHRF).collect();
    let first_doubt: Vec<f64> = lines.iter().map(|l| 1.0 - l.first_confidence).collect();
    let flagged: Vec<&LineRecord> = lines.iter().filter(|l| l.confidence < threshold).collect();
    let mean = |v: &[f64]| {
        if v.is_empty() {
            0.0
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    let flagged_chrf: Vec<f64> = flagged.iter().map(|l| l.chrf).collect();
    let unflagged_chrf: Vec<f64> = lines
        .iter()
        .filter(|l| l.confidence >= threshold)
        .map(|l| l.chrf)
        .collect();
    ConfidenceReport {
        calibrated,
        threshold,
        auroc_bad: metrics::auroc(&doubt, &bad),
        auroc_bad_first: metrics::auroc(&first_doubt, &first_bad),
        bad_lines: bad.iter().filter(|&&b| b).count(),
        flagged: flagged.len(),
        mean_chrf_flagged: mean(&flagged_chrf),
        mean_chrf_unflagged: mean(&unflagged_chrf),
    }
}

/// Consecutive lines with the same document id joined into one text each.
pub fn join_documents(ids: &[String], lines: &[String]) -> Vec<String> {
    let mut docs: Vec<String> = Vec::new();
    let mut last: Option<&String> = None;
    for (id, line) in ids.iter().zip(lines) {
        match docs.last_mut() {
            Some(doc) if last == Some(id) => {
                doc.push(' ');
                doc.push_str(line);
            }
            _ => docs.push(line.clone()),
        }
        last = Some(id);
    }
    docs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skipping_documents_keeps_the_rest_aligned() {
        let ids: Vec<String> = ["a", "a", "b", "c", "c"].map(String::from).to_vec();
        let corpus = Corpus {
            sources: ["1", "2", "3", "4", "5"].map(String::from).to_vec(),
            references: ["i", "ii", "iii", "iv", "v"].map(String::from).to_vec(),
            doc_ids: Some(ids),
        };
        let rest = corpus.skip_documents(1);
        assert_eq!(rest.sources, ["3", "4", "5"]);
        assert_eq!(rest.references, ["iii", "iv", "v"]);
    }

    #[test]
    fn documents_are_runs_of_the_same_id() {
        let ids: Vec<String> = ["a", "a", "b", "a"].map(String::from).to_vec();
        let lines: Vec<String> = ["1.", "2.", "3.", "4."].map(String::from).to_vec();
        assert_eq!(join_documents(&ids, &lines), ["1. 2.", "3.", "4."]);
    }
}
