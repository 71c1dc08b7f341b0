//! The whole job, stage after stage: load → clean → detect → segment → translate → check →
//! summarize → brief → write. This module only orchestrates: it calls each stage, keeps the
//! stage statistics, turns a stage's error into a failure of the articles it concerns (the
//! others go on), and writes each translation as soon as it is done.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::config::shard::Shard;
use crate::context::Context;
use crate::domain::{
    ArticleOutcome, Failure, InputSet, Prepared, RunOutcome, SkippedInput, StageStats,
};
use crate::error::Result;
use crate::output;
use crate::stages::check::{self, Fidelity};
use crate::stages::clean::BoilerplateRules;
use crate::stages::translate::{self, Segmentation};
use crate::stages::{brief, detect, summarize};

/// Runs the job over `inputs` and writes the translations into `out_dir` (the caller writes
/// the reports, which need the run record).
pub fn run(
    ctx: &mut Context,
    rules: &BoilerplateRules,
    inputs: &[PathBuf],
    out_dir: &Path,
    max_bytes: u64,
    shard: Option<Shard>,
) -> Result<RunOutcome> {
    let mut stages = Vec::new();
    let (prepared, mut failures, skipped, walked) = detect::prepare_all(
        ctx.catalog,
        rules,
        inputs,
        out_dir,
        max_bytes,
        shard,
        &mut stages,
    );

    // Summaries go into the LLM's queue as soon as their article is translated, so that
    // those of articles with a translator model decode beside the LLM's translation of the
    // others.
    let model = ctx.catalog.profile.summarize.clone();
    let mut early = None;
    let (mut articles, translate_failures) =
        translate_all(ctx, &prepared, out_dir, &mut stages, &mut |ctx, done| {
            early = summarize::submit_early(ctx, &model, done);
        })?;
    failures.extend(translate_failures);

    // Summarize: the rest beside those queued early; once those are in, the brief's
    // paragraphs of stories whose summaries are all in join the queue.
    let started = Instant::now();
    let mut stage = StageStats::new("summarize");
    let bar = ctx
        .progress
        .stage("summarize", articles.len() as u64, "articles");
    let write_brief = shard.is_none();
    let mut early_paragraphs = Vec::new();
    let summaries = summarize::summarize_queued(
        ctx,
        &model,
        &articles,
        early,
        &mut stage,
        &bar,
        &mut |ctx, known| {
            if write_brief {
                early_paragraphs = brief::submit_ready_stories(ctx, &articles, known);
            }
        },
    );
    for (a, summary) in articles.iter_mut().zip(summaries) {
        match summary {
            Ok(grounded) => {
                a.summary = grounded.text;
                a.summary_low_confidence = grounded.low_confidence;
                a.flags.extend(grounded.flags);
            }
            Err(e) => failures.push(Failure::new(&a.source_path, "summarize", &e)),
        }
    }
    bar.finish_and_clear();
    stage.finish(started);
    stages.push(stage);
    // A shard's brief would cover a random part of the stories: `merge` writes the brief.
    let mut outcome = brief_stage(
        ctx,
        articles,
        failures,
        skipped,
        stages,
        out_dir,
        write_brief.then_some(early_paragraphs),
    );
    outcome.inputs = walked;
    Ok(outcome)
}

/// The brief of articles that sharded runs translated and summarized (their `brief.json`
/// records, in any order): their pages are written again into `out_dir` and the brief is
/// written over all of them, as one run over all their inputs would.
pub fn merge(
    ctx: &mut Context,
    mut articles: Vec<ArticleOutcome>,
    failures: Vec<Failure>,
    skipped: Vec<SkippedInput>,
    stages: Vec<StageStats>,
    inputs: InputSet,
    out_dir: &Path,
) -> RunOutcome {
    // A single run keeps its inputs' order; every shard numbered them over all inputs.
    articles.sort_by_key(|a| a.position);
    // The pages are written again here: a shard's failure to write its own is not this
    // folder's.
    let mut failures: Vec<Failure> = failures
        .into_iter()
        .filter(|f| f.stage != "write")
        .collect();
    for a in &articles {
        failures.extend(write_page(out_dir, a));
    }
    let mut outcome = brief_stage(
        ctx,
        articles,
        failures,
        skipped,
        stages,
        out_dir,
        Some(Vec::new()),
    );
    outcome.inputs = inputs;
    outcome
}

/// Where its sources differ and, with `write_brief` (the paragraphs queued early), the brief,
/// over finished articles.
fn brief_stage(
    ctx: &mut Context,
    articles: Vec<ArticleOutcome>,
    mut failures: Vec<Failure>,
    skipped: Vec<SkippedInput>,
    mut stages: Vec<StageStats>,
    out_dir: &Path,
    write_brief: Option<Vec<brief::EarlyParagraph>>,
) -> RunOutcome {
    let differences = brief::differences_of(&articles);
    let started = Instant::now();
    let mut stage = StageStats::new("brief");
    let bar = ctx.progress.stage("brief", 1, "brief");
    let briefed = match write_brief {
        Some(early) => brief::brief_of(ctx, &articles, early, &mut stage),
        None => Ok(None),
    };
    let (brief, brief_sentences, brief_flags) = match briefed {
        Ok(Some(b)) => (Some(b.text), b.sentences, b.flags),
        Ok(None) => (None, Vec::new(), Vec::new()),
        Err(e) => {
            failures.push(Failure::new(out_dir, "brief", &e));
            (None, Vec::new(), Vec::new())
        }
    };
    bar.finish_and_clear();
    stage.finish(started);
    stages.push(stage);
    Failure::sort_in_flow_order(&mut failures);

    RunOutcome {
        articles,
        failures,
        skipped,
        brief,
        brief_sentences,
        brief_flags,
        differences,
        stages,
        inputs: InputSet::default(),
    }
}

/// Translate and check: the articles of each translator model go through it together, in
/// shared batches (one stage per model); each article is checked and written as soon as its
/// group is done. English articles pass through. Translator models (quick) go first, and
/// `before_llm` gets the articles finished before the first LLM group starts.
fn translate_all(
    ctx: &mut Context,
    prepared: &[Prepared],
    out_dir: &Path,
    stages: &mut Vec<StageStats>,
    before_llm: &mut dyn FnMut(&mut Context, &[ArticleOutcome]),
) -> Result<(Vec<ArticleOutcome>, Vec<Failure>)> {
    let bar = ctx.progress.stage("translate", 0, "chunks");
    let mut outcomes: Vec<Option<Result<ArticleOutcome>>> = prepared.iter().map(|_| None).collect();
    let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut page_failures = Vec::new();
    for (i, p) in prepared.iter().enumerate() {
        if p.lang.code == "en" {
            let outcome = check::article_outcome(p, None);
            page_failures.extend(write_page(out_dir, &outcome));
            outcomes[i] = Some(Ok(outcome));
            continue;
        }
        match translate::translator_model(ctx.catalog, &p.lang.code) {
            Ok(model) => groups.entry(model).or_default().push(i),
            Err(e) => outcomes[i] = Some(Err(e)),
        }
    }
    let is_translator = |ctx: &Context, model: &str| {
        ctx.catalog
            .model(model)
            .is_ok_and(|m| m.architecture.is_translator())
    };
    let mut order: Vec<(&String, &Vec<usize>)> = groups.iter().collect();
    order.sort_by_key(|(model, _)| !is_translator(ctx, model));
    let mut told = false;
    for (model, members) in order {
        let docs: Vec<(String, Vec<String>)> = members
            .iter()
            .map(|&i| (prepared[i].lang.code.clone(), prepared[i].units()))
            .collect();
        let is_translator = is_translator(ctx, model);
        if !is_translator && !told {
            told = true;
            let done: Vec<ArticleOutcome> = outcomes
                .iter()
                .filter_map(|o| o.as_ref().and_then(|r| r.as_ref().ok()).cloned())
                .collect();
            if !done.is_empty() {
                before_llm(ctx, &done);
            }
        }
        let started = Instant::now();
        let name = if is_translator {
            format!("translate: {model}")
        } else {
            "translate: llm".to_string()
        };
        let mut stage = StageStats::new(&name);
        let mut translate = |docs: &[(String, Vec<String>)], stage: &mut StageStats| {
            translate::translate_group(
                ctx,
                &Fidelity,
                model,
                docs,
                Segmentation::Sentences,
                stage,
                &bar,
            )
        };
        let results: Vec<Result<_>> = match translate(&docs, &mut stage) {
            Ok(translated) => translated.into_iter().map(Ok).collect(),
            // One article must not cost its batch-mates: each is tried again alone, and only
            // the one that still fails is reported (engines are batch-invariant, so the
            // others' translations are those of the shared batch).
            Err(e) if docs.len() > 1 => {
                tracing::warn!(model = %model, "a batch failed ({}); translating its {} articles one by one", e.in_words(), docs.len());
                docs.iter()
                    .map(|d| {
                        translate(std::slice::from_ref(d), &mut stage).map(|mut t| t.remove(0))
                    })
                    .collect()
            }
            Err(e) => vec![Err(e)],
        };
        stage.finish(started);
        stages.push(stage);
        for (&i, result) in members.iter().zip(results) {
            outcomes[i] = Some(result.map(|own| {
                let outcome = check::article_outcome(&prepared[i], Some(own));
                // Written now: later groups and the summaries take minutes.
                page_failures.extend(write_page(out_dir, &outcome));
                outcome
            }));
        }
    }
    bar.finish_and_clear();
    let mut articles = Vec::new();
    let mut failures = page_failures;
    for (p, outcome) in prepared.iter().zip(outcomes) {
        match outcome.expect("every article has an outcome") {
            Ok(outcome) => articles.push(outcome),
            Err(e) => failures.push(Failure::new(&p.doc.path, "translate", &e)),
        }
    }
    Ok((articles, failures))
}

/// Writes an article's page; a failure is the article's (it stays in the run and the brief).
fn write_page(out_dir: &Path, outcome: &ArticleOutcome) -> Option<Failure> {
    output::write_translation(out_dir, outcome)
        .err()
        .map(|e| Failure::new(&outcome.source_path, "write", &e))
}
