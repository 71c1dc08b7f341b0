//! `crossbrief merge SHARD_DIR... --out DIR`: one brief from the outputs of sharded runs.
//! The shards' articles (translations, summaries, confidences, as their `brief.json` records
//! them) are taken as they are; only the brief itself is written here, over all of them,
//! with the decoding settings the shards ran with.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context as _};

use super::args::MergeArgs;
use super::run::print_stages;
use super::{context, exit_code, open_store, print_failures, report_store, EXIT_ERROR};
use crate::config::decoding::DecodingOverride;
use crate::config::manifest::Catalog;
use crate::config::shard::Shard;
use crate::engine::device;
use crate::engine::quant::kernel_class;
use crate::output::json::{read_shard, ShardReport};
use crate::output::{self, OutDir, RunRecord};
use crate::pipeline;
use crate::progress::Progress;
use crate::resources::Resources;

pub fn merge(
    device: &candle_core::Device,
    resources: &Resources,
    catalog: &Catalog,
    progress: Progress,
    args: MergeArgs,
    quiet: bool,
) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let generation = output::new_generation();
    let shards = read_shards(&args.shards, catalog)?;
    let out_dir = OutDir::claim(&args.out, &args.shards)?;
    let first = &shards[0].1.run;
    let decoding = DecodingOverride {
        temperature: first.decoding.temperature,
        top_p: first.decoding.top_p,
        seed: first.decoding.seed,
        beam_size: first.decoding.beam,
        batch_rows: first.decoding.batch_rows,
        batch_tokens: first.decoding.batch_tokens,
        shortlist: first.decoding.shortlist,
        ..DecodingOverride::default()
    };
    let inputs = first.inputs.clone();
    let decoding_record = first.decoding.clone();
    let mut ctx = context(
        device,
        resources,
        catalog,
        progress,
        decoding,
        args.no_download,
    )?;
    let store = open_store(&args.store);
    ctx.registry.set_store(store.clone());

    let mut articles = Vec::new();
    let mut failures = Vec::new();
    let mut skipped = Vec::new();
    let mut stages = Vec::new();
    let mut merged = Vec::new();
    for (dir, report) in shards {
        let shard = report.run.shard.clone().unwrap_or_default();
        merged.push(format!("{shard} from {}", dir.display()));
        for mut stage in report.run.stages {
            stage.name = format!("shard {shard}: {}", stage.name);
            stages.push(stage);
        }
        articles.extend(report.articles);
        failures.extend(report.failures);
        // Every shard walked the same inputs and skipped the same files.
        for s in report.skipped {
            if !skipped.contains(&s) {
                skipped.push(s);
            }
        }
    }
    let outcome = pipeline::merge(
        &mut ctx, articles, failures, skipped, stages, inputs, &args.out,
    );
    let record = RunRecord {
        crossbrief_version: env!("CARGO_PKG_VERSION").to_string(),
        profile: catalog.profile_name.clone(),
        device: device::describe(device),
        kernel_class: kernel_class().to_string(),
        models: ctx.registry.records.clone(),
        decoding: decoding_record,
        stages: outcome.stages.clone(),
        total_wall_s: started.elapsed().as_secs_f64(),
        peak_memory_mb: output::peak_memory_mb(),
        generation,
        shard: None,
        merged_shards: merged,
        inputs: outcome.inputs.clone(),
        store: store.as_ref().map(|s| s.record()),
    };
    let reports = output::render_reports(&outcome, record.clone())?;
    if let Err(e) = output::write_generation(&out_dir.path, &reports) {
        eprintln!(
            "error: could not write the merged brief into {}: {e}; the shards' folders are untouched, run merge again",
            out_dir.path.display()
        );
        return Ok(ExitCode::from(EXIT_ERROR));
    }
    let current: Vec<String> = outcome.articles.iter().map(|a| a.id.clone()).collect();
    if let Err(e) = output::set_aside_stale(&out_dir.path, &current) {
        eprintln!("warning: could not set aside an earlier run's pages: {e}");
    }
    report_store(record.store.as_ref(), quiet);
    if !quiet {
        print_stages(&record.stages);
    }
    print_failures(&outcome.failures);
    writeln!(
        std::io::stdout().lock(),
        "wrote {} and the review page {} ({} article(s) from {} shard(s), {} failed)",
        args.out.join("brief.md").display(),
        args.out.join("brief.html").display(),
        outcome.articles.len(),
        args.shards.len(),
        outcome.failures.len()
    )?;
    Ok(exit_code(&outcome.failures))
}

/// Every shard's report, checked to make one whole: shards K/N of one N, each once, all of
/// them, of this profile and one set of decoding settings. A missing shard is an error, not
/// a smaller brief.
fn read_shards(dirs: &[PathBuf], catalog: &Catalog) -> anyhow::Result<Vec<(PathBuf, ShardReport)>> {
    let mut shards: Vec<(PathBuf, ShardReport)> = Vec::new();
    let mut seen = BTreeSet::new();
    let mut count = None;
    for dir in dirs {
        let report = read_shard(dir)?;
        let spec = report.run.shard.clone().with_context(|| {
            format!(
                "{}: not a shard's output (its run had no --shard)",
                dir.display()
            )
        })?;
        let shard = Shard::parse(&spec)
            .map_err(|e| anyhow::anyhow!("{}: shard {spec}: {e}", dir.display()))?;
        if *count.get_or_insert(shard.count) != shard.count {
            bail!(
                "{}: shard {spec} is not one of {} shards like the others",
                dir.display(),
                count.unwrap_or(0)
            );
        }
        if !seen.insert(shard.index) {
            bail!("{}: shard {spec} is given twice", dir.display());
        }
        if report.run.profile != catalog.profile_name {
            bail!(
                "{}: the shard ran profile {}, this merge runs {} (give --profile {})",
                dir.display(),
                report.run.profile,
                catalog.profile_name,
                report.run.profile
            );
        }
        if let Some((first_dir, first)) = shards.first() {
            if first.run.inputs != report.run.inputs {
                bail!(
                    "{}: the shard walked other inputs than {} ({} files against {}): every shard must see the same files at the same paths",
                    dir.display(),
                    first_dir.display(),
                    report.run.inputs.files,
                    first.run.inputs.files
                );
            }
            if first.run.crossbrief_version != report.run.crossbrief_version {
                bail!(
                    "{}: the shard ran crossbrief {}, {} ran {}",
                    dir.display(),
                    report.run.crossbrief_version,
                    first_dir.display(),
                    first.run.crossbrief_version
                );
            }
            if first.run.decoding != report.run.decoding {
                bail!(
                    "{}: the shard ran other decoding settings than {} ({:?} against {:?})",
                    dir.display(),
                    first_dir.display(),
                    report.run.decoding,
                    first.run.decoding
                );
            }
        }
        shards.push((dir.clone(), report));
    }
    let count = count.unwrap_or(0);
    let missing: Vec<String> = (0..count)
        .filter(|k| !seen.contains(k))
        .map(|k| format!("{k}/{count}"))
        .collect();
    if !missing.is_empty() {
        bail!(
            "shard(s) {} missing: a brief without them would silently leave out their articles",
            missing.join(", ")
        );
    }
    let mut ids = BTreeSet::new();
    for (dir, report) in &shards {
        for a in &report.articles {
            if !ids.insert(a.id.clone()) {
                bail!(
                    "{}: article {} is in two shards (were they run over different inputs?)",
                    dir.display(),
                    a.id
                );
            }
        }
    }
    Ok(shards)
}
