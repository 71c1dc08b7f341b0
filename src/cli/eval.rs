//! `crossbrief eval`: chrF and BLEU of a translator on an aligned corpus.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context as _;

use super::args::{CalibrateArgs, EvalArgs};
use super::{context, overrides};
use crate::config::manifest::Catalog;
use crate::eval;
use crate::progress::Progress;
use crate::resources::Resources;

pub fn eval(
    device: &candle_core::Device,
    resources: &Resources,
    catalog: &Catalog,
    progress: Progress,
    args: EvalArgs,
    lang: &str,
    model: &str,
) -> anyhow::Result<ExitCode> {
    let corpus = eval::Corpus::load(&args.src, &args.reference, args.docids.as_deref())?
        .skip_documents(args.skip_docs);
    let mut ctx = context(
        device,
        resources,
        catalog,
        progress,
        overrides(&args.decoding),
        args.no_download,
    )?;
    let report = eval::evaluate(&mut ctx, lang, model, &corpus, args.documents)?;
    if let Some(path) = &args.hyp {
        std::fs::write(path, report.hypotheses.join("\n") + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.lines_out {
        let mut text = String::new();
        for line in &report.lines {
            text.push_str(&serde_json::to_string(line)?);
            text.push('\n');
        }
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        let c = &report.confidence;
        let auroc = |a: Option<f64>| a.map_or("n/a".to_string(), |v| format!("{v:.3}"));
        writeln!(
            out,
            "{lang}→en, {} {}, {}: chrF {:.2}, BLEU {:.2} ({:.1} s)\n  \
             without consensus: chrF {:.2}, BLEU {:.2}; {} re-decoded in {:.1} s\n  \
             confidence ({}, threshold {:.2}): AUROC for bad lines (chrF < 30) {} (first translations {}); \
             {} bad, {} flagged; mean chrF flagged {:.1}, unflagged {:.1}",
            report.segments,
            report.mode,
            report.translator,
            report.chrf,
            report.bleu,
            report.wall_s,
            report.chrf_without_consensus,
            report.bleu_without_consensus,
            report.redecoded,
            report.consensus_s,
            if c.calibrated { "calibrated" } else { "uncalibrated" },
            c.threshold,
            auroc(c.auroc_bad),
            auroc(c.auroc_bad_first),
            c.bad_lines,
            c.flagged,
            c.mean_chrf_flagged,
            c.mean_chrf_unflagged,
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `crossbrief calibrate`: fits and writes a calibration file.
pub fn calibrate(args: &CalibrateArgs) -> anyhow::Result<ExitCode> {
    let mut lines = Vec::new();
    for path in &args.lines {
        let text = super::read_file(path)?;
        for (n, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            lines.push(
                serde_json::from_str::<eval::LineRecord>(line)
                    .with_context(|| format!("{} line {}", path.display(), n + 1))?,
            );
        }
    }
    eval::calibrate::refresh_problems(&mut lines);
    let calibration = eval::calibrate::calibrate(&lines, args.threshold, &args.fitted_on);
    let header =
        "# Confidence calibration, fitted by `crossbrief calibrate` (scripts/calibrate.sh)\n\
                  # on dev-set lines only; regenerate it with that script, never by hand.\n";
    std::fs::write(
        &args.out,
        format!("{header}{}", toml::to_string(&calibration)?),
    )
    .with_context(|| format!("writing {}", args.out.display()))?;
    let langs: std::collections::BTreeSet<String> = lines.iter().map(|l| l.lang.clone()).collect();
    for lang in &langs {
        if lines
            .iter()
            .any(|l| l.lang == *lang && !l.reference.is_empty())
        {
            println!("{}", eval::calibrate::cascade(&calibration, lang, &lines));
        }
    }
    for (lang, own) in &calibration.languages {
        eprintln!(
            "{lang}: {} lines, {:.0}% bad; base weights {:?}",
            own.sentences,
            100.0 * own.bad_share,
            own.base
                .weights
                .iter()
                .map(|w| (w * 100.0).round() / 100.0)
                .collect::<Vec<_>>()
        );
    }
    Ok(ExitCode::SUCCESS)
}
