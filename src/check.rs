//! Fidelity checks on a translation: every number of the source must reappear (as a value,
//! whatever the locale's separators), and the output must not be cut short or looping.

use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;

static NUMBER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\d+(?:[.,\u{066B}\u{066C}\u{202F} ]\d+)*").unwrap());

/// A problem found in one article, reported in `brief.json` and as a footnote in `brief.md`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Flag {
    pub kind: FlagKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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

/// Numbers written in `text`, each with the values it can stand for (a comma or point can be
/// a decimal or a thousands separator depending on the language).
pub fn numbers(text: &str) -> Vec<(String, Vec<f64>)> {
    let text = ascii_digits(text);
    NUMBER
        .find_iter(&text)
        .map(|m| {
            let literal = m.as_str().trim().to_string();
            let values = readings(&literal);
            (literal, values)
        })
        .collect()
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

fn same(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

/// Source numbers whose value appears nowhere in the translation.
pub fn missing_numbers(source: &str, translation: &str) -> Vec<String> {
    let found: Vec<f64> = numbers(translation).into_iter().flat_map(|(_, v)| v).collect();
    let mut missing = Vec::new();
    for (literal, values) in numbers(source) {
        let present = values.iter().any(|v| found.iter().any(|f| same(*v, *f)));
        if !present && !missing.contains(&literal) {
            missing.push(literal);
        }
    }
    missing
}

/// Translation numbers whose value appears nowhere in the source.
pub fn extra_numbers(source: &str, translation: &str) -> Vec<String> {
    missing_numbers(translation, source)
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
        assert!(missing_numbers("uma taxa de 2,4 EH/s e 4,7 mil milhões", "a rate of 2.4 EH/s and 4.7 billion").is_empty());
        assert!(missing_numbers("près de 21,86 dollars, 8 millions", "around $21.86, 8 million").is_empty());
        assert!(missing_numbers("عند نحو 125,000 دولار و9.72٪", "at about $125,000 and 9.72%").is_empty());
        assert!(missing_numbers("٢٠ أكتوبر", "October 20").is_empty());
    }

    #[test]
    fn a_changed_number_is_caught() {
        assert_eq!(missing_numbers("1.000 funcionários e 683 milhões", "10,000 staff and 683 million"), ["1.000"]);
        assert_eq!(missing_numbers("plus de 11% lundi", "more than 14% on Monday"), ["11"]);
    }

    #[test]
    fn an_invented_number_is_caught() {
        assert_eq!(extra_numbers("no início de outubro", "on October 1"), ["1"]);
        assert!(extra_numbers("2,4 EH/s", "2.4 EH/s").is_empty());
    }

    #[test]
    fn detects_loops() {
        assert!(has_repetition_loop(&"the market the market".repeat(5)));
        assert!(!has_repetition_loop("Shares rose 11% on Monday, near a four-year high."));
    }
}
