//! Fidelity checks on a translation: every number of the source must reappear (as a value,
//! whatever the locale's separators), and the output must not be cut short or looping.

use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

/// Digits with decimal or grouping marks; a space groups only a following block of exactly three
/// digits (French "1 000"), so two numbers side by side stay apart.
static NUMBER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\d+(?:[.,\u{066B}\u{066C}]\d+|[ \u{202F}]\d{3}\b)*").unwrap());

/// A number grouped in thousands by spaces ("1 000", "12 500 000"), French and Portuguese style.
static SPACE_GROUPED: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b\d{1,3}(?:[ \u{00A0}\u{202F}]\d{3})+\b").unwrap());

/// The text with the spaces that group digits in thousands removed ("1 000" -> "1000"), as the
/// translation model is shown it: small models render a grouping space as ", " ("1, 000"),
/// which no longer reads as one number. The value is unchanged.
pub fn join_digit_groups(text: &str) -> String {
    SPACE_GROUPED
        .replace_all(text, |c: &regex::Captures| {
            c[0].replace([' ', '\u{00A0}', '\u{202F}'], "")
        })
        .into_owned()
}

/// A problem found in one article, reported in `brief.json` and as a footnote in `brief.md`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Flag {
    pub kind: FlagKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlagKind {
    /// A number of the source is not in the translation.
    MissingNumber,
    /// A number of the translation is not in the source.
    ExtraNumber,
    /// The model stopped at its token budget: the output may be incomplete.
    TokenBudget,
    /// The same words repeat over and over.
    Repetition,
    /// Language detection was unsure or disagreed with a declared language.
    Language,
    /// The brief cites a source number that does not exist.
    Citation,
    /// A Latin-script name or ticker of the source is not in the translation.
    MissingName,
    /// A month or weekday of the source is not in the translation.
    MissingDate,
    /// An amount kept its value but lost or changed its unit (percent, currency).
    ChangedUnit,
    /// The translation is far shorter or longer than translations of this language run.
    LengthRatio,
    /// A brief sentence gave a figure that no source article has; it was removed.
    UnsupportedNumber,
}

/// Arabic-Indic and Extended Arabic-Indic digits to ASCII; the Arabic percent sign to `%`.
pub fn ascii_digits(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\u{0660}'..='\u{0669}' => char::from(b'0' + (c as u32 - 0x0660) as u8),
            '\u{06F0}'..='\u{06F9}' => char::from(b'0' + (c as u32 - 0x06F0) as u8),
            '\u{066A}' => '%',
            _ => c,
        })
        .collect()
}

/// A language's scale words and their factors.
type ScaleWords = Vec<(Regex, f64)>;

/// Scale words that multiply the number before them, per language (longest first).
static SCALES: LazyLock<Vec<(&'static str, ScaleWords)>> = LazyLock::new(|| {
    let table: [(&str, &[(&str, f64)]); 4] = [
        (
            "en",
            &[
                (r"trillions?|tn", 1e12),
                (r"billions?|bn", 1e9),
                (r"millions?|mn", 1e6),
                (r"thousands?", 1e3),
            ],
        ),
        (
            "pt",
            &[
                (r"mil milhões|milhares de milhões", 1e9),
                (r"trilhões|trilhão|biliões|bilião", 1e12),
                (r"bilhões|bilhão", 1e9),
                (r"milhões|milhão", 1e6),
                (r"mil", 1e3),
            ],
        ),
        (
            "fr",
            &[
                (r"billions?", 1e12),
                (r"milliards?|mds", 1e9),
                (r"millions?", 1e6),
                (r"mille", 1e3),
            ],
        ),
        (
            "ar",
            &[
                (r"تريليونات|تريليوني|تريليون", 1e12),
                (r"مليارات|ملياري|مليارا|مليار", 1e9),
                (r"ملايين|مليوني|مليونا|مليون", 1e6),
                (r"آلاف|ألف|الف", 1e3),
            ],
        ),
    ];
    table
        .into_iter()
        .map(|(lang, words)| {
            let compiled = words
                .iter()
                .map(|(w, f)| (Regex::new(&format!(r"(?i)^\s*(?:{w})\b")).unwrap(), *f))
                .collect();
            (lang, compiled)
        })
        .collect()
});

/// The scale word at the start of `rest` (after spaces) and its factor, if any.
fn scale_after<'a>(rest: &'a str, lang: &str) -> Option<(&'a str, f64)> {
    let (_, words) = SCALES.iter().find(|(l, _)| *l == lang)?;
    words
        .iter()
        .find_map(|(re, factor)| re.find(rest).map(|m| (m.as_str().trim(), *factor)))
}

/// Numbers written in `text` (in language `lang`), each with the values it can stand for: a
/// comma or point can be a decimal or a thousands separator, and a scale word after it
/// ("mil milhões", "milliards", "مليار", "billion") multiplies it.
pub fn numbers(text: &str, lang: &str) -> Vec<(String, Vec<f64>)> {
    number_spans(&ascii_digits(text), lang)
        .into_iter()
        .map(|(_, _, literal, values)| (literal, values))
        .collect()
}

/// As [`numbers`], on text already through [`ascii_digits`], with where each number's digits
/// start and end.
pub fn number_spans(text: &str, lang: &str) -> Vec<(usize, usize, String, Vec<f64>)> {
    NUMBER
        .find_iter(text)
        .map(|m| {
            let digits = m.as_str().trim();
            let (literal, factor) = match scale_after(&text[m.end()..], lang) {
                Some((word, factor)) => (format!("{digits} {word}"), factor),
                None => (digits.to_string(), 1.0),
            };
            let values = readings(digits).into_iter().map(|v| v * factor).collect();
            (m.start(), m.end(), literal, values)
        })
        .collect()
}

/// Amounts written with a scale word in `text`, each with its English reading, e.g.
/// `("19 mil milhões", "19 billion")`: a hint for translators that confuse scales.
pub fn scaled_amounts(text: &str, lang: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (literal, values) in numbers(text, lang) {
        let [value] = values[..] else { continue };
        if !literal.contains(' ') {
            continue;
        }
        let english = english_amount(value);
        if !out.iter().any(|(l, _)| *l == literal) {
            out.push((literal, english));
        }
    }
    out
}

/// A value as English writes it: "4.7 billion", "3,000".
pub fn english_amount(value: f64) -> String {
    for (factor, word) in [(1e12, "trillion"), (1e9, "billion"), (1e6, "million")] {
        if value >= factor {
            let scaled = format!("{:.3}", value / factor);
            let scaled = scaled.trim_end_matches('0').trim_end_matches('.');
            return format!("{scaled} {word}");
        }
    }
    group_thousands(&(value.round() as u64).to_string())
}

/// Digits grouped in thousands with commas, as English writes them: "12500" is "12,500".
pub fn group_thousands(digits: &str) -> String {
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    grouped
}

fn readings(literal: &str) -> Vec<f64> {
    let groups: Vec<&str> = literal
        .split(|c: char| !c.is_ascii_digit())
        .filter(|g| !g.is_empty())
        .collect();
    let digits: String = groups.concat();
    let mut values = Vec::new();
    // Every separator a thousands separator.
    if groups.iter().skip(1).all(|g| g.len() == 3) {
        values.extend(digits.parse::<f64>().ok());
    }
    // The last separator a decimal mark, the others thousands separators.
    if groups.len() >= 2 && groups[1..groups.len() - 1].iter().all(|g| g.len() == 3) {
        let (int, frac) = groups.split_at(groups.len() - 1);
        values.extend(format!("{}.{}", int.concat(), frac[0]).parse::<f64>().ok());
    }
    if values.is_empty() {
        // Unusual grouping: read each group on its own.
        values.extend(groups.iter().filter_map(|g| g.parse::<f64>().ok()));
    }
    values
}

/// Equal values, up to float rounding.
pub fn same(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// Numbers of `source` (language `source_lang`) whose value appears nowhere in `target`.
pub fn missing_numbers(
    source: &str,
    source_lang: &str,
    target: &str,
    target_lang: &str,
) -> Vec<String> {
    let found: Vec<f64> = numbers(target, target_lang)
        .into_iter()
        .flat_map(|(_, v)| v)
        .collect();
    let mut missing = Vec::new();
    for (literal, values) in numbers(source, source_lang) {
        let present = values.iter().any(|v| found.iter().any(|f| same(*v, *f)));
        if !present && !missing.contains(&literal) {
            missing.push(literal);
        }
    }
    missing
}

/// Numbers of the source missing from its English translation.
pub fn lost_numbers(source: &str, lang: &str, translation: &str) -> Vec<String> {
    missing_numbers(source, lang, translation, "en")
}

/// Numbers of the English translation that are not in the source.
pub fn invented_numbers(source: &str, lang: &str, translation: &str) -> Vec<String> {
    missing_numbers(translation, "en", source, lang)
}

/// True when some run of `n` words repeats at least `times` times back to back at the end,
/// the usual shape of a decoding loop.
pub fn has_repetition_loop(text: &str) -> bool {
    let words: Vec<&str> = text.split_whitespace().collect();
    (1..=8).any(|n| {
        let times = if n < 3 { 8 } else { 4 };
        if words.len() < n * times {
            return false;
        }
        let tail = &words[words.len() - n * times..];
        tail.chunks(n).all(|c| c == &tail[..n])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locale_separators_match_english_values() {
        assert!(lost_numbers(
            "uma taxa de 2,4 EH/s e 15%",
            "pt",
            "a rate of 2.4 EH/s and 15%"
        )
        .is_empty());
        assert!(lost_numbers("près de 21,86 dollars", "fr", "around $21.86").is_empty());
        assert!(lost_numbers(
            "عند نحو 125,000 دولار و9.72٪",
            "ar",
            "at about $125,000 and 9.72%"
        )
        .is_empty());
        assert!(lost_numbers("٢٠ أكتوبر", "ar", "October 20").is_empty());
        assert!(lost_numbers("recruter 1 000 personnes", "fr", "hire 1,000 people").is_empty());
        assert!(lost_numbers("les 3 12 derniers", "fr", "the last 3 12").is_empty());
    }

    #[test]
    fn scale_words_are_part_of_the_value() {
        assert!(lost_numbers(
            "receitas de 4,7 mil milhões de dólares",
            "pt",
            "revenue of $4.7 billion"
        )
        .is_empty());
        assert!(lost_numbers(
            "receitas de 4,7 mil milhões de dólares",
            "pt",
            "revenue of 4,700 million dollars"
        )
        .is_empty());
        assert_eq!(
            lost_numbers(
                "receitas de 4,7 mil milhões de dólares",
                "pt",
                "revenue of 4.7 million dollars"
            ),
            ["4,7 mil milhões"]
        );
        assert!(lost_numbers(
            "US$ 150 milhões e 3 mil pessoas",
            "pt",
            "$150 million and 3,000 people"
        )
        .is_empty());
        assert!(lost_numbers(
            "8 millions de dollars, 500 milliards",
            "fr",
            "$8 million, 500 billion"
        )
        .is_empty());
        assert!(lost_numbers("3 مليارات دولار", "ar", "3 billion dollars").is_empty());
        assert_eq!(
            invented_numbers("19 mil milhões", "pt", "$19 million"),
            ["19 million"]
        );
    }

    #[test]
    fn scaled_amounts_get_english_readings() {
        let amounts = scaled_amounts(
            "19 mil milhões em maio, 7,5 mil milhões, 3 mil pessoas e 2,4 EH/s",
            "pt",
        );
        let expected = [
            ("19 mil milhões", "19 billion"),
            ("7,5 mil milhões", "7.5 billion"),
            ("3 mil", "3,000"),
        ];
        assert_eq!(
            amounts,
            expected.map(|(a, b)| (a.to_string(), b.to_string()))
        );
        assert_eq!(
            scaled_amounts("8 millions de dollars", "fr")[0].1,
            "8 million"
        );
    }

    #[test]
    fn a_changed_number_is_caught() {
        assert_eq!(
            lost_numbers(
                "1.000 funcionários e 683 milhões",
                "pt",
                "10,000 staff and 683 million"
            ),
            ["1.000"]
        );
        assert_eq!(
            lost_numbers("plus de 11% lundi", "fr", "more than 14% on Monday"),
            ["11"]
        );
    }

    #[test]
    fn an_invented_number_is_caught() {
        assert_eq!(
            invented_numbers("no início de outubro", "pt", "on October 1"),
            ["1"]
        );
        assert!(invented_numbers("2,4 EH/s", "pt", "2.4 EH/s").is_empty());
    }

    #[test]
    fn detects_loops() {
        assert!(has_repetition_loop(&["the market"; 10].join(" ")));
        assert!(!has_repetition_loop(
            "Shares rose 11% on Monday, near a four-year high."
        ));
    }

    #[test]
    fn grouping_spaces_are_joined_and_values_kept() {
        let text = "recrutera 1 000 techniciens, 12\u{202F}500 euros, en 2019 300 jours";
        assert_eq!(
            join_digit_groups(text),
            "recrutera 1000 techniciens, 12500 euros, en 2019 300 jours"
        );
        let before: Vec<_> = numbers("1 000 e 12 500", "pt")
            .into_iter()
            .map(|n| n.1)
            .collect();
        let after: Vec<_> = numbers(&join_digit_groups("1 000 e 12 500"), "pt")
            .into_iter()
            .map(|n| n.1)
            .collect();
        assert!(before
            .iter()
            .zip(&after)
            .all(|(b, a)| a.iter().all(|v| b.contains(v))));
    }
}
