//! Writing the outputs: `brief.md`, `brief.json` and `articles/<id>.md`, each atomically
//! (written to a temporary file in the same folder, then renamed).

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::check::Flag;
use crate::error::{Error, Result};
use crate::lang;
use crate::pipeline::{ArticleOutcome, Failure, RunOutcome, StageStats};
use crate::reconcile::{self, Difference};
use crate::registry::ModelRecord;

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

/// `articles/<id>.md`: the English translation, paragraphs kept.
pub fn write_translation(out_dir: &Path, a: &ArticleOutcome) -> Result<()> {
    let mut md = format!("# {}\n\n", a.title_en);
    md.push_str(&format!(
        "*{} ({}) · source `{}` · translated by {}*\n\n",
        lang::english_name(&a.language),
        a.language,
        a.source_path.display(),
        a.translator
    ));
    md.push_str(&a.translation);
    md.push('\n');
    write_atomic(
        &out_dir.join("articles").join(format!("{}.md", a.id)),
        md.as_bytes(),
    )
}

/// Run facts for `brief.json`.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    pub crossbrief_version: &'static str,
    pub profile: String,
    pub device: String,
    pub models: Vec<ModelRecord>,
    pub decoding: DecodingRecord,
    pub stages: Vec<StageStats>,
    pub total_wall_s: f64,
    pub peak_memory_mb: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DecodingRecord {
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub seed: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SourceEntry {
    pub n: usize,
    pub id: String,
    pub source_path: PathBuf,
    pub language: String,
    pub title: String,
    pub title_en: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct BriefJson<'a> {
    pub brief: String,
    pub brief_flags: &'a [Flag],
    /// Figures the sources give differently ("Where sources differ" in brief.md).
    pub differences: &'a [Difference],
    pub sources: Vec<SourceEntry>,
    pub articles: &'a [ArticleOutcome],
    pub failures: &'a [Failure],
    pub run: RunRecord,
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

/// The Markdown of `brief.md`.
pub fn brief_markdown(outcome: &RunOutcome, sources: &[SourceEntry]) -> String {
    let mut md = String::from("# News brief\n\n");
    match &outcome.brief {
        Some(text) => md.push_str(text),
        None => md.push_str("*No brief could be written: no article reached the summary stage.*"),
    }
    md.push_str("\n\n");
    let mut footnotes = Vec::new();
    for (i, flag) in outcome.brief_flags.iter().enumerate() {
        let key = format!("brief-{}", i + 1);
        md.push_str(&format!("[^{key}]"));
        footnotes.push((key, flag.message.clone()));
    }
    if !outcome.brief_flags.is_empty() {
        md.push_str("\n\n");
    }
    if outcome.brief.is_some() {
        md.push_str(&reconcile::render(&outcome.differences));
        md.push('\n');
    }

    md.push_str("## Sources\n\n");
    for s in sources {
        md.push_str(&format!(
            "{}. `{}` — {} ({}) — {}\n",
            s.n,
            s.source_path.display(),
            lang::english_name(&s.language),
            s.language,
            s.title
        ));
    }

    md.push_str("\n## Articles\n");
    for a in &outcome.articles {
        let n = sources
            .iter()
            .find(|s| s.id == a.id)
            .map(|s| format!("[{}] ", s.n))
            .unwrap_or_default();
        md.push_str(&format!("\n### {n}{}\n\n", a.title_en));
        md.push_str(&format!(
            "{} ({}) · `{}` · translated by {} · [English translation](articles/{}.md)\n\n",
            lang::english_name(&a.language),
            a.language,
            a.source_path.display(),
            a.translator,
            a.id
        ));
        match &a.summary {
            Some(s) => md.push_str(s),
            None => md.push_str("*No summary (see failures).*"),
        }
        for (j, flag) in a.flags.iter().enumerate() {
            let key = format!("{}-{}", a.id, j + 1);
            md.push_str(&format!("[^{key}]"));
            footnotes.push((key, flag.message.clone()));
        }
        md.push('\n');
    }

    if !outcome.failures.is_empty() {
        md.push_str("\n## Not included\n\n");
        for f in &outcome.failures {
            md.push_str(&format!(
                "- `{}` ({}): {}\n",
                f.source_path.display(),
                f.stage,
                f.error
            ));
        }
    }
    if !footnotes.is_empty() {
        md.push('\n');
        for (key, message) in footnotes {
            md.push_str(&format!("[^{key}]: {message}\n"));
        }
    }
    md
}

/// Writes `brief.md` and `brief.json`.
pub fn write_brief(out_dir: &Path, outcome: &RunOutcome, run: RunRecord) -> Result<()> {
    let sources = sources(&outcome.articles);
    write_atomic(
        &out_dir.join("brief.md"),
        brief_markdown(outcome, &sources).as_bytes(),
    )?;
    let json = BriefJson {
        brief: outcome.brief.clone().unwrap_or_default(),
        brief_flags: &outcome.brief_flags,
        differences: &outcome.differences,
        sources,
        articles: &outcome.articles,
        failures: &outcome.failures,
        run,
    };
    let text = serde_json::to_string_pretty(&json).map_err(|e| Error::Config {
        path: out_dir.join("brief.json"),
        problem: e.to_string(),
    })?;
    write_atomic(&out_dir.join("brief.json"), text.as_bytes())
}

/// Peak resident memory of this process (Linux `VmHWM`), in MiB.
pub fn peak_memory_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}
