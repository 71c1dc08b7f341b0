//! Translation with an LLM, chunk by chunk, all chunks in shared batches, each checked for
//! fidelity (by the [`FidelityCheck`] the orchestrator hands in): a chunk that fails is translated again (sentence by
//! sentence when it has several, else with a prompt that lists what the English must keep),
//! and the version with fewer problems wins; what is still wrong is reported, never hidden.

use indicatif::ProgressBar;

use crate::config::decoding::Decoding;
use crate::config::manifest::TaskSettings;
use crate::config::prompts::Prompts;
use crate::domain::{FidelityCheck, FlagKind, Problem, StageStats};
use crate::engine::llm::{Finish, LlmEngine, Request};
use crate::error::Result;
use crate::language::sentences::sentences;
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
}

/// One translation as the model gave it, tidied.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub text: String,
    /// It stopped at its token budget.
    pub cut: bool,
}

/// What translating the chunks gave, one entry per chunk.
#[derive(Debug, Clone, Default)]
pub struct ChunkResults {
    pub texts: Vec<String>,
    pub cut: Vec<bool>,
    /// The problems of the first translation, and of the one kept.
    pub first_problems: Vec<Vec<Problem>>,
    pub problems: Vec<Vec<Problem>>,
    /// Chunks translated again.
    pub retried: Vec<bool>,
}

/// Translates `chunks` (`languages[i]` is the language of chunk i) with `engine`.
#[allow(clippy::too_many_arguments)]
pub fn translate_chunks(
    engine: &mut LlmEngine,
    prompts: &Prompts,
    checker: &dyn FidelityCheck,
    languages: &[&str],
    chunks: &[Chunk],
    task: TaskSettings,
    decoding: Decoding,
    stats: &mut StageStats,
    bar: &ProgressBar,
) -> Result<ChunkResults> {
    let mut translate =
        |items: &[Item]| translate_texts(engine, prompts, items, task, decoding, stats, bar);
    check_and_retry(checker, languages, chunks, &mut translate)
}

/// The first translation of every chunk, the check, and one retry round for the chunks that
/// failed it, through `translate` (a batch of items in, their translations out).
pub fn check_and_retry(
    checker: &dyn FidelityCheck,
    languages: &[&str],
    chunks: &[Chunk],
    translate: &mut dyn FnMut(&[Item]) -> Result<Vec<Rendered>>,
) -> Result<ChunkResults> {
    let items: Vec<Item> = chunks
        .iter()
        .zip(languages)
        .map(|(c, &lang)| Item {
            lang,
            text: &c.text,
            tokens: c.tokens,
            keep: Vec::new(),
        })
        .collect();
    let first = translate(&items)?;
    let first_problems: Vec<Vec<Problem>> = chunks
        .iter()
        .zip(languages)
        .zip(&first)
        .map(|((c, lang), r)| problems(checker, &c.text, lang, r))
        .collect();

    // The retry round: the sentences of failing chunks of several sentences, and failing
    // one-sentence chunks with the list of what to keep, all in one batch.
    let mut retry_items: Vec<(usize, String)> = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        if first_problems[i].is_empty() {
            continue;
        }
        let parts = sentences(&chunk.text);
        if parts.len() > 1 {
            retry_items.extend(parts.into_iter().map(|s| (i, s)));
        } else {
            retry_items.push((i, chunk.text.clone()));
        }
    }
    let mut retried_parts: Vec<Vec<Rendered>> = vec![Vec::new(); chunks.len()];
    if !retry_items.is_empty() {
        let items: Vec<Item> = retry_items
            .iter()
            .map(|(i, text)| Item {
                lang: languages[*i],
                text,
                tokens: chunks[*i].tokens,
                keep: checker.must_keep(text, languages[*i]),
            })
            .collect();
        for ((i, _), r) in retry_items.iter().zip(translate(&items)?) {
            retried_parts[*i].push(r);
        }
    }

    let mut out = ChunkResults::default();
    for (i, (chunk, first)) in chunks.iter().zip(first).enumerate() {
        let mut kept = (first, first_problems[i].clone());
        let parts = &retried_parts[i];
        if !parts.is_empty() {
            let retry = Rendered {
                text: parts
                    .iter()
                    .map(|p| p.text.as_str())
                    .collect::<Vec<_>>()
                    .join(" "),
                cut: parts.iter().any(|p| p.cut),
            };
            let retry_problems = problems(checker, &chunk.text, languages[i], &retry);
            if retry_problems.len() < kept.1.len() {
                kept = (retry, retry_problems);
            }
        }
        out.texts.push(kept.0.text);
        out.cut.push(kept.0.cut);
        out.problems.push(kept.1);
        out.retried.push(!parts.is_empty());
    }
    out.first_problems = first_problems;
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

/// Translates items in batches with the translation prompt.
pub fn translate_texts(
    engine: &mut LlmEngine,
    prompts: &Prompts,
    items: &[Item],
    task: TaskSettings,
    decoding: Decoding,
    stats: &mut StageStats,
    bar: &ProgressBar,
) -> Result<Vec<Rendered>> {
    bar.inc_length(items.len() as u64);
    let requests = items
        .iter()
        .map(|item| {
            Ok(Request::new(
                prompts.translate(item.lang, item.text, &item.keep)?,
                task.max_new_tokens(item.tokens),
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let (results, timings) = engine.generate_batch(&requests, decoding, &mut |_| bar.inc(1))?;
    timings.record(stats);
    bar.set_message(format!(
        "decode {:.1} tok/s, batch {}",
        stats.generated_tokens as f64 / stats.decode_s.max(1e-9),
        timings.largest_batch
    ));
    results
        .into_iter()
        .map(|r| {
            let g = r?;
            g.record(stats);
            Ok(Rendered {
                text: tidy_translation(&g.text),
                cut: g.finish == Finish::Budget,
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
                    cut: false,
                })
                .collect())
        };
        let out = check_and_retry(&Fidelity, &["pt", "pt"], &chunks, &mut translate).unwrap();
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
}
