//! `crossbrief run`: the whole job over files and folders of articles.

use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

use super::args::RunArgs;
use super::{
    context, exit_code, open_store, overrides, print_failures, printable, report_store, EXIT_ERROR,
};
use crate::config::manifest::Catalog;
use crate::config::shard::Shard;
use crate::domain::StageStats;
use crate::engine::device;
use crate::engine::quant::kernel_class;
use crate::output::{self, DecodingRecord, OutDir, RunRecord};
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
    let generation = output::new_generation();
    let shard = match args.shard.as_deref() {
        None => None,
        Some("auto") => {
            Some(Shard::from_env(&|name| std::env::var(name).ok()).map_err(anyhow::Error::msg)?)
        }
        Some(text) => Some(Shard::parse(text).map_err(|e| anyhow::anyhow!("--shard {e}"))?),
    };
    // Claimed before any model work: a folder that cannot take the outputs, or that another
    // run holds, is refused now rather than after minutes of translation.
    let out_dir = OutDir::claim(&args.out, &args.paths)?;
    let decoding = overrides(&args.decoding);
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
    let rules = BoilerplateRules::load(resources)?;
    let outcome = pipeline::run(
        &mut ctx,
        &rules,
        &args.paths,
        &args.out,
        args.max_bytes,
        shard,
    )?;
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
            beam: decoding.beam_size,
            batch_rows: decoding.batch_rows,
            batch_tokens: decoding.batch_tokens,
            shortlist: decoding.shortlist,
            consensus: format!("{:?}", decoding.consensus).to_lowercase(),
        },
        stages: outcome.stages.clone(),
        total_wall_s: started.elapsed().as_secs_f64(),
        peak_memory_mb: output::peak_memory_mb(),
        generation,
        shard: shard.map(|s| s.to_string()),
        merged_shards: Vec::new(),
        inputs: outcome.inputs.clone(),
        store: store.as_ref().map(|s| s.record()),
    };
    let reports = output::render_reports(&outcome, record.clone())?;
    if let Err(e) = output::write_generation(&out_dir.path, &reports) {
        // The translations are already in articles/; the brief and summaries must not be lost.
        let kept = match output::rescue(&out_dir.path, &record.generation, &reports) {
            Ok(place) => format!(
                "the brief, its summaries and brief.json are saved in {}",
                place.display()
            ),
            Err(second) => format!("saving them elsewhere failed too ({second})"),
        };
        eprintln!(
            "error: could not write the brief into {}: {e}; {kept}; the finished translations are in {}; an earlier brief.md, brief.json and brief.html there are left as they were",
            out_dir.path.display(),
            out_dir.path.join("articles").display()
        );
        return Ok(ExitCode::from(EXIT_ERROR));
    }
    let current: Vec<String> = outcome.articles.iter().map(|a| a.id.clone()).collect();
    match output::set_aside_stale(&out_dir.path, &current) {
        Ok(moved) if !moved.is_empty() => eprintln!(
            "note: moved {} page(s) of an earlier run that this brief does not name into {}",
            moved.len(),
            out_dir.path.join("superseded").display()
        ),
        Ok(_) => {}
        Err(e) => eprintln!("warning: could not set aside an earlier run's pages: {e}"),
    }

    report_store(record.store.as_ref(), quiet);
    for stats in &record.stages {
        ctx.progress
            .event("stage_stats", serde_json::json!({"stats": stats}));
    }
    ctx.progress.event(
        "run_end",
        serde_json::json!({
        "total_wall_s": record.total_wall_s,
        "articles": outcome.articles.len(),
        "failed": outcome.failures.len(),
        "review_page": args.out.join("brief.html").display().to_string(),
        }),
    );
    // In jsonl mode the stage_stats events above carry the table.
    if !quiet && !ctx.progress.is_jsonl() {
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
    for s in &outcome.skipped {
        eprintln!(
            "skipped: {}: {}",
            printable(&s.path.display().to_string()),
            s.reason
        );
    }
    print_failures(&outcome.failures);
    ctx.registry.release_at_exit();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "wrote {} and the review page {} ({} article(s) translated, {} failed)",
        args.out.join("brief.md").display(),
        args.out.join("brief.html").display(),
        outcome.articles.len(),
        outcome.failures.len()
    )?;
    Ok(exit_code(&outcome.failures))
}

pub fn print_stages(stages: &[StageStats]) {
    eprintln!(
        "{:<32} {:>6} {:>9} {:>9} {:>11} {:>9} {:>10} {:>6} {:>11}",
        "stage",
        "items",
        "wall s",
        "input tok",
        "prefill/s",
        "new tok",
        "decode/s",
        "batch",
        "drafts kept"
    );
    for s in stages {
        let batch = if s.largest_batch > 0 {
            s.largest_batch.to_string()
        } else {
            String::new()
        };
        let drafts = if s.draft_tokens > 0 {
            format!("{}/{}", s.accepted_draft_tokens, s.draft_tokens)
        } else {
            String::new()
        };
        eprintln!(
            "{:<32} {:>6} {:>9.1} {:>9} {:>11.1} {:>9} {:>10.1} {:>6} {:>11}",
            s.name,
            s.items,
            s.wall_s,
            s.prompt_tokens,
            s.prefill_tokens_per_s,
            s.generated_tokens,
            s.decode_tokens_per_s,
            batch,
            drafts
        );
    }
}
