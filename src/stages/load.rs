//! Reading input files into source documents: `.txt`, `.md`, and `.json` with
//! `title`/`body`/optional `lang`. Every problem is reported with the file's path.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::domain::{Format, InputSet, SkippedInput, SourceDoc};
use crate::error::{Error, Result};

pub mod front_matter;

pub const EXTENSIONS: [&str; 3] = ["txt", "md", "json"];

/// The files a run walked, as a count and a hash of their paths in order.
pub fn input_set(files: &[PathBuf]) -> InputSet {
    let mut hash = Sha256::new();
    for f in files {
        hash.update(f.to_string_lossy().as_bytes());
        hash.update(b"\n");
    }
    InputSet {
        files: files.len(),
        sha256: hash.finalize().iter().map(|b| format!("{b:02x}")).collect(),
    }
}

/// Files larger than this are refused unless `--max-bytes` says otherwise.
pub const DEFAULT_MAX_BYTES: u64 = 2 * 1024 * 1024;

#[derive(Deserialize)]
struct JsonArticle {
    title: Option<String>,
    body: String,
    lang: Option<String>,
}

/// The files a run reads: folders expanded (their `.txt`, `.md` and `.json` files, sorted),
/// files kept as given, each file once (by canonical path). Paths that do not exist, special
/// files (FIFOs, devices, sockets), dangling links and folders named like articles are
/// errors naming them; a folder's other entries are skipped and listed; `exclude` (the
/// output folder) is never read.
pub fn collect_inputs(
    paths: &[PathBuf],
    exclude: Option<&Path>,
) -> (Vec<PathBuf>, Vec<Error>, Vec<SkippedInput>) {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    let mut skipped = Vec::new();
    let mut seen = BTreeSet::new();
    let excluded = exclude.and_then(|p| p.canonicalize().ok());
    let in_output = |path: &Path| {
        excluded
            .as_ref()
            .is_some_and(|out| path.canonicalize().is_ok_and(|c| c.starts_with(out)))
    };
    let mut take = |path: PathBuf, skipped: &mut Vec<SkippedInput>, errors: &mut Vec<Error>| {
        if path.to_str().is_none() {
            // Reports name files in UTF-8 (JSON, Markdown): such a name could not be written.
            errors.push(Error::input(
                PathBuf::from(path.to_string_lossy().into_owned()),
                "file name is not valid UTF-8 (shown with \u{FFFD}); rename the file",
            ));
            return;
        }
        let canonical = path.canonicalize().unwrap_or_else(|_| path.clone());
        if seen.insert(canonical) {
            files.push(path);
        } else {
            skipped.push(SkippedInput::new(
                &path,
                "the same file was given already: read once",
            ));
        }
    };
    for path in paths {
        match entry_kind(path) {
            Ok(EntryKind::Folder) => match std::fs::read_dir(path) {
                Ok(entries) => {
                    let mut found: Vec<PathBuf> =
                        entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
                    found.sort();
                    let mut articles = 0;
                    for entry in found {
                        if in_output(&entry) {
                            skipped.push(SkippedInput::new(&entry, "inside the output folder"));
                            continue;
                        }
                        let hidden = entry
                            .file_name()
                            .is_some_and(|n| n.as_encoded_bytes().starts_with(b"."));
                        if hidden {
                            skipped.push(SkippedInput::new(&entry, "hidden file"));
                            continue;
                        }
                        if !has_supported_extension(&entry) {
                            skipped
                                .push(SkippedInput::new(&entry, "not a .txt, .md or .json file"));
                            continue;
                        }
                        match entry_kind(&entry) {
                            Ok(EntryKind::File) => {
                                articles += 1;
                                take(entry, &mut skipped, &mut errors);
                            }
                            Ok(EntryKind::Folder) => errors.push(Error::input(
                                &entry,
                                "is a folder named like an article; folders are not read recursively",
                            )),
                            Err(e) => errors.push(e),
                        }
                    }
                    if articles == 0 {
                        errors.push(Error::input(
                            path,
                            "folder holds no .txt, .md or .json file",
                        ));
                    }
                }
                Err(e) => errors.push(Error::io(path, e)),
            },
            Ok(EntryKind::File) if !has_supported_extension(path) => errors.push(Error::input(
                path,
                "unsupported file type: expected .txt, .md or .json",
            )),
            Ok(EntryKind::File) if in_output(path) => {
                skipped.push(SkippedInput::new(path, "inside the output folder"))
            }
            Ok(EntryKind::File) => take(path.clone(), &mut skipped, &mut errors),
            Err(e) => errors.push(e),
        }
    }
    (files, errors, skipped)
}

enum EntryKind {
    File,
    Folder,
}

/// A regular file or a folder (after following links); anything else is an error in words.
fn entry_kind(path: &Path) -> Result<EntryKind> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Ok(EntryKind::Folder),
        Ok(m) => special_file(&m)
            .map(|what| {
                Err(Error::input(
                    path,
                    format!("{what}, not a regular file: not read"),
                ))
            })
            .unwrap_or(Ok(EntryKind::File)),
        Err(e) => Err(match std::fs::symlink_metadata(path) {
            Ok(link) if link.file_type().is_symlink() => {
                if e.raw_os_error() == Some(libc::ELOOP) {
                    Error::input(path, "symbolic link loop: not read")
                } else {
                    Error::input(path, "dangling symbolic link (its target does not exist)")
                }
            }
            _ if e.kind() == std::io::ErrorKind::NotFound => {
                Error::input(path, "no such file or folder")
            }
            _ => Error::io(path, e),
        }),
    }
}

/// What a non-regular file is, in words (`None` for a regular file).
fn special_file(m: &std::fs::Metadata) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    let t = m.file_type();
    if t.is_file() {
        None
    } else if t.is_fifo() {
        Some("a FIFO (named pipe)")
    } else if t.is_socket() {
        Some("a socket")
    } else if t.is_char_device() {
        Some("a character device")
    } else if t.is_block_device() {
        Some("a block device")
    } else if t.is_dir() {
        Some("a folder")
    } else {
        Some("a special file")
    }
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

/// The longest title a file may declare (a title is one line; a longer one is data).
pub const MAX_DECLARED_TITLE_CHARS: usize = 1000;

/// Reads a regular file of at most `max_bytes`. The file is opened without blocking (a FIFO
/// would wait forever for a writer) and its type and size are checked on the opened handle,
/// so a link swapped for a device between the check and the read changes nothing.
pub fn read_bounded(path: &Path, max_bytes: u64) -> Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| entry_kind(path).err().unwrap_or_else(|| Error::io(path, e)))?;
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    if let Some(what) = special_file(&meta) {
        return Err(Error::input(
            path,
            format!("{what}, not a regular file: not read"),
        ));
    }
    let size = meta.len();
    if size > max_bytes {
        return Err(too_big(path, size, max_bytes));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    // A file that grows while it is read stops at the limit all the same.
    file.take(max_bytes + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > max_bytes {
        return Err(too_big(path, bytes.len() as u64, max_bytes));
    }
    Ok(bytes)
}

fn too_big(path: &Path, size: u64, max_bytes: u64) -> Error {
    Error::input(
        path,
        format!("file is {size} bytes, over the limit of {max_bytes} (raise it with --max-bytes)"),
    )
}

/// Reads and decodes one file.
pub fn load(path: &Path, id: String, max_bytes: u64) -> Result<SourceDoc> {
    let bytes = read_bounded(path, max_bytes)?;
    let (text, encoding_note) = decode_text(path, &bytes)?;
    if let Some(note) = encoding_note {
        tracing::info!(file = %path.display(), "{note}");
    }
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
        let (front, body) = front_matter::split(&text).map_err(|e| Error::input(path, e))?;
        (body.to_string(), front.title, front.lang)
    };
    if text.trim().is_empty() {
        return Err(Error::input(path, "empty article: no text to translate"));
    }
    if !text.chars().any(char::is_alphabetic) {
        return Err(Error::input(
            path,
            "no language-bearing text: only emoji, digits, symbols or punctuation",
        ));
    }
    let declared_title = declared_title.filter(|t| !t.trim().is_empty());
    if let Some(title) = &declared_title {
        let chars = title.chars().count();
        if chars > MAX_DECLARED_TITLE_CHARS {
            return Err(Error::input(
                path,
                format!("title is {chars} characters; a title is one line of at most {MAX_DECLARED_TITLE_CHARS}"),
            ));
        }
    }
    Ok(SourceDoc {
        id,
        path: path.to_path_buf(),
        format,
        text,
        declared_title,
        declared_lang: declared_lang.and_then(|l| primary_language(&l)),
    })
}

/// The language of a declared tag, lower-cased: "pt-BR" and "pt_PT" are "pt"; an empty tag is
/// no declaration (detection decides).
fn primary_language(tag: &str) -> Option<String> {
    let primary = tag.trim().split(['-', '_']).next().unwrap_or("").trim();
    (!primary.is_empty()).then(|| primary.to_ascii_lowercase())
}

/// UTF-8 (a BOM is dropped) or UTF-16 with its BOM (decoded, and said so); binary data and
/// other encodings are refused clearly.
fn decode_text(path: &Path, bytes: &[u8]) -> Result<(String, Option<String>)> {
    if bytes.is_empty() {
        return Err(Error::input(path, "empty file"));
    }
    let (text, note) = match encoding_rs::Encoding::for_bom(bytes) {
        Some((encoding, bom)) if encoding != encoding_rs::UTF_8 => {
            let (text, malformed) = encoding.decode_without_bom_handling(&bytes[bom..]);
            if malformed {
                return Err(Error::input(
                    path,
                    format!("not valid {} despite its byte-order mark", encoding.name()),
                ));
            }
            (
                text.into_owned(),
                Some(format!(
                    "decoded from {} (byte-order mark)",
                    encoding.name()
                )),
            )
        }
        _ => {
            let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
            if bytes.contains(&0) {
                return Err(Error::input(
                    path,
                    "binary data (NUL bytes), not a text article (UTF-16 needs its byte-order mark)",
                ));
            }
            let text = std::str::from_utf8(bytes).map_err(|e| {
                Error::input(
                    path,
                    format!(
                        "not valid UTF-8 (invalid byte at offset {}); convert the file to UTF-8, e.g. with iconv",
                        e.valid_up_to()
                    ),
                )
            })?;
            (text.to_string(), None)
        }
    };
    if text.contains('\0') {
        return Err(Error::input(
            path,
            "binary data (NUL characters), not a text article",
        ));
    }
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
    Ok((text, note))
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
        let (files, errors, skipped) =
            collect_inputs(&[dir.path().to_path_buf(), dir.path().join("c.pdf")], None);
        assert_eq!(skipped.len(), 1, "{skipped:?}");
        let names: Vec<_> = files
            .iter()
            .map(|p| p.file_name().unwrap().to_owned())
            .collect();
        assert_eq!(names, ["a.md", "b.txt"]);
        assert_eq!(errors.len(), 1);
        assert!(errors[0].to_string().contains("c.pdf"));
    }

    #[test]
    fn declared_languages_are_read_as_their_primary_tag() {
        assert_eq!(primary_language(" pt-BR ").as_deref(), Some("pt"));
        assert_eq!(primary_language("FR_ca").as_deref(), Some("fr"));
        assert_eq!(primary_language("  "), None);
    }

    #[test]
    fn ids_are_unique() {
        let mut taken = BTreeSet::new();
        assert_eq!(unique_id(Path::new("x/a.txt"), &mut taken), "a");
        assert_eq!(unique_id(Path::new("y/a.md"), &mut taken), "a-2");
    }
}
