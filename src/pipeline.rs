//! The whole job: load → clean → detect → segment → translate → check → summarize → brief →
//! write. An article that fails at any step is reported with its file and the others go on;
//! each translation is written as soon as it is done.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};

use crate::article::{self, SourceDoc};
use crate::backend::marian::{MarianEngine, MarianSettings};
use crate::backend::{BatchTimings, Decoding, Finish, Generation, LlmEngine, Request};
use crate::check::{self, Flag, FlagKind};
use crate::clean::{self, BoilerplateRules, Cleaned, Removal};
use crate::error::{Error, Result};
use crate::fidelity::{self, Problem};
use crate::lang::{self, Detection};
use crate::llm_translate;
use crate::manifest::{Catalog, ModelManifest};
use crate::progress::Progress;
use crate::prompts::{BriefSource, Prompts};
use crate::reconcile::{self, Difference};
use crate::registry::{Engine, Registry};
use crate::report;
use crate::segment::{self, Chunk};
use crate::stories;

/// Overrides of the manifest's decoding settings from the command line.
#[derive(Debug, Clone, Copy, Default)]
pub struct DecodingOverride {
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub seed: Option<u64>,
    pub beam_size: Option<usize>,
    pub batch_rows: Option<usize>,
    pub batch_tokens: Option<usize>,
    pub shortlist: Option<bool>,
}

pub struct Context<'a> {
    pub catalog: &'a Catalog,
    pub registry: Registry<'a>,
    pub prompts: Prompts,
    pub rules: BoilerplateRules,
    pub progress: Progress,
    pub decoding: DecodingOverride,
}

/// Timing and token counts of one stage.
#[derive(Debug, Clone, Default, Serialize)]
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
}

impl StageStats {
    pub fn new(name: &str) -> Self {
        StageStats {
            name: name.into(),
            ..Default::default()
        }
    }

    pub fn add(&mut self, g: &Generation) {
        self.prompt_tokens += g.prompt_tokens;
        self.reused_prompt_tokens += g.reused_tokens;
        self.generated_tokens += g.new_tokens;
        self.items += 1;
    }

    pub fn add_timings(&mut self, t: &BatchTimings) {
        self.prefill_s += t.prefill.as_secs_f64();
        self.decode_s += t.decode.as_secs_f64();
        self.batches += t.batches;
        self.largest_batch = self.largest_batch.max(t.largest_batch);
        self.decode_steps += t.steps;
    }

    pub fn finish(&mut self, started: Instant) {
        self.wall_s = started.elapsed().as_secs_f64();
        let rate = |n: usize, s: f64| if s > 0.0 { n as f64 / s } else { 0.0 };
        self.prefill_tokens_per_s = rate(self.prompt_tokens, self.prefill_s);
        self.decode_tokens_per_s = rate(self.generated_tokens, self.decode_s);
    }
}

/// An article that could not be processed, and at which step.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub source_path: PathBuf,
    pub stage: String,
    pub error: String,
}

impl Failure {
    fn new(path: &Path, stage: &str, error: &Error) -> Self {
        tracing::info!(path = %path.display(), stage, "{error}");
        Failure {
            source_path: path.to_path_buf(),
            stage: stage.into(),
            error: error.to_string(),
        }
    }
}

/// A cleaned article with its language, ready to translate.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub doc: SourceDoc,
    pub lang: Detection,
    pub cleaned: Cleaned,
    pub flags: Vec<Flag>,
}

/// One article through to the end.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ArticleOutcome {
    pub id: String,
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
    /// Chunks translated again after failing the fidelity check.
    #[serde(default)]
    pub retried_chunks: usize,
    /// The cleaned original (title and paragraphs), which facts are checked against.
    #[serde(skip)]
    pub original: String,
    pub removed: Vec<Removal>,
}

/// Reads, cleans and identifies one file.
pub fn prepare(
    path: &Path,
    id: String,
    max_bytes: u64,
    catalog: &Catalog,
    rules: &BoilerplateRules,
) -> Result<Prepared> {
    let doc = article::load(path, id, max_bytes)?;
    let dedup = clean::deduplicate(&doc.text, doc.format);
    let body = dedup.paragraphs.join("\n");
    let detected = lang::detect(&body);
    let mut flags = Vec::new();
    let lang = match (&doc.declared_lang, detected) {
        (Some(declared), detected) => {
            if let Some(d) = detected
                .as_ref()
                .filter(|d| d.reliable && &d.code != declared)
            {
                flags.push(Flag {
                    kind: FlagKind::Language,
                    message: format!("declared language {declared} but the text looks like {} (confidence {:.2})", d.code, d.confidence),
                });
            }
            Detection {
                code: declared.clone(),
                confidence: 1.0,
                reliable: true,
                source: "declared",
            }
        }
        (None, Some(d)) => d,
        (None, None) => {
            return Err(Error::input(
                path,
                "could not identify the language of the text",
            ))
        }
    };
    let supported = catalog.supported_languages();
    if !supported.contains(&lang.code) {
        return Err(Error::UnsupportedLanguage {
            path: path.to_path_buf(),
            lang: lang.code.clone(),
            confidence: lang.confidence,
            supported: supported.join(", "),
        });
    }
    if !lang.reliable {
        flags.push(Flag {
            kind: FlagKind::Language,
            message: format!(
                "language detection unsure: {} with confidence {:.2}",
                lang.code, lang.confidence
            ),
        });
    }
    let cleaned = clean::finish(dedup, rules, &lang.code, doc.declared_title.as_deref());
    if cleaned.paragraphs.is_empty() {
        return Err(Error::input(
            path,
            "nothing left to translate after removing repeated blocks and boilerplate",
        ));
    }
    Ok(Prepared {
        doc,
        lang,
        cleaned,
        flags,
    })
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

/// Units translated by one translator.
#[derive(Debug, Clone)]
pub struct Translated {
    pub translator: String,
    pub units: Vec<String>,
    pub issues: Vec<UnitIssues>,
    /// Chunks translated again because their first translation failed the fidelity check.
    pub retried: usize,
}

impl Translated {
    pub fn budget_hits(&self) -> usize {
        self.issues.iter().map(|i| i.budget_hits).sum()
    }

    pub fn loops(&self) -> usize {
        self.issues.iter().map(|i| i.loops).sum()
    }

    /// Splits off the first `n` units (one article of a shared batch).
    fn take_front(&mut self, n: usize) -> Translated {
        let rest_units = self.units.split_off(n);
        let rest_issues = self.issues.split_off(n);
        Translated {
            translator: self.translator.clone(),
            units: std::mem::replace(&mut self.units, rest_units),
            issues: std::mem::replace(&mut self.issues, rest_issues),
            retried: 0,
        }
    }
}

impl DecodingOverride {
    /// A dedicated translator's manifest settings with these overrides applied.
    pub fn apply(self, settings: &mut MarianSettings) {
        settings.beam_size = self.beam_size.unwrap_or(settings.beam_size);
        settings.batch_rows = self.batch_rows.unwrap_or(settings.batch_rows);
        settings.batch_tokens = self.batch_tokens.unwrap_or(settings.batch_tokens);
        settings.shortlist = self.shortlist.unwrap_or(settings.shortlist);
    }

    /// The manifest's decoding settings with these overrides applied.
    pub fn resolve(self, manifest: &ModelManifest) -> Decoding {
        let defaults = &manifest.generation;
        Decoding {
            temperature: self.temperature.unwrap_or(defaults.temperature),
            top_p: self.top_p.unwrap_or(defaults.top_p),
            seed: self.seed.unwrap_or(defaults.seed),
        }
    }
}

/// Translates independent units (paragraphs, lines, a title) with the profile's translator
/// for `lang`: an LLM chunk by chunk, a dedicated translator sentence by sentence, either way
/// in batches over all the units at once.
pub fn translate_units(
    ctx: &mut Context,
    lang: &str,
    units: &[String],
    segmentation: Segmentation,
    stage: &mut StageStats,
    bar: &ProgressBar,
) -> Result<Translated> {
    let model = translator_model(ctx.catalog, lang)?;
    let items = vec![(lang.to_string(), units.to_vec())];
    let mut out = translate_group(ctx, &model, &items, segmentation, stage, bar)?;
    Ok(out.remove(0))
}

/// The profile's translator for `lang`.
fn translator_model(catalog: &Catalog, lang: &str) -> Result<String> {
    Ok(catalog
        .translator_for(lang)
        .ok_or_else(|| Error::NoTranslator {
            lang: lang.to_string(),
            profile: catalog.profile_name.clone(),
            supported: catalog.supported_languages().join(", "),
        })?
        .to_string())
}

/// Translates several documents' units (`(language, units)` each) with one model, all in
/// shared batches, and splits the results back per document.
pub fn translate_group(
    ctx: &mut Context,
    model: &str,
    docs: &[(String, Vec<String>)],
    segmentation: Segmentation,
    stage: &mut StageStats,
    bar: &ProgressBar,
) -> Result<Vec<Translated>> {
    let manifest = ctx.catalog.model(model)?;
    let (chunk_tokens, task) = (
        manifest.generation.chunk_tokens,
        manifest.generation.translate,
    );
    let decoding = ctx.decoding.resolve(manifest);
    let overrides = ctx.decoding;
    let engine = match ctx.registry.engine(model)? {
        Engine::Translator(engine) => {
            overrides.apply(&mut engine.settings);
            let all: Vec<String> = docs.iter().flat_map(|d| d.1.iter().cloned()).collect();
            let mut translated = translate_segments(engine, &all, segmentation, stage, bar)?;
            return Ok(docs
                .iter()
                .map(|(lang, units)| {
                    let mut own = translated.take_front(units.len());
                    // Checked unit by unit; a deterministic translator gives the same again,
                    // so nothing is retried.
                    for ((unit, text), issues) in units.iter().zip(&own.units).zip(&mut own.issues)
                    {
                        issues.problems = fidelity::problems(unit, lang, text)
                            .into_iter()
                            .filter(|p| p.kind != FlagKind::Repetition)
                            .collect();
                    }
                    own
                })
                .collect());
        }
        Engine::Llm(engine) => engine,
    };
    if let Some(rows) = overrides.batch_rows {
        engine.set_batch_rows(rows);
    }
    let mut chunks = Vec::new();
    let mut languages = Vec::new();
    let mut spans = Vec::with_capacity(docs.len());
    for (lang, units) in docs {
        let own = chunk_for(engine, units, chunk_tokens)?;
        spans.push(chunks.len()..chunks.len() + own.len());
        languages.extend(std::iter::repeat_n(lang.as_str(), own.len()));
        chunks.extend(own);
    }
    bar.inc_length(chunks.len() as u64);
    let results = llm_translate::translate_chunks(
        engine,
        &ctx.prompts,
        &languages,
        &chunks,
        task,
        decoding,
        stage,
        bar,
    )?;
    Ok(docs
        .iter()
        .zip(spans)
        .map(|((_, units), span)| {
            let own = &chunks[span.clone()];
            let mut issues = vec![UnitIssues::default(); units.len()];
            for (chunk, i) in own.iter().zip(span.clone()) {
                let unit = &mut issues[chunk.paragraph];
                unit.budget_hits += usize::from(results.cut[i]);
                for problem in &results.problems[i] {
                    match problem.kind {
                        FlagKind::Repetition => unit.loops += 1,
                        FlagKind::TokenBudget => {}
                        _ => unit.problems.push(problem.clone()),
                    }
                }
            }
            Translated {
                translator: engine.name().to_string(),
                units: segment::rebuild_paragraphs(own, &results.texts[span.clone()], units.len()),
                issues,
                retried: results.retried[span].iter().filter(|&&r| r).count(),
            }
        })
        .collect())
}

/// What a dedicated translator gets as one input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segmentation {
    /// Each sentence: articles, whose paragraphs are longer than the sentence pairs these
    /// models learnt from.
    Sentences,
    /// Each unit whole, as Marian's own command line treats a line (`translate --lines` on
    /// sentence-aligned corpora); only a unit over the source-token limit is split.
    WholeUnits,
}

/// Translates units with an encoder–decoder model, all segments of all units batched
/// together (over-long sentences are split at word boundaries).
pub fn translate_segments(
    engine: &MarianEngine,
    units: &[String],
    segmentation: Segmentation,
    stage: &mut StageStats,
    bar: &ProgressBar,
) -> Result<Translated> {
    let max_tokens = engine.settings.max_source_tokens;
    let mut segments: Vec<Chunk> = Vec::new();
    for (u, unit) in units.iter().enumerate() {
        let sentences = match segmentation {
            Segmentation::Sentences => segment::sentences(unit),
            Segmentation::WholeUnits => vec![unit.clone()],
        };
        let pieces =
            segment::chunk_paragraphs(&sentences, max_tokens, &|s| engine.count_tokens(s))?;
        for (part, chunk) in pieces.into_iter().enumerate() {
            segments.push(Chunk {
                paragraph: u,
                part,
                ..chunk
            });
        }
    }
    bar.inc_length(segments.len() as u64);
    let texts: Vec<String> = segments.iter().map(|c| c.text.clone()).collect();
    let (outputs, batch) = engine.translate(&texts, &mut |n| bar.inc(n as u64))?;
    stage.items += batch.segments;
    stage.prompt_tokens += batch.source_tokens;
    stage.generated_tokens += batch.target_tokens;
    stage.decode_s += batch.wall.as_secs_f64();
    bar.set_message(format!(
        "{:.0} tok/s in {} batches",
        batch.target_tokens as f64 / batch.wall.as_secs_f64().max(1e-9),
        batch.batches
    ));
    let mut issues = vec![UnitIssues::default(); units.len()];
    for (chunk, out) in segments.iter().zip(&outputs) {
        issues[chunk.paragraph].budget_hits += usize::from(out.truncated);
        issues[chunk.paragraph].loops += usize::from(check::has_repetition_loop(&out.text));
    }
    let texts: Vec<String> = outputs.into_iter().map(|o| o.text).collect();
    Ok(Translated {
        translator: engine.name().to_string(),
        units: segment::rebuild_paragraphs(&segments, &texts, units.len()),
        issues,
        retried: 0,
    })
}

/// Chunks an article's paragraphs with the engine's tokenizer.
pub fn chunk_for(
    engine: &LlmEngine,
    paragraphs: &[String],
    max_tokens: usize,
) -> Result<Vec<Chunk>> {
    segment::chunk_paragraphs(paragraphs, max_tokens, &|s| engine.count_tokens(s))
}

/// Everything `run` produced.
pub struct RunOutcome {
    pub articles: Vec<ArticleOutcome>,
    pub failures: Vec<Failure>,
    pub brief: Option<String>,
    pub brief_flags: Vec<Flag>,
    pub differences: Vec<Difference>,
    pub stages: Vec<StageStats>,
}

/// Runs the job over `inputs` and writes everything into `out_dir`.
pub fn run(
    ctx: &mut Context,
    inputs: &[PathBuf],
    out_dir: &Path,
    max_bytes: u64,
) -> Result<RunOutcome> {
    let (files, input_errors) = article::collect_inputs(inputs);
    let mut failures: Vec<Failure> = input_errors
        .iter()
        .map(|e| Failure::new(&error_path(e), "load", e))
        .collect();
    let mut stages = Vec::new();

    // Load and clean.
    let started = Instant::now();
    let mut stage = StageStats::new("clean");
    let mut taken = BTreeSet::new();
    let mut prepared = Vec::new();
    for path in &files {
        let id = article::unique_id(path, &mut taken);
        match prepare(path, id, max_bytes, ctx.catalog, &ctx.rules) {
            Ok(p) => prepared.push(p),
            Err(e) => failures.push(Failure::new(path, "load", &e)),
        }
        stage.items += 1;
    }
    stage.finish(started);
    stages.push(stage);
    report::prepare_out_dir(out_dir)?;

    // Translate: the articles of each translator model go through it together, in shared
    // batches; one stage per model.
    let bar = ctx.progress.stage("translate", 0, "chunks");
    let mut outcomes: Vec<Option<Result<ArticleOutcome>>> = prepared.iter().map(|_| None).collect();
    let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, p) in prepared.iter().enumerate() {
        if p.lang.code == "en" {
            outcomes[i] = Some(finish_article(p, None));
            continue;
        }
        match translator_model(ctx.catalog, &p.lang.code) {
            Ok(model) => groups.entry(model).or_default().push(i),
            Err(e) => outcomes[i] = Some(Err(e)),
        }
    }
    for (model, members) in &groups {
        let docs: Vec<(String, Vec<String>)> = members
            .iter()
            .map(|&i| (prepared[i].lang.code.clone(), article_units(&prepared[i])))
            .collect();
        let started = Instant::now();
        let is_translator = ctx
            .catalog
            .model(model)
            .is_ok_and(|m| m.architecture.is_translator());
        let name = if is_translator {
            format!("translate: {model}")
        } else {
            "translate: llm".to_string()
        };
        let mut stage = StageStats::new(&name);
        let result = translate_group(ctx, model, &docs, Segmentation::Sentences, &mut stage, &bar);
        stage.finish(started);
        stages.push(stage);
        match result {
            Ok(translated) => {
                for (&i, own) in members.iter().zip(translated) {
                    let outcome = finish_article(&prepared[i], Some(own));
                    // Written now: later groups and the summaries take minutes.
                    if let Ok(done) = &outcome {
                        report::write_translation(out_dir, done)?;
                    }
                    outcomes[i] = Some(outcome);
                }
            }
            Err(e) => {
                let message = e.to_string();
                for &i in members {
                    outcomes[i] = Some(Err(Error::input(&prepared[i].doc.path, message.clone())));
                }
            }
        }
    }
    bar.finish_and_clear();
    let mut articles = Vec::new();
    for (p, outcome) in prepared.iter().zip(outcomes) {
        match outcome.expect("every article has an outcome") {
            Ok(outcome) => articles.push(outcome),
            Err(e) => failures.push(Failure::new(&p.doc.path, "translate", &e)),
        }
    }

    // Summarize: all articles in shared batches.
    let started = Instant::now();
    let mut stage = StageStats::new("summarize");
    let bar = ctx
        .progress
        .stage("summarize", articles.len() as u64, "articles");
    let model = ctx.catalog.profile.summarize.clone();
    match summarize_all(ctx, &model, &articles, &mut stage, &bar) {
        Ok(summaries) => {
            for (a, summary) in articles.iter_mut().zip(summaries) {
                match summary {
                    Ok(summary) => a.summary = Some(summary),
                    Err(e) => failures.push(Failure::new(&a.source_path, "summarize", &e)),
                }
            }
        }
        Err(e) => {
            for a in &articles {
                failures.push(Failure::new(&a.source_path, "summarize", &e));
            }
        }
    }
    bar.finish_and_clear();
    stage.finish(started);
    stages.push(stage);

    // Where the sources differ, numbered as the brief numbers them.
    let differences = reconcile::differences(
        &articles
            .iter()
            .filter(|a| a.summary.is_some())
            .enumerate()
            .map(|(i, a)| reconcile::Source {
                n: i + 1,
                original: &a.original,
                lang: &a.language,
                title_en: &a.title_en,
                body_en: &a.translation,
            })
            .collect::<Vec<_>>(),
    );

    // Brief.
    let started = Instant::now();
    let mut stage = StageStats::new("brief");
    let mut brief_flags = Vec::new();
    let sources: Vec<BriefSource> = articles
        .iter()
        .filter_map(|a| {
            a.summary.as_ref().map(|s| BriefSource {
                n: 0,
                title: a.title_en.clone(),
                language: lang::english_name(&a.language),
                summary: s.clone(),
            })
        })
        .enumerate()
        .map(|(i, mut s)| {
            s.n = i + 1;
            s
        })
        .collect();
    let brief = if sources.is_empty() {
        None
    } else {
        let bar = ctx.progress.stage("brief", 1, "brief");
        let model = ctx.catalog.profile.brief.clone();
        let supported: Vec<f64> = articles
            .iter()
            .filter(|a| a.summary.is_some())
            .flat_map(|a| check::numbers(&a.original, &a.language))
            .flat_map(|(_, values)| values)
            .collect();
        let result = write_brief(ctx, &model, &sources, &supported, &mut stage);
        bar.finish_and_clear();
        match result {
            Ok((text, removed)) => {
                brief_flags = crate::cite::check_citations(&text, sources.len());
                brief_flags.extend(removed);
                Some(text)
            }
            Err(e) => {
                failures.push(Failure::new(out_dir, "brief", &e));
                None
            }
        }
    };
    stage.finish(started);
    stages.push(stage);

    Ok(RunOutcome {
        articles,
        failures,
        brief,
        brief_flags,
        differences,
        stages,
    })
}

fn error_path(e: &Error) -> PathBuf {
    match e {
        Error::Input { path, .. } | Error::Io { path, .. } => path.clone(),
        _ => PathBuf::new(),
    }
}

/// The units an article is translated in: its title, when there is one, then its paragraphs.
fn article_units(p: &Prepared) -> Vec<String> {
    p.cleaned
        .title
        .iter()
        .chain(p.cleaned.paragraphs.iter())
        .cloned()
        .collect()
}

/// Checks an article's translation (`None`: the source is English) and assembles its outcome.
fn finish_article(p: &Prepared, translated: Option<Translated>) -> Result<ArticleOutcome> {
    let paragraphs = &p.cleaned.paragraphs;
    let title_source = p.cleaned.title.clone();
    let mut flags = p.flags.clone();
    let units = article_units(p);

    let mut retried_chunks = 0;
    let (translator, body, title_en) = match translated {
        None => (
            "none (source is English)".to_string(),
            paragraphs.clone(),
            title_source.clone(),
        ),
        Some(translated) => {
            let mut translations = translated.units.clone();
            let body = translations.split_off(title_source.iter().count());
            let title_en = translations.pop();
            let budget_hits = translated.budget_hits();
            if budget_hits > 0 {
                flags.push(Flag {
                    kind: FlagKind::TokenBudget,
                    message: format!(
                        "{budget_hits} chunk(s) reached the length limit; their translation may be incomplete"
                    ),
                });
            }
            if translated.retried > 0 {
                tracing::info!(article = %p.doc.id, chunks = translated.retried, "translated again after failing the fidelity check");
            }
            let loops = translated.loops();
            if loops > 0 {
                flags.push(Flag {
                    kind: FlagKind::Repetition,
                    message: format!("{loops} chunk(s) ended in a repetition loop"),
                });
            }
            let after = if translated.retried > 0 {
                " (still so after translating it again)"
            } else {
                ""
            };
            let mut seen = Vec::new();
            for problem in translated.issues.iter().flat_map(|i| &i.problems) {
                if !seen.contains(problem) {
                    seen.push(problem.clone());
                    flags.push(Flag {
                        kind: problem.kind,
                        message: format!("{}{after}", problem.describe()),
                    });
                }
            }
            retried_chunks = translated.retried;
            (translated.translator, body, title_en)
        }
    };

    let title = title_source
        .clone()
        .unwrap_or_else(|| derived_title(paragraphs));
    let title_en = title_en.unwrap_or_else(|| derived_title(&body));
    Ok(ArticleOutcome {
        id: p.doc.id.clone(),
        source_path: p.doc.path.clone(),
        language: p.lang.code.clone(),
        language_confidence: p.lang.confidence,
        title,
        title_detected: title_source.is_some(),
        title_en,
        translation: body.join("\n\n"),
        summary: None,
        translator,
        source_paragraphs: paragraphs.len(),
        translation_paragraphs: body.len(),
        flags,
        retried_chunks,
        original: units.join("\n"),
        removed: p.cleaned.removed.clone(),
    })
}

/// A stand-in title from the first sentence of the first paragraph that is not a heading,
/// for articles without one.
fn derived_title(paragraphs: &[String]) -> String {
    let first = paragraphs
        .iter()
        .find(|p| p.split_whitespace().count() >= 6)
        .unwrap_or(&paragraphs[0]);
    let sentence = segment::sentences(first)
        .into_iter()
        .next()
        .unwrap_or_default();
    let words: Vec<&str> = sentence.split_whitespace().collect();
    if words.len() > 14 {
        format!("{} …", words[..14].join(" "))
    } else {
        sentence
    }
}

/// Summaries of `articles`, decoded in shared batches; one result per article.
pub fn summarize_all(
    ctx: &mut Context,
    model: &str,
    articles: &[ArticleOutcome],
    stage: &mut StageStats,
    bar: &ProgressBar,
) -> Result<Vec<Result<String>>> {
    let manifest = ctx.catalog.model(model)?;
    let task = manifest.generation.summarize;
    let decoding = ctx.decoding.resolve(manifest);
    let overrides = ctx.decoding;
    let engine = ctx.registry.llm(model)?;
    if let Some(rows) = overrides.batch_rows {
        engine.set_batch_rows(rows);
    }
    let requests = articles
        .iter()
        .map(|a| {
            Ok(Request {
                messages: ctx.prompts.summarize(&a.title_en, &a.translation)?,
                max_new_tokens: task.max_new_tokens(engine.count_tokens(&a.translation)?),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let (results, timings) = engine.generate_batch(&requests, decoding, &mut |_| bar.inc(1))?;
    stage.add_timings(&timings);
    Ok(results
        .into_iter()
        .map(|r| {
            let g = r?;
            stage.add(&g);
            Ok(trim_summary(&join_list_items(&g.text), g.finish))
        })
        .collect())
}

/// One paragraph from a numbered or bulleted list (the summary prompt asks for one), or the
/// text itself when the model wrote prose.
pub fn join_list_items(text: &str) -> String {
    let marker = regex::Regex::new(r"^\s*(\d+[.)]|[-*•])\s+").expect("valid regex");
    text.lines()
        .map(|line| marker.replace(line, "").trim().to_string())
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Holds a summary to its 3–5 sentence form: at most `MAX_SUMMARY_SENTENCES`, and no
/// unfinished last sentence when the token budget cut it.
pub fn trim_summary(text: &str, finish: Finish) -> String {
    let mut sentences = segment::sentences(text);
    if finish == Finish::Budget
        && sentences.len() > 1
        && !sentences.last().is_some_and(|s| segment::ends_sentence(s))
    {
        sentences.pop();
    }
    sentences.truncate(MAX_SUMMARY_SENTENCES);
    sentences.join(" ")
}

const MAX_SUMMARY_SENTENCES: usize = 5;

/// The brief: one paragraph per story ([`stories::group`]), the stories' prompts decoded in
/// one batch. Each paragraph gets citations where a sentence repeats a summary, loses any
/// sentence whose figure no source article has (`supported`: their numbers' values), and
/// cites every article of its story (a sentence of the summary is added for one the model
/// left out). Returns the brief and flags for what was removed.
pub fn write_brief(
    ctx: &mut Context,
    model: &str,
    sources: &[BriefSource],
    supported: &[f64],
    stage: &mut StageStats,
) -> Result<(String, Vec<Flag>)> {
    let manifest = ctx.catalog.model(model)?;
    let task = manifest.generation.brief;
    let decoding = ctx.decoding.resolve(manifest);
    let headlines: Vec<&str> = sources.iter().map(|s| s.title.as_str()).collect();
    let stories = stories::group(&headlines);
    let engine = ctx.registry.llm(model)?;
    let mut requests = Vec::with_capacity(stories.len());
    for members in &stories {
        let own: Vec<BriefSource> = members.iter().map(|&i| sources[i].clone()).collect();
        let input_tokens = own
            .iter()
            .map(|s| engine.count_tokens(&s.summary))
            .sum::<Result<usize>>()?;
        requests.push(Request {
            messages: ctx.prompts.brief(&own)?,
            max_new_tokens: task.max_new_tokens(input_tokens),
        });
    }
    let (results, timings) = engine.generate_batch(&requests, decoding, &mut |_| {})?;
    stage.add_timings(&timings);
    let summaries: Vec<String> = sources.iter().map(|s| s.summary.clone()).collect();
    let mut paragraphs = Vec::with_capacity(stories.len());
    let mut flags = Vec::new();
    for (members, result) in stories.iter().zip(results) {
        let generation = result?;
        stage.add(&generation);
        let text = crate::cite::normalize_citations(
            &tidy_brief(&generation.text, generation.finish).replace("\n\n", " "),
        );
        let (grounded, added) = crate::cite::ground(&text, &summaries);
        if added > 0 {
            tracing::info!(
                sentences = added,
                "citations added to brief sentences that repeat a summary"
            );
        }
        let (paragraph, removed) = crate::cite::drop_unsupported_numbers(&grounded, supported);
        flags.extend(removed);
        let mut paragraph = cap_story_sentences(&paragraph, members.len());
        let cited = crate::cite::cited_sources(&paragraph);
        for &i in members {
            let source = &sources[i];
            if cited.contains(&source.n) {
                continue;
            }
            // The model left this article out: its summary's first sentence stands in.
            let lead = segment::sentences(&source.summary)
                .into_iter()
                .next()
                .unwrap_or_default();
            let (body, end) = crate::cite::split_final_punctuation(&lead);
            paragraph = format!("{paragraph} {body} [{}]{end}", source.n)
                .trim()
                .to_string();
        }
        paragraphs.push(paragraph);
    }
    Ok((paragraphs.join("\n\n"), flags))
}

/// At most as many sentences as the brief's prompt asks of a story with `sources` articles
/// (3 to 5 for several, 2 or 3 for one): small models restate every summary sentence instead.
fn cap_story_sentences(paragraph: &str, sources: usize) -> String {
    let most = if sources > 1 { 5 } else { 3 };
    let sentences = segment::sentences(paragraph);
    if sentences.len() > most {
        tracing::info!(
            written = sentences.len(),
            kept = most,
            "brief paragraph longer than asked; later sentences dropped"
        );
    }
    sentences
        .into_iter()
        .take(most)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Drops what the brief's prompt forbids but small models add anyway (a title, a copied
/// source list) and an unfinished last sentence.
pub fn tidy_brief(text: &str, finish: Finish) -> String {
    let source_line = regex::Regex::new(r"^\s*(\[\d+\]|\d+\.)\s+\S").expect("valid regex");
    let mut kept: Vec<&str> = Vec::new();
    for line in text.trim().lines() {
        let lower = line.trim().to_lowercase();
        if lower.starts_with('#') || lower.starts_with("sources") || lower.starts_with("**sources")
        {
            if kept.iter().any(|l| !l.trim().is_empty()) && !lower.starts_with('#') {
                break;
            }
            continue;
        }
        if source_line.is_match(line) {
            continue;
        }
        kept.push(line);
    }
    let mut paragraphs: Vec<String> = kept
        .join("\n")
        .split("\n\n")
        .map(|p| p.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|p| !p.is_empty())
        .collect();
    if finish == Finish::Budget {
        if let Some(last) = paragraphs.last_mut() {
            let mut sentences = segment::sentences(last);
            if sentences.len() > 1 && !sentences.last().is_some_and(|s| segment::ends_sentence(s)) {
                sentences.pop();
                *last = sentences.join(" ");
            }
        }
    }
    paragraphs.join("\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn story_paragraphs_keep_as_many_sentences_as_asked() {
        let long = "Sales rose [1]. Costs fell [2]. Shares rose [1]. Staff grew [2]. \
                    Debt fell [1]. Rates held [2]. Prices rose [1].";
        assert_eq!(
            cap_story_sentences(long, 2),
            "Sales rose [1]. Costs fell [2]. Shares rose [1]. Staff grew [2]. Debt fell [1]."
        );
        assert_eq!(
            cap_story_sentences(long, 1),
            "Sales rose [1]. Costs fell [2]. Shares rose [1]."
        );
        assert_eq!(cap_story_sentences("Sales rose [1].", 1), "Sales rose [1].");
    }

    #[test]
    fn summaries_keep_at_most_five_finished_sentences() {
        let text = "One. Two. Three. Four. Five. Six. Seven";
        assert_eq!(
            trim_summary(text, Finish::Stop),
            "One. Two. Three. Four. Five."
        );
        assert_eq!(
            trim_summary("One. Two. Three and", Finish::Budget),
            "One. Two."
        );
    }

    #[test]
    fn list_summaries_become_one_paragraph() {
        assert_eq!(
            join_list_items("1. Shares rose 11%.\n2. The CEO spoke.\n\n- A third fact."),
            "Shares rose 11%. The CEO spoke. A third fact."
        );
        assert_eq!(
            join_list_items("Plain prose.\nMore prose."),
            "Plain prose. More prose."
        );
    }

    #[test]
    fn brief_loses_copied_source_lists_and_titles() {
        let raw = "# Brief\n\nCleanSpark hired an executive [1][2]. Shares rose [2].\n\n[1] CleanSpark bets on AI (Portuguese)\n[2] Another title (French)\n\nSources:\n1. a.txt";
        assert_eq!(
            tidy_brief(raw, Finish::Stop),
            "CleanSpark hired an executive [1][2]. Shares rose [2]."
        );
        assert_eq!(
            tidy_brief("A is true [1]. B is", Finish::Budget),
            "A is true [1]."
        );
    }
}
