//! The run-time data: model manifests (`models/`), prompt templates (`prompts/`), cleaning
//! rules (`rules/`) and language packs (`languages/`). The defaults are compiled into the
//! binary, so an installed crossbrief runs anywhere; a folder laid out the same way overrides
//! them file by file, and may add files (a new language pack, a new manifest).
//!
//! Layers, first match wins: `--resources DIR` (or `CROSSBRIEF_RESOURCES`), then the user's
//! config folder (`$XDG_CONFIG_HOME/crossbrief`, `~/.config/crossbrief` on Linux), then the
//! compiled-in defaults.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use include_dir::{include_dir, Dir};

use crate::error::{Error, Result};

/// The four folders, as they were in the source tree at build time.
static EMBEDDED: [(&str, Dir<'static>); 4] = [
    ("models", include_dir!("$CARGO_MANIFEST_DIR/models")),
    ("prompts", include_dir!("$CARGO_MANIFEST_DIR/prompts")),
    ("rules", include_dir!("$CARGO_MANIFEST_DIR/rules")),
    ("languages", include_dir!("$CARGO_MANIFEST_DIR/languages")),
];

/// Where each resource file comes from.
#[derive(Debug, Clone)]
pub struct Resources {
    /// Override folders, highest priority first.
    layers: Vec<PathBuf>,
}

/// One resource file: its path relative to the resource root (`prompts/brief.toml`), where
/// it was read from (for error messages), and its text.
#[derive(Debug, Clone)]
pub struct ResourceFile {
    pub relative: String,
    pub origin: PathBuf,
    pub text: String,
}

impl Resources {
    /// The compiled-in defaults only.
    pub fn embedded() -> Self {
        Resources { layers: Vec::new() }
    }

    /// `explicit` (from `--resources` or `CROSSBRIEF_RESOURCES`) over the user's config
    /// folder over the defaults. An explicit folder that does not exist is an error.
    pub fn locate(explicit: Option<&Path>) -> Result<Self> {
        let mut layers = Vec::new();
        if let Some(dir) = explicit {
            if !dir.is_dir() {
                return Err(Error::Config {
                    path: dir.to_path_buf(),
                    problem: "not a folder; --resources (CROSSBRIEF_RESOURCES) names a folder laid out like the defaults: models/, prompts/, rules/, languages/".into(),
                });
            }
            layers.push(dir.to_path_buf());
        }
        if let Some(config) = dirs::config_dir().map(|d| d.join("crossbrief")) {
            if config.is_dir() {
                layers.push(config);
            }
        }
        Ok(Resources { layers })
    }

    /// The file at `relative` (e.g. `prompts/translate.toml`) from the first layer that has
    /// it, else the defaults.
    pub fn read(&self, relative: &str) -> Result<ResourceFile> {
        for layer in &self.layers {
            let path = layer.join(relative);
            if path.is_file() {
                return Ok(ResourceFile {
                    relative: relative.to_string(),
                    text: read_text(&path)?,
                    origin: path,
                });
            }
        }
        embedded_file(relative)
            .map(|text| ResourceFile {
                relative: relative.to_string(),
                origin: PathBuf::from(format!("(built in) {relative}")),
                text: text.to_string(),
            })
            .ok_or_else(|| Error::Config {
                path: PathBuf::from(relative),
                problem: "no such resource in the override folders or the built-in defaults".into(),
            })
    }

    /// Every `*.{ext}` file directly in folder `dir` (e.g. `models`), across all layers, one
    /// per file name (the highest layer's), sorted by name.
    pub fn list(&self, dir: &str, ext: &str) -> Result<Vec<ResourceFile>> {
        let mut names: BTreeMap<String, ()> = BTreeMap::new();
        if let Some(folder) = embedded_dir(dir) {
            for file in folder.files() {
                let path = file.path();
                if path.extension().is_some_and(|e| e == ext) {
                    if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
                        names.insert(name.to_string(), ());
                    }
                }
            }
        }
        for layer in &self.layers {
            let folder = layer.join(dir);
            let Ok(entries) = std::fs::read_dir(&folder) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_file() && path.extension().is_some_and(|e| e == ext) {
                    if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
                        names.insert(name.to_string(), ());
                    }
                }
            }
        }
        names
            .into_keys()
            .map(|name| self.read(&format!("{dir}/{name}")))
            .collect()
    }
}

/// A compiled-in file by its path relative to the resource root.
fn embedded_file(relative: &str) -> Option<&'static str> {
    let (top, rest) = relative.split_once('/')?;
    let (_, dir) = EMBEDDED.iter().find(|(name, _)| *name == top)?;
    dir.get_file(rest)?.contents_utf8()
}

/// A compiled-in folder (`models`, `rules/boilerplate`).
fn embedded_dir(relative: &str) -> Option<&'static Dir<'static>> {
    let (top, rest) = relative.split_once('/').unwrap_or((relative, ""));
    let (_, dir) = EMBEDDED.iter().find(|(name, _)| *name == top)?;
    if rest.is_empty() {
        Some(dir)
    } else {
        dir.get_dir(rest)
    }
}

/// Reads a text file with the path in the error.
pub fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_built_in() {
        let resources = Resources::embedded();
        assert!(resources
            .read("prompts/translate.toml")
            .unwrap()
            .text
            .contains("<source>"));
        let models = resources.list("models", "toml").unwrap();
        assert!(models.iter().any(|f| f.relative == "models/profiles.toml"));
        let packs = resources.list("languages", "toml").unwrap();
        assert!(packs.iter().any(|f| f.relative == "languages/pt.toml"));
    }

    #[test]
    fn an_override_folder_wins_file_by_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("prompts")).unwrap();
        std::fs::write(dir.path().join("prompts/brief.toml"), "system = 'mine'").unwrap();
        let resources = Resources {
            layers: vec![dir.path().to_path_buf()],
        };
        assert_eq!(
            resources.read("prompts/brief.toml").unwrap().text,
            "system = 'mine'"
        );
        assert!(resources
            .read("prompts/translate.toml")
            .unwrap()
            .origin
            .to_string_lossy()
            .starts_with("(built in)"));
        assert!(Resources::locate(Some(&dir.path().join("absent"))).is_err());
    }
}
