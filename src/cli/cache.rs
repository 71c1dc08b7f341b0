//! `crossbrief cache stats|prune`: the work store's contents, and its upkeep.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::Context as _;

use super::args::CacheAction;
use crate::store::{self, WorkStore};

pub fn cache(action: &CacheAction) -> anyhow::Result<ExitCode> {
    match action {
        CacheAction::Stats { cache, json } => {
            let root = root(cache)?;
            let stats = store::stats(&root)?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&stats)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!("work store {}", root.display());
            println!("{} entries, {}", stats.entries, megabytes(stats.bytes));
            for (kind, (entries, bytes)) in &stats.kinds {
                println!(
                    "  {kind:<12} {entries:>7} entries {:>12}",
                    megabytes(*bytes)
                );
            }
            if let (Some(oldest), Some(newest)) = (stats.oldest, stats.newest) {
                println!(
                    "last used: the least recent {} ago, the most recent {} ago",
                    ago(oldest),
                    ago(newest)
                );
            }
            if stats.temporary > 0 {
                println!(
                    "{} temporary file(s) of writes in flight or cut short (prune removes those over an hour old)",
                    stats.temporary
                );
            }
        }
        CacheAction::Prune { cache, older_than } => {
            let root = root(cache)?;
            let report = store::prune(&root, *older_than)?;
            let aged = older_than.map_or(String::new(), |d| {
                format!(
                    "{} entries unused for {}, ",
                    report.aged,
                    humantime::format_duration(d)
                )
            });
            println!(
                "removed {aged}{} corrupt entries and {} leftover temporary file(s) ({}); {} entries kept in {}",
                report.corrupt,
                report.temporary,
                megabytes(report.bytes),
                report.kept,
                root.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn root(cache: &Option<PathBuf>) -> anyhow::Result<PathBuf> {
    cache
        .clone()
        .or_else(WorkStore::default_root)
        .context("no cache directory is known: give --cache DIR or set CROSSBRIEF_CACHE")
}

fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

fn ago(when: SystemTime) -> String {
    let seconds = SystemTime::now()
        .duration_since(when)
        .map_or(0, |d| d.as_secs());
    humantime::format_duration(std::time::Duration::from_secs(seconds)).to_string()
}
