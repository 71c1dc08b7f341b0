//! The summarize stage: every article's English text in 3–5 sentences
//! (`prompts/summarize.toml`), all articles decoded in shared batches.

use indicatif::ProgressBar;

use crate::context::Context;
use crate::domain::{ArticleOutcome, StageStats};
use crate::engine::llm::{Finish, Request};
use crate::error::Result;
use crate::language::sentences::{drop_unfinished_last, sentences};

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
    let decoding = ctx.decoding.resolve(manifest.decoding());
    let overrides = ctx.decoding;
    let engine = ctx.registry.llm(model)?;
    if let Some(rows) = overrides.batch_rows {
        engine.set_batch_rows(rows);
    }
    let requests = articles
        .iter()
        .map(|a| {
            Ok(Request::new(
                ctx.prompts.summarize(&a.title_en, &a.translation)?,
                task.max_new_tokens(engine.count_tokens(&a.translation)?),
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    let (results, timings) = engine.generate_batch(&requests, decoding, &mut |_| bar.inc(1))?;
    timings.record(stage);
    Ok(results
        .into_iter()
        .map(|r| {
            let g = r?;
            g.record(stage);
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
