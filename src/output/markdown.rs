//! The Markdown outputs: `brief.md` (the brief, where sources differ, sources, one section
//! per article with its flags as footnotes) and `articles/<id>.md` (one translation).

use super::{Report, ReportView, SourceEntry};
use crate::domain::{ArticleOutcome, Difference, RunOutcome};
use crate::error::Result;
use crate::language::english_name;

/// `brief.md`.
pub struct Markdown;

impl Report for Markdown {
    fn file_name(&self) -> &'static str {
        "brief.md"
    }

    fn render(&self, view: &ReportView) -> Result<String> {
        Ok(brief_markdown(view.outcome, &view.sources))
    }
}

/// `articles/<id>.md`: the English translation, paragraphs kept.
pub fn translation_markdown(a: &ArticleOutcome) -> String {
    let mut md = format!("# {}\n\n", a.title_en);
    md.push_str(&format!(
        "*{} ({}) · source `{}` · translated by {}*\n\n",
        english_name(&a.language),
        a.language,
        a.source_path.display(),
        a.translator
    ));
    md.push_str(&a.translation);
    md.push('\n');
    md
}

/// The Markdown of `brief.md`.
pub fn brief_markdown(outcome: &RunOutcome, sources: &[SourceEntry]) -> String {
    let mut md = String::from("# News brief\n\n");
    match &outcome.brief {
        Some(text) => md.push_str(text),
        None => md.push_str("*No brief could be written: no article reached the summary stage.*"),
    }
    md.push_str("\n\n");
    let mut footnotes = Vec::new();
    for (i, flag) in outcome.brief_flags.iter().enumerate() {
        let key = format!("brief-{}", i + 1);
        md.push_str(&format!("[^{key}]"));
        footnotes.push((key, flag.message.clone()));
    }
    if !outcome.brief_flags.is_empty() {
        md.push_str("\n\n");
    }
    if outcome.brief.is_some() {
        md.push_str(&differences_section(&outcome.differences));
        md.push('\n');
    }

    md.push_str("## Sources\n\n");
    for s in sources {
        md.push_str(&format!(
            "{}. `{}` — {} ({}) — {}\n",
            s.n,
            s.source_path.display(),
            english_name(&s.language),
            s.language,
            s.title
        ));
    }

    md.push_str("\n## Articles\n");
    for a in &outcome.articles {
        let n = sources
            .iter()
            .find(|s| s.id == a.id)
            .map(|s| format!("[{}] ", s.n))
            .unwrap_or_default();
        md.push_str(&format!("\n### {n}{}\n\n", a.title_en));
        md.push_str(&format!(
            "{} ({}) · `{}` · translated by {} · [English translation](articles/{}.md)\n\n",
            english_name(&a.language),
            a.language,
            a.source_path.display(),
            a.translator,
            a.id
        ));
        match &a.summary {
            Some(s) => md.push_str(s),
            None => md.push_str("*No summary (see failures).*"),
        }
        for (j, flag) in a.flags.iter().enumerate() {
            let key = format!("{}-{}", a.id, j + 1);
            md.push_str(&format!("[^{key}]"));
            footnotes.push((key, flag.message.clone()));
        }
        md.push('\n');
    }

    if !outcome.failures.is_empty() {
        md.push_str("\n## Not included\n\n");
        for f in &outcome.failures {
            md.push_str(&format!(
                "- `{}` ({}): {}\n",
                f.source_path.display(),
                f.stage,
                f.error
            ));
        }
    }
    if !footnotes.is_empty() {
        md.push('\n');
        for (key, message) in footnotes {
            md.push_str(&format!("[^{key}]: {message}\n"));
        }
    }
    md
}

/// The "Where sources differ" section of `brief.md`.
pub fn differences_section(differences: &[Difference]) -> String {
    let mut out = String::from("## Where sources differ\n\n");
    if differences.is_empty() {
        out.push_str("No source gives a figure that another contradicts.\n");
        return out;
    }
    for d in differences {
        let claims: Vec<String> = d
            .claims
            .iter()
            .map(|c| {
                let place = if c.in_headline { " (headline)" } else { "" };
                format!("{} [{}]{place}", c.value, c.source)
            })
            .collect();
        out.push_str(&format!("- {}: {}\n", d.subject, claims.join("; ")));
    }
    out
}
