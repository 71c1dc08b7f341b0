//! `crossbrief models list | fetch | verify`.

use std::io::Write;
use std::process::ExitCode;

use anyhow::bail;
use serde::Serialize;

use super::args::ModelsAction;
use crate::config::manifest::{Catalog, ModelManifest};
use crate::engine::hub::{self, Resolver};

/// One model file as `models list --json` reports it.
#[derive(Serialize)]
struct FileState {
    role: String,
    name: String,
    size: Option<u64>,
    sha256: Option<String>,
    cached_at: Option<String>,
}

/// One model as `models list --json` reports it.
#[derive(Serialize)]
struct ModelState {
    name: String,
    display_name: String,
    repo: String,
    revision: String,
    architecture: String,
    in_profile: bool,
    files: Vec<FileState>,
}

pub fn models(catalog: &Catalog, action: ModelsAction, quiet: bool) -> anyhow::Result<ExitCode> {
    let resolver = Resolver::from_env(!quiet);
    let profile_models = catalog.profile_model_names();
    let chosen = |all: bool| -> Vec<&ModelManifest> {
        catalog
            .models
            .values()
            .filter(|m| all || profile_models.contains(&m.name))
            .collect()
    };
    let mut out = std::io::stdout().lock();
    match action {
        ModelsAction::List { json } => {
            let states: Vec<ModelState> = chosen(true)
                .into_iter()
                .map(|m| ModelState {
                    name: m.name.clone(),
                    display_name: m.display_name.clone(),
                    repo: m.hub.repo.clone(),
                    revision: m.hub.revision.clone(),
                    architecture: format!("{:?}", m.architecture).to_lowercase(),
                    in_profile: profile_models.contains(&m.name),
                    files: m
                        .files
                        .iter()
                        .map(|f| FileState {
                            role: format!("{:?}", f.role),
                            name: f.name.clone(),
                            size: f.size,
                            sha256: f.sha256.clone(),
                            cached_at: resolver
                                .cached(m, f)
                                .map(|(path, _)| path.display().to_string()),
                        })
                        .collect(),
                })
                .collect();
            if json {
                let report = serde_json::json!({
                    "profile": catalog.profile_name,
                    "cache": resolver.cache_dir(),
                    "models": states,
                });
                writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
                return Ok(ExitCode::SUCCESS);
            }
            writeln!(
                out,
                "profile {} · cache {}",
                catalog.profile_name,
                resolver.cache_dir().display()
            )?;
            for m in &states {
                let used = if m.in_profile { " (in profile)" } else { "" };
                writeln!(
                    out,
                    "{}{used}\n  {} · {}@{} · {}",
                    m.name, m.display_name, m.repo, m.revision, m.architecture
                )?;
                for f in &m.files {
                    let state = f
                        .cached_at
                        .as_ref()
                        .map_or("missing".to_string(), |p| format!("cached at {p}"));
                    let size = f
                        .size
                        .map(|s| format!("{:.1} MB", s as f64 / 1e6))
                        .unwrap_or_default();
                    let checksum = f
                        .sha256
                        .as_ref()
                        .map_or("not pinned".to_string(), |s| format!("{}…", &s[..12]));
                    writeln!(
                        out,
                        "  - {} {} {size} sha256 {checksum} {state}",
                        f.role, f.name
                    )?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ModelsAction::Fetch { all } | ModelsAction::Verify { all } => {
            let download = matches!(action, ModelsAction::Fetch { .. });
            if download && !resolver.is_offline() {
                let absent = chosen(all)
                    .iter()
                    .flat_map(|m| m.files.iter().map(move |f| (m, f)))
                    .filter(|(m, f)| resolver.cached(m, f).is_none())
                    .count();
                // One line, not one DNS error per file (resolve would ask too, per file).
                if let Some(why) = (absent > 0).then(|| resolver.hub_unreachable()).flatten() {
                    bail!(
                        "the Hugging Face hub ({}) cannot be reached: {why}; {absent} model file(s) not fetched; `python3 scripts/fetch-models.py` assembles the offline mirror",
                        hub::endpoint()
                    );
                }
            }
            let mut failed = 0;
            for m in chosen(all) {
                for f in &m.files {
                    match resolver.resolve(m, f, download) {
                        Ok(r) => writeln!(
                            out,
                            "ok      {} {} ({:?}, sha256 {})",
                            m.name,
                            r.path.display(),
                            r.origin,
                            if r.pinned {
                                "verified"
                            } else {
                                "recorded, not pinned"
                            }
                        )?,
                        Err(e) => {
                            failed += 1;
                            writeln!(out, "FAILED  {} {}: {e}", m.name, f.name)?;
                        }
                    }
                }
            }
            if failed > 0 {
                bail!("{failed} model file(s) unavailable; {}", hub::FETCH_HINT);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
