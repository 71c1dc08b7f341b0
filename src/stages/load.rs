//! Reading input files into source documents: `.txt`, `.md`, and `.json` with
//! `title`/`body`/optional `lang`. Every problem is reported with the file's path.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::domain::{Format, SourceDoc};
use crate::error::{Error, Result};

pub const EXTENSIONS: [&str; 3] = ["txt", "md", "json"];

/// Files larger than this are refused unless `--max-bytes` says otherwise.
pub const DEFAULT_MAX_BYTES: u64 = 2 * 1024 * 1024;

#[derive(Deserialize)]
struct JsonArticle {
    title: Option<String>,
    body: String,
    lang: Option<String>,
}

/// Expands folders (their `.txt`, `.md` and `.json` files, sorted) and keeps files as given.
/// Paths that do not exist or files with another extension come back as errors.
pub fn collect_inputs(paths: &[PathBuf]) -> (Vec<PathBuf>, Vec<Error>) {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        if path.is_dir() {
            match std::fs::read_dir(path) {
                Ok(entries) => {
                    let mut found: Vec<PathBuf> = entries
                        .filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|p| p.is_file() && has_supported_extension(p))
                        .collect();
                    found.sort();
                    if found.is_empty() {
                        errors.push(Error::input(
                            path,
                            "folder holds no .txt, .md or .json file",
                        ));
                    }
                    files.extend(found);
                }
                Err(e) => errors.push(Error::io(path, e)),
            }
        } else if !path.exists() {
            errors.push(Error::input(path, "no such file or folder"));
        } else if !has_supported_extension(path) {
            errors.push(Error::input(
                path,
                "unsupported file type: expected .txt, .md or .json",
            ));
        } else {
            files.push(path.clone());
        }
    }
    (files, errors)
}

fn has_supported_extension(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Gives each document a unique id from its file stem (`name`, `name-2`, …).
pub fn unique_id(path: &Path, taken: &mut BTreeSet<String>) -> String {
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("article")
        .to_string();
    let mut id = stem.clone();
    let mut n = 2;
    while !taken.insert(id.clone()) {
        id = format!("{stem}-{n}");
        n += 1;
    }
    id
}

/// Reads and decodes one file.
pub fn load(path: &Path, id: String, max_bytes: u64) -> Result<SourceDoc> {
    let size = std::fs::metadata(path)
        .map_err(|e| Error::io(path, e))?
        .len();
    if size > max_bytes {
        return Err(Error::input(
            path,
            format!(
                "file is {size} bytes, over the limit of {max_bytes} (raise it with --max-bytes)"
            ),
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let text = decode_text(path, &bytes)?;
    let format = match path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
    {
        Some(e) if e == "md" => Format::Markdown,
        Some(e) if e == "json" => Format::Json,
        _ => Format::Text,
    };
    let (text, declared_title, declared_lang) = if format == Format::Json {
        let article: JsonArticle = serde_json::from_str(&text).map_err(|e| {
            Error::input(
                path,
                format!("not an article object {{title, body, lang?}}: {e}"),
            )
        })?;
        (article.body, article.title, article.lang)
    } else {
        (text, None, None)
    };
    if text.trim().is_empty() {
        return Err(Error::input(path, "empty article: no text to translate"));
    }
    Ok(SourceDoc {
        id,
        path: path.to_path_buf(),
        format,
        text,
        declared_title: declared_title.filter(|t| !t.trim().is_empty()),
        declared_lang: declared_lang.map(|l| l.trim().to_ascii_lowercase()),
    })
}

/// UTF-8 only (a BOM is dropped); binary data and other encodings are refused clearly.
fn decode_text(path: &Path, bytes: &[u8]) -> Result<String> {
    if bytes.is_empty() {
        return Err(Error::input(path, "empty file"));
    }
    if bytes.contains(&0) {
        return Err(Error::input(
            path,
            "binary data (NUL bytes), not a text article",
        ));
    }
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = std::str::from_utf8(bytes).map_err(|e| {
        Error::input(
            path,
            format!(
                "not valid UTF-8 (invalid byte at offset {}); convert the file to UTF-8, e.g. with iconv",
                e.valid_up_to()
            ),
        )
    })?;
    let controls = text
        .chars()
        .filter(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        .count();
    if controls * 20 > text.chars().count() {
        return Err(Error::input(
            path,
            "binary data (mostly control characters), not a text article",
        ));
    }
    Ok(text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    #[test]
    fn refuses_bad_files_with_their_path() {
        let dir = tempfile::tempdir().unwrap();
        let cases: [(&str, &[u8], &str); 4] = [
            ("empty.txt", b"", "empty"),
            ("blank.txt", b"  \n\n ", "empty article"),
            (
                "latin1.txt",
                b"Not\xedcia de S\xe3o Paulo",
                "not valid UTF-8",
            ),
            (
                "image.txt",
                b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
                "binary",
            ),
        ];
        for (name, bytes, expected) in cases {
            let path = write(dir.path(), name, bytes);
            let err = load(&path, "x".into(), DEFAULT_MAX_BYTES)
                .unwrap_err()
                .to_string();
            assert!(err.contains(name), "{err}");
            assert!(err.contains(expected), "{err}");
        }
    }

    #[test]
    fn refuses_huge_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "big.txt", &vec![b'a'; 2048]);
        let err = load(&path, "big".into(), 1024).unwrap_err().to_string();
        assert!(err.contains("over the limit of 1024"), "{err}");
    }

    #[test]
    fn reads_json_articles() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "a.json",
            r#"{"title": "Titre", "body": "Le corps.", "lang": "FR"}"#.as_bytes(),
        );
        let doc = load(&path, "a".into(), DEFAULT_MAX_BYTES).unwrap();
        assert_eq!(doc.text, "Le corps.");
        assert_eq!(doc.declared_title.as_deref(), Some("Titre"));
        assert_eq!(doc.declared_lang.as_deref(), Some("fr"));
        let bad = write(dir.path(), "b.json", br#"{"headline": "x"}"#);
        let err = load(&bad, "b".into(), DEFAULT_MAX_BYTES)
            .unwrap_err()
            .to_string();
        assert!(err.contains("b.json") && err.contains("body"), "{err}");
    }

    #[test]
    fn expands_folders_and_rejects_other_types() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "b.txt", b"x");
        write(dir.path(), "a.md", b"x");
        write(dir.path(), "c.pdf", b"x");
        let (files, errors) = collect_inputs(&[dir.path().to_path_buf(), dir.path().join("c.pdf")]);
        let names: Vec<_> = files
            .iter()
            .map(|p| p.file_name().unwrap().to_owned())
            .collect();
        assert_eq!(names, ["a.md", "b.txt"]);
        assert_eq!(errors.len(), 1);
        assert!(errors[0].to_string().contains("c.pdf"));
    }

    #[test]
    fn ids_are_unique() {
        let mut taken = BTreeSet::new();
        assert_eq!(unique_id(Path::new("x/a.txt"), &mut taken), "a");
        assert_eq!(unique_id(Path::new("y/a.md"), &mut taken), "a-2");
    }
}
