//! `brief.html`: the analyst's review page. One self-contained file (inline style and
//! script, no request of any kind): the brief with live citations, where sources differ,
//! the sources, and each article's original and English side by side, paragraph by
//! paragraph, with its low-confidence and flagged sentences marked where they stand.
//!
//! Every piece of article or model text goes through [`escape`], and the page's
//! Content-Security-Policy allows only its own style and script (by hash) and no network,
//! so text that slipped through would still run nothing. Ids are derived from article ids,
//! units and sentence positions, so a link to a sentence survives a re-run.

use std::collections::BTreeMap;

use base64::Engine as _;
use sha2::{Digest, Sha256};

use super::markdown::{page_link, reliability};
use super::{brief_paragraphs, Report, ReportView, RunRecord, SourceEntry};
use crate::domain::{ArticleOutcome, Claim, Flag, Removal, RunOutcome, TranslatedSentence};
use crate::error::Result;
use crate::language::{english_name, pack};
use crate::stages::brief::cite::citation_groups;

const STYLE: &str = include_str!("review.css");
const SCRIPT: &str = include_str!("review.js");

/// `brief.html`.
pub struct Html;

impl Report for Html {
    fn file_name(&self) -> &'static str {
        "brief.html"
    }

    fn render(&self, view: &ReportView) -> Result<String> {
        Ok(page(view))
    }
}

/// Untrusted text as HTML text content or a quoted attribute value: the five characters HTML
/// gives meaning to become entities, and control characters are spelled out, as are the
/// bidirectional embeddings, overrides and isolates, which could reverse the text after them.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => {
                out.push_str(&c.escape_unicode().to_string())
            }
            c if c.is_control() && c != '\n' && c != '\t' => {
                out.push_str(&c.escape_unicode().to_string())
            }
            c => out.push(c),
        }
    }
    out
}

/// An article id as a fragment-safe id: ASCII letters, digits and `_` kept, anything else
/// (`-` included, which the page's ids use as a separator) spelled `.<hex>.`, so two article
/// ids never give the same slug and the same id always gives the same. Every id of an
/// article's section starts `article-<slug>-`, so no two articles' ids meet either.
pub fn slug(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c.to_string()
            } else {
                format!(".{:x}.", c as u32)
            }
        })
        .collect()
}

fn csp_hash(text: &str) -> String {
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(text.as_bytes()))
    )
}

/// Where things are on the page: each source's number and section, each sentence's id.
struct Anchors<'a> {
    /// Source number → (article, its section id).
    sources: BTreeMap<usize, (&'a ArticleOutcome, String)>,
    /// Article id → its source number.
    numbers: BTreeMap<&'a str, usize>,
    /// Article id → its sentences with their ids.
    sentences: BTreeMap<&'a str, Vec<(String, &'a TranslatedSentence)>>,
}

impl<'a> Anchors<'a> {
    fn new(outcome: &'a RunOutcome, sources: &[SourceEntry]) -> Self {
        let sources: BTreeMap<usize, (&ArticleOutcome, String)> = sources
            .iter()
            .filter_map(|s| {
                let a = outcome.articles.iter().find(|a| a.id == s.id)?;
                Some((s.n, (a, section_id(a))))
            })
            .collect();
        Anchors {
            numbers: sources
                .iter()
                .map(|(n, (a, _))| (a.id.as_str(), *n))
                .collect(),
            sentences: outcome
                .articles
                .iter()
                .map(|a| (a.id.as_str(), numbered(a)))
                .collect(),
            sources,
        }
    }

    /// The id of the sentence of source `n` that a claim comes from: the one holding its
    /// clause (in the headline or the body, as the claim says), else its value; for an
    /// untranslated source, the paragraph holding the clause; else the source's section.
    fn sentence_of(&self, n: usize, claim: &Claim) -> Option<String> {
        let (a, section) = self.sources.get(&n)?;
        let own = &self.sentences[a.id.as_str()];
        // Without a detected title the "headline" is the body's first sentence, so any
        // sentence may hold a headline claim.
        let in_place =
            |s: &TranslatedSentence| !a.title_detected || claim.in_headline == (s.unit == 0);
        let holding = |text: &str| {
            own.iter()
                .find(|(_, s)| in_place(s) && s.text.contains(text))
                .map(|(id, _)| id.clone())
        };
        let paragraph = || {
            let offset = usize::from(a.title_detected);
            a.translation
                .split("\n\n")
                .position(|p| p.contains(&claim.context))
                .map(|p| format!("{section}-u{}", p + offset))
        };
        Some(
            holding(&claim.context)
                .or_else(|| holding(&claim.value))
                .or_else(|| own.is_empty().then(paragraph).flatten())
                .unwrap_or_else(|| section.clone()),
        )
    }
}

fn section_id(a: &ArticleOutcome) -> String {
    format!("article-{}", slug(&a.id))
}

/// An article's sentences with their ids: `article-<slug>-u<unit>-s<k>`, k counting from 1
/// within the unit.
fn numbered(a: &ArticleOutcome) -> Vec<(String, &TranslatedSentence)> {
    let section = section_id(a);
    let mut counts: BTreeMap<usize, usize> = BTreeMap::new();
    a.sentences
        .iter()
        .map(|s| {
            let k = counts.entry(s.unit).or_default();
            *k += 1;
            (format!("{section}-u{}-s{k}", s.unit), s)
        })
        .collect()
}

fn page(view: &ReportView) -> String {
    let outcome = view.outcome;
    let anchors = Anchors::new(outcome, &view.sources);
    let low: usize = outcome
        .articles
        .iter()
        .map(|a| a.sentences.iter().filter(|s| s.low_confidence).count())
        .sum();
    let flagged: usize = outcome
        .articles
        .iter()
        .map(|a| a.sentences.iter().filter(|s| is_flagged(s)).count())
        .sum();
    let mut html = format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src {}; script-src {}; base-uri 'none'; form-action 'none'\">\n\
         <meta name=\"generator\" content=\"crossbrief {}\">\n\
         <title>News brief · {} sources · crossbrief</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        csp_hash(STYLE),
        csp_hash(SCRIPT),
        escape(&view.run.crossbrief_version),
        view.sources.len()
    );
    html.push_str(
        "<a class=\"skip\" href=\"#brief\">Skip to the brief</a>\n<header>\n<h1>News brief</h1>\n",
    );
    html.push_str(&format!(
        "<p class=\"muted\">{} sources · {} articles read · {low} low-confidence and {flagged} flagged sentences · {} not included · generation {}</p>\n",
        view.sources.len(),
        outcome.articles.len(),
        outcome.failures.len() + outcome.skipped.len(),
        escape(&view.run.generation)
    ));
    html.push_str(
        "<p class=\"legend\"><span class=\"legend-low\">Highlighted</span>: low confidence, verify against the source before use. \
         <span class=\"legend-flagged\">Underlined</span>: a check found something; focus or hover for the reason. \
         <span class=\"keys\">Keys: <kbd>j</kbd> / <kbd>k</kbd> next / previous marked sentence.</span></p>\n",
    );
    html.push_str("<nav aria-label=\"Contents\"><ul><li><a href=\"#brief\">Brief</a></li><li><a href=\"#differences\">Where sources differ</a></li><li><a href=\"#sources\">Sources</a></li>");
    for a in &outcome.articles {
        let label = match anchors.numbers.get(a.id.as_str()) {
            Some(n) => format!("[{n}] {}", english_name(&a.language)),
            None => a.id.clone(),
        };
        html.push_str(&format!(
            "<li><a href=\"#{}\" title=\"{}\">{}</a></li>",
            section_id(a),
            escape(&a.title_en),
            escape(&label)
        ));
    }
    if !outcome.failures.is_empty() || !outcome.skipped.is_empty() {
        html.push_str("<li><a href=\"#not-included\">Not included</a></li>");
    }
    html.push_str("<li><a href=\"#run\">Run record</a></li></ul></nav>\n</header>\n<main>\n");
    html.push_str(&brief_section(view, &anchors));
    html.push_str(&differences_section(outcome, &anchors));
    html.push_str(&sources_section(&view.sources, &anchors));
    html.push_str("<section id=\"articles\" aria-labelledby=\"articles-h\"><h2 id=\"articles-h\">Articles, original and English</h2>\n");
    for a in &outcome.articles {
        html.push_str(&article_section(a, &anchors));
    }
    html.push_str("</section>\n");
    html.push_str(&not_included_section(outcome));
    html.push_str(&run_section(&view.run));
    html.push_str(&format!(
        "</main>\n<script>{SCRIPT}</script>\n</body>\n</html>\n"
    ));
    html
}

fn is_flagged(s: &TranslatedSentence) -> bool {
    !s.low_confidence && !s.flags.is_empty()
}

/// Text with its citation groups as links to their sources' sections.
fn with_citations(text: &str, anchors: &Anchors) -> String {
    let mut out = String::new();
    let mut at = 0;
    for (range, numbers) in citation_groups(text) {
        out.push_str(&escape(&text[at..range.start]));
        let links: Vec<String> = numbers
            .iter()
            .map(|n| match anchors.sources.get(n) {
                Some((a, section)) => format!(
                    "<a class=\"cite\" href=\"#{section}\" aria-label=\"source {n}: {}\">{n}</a>",
                    escape(&a.title_en)
                ),
                None => format!("<span class=\"cite-missing\">{n}</span>"),
            })
            .collect();
        out.push_str(&format!("[{}]", links.join(", ")));
        at = range.end;
    }
    out.push_str(&escape(&text[at..]));
    out
}

/// A sentence as a span: marked and focusable, with its reason beside it, when it is low
/// confidence or flagged.
fn sentence_span(id: &str, text_html: &str, low: bool, flagged: bool, why: &str) -> String {
    if !low && !flagged {
        return format!("<span class=\"s\" id=\"{id}\">{text_html}</span>");
    }
    let class = if low { "low" } else { "flagged" };
    format!(
        "<span class=\"s {class}\" id=\"{id}\" tabindex=\"0\" aria-describedby=\"{id}-why\">{text_html}</span><span class=\"why\" id=\"{id}-why\">{}</span>",
        escape(why)
    )
}

fn brief_section(view: &ReportView, anchors: &Anchors) -> String {
    let outcome = view.outcome;
    let mut html =
        String::from("<section id=\"brief\" class=\"brief\" aria-labelledby=\"brief-h\"><h2 id=\"brief-h\">Brief</h2>\n");
    match &outcome.brief {
        Some(_) => {
            let mut i = 0;
            for paragraph in brief_paragraphs(outcome) {
                let spans: Vec<String> = paragraph
                    .into_iter()
                    .map(|(s, entry)| {
                        i += 1;
                        let low = entry.is_some_and(|e| e.low_confidence);
                        let cited: String = entry
                            .map(|e| e.sources.iter().map(|n| format!("[{n}]")).collect())
                            .unwrap_or_default();
                        let why = format!(
                            "rests on a low-confidence translated sentence of {}: verify it there",
                            if cited.is_empty() { "a source" } else { &cited }
                        );
                        sentence_span(
                            &format!("brief-s{i}"),
                            &with_citations(&s, anchors),
                            low,
                            false,
                            &why,
                        )
                    })
                    .collect();
                html.push_str(&format!("<p>{}</p>\n", spans.join(" ")));
            }
        }
        None => html.push_str(&format!(
            "<p class=\"muted\">{}</p>\n",
            match &view.run.shard {
                Some(shard) => format!("Shard {} of a run: its articles are below; crossbrief merge writes the brief over every shard.", escape(shard)),
                None => "No brief could be written: no article has a summary (see Not included).".to_string(),
            }
        )),
    }
    html.push_str(&flag_list(&outcome.brief_flags));
    html.push_str("</section>\n");
    html
}

/// Flags as a list, each with its kind (nothing when there are none).
fn flag_list(flags: &[Flag]) -> String {
    if flags.is_empty() {
        return String::new();
    }
    let items: String = flags
        .iter()
        .map(|f| format!("<li>{} {}</li>\n", kind(&f.kind), escape(&f.message)))
        .collect();
    format!("<ul class=\"flags\">\n{items}</ul>\n")
}

fn kind(kind: &impl serde::Serialize) -> String {
    let name = serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    format!(
        "<span class=\"kind\">{}</span>",
        escape(&name.replace('_', " "))
    )
}

fn differences_section(outcome: &RunOutcome, anchors: &Anchors) -> String {
    let mut html = String::from("<section id=\"differences\" aria-labelledby=\"differences-h\"><h2 id=\"differences-h\">Where sources differ</h2>\n");
    if outcome.differences.is_empty() {
        html.push_str("<p>No source gives a figure that another contradicts.</p>\n</section>\n");
        return html;
    }
    html.push_str("<table><thead><tr><th scope=\"col\">Fact</th><th scope=\"col\">Source</th><th scope=\"col\">Value</th><th scope=\"col\">Where it says so</th></tr></thead><tbody>\n");
    for d in &outcome.differences {
        for (i, c) in d.claims.iter().enumerate() {
            html.push_str("<tr>");
            if i == 0 {
                html.push_str(&format!(
                    "<th scope=\"row\" rowspan=\"{}\">{}</th>",
                    d.claims.len(),
                    escape(&d.subject)
                ));
            }
            let source = match anchors.sources.get(&c.source) {
                Some((_, section)) => {
                    format!("<a class=\"cite\" href=\"#{section}\">[{}]</a>", c.source)
                }
                None => format!("[{}]", c.source),
            };
            let place = if c.in_headline { "headline: " } else { "" };
            let context = match anchors.sentence_of(c.source, c) {
                Some(id) => format!("{place}<a href=\"#{id}\">{}</a>", escape(&c.context)),
                None => format!("{place}{}", escape(&c.context)),
            };
            html.push_str(&format!(
                "<td>{source}</td><td>{}</td><td>{context}</td></tr>\n",
                escape(&c.value)
            ));
        }
    }
    html.push_str("</tbody></table>\n</section>\n");
    html
}

/// A bar of every sentence's confidence in reading order (taller is surer; low ones in
/// amber), for a glance at where a source is weak.
fn confidence_bar(a: &ArticleOutcome) -> String {
    let n = a.sentences.len();
    if n == 0 {
        return String::new();
    }
    let (width, height) = (240.0, 24.0);
    let step = width / n as f64;
    let low = a.sentences.iter().filter(|s| s.low_confidence).count();
    let mut sorted: Vec<f64> = a.sentences.iter().map(|s| s.confidence).collect();
    sorted.sort_by(f64::total_cmp);
    let label = format!(
        "confidence of {n} sentences in reading order: {low} low, median {:.2}",
        sorted[n / 2]
    );
    let mut svg = format!(
        "<svg class=\"confidence\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"{label}\"><title>{label}</title><rect width=\"{width}\" height=\"{height}\" fill=\"#f3f3f3\"/>"
    );
    for (i, s) in a.sentences.iter().enumerate() {
        let h = 3.0 + (height - 3.0) * s.confidence.clamp(0.0, 1.0);
        svg.push_str(&format!(
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"{}\"/>",
            i as f64 * step,
            height - h,
            (step - if step > 3.0 { 1.0 } else { 0.0 }).max(0.5),
            if s.low_confidence {
                "#b45309"
            } else {
                "#1d4ed8"
            }
        ));
    }
    svg.push_str("</svg>");
    svg
}

fn sources_section(sources: &[SourceEntry], anchors: &Anchors) -> String {
    let mut html = String::from("<section id=\"sources\" aria-labelledby=\"sources-h\"><h2 id=\"sources-h\">Sources</h2>\n<ol>\n");
    for s in sources {
        let Some((a, section)) = anchors.sources.get(&s.n) else {
            continue;
        };
        html.push_str(&format!(
            "<li id=\"source-{}\"><a href=\"#{section}\">{}</a> (<bdi lang=\"{}\">{}</bdi>)<br><span class=\"meta\">{} · <code>{}</code> · {}</span>{}</li>\n",
            s.n,
            escape(&s.title_en),
            escape(&s.language),
            escape(&s.title),
            escape(&english_name(&s.language)),
            escape(&s.source_path.display().to_string()),
            escape(&reliability(a)),
            confidence_bar(a)
        ));
    }
    html.push_str("</ol>\n</section>\n");
    html
}

/// Whether text in `code` runs right to left (its language pack says so).
fn right_to_left(code: &str) -> bool {
    pack(code).is_some_and(|p| p.right_to_left)
}

/// The original paragraph with the source sentences of marked translations marked too,
/// where they can be found in it.
fn original_html(paragraph: &str, marked: &[(&str, &str, &str)]) -> String {
    let mut out = String::new();
    let mut at = 0;
    for (source, class, id) in marked {
        let Some(offset) = paragraph[at..].find(source).filter(|_| !source.is_empty()) else {
            continue;
        };
        let start = at + offset;
        out.push_str(&escape(&paragraph[at..start]));
        out.push_str(&format!(
            "<span class=\"src {class}\" data-for=\"{id}\">{}</span>",
            escape(source)
        ));
        at = start + source.len();
    }
    out.push_str(&escape(&paragraph[at..]));
    out
}

fn reason(s: &TranslatedSentence) -> String {
    let mut why = format!("confidence {:.2}", s.confidence);
    if s.low_confidence {
        why.push_str(", below the model's threshold");
    }
    let flags: Vec<&str> = s.flags.iter().map(|f| f.message.as_str()).collect();
    if !flags.is_empty() {
        why.push_str(": ");
        why.push_str(&flags.join("; "));
    }
    why
}

fn article_section(a: &ArticleOutcome, anchors: &Anchors) -> String {
    let section = section_id(a);
    let lang_attr = escape(&a.language);
    let dir = if right_to_left(&a.language) {
        "rtl"
    } else {
        "ltr"
    };
    let number = anchors
        .numbers
        .get(a.id.as_str())
        .map(|n| format!("[{n}] "))
        .unwrap_or_default();
    let mut html = format!(
        "<section class=\"article\" id=\"{section}\" aria-labelledby=\"{section}-h\">\n<h3 id=\"{section}-h\">{number}{}</h3>\n",
        escape(&a.title_en)
    );
    html.push_str(&format!(
        "<p class=\"meta\">{} ({lang_attr}) · <code>{}</code> · translated by {} · <a href=\"articles/{}.md\">translation page</a></p>\n",
        escape(&english_name(&a.language)),
        escape(&a.source_path.display().to_string()),
        escape(&a.translator),
        escape(&page_link(&a.id))
    ));
    if !a.sentences.is_empty() {
        html.push_str(&format!(
            "<p class=\"meta\">{} {}</p>\n",
            escape(&reliability(a)),
            confidence_bar(a)
        ));
    }
    html.push_str("<h4>Summary</h4>\n");
    match &a.summary {
        Some(summary) if a.summary_low_confidence => html.push_str(&format!(
            "<p>{}</p>\n",
            sentence_span(
                &format!("{section}-summary"),
                &escape(summary),
                true,
                false,
                "this summary rests on low-confidence sentences of the translation: verify before use"
            )
        )),
        Some(summary) => html.push_str(&format!(
            "<p id=\"{section}-summary\">{}</p>\n",
            escape(summary)
        )),
        None => html.push_str("<p class=\"muted\">No summary (see the flags and Not included).</p>\n"),
    }
    if !a.flags.is_empty() {
        html.push_str("<h4>What the checks found</h4>\n");
        html.push_str(&flag_list(&a.flags));
    }
    html.push_str(&pairs_table(
        a,
        &anchors.sentences[a.id.as_str()],
        &section,
        &lang_attr,
        dir,
    ));
    html.push_str(&removed_fold(&a.removed, &lang_attr));
    html.push_str("</section>\n");
    html
}

/// Original and English side by side, one row per unit (the title, then each paragraph).
/// `lang_attr` is the language code, escaped.
fn pairs_table(
    a: &ArticleOutcome,
    ids: &[(String, &TranslatedSentence)],
    section: &str,
    lang_attr: &str,
    dir: &str,
) -> String {
    let originals: Vec<&str> = a.original.split('\n').collect();
    let offset = usize::from(a.title_detected);
    let english: Vec<&str> = a.translation.split("\n\n").collect();
    let units = originals.len().max(english.len() + offset);
    let mut html = format!(
        "<table class=\"pairs\"><thead><tr><th scope=\"col\">Original ({})</th><th scope=\"col\">English</th></tr></thead><tbody>\n",
        escape(&english_name(&a.language))
    );
    for unit in 0..units {
        let own: Vec<&(String, &TranslatedSentence)> =
            ids.iter().filter(|(_, s)| s.unit == unit).collect();
        let marked: Vec<(&str, &str, &str)> = own
            .iter()
            .filter(|(_, s)| s.low_confidence || is_flagged(s))
            .map(|(id, s)| {
                (
                    s.source.as_str(),
                    if s.low_confidence { "low" } else { "flagged" },
                    id.as_str(),
                )
            })
            .collect();
        let original = originals
            .get(unit)
            .map_or(String::new(), |p| original_html(p, &marked));
        let english_html = if own.is_empty() {
            // An English source, or a unit without sentences: the paragraph as it stands.
            let text = if a.title_detected && unit == 0 {
                a.title_en.as_str()
            } else {
                english
                    .get(unit.wrapping_sub(offset))
                    .copied()
                    .unwrap_or("")
            };
            escape(text)
        } else {
            own.iter()
                .map(|(id, s)| {
                    sentence_span(
                        id,
                        &escape(&s.text),
                        s.low_confidence,
                        is_flagged(s),
                        &reason(s),
                    )
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        let title = if a.title_detected && unit == 0 {
            " class=\"title\""
        } else {
            ""
        };
        html.push_str(&format!(
            "<tr id=\"{section}-u{unit}\"{title}><td class=\"orig\" lang=\"{lang_attr}\" dir=\"{dir}\">{original}</td><td class=\"en\" lang=\"en\" dir=\"ltr\">{english_html}</td></tr>\n"
        ));
    }
    html.push_str("</tbody></table>\n");
    html
}

/// `lang_attr` is the article's language code, escaped.
fn removed_fold(removed: &[Removal], lang_attr: &str) -> String {
    if removed.is_empty() {
        return String::new();
    }
    let mut html = format!(
        "<details class=\"removed\"><summary>What cleaning removed ({} block{})</summary><ul>\n",
        removed.len(),
        if removed.len() == 1 { "" } else { "s" }
    );
    for r in removed {
        let (what, text) = match r {
            Removal::RepeatedBlock { text } => ("repeated block".to_string(), text.clone()),
            Removal::Boilerplate { rule, text } => (format!("boilerplate ({rule})"), text.clone()),
            Removal::NotText { text, chars } => {
                (format!("not text, {chars} characters"), format!("{text}…"))
            }
        };
        html.push_str(&format!(
            "<li><span class=\"kind\">{}</span> <span lang=\"{lang_attr}\" dir=\"auto\">{}</span></li>\n",
            escape(&what),
            escape(&text)
        ));
    }
    html.push_str("</ul></details>\n");
    html
}

fn not_included_section(outcome: &RunOutcome) -> String {
    if outcome.failures.is_empty() && outcome.skipped.is_empty() {
        return String::new();
    }
    let mut html = String::from("<section id=\"not-included\" aria-labelledby=\"not-included-h\"><h2 id=\"not-included-h\">Not included</h2>\n<ul class=\"failures\">\n");
    for f in &outcome.failures {
        html.push_str(&format!(
            "<li><code>{}</code> ({}): {}</li>\n",
            escape(&f.source_path.display().to_string()),
            escape(&f.stage),
            escape(&f.error)
        ));
    }
    for s in &outcome.skipped {
        html.push_str(&format!(
            "<li><code>{}</code> (skipped): {}</li>\n",
            escape(&s.path.display().to_string()),
            escape(&s.reason)
        ));
    }
    html.push_str("</ul>\n</section>\n");
    html
}

fn run_section(run: &RunRecord) -> String {
    let mut html = String::from("<section id=\"run\" class=\"run\" aria-labelledby=\"run-h\"><h2 id=\"run-h\">Run record</h2>\n<details><summary>Models, device and stage times</summary>\n");
    html.push_str(&format!(
        "<p>crossbrief {} · profile {} · device {} · kernels {} · {:.1} s in all · peak memory {} · generation {}{}</p>\n",
        escape(&run.crossbrief_version),
        escape(&run.profile),
        escape(&run.device),
        escape(&run.kernel_class),
        run.total_wall_s,
        run.peak_memory_mb.map_or("unknown".to_string(), |m| format!("{m:.0} MiB")),
        escape(&run.generation),
        run.shard.as_ref().map(|s| format!(" · shard {}", escape(s))).unwrap_or_default()
    ));
    html.push_str("<h3>Models</h3>\n<table><thead><tr><th scope=\"col\">Model</th><th scope=\"col\">File</th><th scope=\"col\">sha256</th><th scope=\"col\">From</th></tr></thead><tbody>\n");
    for m in &run.models {
        for f in &m.files {
            html.push_str(&format!(
                "<tr><td>{} <span class=\"muted\">({}@{})</span></td><td>{}</td><td><code>{}</code>{}</td><td>{}</td></tr>\n",
                escape(&m.name),
                escape(&m.hub.repo),
                escape(&m.hub.revision),
                escape(&f.name),
                escape(&f.sha256),
                if f.pinned { " (pinned, verified)" } else { " (recorded, not pinned)" },
                kind(&f.origin)
            ));
        }
    }
    html.push_str("</tbody></table>\n<h3>Stages</h3>\n<table><thead><tr><th scope=\"col\">Stage</th><th scope=\"col\">Items</th><th scope=\"col\">Wall s</th><th scope=\"col\">Prefill tok/s</th><th scope=\"col\">Decode tok/s</th><th scope=\"col\">Largest batch</th><th scope=\"col\">Draft tokens kept</th></tr></thead><tbody>\n");
    for s in &run.stages {
        let drafts_kept = if s.draft_tokens > 0 {
            format!("{} of {}", s.accepted_draft_tokens, s.draft_tokens)
        } else {
            String::new()
        };
        html.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{:.1}</td><td>{:.0}</td><td>{:.1}</td><td>{}</td><td>{}</td></tr>\n",
            escape(&s.name),
            s.items,
            s.wall_s,
            s.prefill_tokens_per_s,
            s.decode_tokens_per_s,
            s.largest_batch,
            drafts_kept
        ));
    }
    html.push_str("</tbody></table>\n</details>\n</section>\n");
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_text_is_escaped_and_ids_are_fragment_safe() {
        assert_eq!(
            escape("<script>alert('x')</script> & \"q\"\u{1b}"),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;\\u{1b}"
        );
        assert_eq!(slug("000_4dba"), "000_4dba");
        assert_eq!(slug("a b#c-d"), "a.20.b.23.c.2d.d");
        assert_ne!(slug("a.20."), slug("a "));
    }

    #[test]
    fn a_claim_links_to_the_sentence_that_gives_it() {
        let sentence = |unit: usize, text: &str| TranslatedSentence {
            unit,
            source: String::new(),
            text: text.into(),
            confidence: 0.9,
            low_confidence: false,
            flags: Vec::new(),
        };
        let article = |id: &str, title_detected: bool| ArticleOutcome {
            id: id.into(),
            position: 0,
            source_path: format!("{id}.txt").into(),
            language: "pt".into(),
            language_confidence: 1.0,
            title: String::new(),
            title_detected,
            title_en: "Shares rose 5%".into(),
            translation: String::new(),
            summary: Some("S.".into()),
            translator: String::new(),
            source_paragraphs: 1,
            translation_paragraphs: 1,
            flags: Vec::new(),
            retried_chunks: 0,
            sentences: vec![
                sentence(0, "Shares rose 5%"),
                sentence(1, "Shares rose 5% on Monday."),
            ],
            calibrated: true,
            summary_low_confidence: false,
            original: String::new(),
            removed: Vec::new(),
        };
        let outcome = RunOutcome {
            articles: vec![article("titled", true), article("untitled", false)],
            failures: Vec::new(),
            skipped: Vec::new(),
            brief: None,
            brief_sentences: Vec::new(),
            brief_flags: Vec::new(),
            differences: Vec::new(),
            stages: Vec::new(),
            inputs: Default::default(),
        };
        let sources = super::super::sources(&outcome.articles);
        let anchors = Anchors::new(&outcome, &sources);
        let claim = |source: usize, in_headline: bool| Claim {
            source,
            value: "5%".into(),
            in_headline,
            context: "Shares rose 5%".into(),
        };
        // A titled source: the headline's claim is its title, the body's its body sentence.
        assert_eq!(
            anchors.sentence_of(1, &claim(1, true)).unwrap(),
            "article-titled-u0-s1"
        );
        assert_eq!(
            anchors.sentence_of(1, &claim(1, false)).unwrap(),
            "article-titled-u1-s1"
        );
        // An untitled one: its "headline" is a body sentence, which the link finds.
        assert_eq!(
            anchors.sentence_of(2, &claim(2, true)).unwrap(),
            "article-untitled-u0-s1"
        );
    }

    #[test]
    fn a_marked_source_sentence_is_marked_in_the_original() {
        let html = original_html("Um. Dois <b>. Três.", &[("Dois <b>.", "low", "x-u1-s2")]);
        assert_eq!(
            html,
            "Um. <span class=\"src low\" data-for=\"x-u1-s2\">Dois &lt;b&gt;.</span> Três."
        );
    }
}
