//! What crossbrief knows of each language, read from its pack (`languages/<code>.toml`):
//! number notation and scale words, unit words, month and weekday names, sentence
//! abbreviations, the length range of faithful translations, and the words a translation
//! rightly renames. Adding a language is a pack, not code.
//!
//! The packs are installed once per process ([`install`]: the CLI does it from its
//! resources); until then the built-in packs serve, so library users and unit tests need no
//! setup. A language without a pack gets no scale words, no calendar and default bounds.

pub mod calendar;
pub mod metrics;
pub mod names;
pub mod numbers;
pub mod sentences;
pub mod transliterate;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use regex::Regex;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::resources::Resources;

/// One language's pack as written in its TOML file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PackFile {
    code: String,
    name: String,
    #[serde(default)]
    latin_words_are_names: bool,
    #[serde(default)]
    right_to_left: bool,
    numbers: NumbersFile,
    #[serde(default)]
    units: UnitWords,
    calendar: Option<CalendarFile>,
    #[serde(default)]
    sentences: SentencesFile,
    #[serde(default)]
    check: CheckFile,
    english: Option<EnglishFile>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct NumbersFile {
    decimal_mark: char,
    #[serde(default)]
    scales: Vec<ScaleFile>,
    /// Numbers written as words ("deux", "ثلاثة", and Arabic duals: "مليارين" is two billion).
    #[serde(default)]
    words: Vec<NumberWordFile>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct NumberWordFile {
    words: String,
    value: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScaleFile {
    words: String,
    factor: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct CalendarFile {
    months: [String; 12],
    weekdays: [String; 7],
    #[serde(default)]
    case_sensitive: bool,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct SentencesFile {
    #[serde(default)]
    abbreviations: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckFile {
    #[serde(default = "default_length_ratio")]
    length_ratio: [f64; 2],
    #[serde(default)]
    translated_acronyms: Vec<String>,
    #[serde(default)]
    translated_name_words: Vec<String>,
    /// Source words and the English names a translation rightly gives them ("Allemagne" is
    /// "Germany"), so that those names count as coming from the source.
    #[serde(default)]
    exonyms: BTreeMap<String, Vec<String>>,
    /// Text addressed to an AI model ("ignore the previous instructions", "System:"), in the
    /// pack's language (regex, any case): in a source it is an injection attempt to flag; in
    /// an English translation without it in the source, the model answered instead of
    /// translating.
    #[serde(default)]
    instructions: Vec<String>,
}

impl Default for CheckFile {
    fn default() -> Self {
        CheckFile {
            length_ratio: default_length_ratio(),
            translated_acronyms: Vec::new(),
            translated_name_words: Vec::new(),
            exonyms: BTreeMap::new(),
            instructions: Vec::new(),
        }
    }
}

/// The bounds for a language whose pack gives none.
fn default_length_ratio() -> [f64; 2] {
    [0.4, 2.0]
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct EnglishFile {
    not_names: Vec<String>,
    topics: Vec<Topic>,
    /// Capitalized words a translation may use without a counterpart in the source (titles,
    /// institutions): never an inserted name.
    #[serde(default)]
    introduced_words: Vec<String>,
    /// Phrases of a model talking about its task instead of translating (regex, any case).
    #[serde(default)]
    task_talk: Vec<String>,
    /// Words that carry no content of their own: a claim is checked on the others.
    #[serde(default)]
    function_words: Vec<String>,
}

/// A topic an English amount can be about, and the words that mark it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topic {
    pub name: String,
    pub words: Vec<String>,
    /// Bare numbers (no unit) about this topic are facts too (jobs, power).
    #[serde(default)]
    pub counted: bool,
}

/// A language pack, compiled.
#[derive(Debug)]
pub struct Pack {
    pub code: String,
    /// English name ("Portuguese"), for prompts and reports.
    pub name: String,
    /// Every Latin-script word of a text in this language is a name (Arabic).
    pub latin_words_are_names: bool,
    /// The script runs right to left (Arabic): pages set it `dir="rtl"`.
    pub right_to_left: bool,
    pub decimal_mark: char,
    /// Scale words anchored at the start of the text after a number, with their factors.
    pub scales: Vec<(Regex, f64)>,
    /// The scale words as regex alternatives (for the unit patterns).
    pub scale_words: Vec<String>,
    /// Numbers written as words, as whole-word patterns, with their values.
    pub number_words: Vec<(Regex, f64)>,
    /// Source words (lower-cased) and the English names they become.
    pub exonyms: BTreeMap<String, Vec<String>>,
    /// Text addressed to an AI model, in this language (see the pack file's `[check]`).
    pub instructions: Vec<Regex>,
    pub units: UnitWords,
    /// January…December then Monday…Sunday, each as a whole-word pattern.
    pub calendar: Option<Vec<Regex>>,
    pub abbreviations: Vec<String>,
    pub length_ratio: (f64, f64),
    pub translated_acronyms: Vec<String>,
    pub translated_name_words: Vec<String>,
    /// English only: capitalized words that name nothing, and amount topics.
    pub not_names: Vec<String>,
    pub topics: Vec<Topic>,
    /// English only: words a translation may introduce (lower-cased), and task-talk patterns.
    pub introduced_words: Vec<String>,
    pub task_talk: Vec<Regex>,
    pub function_words: std::collections::BTreeSet<String>,
    /// English only: words in common use (`languages/en-common-words.txt`), lower-cased.
    pub common_words: std::collections::HashSet<String>,
}

/// Unit words of one language (`[units]` of its pack), as regex alternatives.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UnitWords {
    /// What may stand between an amount and its unit word ("de", "d'").
    pub connectors: Vec<String>,
    pub percent: Vec<String>,
    pub usd: Vec<String>,
    pub brl: Vec<String>,
    pub eur: Vec<String>,
    pub gbp: Vec<String>,
}

impl Pack {
    fn compile(file: PackFile, origin: &str) -> Result<Pack> {
        let bad = |problem: String| Error::Config {
            path: origin.into(),
            problem,
        };
        let regex = |pattern: &str| {
            Regex::new(pattern).map_err(|e| bad(format!("pattern {pattern:?}: {e}")))
        };
        let scales = file
            .numbers
            .scales
            .iter()
            .map(|s| Ok((regex(&format!(r"(?i)^\s*(?:{})\b", s.words))?, s.factor)))
            .collect::<Result<Vec<_>>>()?;
        // Word edges by hand (as for the calendar), allowing the prefixes Arabic attaches.
        let number_words = file
            .numbers
            .words
            .iter()
            .map(|w| {
                let pattern = format!(
                    r"(?i)(?:^|[^\p{{L}}\p{{N}}])(?:[وفبلك]|ال|بال|وال)?({})(?:$|[^\p{{L}}])",
                    w.words
                );
                Ok((regex(&pattern)?, w.value))
            })
            .collect::<Result<Vec<_>>>()?;
        let calendar = match &file.calendar {
            None => None,
            Some(c) => {
                // Word boundaries by hand: `\b` does not hold at the edges of Arabic words
                // followed by attached letters, and "mai" must not match "maior".
                let case = if c.case_sensitive { "" } else { "(?i)" };
                let words = c.months.iter().chain(c.weekdays.iter());
                Some(
                    words
                        .map(|w| regex(&format!(r"{case}(?:^|[^\p{{L}}])(?:{w})(?:$|[^\p{{L}}])")))
                        .collect::<Result<Vec<_>>>()?,
                )
            }
        };
        // Unit words are compiled later into patterns shared by all packs: check them here so
        // that a bad one names its file.
        let u = &file.units;
        for word in [&u.connectors, &u.percent, &u.usd, &u.brl, &u.eur, &u.gbp]
            .into_iter()
            .flatten()
        {
            regex(&format!("(?:{word})"))?;
        }
        let [low, high] = file.check.length_ratio;
        if !(low > 0.0 && low < high) {
            return Err(bad(format!("length_ratio {low}..{high} is not a range")));
        }
        let english = file.english.unwrap_or(EnglishFile {
            not_names: Vec::new(),
            topics: Vec::new(),
            introduced_words: Vec::new(),
            task_talk: Vec::new(),
            function_words: Vec::new(),
        });
        let task_talk = english
            .task_talk
            .iter()
            .map(|p| regex(&format!("(?i){p}")))
            .collect::<Result<Vec<_>>>()?;
        let instructions = file
            .check
            .instructions
            .iter()
            .map(|p| regex(&format!("(?i){p}")))
            .collect::<Result<Vec<_>>>()?;
        Ok(Pack {
            code: file.code,
            instructions,
            name: file.name,
            latin_words_are_names: file.latin_words_are_names,
            right_to_left: file.right_to_left,
            decimal_mark: file.numbers.decimal_mark,
            scales,
            scale_words: file.numbers.scales.into_iter().map(|s| s.words).collect(),
            number_words,
            exonyms: file
                .check
                .exonyms
                .into_iter()
                .map(|(k, v)| (k.to_lowercase(), v))
                .collect(),
            units: file.units,
            calendar,
            abbreviations: file.sentences.abbreviations,
            length_ratio: (low, high),
            translated_acronyms: file.check.translated_acronyms,
            translated_name_words: file.check.translated_name_words,
            not_names: english.not_names.iter().map(|w| w.to_lowercase()).collect(),
            topics: english.topics,
            introduced_words: english
                .introduced_words
                .iter()
                .map(|w| w.to_lowercase())
                .collect(),
            task_talk,
            function_words: english
                .function_words
                .iter()
                .map(|w| w.to_lowercase())
                .collect(),
            common_words: Default::default(),
        })
    }
}

/// Every installed pack, by code.
#[derive(Debug)]
pub struct Packs {
    by_code: BTreeMap<String, Pack>,
}

impl Packs {
    /// The packs in `languages/` of `resources`; a file that does not parse is an error
    /// naming it.
    pub fn load(resources: &Resources) -> Result<Packs> {
        let mut by_code = BTreeMap::new();
        for file in resources.list("languages", "toml")? {
            let origin = file.origin.display().to_string();
            let parsed: PackFile = toml::from_str(&file.text).map_err(|e| Error::Config {
                path: file.origin.clone(),
                problem: e.to_string(),
            })?;
            let stem = file
                .relative
                .trim_start_matches("languages/")
                .trim_end_matches(".toml");
            if parsed.code != stem {
                return Err(Error::Config {
                    path: file.origin.clone(),
                    problem: format!("code {:?} does not match the file name", parsed.code),
                });
            }
            let pack = Pack::compile(parsed, &origin)?;
            by_code.insert(pack.code.clone(), pack);
        }
        let Some(english) = by_code.get_mut("en") else {
            return Err(Error::Config {
                path: "languages/en.toml".into(),
                problem: "the English pack is required (English is the target language)".into(),
            });
        };
        if let Ok(words) = resources.read("languages/en-common-words.txt") {
            english.common_words = words
                .text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string)
                .collect();
        }
        Ok(Packs { by_code })
    }

    pub fn get(&self, code: &str) -> Option<&Pack> {
        self.by_code.get(code)
    }

    pub fn all(&self) -> impl Iterator<Item = &Pack> {
        self.by_code.values()
    }
}

static INSTALLED: OnceLock<Packs> = OnceLock::new();

/// Makes `packs` the process's language packs. Only the first call counts; returns false
/// when packs were already in use.
pub fn install(packs: Packs) -> bool {
    INSTALLED.set(packs).is_ok()
}

/// The process's packs: the installed ones, else the built-in defaults.
pub fn packs() -> &'static Packs {
    INSTALLED.get_or_init(|| {
        Packs::load(&Resources::embedded()).expect("the built-in language packs are valid")
    })
}

/// The pack of `code`, if there is one.
pub fn pack(code: &str) -> Option<&'static Pack> {
    packs().get(code)
}

/// The English pack (always present).
pub fn english() -> &'static Pack {
    pack("en").expect("the English pack is checked at load")
}

/// English name of a language code, for prompts and reports; the code itself when no pack
/// names it.
pub fn english_name(code: &str) -> String {
    pack(code).map_or_else(|| code.to_string(), |p| p.name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_packs_load_and_name_languages() {
        assert_eq!(english_name("ar"), "Arabic");
        assert_eq!(english_name("xx"), "xx");
        assert_eq!(pack("pt").unwrap().decimal_mark, ',');
        assert!(english()
            .topics
            .iter()
            .any(|t| t.name == "jobs" && t.counted));
    }

    #[test]
    fn a_bad_pack_is_refused_with_its_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("languages")).unwrap();
        std::fs::write(
            dir.path().join("languages/xx.toml"),
            "code = \"xx\"\nname = \"X\"\n[numbers]\ndecimal_mark = \",\"\nscales = [{ words = \"(\", factor = 1e3 }]\n",
        )
        .unwrap();
        let resources = Resources::locate(Some(dir.path())).unwrap();
        let err = Packs::load(&resources).unwrap_err().to_string();
        assert!(err.contains("xx.toml"), "{err}");
    }
}
