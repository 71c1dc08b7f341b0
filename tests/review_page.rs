//! The review page (`brief.html`) of a run whose article text is hostile: markup in titles,
//! paragraphs, translations, summaries, the brief and the differences table shows as text,
//! runs nothing and loads nothing, checked in headless Chromium. The outcome is built here
//! (no model is needed to render a page); the golden test checks the real sample run's page
//! the same way.

mod common;

use std::path::PathBuf;

use crossbrief::domain::{
    ArticleOutcome, BriefSentence, Claim, Difference, Flag, FlagKind, InputSet, Removal,
    RunOutcome, TranslatedSentence,
};
use crossbrief::output::{self, DecodingRecord, RunRecord};

const SCRIPT: &str = "<script>alert('article')</script>";
const CLOSER: &str = "</td></tr></table></div><img src=x onerror=alert(2)>";
const STYLE: &str = "<style>body{display:none}</style>";
/// Closes an attribute's quotes: titles go into `title` and `aria-label`.
const QUOTE: &str = "\" onmouseover=\"alert(3)\" x=\"";

fn sentence(
    unit: usize,
    source: &str,
    text: &str,
    low: bool,
    flags: Vec<Flag>,
) -> TranslatedSentence {
    TranslatedSentence {
        unit,
        source: source.into(),
        text: text.into(),
        confidence: if low { 0.12 } else { 0.91 },
        low_confidence: low,
        flags,
    }
}

fn hostile_outcome() -> RunOutcome {
    let flag = |message: &str| Flag {
        kind: FlagKind::Instructions,
        message: message.into(),
    };
    let article = |id: &str, language: &str, original: &str, english: &str| ArticleOutcome {
        id: id.into(),
        position: 0,
        source_path: PathBuf::from(format!("in/{id}.txt")),
        language: language.into(),
        language_confidence: 0.99,
        title: format!("Título {SCRIPT}"),
        title_detected: true,
        title_en: format!("Title {SCRIPT}{QUOTE}"),
        translation: format!("{english} More {QUOTE}."),
        summary: Some(format!("Summary {CLOSER} of it.")),
        translator: "test".into(),
        source_paragraphs: 1,
        translation_paragraphs: 1,
        flags: vec![flag(&format!("flag {STYLE}"))],
        retried_chunks: 0,
        sentences: vec![
            sentence(
                0,
                &format!("Título {SCRIPT}"),
                &format!("Title {SCRIPT}"),
                false,
                vec![],
            ),
            sentence(
                1,
                original,
                english,
                true,
                vec![flag(&format!("why {CLOSER}"))],
            ),
            // Flagged, not low: underlined rather than highlighted.
            sentence(
                1,
                "Mais.",
                &format!("More {QUOTE}."),
                false,
                vec![flag(&format!("flag {QUOTE}"))],
            ),
        ],
        calibrated: true,
        summary_low_confidence: true,
        original: format!("Título {SCRIPT}\n{original} Mais."),
        removed: vec![Removal::Boilerplate {
            rule: "footer".into(),
            text: format!("Assine {SCRIPT}"),
        }],
    };
    let pt = article(
        "a <b>",
        "pt",
        &format!("Subiu 5% {CLOSER}."),
        &format!("It rose 5% {CLOSER}."),
    );
    let ar = article(
        "ar-1",
        "ar",
        &format!("ارتفع 7% {SCRIPT}."),
        &format!("It rose 7% {SCRIPT}."),
    );
    RunOutcome {
        articles: vec![pt, ar],
        failures: vec![],
        skipped: vec![],
        brief: Some(format!(
            "Shares rose {SCRIPT} [1]. Others said 7% {CLOSER} [2]."
        )),
        brief_sentences: vec![
            BriefSentence {
                text: format!("Shares rose {SCRIPT} [1]."),
                sources: vec![1],
                low_confidence: true,
            },
            BriefSentence {
                text: format!("Others said 7% {CLOSER} [2]."),
                sources: vec![2],
                low_confidence: false,
            },
        ],
        brief_flags: vec![],
        differences: vec![Difference {
            subject: format!("shares {STYLE}"),
            claims: vec![
                Claim {
                    source: 1,
                    value: "5%".into(),
                    in_headline: false,
                    context: format!("It rose 5% {CLOSER}"),
                },
                Claim {
                    source: 2,
                    value: "7%".into(),
                    in_headline: false,
                    context: format!("It rose 7% {SCRIPT}"),
                },
            ],
        }],
        stages: vec![],
        inputs: InputSet::default(),
    }
}

fn record() -> RunRecord {
    RunRecord {
        crossbrief_version: "test".into(),
        profile: "default".into(),
        device: "cpu".into(),
        kernel_class: "test".into(),
        models: vec![],
        decoding: DecodingRecord {
            temperature: None,
            top_p: None,
            seed: None,
            beam: None,
            batch_rows: None,
            batch_tokens: None,
            shortlist: None,
            consensus: "low".into(),
        },
        stages: vec![],
        total_wall_s: 1.0,
        peak_memory_mb: None,
        generation: "0-0".into(),
        shard: None,
        merged_shards: vec![],
        inputs: InputSet::default(),
        store: None,
    }
}

#[test]
fn hostile_article_text_shows_as_text_and_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let reports = output::render_reports(&hostile_outcome(), record()).unwrap();
    output::write_generation(dir.path(), &reports).unwrap();
    let page = std::fs::read_to_string(dir.path().join("brief.html")).unwrap();
    for raw in [SCRIPT, CLOSER, STYLE, QUOTE, "<b>"] {
        assert!(!page.contains(raw), "{raw} reached the page unescaped");
    }
    // The page's own script and style are its only elements of the kind, allowed by hash.
    assert_eq!(page.matches("<script").count(), 1);
    assert_eq!(page.matches("<style").count(), 1);
    assert!(!page.contains("<img") && !page.contains("<b>"));
    assert!(page.contains("default-src 'none'"));
    // Ids come from the article id, unit and place, whatever the id's characters.
    for id in [
        "article-a.20..3c.b.3e.",
        "article-a.20..3c.b.3e.-u1-s2",
        "article-ar.2d.1-u0",
    ] {
        assert!(page.contains(&format!("id=\"{id}\"")), "no id {id}");
    }

    let Some(found) = common::browser_check(
        "hostile_article_text_shows_as_text_and_runs_nothing",
        &dir.path().join("brief.html"),
        &dir.path().join("brief.json"),
        &common::artefact("review-page/hostile.png"),
        &[SCRIPT, CLOSER, STYLE, QUOTE, "a <b>"],
    ) else {
        return;
    };
    // Both articles' marked sentences and the RTL section were found (not a vacuous pass).
    assert_eq!(found["low"], 2, "{found}");
    assert_eq!(found["flagged"], 2, "{found}");
    assert_eq!(found["differences"], 2, "{found}");
    assert_eq!(found["rtl"], serde_json::json!(["ar-1"]), "{found}");
    assert_eq!(found["citations"], 2, "{found}");
}
