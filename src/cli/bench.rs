//! `crossbrief bench`: memory bandwidth, and replays of a run's recorded LLM prompts.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context as _;
use serde_json::Value;

use super::args::BenchAction;
use super::{context, read_file};
use crate::config::decoding::DecodingOverride;
use crate::config::manifest::Catalog;
use crate::engine::bench;
use crate::engine::device::DeviceChoice;
use crate::engine::llm::RecordedPrompt;
use crate::progress::Progress;
use crate::resources::Resources;

pub fn bench(
    device: &DeviceChoice,
    resources: &Resources,
    catalog: &Catalog,
    progress: Progress,
    action: BenchAction,
) -> anyhow::Result<ExitCode> {
    match action {
        BenchAction::Bandwidth { mib, threads, json } => {
            let threads = threads
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            let gb_s = bench::read_bandwidth_gb_s(mib << 20, threads, 5);
            let report = serde_json::json!({ "read_gb_s": gb_s, "mib": mib, "threads": threads });
            print_report(&report, json)?;
        }
        BenchAction::Llm {
            prompts,
            model,
            batch_rows,
            sweep,
            new_tokens,
            no_download,
            json,
        } => {
            let text = read_file(&prompts)?;
            let recorded = text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(serde_json::from_str)
                .collect::<Result<Vec<RecordedPrompt>, _>>()
                .with_context(|| format!("{}: not recorded prompts", prompts.display()))?;
            let model = model.unwrap_or_else(|| catalog.profile.summarize.clone());
            let mut ctx = context(
                &device.open()?,
                resources,
                catalog,
                progress,
                DecodingOverride::default(),
                no_download,
            )?;
            let decoding = ctx.decoding.resolve(catalog.model(&model)?.decoding());
            let engine = ctx.registry.llm(&model)?;
            if !sweep.is_empty() {
                let points = bench::sweep(engine, &recorded, &sweep, new_tokens, decoding)?;
                print_report(&serde_json::to_value(&points)?, json)?;
                return Ok(ExitCode::SUCCESS);
            }
            if let Some(rows) = batch_rows {
                engine.set_batch_rows(rows);
            }
            let report = bench::replay(engine, &recorded, decoding)?;
            print_report(&serde_json::to_value(&report)?, json)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A report as JSON (`--json`), or as indented `name: value` lines for a person.
fn print_report(report: &Value, json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(report)?)?;
        return Ok(());
    }
    fn lines(value: &Value, indent: usize, out: &mut dyn Write) -> std::io::Result<()> {
        let pad = " ".repeat(indent);
        match value {
            Value::Object(map) => {
                for (key, v) in map {
                    if v.is_object() || v.is_array() {
                        writeln!(out, "{pad}{key}:")?;
                        lines(v, indent + 2, out)?;
                    } else {
                        writeln!(out, "{pad}{key}: {v}")?;
                    }
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    writeln!(out, "{pad}[{i}]")?;
                    lines(v, indent + 2, out)?;
                }
            }
            other => writeln!(out, "{pad}{other}")?,
        }
        Ok(())
    }
    lines(report, 0, &mut out)?;
    Ok(())
}
