//! `brief.json` and its JSON Schema, generated from the same types (`crossbrief schema`;
//! the committed copy is `docs/brief.schema.json`, held to the types by a test).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{DecodingRecord, Report, ReportView, RunRecord, SourceEntry};
use crate::domain::{
    ArticleOutcome, BriefSentence, Difference, Failure, Flag, SkippedInput, StageStats,
};
use crate::error::{Error, Result};

/// The current `schema_version` of `brief.json` (2: articles carry `position` and
/// `original`, which `merge` needs).
pub const SCHEMA_VERSION: u32 = 2;

/// `brief.json`: everything a run produced, for programs.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct BriefJson {
    /// The layout's version: raised whenever a field changes meaning or goes away.
    pub schema_version: u32,
    /// The brief's paragraphs (one per story, blank-line separated), empty when none.
    pub brief: String,
    /// The brief's sentences in order, each with the sources it cites and whether it rests on
    /// a low-confidence translated sentence (marked ⚠ in brief.md).
    pub brief_sentences: Vec<BriefSentence>,
    pub brief_flags: Vec<Flag>,
    /// Figures the sources give differently ("Where sources differ" in brief.md).
    pub differences: Vec<Difference>,
    pub sources: Vec<SourceEntry>,
    pub articles: Vec<ArticleOutcome>,
    pub failures: Vec<Failure>,
    /// Inputs the run did not read, and why (another file type, the same file twice).
    pub skipped: Vec<SkippedInput>,
    pub run: RunRecord,
}

/// `brief.json`.
pub struct Json;

impl Report for Json {
    fn file_name(&self) -> &'static str {
        "brief.json"
    }

    fn render(&self, view: &ReportView) -> Result<String> {
        let outcome = view.outcome;
        let json = BriefJson {
            schema_version: SCHEMA_VERSION,
            brief: outcome.brief.clone().unwrap_or_default(),
            brief_sentences: outcome.brief_sentences.clone(),
            brief_flags: outcome.brief_flags.clone(),
            differences: outcome.differences.clone(),
            sources: view.sources.clone(),
            articles: outcome.articles.clone(),
            failures: outcome.failures.clone(),
            skipped: outcome.skipped.clone(),
            run: view.run.clone(),
        };
        serde_json::to_string_pretty(&json).map_err(|e| Error::Config {
            path: "brief.json".into(),
            problem: e.to_string(),
        })
    }
}

/// The JSON Schema of `brief.json`, pretty-printed.
pub fn schema() -> String {
    let schema = schemars::schema_for!(BriefJson);
    serde_json::to_string_pretty(&schema).expect("a schema serializes") + "\n"
}

/// What `crossbrief merge` reads of a shard's `brief.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct ShardReport {
    pub schema_version: u32,
    pub articles: Vec<ArticleOutcome>,
    pub failures: Vec<Failure>,
    pub skipped: Vec<SkippedInput>,
    pub run: ShardRun,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ShardRun {
    pub crossbrief_version: String,
    pub profile: String,
    pub inputs: crate::domain::InputSet,
    pub decoding: DecodingRecord,
    pub stages: Vec<StageStats>,
    pub shard: Option<String>,
}

/// The `brief.json` of the run that wrote `dir`.
pub fn read_shard(dir: &std::path::Path) -> Result<ShardReport> {
    let path = dir.join("brief.json");
    let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
    let report: ShardReport = serde_json::from_slice(&bytes).map_err(|e| Error::Input {
        path: path.clone(),
        problem: format!("not a crossbrief brief.json: {e}"),
    })?;
    if report.schema_version != SCHEMA_VERSION {
        return Err(Error::input(
            &path,
            format!(
                "schema_version {} (this crossbrief reads {SCHEMA_VERSION}): run the shard again with this version",
                report.schema_version
            ),
        ));
    }
    Ok(report)
}
