//! The translate stage: each translator model gets the units (title, paragraphs) of every
//! article it serves at once. A dedicated Marian translator takes them sentence by sentence
//! in padded batches; an LLM takes them chunk by chunk in shared decoding batches, with one
//! retry round for chunks the fidelity check rejects ([`llm`]).

pub mod consensus;
pub mod llm;

use std::time::Instant;

use crate::config::manifest::Catalog;
use crate::context::Context;
use crate::domain::{
    FidelityCheck, Flag, FlagKind, SegmentRecord, Signals, StageStats, Translated,
    TranslatedSentence, UnitIssues,
};
use crate::engine::llm::LlmEngine;
use crate::engine::marian::MarianEngine;
use crate::engine::registry::Engine;
use crate::error::{Error, Result};
use crate::language::sentences::{has_repetition_loop, sentences};
use crate::progress::StageBar;
use crate::stages::segment::{self, Chunk};
use consensus::Scorer;

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
    bar: &StageBar,
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
    bar: &StageBar,
) -> Result<Vec<Translated>> {
    let manifest = ctx.catalog.model(model)?;
    let (chunk_tokens, task) = (
        manifest.generation.chunk_tokens,
        manifest.generation.translate,
    );
    let decoding = ctx.decoding.resolve(manifest.decoding());
    let overrides = ctx.decoding;
    let scorer = Scorer {
        calibration: manifest.calibration.as_ref(),
        settings: manifest.consensus,
        mode: overrides.consensus,
    };
    let engine = match ctx.registry.engine(model)? {
        Engine::Translator(engine) => {
            overrides.apply(&mut engine.settings);
            let all: Vec<String> = docs.iter().flat_map(|d| d.1.iter().cloned()).collect();
            let languages: Vec<&str> = docs
                .iter()
                .flat_map(|(lang, units)| std::iter::repeat_n(lang.as_str(), units.len()))
                .collect();
            let mut translated = translate_segments(
                engine,
                checker,
                &scorer,
                &languages,
                &all,
                segmentation,
                stage,
                bar,
            )?;
            let consensus_s = translated.consensus_s;
            return Ok(docs
                .iter()
                .enumerate()
                .map(|(d, (lang, units))| {
                    let mut own = translated.take_front(units.len());
                    // The round served every document at once: its time is told once.
                    own.consensus_s = if d == 0 { consensus_s } else { 0.0 };
                    own.retried = own.segments.iter().filter(|s| s.redecoded).count();
                    // Checked unit by unit (each sentence was checked on its own already).
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
        &scorer,
        &languages,
        &chunks,
        task,
        decoding,
        stage,
        bar,
    )?;
    let translator = engine.name().to_string();
    Ok(docs
        .iter()
        .zip(spans)
        .enumerate()
        .map(|(d, ((lang, units), span))| {
            let own = &chunks[span.clone()];
            let mut issues = vec![UnitIssues::default(); units.len()];
            let mut sentences: Vec<Vec<TranslatedSentence>> = vec![Vec::new(); units.len()];
            let mut segments = Vec::with_capacity(own.len());
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
                let mut records =
                    consensus::records(&scorer, lang, chunk.paragraph, &results.sentences[i]);
                // A chunk still far from its source's length, or still talking about its task,
                // is an answer rather than a translation: each of its sentences is to verify.
                for problem in results.problems[i]
                    .iter()
                    .filter(|p| matches!(p.kind, FlagKind::LengthRatio | FlagKind::TaskTalk))
                {
                    for record in &mut records {
                        record.low_confidence = true;
                        if !record.flags.iter().any(|f| f.kind == problem.kind) {
                            record.flags.push(Flag {
                                kind: problem.kind,
                                message: problem.describe(),
                            });
                        }
                    }
                }
                sentences[chunk.paragraph].extend(records);
                segments.push(SegmentRecord {
                    unit: chunk.paragraph,
                    source: chunk.text.clone(),
                    first_text: results.first_texts[i].clone(),
                    first_signals: results.first_signals[i].clone(),
                    first_confidence: results.first_confidence[i],
                    text: results.texts[i].clone(),
                    signals: results.signals[i].clone(),
                    confidence: results.confidence[i],
                    redecoded: results.retried[i],
                });
            }
            Translated {
                translator: translator.clone(),
                units: segment::rebuild_paragraphs(own, &results.texts[span.clone()], units.len()),
                issues,
                retried: results.retried[span].iter().filter(|&&r| r).count(),
                sentences,
                segments,
                // The round served every document at once: its time is told once.
                consensus_s: if d == 0 { results.consensus_s } else { 0.0 },
                calibrated: scorer.calibrated(),
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
/// together (over-long sentences are split at word boundaries). Each segment is checked and
/// scored; one that fails or scores low is decoded again by beam search, and of the greedy
/// translation and the beam's n-best list the consensus candidate is kept.
#[allow(clippy::too_many_arguments)]
pub fn translate_segments(
    engine: &MarianEngine,
    checker: &dyn FidelityCheck,
    scorer: &Scorer,
    languages: &[&str],
    units: &[String],
    segmentation: Segmentation,
    stage: &mut StageStats,
    bar: &StageBar,
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
    // Every segment, whether translated now or taken from the work store.
    stage.items += texts.len();
    stage.prompt_tokens += batch.source_tokens;
    stage.generated_tokens += batch.target_tokens;
    stage.decode_s += batch.wall.as_secs_f64();
    bar.set_rate(
        batch.target_tokens as f64 / batch.wall.as_secs_f64().max(1e-9),
        &format!("{} batches", batch.batches),
    );

    // First translations: checked and scored.
    let lang_of = |c: &Chunk| languages.get(c.paragraph).copied().unwrap_or("");
    let first_problems: Vec<usize> = segments
        .iter()
        .zip(&outputs)
        .map(|(c, o)| checker.problems(&c.text, lang_of(c), &o.text).len())
        .collect();
    let first_signals: Vec<Signals> = outputs
        .iter()
        .zip(&first_problems)
        .map(|(o, &p)| Signals::from_tokens(&o.logprobs, &[], p))
        .collect();
    let first_confidence: Vec<f64> = segments
        .iter()
        .zip(&first_signals)
        .map(|(c, s)| scorer.score(lang_of(c), s))
        .collect();
    let redecode: Vec<usize> = (0..segments.len())
        .filter(|&i| {
            !segments[i].text.trim().is_empty()
                && scorer.redecode(first_confidence[i], first_problems[i] > 0)
        })
        .collect();
    let started = Instant::now();
    let mut nbest = Vec::new();
    if !redecode.is_empty() {
        let sources: Vec<String> = redecode.iter().map(|&i| texts[i].clone()).collect();
        let width = scorer.settings.candidates.max(2);
        let (lists, more) = engine.translate_nbest(&sources, width, &mut |_| {})?;
        stage.generated_tokens += more.target_tokens;
        stage.decode_s += more.wall.as_secs_f64();
        nbest = lists;
    }
    let consensus_s = started.elapsed().as_secs_f64();

    let mut kept_texts = Vec::with_capacity(segments.len());
    let mut issues = vec![UnitIssues::default(); units.len()];
    let mut sentences_of: Vec<Vec<TranslatedSentence>> = vec![Vec::new(); units.len()];
    let mut records = Vec::with_capacity(segments.len());
    let mut lists = nbest.into_iter();
    for (i, (chunk, first)) in segments.iter().zip(outputs).enumerate() {
        let lang = lang_of(chunk);
        let (kept, signals, confidence) = if redecode.binary_search(&i).is_ok() {
            let mut candidates = vec![first.clone()];
            for c in lists.next().unwrap_or_default() {
                // Beam search's best is often the greedy translation: one vote each.
                if !candidates.iter().any(|k| k.text == c.text) {
                    candidates.push(c);
                }
            }
            let counted: Vec<usize> = candidates
                .iter()
                .map(|c| checker.problems(&chunk.text, lang, &c.text).len())
                .collect();
            let ranked: Vec<(&str, usize)> = candidates
                .iter()
                .zip(&counted)
                .map(|(c, &p)| (c.text.as_str(), p))
                .collect();
            let (chosen, disagreement) = consensus::choose(&ranked);
            let problems = counted[chosen];
            let kept = candidates.swap_remove(chosen);
            let mut signals = Signals::from_tokens(&kept.logprobs, &[], problems);
            signals.disagreement = Some(disagreement);
            let confidence = scorer.score(lang, &signals);
            (kept, signals, confidence)
        } else {
            (first.clone(), first_signals[i].clone(), first_confidence[i])
        };
        issues[chunk.paragraph].budget_hits += usize::from(kept.truncated);
        issues[chunk.paragraph].loops += usize::from(has_repetition_loop(&kept.text));
        let own = consensus::unaligned_sentences(
            checker,
            lang,
            &chunk.text,
            &kept.text,
            &kept.logprobs,
            &[],
            signals.disagreement,
        );
        sentences_of[chunk.paragraph].extend(consensus::records(
            scorer,
            lang,
            chunk.paragraph,
            &own,
        ));
        records.push(SegmentRecord {
            unit: chunk.paragraph,
            source: chunk.text.clone(),
            first_text: first.text.clone(),
            first_signals: first_signals[i].clone(),
            first_confidence: first_confidence[i],
            text: kept.text.clone(),
            signals,
            confidence,
            redecoded: redecode.binary_search(&i).is_ok(),
        });
        kept_texts.push(kept.text);
    }
    Ok(Translated {
        translator: engine.name().to_string(),
        units: segment::rebuild_paragraphs(&segments, &kept_texts, units.len()),
        issues,
        retried: redecode.len(),
        sentences: sentences_of,
        segments: records,
        consensus_s,
        calibrated: scorer.calibrated(),
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
