//! Month and weekday names, as each language pack lists them, and their English names.

use std::collections::BTreeSet;

use crate::language;

/// Months, then weekdays, in English: the order of every pack's calendar.
pub const CALENDAR_EN: [&str; 19] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// The months and weekdays `text` (in `lang`) mentions, as indices into [`CALENDAR_EN`].
pub fn calendar_words(text: &str, lang: &str) -> BTreeSet<usize> {
    let Some(words) = language::pack(lang).and_then(|p| p.calendar.as_ref()) else {
        return BTreeSet::new();
    };
    words
        .iter()
        .enumerate()
        .filter(|(_, re)| re.is_match(text))
        .map(|(i, _)| i)
        .collect()
}

/// English names of the months and weekdays of `source` (in `lang`) that `translation`
/// does not mention.
pub fn missing_calendar_words(source: &str, lang: &str, translation: &str) -> Vec<String> {
    let found = calendar_words(translation, "en");
    calendar_words(source, lang)
        .difference(&found)
        .map(|&i| CALENDAR_EN[i].to_string())
        .collect()
}

/// English names of the months and weekdays `text` mentions.
pub fn english_calendar_words(text: &str, lang: &str) -> Vec<String> {
    calendar_words(text, lang)
        .into_iter()
        .map(|i| CALENDAR_EN[i].to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_and_weekdays_match_across_languages() {
        assert_eq!(
            english_calendar_words("na segunda-feira, 20 de outubro", "pt"),
            ["October", "Monday"]
        );
        assert!(missing_calendar_words("يوم الاثنين", "ar", "on Monday").is_empty());
        // "mai" is a month, but not inside "maior"; English "may" is a verb.
        assert!(calendar_words("a maior empresa", "pt").is_empty());
        assert!(calendar_words("prices may rise", "en").is_empty());
    }
}
