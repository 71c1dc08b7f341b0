//! Language identification (whatlang) reported as ISO 639-1 codes with a confidence.

use serde::Serialize;
use whatlang::Lang;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Detection {
    /// ISO 639-1 where one exists, else ISO 639-3.
    pub code: String,
    pub confidence: f64,
    pub reliable: bool,
    /// `detected` or `declared` (a JSON article's `lang`).
    pub source: &'static str,
}

/// Detects the language of `text`; `None` when whatlang cannot tell at all.
pub fn detect(text: &str) -> Option<Detection> {
    let info = whatlang::detect(text)?;
    Some(Detection {
        code: iso639_1(info.lang()).to_string(),
        confidence: info.confidence(),
        reliable: info.is_reliable(),
        source: "detected",
    })
}

/// ISO 639-1 for the languages whatlang knows that have one.
fn iso639_1(lang: Lang) -> &'static str {
    match lang {
        Lang::Eng => "en",
        Lang::Por => "pt",
        Lang::Fra => "fr",
        Lang::Ara => "ar",
        Lang::Spa => "es",
        Lang::Ita => "it",
        Lang::Deu => "de",
        Lang::Nld => "nl",
        Lang::Rus => "ru",
        Lang::Ukr => "uk",
        Lang::Pol => "pl",
        Lang::Tur => "tr",
        Lang::Pes => "fa",
        Lang::Urd => "ur",
        Lang::Heb => "he",
        Lang::Hin => "hi",
        Lang::Cmn => "zh",
        Lang::Jpn => "ja",
        Lang::Kor => "ko",
        Lang::Ron => "ro",
        Lang::Cat => "ca",
        Lang::Swe => "sv",
        Lang::Dan => "da",
        Lang::Nob => "nb",
        Lang::Fin => "fi",
        Lang::Ell => "el",
        Lang::Ind => "id",
        Lang::Vie => "vi",
        other => other.code(),
    }
}

/// English name of a language code, for prompts and reports.
pub fn english_name(code: &str) -> String {
    let name = match code {
        "en" => "English",
        "pt" => "Portuguese",
        "fr" => "French",
        "ar" => "Arabic",
        "es" => "Spanish",
        "it" => "Italian",
        "de" => "German",
        "nl" => "Dutch",
        "ru" => "Russian",
        "uk" => "Ukrainian",
        "pl" => "Polish",
        "tr" => "Turkish",
        "fa" => "Persian",
        "zh" => "Chinese",
        "ja" => "Japanese",
        "ko" => "Korean",
        other => return other.to_string(),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_the_three_languages_on_text_of_our_own() {
        let cases = [
            ("O governo anunciou ontem um novo pacote de medidas para apoiar as famílias e as empresas afetadas pela subida dos preços da energia.", "pt"),
            ("Le gouvernement a annoncé hier un nouveau plan de mesures pour soutenir les ménages et les entreprises touchés par la hausse des prix de l'énergie.", "fr"),
            ("أعلنت الحكومة أمس عن حزمة جديدة من الإجراءات لدعم الأسر والشركات المتضررة من ارتفاع أسعار الطاقة.", "ar"),
            ("The government announced a new package of measures yesterday to support households and businesses hit by rising energy prices.", "en"),
        ];
        for (text, code) in cases {
            let d = detect(text).unwrap();
            assert_eq!(d.code, code, "{text}");
            assert!(d.confidence > 0.5, "{d:?}");
        }
    }

    #[test]
    fn names_languages() {
        assert_eq!(english_name("ar"), "Arabic");
        assert_eq!(english_name("xx"), "xx");
    }
}
