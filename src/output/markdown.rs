//! The Markdown outputs: `brief.md` (the brief, where sources differ, sources, one section
//! per article with its flags as footnotes) and `articles/<id>.md` (one translation).

use super::{brief_paragraphs, Report, ReportView, SourceEntry};
use crate::domain::{ArticleOutcome, Difference, RunOutcome};
use crate::error::Result;
use crate::language::english_name;

/// The mark of a sentence to verify before use.
const LOW_MARK: &str = "⚠";

/// `brief.md`.
pub struct Markdown;

impl Report for Markdown {
    fn file_name(&self) -> &'static str {
        "brief.md"
    }

    fn render(&self, view: &ReportView) -> Result<String> {
        let mut md = brief_markdown(view.outcome, &view.sources, view.run.shard.as_deref());
        md.push_str(&format!(
            "\n*Generation {} (brief.json names the same).*\n",
            view.run.generation
        ));
        Ok(md)
    }
}

/// Untrusted text (titles, article text, model output) as Markdown that shows it verbatim:
/// Markdown's punctuation is backslash-escaped and HTML's brackets become entities, so an
/// article's `<img onerror=…>` or `**` is text, never markup.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, c) in text.char_indices() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' if looks_like_entity(&text[i..]) => out.push_str("&amp;"),
            // A citation ("[2]") stays one: it is the brief's own syntax.
            '[' | ']' if is_citation(text, i) => out.push(c),
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '~' => {
                out.push('\\');
                out.push(c);
            }
            '#' if out.trim().is_empty() => out.push_str("\\#"),
            // A terminal escape in a file name must not reach whoever cats the file.
            c if c.is_control() && c != '\n' => out.push_str(&c.escape_unicode().to_string()),
            _ => out.push(c),
        }
    }
    out
}

/// Whether the bracket at byte `i` opens or closes a citation: `[` digits `]`.
fn is_citation(text: &str, i: usize) -> bool {
    let open = if text.as_bytes()[i] == b'[' {
        i
    } else {
        match text[..i].rfind('[') {
            Some(o) => o,
            None => return false,
        }
    };
    let Some(len) = text[open + 1..].find(']') else {
        return false;
    };
    let inside = &text[open + 1..open + 1 + len];
    let close = open + 1 + len;
    !inside.is_empty() && inside.bytes().all(|b| b.is_ascii_digit()) && (i == open || i == close)
}

/// `&name;` or `&#123;`: an ampersand a Markdown renderer would read as an entity.
fn looks_like_entity(text: &str) -> bool {
    let rest = &text[1..];
    let end = rest.find(';').unwrap_or(0);
    end > 0
        && end <= 32
        && rest[..end]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '#')
}

/// A path as an inline code span, fenced with enough backticks for the ones it holds.
fn code(path: &std::path::Path) -> String {
    let text = super::printable(&path.display().to_string());
    let mut longest = 0;
    let mut run = 0;
    for c in text.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    if longest == 0 {
        return format!("`{text}`");
    }
    let fence = "`".repeat(longest + 1);
    format!("{fence} {text} {fence}")
}

/// `articles/<id>.md`: the English translation, paragraphs kept; a low-confidence sentence
/// is marked, and a footnote says why (and what the checks found in any sentence).
pub fn translation_markdown(a: &ArticleOutcome) -> String {
    let mut md = format!("# {}\n\n", escape(&a.title_en));
    md.push_str(&format!(
        "*{} ({}) · source {} · translated by {}*\n\n",
        english_name(&a.language),
        a.language,
        code(&a.source_path),
        a.translator
    ));
    if !a.sentences.is_empty() {
        md.push_str(&format!("*{}*\n\n", reliability(a)));
    }
    let offset = usize::from(a.title_detected);
    let mut footnotes = Vec::new();
    let paragraphs: Vec<String> = a
        .translation
        .split("\n\n")
        .enumerate()
        .map(|(p, paragraph)| {
            let own: Vec<_> = a
                .sentences
                .iter()
                .filter(|s| s.unit == p + offset)
                .collect();
            if own.iter().all(|s| s.flags.is_empty()) {
                return escape(paragraph);
            }
            own.iter()
                .map(|s| {
                    if s.flags.is_empty() {
                        return escape(&s.text);
                    }
                    footnotes.push(format!(
                        "confidence {:.2}: {}",
                        s.confidence,
                        escape(
                            &s.flags
                                .iter()
                                .map(|f| f.message.as_str())
                                .collect::<Vec<_>>()
                                .join("; ")
                        )
                    ));
                    let key = footnotes.len();
                    if s.low_confidence {
                        format!("{LOW_MARK} *{}*[^{key}]", escape(&s.text))
                    } else {
                        format!("{}[^{key}]", escape(&s.text))
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    md.push_str(&paragraphs.join("\n\n"));
    md.push('\n');
    if a.sentences.iter().any(|s| s.low_confidence) {
        md.push_str(&format!(
            "\n{LOW_MARK} marks a sentence of low confidence: verify it against the source before use.\n"
        ));
    }
    if !footnotes.is_empty() {
        md.push('\n');
        for (i, note) in footnotes.iter().enumerate() {
            md.push_str(&format!("[^{}]: {note}\n", i + 1));
        }
    }
    md
}

/// How far an article's translation can be trusted, in one line: "6 of 15 paragraphs low
/// confidence — verify before use".
pub fn reliability(a: &ArticleOutcome) -> String {
    let offset = usize::from(a.title_detected);
    let paragraphs = a.translation_paragraphs;
    let low: std::collections::BTreeSet<usize> = a
        .sentences
        .iter()
        .filter(|s| s.low_confidence && s.unit >= offset)
        .map(|s| s.unit)
        .collect();
    let basis = if a.calibrated {
        "calibrated on the NTREX dev set"
    } else {
        "uncalibrated"
    };
    if a.sentences.is_empty() {
        "not translated (source is English)".to_string()
    } else if low.is_empty() {
        format!("all {paragraphs} paragraphs above the confidence threshold ({basis})")
    } else {
        format!(
            "{} of {paragraphs} paragraphs low confidence — verify before use ({basis})",
            low.len()
        )
    }
}

/// The Markdown of `brief.md`.
/// `shard` names the shard a run took (`K/N`): its brief is left to `crossbrief merge`.
pub fn brief_markdown(
    outcome: &RunOutcome,
    sources: &[SourceEntry],
    shard: Option<&str>,
) -> String {
    let mut md = String::from("# News brief\n\n");
    let mut marked = false;
    match &outcome.brief {
        Some(_) => {
            let paragraphs: Vec<String> = brief_paragraphs(outcome)
                .into_iter()
                .map(|p| {
                    p.into_iter()
                        .map(|(s, entry)| {
                            if entry.is_some_and(|e| e.low_confidence) {
                                marked = true;
                                format!("{LOW_MARK} *{}*", escape(&s))
                            } else {
                                escape(&s)
                            }
                        })
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .collect();
            md.push_str(&paragraphs.join("\n\n"));
        }
        None => match shard {
            Some(shard) => md.push_str(&format!(
                "*Shard {shard} of a run: its articles are below; `crossbrief merge` writes the brief over every shard.*"
            )),
            None => md.push_str(
                "*No brief could be written: no article has a summary (see Not included).*",
            ),
        },
    }
    md.push_str("\n\n");
    if marked {
        md.push_str(&format!(
            "{LOW_MARK} rests on a translated sentence of low confidence: verify it in the article before use.\n\n"
        ));
    }
    let mut footnotes = Vec::new();
    for (i, flag) in outcome.brief_flags.iter().enumerate() {
        let key = format!("brief-{}", i + 1);
        md.push_str(&format!("[^{key}]"));
        footnotes.push((key, escape(&flag.message)));
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
        let trust = outcome
            .articles
            .iter()
            .find(|a| a.id == s.id)
            .map(|a| {
                format!(
                    "\n   {} [{}]: {}",
                    english_name(&s.language),
                    s.n,
                    reliability(a)
                )
            })
            .unwrap_or_default();
        md.push_str(&format!(
            "{}. {} — {} ({}) — {}{trust}\n",
            s.n,
            code(&s.source_path),
            english_name(&s.language),
            s.language,
            escape(&s.title)
        ));
    }

    md.push_str("\n## Articles\n");
    for a in &outcome.articles {
        let n = sources
            .iter()
            .find(|s| s.id == a.id)
            .map(|s| format!("[{}] ", s.n))
            .unwrap_or_default();
        md.push_str(&format!("\n### {n}{}\n\n", escape(&a.title_en)));
        md.push_str(&format!(
            "{} ({}) · {} · translated by {} · [English translation](articles/{}.md)\n\n",
            english_name(&a.language),
            a.language,
            code(&a.source_path),
            a.translator,
            page_link(&a.id)
        ));
        match &a.summary {
            Some(s) => md.push_str(&escape(s)),
            None => md.push_str("*No summary (see the notes and Not included).*"),
        }
        if a.summary.is_some() && a.summary_low_confidence {
            md.push_str(&format!(
                " {LOW_MARK} *This summary rests on low-confidence sentences of the translation: verify before use.*"
            ));
        }
        for (j, flag) in a.flags.iter().enumerate() {
            let key = format!("{}-{}", a.id, j + 1);
            md.push_str(&format!("[^{key}]"));
            footnotes.push((key, escape(&flag.message)));
        }
        md.push('\n');
    }

    if !outcome.failures.is_empty() {
        md.push_str("\n## Not included\n\n");
        for f in &outcome.failures {
            md.push_str(&format!(
                "- {} ({}): {}\n",
                code(&f.source_path),
                f.stage,
                escape(&f.error)
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

/// An article id as a link target: percent-encoded where a file name's characters would end
/// or break the link.
pub(super) fn page_link(id: &str) -> String {
    id.chars()
        .map(|c| match c {
            ' ' | '(' | ')' | '<' | '>' | '[' | ']' | '%' | '#' | '?' => {
                format!("%{:02X}", c as u32)
            }
            _ => c.to_string(),
        })
        .collect()
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
                format!("{} [{}]{place}", escape(&c.value), c.source)
            })
            .collect();
        out.push_str(&format!(
            "- {}: {}\n",
            escape(&d.subject),
            claims.join("; ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn untrusted_text_shows_as_text() {
        assert_eq!(
            escape("<img src=x onerror=alert(1)> **bold** [link](x) &amp; AT&T"),
            "&lt;img src=x onerror=alert(1)&gt; \\*\\*bold\\*\\* \\[link\\](x) &amp;amp; AT&T"
        );
        assert_eq!(escape("# not a heading"), "\\# not a heading");
        assert_eq!(
            escape("Shares rose 4% [1][2]. See [x]"),
            "Shares rose 4% [1][2]. See \\[x\\]"
        );
        assert_eq!(code(std::path::Path::new("a`b.txt")), "`` a`b.txt ``");
        assert_eq!(page_link("x (1)"), "x%20%281%29");
    }
}
