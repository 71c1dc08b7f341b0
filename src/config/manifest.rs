//! Model manifests (`models/*.toml`) and profiles (`models/profiles.toml`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::calibration::{Calibration, ConsensusSettings};
use crate::config::decoding::{Decoding, MarianSettings};
use crate::error::{Error, Result};
use crate::resources::{ResourceFile, Resources};

/// One model: where its files come from, how to prompt it and how to decode with it.
#[derive(Debug, Clone, Deserialize)]
pub struct ModelManifest {
    pub name: String,
    pub display_name: String,
    pub architecture: Architecture,
    pub hub: HubSource,
    pub files: Vec<ModelFile>,
    #[serde(default)]
    pub prompt: Option<PromptFormat>,
    #[serde(default)]
    pub generation: GenerationDefaults,
    /// Decoding and batching of encoder–decoder translators.
    #[serde(default)]
    pub marian: MarianSettings,
    /// Consensus re-decoding of low-confidence translations.
    #[serde(default)]
    pub consensus: ConsensusSettings,
    /// `<manifest stem>.calibration.toml` beside the manifest, when there is one.
    #[serde(skip)]
    pub calibration: Option<Calibration>,
    #[serde(skip)]
    pub manifest_path: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Architecture {
    /// A decoder-only LLM in one GGUF file (or its split parts); the model family comes
    /// from the file's `general.architecture`.
    #[serde(alias = "qwen2")]
    Gguf,
    /// Marian binary model (Bergamot/Firefox translations, int8) with a `tokenizer.json`.
    Bergamot,
    /// Hugging Face Marian checkpoint (opus-mt): `config.json` + safetensors or PyTorch weights.
    Marian,
}

impl Architecture {
    /// Dedicated translators (encoder–decoder) rather than prompted LLMs.
    pub fn is_translator(self) -> bool {
        matches!(self, Architecture::Bergamot | Architecture::Marian)
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, schemars::JsonSchema)]
pub struct HubSource {
    pub repo: String,
    pub revision: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ModelFile {
    pub role: FileRole,
    pub name: String,
    /// Pinned checksum. Files of hub-only models that could not be downloaded to compute one
    /// are pinned by the manifest's revision (a commit) alone; their checksum is recorded at load.
    #[serde(default)]
    pub sha256: Option<String>,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default)]
    pub mirror: Option<MirrorSource>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FileRole {
    Weights,
    Tokenizer,
    Vocabulary,
    Config,
    Shortlist,
    /// Source-side SentencePiece model (`source.spm` of opus-mt).
    SourceVocabulary,
    /// Target-side SentencePiece model (`target.spm` of opus-mt).
    TargetVocabulary,
}

/// Where the offline mirror (scripts/fetch-models.py) finds the same bytes in a package registry.
#[derive(Debug, Clone, Deserialize)]
pub struct MirrorSource {
    pub registry: String,
    pub package: String,
    pub member: String,
    #[serde(default = "one")]
    pub parts: u32,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Deserialize)]
pub struct PromptFormat {
    /// minijinja template over `messages` (role, content) ending with the assistant's turn.
    pub chat_template: String,
    pub stop: Vec<String>,
}

/// Decoding settings; the new-token budget of each task is proportional to its input.
#[derive(Debug, Clone, Deserialize)]
pub struct GenerationDefaults {
    #[serde(default)]
    pub temperature: f64,
    #[serde(default = "default_top_p")]
    pub top_p: f64,
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Largest source chunk, in model tokens, sent in one translation prompt.
    #[serde(default = "default_chunk_tokens")]
    pub chunk_tokens: usize,
    /// Prompts decoded together at most (translation chunks, summaries).
    #[serde(default = "default_llm_batch_rows")]
    pub batch_rows: usize,
    /// Most KV-cache memory one decoding batch may hold, in MiB: rows are grouped under it,
    /// and a request that alone needs more is refused.
    #[serde(default = "default_kv_budget_mb")]
    pub kv_budget_mb: usize,
    #[serde(default = "TaskSettings::translate")]
    pub translate: TaskSettings,
    #[serde(default = "TaskSettings::summarize")]
    pub summarize: TaskSettings,
    #[serde(default = "TaskSettings::brief")]
    pub brief: TaskSettings,
}

impl Default for GenerationDefaults {
    fn default() -> Self {
        GenerationDefaults {
            temperature: 0.0,
            top_p: default_top_p(),
            seed: default_seed(),
            chunk_tokens: default_chunk_tokens(),
            batch_rows: default_llm_batch_rows(),
            kv_budget_mb: default_kv_budget_mb(),
            translate: TaskSettings::translate(),
            summarize: TaskSettings::summarize(),
            brief: TaskSettings::brief(),
        }
    }
}

fn default_llm_batch_rows() -> usize {
    32
}

fn default_kv_budget_mb() -> usize {
    2048
}

fn default_top_p() -> f64 {
    0.9
}
fn default_seed() -> u64 {
    299_792_458
}
fn default_chunk_tokens() -> usize {
    320
}

/// Per-task generation settings. The new-token budget is proportional to the input:
/// `max_new_tokens = min(max, ceil(ratio * input_tokens) + slack)`.
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
pub struct TaskSettings {
    pub ratio: f64,
    pub slack: usize,
    pub max: usize,
}

impl TaskSettings {
    fn translate() -> Self {
        TaskSettings {
            ratio: 2.0,
            slack: 48,
            max: 2048,
        }
    }
    fn summarize() -> Self {
        TaskSettings {
            ratio: 0.5,
            slack: 64,
            max: 320,
        }
    }
    fn brief() -> Self {
        TaskSettings {
            ratio: 0.8,
            slack: 128,
            max: 900,
        }
    }

    pub fn max_new_tokens(&self, input_tokens: usize) -> usize {
        ((self.ratio * input_tokens as f64).ceil() as usize + self.slack).min(self.max)
    }
}

impl ModelManifest {
    /// Its `[generation]` sampling settings.
    pub fn decoding(&self) -> Decoding {
        Decoding {
            temperature: self.generation.temperature,
            top_p: self.generation.top_p,
            seed: self.generation.seed,
        }
    }

    pub fn parse(file: &ResourceFile) -> Result<Self> {
        let mut manifest: ModelManifest =
            toml::from_str(&file.text).map_err(|e| Error::Config {
                path: file.origin.clone(),
                problem: e.to_string(),
            })?;
        manifest.manifest_path = file.origin.clone();
        Ok(manifest)
    }
}

/// A profile picks one model per task and, for translation, per source language.
#[derive(Debug, Clone, Deserialize)]
pub struct Profile {
    #[serde(default)]
    pub description: String,
    /// ISO 639-1 code → model name.
    pub translate: BTreeMap<String, String>,
    pub summarize: String,
    pub brief: String,
}

#[derive(Debug, Clone, Deserialize)]
struct ProfilesFile {
    default: String,
    profiles: BTreeMap<String, Profile>,
}

/// A manifest's calibration file ends so, beside it.
pub const CALIBRATION_SUFFIX: &str = ".calibration.toml";

/// Every manifest in `models/` plus the chosen profile.
#[derive(Debug, Clone)]
pub struct Catalog {
    pub models: BTreeMap<String, ModelManifest>,
    pub profile_name: String,
    pub profile: Profile,
}

impl Catalog {
    /// Every `models/*.toml` manifest of `resources` and the profile named `profile` (default:
    /// `profiles.toml`'s `default`).
    pub fn load(resources: &Resources, profile: Option<&str>) -> Result<Self> {
        let mut models = BTreeMap::new();
        let files = resources.list("models", "toml")?;
        for file in &files {
            if file.relative == "models/profiles.toml"
                || file.relative.ends_with(CALIBRATION_SUFFIX)
            {
                continue;
            }
            let mut manifest = ModelManifest::parse(file)?;
            let calibration = file.relative.replace(".toml", CALIBRATION_SUFFIX);
            if let Some(found) = files.iter().find(|f| f.relative == calibration) {
                manifest.calibration = Some(Calibration::parse(found)?);
            }
            models.insert(manifest.name.clone(), manifest);
        }

        let profiles_file = resources.read("models/profiles.toml")?;
        let profiles_path = profiles_file.origin.clone();
        let profiles: ProfilesFile =
            toml::from_str(&profiles_file.text).map_err(|e| Error::Config {
                path: profiles_path.clone(),
                problem: e.to_string(),
            })?;
        let profile_name = profile.unwrap_or(&profiles.default).to_string();
        let chosen = profiles
            .profiles
            .get(&profile_name)
            .cloned()
            .ok_or_else(|| Error::Config {
                path: profiles_path.clone(),
                problem: format!(
                    "no profile named {profile_name}; known: {}",
                    profiles
                        .profiles
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })?;
        let catalog = Catalog {
            models,
            profile_name,
            profile: chosen,
        };
        for name in catalog.profile_model_names() {
            if !catalog.models.contains_key(&name) {
                return Err(Error::Config {
                    path: profiles_path,
                    problem: format!(
                        "profile {} names model {name}, which has no manifest in models/",
                        catalog.profile_name,
                    ),
                });
            }
        }
        Ok(catalog)
    }

    /// Models the chosen profile uses, each once.
    pub fn profile_model_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.profile.translate.values().cloned().collect();
        names.push(self.profile.summarize.clone());
        names.push(self.profile.brief.clone());
        names.sort();
        names.dedup();
        names
    }

    pub fn model(&self, name: &str) -> Result<&ModelManifest> {
        self.models
            .get(name)
            .ok_or_else(|| Error::model(name, "no manifest with this name in models/"))
    }

    /// Languages the profile can translate (English needs no translator).
    pub fn supported_languages(&self) -> Vec<String> {
        let mut langs: Vec<String> = self.profile.translate.keys().cloned().collect();
        langs.push("en".into());
        langs.sort();
        langs.dedup();
        langs
    }

    pub fn translator_for(&self, lang: &str) -> Option<&str> {
        self.profile.translate.get(lang).map(String::as_str)
    }
}
