//! The summarize stage: every article's English text in 3–5 sentences
//! (`prompts/summarize.toml`), all articles decoded in shared batches, then grounded: no
//! sentence twice, none that the article's English does not support ([`support`]), and a
//! note when the summary rests on low-confidence sentences.

pub mod support;

use crate::context::Context;
use crate::domain::{ArticleOutcome, Flag, FlagKind, StageStats};
use crate::engine::llm::{Finish, Request, Ticket};
use crate::error::{Error, Result};
use crate::language::sentences::{drop_unfinished_last, sentences};
use crate::progress::StageBar;

/// A summary as kept: its text (`None` when no sentence held), what was removed, and whether
/// it rests on low-confidence sentences.
#[derive(Debug, Clone)]
pub struct Grounded {
    pub text: Option<String>,
    pub flags: Vec<Flag>,
    pub low_confidence: bool,
}

/// Summaries submitted to the LLM's queue and not yet collected: they decode in the steps of
/// whatever the engine runs next (an earlier stage's translation of other articles).
pub struct Submitted {
    ticket: Ticket,
    /// The articles they summarize, as indices into the stage's articles.
    articles: Vec<usize>,
}

/// An article's summary as known so far: `None` while it is pending.
pub type SoFar = Option<Result<Grounded>>;

/// Summaries queued while other articles are still being translated: those articles' ids,
/// and their submission.
pub struct Early {
    ids: Vec<String>,
    ticket: Ticket,
}

/// Queues the summaries of `done`, articles translated before the others; `None` when they
/// cannot be queued now (they are then summarized with the others).
pub fn submit_early(ctx: &mut Context, model: &str, done: &[ArticleOutcome]) -> Option<Early> {
    match submit(ctx, model, done, (0..done.len()).collect()) {
        Ok(submitted) => Some(Early {
            ids: done.iter().map(|a| a.id.clone()).collect(),
            ticket: submitted.ticket,
        }),
        Err(e) => {
            tracing::debug!("summaries not queued early: {}", e.in_words());
            None
        }
    }
}

/// Every article's summary, in order: those queued `early` are collected while the rest
/// decode beside them; then `between` gets what is known (`None` while pending), before the
/// rest are waited for.
pub fn summarize_queued(
    ctx: &mut Context,
    model: &str,
    articles: &[ArticleOutcome],
    early: Option<Early>,
    stage: &mut StageStats,
    bar: &StageBar,
    between: &mut dyn FnMut(&mut Context, &[SoFar]),
) -> Vec<Result<Grounded>> {
    let mut summaries: Vec<SoFar> = articles.iter().map(|_| None).collect();
    // the early articles' places among all the articles (by id)
    let early = early.and_then(|e| {
        let place: Option<Vec<usize>> = e
            .ids
            .iter()
            .map(|id| articles.iter().position(|a| &a.id == id))
            .collect();
        if place.is_none() {
            if let Ok(engine) = ctx.registry.llm(model) {
                engine.cancel(e.ticket);
            }
        }
        Some(Submitted {
            ticket: e.ticket,
            articles: place?,
        })
    });
    let late: Vec<usize> = (0..articles.len())
        .filter(|i| early.as_ref().is_none_or(|e| !e.articles.contains(i)))
        .collect();
    let late = submit(ctx, model, articles, late.clone()).map_err(|e| (late, e));
    if let Some(submitted) = early {
        for (i, result) in collect(ctx, model, articles, submitted, stage, bar) {
            summaries[i] = Some(result);
        }
    }
    between(ctx, &summaries);
    match late {
        Ok(submitted) => {
            for (i, result) in collect(ctx, model, articles, submitted, stage, bar) {
                summaries[i] = Some(result);
            }
        }
        // one article's prompt that cannot be made must not cost the others
        Err((which, e)) if which.len() > 1 => {
            tracing::warn!(
                "the summaries could not be queued ({}); summarizing article by article",
                e.in_words()
            );
            for (i, result) in each_alone(ctx, model, articles, &which, stage, bar) {
                summaries[i] = Some(result);
            }
        }
        Err((which, e)) => {
            for i in which {
                summaries[i] = Some(Err(Error::input(
                    &articles[i].source_path,
                    format!("no summary ({})", e.in_words()),
                )));
            }
        }
    }
    // the time goes to the stage by task: its submissions overlap
    if let Ok(engine) = ctx.registry.llm(model) {
        engine.take_task_timings("summarize").record(stage);
    }
    summaries
        .into_iter()
        .map(|s| s.expect("every article was summarized"))
        .collect()
}

/// Queues the summaries of `articles[i]` for each i of `which`, to be collected later.
pub fn submit(
    ctx: &mut Context,
    model: &str,
    articles: &[ArticleOutcome],
    which: Vec<usize>,
) -> Result<Submitted> {
    let (requests, decoding) = summary_requests(ctx, model, which.iter().map(|&i| &articles[i]))?;
    let ticket = ctx.registry.llm(model)?.submit(&requests, decoding)?;
    Ok(Submitted {
        ticket,
        articles: which,
    })
}

/// Decodes what is left of `submitted` and grounds each summary: `(article index, result)`
/// each. When their batch fails, each of its articles is summarized again on its own, so
/// that only an article that still fails is lost (as for translation).
pub fn collect(
    ctx: &mut Context,
    model: &str,
    articles: &[ArticleOutcome],
    submitted: Submitted,
    stage: &mut StageStats,
    bar: &StageBar,
) -> Vec<(usize, Result<Grounded>)> {
    let collected = ctx
        .registry
        .llm(model)
        .and_then(|engine| engine.collect(submitted.ticket, &mut |_| bar.inc(1)));
    match collected {
        // the time goes to the stage by task (`take_task_timings`): submissions overlap
        Ok((results, _)) => submitted
            .articles
            .iter()
            .zip(results)
            .map(|(&i, r)| (i, grounded(r, &articles[i], stage)))
            .collect(),
        Err(e) if submitted.articles.len() == 1 => vec![(submitted.articles[0], Err(e))],
        Err(e) => {
            tracing::warn!(
                "the summary batch failed ({}); summarizing article by article",
                e.in_words()
            );
            each_alone(ctx, model, articles, &submitted.articles, stage, bar)
        }
    }
}

/// The summary of each `articles[i]`, `i` in `which`, decoded on its own, so that only an
/// article that still fails is lost.
fn each_alone(
    ctx: &mut Context,
    model: &str,
    articles: &[ArticleOutcome],
    which: &[usize],
    stage: &mut StageStats,
    bar: &StageBar,
) -> Vec<(usize, Result<Grounded>)> {
    which
        .iter()
        .map(|&i| {
            let one = std::slice::from_ref(&articles[i]);
            let result = summarize_all(ctx, model, one, stage, bar).and_then(|mut r| r.remove(0));
            (i, result)
        })
        .collect()
}

/// The summary prompts of `articles`, each with its new-token budget, and the model's
/// decoding (the command line's batch rows set on its engine).
fn summary_requests<'a>(
    ctx: &mut Context,
    model: &str,
    articles: impl Iterator<Item = &'a ArticleOutcome>,
) -> Result<(Vec<Request>, crate::config::decoding::Decoding)> {
    let manifest = ctx.catalog.model(model)?;
    let task = manifest.generation.summarize;
    let decoding = ctx.decoding.resolve(manifest.decoding());
    let overrides = ctx.decoding;
    let engine = ctx.registry.llm(model)?;
    if let Some(rows) = overrides.batch_rows {
        engine.set_batch_rows(rows);
    }
    let requests = articles
        .map(|a| {
            Ok(Request::new(
                ctx.prompts.summarize(&a.title_en, &a.translation)?,
                task.max_new_tokens(engine.count_tokens(&a.translation)?),
            )
            .for_task("summarize"))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((requests, decoding))
}

/// Summaries of `articles`, decoded in shared batches and grounded; one result per article.
pub fn summarize_all(
    ctx: &mut Context,
    model: &str,
    articles: &[ArticleOutcome],
    stage: &mut StageStats,
    bar: &StageBar,
) -> Result<Vec<Result<Grounded>>> {
    if articles.is_empty() {
        return Ok(Vec::new());
    }
    let (requests, decoding) = summary_requests(ctx, model, articles.iter())?;
    let engine = ctx.registry.llm(model)?;
    let (results, _) = engine.generate_batch(&requests, decoding, &mut |_| bar.inc(1))?;
    Ok(results
        .into_iter()
        .zip(articles)
        .map(|(r, article)| grounded(r, article, stage))
        .collect())
}

/// A generated summary, trimmed and grounded in its article; a request the model could not
/// take (an article too long for its context) fails alone, and says that the translation
/// itself is kept.
fn grounded(
    generation: Result<crate::engine::llm::Generation>,
    article: &ArticleOutcome,
    stage: &mut StageStats,
) -> Result<Grounded> {
    let g = generation.map_err(|e| {
        Error::input(
            &article.source_path,
            format!(
                "no summary ({}); its translation is kept in articles/{}.md",
                e.in_words(),
                article.id
            ),
        )
    })?;
    g.record(stage);
    Ok(ground(
        &trim_summary(&join_list_items(&g.text), g.finish),
        article,
    ))
}

/// Holds `summary` to what `article` says: a sentence repeating an earlier one goes, one
/// its English text (or the original's figures and names) does not support goes with a
/// flag, an unsupported clause between commas is cut.
pub fn ground(summary: &str, article: &ArticleOutcome) -> Grounded {
    let evidence = support::Evidence::new(
        &[&article.translation, &article.title_en],
        &[(&article.original, &article.language)],
    );
    let mut kept: Vec<String> = Vec::new();
    let mut flags = Vec::new();
    for sentence in sentences(summary) {
        if kept.iter().any(|k| support::same_claim(k, &sentence)) {
            tracing::info!(article = %article.id, "repeated summary sentence dropped");
            continue;
        }
        kept.extend(support::keep_supported(
            sentence,
            &evidence,
            "the summary",
            "the article does not say it",
            &mut flags,
        ));
    }
    if kept.is_empty() {
        flags.push(Flag {
            kind: FlagKind::UnsupportedClaim,
            message: "no summary: none of its sentences is supported by the article".into(),
        });
    }
    let low_confidence = kept
        .iter()
        .any(|k| support::resting_on(k, &article.sentences).is_some_and(|s| s.low_confidence));
    Grounded {
        text: (!kept.is_empty()).then(|| kept.join(" ")),
        flags,
        low_confidence,
    }
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
    let mut sentences = sentences(text);
    if finish == Finish::Budget {
        drop_unfinished_last(&mut sentences);
    }
    sentences.truncate(MAX_SUMMARY_SENTENCES);
    sentences.join(" ")
}

const MAX_SUMMARY_SENTENCES: usize = 5;

#[cfg(test)]
mod tests {
    use super::*;

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

    fn article(translation: &str) -> ArticleOutcome {
        ArticleOutcome {
            id: "x".into(),
            position: 0,
            source_path: "x.txt".into(),
            language: "pt".into(),
            language_confidence: 1.0,
            title: String::new(),
            title_detected: false,
            title_en: "CleanSpark names a new executive".into(),
            translation: translation.into(),
            summary: None,
            translator: String::new(),
            source_paragraphs: 1,
            translation_paragraphs: 1,
            flags: Vec::new(),
            retried_chunks: 0,
            sentences: Vec::new(),
            calibrated: false,
            summary_low_confidence: false,
            original: String::new(),
            removed: Vec::new(),
        }
    }

    #[test]
    fn a_repeated_or_unsupported_summary_sentence_is_dropped() {
        let a = article("CleanSpark named Jeffrey Thomas to lead its AI data centers. Its shares rose 11% on Monday.");
        let grounded = ground(
            "CleanSpark named Jeffrey Thomas to lead its AI data centers. \
             CleanSpark has named Jeffrey Thomas to lead its AI data centers. \
             The regulator fined the firm over pollution in Texas. Its shares rose 11% on Monday.",
            &a,
        );
        assert_eq!(
            grounded.text.as_deref(),
            Some("CleanSpark named Jeffrey Thomas to lead its AI data centers. Its shares rose 11% on Monday.")
        );
        assert_eq!(grounded.flags.len(), 1, "{:?}", grounded.flags);
        assert!(grounded.flags[0].message.contains("regulator"));
        assert!(!grounded.low_confidence);
    }

    #[test]
    fn a_summary_resting_on_low_confidence_sentences_says_so() {
        let mut a = article("An explosion of the Sun hit Jakarta on Monday.");
        a.sentences = vec![crate::domain::TranslatedSentence {
            unit: 0,
            source: "تسونامي".into(),
            text: "An explosion of the Sun hit Jakarta on Monday.".into(),
            confidence: 0.1,
            low_confidence: true,
            flags: Vec::new(),
        }];
        let grounded = ground("An explosion of the Sun hit Jakarta on Monday.", &a);
        assert!(grounded.low_confidence);
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
}
