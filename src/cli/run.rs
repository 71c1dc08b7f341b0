//! `crossbrief run`: the whole job over files and folders of articles.

use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

use super::args::RunArgs;
use super::{context, overrides, EXIT_PARTIAL};
use crate::config::manifest::Catalog;
use crate::domain::StageStats;
use crate::engine::device;
use crate::engine::quant::kernel_class;
use crate::output::{self, DecodingRecord, RunRecord};
use crate::pipeline;
use crate::progress::Progress;
use crate::resources::Resources;
use crate::stages::clean::BoilerplateRules;

pub fn run(
    device: &candle_core::Device,
    resources: &Resources,
    catalog: &Catalog,
    progress: Progress,
    args: RunArgs,
    quiet: bool,
) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let decoding = overrides(&args.decoding);
    let mut ctx = context(
        device,
        resources,
        catalog,
        progress,
        decoding,
        args.no_download,
    )?;
    let rules = BoilerplateRules::load(resources)?;
    let outcome = pipeline::run(&mut ctx, &rules, &args.paths, &args.out, args.max_bytes)?;
    let record = RunRecord {
        crossbrief_version: env!("CARGO_PKG_VERSION").to_string(),
        profile: catalog.profile_name.clone(),
        device: device::describe(device),
        kernel_class: kernel_class().to_string(),
        models: ctx.registry.records.clone(),
        decoding: DecodingRecord {
            temperature: decoding.temperature,
            top_p: decoding.top_p,
            seed: decoding.seed,
        },
        stages: outcome.stages.clone(),
        total_wall_s: started.elapsed().as_secs_f64(),
        peak_memory_mb: output::peak_memory_mb(),
    };
    output::write_reports(&args.out, &outcome, record.clone())?;

    if !quiet {
        print_stages(&record.stages);
        eprintln!(
            "total {:.1} s, peak memory {}",
            record.total_wall_s,
            record
                .peak_memory_mb
                .map(|m| format!("{m:.0} MiB"))
                .unwrap_or_else(|| "unknown".into())
        );
    }
    for f in &outcome.failures {
        eprintln!(
            "error: {} ({}): {}",
            f.source_path.display(),
            f.stage,
            f.error
        );
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "wrote {} ({} article(s) translated, {} failed)",
        args.out.join("brief.md").display(),
        outcome.articles.len(),
        outcome.failures.len()
    )?;
    Ok(if outcome.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_PARTIAL)
    })
}

pub fn print_stages(stages: &[StageStats]) {
    eprintln!(
        "{:<32} {:>6} {:>9} {:>9} {:>11} {:>9} {:>10} {:>6}",
        "stage", "items", "wall s", "input tok", "prefill/s", "new tok", "decode/s", "batch"
    );
    for s in stages {
        let batch = if s.largest_batch > 0 {
            s.largest_batch.to_string()
        } else {
            String::new()
        };
        eprintln!(
            "{:<32} {:>6} {:>9.1} {:>9} {:>11.1} {:>9} {:>10.1} {:>6}",
            s.name,
            s.items,
            s.wall_s,
            s.prompt_tokens,
            s.prefill_tokens_per_s,
            s.generated_tokens,
            s.decode_tokens_per_s,
            batch
        );
    }
}
