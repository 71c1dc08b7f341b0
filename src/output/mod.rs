//! Writing the outputs: `brief.md`, `brief.json` and `brief.html` (three [`Report`]s of the
//! same run) and `articles/<id>.md`, each atomically (written to a temporary file in the same
//! folder, then renamed). The reports are one generation: all are written before any replaces
//! its predecessor, so they always come from the same run. The output folder is claimed first
//! ([`OutDir::claim`]): locked against a second run, checked writable with room to write.

pub mod html;
pub mod json;
pub mod markdown;

use std::io::Write;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::domain::{ArticleOutcome, BriefSentence, InputSet, RunOutcome, StageStats};
use crate::engine::registry::ModelRecord;
use crate::error::{Error, Result};
use crate::store::StoreRecord;

pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    staged(path, contents)?
        .persist(path)
        .map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

/// `contents` written and flushed to a temporary file beside `path`, created with the
/// ordinary file mode (0666 less the umask, as any program's output; tempfile's own default
/// is 0600).
fn staged(path: &Path, contents: &[u8]) -> Result<tempfile::NamedTempFile> {
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".crossbrief-")
        .permissions(std::fs::Permissions::from_mode(0o666))
        .tempfile_in(dir)
        .map_err(|e| Error::io(dir, e))?;
    tmp.write_all(contents)
        .and_then(|()| tmp.as_file().sync_data())
        .map_err(|e| Error::io(path, e))?;
    Ok(tmp)
}

/// `text` safe to print on a terminal or write into a report: control characters (an escape
/// sequence in a file name) are shown as `\u{1b}` instead of being sent.
pub fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Free space an output folder needs before a run starts (the sample run writes under 1 MiB).
pub const MIN_FREE_BYTES: u64 = 16 * 1024 * 1024;

/// An output folder claimed by this run: created, locked (a second run into it is refused
/// with this one's pid), and checked writable with room, before any model work.
pub struct OutDir {
    pub path: PathBuf,
    /// Held for the whole run; the lock goes with the handle when the run ends or dies.
    _lock: std::fs::File,
}

impl OutDir {
    /// Claims `path` for a run over `inputs`. Refused: an output folder that is one of the
    /// inputs (or holds one), a folder another run holds, one that cannot be written (top
    /// or `articles/`), a disk without [`MIN_FREE_BYTES`] free.
    pub fn claim(path: &Path, inputs: &[PathBuf]) -> Result<OutDir> {
        if let Some(file) = path
            .ancestors()
            .find(|a| !a.as_os_str().is_empty() && a.exists() && !a.is_dir())
        {
            return Err(Error::input(
                path,
                format!(
                    "{} is a file, not a folder: choose another --out",
                    file.display()
                ),
            ));
        }
        let articles = path.join("articles");
        std::fs::create_dir_all(&articles).map_err(|e| Error::io(&articles, e))?;
        let canonical = path.canonicalize().map_err(|e| Error::io(path, e))?;
        for input in inputs {
            let Ok(input_canonical) = input.canonicalize() else {
                continue;
            };
            if input_canonical == canonical || input_canonical.starts_with(&canonical) {
                return Err(Error::input(
                    path,
                    format!(
                        "the output folder would hold input {}: its brief would be read back as an article; choose another --out",
                        input.display()
                    ),
                ));
            }
        }
        for dir in [path, articles.as_path()] {
            // A file really created and removed: permission bits alone miss read-only mounts
            // and say nothing of root.
            staged(&dir.join("probe"), b"probe").map_err(|e| match e {
                Error::Io { error, .. } => Error::input(
                    dir,
                    format!("output folder is not writable ({error}); nothing was run"),
                ),
                other => other,
            })?;
        }
        let lock_path = path.join(".crossbrief.lock");
        let mut lock = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| Error::io(&lock_path, e))?;
        if let Err(e) = lock.try_lock() {
            let mut holder = String::new();
            let _ = std::io::Read::read_to_string(&mut lock, &mut holder);
            return Err(match e {
                std::fs::TryLockError::WouldBlock => Error::input(
                    path,
                    format!(
                        "another crossbrief run (pid {}) is writing into this folder; wait for it or choose another --out",
                        holder.trim()
                    ),
                ),
                std::fs::TryLockError::Error(e) => Error::io(&lock_path, e),
            });
        }
        lock.set_len(0)
            .and_then(|()| writeln!(lock, "{}", std::process::id()))
            .map_err(|e| Error::io(&lock_path, e))?;
        let free = free_bytes(path)?;
        if free < MIN_FREE_BYTES {
            return Err(Error::input(
                path,
                format!(
                    "only {} KiB free on the output folder's disk, under the {} MiB a run needs; nothing was run",
                    free / 1024,
                    MIN_FREE_BYTES / (1024 * 1024)
                ),
            ));
        }
        Ok(OutDir {
            path: path.to_path_buf(),
            _lock: lock,
        })
    }
}

/// Bytes free for an unprivileged writer on the file system of `path`.
fn free_bytes(path: &Path) -> Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| Error::input(path, "path holds a NUL byte"))?;
    // statvfs is the only portable way to ask; std has no wrapper for it.
    let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid C string and a zeroed struct statvfs fills.
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut stats) } != 0 {
        return Err(Error::io(path, std::io::Error::last_os_error()));
    }
    Ok(stats.f_bavail as u64 * stats.f_frsize as u64)
}

/// Run facts for `brief.json`.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct RunRecord {
    pub crossbrief_version: String,
    pub profile: String,
    pub device: String,
    /// The decoding kernels this CPU ran (`x86_64-avx512`, `x86_64-avx2`, or the
    /// architecture when neither): golden files are kept per kernel class.
    pub kernel_class: String,
    pub models: Vec<ModelRecord>,
    pub decoding: DecodingRecord,
    pub stages: Vec<StageStats>,
    pub total_wall_s: f64,
    pub peak_memory_mb: Option<f64>,
    /// This generation of `brief.md`, `brief.json` and `brief.html` (each names it): the run's
    /// start in seconds since 1970 and its pid.
    pub generation: String,
    /// `K/N` when the run took one shard of the articles (`--shard`).
    pub shard: Option<String>,
    /// For `crossbrief merge`: the shards merged (`K/N` from their folders).
    pub merged_shards: Vec<String>,
    /// The input files walked (every shard of one run walks the same).
    pub inputs: InputSet,
    /// What the run took from and added to the work store (`None` with `--no-cache`).
    pub store: Option<StoreRecord>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct DecodingRecord {
    /// The values given on the command line (`None`: each model's manifest value).
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub seed: Option<u64>,
    pub beam: Option<usize>,
    pub batch_rows: Option<usize>,
    pub batch_tokens: Option<usize>,
    /// `false` with `--no-shortlist`.
    pub shortlist: Option<bool>,
    pub consensus: String,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct SourceEntry {
    pub n: usize,
    pub id: String,
    pub source_path: PathBuf,
    pub language: String,
    pub title: String,
    pub title_en: String,
}

/// Sources in brief order: the articles that have a summary.
pub fn sources(articles: &[ArticleOutcome]) -> Vec<SourceEntry> {
    articles
        .iter()
        .filter(|a| a.summary.is_some())
        .enumerate()
        .map(|(i, a)| SourceEntry {
            n: i + 1,
            id: a.id.clone(),
            source_path: a.source_path.clone(),
            language: a.language.clone(),
            title: a.title.clone(),
            title_en: a.title_en.clone(),
        })
        .collect()
}

/// One output file of a run, rendered from the run's result: `brief.md`, `brief.json` and
/// `brief.html` are three of these, written side by side from the same view.
pub trait Report {
    fn file_name(&self) -> &'static str;
    fn render(&self, view: &ReportView) -> Result<String>;
}

/// The brief's paragraphs, each as its sentences paired with their `brief_sentences` entry
/// (in order: that list is the brief's sentences as `sentences` splits them).
pub fn brief_paragraphs(outcome: &RunOutcome) -> Vec<Vec<(String, Option<&BriefSentence>)>> {
    let Some(text) = &outcome.brief else {
        return Vec::new();
    };
    let mut listed = outcome.brief_sentences.iter();
    text.split("\n\n")
        .map(|p| {
            crate::language::sentences::sentences(p)
                .into_iter()
                .map(|s| (s, listed.next()))
                .collect()
        })
        .collect()
}

/// What every report renders.
pub struct ReportView<'a> {
    pub outcome: &'a RunOutcome,
    pub sources: Vec<SourceEntry>,
    pub run: RunRecord,
}

/// Every report of a run, rendered: (file name, contents).
pub fn render_reports(outcome: &RunOutcome, run: RunRecord) -> Result<Vec<(&'static str, String)>> {
    let view = ReportView {
        outcome,
        sources: sources(&outcome.articles),
        run,
    };
    let reports: [&dyn Report; 3] = [&markdown::Markdown, &json::Json, &html::Html];
    reports
        .iter()
        .map(|r| Ok((r.file_name(), r.render(&view)?)))
        .collect()
}

/// Writes the reports into `dir` as one generation: every file is written and flushed
/// beside its final name first, and only then are all renamed into place, so a failure
/// (full disk, a folder that turned read-only) leaves the previous generation whole.
pub fn write_generation(dir: &Path, reports: &[(&'static str, String)]) -> Result<()> {
    let staged = reports
        .iter()
        .map(|(name, text)| Ok((dir.join(name), staged(&dir.join(name), text.as_bytes())?)))
        .collect::<Result<Vec<_>>>()?;
    for (path, tmp) in staged {
        tmp.persist(&path).map_err(|e| Error::io(&path, e.error))?;
    }
    Ok(())
}

/// Where the reports of `generation` go when the output folder refuses them: a new folder in
/// the system's temporary directory, else the output folder's `articles/` (which may still
/// take files).
pub fn rescue(
    out_dir: &Path,
    generation: &str,
    reports: &[(&'static str, String)],
) -> Result<PathBuf> {
    let temp = std::env::temp_dir().join(format!("crossbrief-unsaved-{generation}"));
    let mut last = None;
    for dir in [temp, out_dir.join("articles")] {
        match std::fs::create_dir_all(&dir)
            .map_err(|e| Error::io(&dir, e))
            .and_then(|()| write_generation(&dir, reports))
        {
            Ok(()) => return Ok(dir),
            Err(e) => last = Some(e),
        }
    }
    Err(last.expect("two places were tried"))
}

/// Moves `articles/*.md` pages that this run did not write (an earlier run's, of articles
/// no longer given or now failing) into `superseded/`, and returns what moved.
pub fn set_aside_stale(out_dir: &Path, current_ids: &[String]) -> Result<Vec<PathBuf>> {
    let articles = out_dir.join("articles");
    let entries = std::fs::read_dir(&articles).map_err(|e| Error::io(&articles, e))?;
    let mut stale: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|e| e == "md")
                && p.file_stem()
                    .and_then(|s| s.to_str())
                    .is_some_and(|id| !id.starts_with('.') && !current_ids.iter().any(|c| c == id))
        })
        .collect();
    stale.sort();
    if stale.is_empty() {
        return Ok(stale);
    }
    let aside = out_dir.join("superseded");
    std::fs::create_dir_all(&aside).map_err(|e| Error::io(&aside, e))?;
    let mut moved = Vec::new();
    for path in stale {
        let target = aside.join(path.file_name().expect("a listed file has a name"));
        std::fs::rename(&path, &target).map_err(|e| Error::io(&path, e))?;
        moved.push(target);
    }
    Ok(moved)
}

/// `articles/<id>.md`: one article's English translation, written as soon as it is done.
pub fn write_translation(out_dir: &Path, a: &ArticleOutcome) -> Result<()> {
    write_atomic(
        &out_dir.join("articles").join(format!("{}.md", a.id)),
        markdown::translation_markdown(a).as_bytes(),
    )
}

/// A new generation id: the start in seconds since 1970 and the pid (`run.generation`).
pub fn new_generation() -> String {
    format!(
        "{}-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        std::process::id()
    )
}

/// Peak resident memory of this process (Linux `VmHWM`), in MiB.
pub fn peak_memory_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}
