//! Locates the run-time data directories (`models/`, `prompts/`, `rules/`) so that they can be
//! edited without recompiling.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Root folder holding `models/`, `prompts/` and `rules/`.
#[derive(Debug, Clone)]
pub struct Resources {
    root: PathBuf,
}

impl Resources {
    /// Uses `explicit` when given, else the current directory when it holds `prompts/`,
    /// else the source tree the binary was built from.
    pub fn locate(explicit: Option<&Path>) -> Result<Self> {
        let candidates: Vec<PathBuf> = match explicit {
            Some(p) => vec![p.to_path_buf()],
            None => vec![
                std::env::current_dir().unwrap_or_default(),
                PathBuf::from(env!("CARGO_MANIFEST_DIR")),
            ],
        };
        candidates
            .iter()
            .find(|root| root.join("prompts").is_dir() && root.join("models").is_dir())
            .map(|root| Resources { root: root.clone() })
            .ok_or_else(|| Error::Config {
                path: candidates[0].clone(),
                problem: "no prompts/ and models/ folders here; pass --resources DIR or set CROSSBRIEF_RESOURCES".into(),
            })
    }

    pub fn models_dir(&self) -> PathBuf {
        self.root.join("models")
    }

    pub fn prompts_dir(&self) -> PathBuf {
        self.root.join("prompts")
    }

    pub fn rules_dir(&self) -> PathBuf {
        self.root.join("rules")
    }
}

/// Reads a text file with the path in the error.
pub fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| Error::io(path, e))
}
