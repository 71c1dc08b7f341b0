//! The one name heuristic: which words of a text name a company, person, product or ticker.
//! In a source language it finds what a translation must carry over unchanged; in English it
//! finds what a headline or a clause is about. Both read capitalized words and drop the
//! words the language pack says name nothing.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use regex::Regex;

use crate::language;

/// A capitalized word: a capital letter then letters, digits, `&`, apostrophes or hyphens.
static CAPITALIZED: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b\p{Lu}[\p{L}\p{N}&'’-]*").expect("valid regex"));
static CAMEL_CASE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b[A-Z][a-z]+[A-Z][A-Za-z]*\b").expect("valid regex"));
static ACRONYM: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b[A-Z]{2,6}\b").expect("valid regex"));
static ALPHANUMERIC: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b[A-Za-z]+[0-9]+[A-Za-z0-9]*\b").expect("valid regex"));
/// Two or more capitalized words in a row, not at the start of a sentence or line.
static CAPITALIZED_RUN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[^.!?:\s]\s+(\p{Lu}[\p{L}'’-]+(?:\s+\p{Lu}[\p{L}'’-]+)+)").expect("valid regex")
});
static LATIN_WORD: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[A-Za-z][A-Za-z0-9&'’-]*[A-Za-z0-9]").expect("valid regex"));

/// Latin-script names and tickers of a source text that a translation should carry over
/// unchanged: every Latin-script word where the pack says so (Arabic); elsewhere CamelCase
/// brands (CleanSpark), acronyms that stay in English, words with digits (H100), and the
/// words of multi-word capitalized names (Jeffrey Thomas), less what the pack says English
/// renames (acronyms, places and institutions).
pub fn source_names(text: &str, lang: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |w: &str| {
        if !out.iter().any(|o| o == w) {
            out.push(w.to_string());
        }
    };
    let pack = language::pack(lang);
    if pack.is_some_and(|p| p.latin_words_are_names) {
        for m in LATIN_WORD.find_iter(text) {
            push(m.as_str());
        }
        return out;
    }
    // Currency prefixes ("US$", "R$") are units, checked with their amounts.
    let text = &text
        .replace("US$", " $")
        .replace("R$", " $")
        .replace("U$S", " $");
    let empty = Vec::new();
    let acronyms = pack.map_or(&empty, |p| &p.translated_acronyms);
    let renamed = pack.map_or(&empty, |p| &p.translated_name_words);
    let listed = |list: &Vec<String>, w: &str| list.iter().any(|a| a == w);
    for m in CAMEL_CASE.find_iter(text) {
        push(m.as_str());
    }
    for m in ACRONYM.find_iter(text) {
        if !listed(acronyms, m.as_str()) {
            push(m.as_str());
        }
    }
    for m in ALPHANUMERIC.find_iter(text) {
        push(m.as_str());
    }
    for cap in CAPITALIZED_RUN.captures_iter(text) {
        let words: Vec<&str> = cap[1].split_whitespace().collect();
        if words
            .iter()
            .any(|w| listed(renamed, w) || listed(acronyms, w))
        {
            continue;
        }
        for w in words {
            push(w);
        }
    }
    out
}

/// Names of the source that do not appear in the translation (as whole words, any case).
pub fn missing_names(source: &str, lang: &str, translation: &str) -> Vec<String> {
    let lower = translation.to_lowercase();
    source_names(source, lang)
        .into_iter()
        .filter(|name| {
            let name = name.to_lowercase();
            !lower.match_indices(&name).any(|(i, _)| {
                let before = lower[..i].chars().next_back();
                let after = lower[i + name.len()..].chars().next();
                !before.is_some_and(char::is_alphanumeric)
                    && !after.is_some_and(char::is_alphanumeric)
            })
        })
        .collect()
}

/// The capitalized words of `text`, as written.
pub fn capitalized_words(text: &str) -> impl Iterator<Item = &str> {
    CAPITALIZED.find_iter(text).map(|m| m.as_str())
}

/// The words of an English text that can name what it is about, lower-cased: capitalized
/// words of at least `min_chars` characters (a possessive "'s" dropped) that the English
/// pack does not list as naming nothing.
pub fn english_name_words(text: &str, min_chars: usize) -> BTreeSet<String> {
    let not_names = &language::english().not_names;
    CAPITALIZED
        .find_iter(text)
        .map(|m| {
            m.as_str()
                .trim_end_matches(['\'', '’'])
                .trim_end_matches("'s")
                .trim_end_matches("’s")
                .to_lowercase()
        })
        .filter(|w| w.chars().count() >= min_chars && !not_names.contains(w))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translated_places_and_acronyms_are_not_names() {
        let source = "O Reino Unido e os EUA investem em IA, disse o CEO da Nvidia, Jensen Huang.";
        assert_eq!(source_names(source, "pt"), ["Jensen", "Huang"]);
    }

    #[test]
    fn latin_words_in_arabic_are_names() {
        let source = "ارتفع سهم CleanSpark (CLSK) بنحو 14% يوم الاثنين";
        assert_eq!(source_names(source, "ar"), ["CleanSpark", "CLSK"]);
        let english = "CleanSpark shares rose about 14% on Monday";
        assert_eq!(missing_names(source, "ar", english), ["CLSK"]);
    }

    #[test]
    fn english_name_words_skip_what_names_nothing() {
        let words = english_name_words("The CEO of CleanSpark's AI unit met Jensen Huang", 3);
        assert_eq!(
            words.into_iter().collect::<Vec<_>>(),
            ["cleanspark", "huang", "jensen"]
        );
    }
}
