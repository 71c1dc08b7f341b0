//! Cleaning scraped article text: Unicode NFC, whitespace, repeated blocks (pages that hold
//! the body twice), publisher boilerplate from per-language rule files, and the title.

use std::collections::HashSet;
use std::path::Path;

use regex::Regex;
use serde::Deserialize;
use unicode_normalization::UnicodeNormalization;

use crate::domain::{Cleaned, Format, Removal};
use crate::error::{Error, Result};
use crate::language::sentences::ends_sentence;
use crate::resources::Resources;

/// A repeated paragraph shorter than this is kept (short labels such as a quote's
/// attribution may legitimately repeat); longer ones are the duplicated body.
const MIN_REPEAT_CHARS: usize = 40;
/// A title is a single short line.
const MAX_TITLE_CHARS: usize = 200;
/// A run without spaces longer than this is no word of a spaced script (the longest
/// dictionary words run under 50 characters; long URLs under 200) but encoded data.
pub const MAX_WORD_CHARS: usize = 200;

/// One boilerplate rule: every paragraph its regex matches is dropped.
#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub regex: Regex,
}

#[derive(Deserialize)]
struct RuleFile {
    #[serde(default)]
    rule: Vec<RuleSpec>,
}

#[derive(Deserialize)]
struct RuleSpec {
    name: String,
    pattern: String,
}

/// Boilerplate rules: `common.toml` for every language plus `<lang>.toml`.
#[derive(Debug, Clone, Default)]
pub struct BoilerplateRules {
    common: Vec<Rule>,
    by_lang: Vec<(String, Vec<Rule>)>,
}

impl BoilerplateRules {
    /// Reads every `rules/boilerplate/*.toml` of `resources`.
    pub fn load(resources: &Resources) -> Result<Self> {
        let mut rules = BoilerplateRules::default();
        for file in resources.list("rules/boilerplate", "toml")? {
            let lang = file
                .relative
                .trim_start_matches("rules/boilerplate/")
                .trim_end_matches(".toml")
                .to_string();
            let parsed = Self::parse(&file.origin, &file.text)?;
            if lang == "common" {
                rules.common = parsed;
            } else {
                rules.by_lang.push((lang, parsed));
            }
        }
        Ok(rules)
    }

    fn parse(path: &Path, text: &str) -> Result<Vec<Rule>> {
        let file: RuleFile = toml::from_str(text).map_err(|e| Error::Config {
            path: path.to_path_buf(),
            problem: e.to_string(),
        })?;
        file.rule
            .into_iter()
            .map(|spec| {
                let regex = Regex::new(&spec.pattern).map_err(|e| Error::Config {
                    path: path.to_path_buf(),
                    problem: format!("rule {}: {e}", spec.name),
                })?;
                Ok(Rule {
                    name: spec.name,
                    regex,
                })
            })
            .collect()
    }

    /// The rules that apply to `lang`: common ones first.
    pub fn for_lang<'a>(&'a self, lang: &'a str) -> impl Iterator<Item = (&'a str, &'a Rule)> + 'a {
        let own = self
            .by_lang
            .iter()
            .filter(move |(l, _)| l == lang)
            .flat_map(|(l, rules)| rules.iter().map(move |r| (l.as_str(), r)));
        self.common.iter().map(|r| ("common", r)).chain(own)
    }
}

/// Terminal escape sequences (colours, window titles) pasted into a text: control codes, not
/// language.
static ANSI_ESCAPE: std::sync::LazyLock<Regex> = std::sync::LazyLock::new(|| {
    Regex::new(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")
        .expect("a valid pattern")
});

/// NFC, one kind of line break, no terminal escape sequences or invisible characters, single
/// spaces, trimmed lines.
pub fn normalize(text: &str) -> String {
    let text = ANSI_ESCAPE.replace_all(text, "");
    let nfc: String = text.nfc().collect();
    nfc.replace("\r\n", "\n")
        .replace('\r', "\n")
        .lines()
        .map(|line| {
            line.chars()
                .filter(|c| {
                    !matches!(
                        c,
                        '\u{200B}' | '\u{200C}' | '\u{200D}' | '\u{2060}' | '\u{FEFF}'
                    )
                })
                .map(|c| if c.is_whitespace() { ' ' } else { c })
                .collect::<String>()
                .split(' ')
                .filter(|w| !w.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Paragraphs of normalised text. Scraped text has one paragraph per line. Hard-wrapped
/// prose (Markdown, e-mail) has blocks separated by blank lines whose lines break mid-sentence;
/// there each block is one paragraph and its lines are joined.
pub fn split_paragraphs(text: &str) -> Vec<String> {
    let text = text.trim_matches('\n');
    let blocks: Vec<Vec<&str>> = text
        .split("\n\n")
        .map(|b| b.lines().filter(|l| !l.is_empty()).collect::<Vec<_>>())
        .filter(|b| !b.is_empty())
        .collect();
    // Lines that end a block's non-final line without closing punctuation were wrapped.
    let (mut inner, mut open) = (0, 0);
    for block in blocks.iter().filter(|b| !b.iter().all(|l| is_list_item(l))) {
        for line in &block[..block.len() - 1] {
            inner += 1;
            if !ends_sentence(line) {
                open += 1;
            }
        }
    }
    if text.contains("\n\n") && open * 2 > inner {
        blocks.into_iter().map(|b| b.join(" ")).collect()
    } else {
        text.lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect()
    }
}

fn is_list_item(line: &str) -> bool {
    line.starts_with("- ") || line.starts_with("* ") || line.starts_with("• ")
}

/// The duplicated body: every paragraph of at least `MIN_REPEAT_CHARS` that already
/// appeared. Returns the kept paragraphs, what was removed, and the index (in the kept list)
/// of the paragraph just before the first repeat, which scrapers often leave as the title.
pub fn drop_repeated(paragraphs: Vec<String>) -> (Vec<String>, Vec<Removal>, Option<usize>) {
    let mut seen = HashSet::new();
    let mut kept = Vec::new();
    let mut removed = Vec::new();
    let mut before_first_repeat = None;
    for p in paragraphs {
        let key = p.to_lowercase();
        if p.chars().count() >= MIN_REPEAT_CHARS && !seen.insert(key) {
            if removed.is_empty() {
                before_first_repeat = kept.len().checked_sub(1);
            }
            removed.push(Removal::RepeatedBlock { text: p });
        } else {
            kept.push(p);
        }
    }
    (kept, removed, before_first_repeat)
}

/// Drops every paragraph a rule for `lang` matches.
pub fn drop_boilerplate(
    paragraphs: Vec<String>,
    rules: &BoilerplateRules,
    lang: &str,
) -> (Vec<String>, Vec<Removal>) {
    let mut kept = Vec::new();
    let mut removed = Vec::new();
    for p in paragraphs {
        match rules.for_lang(lang).find(|(_, r)| r.regex.is_match(&p)) {
            Some((_, rule)) => removed.push(Removal::Boilerplate {
                rule: rule.name.clone(),
                text: p,
            }),
            None => kept.push(p),
        }
    }
    (kept, removed)
}

/// Text ready for language detection: normalised, split, de-duplicated.
#[derive(Debug, Clone)]
pub struct Deduplicated {
    pub paragraphs: Vec<String>,
    pub removed: Vec<Removal>,
    /// Index of a title candidate left just before a repeated block.
    pub title_hint: Option<usize>,
}

/// Removes what is not language from each paragraph: Markdown images with inline data
/// (`![…](data:…)`) and runs without spaces over [`MAX_WORD_CHARS`]; a paragraph left empty
/// goes. Each removal is reported.
pub fn drop_non_text(paragraphs: Vec<String>) -> (Vec<String>, Vec<Removal>) {
    static DATA_IMAGE: std::sync::LazyLock<Regex> = std::sync::LazyLock::new(|| {
        Regex::new(r"!\[[^\]]*\]\(\s*data:[^)]*\)").expect("a valid pattern")
    });
    let preview = |t: &str| t.chars().take(40).collect::<String>() + "…";
    let mut removed = Vec::new();
    let mut kept = Vec::new();
    for p in paragraphs {
        let mut p = p;
        if DATA_IMAGE.is_match(&p) {
            for m in DATA_IMAGE.find_iter(&p) {
                removed.push(Removal::NotText {
                    text: preview(m.as_str()),
                    chars: m.as_str().chars().count(),
                });
            }
            p = DATA_IMAGE.replace_all(&p, "").into_owned();
        }
        let words: Vec<&str> = p.split(' ').collect();
        if words.iter().any(|w| w.chars().count() > MAX_WORD_CHARS) {
            let mut own = Vec::new();
            for w in words {
                let chars = w.chars().count();
                if chars > MAX_WORD_CHARS {
                    removed.push(Removal::NotText {
                        text: preview(w),
                        chars,
                    });
                } else {
                    own.push(w);
                }
            }
            p = own.join(" ");
        }
        let p = p
            .split(' ')
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        if !p.is_empty() {
            kept.push(p);
        }
    }
    (kept, removed)
}

/// Markdown structure that is not prose: fenced code blocks are removed (reported), and each
/// table row becomes its own paragraph (its separator row dropped), so a row's figures are
/// checked against that row's translation rather than lost in one long paragraph.
fn markdown_blocks(text: &str) -> (String, Vec<Removal>) {
    let mut out = String::with_capacity(text.len());
    let mut removed = Vec::new();
    let mut code: Option<String> = None;
    for line in text.lines() {
        let bare = line.trim();
        if bare.starts_with("```") || bare.starts_with("~~~") {
            match code.take() {
                Some(block) => removed.push(Removal::NotText {
                    text: block.chars().take(40).collect::<String>() + "…",
                    chars: block.chars().count(),
                }),
                None => code = Some(String::new()),
            }
            continue;
        }
        if let Some(block) = code.as_mut() {
            block.push_str(line);
            block.push('\n');
            continue;
        }
        if bare.starts_with('|') {
            let separator = bare.chars().all(|c| matches!(c, '|' | '-' | ':' | ' '));
            if !separator {
                out.push('\n');
                out.push_str(bare.trim_matches('|').trim());
                out.push_str("\n\n");
            }
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    if let Some(block) = code {
        // An unclosed fence: the rest of the file is code.
        removed.push(Removal::NotText {
            text: block.chars().take(40).collect::<String>() + "…",
            chars: block.chars().count(),
        });
    }
    (out, removed)
}

pub fn deduplicate(text: &str, format: Format) -> Deduplicated {
    let normalized = normalize(text);
    let (normalized, code) = if format == Format::Markdown {
        markdown_blocks(&normalized)
    } else {
        (normalized, Vec::new())
    };
    let (mut paragraphs, mut not_text) = drop_non_text(split_paragraphs(&normalized));
    not_text.extend(code);
    if format == Format::Markdown {
        paragraphs = paragraphs
            .into_iter()
            .map(|p| strip_markdown_heading(&p))
            .collect();
    }
    let (paragraphs, mut removed, title_hint) = drop_repeated(paragraphs);
    removed.extend(not_text);
    Deduplicated {
        paragraphs,
        removed,
        title_hint,
    }
}

fn strip_markdown_heading(p: &str) -> String {
    let trimmed = p.trim_start_matches('#');
    if trimmed.len() < p.len() && trimmed.starts_with(' ') {
        trimmed.trim().to_string()
    } else {
        p.to_string()
    }
}

/// Removes boilerplate for `lang` and separates the title from the body.
pub fn finish(
    dedup: Deduplicated,
    rules: &BoilerplateRules,
    lang: &str,
    declared_title: Option<&str>,
) -> Cleaned {
    let Deduplicated {
        paragraphs,
        mut removed,
        title_hint,
    } = dedup;
    // Remember the hinted paragraph's text: boilerplate removal shifts indices.
    let hinted = title_hint.and_then(|i| paragraphs.get(i).cloned());
    let (mut paragraphs, boiler) = drop_boilerplate(paragraphs, rules, lang);
    removed.extend(boiler);

    let title = match declared_title {
        Some(t) => Some(normalize(t).replace('\n', " ")),
        None => take_title(&mut paragraphs, hinted.as_deref()),
    };
    Cleaned {
        title,
        paragraphs,
        removed,
    }
}

fn looks_like_title(p: &str) -> bool {
    let n = p.chars().count();
    n > 0 && n <= MAX_TITLE_CHARS && !p.ends_with(':') && !p.ends_with(',')
}

/// The title is the short line left between a page's two copies of its body, or else a short
/// first line followed by a longer paragraph.
fn take_title(paragraphs: &mut Vec<String>, hinted: Option<&str>) -> Option<String> {
    if paragraphs.len() < 2 {
        return None;
    }
    if let Some(h) = hinted {
        if looks_like_title(h) && !h.ends_with('.') {
            if let Some(i) = paragraphs.iter().position(|p| p == h) {
                return Some(paragraphs.remove(i));
            }
        }
    }
    let first = &paragraphs[0];
    if looks_like_title(first) && paragraphs[1].chars().count() > first.chars().count() {
        return Some(paragraphs.remove(0));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> BoilerplateRules {
        BoilerplateRules::load(&Resources::embedded()).unwrap()
    }

    fn clean(text: &str, lang: &str) -> Cleaned {
        finish(deduplicate(text, Format::Text), &rules(), lang, None)
    }

    #[test]
    fn markdown_code_is_removed_and_table_rows_stand_alone() {
        let text = "Preços de março:\n\n| Produto | Preço |\n|---|:--:|\n| Arroz | 1,50 € |\n| Feijão | 2,10 € |\n\n```sql\nSELECT * FROM t WHERE x = 1;\n```\n\nFim do texto.";
        let d = deduplicate(text, Format::Markdown);
        assert_eq!(
            d.paragraphs,
            [
                "Preços de março:",
                "Produto | Preço",
                "Arroz | 1,50 €",
                "Feijão | 2,10 €",
                "Fim do texto."
            ]
        );
        assert!(
            matches!(d.removed[..], [Removal::NotText { .. }]),
            "{:?}",
            d.removed
        );
    }

    #[test]
    fn terminal_escapes_are_removed() {
        assert_eq!(
            normalize("Juros \x1b[31mmantidos\x1b[0m\x1b]0;PWNED\x07 hoje"),
            "Juros mantidos hoje"
        );
    }

    #[test]
    fn data_images_and_blobs_are_removed_and_reported() {
        let blob = "QUJD".repeat(600);
        let text = format!(
            "Primeiro parágrafo.\n![foto](data:image/png;base64,{blob})\nSegundo {blob} fim."
        );
        let d = deduplicate(&text, Format::Markdown);
        assert_eq!(d.paragraphs, ["Primeiro parágrafo.", "Segundo fim."]);
        assert_eq!(d.removed.len(), 2, "{:?}", d.removed);
        assert!(matches!(d.removed[0], Removal::NotText { chars, .. } if chars > 2400));
    }

    #[test]
    fn normalizes_unicode_and_whitespace() {
        // "é" as e + combining accent, a no-break space, tabs and a zero-width space.
        let text = "Cafe\u{301}\u{00A0}com\t\tleite\u{200B}  \r\nfim ";
        assert_eq!(normalize(text), "Café com leite\nfim");
    }

    #[test]
    fn wrapped_blocks_become_paragraphs() {
        let text = "First line of a wrapped\nparagraph here.\n\nSecond one.";
        assert_eq!(
            split_paragraphs(text),
            ["First line of a wrapped paragraph here.", "Second one."]
        );
        assert_eq!(
            split_paragraphs("One.\nTwo.\n\n\nThree."),
            ["One.", "Two.", "Three."]
        );
        // One paragraph per line, then trailing blank lines (as scrapers leave them).
        assert_eq!(
            split_paragraphs("First paragraph.\nSecond paragraph.\n\n\n"),
            ["First paragraph.", "Second paragraph."]
        );
    }

    #[test]
    fn body_published_twice_is_kept_once_and_title_found_between() {
        let body = [
            "O banco central manteve a taxa de juros em 10,5% nesta quarta-feira, citando a inflação.",
            "Analistas esperavam a decisão, que foi unânime entre os membros do comitê de política.",
        ];
        let text = format!(
            "{}\n{}\nBanco central mantém juros em 10,5%\n{}\n{}",
            body[0], body[1], body[0], body[1]
        );
        let cleaned = clean(&text, "pt");
        assert_eq!(
            cleaned.title.as_deref(),
            Some("Banco central mantém juros em 10,5%")
        );
        assert_eq!(cleaned.paragraphs, body);
        assert_eq!(cleaned.removed.len(), 2);
    }

    #[test]
    fn short_repeated_lines_are_kept() {
        let text = "Uma citação longa o bastante para ser um parágrafo de verdade aqui.\nAnalistas do JP Morgan\nOutra citação longa o bastante para ser um parágrafo de verdade.\nAnalistas do JP Morgan";
        let cleaned = clean(text, "pt");
        assert_eq!(
            cleaned
                .paragraphs
                .iter()
                .filter(|p| *p == "Analistas do JP Morgan")
                .count(),
            2
        );
    }

    #[test]
    fn removes_boilerplate_per_language() {
        let pt = "A empresa anunciou lucro recorde de 2,3 mil milhões de euros no trimestre passado.\nLeia também: Bolsa fecha em alta\nEste site pode conter conteúdos de terceiros, fornecidos apenas para fins informativos.\nVeja mais: outras notícias\nO resultado superou as previsões do mercado e as ações subiram fortemente.";
        let cleaned = clean(pt, "pt");
        assert_eq!(cleaned.paragraphs.len(), 2, "{:?}", cleaned.paragraphs);
        assert_eq!(cleaned.removed.len(), 3);

        let fr = "Le gouvernement a présenté un budget de 500 milliards d'euros pour l'année prochaine.\nÀ lire aussi : La dette publique atteint un record\nLes syndicats ont critiqué les coupes prévues dans la fonction publique.\nL’article Budget 2026 : ce qui change est apparu en premier sur Le Journal.";
        let cleaned = clean(fr, "fr");
        assert_eq!(cleaned.paragraphs.len(), 2, "{:?}", cleaned.paragraphs);

        let ar = "أعلنت الحكومة عن خطة جديدة لدعم قطاع الطاقة المتجددة بقيمة 3 مليارات دولار.\n\nاقرأ أيضًا: ارتفاع أسعار النفط\n\nوقال الوزير إن الخطة ستوفر آلاف الوظائف خلال السنوات المقبلة.\n\nظهرت المقالة خطة الطاقة الجديدة أولاً على موقع الأخبار.";
        let cleaned = clean(ar, "ar");
        assert_eq!(cleaned.paragraphs.len(), 2, "{:?}", cleaned.paragraphs);

        let en = "Shares rose 4% on Tuesday after the company beat estimates by a wide margin.\nThe post Shares rise after earnings appeared first on Market Daily.";
        assert_eq!(clean(en, "en").paragraphs.len(), 1);
    }

    #[test]
    fn rules_of_one_language_do_not_touch_another() {
        let text = "Leia também: esta frase é conteúdo normal num artigo francês, não um link.\nUn deuxième paragraphe assez long pour le test de nettoyage.";
        assert_eq!(clean(text, "fr").paragraphs.len(), 2);
    }

    #[test]
    fn short_first_line_is_the_title() {
        let text = "Inflation ralentit en octobre\nL'inflation a ralenti à 2,1% en octobre selon l'institut national de statistique.";
        let cleaned = clean(text, "fr");
        assert_eq!(
            cleaned.title.as_deref(),
            Some("Inflation ralentit en octobre")
        );
        assert_eq!(cleaned.paragraphs.len(), 1);
        // A heading that ends with a colon is a section label, not a title.
        let text =
            "Points clés :\nL'inflation a ralenti à 2,1% en octobre selon l'institut national.";
        assert_eq!(clean(text, "fr").title, None);
    }
}
