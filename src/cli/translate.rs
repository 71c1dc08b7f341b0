//! `crossbrief translate`: one file's English translation on stdout.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context as _;

use super::args::TranslateArgs;
use super::{context, overrides};
use crate::config::manifest::Catalog;
use crate::domain::{Flag, StageStats};
use crate::language::numbers::lost_numbers;
use crate::progress::Progress;
use crate::resources::Resources;
use crate::stages::check::Fidelity;
use crate::stages::translate::{self, Segmentation};
use crate::stages::{clean, load};

pub fn translate(
    device: &candle_core::Device,
    resources: &Resources,
    catalog: &Catalog,
    progress: Progress,
    args: TranslateArgs,
) -> anyhow::Result<ExitCode> {
    let lang = args.from.to_ascii_lowercase();
    let doc = load::load(&args.file, "input".into(), args.max_bytes)?;
    let text = clean::normalize(&doc.text);
    // With --lines every input line is one unit (empty ones included); otherwise paragraphs.
    let units: Vec<String> = if args.lines {
        doc.text
            .lines()
            .map(|l| clean::normalize(l).replace('\n', " "))
            .collect()
    } else {
        clean::split_paragraphs(&text)
    };
    // Per unit: its confidence and flags (an English source, or an empty line, is taken as is).
    let mut trust: Vec<(f64, Vec<Flag>)> = vec![(1.0, Vec::new()); units.len()];
    let output: Vec<String> = if lang == "en" {
        units.clone()
    } else {
        let mut ctx = context(
            device,
            resources,
            catalog,
            progress,
            overrides(&args.decoding),
            args.no_download,
        )?;
        let non_empty: Vec<(usize, String)> = units
            .iter()
            .cloned()
            .enumerate()
            .filter(|(_, u)| !u.trim().is_empty())
            .collect();
        let texts: Vec<String> = non_empty.iter().map(|(_, u)| u.clone()).collect();
        let bar = ctx.progress.stage("translate", 0, "chunks");
        let started = std::time::Instant::now();
        let mut stats = StageStats::new("translate");
        let segmentation = if args.lines {
            Segmentation::WholeUnits
        } else {
            Segmentation::Sentences
        };
        let translated = translate::translate_units(
            &mut ctx,
            &Fidelity,
            &lang,
            &texts,
            segmentation,
            &mut stats,
            &bar,
        )?;
        bar.finish_and_clear();
        stats.finish(started);
        let mut out = vec![String::new(); units.len()];
        for (k, sentences) in translated.sentences.iter().enumerate() {
            let i = non_empty[k].0;
            trust[i].0 = sentences.iter().map(|s| s.confidence).fold(1.0, f64::min);
            for flag in sentences.iter().flat_map(|s| &s.flags) {
                if !trust[i].1.contains(flag) {
                    trust[i].1.push(flag.clone());
                }
            }
        }
        for ((i, source), translation) in non_empty.iter().zip(translated.units.clone()) {
            for number in lost_numbers(source, &lang, &translation) {
                tracing::warn!(
                    "unit {}: number {number} of the source is not in the translation",
                    i + 1
                );
            }
            out[*i] = translation;
        }
        if translated.budget_hits() > 0 {
            tracing::warn!(
                "{} chunk(s) reached the length limit and may be incomplete",
                translated.budget_hits()
            );
        }
        if let Some(path) = &args.stats {
            let figures = serde_json::json!({
                "translator": translated.translator,
                "stage": stats,
                "models": ctx.registry.records,
            });
            std::fs::write(path, serde_json::to_string_pretty(&figures)?)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        out
    };
    let mut stdout = std::io::stdout().lock();
    if args.jsonl {
        for (text, (confidence, flags)) in output.iter().zip(&trust) {
            let line = serde_json::json!({
                "text": text,
                "confidence": confidence,
                "flags": flags,
            });
            writeln!(stdout, "{line}")?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let separator = if args.lines { "\n" } else { "\n\n" };
    writeln!(stdout, "{}", output.join(separator))?;
    Ok(ExitCode::SUCCESS)
}
