//! Writing the outputs: `brief.md` and `brief.json` (two [`Report`]s of the same run) and
//! `articles/<id>.md`, each atomically (written to a temporary file in the same folder, then
//! renamed).

pub mod json;
pub mod markdown;

use std::io::Write;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::Serialize;

use crate::domain::{ArticleOutcome, RunOutcome, StageStats};
use crate::engine::registry::ModelRecord;
use crate::error::{Error, Result};

pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| Error::io(dir, e))?;
    tmp.write_all(contents)
        .map_err(|e| Error::io(tmp.path(), e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

pub fn prepare_out_dir(out_dir: &Path) -> Result<()> {
    let articles = out_dir.join("articles");
    std::fs::create_dir_all(&articles).map_err(|e| Error::io(&articles, e))
}

/// Run facts for `brief.json`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct RunRecord {
    pub crossbrief_version: String,
    pub profile: String,
    pub device: String,
    /// The decoding kernels this CPU ran (`x86_64-avx512`, `x86_64-avx2`, or the
    /// architecture when neither): golden files are kept per kernel class.
    pub kernel_class: String,
    pub models: Vec<ModelRecord>,
    pub decoding: DecodingRecord,
    pub stages: Vec<StageStats>,
    pub total_wall_s: f64,
    pub peak_memory_mb: Option<f64>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct DecodingRecord {
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub seed: Option<u64>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct SourceEntry {
    pub n: usize,
    pub id: String,
    pub source_path: PathBuf,
    pub language: String,
    pub title: String,
    pub title_en: String,
}

/// Sources in brief order: the articles that have a summary.
pub fn sources(articles: &[ArticleOutcome]) -> Vec<SourceEntry> {
    articles
        .iter()
        .filter(|a| a.summary.is_some())
        .enumerate()
        .map(|(i, a)| SourceEntry {
            n: i + 1,
            id: a.id.clone(),
            source_path: a.source_path.clone(),
            language: a.language.clone(),
            title: a.title.clone(),
            title_en: a.title_en.clone(),
        })
        .collect()
}

/// One output file of a run, rendered from the run's result: `brief.md` and `brief.json`
/// are two of these, written side by side from the same view.
pub trait Report {
    fn file_name(&self) -> &'static str;
    fn render(&self, view: &ReportView) -> Result<String>;
}

/// What every report renders.
pub struct ReportView<'a> {
    pub outcome: &'a RunOutcome,
    pub sources: Vec<SourceEntry>,
    pub run: RunRecord,
}

/// Writes every report (`brief.md`, `brief.json`) into `out_dir`, each atomically.
pub fn write_reports(out_dir: &Path, outcome: &RunOutcome, run: RunRecord) -> Result<()> {
    let view = ReportView {
        outcome,
        sources: sources(&outcome.articles),
        run,
    };
    let reports: [&dyn Report; 2] = [&markdown::Markdown, &json::Json];
    for report in reports {
        let text = report.render(&view)?;
        write_atomic(&out_dir.join(report.file_name()), text.as_bytes())?;
    }
    Ok(())
}

/// `articles/<id>.md`: one article's English translation, written as soon as it is done.
pub fn write_translation(out_dir: &Path, a: &ArticleOutcome) -> Result<()> {
    write_atomic(
        &out_dir.join("articles").join(format!("{}.md", a.id)),
        markdown::translation_markdown(a).as_bytes(),
    )
}

/// Peak resident memory of this process (Linux `VmHWM`), in MiB.
pub fn peak_memory_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}
