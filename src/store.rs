//! The work store: a content-addressed cache of finished model work, so that a killed run
//! resumes, and a re-run over a grown folder computes only what is new.
//!
//! A unit is one model call's result: an LLM generation (a translated chunk, a summary, a
//! brief paragraph) or a translator's output for one sentence (its greedy translation, or
//! its n-best list). Everything derived from a unit (confidences, checks, flags, citations)
//! is cheap and deterministic and is recomputed, so a change to a check never serves a stale
//! verdict. A unit's key hashes everything its result depends on: the model's files
//! (sha256), the exact prompt tokens (the template's text, the article text and the
//! tokenizer's reading of both) or the source sentence, the decoding settings and the
//! engine's algorithm version.
//!
//! Each entry is written to a temporary file and renamed into place as soon as its unit is
//! done, so `kill -9` loses at most the units in flight. An entry carries the sha256 and
//! length of its body: a truncated or corrupt one is reported, removed and recomputed, never
//! trusted. A failure to write the store only costs the reuse, never the run.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The first word of every entry, and the format of its body (raise it when a stored type
/// changes: the key holds it too, so entries of other formats are never even read).
const MAGIC: &str = "crossbrief-unit";
const FORMAT: &str = "1";
/// Entries live under `units/<kind>/<first two hex digits>/<key>`.
const UNITS: &str = "units";
/// Temporary files older than this are an earlier process's leftovers (prune removes them).
const STALE_TEMP: Duration = Duration::from_secs(3600);

/// The hash of everything a unit depends on, fed field by field.
#[derive(Clone)]
pub struct KeyBuilder(Sha256);

impl KeyBuilder {
    pub fn new(kind: &str) -> Self {
        let mut k = KeyBuilder(Sha256::new());
        k.text(FORMAT).text(kind);
        k
    }

    /// Each field is length-prefixed, so ("ab", "c") and ("a", "bc") differ.
    pub fn text(&mut self, value: &str) -> &mut Self {
        self.bytes(value.as_bytes())
    }

    pub fn bytes(&mut self, value: &[u8]) -> &mut Self {
        self.0.update((value.len() as u64).to_le_bytes());
        self.0.update(value);
        self
    }

    pub fn number(&mut self, value: u64) -> &mut Self {
        self.bytes(&value.to_le_bytes())
    }

    pub fn float(&mut self, value: f64) -> &mut Self {
        self.bytes(&value.to_bits().to_le_bytes())
    }

    pub fn ids(&mut self, ids: &[u32]) -> &mut Self {
        let bytes: Vec<u8> = ids.iter().flat_map(|i| i.to_le_bytes()).collect();
        self.bytes(&bytes)
    }

    pub fn finish(&self) -> Key {
        Key(hex(&self.0.clone().finalize()))
    }
}

/// A unit's key: 64 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(String);

impl Key {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Units reused, computed and found corrupt, of one kind or all.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
pub struct UnitCounts {
    /// Taken from the store instead of computed.
    pub reused: usize,
    /// Computed by this run (and stored, unless the store could not be written).
    pub computed: usize,
    /// Entries that failed their checksum or could not be read: removed and recomputed.
    pub corrupt: usize,
}

impl UnitCounts {
    fn add(&mut self, other: UnitCounts) {
        self.reused += other.reused;
        self.computed += other.computed;
        self.corrupt += other.corrupt;
    }
}

/// What a run did with the store, for its record.
#[derive(Debug, Clone, Default, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StoreRecord {
    /// The store's folder.
    pub path: PathBuf,
    #[serde(flatten)]
    pub total: UnitCounts,
    /// The same, per task: `translate` (first translations), `retranslate` (an LLM's second
    /// try at a chunk that failed a check, told what the English must contain), `consensus` (candidates for a low-confidence
    /// sentence), `summarize`, `brief`.
    pub by_task: BTreeMap<String, UnitCounts>,
    /// The corrupt entries found (removed, their units recomputed).
    pub corrupt_entries: Vec<PathBuf>,
    /// Why the store could not be written, if it could not (the run went on without it).
    pub write_error: Option<String>,
}

#[derive(Default)]
struct Tally {
    by_task: BTreeMap<String, UnitCounts>,
    corrupt_entries: Vec<PathBuf>,
    write_error: Option<String>,
}

/// An open store.
pub struct WorkStore {
    root: PathBuf,
    tally: Mutex<Tally>,
}

/// Why an entry is not to be trusted.
#[derive(Debug, thiserror::Error)]
pub enum EntryProblem {
    #[error("it has no crossbrief header")]
    NoHeader,
    #[error("its body is {actual} bytes, its header says {declared}: truncated")]
    Length { declared: usize, actual: usize },
    #[error("its body's sha256 does not match its header")]
    Checksum,
}

impl WorkStore {
    /// The default folder: `crossbrief/` in the user's cache directory.
    pub fn default_root() -> Option<PathBuf> {
        dirs::cache_dir().map(|d| d.join("crossbrief"))
    }

    /// Opens (creating) the store at `root`.
    pub fn open(root: &Path) -> Result<Self> {
        let units = root.join(UNITS);
        std::fs::create_dir_all(&units).map_err(|e| Error::io(&units, e))?;
        Ok(WorkStore {
            root: root.to_path_buf(),
            tally: Mutex::new(Tally::default()),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn entry_path(&self, kind: &str, key: &Key) -> PathBuf {
        entry_path(&self.root, kind, key)
    }

    fn count(&self, task: &str, f: impl FnOnce(&mut UnitCounts)) {
        let mut tally = self.tally.lock().unwrap_or_else(|p| p.into_inner());
        f(tally.by_task.entry(task.to_string()).or_default());
    }

    /// The stored unit of `kind` under `key`, if there is a sound one, counted under `task`
    /// (what the unit was for: translate, summarize…). A corrupt entry is reported, removed
    /// and counted; the caller computes the unit again.
    pub fn get<T: DeserializeOwned>(&self, kind: &str, task: &str, key: &Key) -> Option<T> {
        let path = self.entry_path(kind, key);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            // Another user's entry, say: not ours to judge or remove, only to recompute.
            Err(e) => {
                tracing::warn!(
                    "work store entry {} cannot be read ({e}); its unit is computed again",
                    path.display()
                );
                return None;
            }
        };
        match verify(&bytes).map(|body| serde_json::from_slice::<T>(body)) {
            // A sound entry this build cannot read (a stored type changed without a new
            // FORMAT): computed again and overwritten, not counted as damage.
            Ok(Err(e)) => {
                tracing::warn!(
                    "work store entry {} is not in this version's layout ({e}); its unit is computed again",
                    path.display()
                );
                None
            }
            Ok(Ok(value)) => {
                // Its time of last use, which `prune --older-than` goes by.
                let _ = std::fs::File::options()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.set_modified(SystemTime::now()));
                self.count(task, |c| c.reused += 1);
                Some(value)
            }
            Err(problem) => {
                tracing::warn!(
                    "work store entry {} is corrupt ({problem}); it is removed and its unit computed again",
                    path.display()
                );
                let _ = std::fs::remove_file(&path);
                self.count(task, |c| c.corrupt += 1);
                let mut tally = self.tally.lock().unwrap_or_else(|p| p.into_inner());
                tally.corrupt_entries.push(path);
                None
            }
        }
    }

    /// Stores a unit just computed. A write that fails is reported once and the run goes on.
    pub fn put<T: Serialize>(&self, kind: &str, task: &str, key: &Key, value: &T) {
        self.count(task, |c| c.computed += 1);
        let path = self.entry_path(kind, key);
        if let Err(e) = write_entry(&path, value) {
            let mut tally = self.tally.lock().unwrap_or_else(|p| p.into_inner());
            if tally.write_error.is_none() {
                tracing::warn!(
                    "the work store cannot be written ({e}); this run's work will not be reusable"
                );
                tally.write_error = Some(e.to_string());
            }
        }
    }

    /// What this run did with the store so far.
    pub fn record(&self) -> StoreRecord {
        let tally = self.tally.lock().unwrap_or_else(|p| p.into_inner());
        let mut total = UnitCounts::default();
        for counts in tally.by_task.values() {
            total.add(*counts);
        }
        StoreRecord {
            path: self.root.clone(),
            total,
            by_task: tally.by_task.clone(),
            corrupt_entries: tally.corrupt_entries.clone(),
            write_error: tally.write_error.clone(),
        }
    }
}

/// The store as one model's engine uses it: every key starts with the model's fingerprint
/// (its files' sha256 and the backend that runs it).
#[derive(Clone)]
pub struct ModelStore {
    store: Arc<WorkStore>,
    fingerprint: String,
}

impl ModelStore {
    pub fn new(store: Arc<WorkStore>, fingerprint: String) -> Self {
        ModelStore { store, fingerprint }
    }

    /// A key for a unit of `kind` made by this model with `version` of its algorithm.
    pub fn key(&self, kind: &str, version: u64) -> KeyBuilder {
        let mut k = KeyBuilder::new(kind);
        k.text(&self.fingerprint).number(version);
        k
    }

    pub fn get<T: DeserializeOwned>(&self, kind: &str, task: &str, key: &Key) -> Option<T> {
        self.store.get(kind, task, key)
    }

    pub fn put<T: Serialize>(&self, kind: &str, task: &str, key: &Key, value: &T) {
        self.store.put(kind, task, key, value)
    }
}

fn entry_path(root: &Path, kind: &str, key: &Key) -> PathBuf {
    root.join(UNITS).join(kind).join(&key.0[..2]).join(&key.0)
}

/// An entry: a header line (magic, body length, body sha256) and the JSON body.
fn encode_entry(body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "{MAGIC} {FORMAT} {} {}\n",
        body.len(),
        hex(&Sha256::digest(body))
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// The body of a sound entry.
fn verify(bytes: &[u8]) -> std::result::Result<&[u8], EntryProblem> {
    let newline = bytes
        .iter()
        .position(|&b| b == b'\n')
        .ok_or(EntryProblem::NoHeader)?;
    let header = std::str::from_utf8(&bytes[..newline]).map_err(|_| EntryProblem::NoHeader)?;
    let mut fields = header.split(' ');
    if fields.next() != Some(MAGIC) || fields.next() != Some(FORMAT) {
        return Err(EntryProblem::NoHeader);
    }
    let declared: usize = fields
        .next()
        .and_then(|n| n.parse().ok())
        .ok_or(EntryProblem::NoHeader)?;
    let sha = fields.next().ok_or(EntryProblem::NoHeader)?;
    let body = &bytes[newline + 1..];
    if body.len() != declared {
        return Err(EntryProblem::Length {
            declared,
            actual: body.len(),
        });
    }
    if hex(&Sha256::digest(body)) != sha {
        return Err(EntryProblem::Checksum);
    }
    Ok(body)
}

/// Written beside its place and renamed into it: a reader sees the whole entry or none.
fn write_entry<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let dir = path.parent().expect("entries live in a folder");
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let body = serde_json::to_vec(value).expect("plain data serializes");
    // Readable by every user of a shared store (tempfile's own default is 0600).
    let mut temp = tempfile::Builder::new()
        .prefix(".tmp-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .tempfile_in(dir)
        .map_err(|e| Error::io(dir, e))?;
    temp.write_all(&encode_entry(&body))
        .map_err(|e| Error::io(temp.path(), e))?;
    temp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

/// What `crossbrief cache stats` shows.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StoreStats {
    pub path: PathBuf,
    /// Entries and bytes per kind.
    pub kinds: BTreeMap<String, (usize, u64)>,
    pub entries: usize,
    pub bytes: u64,
    /// When the least and the most recently used entries were last used.
    pub oldest: Option<SystemTime>,
    pub newest: Option<SystemTime>,
    /// Temporary files of writes in flight or cut short.
    pub temporary: usize,
}

/// One file of the store, as a walk finds it.
struct Found {
    kind: String,
    path: PathBuf,
    bytes: u64,
    used: SystemTime,
    temporary: bool,
}

fn walk(root: &Path) -> Result<Vec<Found>> {
    let units = root.join(UNITS);
    let mut found = Vec::new();
    let read = |dir: &Path| -> Result<Vec<std::fs::DirEntry>> {
        match std::fs::read_dir(dir) {
            Ok(entries) => Ok(entries.flatten().collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(Error::io(dir, e)),
        }
    };
    for kind in read(&units)? {
        let kind_name = kind.file_name().to_string_lossy().into_owned();
        for shelf in read(&kind.path())? {
            for entry in read(&shelf.path())? {
                let Ok(meta) = entry.metadata() else { continue };
                if !meta.is_file() {
                    continue;
                }
                found.push(Found {
                    kind: kind_name.clone(),
                    temporary: entry.file_name().to_string_lossy().starts_with(".tmp-"),
                    path: entry.path(),
                    bytes: meta.len(),
                    used: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                });
            }
        }
    }
    Ok(found)
}

/// The store's contents at `root`.
pub fn stats(root: &Path) -> Result<StoreStats> {
    let mut stats = StoreStats {
        path: root.to_path_buf(),
        ..Default::default()
    };
    for f in walk(root)? {
        if f.temporary {
            stats.temporary += 1;
            continue;
        }
        let kind = stats.kinds.entry(f.kind).or_default();
        kind.0 += 1;
        kind.1 += f.bytes;
        stats.entries += 1;
        stats.bytes += f.bytes;
        stats.oldest = Some(stats.oldest.map_or(f.used, |o| o.min(f.used)));
        stats.newest = Some(stats.newest.map_or(f.used, |n| n.max(f.used)));
    }
    Ok(stats)
}

/// What `crossbrief cache prune` removed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PruneReport {
    /// Entries not used for longer than asked.
    pub aged: usize,
    /// Entries that failed their checksum.
    pub corrupt: usize,
    /// Temporary files an earlier process left.
    pub temporary: usize,
    pub bytes: u64,
    pub kept: usize,
}

/// Removes from the store at `root` every corrupt entry, every stale temporary file, and,
/// with `older_than`, every entry not used for that long.
pub fn prune(root: &Path, older_than: Option<Duration>) -> Result<PruneReport> {
    let now = SystemTime::now();
    let age = |used: SystemTime| now.duration_since(used).unwrap_or_default();
    let mut report = PruneReport::default();
    for f in walk(root)? {
        let remove = if f.temporary {
            let stale = age(f.used) > STALE_TEMP;
            report.temporary += usize::from(stale);
            stale
        } else if older_than.is_some_and(|limit| age(f.used) > limit) {
            report.aged += 1;
            true
        } else {
            let sound = std::fs::read(&f.path).is_ok_and(|bytes| verify(&bytes).is_ok());
            report.corrupt += usize::from(!sound);
            !sound
        };
        if remove {
            std::fs::remove_file(&f.path).map_err(|e| Error::io(&f.path, e))?;
            report.bytes += f.bytes;
        } else if !f.temporary {
            report.kept += 1;
        }
    }
    Ok(report)
}

/// `Vec<f32>` stored as the floats' bit patterns: a unit comes back bit for bit, whatever
/// a decimal reading would round.
pub mod exact_f32s {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(values: &[f32], s: S) -> Result<S::Ok, S::Error> {
        let bits: Vec<u32> = values.iter().map(|v| v.to_bits()).collect();
        bits.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f32>, D::Error> {
        Ok(Vec::<u32>::deserialize(d)?
            .into_iter()
            .map(f32::from_bits)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> Key {
        KeyBuilder::new("test").text(text).finish()
    }

    #[test]
    fn a_unit_comes_back_as_stored() {
        let dir = tempfile::tempdir().unwrap();
        let store = WorkStore::open(dir.path()).unwrap();
        assert_eq!(store.get::<Vec<f32>>("llm", "t", &key("a")), None);
        let value = vec![-0.125f32, -3.3e-7, -12.75];
        store.put("llm", "t", &key("a"), &value);
        assert_eq!(store.get::<Vec<f32>>("llm", "t", &key("a")), Some(value));
        let record = store.record();
        assert_eq!(
            record.total,
            UnitCounts {
                reused: 1,
                computed: 1,
                corrupt: 0
            }
        );
    }

    #[test]
    fn fields_are_delimited() {
        let ab_c = KeyBuilder::new("k").text("ab").text("c").finish();
        let a_bc = KeyBuilder::new("k").text("a").text("bc").finish();
        assert_ne!(ab_c, a_bc);
    }

    #[test]
    fn truncated_and_altered_entries_are_refused_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = WorkStore::open(dir.path()).unwrap();
        for (name, damage) in [
            ("truncated", 0usize),
            ("flipped", 1),
            ("headless", 2),
            ("empty", 3),
        ] {
            let k = key(name);
            store.put("llm", "t", &k, &format!("the translation of {name}"));
            let path = entry_path(dir.path(), "llm", &k);
            let mut bytes = std::fs::read(&path).unwrap();
            match damage {
                0 => bytes.truncate(bytes.len() - 3),
                1 => *bytes.last_mut().unwrap() ^= 0x20,
                2 => bytes = bytes[bytes.iter().position(|&b| b == b'\n').unwrap() + 1..].to_vec(),
                _ => bytes.clear(),
            }
            std::fs::write(&path, bytes).unwrap();
            assert_eq!(store.get::<String>("llm", "t", &k), None, "{name}");
            assert!(!path.exists(), "{name} was not removed");
        }
        let record = store.record();
        assert_eq!(record.total.corrupt, 4);
        assert_eq!(record.corrupt_entries.len(), 4);
    }

    #[test]
    fn prune_removes_corrupt_and_aged_entries() {
        let dir = tempfile::tempdir().unwrap();
        let store = WorkStore::open(dir.path()).unwrap();
        for name in ["old", "new", "bad"] {
            store.put("translator", "t", &key(name), &name.to_string());
        }
        let old = entry_path(dir.path(), "translator", &key("old"));
        let month_ago = SystemTime::now() - Duration::from_secs(30 * 86400);
        std::fs::File::options()
            .write(true)
            .open(&old)
            .unwrap()
            .set_modified(month_ago)
            .unwrap();
        std::fs::write(entry_path(dir.path(), "translator", &key("bad")), "junk").unwrap();
        let before = stats(dir.path()).unwrap();
        assert_eq!(before.entries, 3);
        let report = prune(dir.path(), Some(Duration::from_secs(7 * 86400))).unwrap();
        assert_eq!((report.aged, report.corrupt, report.kept), (1, 1, 1));
        assert_eq!(stats(dir.path()).unwrap().entries, 1);
        assert_eq!(
            store
                .get::<String>("translator", "t", &key("new"))
                .as_deref(),
            Some("new")
        );
    }
}
