//! The brief stage: the articles' summaries grouped into stories ([`stories`]), one paragraph
//! per story (`prompts/brief.toml`, the stories decoded in one batch), grounded in its
//! sources ([`cite`]), and the facts on which sources disagree ([`differences`]).

pub mod cite;
pub mod differences;
pub mod stories;

use crate::config::decoding::Decoding;
use crate::config::prompts::BriefSource;
use crate::context::Context;
use crate::domain::{ArticleOutcome, BriefSentence, Difference, Flag, StageStats};
use crate::engine::llm::{Finish, Request, Ticket};
use crate::error::Result;
use crate::language::english_name;
use crate::language::numbers;
use crate::language::sentences::{drop_unfinished_last, sentences};
use crate::stages::summarize::support::{self, Evidence};
use crate::stages::summarize::{Grounded, SoFar};

/// The brief as written: its text, its sentences with their sources and confidence, and
/// flags for what was removed or miscited.
#[derive(Debug, Clone)]
pub struct Brief {
    pub text: String,
    pub sentences: Vec<BriefSentence>,
    pub flags: Vec<Flag>,
}

/// The brief of the summarized `articles` (numbered as sources in their order): `None` when
/// no article has a summary.
/// `early`: story paragraphs submitted before the brief stage ([`submit_ready_stories`]);
/// one is used where its prompt is exactly one this brief asks, the others are cancelled.
pub fn brief_of(
    ctx: &mut Context,
    articles: &[ArticleOutcome],
    early: Vec<EarlyParagraph>,
    stage: &mut StageStats,
) -> Result<Option<Brief>> {
    let summarized: Vec<&ArticleOutcome> =
        articles.iter().filter(|a| a.summary.is_some()).collect();
    let model = ctx.catalog.profile.brief.clone();
    if summarized.is_empty() {
        cancel(ctx, &model, tickets_of(early));
        return Ok(None);
    }
    let sources: Vec<BriefSource> = summarized
        .iter()
        .enumerate()
        .map(|(i, a)| brief_source(i + 1, a, a.summary.clone().unwrap_or_default()))
        .collect();
    // Every value any source's original gives: a brief sentence with another figure goes.
    let supported: Vec<f64> = summarized
        .iter()
        .flat_map(|a| numbers::numbers(&a.original, &a.language))
        .flat_map(|(_, values)| values)
        .collect();
    let (text, mut flags) =
        write_brief(ctx, &model, &sources, &supported, &summarized, early, stage)?;
    let mut all = cite::check_citations(&text, sources.len());
    all.append(&mut flags);
    let sentences = brief_sentences(&text, &summarized);
    Ok(Some(Brief {
        text,
        sentences,
        flags: all,
    }))
}

/// Source `n` of the brief: `article` with its summary.
fn brief_source(n: usize, article: &ArticleOutcome, summary: String) -> BriefSource {
    BriefSource {
        n,
        title: article.title_en.clone(),
        language: english_name(&article.language),
        summary,
    }
}

/// A story paragraph submitted to the LLM's queue before the brief stage, with the request
/// it was made from.
pub struct EarlyParagraph {
    request: Request,
    ticket: Ticket,
}

/// Submits the paragraphs of the stories whose summaries are all in, so that they decode
/// beside the summaries still decoding. `summaries[i]` is article i's, `None` while pending.
/// The sources are numbered as the brief will number them if every pending summary
/// succeeds; the brief stage uses a paragraph only where its prompt is exactly the one it
/// asks, so a wrong guess costs time, never a different brief. None are submitted when that
/// fails (the brief then asks for all).
pub fn submit_ready_stories(
    ctx: &mut Context,
    articles: &[ArticleOutcome],
    summaries: &[SoFar],
) -> Vec<EarlyParagraph> {
    submit_stories(ctx, articles, summaries).unwrap_or_else(|e| {
        tracing::debug!("no brief paragraph queued early: {}", e.in_words());
        Vec::new()
    })
}

fn submit_stories(
    ctx: &mut Context,
    articles: &[ArticleOutcome],
    summaries: &[SoFar],
) -> Result<Vec<EarlyParagraph>> {
    // the articles expected in the brief, each with its summary when it is in
    let expected: Vec<(usize, Option<&String>)> = summaries
        .iter()
        .enumerate()
        .filter_map(|(i, s)| match s {
            None => Some((i, None)),
            Some(Ok(Grounded {
                text: Some(text), ..
            })) => Some((i, Some(text))),
            Some(_) => None,
        })
        .collect();
    let sources: Vec<BriefSource> = expected
        .iter()
        .enumerate()
        .map(|(n, &(i, summary))| {
            brief_source(n + 1, &articles[i], summary.cloned().unwrap_or_default())
        })
        .collect();
    let model = ctx.catalog.profile.brief.clone();
    let (stories, requests, decoding) = story_requests(ctx, &model, &sources)?;
    let engine = ctx.registry.llm(&model)?;
    let mut early = Vec::new();
    for (members, request) in stories.iter().zip(requests) {
        if members.iter().all(|&m| expected[m].1.is_some()) {
            let ticket = engine.submit(std::slice::from_ref(&request), decoding)?;
            early.push(EarlyParagraph { request, ticket });
        }
    }
    Ok(early)
}

/// Drops story paragraphs queued that the brief does not use.
fn cancel(ctx: &mut Context, model: &str, tickets: impl IntoIterator<Item = Ticket>) {
    if let Ok(engine) = ctx.registry.llm(model) {
        for ticket in tickets {
            engine.cancel(ticket);
        }
    }
}

fn tickets_of(early: Vec<EarlyParagraph>) -> impl Iterator<Item = Ticket> {
    early.into_iter().map(|e| e.ticket)
}

/// The stories of `sources` ([`stories::group`]), each one's paragraph request, and the
/// model's decoding.
fn story_requests(
    ctx: &mut Context,
    model: &str,
    sources: &[BriefSource],
) -> Result<(Vec<Vec<usize>>, Vec<Request>, Decoding)> {
    let manifest = ctx.catalog.model(model)?;
    let task = manifest.generation.brief;
    let decoding = ctx.decoding.resolve(manifest.decoding());
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
        requests.push(
            Request::new(ctx.prompts.brief(&own)?, task.max_new_tokens(input_tokens))
                .for_task("brief"),
        );
    }
    Ok((stories, requests, decoding))
}

/// The evidence of source `n` (1-based): its English text, title and summary, and its
/// original's figures and names.
fn evidence_of(articles: &[&ArticleOutcome], cited: &[usize]) -> Evidence {
    let own: Vec<&ArticleOutcome> = cited
        .iter()
        .filter_map(|&n| articles.get(n.wrapping_sub(1)).copied())
        .collect();
    let english: Vec<&str> = own
        .iter()
        .flat_map(|a| {
            [
                a.translation.as_str(),
                a.title_en.as_str(),
                a.summary.as_deref().unwrap_or(""),
            ]
        })
        .collect();
    let originals: Vec<(&str, &str)> = own
        .iter()
        .map(|a| (a.original.as_str(), a.language.as_str()))
        .collect();
    Evidence::new(&english, &originals)
}

/// Each brief sentence with the sources it cites and whether it rests on a low-confidence
/// translated sentence of one of them.
fn brief_sentences(text: &str, articles: &[&ArticleOutcome]) -> Vec<BriefSentence> {
    text.split("\n\n")
        .flat_map(sentences)
        .map(|sentence| {
            let sources: Vec<usize> = cite::cited_sources(&sentence).into_iter().collect();
            let low_confidence = sources.iter().any(|&n| {
                articles.get(n.wrapping_sub(1)).is_some_and(|a| {
                    support::resting_on(&sentence, &a.sentences).is_some_and(|s| s.low_confidence)
                })
            });
            BriefSentence {
                text: sentence,
                sources,
                low_confidence,
            }
        })
        .collect()
}

/// Keeps the sentences of `paragraph` that the sources they cite (else the story's
/// `members`) support; an unsupported clause between commas is cut, an unsupported sentence
/// goes, each with a flag.
fn keep_supported(
    paragraph: &str,
    members: &[usize],
    articles: &[&ArticleOutcome],
    flags: &mut Vec<Flag>,
) -> String {
    let mut kept = Vec::new();
    for sentence in sentences(paragraph) {
        let cited: Vec<usize> = cite::cited_sources(&sentence).into_iter().collect();
        let basis = if cited.is_empty() {
            members.iter().map(|i| i + 1).collect()
        } else {
            cited
        };
        kept.extend(support::keep_supported(
            sentence,
            &evidence_of(articles, &basis),
            "the brief",
            "no cited source says it",
            flags,
        ));
    }
    kept.join(" ")
}

/// Where the summarized `articles` disagree, numbered as the brief numbers its sources.
pub fn differences_of(articles: &[ArticleOutcome]) -> Vec<Difference> {
    let sources: Vec<differences::Source> = articles
        .iter()
        .filter(|a| a.summary.is_some())
        .enumerate()
        .map(|(i, a)| differences::Source {
            n: i + 1,
            original: &a.original,
            lang: &a.language,
            title_en: &a.title_en,
            body_en: &a.translation,
        })
        .collect();
    differences::differences(&sources)
}

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
    articles: &[&ArticleOutcome],
    mut early: Vec<EarlyParagraph>,
    stage: &mut StageStats,
) -> Result<(String, Vec<Flag>)> {
    let (stories, requests, decoding) = match story_requests(ctx, model, sources) {
        Ok(planned) => planned,
        Err(e) => {
            cancel(ctx, model, tickets_of(early));
            return Err(e);
        }
    };
    // each story's paragraph: the one submitted early for exactly this prompt, else now
    let mut tickets: Vec<(Ticket, bool)> = Vec::with_capacity(requests.len());
    for request in &requests {
        if let Some(at) = early.iter().position(|e| &e.request == request) {
            tickets.push((early.swap_remove(at).ticket, true));
            continue;
        }
        match ctx
            .registry
            .llm(model)
            .and_then(|engine| engine.submit(std::slice::from_ref(request), decoding))
        {
            Ok(ticket) => tickets.push((ticket, false)),
            Err(e) => {
                let queued = tickets.iter().map(|&(ticket, _)| ticket);
                cancel(ctx, model, tickets_of(early).chain(queued));
                return Err(e);
            }
        }
    }
    cancel(ctx, model, tickets_of(early));
    let engine = ctx.registry.llm(model)?;
    let mut results = Vec::with_capacity(tickets.len());
    for (k, &(ticket, was_early)) in tickets.iter().enumerate() {
        let mut collected = engine.collect(ticket, &mut |_| {});
        // an early paragraph lost with another stage's failed batch is asked again
        if collected.is_err() && was_early {
            collected = engine
                .submit(std::slice::from_ref(&requests[k]), decoding)
                .and_then(|again| engine.collect(again, &mut |_| {}));
        }
        match collected {
            Ok((mut one, _)) => results.push(one.remove(0)),
            Err(e) => {
                for &(rest, _) in &tickets[k + 1..] {
                    engine.cancel(rest);
                }
                return Err(e);
            }
        }
    }
    // early paragraphs overlap: the stage's time is the task's
    engine.take_task_timings("brief").record(stage);
    let summaries: Vec<String> = sources.iter().map(|s| s.summary.clone()).collect();
    let mut paragraphs = Vec::with_capacity(stories.len());
    let mut flags = Vec::new();
    for (members, result) in stories.iter().zip(results) {
        let generation = result?;
        generation.record(stage);
        let text = cite::normalize_citations(
            &tidy_brief(&generation.text, generation.finish).replace("\n\n", " "),
        );
        let (grounded, added) = cite::ground(&text, &summaries);
        if added > 0 {
            tracing::info!(
                sentences = added,
                "citations added to brief sentences that repeat a summary"
            );
        }
        let (paragraph, removed) = cite::drop_unsupported_numbers(&grounded, supported);
        flags.extend(removed);
        let paragraph = cap_story_sentences(&paragraph, members.len());
        let mut paragraph = keep_supported(&paragraph, members, articles, &mut flags);
        let cited = cite::cited_sources(&paragraph);
        for &i in members {
            let source = &sources[i];
            if cited.contains(&source.n) {
                continue;
            }
            // The model left this article out: its summary's first sentence stands in.
            let lead = sentences(&source.summary)
                .into_iter()
                .next()
                .unwrap_or_default();
            let (body, end) = cite::split_final_punctuation(&lead);
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
    let sentences = sentences(paragraph);
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
            let mut sentences = sentences(last);
            let before = sentences.len();
            drop_unfinished_last(&mut sentences);
            if sentences.len() < before {
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
