//! Translation with an LLM, chunk by chunk, all chunks in shared batches, each checked for
//! fidelity (by the [`FidelityCheck`] the orchestrator hands in): a chunk that fails is translated again (sentence by
//! sentence when it has several, else with a prompt that lists what the English must keep),
//! and the version with fewer problems wins; what is still wrong is reported, never hidden.

use std::time::Instant;

use super::consensus::{self, KeptSentence, Scorer};
use crate::config::decoding::Decoding;
use crate::config::manifest::TaskSettings;
use crate::config::prompts::Prompts;
use crate::domain::{FidelityCheck, FlagKind, Problem, Signals, StageStats};
use crate::engine::llm::{Finish, LlmEngine, Request};
use crate::error::Result;
use crate::language::sentences::sentences;
use crate::progress::StageBar;
use crate::stages::segment::Chunk;

/// One text to translate.
#[derive(Debug, Clone)]
pub struct Item<'a> {
    pub lang: &'a str,
    pub text: &'a str,
    /// Its tokens, for the new-token budget.
    pub tokens: usize,
    /// What the English must contain (given to the model on a retry; empty on a first try).
    pub keep: Vec<String>,
    /// A sampled consensus candidate (the k-th), instead of the greedy translation.
    pub sample: Option<usize>,
}

impl<'a> Item<'a> {
    fn new(lang: &'a str, text: &'a str, tokens: usize) -> Self {
        Item {
            lang,
            text,
            tokens,
            keep: Vec::new(),
            sample: None,
        }
    }
}

/// One translation as the model gave it, tidied.
#[derive(Debug, Clone, Default)]
pub struct Rendered {
    pub text: String,
    /// It stopped at its token budget.
    pub cut: bool,
    /// Its tokens' log-probabilities and entropies.
    pub logprobs: Vec<f32>,
    pub entropies: Vec<f32>,
}

/// What translating the chunks gave, one entry per chunk.
#[derive(Debug, Clone, Default)]
pub struct ChunkResults {
    pub texts: Vec<String>,
    pub cut: Vec<bool>,
    /// The problems of the first translation, and of the one kept.
    pub first_problems: Vec<Vec<Problem>>,
    pub problems: Vec<Vec<Problem>>,
    /// Chunks decoded again (retry and consensus candidates).
    pub retried: Vec<bool>,
    pub first_texts: Vec<String>,
    pub first_signals: Vec<Signals>,
    pub first_confidence: Vec<f64>,
    /// The kept translation's signals (with the candidates' disagreement when re-decoded),
    /// confidence, and token log-probabilities and entropies.
    pub signals: Vec<Signals>,
    pub confidence: Vec<f64>,
    /// The kept translation's sentences, each with its source and evidence.
    pub sentences: Vec<Vec<KeptSentence>>,
    /// Seconds the re-decoding round took.
    pub consensus_s: f64,
}

/// Translates `chunks` (`languages[i]` is the language of chunk i) with `engine`.
#[allow(clippy::too_many_arguments)]
pub fn translate_chunks(
    engine: &mut LlmEngine,
    prompts: &Prompts,
    checker: &dyn FidelityCheck,
    scorer: &Scorer,
    languages: &[&str],
    chunks: &[Chunk],
    task: TaskSettings,
    decoding: Decoding,
    stats: &mut StageStats,
    bar: &StageBar,
) -> Result<ChunkResults> {
    let sampling = Decoding {
        temperature: scorer.settings.temperature,
        top_p: scorer.settings.top_p,
        seed: decoding.seed,
    };
    let mut translate = |items: &[Item]| {
        translate_texts(engine, prompts, items, task, decoding, sampling, stats, bar)
    };
    check_and_retry(checker, scorer, languages, chunks, &mut translate)
}

/// What a re-decoding round's item is for: chunk i, sentence j of it (`None`: the whole
/// chunk), as a retry with what it must keep or as a sampled candidate.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Target {
    chunk: usize,
    sentence: Option<usize>,
    retry: bool,
}

/// How one chunk is re-decoded.
enum Plan {
    /// Kept as first translated.
    Keep,
    /// Its sentences line up with the source's: these sentences are re-decoded alone.
    Sentences(Vec<usize>),
    /// Re-decoded whole.
    Whole,
}

/// The first translation of every chunk, the check and confidence, and one re-decoding
/// round, through `translate` (a batch of items in, their translations out). Where a chunk's
/// sentences line up with its source's, each sentence is scored and checked on its own, and
/// only a failing or low-confidence one is re-decoded: sampled candidates of its source
/// sentence, beside a retry with what it must keep when it failed a check. Otherwise the
/// chunk is judged whole, and re-decoded whole (its retry sentence by sentence when it has
/// several). Of each one's candidates, the first translation included, the one with the
/// fewest problems and the most agreement with the others is kept ([`consensus::choose`]).
pub fn check_and_retry(
    checker: &dyn FidelityCheck,
    scorer: &Scorer,
    languages: &[&str],
    chunks: &[Chunk],
    translate: &mut dyn FnMut(&[Item]) -> Result<Vec<Rendered>>,
) -> Result<ChunkResults> {
    let items: Vec<Item> = chunks
        .iter()
        .zip(languages)
        .map(|(c, &lang)| Item::new(lang, &c.text, c.tokens))
        .collect();
    let first = translate(&items)?;
    let first_problems: Vec<Vec<Problem>> = chunks
        .iter()
        .zip(languages)
        .zip(&first)
        .map(|((c, lang), r)| problems(checker, &c.text, lang, r))
        .collect();
    let first_signals: Vec<Signals> = first
        .iter()
        .zip(&first_problems)
        .map(|(r, p)| Signals::from_tokens(&r.logprobs, &r.entropies, p.len()))
        .collect();
    let first_confidence: Vec<f64> = first_signals
        .iter()
        .zip(languages)
        .map(|(s, lang)| scorer.score(lang, s))
        .collect();

    // Each chunk's first sentences (aligned chunks only) and its plan.
    let mut firsts: Vec<Vec<KeptSentence>> = Vec::with_capacity(chunks.len());
    let mut plans = Vec::with_capacity(chunks.len());
    for (i, chunk) in chunks.iter().enumerate() {
        let lang = languages[i];
        let sources = sentences(&chunk.text);
        let parts =
            consensus::split_tokens(&first[i].text, &first[i].logprobs, &first[i].entropies);
        if sources.len() > 1 && parts.len() == sources.len() {
            let own: Vec<KeptSentence> = sources
                .into_iter()
                .zip(parts)
                .map(|(source, (text, logprobs, entropies))| KeptSentence {
                    problems: checker.problems(&source, lang, &text),
                    source,
                    text,
                    logprobs,
                    entropies,
                    disagreement: None,
                })
                .collect();
            let low: Vec<usize> = own
                .iter()
                .enumerate()
                .filter(|(_, k)| {
                    let signals = Signals::from_tokens(&k.logprobs, &k.entropies, k.problems.len());
                    scorer.redecode(scorer.score(lang, &signals), !k.problems.is_empty())
                })
                .map(|(j, _)| j)
                .collect();
            plans.push(if low.is_empty() {
                Plan::Keep
            } else {
                Plan::Sentences(low)
            });
            firsts.push(own);
        } else {
            let failed = !first_problems[i].is_empty();
            plans.push(if scorer.redecode(first_confidence[i], failed) {
                Plan::Whole
            } else {
                Plan::Keep
            });
            firsts.push(Vec::new());
        }
    }

    // The re-decoding round, all in one batch (a sampled candidate has the same prompt as
    // its first translation or its siblings: the prefill is served from the prefix cache).
    let mut round: Vec<(Target, String, Vec<String>, Option<usize>)> = Vec::new();
    for (i, (chunk, plan)) in chunks.iter().zip(&plans).enumerate() {
        let lang = languages[i];
        let mut add = |sentence: Option<usize>, text: &str, failed: bool| {
            if failed {
                let target = Target {
                    chunk: i,
                    sentence,
                    retry: true,
                };
                let parts = sentences(text);
                if sentence.is_none() && parts.len() > 1 {
                    for part in parts {
                        let keep = checker.must_keep(&part, lang);
                        round.push((target, part, keep, None));
                    }
                } else {
                    round.push((
                        target,
                        text.to_string(),
                        checker.must_keep(text, lang),
                        None,
                    ));
                }
            }
            for k in 0..scorer.settings.candidates {
                let target = Target {
                    chunk: i,
                    sentence,
                    retry: false,
                };
                round.push((target, text.to_string(), Vec::new(), Some(k)));
            }
        };
        match plan {
            Plan::Keep => {}
            Plan::Whole => add(None, &chunk.text, !first_problems[i].is_empty()),
            Plan::Sentences(low) => {
                for &j in low {
                    let k = &firsts[i][j];
                    add(Some(j), &k.source.clone(), !k.problems.is_empty());
                }
            }
        }
    }
    let started = Instant::now();
    let mut outputs: Vec<(Target, Rendered)> = Vec::new();
    if !round.is_empty() {
        let items: Vec<Item> = round
            .iter()
            .map(|(target, text, keep, sample)| {
                let tokens = match target.sentence {
                    // A sentence's budget follows its share of the chunk.
                    Some(_) => {
                        chunks[target.chunk].tokens * text.len()
                            / chunks[target.chunk].text.len().max(1)
                            + 1
                    }
                    None => chunks[target.chunk].tokens,
                };
                Item {
                    keep: keep.clone(),
                    sample: *sample,
                    ..Item::new(languages[target.chunk], text, tokens)
                }
            })
            .collect();
        outputs = round.iter().map(|r| r.0).zip(translate(&items)?).collect();
    }
    let consensus_s = started.elapsed().as_secs_f64();

    // The candidates of one target: the first translation, the retry (its parts joined),
    // the samples.
    let candidates_of = |target_chunk: usize, sentence: Option<usize>, first: Rendered| {
        let mut retry_parts: Vec<&Rendered> = Vec::new();
        let mut out = vec![first];
        for (t, r) in &outputs {
            if t.chunk != target_chunk || t.sentence != sentence {
                continue;
            }
            if t.retry {
                retry_parts.push(r);
            } else {
                out.push(r.clone());
            }
        }
        if !retry_parts.is_empty() {
            out.insert(
                1,
                Rendered {
                    text: retry_parts
                        .iter()
                        .map(|p| p.text.as_str())
                        .collect::<Vec<_>>()
                        .join(" "),
                    cut: retry_parts.iter().any(|p| p.cut),
                    logprobs: retry_parts
                        .iter()
                        .flat_map(|p| p.logprobs.clone())
                        .collect(),
                    entropies: retry_parts
                        .iter()
                        .flat_map(|p| p.entropies.clone())
                        .collect(),
                },
            );
        }
        out
    };
    // The candidate kept, its problems and the candidates' disagreement.
    let decide = |source: &str, lang: &str, candidates: Vec<Rendered>| {
        let found: Vec<Vec<Problem>> = candidates
            .iter()
            .map(|c| problems(checker, source, lang, c))
            .collect();
        let ranked: Vec<(&str, usize)> = candidates
            .iter()
            .zip(&found)
            .map(|(c, p)| (c.text.as_str(), p.len()))
            .collect();
        let (chosen, disagreement) = consensus::choose(&ranked);
        let mut candidates = candidates;
        let mut found = found;
        (
            candidates.swap_remove(chosen),
            found.swap_remove(chosen),
            disagreement,
        )
    };

    let mut out = ChunkResults {
        consensus_s,
        ..Default::default()
    };
    for (i, (chunk, first)) in chunks.iter().zip(first).enumerate() {
        let lang = languages[i];
        let (kept, kept_sentences, disagreement) = match &plans[i] {
            Plan::Keep if !firsts[i].is_empty() => {
                (first.clone(), std::mem::take(&mut firsts[i]), None)
            }
            Plan::Keep => {
                let own = consensus::unaligned_sentences(
                    checker,
                    lang,
                    &chunk.text,
                    &first.text,
                    &first.logprobs,
                    &first.entropies,
                    None,
                );
                (first.clone(), own, None)
            }
            Plan::Whole => {
                let (kept, _, disagreement) =
                    decide(&chunk.text, lang, candidates_of(i, None, first.clone()));
                let own = consensus::unaligned_sentences(
                    checker,
                    lang,
                    &chunk.text,
                    &kept.text,
                    &kept.logprobs,
                    &kept.entropies,
                    Some(disagreement),
                );
                (kept, own, Some(disagreement))
            }
            Plan::Sentences(low) => {
                let mut own = std::mem::take(&mut firsts[i]);
                let mut widest: f64 = 0.0;
                for &j in low {
                    let k = &own[j];
                    let first_part = Rendered {
                        text: k.text.clone(),
                        cut: false,
                        logprobs: k.logprobs.clone(),
                        entropies: k.entropies.clone(),
                    };
                    let (chosen, found, disagreement) =
                        decide(&k.source, lang, candidates_of(i, Some(j), first_part));
                    widest = widest.max(disagreement);
                    own[j] = KeptSentence {
                        source: k.source.clone(),
                        text: chosen.text,
                        logprobs: chosen.logprobs,
                        entropies: chosen.entropies,
                        problems: found,
                        disagreement: Some(disagreement),
                    };
                }
                let kept = Rendered {
                    text: own
                        .iter()
                        .map(|k| k.text.as_str())
                        .collect::<Vec<_>>()
                        .join(" "),
                    cut: first.cut,
                    logprobs: own.iter().flat_map(|k| k.logprobs.clone()).collect(),
                    entropies: own.iter().flat_map(|k| k.entropies.clone()).collect(),
                };
                (kept, own, Some(widest))
            }
        };
        let kept_problems = problems(checker, &chunk.text, lang, &kept);
        let mut signals =
            Signals::from_tokens(&kept.logprobs, &kept.entropies, kept_problems.len());
        signals.disagreement = disagreement;
        out.confidence.push(scorer.score(lang, &signals));
        out.signals.push(signals);
        out.texts.push(kept.text);
        out.cut.push(kept.cut);
        out.problems.push(kept_problems);
        out.retried.push(!matches!(plans[i], Plan::Keep));
        out.first_texts.push(first.text);
        out.sentences.push(kept_sentences);
    }
    out.first_problems = first_problems;
    out.first_signals = first_signals;
    out.first_confidence = first_confidence;
    Ok(out)
}

/// The fidelity problems of one translation, a cut-short one included.
fn problems(
    checker: &dyn FidelityCheck,
    source: &str,
    lang: &str,
    rendered: &Rendered,
) -> Vec<Problem> {
    let mut found = checker.problems(source, lang, &rendered.text);
    if rendered.cut {
        found.push(Problem::new(FlagKind::TokenBudget, ""));
    }
    found
}

/// Translates items in batches with the translation prompt; sampled candidates draw with
/// `sampling`, each with its own seed.
#[allow(clippy::too_many_arguments)]
pub fn translate_texts(
    engine: &mut LlmEngine,
    prompts: &Prompts,
    items: &[Item],
    task: TaskSettings,
    decoding: Decoding,
    sampling: Decoding,
    stats: &mut StageStats,
    bar: &StageBar,
) -> Result<Vec<Rendered>> {
    bar.inc_length(items.len() as u64);
    let requests = items
        .iter()
        .map(|item| {
            let mut request = Request::new(
                prompts.translate(item.lang, item.text, &item.keep)?,
                task.max_new_tokens(item.tokens),
            );
            request.task = match (item.sample, item.keep.is_empty()) {
                (Some(_), _) => "consensus",
                (None, false) => "retranslate",
                (None, true) => "translate",
            };
            request.sampling = item.sample.map(|k| Decoding {
                seed: sampling.seed.wrapping_add(1 + k as u64),
                ..sampling
            });
            Ok(request)
        })
        .collect::<Result<Vec<_>>>()?;
    let (results, timings) = engine.generate_batch(&requests, decoding, &mut |_| bar.inc(1))?;
    timings.record(stats);
    bar.set_rate(
        stats.generated_tokens as f64 / stats.decode_s.max(1e-9),
        &format!("batch {}", timings.largest_batch),
    );
    results
        .into_iter()
        .map(|r| {
            let g = r?;
            g.record(stats);
            Ok(Rendered {
                text: tidy_translation(&g.text),
                cut: g.finish == Finish::Budget,
                logprobs: g.logprobs,
                entropies: g.entropies,
            })
        })
        .collect()
}

/// Removes what small models wrap around an answer: the prompt's tags, a leading label, line
/// breaks inside one paragraph.
fn tidy_translation(text: &str) -> String {
    let mut t = text.trim();
    loop {
        let before = t.len();
        for tag in ["<source>", "</source>", "```"] {
            t = t.trim_start_matches(tag).trim_end_matches(tag).trim();
        }
        for label in ["English translation:", "Translation:", "English:"] {
            t = t.strip_prefix(label).unwrap_or(t).trim();
        }
        if t.len() == before {
            break;
        }
    }
    t.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::calibration::ConsensusSettings;
    use crate::config::decoding::ConsensusMode;
    use crate::stages::check::Fidelity;

    #[test]
    fn model_chatter_around_a_translation_is_removed() {
        assert_eq!(
            tidy_translation("Translation: <source>\nShares rose\n11%.\n</source>"),
            "Shares rose 11%."
        );
    }

    fn chunk(text: &str) -> Chunk {
        Chunk {
            paragraph: 0,
            part: 0,
            text: text.to_string(),
            tokens: 40,
        }
    }

    /// The check and the retry round, with a fixed table standing in for the model (the real
    /// model does the same in tests/fidelity.rs).
    #[test]
    fn a_failing_chunk_is_retried_and_the_better_version_kept() {
        let chunks = [
            chunk("A empresa vai contratar 1.000 pessoas. As ações subiram 11%."),
            chunk("As ações subiram 5%."),
        ];
        let mut calls = Vec::new();
        let mut translate = |items: &[Item]| {
            calls.push(
                items
                    .iter()
                    .map(|i| (i.text.to_string(), i.keep.clone()))
                    .collect::<Vec<_>>(),
            );
            Ok(items
                .iter()
                .map(|i| Rendered {
                    text: match i.text {
                        "A empresa vai contratar 1.000 pessoas. As ações subiram 11%." => {
                            "The company will hire 10,000 people. Shares rose 11%."
                        }
                        "A empresa vai contratar 1.000 pessoas." => {
                            "The company will hire 1,000 people."
                        }
                        "As ações subiram 11%." => "Shares rose 11%.",
                        _ => "Shares rose 5%.",
                    }
                    .to_string(),
                    logprobs: vec![-0.1; 8],
                    ..Default::default()
                })
                .collect())
        };
        let scorer = Scorer {
            calibration: None,
            settings: ConsensusSettings {
                candidates: 0,
                ..Default::default()
            },
            mode: ConsensusMode::Auto,
        };
        let out =
            check_and_retry(&Fidelity, &scorer, &["pt", "pt"], &chunks, &mut translate).unwrap();
        assert_eq!(
            out.first_problems[0].len(),
            2,
            "{:?}",
            out.first_problems[0]
        );
        assert!(out.first_problems[1].is_empty());
        assert_eq!(out.retried, [true, false]);
        assert_eq!(
            out.texts[0],
            "The company will hire 1,000 people. Shares rose 11%."
        );
        assert!(out.problems[0].is_empty());
        // The retry went sentence by sentence, each with what it must keep.
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[1][0].1, ["1,000"]);
    }

    /// A chunk the model is unsure of gets sampled candidates; the one the others agree with
    /// is kept, and its confidence reflects their disagreement.
    #[test]
    fn an_unsure_chunk_is_decided_by_consensus() {
        let chunks = [chunk("O sol nasceu cedo.")];
        let mut translate = |items: &[Item]| {
            Ok(items
                .iter()
                .map(|i| {
                    let (text, logprob) = match i.sample {
                        None => ("An explosion of the Sun happened early.", -2.0),
                        Some(0) => ("The sun rose early.", -0.5),
                        Some(1) => ("The sun rose early today.", -0.6),
                        Some(_) => ("Early, the sun rose.", -0.7),
                    };
                    Rendered {
                        text: text.to_string(),
                        logprobs: vec![logprob; 6],
                        ..Default::default()
                    }
                })
                .collect())
        };
        let scorer = Scorer {
            calibration: None,
            settings: ConsensusSettings::default(),
            mode: ConsensusMode::Auto,
        };
        let out = check_and_retry(&Fidelity, &scorer, &["pt"], &chunks, &mut translate).unwrap();
        assert_eq!(out.retried, [true]);
        assert_eq!(
            out.first_texts[0],
            "An explosion of the Sun happened early."
        );
        assert!(
            out.texts[0].starts_with("The sun rose early"),
            "{}",
            out.texts[0]
        );
        let disagreement = out.signals[0].disagreement.unwrap();
        assert!(disagreement > 0.0 && disagreement < 1.0);
        assert!(out.confidence[0] > out.first_confidence[0]);
    }
}
