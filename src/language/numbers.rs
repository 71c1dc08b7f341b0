//! Numbers as a language writes them: digits with decimal and grouping marks (Arabic-Indic
//! digits too), scale words that multiply them ("mil milhões", "milliards", "مليار"), units
//! (percent, currencies), and how English writes the same value. The words come from the
//! language packs.

use std::sync::LazyLock;

use regex::Regex;

use crate::language;

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

/// The scale word at the start of `rest` (after spaces) and its factor, if any.
fn scale_after<'a>(rest: &'a str, lang: &str) -> Option<(&'a str, f64)> {
    language::pack(lang)?
        .scales
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

/// As [`numbers`], on text already through [`ascii_digits`], with where each number starts
/// and ends. Numbers written as words count from a thousand up ("مليارين", "two trillion"):
/// smaller ones ("one of them") are too often no figure at all.
pub fn number_spans(text: &str, lang: &str) -> Vec<(usize, usize, String, Vec<f64>)> {
    let mut spans: Vec<(usize, usize, String, Vec<f64>)> = NUMBER
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
        .collect();
    spans.extend(
        word_numbers(text, lang)
            .into_iter()
            .filter(|w| w.3 >= 1000.0)
            .map(|(start, end, literal, value)| (start, end, literal, vec![value])),
    );
    spans.sort_by_key(|s| s.0);
    spans
}

/// Numbers written as words (the pack's `[numbers] words`), a scale word after one
/// multiplying it ("trois milliards", "ثلاثة ملايين"): start, end, literal and value. A word
/// right after digits is their scale word, not a number of its own.
pub fn word_numbers(text: &str, lang: &str) -> Vec<(usize, usize, String, f64)> {
    let Some(pack) = language::pack(lang) else {
        return Vec::new();
    };
    // Every match first, then the earliest and longest win: "عشرين مليون" is one number
    // (20 million), not 20 million and a million.
    let mut found: Vec<(usize, usize, String, f64)> = Vec::new();
    for (pattern, value) in &pack.number_words {
        let mut at = 0;
        while let Some(cap) = pattern.captures_at(text, at) {
            let word = cap.get(1).expect("the pattern has one group");
            at = word.end();
            let before = text[..word.start()].trim_end();
            if before.ends_with(|c: char| c.is_ascii_digit()) {
                continue;
            }
            found.push(match scale_after(&text[word.end()..], lang) {
                Some((scale, factor)) => {
                    let end =
                        word.end() + text[word.end()..].find(scale).unwrap_or(0) + scale.len();
                    (
                        word.start(),
                        end,
                        text[word.start()..end].to_string(),
                        value * factor,
                    )
                }
                None => (word.start(), word.end(), word.as_str().to_string(), *value),
            });
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
    let mut out: Vec<(usize, usize, String, f64)> = Vec::new();
    for span in found {
        if out.last().is_none_or(|last| span.0 >= last.1) {
            out.push(span);
        }
    }
    out
}

/// Every value `text` gives, small numbers written as words included: what a number of
/// the other side may be found as.
pub fn all_values(text: &str, lang: &str) -> Vec<f64> {
    let text = ascii_digits(text);
    let mut values: Vec<f64> = number_spans(&text, lang)
        .into_iter()
        .flat_map(|s| s.3)
        .collect();
    values.extend(word_numbers(&text, lang).into_iter().map(|w| w.3));
    values
}

/// Amounts written with a scale word in `text`, each with its English reading, e.g.
/// `("19 mil milhões", "19 billion")`: a hint for translators that confuse scales.
pub fn scaled_amounts(text: &str, lang: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (literal, values) in numbers(text, lang) {
        let [_] = values[..] else { continue };
        if !literal.contains(' ') {
            continue;
        }
        let english = english_number(&literal, &values, lang);
        if !out.iter().any(|(l, _)| *l == literal) {
            out.push((literal, english));
        }
    }
    out
}

/// A value as English writes it with a scale word: "4.7 billion", "3,000".
fn english_amount(value: f64) -> String {
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
fn group_thousands(digits: &str) -> String {
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
    let found = all_values(target, target_lang);
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

/// A number of the source (`literal`, its possible `values`) as English writes it.
pub fn english_number(literal: &str, values: &[f64], lang: &str) -> String {
    // The digits and marks before any scale word; spaces that group thousands ("1 000") are
    // no marks, so they are joined first.
    let joined = join_digit_groups(literal);
    let spaced = joined.len() != literal.len();
    let digits = joined.split_whitespace().next().unwrap_or(&joined);
    let last_mark = digits.chars().rev().find(|c| !c.is_ascii_digit());
    // The reading this language's notation gives (see [`numbers`]: first every mark a
    // thousands separator, then the last one a decimal mark).
    let decimal_mark = language::pack(lang).map_or('.', |p| p.decimal_mark);
    let value = match (values, last_mark) {
        ([one], _) => *one,
        // Only spaces group it: every group is thousands (the first reading).
        ([thousands, ..], None) if spaced => *thousands,
        ([thousands, decimal, ..], Some(mark)) => {
            if mark == decimal_mark || mark == '\u{066B}' {
                *decimal
            } else {
                *thousands
            }
        }
        _ => return digits.to_string(),
    };
    if literal.contains(' ') && value >= 1e6 {
        return english_amount(value);
    }
    let decimals = match last_mark {
        Some(mark) if value.fract() != 0.0 => digits.len() - digits.rfind(mark).unwrap_or(0) - 1,
        _ => 0,
    };
    let formatted = format!("{value:.decimals$}");
    let (int, frac) = formatted.split_once('.').unwrap_or((&formatted, ""));
    // A bare four-digit number is left as written: it is most often a year.
    let is_bare_four_digits =
        !spaced && digits.len() == 4 && digits.chars().all(|c| c.is_ascii_digit());
    let grouped = if is_bare_four_digits {
        int.to_string()
    } else {
        group_thousands(int)
    };
    if frac.is_empty() {
        grouped
    } else {
        format!("{grouped}.{frac}")
    }
}

/// What a number measures, as far as fidelity goes: a changed unit changes the fact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Unit {
    Percent,
    Usd,
    Brl,
    Eur,
    Gbp,
    /// A bare count (people, megawatts): only compared where the topic says what it counts.
    Count,
}

impl Unit {
    pub fn name(self) -> &'static str {
        match self {
            Unit::Percent => "percent",
            Unit::Usd => "US dollars",
            Unit::Brl => "reais",
            Unit::Eur => "euros",
            Unit::Gbp => "pounds",
            Unit::Count => "a count",
        }
    }

    /// An English number literal with this unit: "11%", "$680 million".
    pub fn show(self, literal: &str) -> String {
        match self {
            Unit::Percent => format!("{literal}%"),
            Unit::Usd => format!("${literal}"),
            Unit::Brl => format!("R${literal}"),
            Unit::Eur => format!("€{literal}"),
            Unit::Gbp => format!("£{literal}"),
            Unit::Count => literal.to_string(),
        }
    }
}

/// Unit markers right before a number (symbols) or right after it (and its scale word).
static UNIT_BEFORE: LazyLock<Vec<(Regex, Unit)>> = LazyLock::new(|| {
    [
        (r"(?:US\$|U\$S|USD|\$)\s*$", Unit::Usd),
        (r"R\$\s*$", Unit::Brl),
        (r"(?:€|EUR)\s*$", Unit::Eur),
        (r"(?:£|GBP)\s*$", Unit::Gbp),
    ]
    .into_iter()
    .map(|(re, u)| (Regex::new(re).expect("valid regex"), u))
    .collect()
});

static UNIT_AFTER: LazyLock<Vec<(Regex, Unit)>> = LazyLock::new(unit_after_patterns);

/// The unit patterns after a number, from every pack's scale, connector and unit words: an
/// English text can quote a source's words, and the source language is not always known.
/// Which word list of a pack (its scale words, percent words, …).
type WordList = fn(&language::Pack) -> &Vec<String>;

fn unit_after_patterns() -> Vec<(Regex, Unit)> {
    let packs: Vec<&language::Pack> = language::packs().all().collect();
    // One pattern of every pack's words, longer ones first ("mil milhões" before "mil");
    // `None` when no pack has any.
    let alternatives = |words: WordList| {
        let mut all: Vec<&str> = Vec::new();
        for p in &packs {
            for w in words(p) {
                if !all.contains(&w.as_str()) {
                    all.push(w);
                }
            }
        }
        all.sort_by_key(|w| std::cmp::Reverse(w.len()));
        (!all.is_empty()).then(|| all.join("|"))
    };
    let scale =
        alternatives(|p| &p.scale_words).map_or(String::new(), |w| format!(r"(?:\s*(?:{w}))?"));
    let connector =
        alternatives(|p| &p.units.connectors).map_or(String::new(), |w| format!("(?:{w})?"));
    let percent = match alternatives(|p| &p.units.percent) {
        Some(words) => format!(r"%|\s*(?:{words})\b"),
        None => "%".to_string(),
    };
    let mut patterns = vec![(percent, Unit::Percent)];
    let currencies: [(WordList, Unit); 4] = [
        (|p| &p.units.usd, Unit::Usd),
        (|p| &p.units.brl, Unit::Brl),
        (|p| &p.units.eur, Unit::Eur),
        (|p| &p.units.gbp, Unit::Gbp),
    ];
    for (words, unit) in currencies {
        if let Some(words) = alternatives(words) {
            patterns.push((format!(r"\s*{connector}(?:{words})\b"), unit));
        }
    }
    patterns
        .into_iter()
        .map(|(re, u)| {
            (
                Regex::new(&format!(r"(?i)^{scale}(?:{re})"))
                    .expect("unit words are checked at pack load"),
                u,
            )
        })
        .collect()
}

/// Each number of `text` written with a unit: its values and the unit.
pub fn amounts(text: &str, lang: &str) -> Vec<(String, Vec<f64>, Unit)> {
    amounts_with_spans(text, lang)
        .into_iter()
        .map(|(_, literal, values, unit)| (literal, values, unit))
        .collect()
}

/// A number found in a text: where its digits start, as written (with its scale word), its
/// possible values, and its unit.
pub type Amount = (usize, String, Vec<f64>, Unit);

/// As [`amounts`], with where each number starts in `text` after [`ascii_digits`].
pub fn amounts_with_spans(text: &str, lang: &str) -> Vec<Amount> {
    let text = ascii_digits(text);
    number_spans(&text, lang)
        .into_iter()
        .filter_map(|(start, end, literal, values)| {
            let before = &text[..start];
            let after = &text[end..];
            let unit = UNIT_BEFORE
                .iter()
                .find(|(re, _)| re.is_match(before))
                .or_else(|| UNIT_AFTER.iter().find(|(re, _)| re.is_match(after)))
                .map(|(_, u)| *u)?;
            Some((start, literal, values, unit))
        })
        .collect()
}

/// The numbers of an English `text` written without a unit, bare four-digit years aside.
pub fn bare_counts(text: &str) -> Vec<Amount> {
    let with_unit: Vec<usize> = amounts_with_spans(text, "en").iter().map(|a| a.0).collect();
    number_spans(&ascii_digits(text), "en")
        .into_iter()
        .filter(|(start, ..)| !with_unit.contains(start))
        .filter(|(_, _, literal, _)| {
            !(literal.len() == 4
                && literal.starts_with(['1', '2'])
                && literal.chars().all(|c| c.is_ascii_digit()))
        })
        .map(|(start, _, literal, values)| (start, literal, values, Unit::Count))
        .collect()
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
