//! Language identification (whatlang) reported as ISO 639-1 codes with a confidence, and
//! the step that turns a file into an article ready to translate: load, clean, detect
//! (`prepare`, and `prepare_all` for a run's inputs).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use whatlang::Lang;

use crate::config::manifest::Catalog;
use crate::config::shard::Shard;
use crate::domain::{
    Detection, Failure, Flag, FlagKind, InputSet, Prepared, Removal, SkippedInput, StageStats,
};
use crate::error::{Error, Result};
use crate::stages::clean::{self, BoilerplateRules};
use crate::stages::load;

/// Reads, cleans and identifies one file: a declared language (JSON `lang`) wins over
/// detection, and a disagreement or an unsure detection is flagged; a language the profile
/// cannot translate is refused.
pub fn prepare(
    path: &Path,
    id: String,
    max_bytes: u64,
    catalog: &Catalog,
    rules: &BoilerplateRules,
) -> Result<Prepared> {
    let doc = load::load(path, id, max_bytes)?;
    let dedup = clean::deduplicate(&doc.text, doc.format);
    let body = dedup.paragraphs.join("\n");
    let detected = detect(&body);
    let mut flags = Vec::new();
    let not_text: Vec<usize> = dedup
        .removed
        .iter()
        .filter_map(|r| match r {
            Removal::NotText { chars, .. } => Some(*chars),
            _ => None,
        })
        .collect();
    if !not_text.is_empty() {
        flags.push(Flag {
            kind: FlagKind::Input,
            message: format!(
                "removed {} piece(s) that are not prose (encoded data, inline images, code blocks; {} characters): not translated",
                not_text.len(),
                not_text.iter().sum::<usize>()
            ),
        });
    }
    if body.trim().is_empty() || !body.chars().any(char::is_alphabetic) {
        return Err(Error::input(
            path,
            "no language-bearing text left once encoded data and inline images are removed",
        ));
    }
    let lang = match (&doc.declared_lang, detected) {
        (Some(declared), detected) => {
            if let Some(d) = detected
                .as_ref()
                .filter(|d| d.reliable && &d.code != declared)
            {
                flags.push(Flag {
                    kind: FlagKind::Language,
                    message: format!("declared language {declared} but the text looks like {} (confidence {:.2})", d.code, d.confidence),
                });
            }
            Detection {
                code: declared.clone(),
                confidence: 1.0,
                reliable: true,
                source: "declared",
            }
        }
        (None, Some(d)) => d,
        (None, None) => {
            return Err(Error::input(
                path,
                "could not identify the language of the text",
            ))
        }
    };
    let supported = catalog.supported_languages();
    if !supported.contains(&lang.code) {
        return Err(Error::UnsupportedLanguage {
            path: path.to_path_buf(),
            lang: lang.code.clone(),
            how: if lang.source == "declared" {
                "declared in the file".to_string()
            } else {
                format!("detected with confidence {:.2}", lang.confidence)
            },
            supported: supported.join(", "),
        });
    }
    if !lang.reliable {
        flags.push(Flag {
            kind: FlagKind::Language,
            message: format!(
                "language detection unsure: {} with confidence {:.2}",
                lang.code, lang.confidence
            ),
        });
    }
    let cleaned = clean::finish(dedup, rules, &lang.code, doc.declared_title.as_deref());
    if cleaned.paragraphs.is_empty() {
        return Err(Error::input(
            path,
            "nothing left to translate after removing repeated blocks and boilerplate",
        ));
    }
    Ok(Prepared {
        // The caller knows its place among the inputs.
        position: 0,
        doc,
        lang,
        cleaned,
        flags,
    })
}

/// Load, clean and detect every input file; a file that fails is a failure, the rest go on.
pub fn prepare_all(
    catalog: &Catalog,
    rules: &BoilerplateRules,
    inputs: &[PathBuf],
    out_dir: &Path,
    max_bytes: u64,
    shard: Option<Shard>,
    stages: &mut Vec<StageStats>,
) -> (Vec<Prepared>, Vec<Failure>, Vec<SkippedInput>, InputSet) {
    let (files, mut input_errors, skipped) = load::collect_inputs(inputs, Some(out_dir));
    let walked = load::input_set(&files);
    // Errors that belong to no article (a path that does not exist) are reported by shard 0.
    if shard.is_some_and(|s| s.index != 0) {
        input_errors.clear();
    }
    let mut failures: Vec<Failure> = input_errors
        .iter()
        .map(|e| Failure::new(&error_path(e), "load", e))
        .collect();
    let started = Instant::now();
    let mut stage = StageStats::new("clean");
    let mut taken = BTreeSet::new();
    let mut prepared = Vec::new();
    for (position, path) in files.iter().enumerate() {
        // Ids and places are given over all the files, in order, so every shard gives each
        // the same.
        let id = load::unique_id(path, &mut taken);
        if shard.is_some_and(|s| !s.takes(&id)) {
            continue;
        }
        match prepare(path, id, max_bytes, catalog, rules) {
            Ok(p) => prepared.push(Prepared { position, ..p }),
            Err(e) => failures.push(Failure::new(path, "load", &e)),
        }
        stage.items += 1;
    }
    stage.finish(started);
    stages.push(stage);
    (prepared, failures, skipped, walked)
}

fn error_path(e: &Error) -> PathBuf {
    match e {
        Error::Input { path, .. } | Error::Io { path, .. } => path.clone(),
        _ => PathBuf::new(),
    }
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
}
