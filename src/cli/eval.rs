//! `crossbrief eval`: chrF and BLEU of a translator on an aligned corpus.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context as _;

use super::args::EvalArgs;
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
    let mut out = std::io::stdout().lock();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        writeln!(
            out,
            "{lang}→en, {} {}, {}: chrF {:.2}, BLEU {:.2} ({:.1} s)",
            report.segments,
            report.mode,
            report.translator,
            report.chrf,
            report.bleu,
            report.wall_s
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
