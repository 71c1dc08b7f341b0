//! The types every stage shares: an article as loaded, cleaned and identified; its
//! translation and outcome; flags and fidelity problems; failures; stage statistics; the run's
//! result. Stages produce and consume these; this module imports no stage.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::error::Error;

/// The format of an input file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Markdown,
    Json,
}

/// One input file, decoded but not yet cleaned.
#[derive(Debug, Clone)]
pub struct SourceDoc {
    /// File stem, unique within the run.
    pub id: String,
    pub path: PathBuf,
    pub format: Format,
    pub text: String,
    pub declared_title: Option<String>,
    pub declared_lang: Option<String>,
}

/// Why a paragraph was removed by cleaning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Removal {
    RepeatedBlock {
        text: String,
    },
    Boilerplate {
        rule: String,
        text: String,
    },
    /// Not language: an inline data image, or a run without spaces longer than any word
    /// (encoded data). `text` is its first characters; `chars` its length.
    NotText {
        text: String,
        chars: usize,
    },
}

/// The cleaned article: title (if one was found) and body paragraphs.
#[derive(Debug, Clone)]
pub struct Cleaned {
    pub title: Option<String>,
    pub paragraphs: Vec<String>,
    pub removed: Vec<Removal>,
}

/// The language of a text and how sure the detector is.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Detection {
    /// ISO 639-1 where one exists, else ISO 639-3.
    pub code: String,
    pub confidence: f64,
    pub reliable: bool,
    /// `detected` or `declared` (a JSON article's `lang`).
    pub source: &'static str,
}

/// A cleaned article with its language, ready to translate.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// Its place among all the run's input files (the order sources are numbered in).
    pub position: usize,
    pub doc: SourceDoc,
    pub lang: Detection,
    pub cleaned: Cleaned,
    pub flags: Vec<Flag>,
}

impl Prepared {
    /// The units an article is translated in: its title, when there is one, then its
    /// paragraphs.
    pub fn units(&self) -> Vec<String> {
        self.cleaned
            .title
            .iter()
            .chain(self.cleaned.paragraphs.iter())
            .cloned()
            .collect()
    }
}

/// A problem found in one article, reported in `brief.json` and as a footnote in `brief.md`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Flag {
    pub kind: FlagKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FlagKind {
    /// A number of the source is not in the translation.
    MissingNumber,
    /// A number of the translation is not in the source.
    ExtraNumber,
    /// The model stopped at its token budget: the output may be incomplete.
    TokenBudget,
    /// The same words repeat over and over.
    Repetition,
    /// Language detection was unsure or disagreed with a declared language.
    Language,
    /// The brief cites a source number that does not exist.
    Citation,
    /// A Latin-script name or ticker of the source is not in the translation.
    MissingName,
    /// A month or weekday of the source is not in the translation.
    MissingDate,
    /// An amount kept its value but lost or changed its unit (percent, currency).
    ChangedUnit,
    /// The translation is far shorter or longer than translations of this language run.
    LengthRatio,
    /// A brief sentence gave a figure that no source article has; it was removed.
    UnsupportedNumber,
    /// A name of the translation has no counterpart in the source.
    InsertedName,
    /// The model wrote about its task ("Here is the translation") instead of translating.
    TaskTalk,
    /// Source-script (Arabic) text was left in the English.
    SourceScript,
    /// Sentences whose calibrated confidence is below the model's threshold.
    LowConfidence,
    /// A summary or brief sentence that its sources do not support; it was removed.
    UnsupportedClaim,
    /// The article holds text addressed to AI tools (a prompt-injection attempt).
    Instructions,
    /// Cleaning removed something that is not article text (an over-long run without
    /// spaces, an inline data image) or input hygiene changed the file's reading.
    Input,
}

/// One thing a translation lost or changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    pub kind: FlagKind,
    /// What is missing or wrong, as the source writes it.
    pub item: String,
}

impl Problem {
    pub fn new(kind: FlagKind, item: impl Into<String>) -> Self {
        Problem {
            kind,
            item: item.into(),
        }
    }

    /// One line for a report: "number 1.000 of the source is not in the translation".
    pub fn describe(&self) -> String {
        let item = &self.item;
        match self.kind {
            FlagKind::MissingNumber => {
                format!("number {item} of the source is not in the translation")
            }
            FlagKind::ExtraNumber => {
                format!("number {item} of the translation is not in the source")
            }
            FlagKind::MissingName => format!("name {item} of the source is not in the translation"),
            FlagKind::MissingDate => format!("{item} of the source is not in the translation"),
            FlagKind::ChangedUnit => item.clone(),
            FlagKind::LengthRatio => {
                format!("translation length is {item} of the source's, outside the usual range")
            }
            FlagKind::Repetition => "the translation ends in a repetition loop".to_string(),
            FlagKind::InsertedName => {
                format!("name {item} of the translation has no counterpart in the source")
            }
            FlagKind::TaskTalk => format!("the model wrote about its task: \"{item}\""),
            FlagKind::SourceScript => format!("source-script text left untranslated: {item}"),
            _ => item.clone(),
        }
    }
}

/// The fidelity verdict on translations, as the translate stage's retry round uses it. The
/// check stage implements it; the orchestrator hands it to the translate stage, so that
/// translation never imports the stage after it.
pub trait FidelityCheck {
    /// Everything wrong with `translation` as an English rendering of `source` (in `lang`).
    fn problems(&self, source: &str, lang: &str, translation: &str) -> Vec<Problem>;
    /// What the English rendering of `text` must contain, listed in a retry's prompt.
    fn must_keep(&self, text: &str, lang: &str) -> Vec<String>;
}

/// One turn of a chat prompt.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChatMessage {
    pub role: &'static str,
    pub content: String,
}

impl ChatMessage {
    pub fn system(content: impl Into<String>) -> Self {
        ChatMessage {
            role: "system",
            content: content.into(),
        }
    }
    pub fn user(content: impl Into<String>) -> Self {
        ChatMessage {
            role: "user",
            content: content.into(),
        }
    }
    pub fn assistant(content: impl Into<String>) -> Self {
        ChatMessage {
            role: "assistant",
            content: content.into(),
        }
    }
}

/// Timing and token counts of one stage.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct StageStats {
    pub name: String,
    pub items: usize,
    pub wall_s: f64,
    /// Prompt tokens prefilled.
    pub prompt_tokens: usize,
    /// Prompt tokens served from the KV cache of a shared prefix instead.
    pub reused_prompt_tokens: usize,
    pub generated_tokens: usize,
    pub prefill_s: f64,
    pub decode_s: f64,
    pub prefill_tokens_per_s: f64,
    pub decode_tokens_per_s: f64,
    /// LLM decoding batches, the most rows one of them held, and their forward passes.
    pub batches: usize,
    pub largest_batch: usize,
    pub decode_steps: usize,
    /// Draft tokens (prompt lookup) checked in those passes, and those the model chose too:
    /// each accepted one is a token decoded without a pass of its own.
    #[serde(default)]
    pub draft_tokens: usize,
    #[serde(default)]
    pub accepted_draft_tokens: usize,
}

impl StageStats {
    pub fn new(name: &str) -> Self {
        StageStats {
            name: name.into(),
            ..Default::default()
        }
    }

    /// One generation's tokens: prefilled, served from a shared prefix, and new.
    pub fn add_generation(&mut self, prompt_tokens: usize, reused: usize, generated: usize) {
        self.prompt_tokens += prompt_tokens;
        self.reused_prompt_tokens += reused;
        self.generated_tokens += generated;
        self.items += 1;
    }

    /// One batched call's time and shape.
    pub fn add_batch(
        &mut self,
        prefill: Duration,
        decode: Duration,
        batches: usize,
        largest_batch: usize,
        steps: usize,
    ) {
        self.prefill_s += prefill.as_secs_f64();
        self.decode_s += decode.as_secs_f64();
        self.batches += batches;
        self.largest_batch = self.largest_batch.max(largest_batch);
        self.decode_steps += steps;
    }

    pub fn finish(&mut self, started: Instant) {
        self.wall_s = started.elapsed().as_secs_f64();
        let rate = |n: usize, s: f64| if s > 0.0 { n as f64 / s } else { 0.0 };
        self.prefill_tokens_per_s = rate(self.prompt_tokens, self.prefill_s);
        self.decode_tokens_per_s = rate(self.generated_tokens, self.decode_s);
    }
}

/// An article that could not be processed, and at which step.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Failure {
    pub source_path: PathBuf,
    pub stage: String,
    pub error: String,
}

impl Failure {
    /// In flow order, then by file: the same whichever shard or batch met them.
    pub fn sort_in_flow_order(failures: &mut [Failure]) {
        let rank = |stage: &str| {
            ["load", "translate", "write", "summarize", "brief"]
                .iter()
                .position(|s| *s == stage)
                .unwrap_or(usize::MAX)
        };
        failures.sort_by(|a, b| {
            (rank(&a.stage), &a.source_path).cmp(&(rank(&b.stage), &b.source_path))
        });
    }

    pub fn new(path: &Path, stage: &str, error: &Error) -> Self {
        let error = error.in_words();
        tracing::info!(path = %path.display(), stage, "{error}");
        Failure {
            // Lossy: a report is UTF-8, and a name that is not must not cost the report.
            source_path: PathBuf::from(path.to_string_lossy().into_owned()),
            stage: stage.into(),
            error,
        }
    }
}

/// An input the run did not read, and why (another file type, a file given twice).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SkippedInput {
    pub path: PathBuf,
    pub reason: String,
}

impl SkippedInput {
    pub fn new(path: &Path, reason: &str) -> Self {
        tracing::warn!(path = %path.display(), "skipped: {reason}");
        SkippedInput {
            // Lossy, as a failure's path.
            path: PathBuf::from(path.to_string_lossy().into_owned()),
            reason: reason.into(),
        }
    }
}

/// What went wrong in one translated unit (paragraph, line or title), kept per unit so that a
/// batch spanning several articles can be split back into articles.
#[derive(Debug, Clone, Default)]
pub struct UnitIssues {
    /// Chunks that stopped at the new-token budget or length limit.
    pub budget_hits: usize,
    /// Chunks that ended in a repetition loop.
    pub loops: usize,
    /// What the fidelity check still finds wrong in the translation kept.
    pub problems: Vec<Problem>,
}

/// The evidence on one translation: the decoder's token log-probabilities, the checks, and
/// (after consensus re-decoding) how far the candidates disagreed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Signals {
    /// Mean log-probability of the chosen tokens.
    pub mean_logprob: f64,
    /// The weakest stretch: the lowest mean log-probability of any three consecutive tokens.
    pub weakest_logprob: f64,
    /// Mean entropy (nats) of the distributions the tokens came from (0 where the engine
    /// does not report it).
    pub mean_entropy: f64,
    /// Problems the fidelity check found.
    pub problems: usize,
    pub tokens: usize,
    /// 1 − mean chrF/100 of the kept candidate against the other candidates.
    pub disagreement: Option<f64>,
}

/// Tokens of the weakest stretch.
const WEAKEST_SPAN: usize = 3;

impl Signals {
    pub fn from_tokens(logprobs: &[f32], entropies: &[f32], problems: usize) -> Signals {
        let mean = |v: &[f32]| {
            if v.is_empty() {
                0.0
            } else {
                v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64
            }
        };
        let weakest = logprobs
            .windows(WEAKEST_SPAN.min(logprobs.len()).max(1))
            .map(mean)
            .fold(f64::INFINITY, f64::min);
        Signals {
            mean_logprob: mean(logprobs),
            weakest_logprob: if weakest.is_finite() { weakest } else { 0.0 },
            mean_entropy: mean(entropies),
            problems,
            tokens: logprobs.len(),
            disagreement: None,
        }
    }
}

/// One translated sentence and how far to trust it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct TranslatedSentence {
    /// The unit it belongs to: the title (0, when there is one), then the paragraphs.
    pub unit: usize,
    /// The source text it translates: its own sentence where the sentences of a chunk line up
    /// one to one, else the whole chunk.
    pub source: String,
    pub text: String,
    /// Calibrated probability that the sentence is a good translation, in [0, 1].
    pub confidence: f64,
    /// Below the model's threshold: to be verified before use.
    pub low_confidence: bool,
    /// What the checks found, and why the confidence is low.
    pub flags: Vec<Flag>,
}

/// One translated segment (LLM chunk or dedicated translator's sentence) as the evaluation
/// reads it: the first translation and the one kept, with their signals.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SegmentRecord {
    pub unit: usize,
    pub source: String,
    pub first_text: String,
    pub first_signals: Signals,
    pub first_confidence: f64,
    pub text: String,
    pub signals: Signals,
    pub confidence: f64,
    /// Candidates were decoded and one chosen by consensus.
    pub redecoded: bool,
}

/// Units translated by one translator.
#[derive(Debug, Clone)]
pub struct Translated {
    pub translator: String,
    pub units: Vec<String>,
    pub issues: Vec<UnitIssues>,
    /// Chunks translated again because their first translation failed the fidelity check or
    /// fell below the confidence threshold.
    pub retried: usize,
    /// Each unit's sentences with their confidence.
    pub sentences: Vec<Vec<TranslatedSentence>>,
    pub segments: Vec<SegmentRecord>,
    /// Seconds spent on consensus re-decoding.
    pub consensus_s: f64,
    /// The confidences come from a calibration file.
    pub calibrated: bool,
}

impl Translated {
    pub fn budget_hits(&self) -> usize {
        self.issues.iter().map(|i| i.budget_hits).sum()
    }

    pub fn loops(&self) -> usize {
        self.issues.iter().map(|i| i.loops).sum()
    }

    /// Splits off the first `n` units (one article of a shared batch).
    pub fn take_front(&mut self, n: usize) -> Translated {
        let rest_units = self.units.split_off(n);
        let rest_issues = self.issues.split_off(n);
        // Segments are in unit order; the rest's unit numbers restart at 0.
        let mut rest_sentences = self.sentences.split_off(n.min(self.sentences.len()));
        for s in rest_sentences.iter_mut().flatten() {
            s.unit -= n;
        }
        let split = self.segments.partition_point(|s| s.unit < n);
        let mut rest_segments = self.segments.split_off(split);
        for s in &mut rest_segments {
            s.unit -= n;
        }
        Translated {
            translator: self.translator.clone(),
            units: std::mem::replace(&mut self.units, rest_units),
            issues: std::mem::replace(&mut self.issues, rest_issues),
            retried: 0,
            sentences: std::mem::replace(&mut self.sentences, rest_sentences),
            segments: std::mem::replace(&mut self.segments, rest_segments),
            consensus_s: 0.0,
            calibrated: self.calibrated,
        }
    }
}

/// One article through to the end.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ArticleOutcome {
    pub id: String,
    /// Its place among all the run's input files: a shard's articles keep their place in
    /// the whole, so a merged brief numbers its sources as one run would.
    #[serde(default)]
    pub position: usize,
    pub source_path: PathBuf,
    pub language: String,
    pub language_confidence: f64,
    pub title: String,
    pub title_detected: bool,
    pub title_en: String,
    pub translation: String,
    pub summary: Option<String>,
    pub translator: String,
    pub source_paragraphs: usize,
    pub translation_paragraphs: usize,
    pub flags: Vec<Flag>,
    /// Chunks translated again after failing the fidelity check or the confidence threshold.
    #[serde(default)]
    pub retried_chunks: usize,
    /// Every translated sentence with its confidence (empty for an English source).
    #[serde(default)]
    pub sentences: Vec<TranslatedSentence>,
    /// Whether the confidences come from a calibration fitted on the dev set.
    #[serde(default)]
    pub calibrated: bool,
    /// The summary rests on low-confidence sentences (it says so where it is shown).
    #[serde(default)]
    pub summary_low_confidence: bool,
    /// The cleaned original (title and paragraphs), which facts are checked against.
    #[serde(default)]
    pub original: String,
    pub removed: Vec<Removal>,
}

/// An amount as one source gives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Claim {
    pub source: usize,
    /// As the English text writes it, with its qualifier: "more than 11%".
    pub value: String,
    /// The headline says it (not the body).
    pub in_headline: bool,
    /// The clause it comes from.
    pub context: String,
}

/// Sources that give different values for the same fact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Difference {
    /// What the figure is about: a name and a topic, "CleanSpark shares".
    pub subject: String,
    pub claims: Vec<Claim>,
}

/// One sentence of the brief: the sources it cites, and whether it rests on a sentence whose
/// translation is low confidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct BriefSentence {
    pub text: String,
    pub sources: Vec<usize>,
    pub low_confidence: bool,
}

/// Everything `run` produced.
pub struct RunOutcome {
    pub articles: Vec<ArticleOutcome>,
    pub failures: Vec<Failure>,
    /// What the folder walk left out, and why.
    pub skipped: Vec<SkippedInput>,
    pub brief: Option<String>,
    pub brief_sentences: Vec<BriefSentence>,
    pub brief_flags: Vec<Flag>,
    pub differences: Vec<Difference>,
    pub stages: Vec<StageStats>,
    /// Every input file the run walked, shards' or not.
    pub inputs: InputSet,
}

/// The input files a run walked, as a count and a hash of their paths in order: shards of one
/// run must have walked the same ones, or their ids and places disagree.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct InputSet {
    pub files: usize,
    /// sha256 of the paths, one per line, in the order the run numbered them.
    pub sha256: String,
}
