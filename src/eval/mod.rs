//! `crossbrief eval`: translates a sentence-aligned corpus with the profile's translator (or
//! a chosen model) and scores it against English references with chrF and BLEU, line by
//! line or, given document ids, document by document as articles are translated.

/// The scores live with the other text measures (consensus ranks candidates by chrF too).
pub use crate::language::metrics;

use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use crate::context::Context;
use crate::domain::StageStats;
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
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
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
    pub chrf: f64,
    pub bleu: f64,
    pub wall_s: f64,
    /// Translation figures (tokens, prefill and decode rates) as a run reports them.
    pub stage: StageStats,
    #[serde(skip)]
    pub hypotheses: Vec<String>,
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
    let hypotheses: Vec<String> = translated
        .units
        .iter()
        .map(|t| t.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    Ok(EvalReport {
        lang: lang.to_string(),
        translator: translated.translator,
        mode,
        segments: units.len(),
        chrf: metrics::chrf(&hypotheses, &references),
        bleu: metrics::bleu(&hypotheses, &references),
        wall_s: started.elapsed().as_secs_f64(),
        stage,
        hypotheses,
    })
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
