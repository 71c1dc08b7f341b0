//! Loads each model the profile needs once, on first use, and remembers what was loaded
//! (files, checksums, origin) for the run record.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use candle_core::Device;
use serde::Serialize;

use crate::config::manifest::{Architecture, Catalog, FileRole, HubSource, ModelManifest};
use crate::engine::hub::{ResolvedFile, Resolver};
use crate::engine::llm::{ChatSettings, LlmEngine};
use crate::engine::marian::MarianEngine;
use crate::error::{Error, Result};
use crate::store::{KeyBuilder, ModelStore, WorkStore};

/// A loaded model: a prompted LLM or a dedicated encoder–decoder translator.
pub enum Engine {
    Llm(Box<LlmEngine>),
    Translator(Box<MarianEngine>),
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ModelRecord {
    pub name: String,
    pub display_name: String,
    pub hub: HubSource,
    pub files: Vec<ResolvedFile>,
    pub load_s: f64,
}

pub struct Registry<'a> {
    catalog: &'a Catalog,
    resolver: Resolver,
    device: Device,
    allow_download: bool,
    engines: BTreeMap<String, std::result::Result<Engine, String>>,
    pub records: Vec<ModelRecord>,
    /// The work store the engines loaded from now on keep their results in.
    store: Option<Arc<WorkStore>>,
}

impl<'a> Registry<'a> {
    pub fn new(
        catalog: &'a Catalog,
        resolver: Resolver,
        device: Device,
        allow_download: bool,
    ) -> Self {
        Registry {
            catalog,
            resolver,
            device,
            allow_download,
            engines: BTreeMap::new(),
            records: Vec::new(),
            store: None,
        }
    }

    /// Engines loaded after this keep each finished unit in `store` and reuse what it holds.
    pub fn set_store(&mut self, store: Option<Arc<WorkStore>>) {
        self.store = store;
    }

    /// Ends the engines without handing their memory back page by page: for a process about
    /// to exit, which the kernel frees at once (dropping gigabytes of weights and KV cache
    /// took 0.2 s of the sample run's end). Their results are already written: nothing an
    /// engine holds is flushed on drop.
    pub fn release_at_exit(&mut self) {
        std::mem::forget(std::mem::take(&mut self.engines));
    }

    /// The LLM `name`, loading it the first time.
    pub fn llm(&mut self, name: &str) -> Result<&mut LlmEngine> {
        match self.engine(name)? {
            Engine::Llm(engine) => Ok(engine),
            Engine::Translator(_) => Err(Error::model(
                name,
                "is a dedicated translator, not an LLM; it cannot summarize or write briefs",
            )),
        }
    }

    /// The engine for `name`, loading it the first time. A model that failed to load keeps
    /// failing with the same message without being retried.
    pub fn engine(&mut self, name: &str) -> Result<&mut Engine> {
        if !self.engines.contains_key(name) {
            let loaded = self.load(name).map_err(|e| e.to_string());
            if let Err(e) = &loaded {
                tracing::error!("{e}");
            }
            self.engines.insert(name.to_string(), loaded);
        }
        match self.engines.get_mut(name) {
            Some(Ok(engine)) => Ok(engine),
            Some(Err(message)) => Err(Error::model(name, message.clone())),
            None => unreachable!("inserted above"),
        }
    }

    fn load(&mut self, name: &str) -> Result<Engine> {
        let manifest = self.catalog.model(name)?;
        let started = Instant::now();
        let device = &self.device;
        let (files, mut engine) =
            self.resolver
                .resolve_all_while(manifest, self.allow_download, |files| {
                    build(manifest, files, device)
                })?;
        if let Some(store) = &self.store {
            let own = Some(ModelStore::new(
                store.clone(),
                fingerprint(&files, &self.device),
            ));
            match &mut engine {
                Engine::Llm(e) => e.set_store(own),
                Engine::Translator(e) => e.set_store(own),
            }
        }
        let load_s = started.elapsed().as_secs_f64();
        tracing::info!(model = name, seconds = load_s, "model loaded");
        self.records.push(ModelRecord {
            name: manifest.name.clone(),
            display_name: manifest.display_name.clone(),
            hub: manifest.hub.clone(),
            files,
            load_s,
        });
        Ok(engine)
    }
}

/// What a model's results depend on besides its inputs and settings: its files' contents
/// and the kind of machine that runs it (a GPU's kernels round differently from a CPU's, and
/// CPUs of other kernel classes or cache sizes differently from each other), so that a store
/// shared by unlike nodes never gives one node another's rounding.
fn fingerprint(files: &[ResolvedFile], device: &Device) -> String {
    let mut key = KeyBuilder::new("model");
    let mut sums: Vec<(String, &str)> = files
        .iter()
        .map(|f| (format!("{:?}", f.role), f.sha256.as_str()))
        .collect();
    sums.sort();
    for (role, sha) in sums {
        key.text(&role).text(sha);
    }
    let machine = match device {
        Device::Cpu => format!("cpu {}", crate::engine::quant::machine_kind()),
        Device::Cuda(_) | Device::Metal(_) => crate::engine::device::describe(device),
    };
    key.text(&machine);
    key.finish().as_str().to_string()
}

/// The engine a manifest describes, from its resolved files: the engines themselves take
/// paths and settings, never manifests.
pub fn build(manifest: &ModelManifest, files: &[ResolvedFile], device: &Device) -> Result<Engine> {
    let name = &manifest.name;
    let paths = |role: FileRole| -> Vec<_> {
        files
            .iter()
            .filter(|f| f.role == role)
            .map(|f| f.path.clone())
            .collect()
    };
    let one = |role: FileRole| paths(role).into_iter().next();
    let need = |role: FileRole| {
        one(role).ok_or_else(|| Error::model(name, format!("the manifest lists no {role:?} file")))
    };
    Ok(match manifest.architecture {
        Architecture::Gguf => {
            let prompt = manifest
                .prompt
                .clone()
                .ok_or_else(|| Error::model(name, "manifest has no [prompt] section"))?;
            let settings = ChatSettings {
                chat_template: prompt.chat_template,
                stop: prompt.stop,
                batch_rows: manifest.generation.batch_rows,
                kv_budget_bytes: manifest.generation.kv_budget_mb * 1024 * 1024,
            };
            // Every weights file: the parts of a split GGUF are listed one by one.
            let weights = paths(FileRole::Weights);
            Engine::Llm(Box::new(LlmEngine::from_gguf(
                name, &weights, settings, device,
            )?))
        }
        Architecture::Bergamot => Engine::Translator(Box::new(MarianEngine::from_bergamot(
            name,
            &need(FileRole::Weights)?,
            &need(FileRole::Tokenizer)?,
            one(FileRole::Shortlist).as_deref(),
            manifest.marian,
            device,
        )?)),
        Architecture::Marian => Engine::Translator(Box::new(MarianEngine::from_hf(
            name,
            &need(FileRole::Config)?,
            &need(FileRole::Weights)?,
            &need(FileRole::SourceVocabulary)?,
            &need(FileRole::TargetVocabulary)?,
            &need(FileRole::Vocabulary)?,
            manifest.marian,
            device,
        )?)),
    })
}
