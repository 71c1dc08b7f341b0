//! The translate stage: each translator model gets the units (title, paragraphs) of every
//! article it serves at once. A dedicated Marian translator takes them sentence by sentence
//! in padded batches; an LLM takes them chunk by chunk in shared decoding batches, with one
//! retry round for chunks the fidelity check rejects ([`llm`]).

pub mod llm;

use indicatif::ProgressBar;

use crate::config::manifest::Catalog;
use crate::context::Context;
use crate::domain::{FidelityCheck, FlagKind, StageStats, Translated, UnitIssues};
use crate::engine::llm::LlmEngine;
use crate::engine::marian::MarianEngine;
use crate::engine::registry::Engine;
use crate::error::{Error, Result};
use crate::language::sentences::{has_repetition_loop, sentences};
use crate::stages::segment::{self, Chunk};

/// Translates independent units (paragraphs, lines, a title) with the profile's translator
/// for `lang`: an LLM chunk by chunk, a dedicated translator sentence by sentence, either way
/// in batches over all the units at once.
pub fn translate_units(
    ctx: &mut Context,
    checker: &dyn FidelityCheck,
    lang: &str,
    units: &[String],
    segmentation: Segmentation,
    stage: &mut StageStats,
    bar: &ProgressBar,
) -> Result<Translated> {
    let model = translator_model(ctx.catalog, lang)?;
    let items = vec![(lang.to_string(), units.to_vec())];
    let mut out = translate_group(ctx, checker, &model, &items, segmentation, stage, bar)?;
    Ok(out.remove(0))
}

/// The profile's translator for `lang`.
pub fn translator_model(catalog: &Catalog, lang: &str) -> Result<String> {
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
/// shared batches, and splits the results back per document. `checker` judges each
/// translation: an LLM chunk that fails it is translated again.
pub fn translate_group(
    ctx: &mut Context,
    checker: &dyn FidelityCheck,
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
    let decoding = ctx.decoding.resolve(manifest.decoding());
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
                        issues.problems = checker
                            .problems(unit, lang, text)
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
    let results = llm::translate_chunks(
        engine,
        &ctx.prompts,
        checker,
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
            Segmentation::Sentences => sentences(unit),
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
        issues[chunk.paragraph].loops += usize::from(has_repetition_loop(&out.text));
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
