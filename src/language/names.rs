//! The one name heuristic: which words of a text name a company, person, product or ticker.
//! In a source language it finds what a translation must carry over unchanged; in English it
//! finds what a headline or a clause is about. Both read capitalized words and drop the
//! words the language pack says name nothing.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use regex::Regex;

use crate::language;
use crate::language::sentences::sentences;
use crate::language::transliterate::{
    arabic_word_skeletons, is_arabic, latin_skeleton, latin_skeletons, skeletons_match,
};

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

/// Names of an English translation with no counterpart in its source (language `lang`):
/// capitalized words that do not start a sentence, are not in the English pack's lists of
/// words that name nothing or may be introduced, and match no word of the source — as
/// written, by consonant skeleton (across scripts, [`crate::language::transliterate`]), or
/// as the English name the source pack gives a source word. A title-cased line is skipped.
pub fn inserted_names(source: &str, lang: &str, translation: &str) -> Vec<String> {
    let english = language::english();
    let source_words: Vec<&str> = source
        .split(|c: char| !(c.is_alphanumeric() || c == '-'))
        .filter(|w| !w.is_empty())
        .collect();
    let lowered: BTreeSet<String> = source_words.iter().map(|w| w.to_lowercase()).collect();
    let mut skeletons: Vec<String> = Vec::new();
    for w in &source_words {
        if w.chars().any(is_arabic) {
            skeletons.extend(arabic_word_skeletons(w));
        } else {
            skeletons.push(latin_skeleton(w));
        }
    }
    // English names the source's words stand for (exonyms), prefixes of Arabic words too.
    let pack = language::pack(lang);
    let mut named: BTreeSet<String> = BTreeSet::new();
    if let Some(pack) = pack {
        for w in &lowered {
            let mut forms = vec![w.as_str()];
            for prefix in ["و", "ب", "ل", "ف", "ك"] {
                forms.extend(w.strip_prefix(prefix));
            }
            for form in forms {
                for name in pack.exonyms.get(form).into_iter().flatten() {
                    named.insert(name.to_lowercase());
                }
            }
        }
    }
    let mut out: Vec<String> = Vec::new();
    for sentence in sentences(translation) {
        let words: Vec<&str> = capitalized_words(&sentence).collect();
        // A headline in title case capitalizes every word of four letters or more, and ends
        // without a period.
        let title_cased = sentence.split_whitespace().count() >= 4
            && !sentence.trim_end().ends_with('.')
            && !sentence.split_whitespace().any(|w| {
                w.chars().count() >= 4 && w.chars().next().is_some_and(char::is_lowercase)
            });
        if title_cased {
            continue;
        }
        let first = sentence
            .split_whitespace()
            .next()
            .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()));
        for word in words {
            let bare = word
                .trim_end_matches("'s")
                .trim_end_matches("’s")
                .trim_matches(|c: char| !c.is_alphanumeric());
            // A contraction (We've) is no name; a compound (Taliban-like) is its first part.
            if bare.contains(['\'', '’']) {
                continue;
            }
            let bare = bare.split('-').next().unwrap_or(bare);
            let lower = bare.to_lowercase();
            // Acronyms: Arabic spells their letters out or keeps them in Latin script (then
            // they match as written); ordinary words capitalized are no names.
            let acronym = bare.chars().filter(|c| c.is_uppercase()).count() >= 2;
            if Some(bare) == first
                || bare.chars().count() < 3
                || acronym
                || english.common_words.contains(&lower)
                || english.not_names.contains(&lower)
                || english.introduced_words.contains(&lower)
                || lowered.contains(&lower)
                || named.contains(&lower)
            {
                continue;
            }
            let own = latin_skeletons(bare);
            // A name of vowels only (Iowa, Wei) has no consonants to compare: not judged.
            if own[0].is_empty()
                || skeletons
                    .iter()
                    .any(|s| own.iter().any(|o| skeletons_match(s, o)))
            {
                continue;
            }
            if !out.iter().any(|o| o == bare) {
                out.push(bare.to_string());
            }
        }
    }
    out
}

/// Runs of source-script (Arabic) letters left in an English translation, as written.
pub fn source_script_left(translation: &str) -> Vec<String> {
    translation
        .split_whitespace()
        .filter(|w| w.chars().filter(|&c| is_arabic(c)).count() >= 2)
        .map(str::to_string)
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
    fn names_the_source_never_gave_are_found() {
        let source = "أعلنت شركة CleanSpark، ومقرها في لاس فيغاس، تعيين جيفري توماس في السعودية.";
        let faithful = "CleanSpark, based in Las Vegas, appointed Jeffrey Thomas in Saudi Arabia.";
        assert_eq!(inserted_names(source, "ar", faithful), Vec::<String>::new());
        let invented =
            "CleanSpark, based in Lashgar, Pakistan, appointed Jeffrey Thomas and Ingrid Lopez.";
        assert_eq!(
            inserted_names(source, "ar", invented),
            ["Lashgar", "Pakistan", "Ingrid", "Lopez"]
        );
        let source = "Le PDG de Nscale, Josh Payne, a rencontré le ministre à Londres.";
        assert_eq!(
            inserted_names(
                source,
                "fr",
                "Nscale CEO Josh Payne met the Minister in London."
            ),
            Vec::<String>::new()
        );
        assert_eq!(
            inserted_names(
                source,
                "fr",
                "Nscale CEO Josh Payne met Rishi Sunak in London."
            ),
            ["Rishi", "Sunak"]
        );
    }

    #[test]
    fn arabic_left_in_a_translation_is_found() {
        assert_eq!(
            source_script_left("The company said تعدين البيتكوين grew."),
            ["تعدين", "البيتكوين"]
        );
        assert!(source_script_left("Shares rose 14%.").is_empty());
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
