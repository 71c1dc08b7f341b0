use std::io::Write;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context as _};
use clap::Parser;
use tracing_subscriber::EnvFilter;

use crossbrief::article;
use crossbrief::check;
use crossbrief::clean::{self, BoilerplateRules};
use crossbrief::cli::{
    BenchAction, Cli, Command, DecodingArgs, EvalArgs, ModelsAction, RunArgs, TranslateArgs,
};
use crossbrief::device;
use crossbrief::hub::{self, Resolver};
use crossbrief::manifest::Catalog;
use crossbrief::pipeline::{self, Context, DecodingOverride, Segmentation, StageStats};
use crossbrief::progress::Progress;
use crossbrief::prompts::Prompts;
use crossbrief::registry::Registry;
use crossbrief::report::{self, DecodingRecord, RunRecord};
use crossbrief::resources::Resources;

/// Exit code when the run finished but some articles failed.
const PARTIAL_FAILURE: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose, cli.quiet);
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("crossbrief={level},warn")));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let resources = Resources::locate(cli.resources.as_deref())?;
    let catalog = Catalog::load(&resources.models_dir(), cli.profile.as_deref())?;
    let progress = Progress::new(cli.quiet);
    match cli.command {
        Command::Run(args) => run_job(
            &cli.device.open()?,
            &resources,
            &catalog,
            progress,
            args,
            cli.quiet,
        ),
        Command::Translate(args) => {
            let dedicated = catalog
                .translator_for(&args.from.to_ascii_lowercase())
                .and_then(|m| catalog.model(m).ok())
                .is_some_and(|m| m.architecture.is_translator());
            if dedicated {
                single_threaded_kernels();
            }
            translate(&cli.device.open()?, &resources, &catalog, progress, args)
        }
        Command::Eval(args) => {
            let lang = args.from.to_ascii_lowercase();
            let model = match &args.model {
                Some(m) => m.clone(),
                None => catalog
                    .translator_for(&lang)
                    .with_context(|| {
                        format!(
                            "profile {} has no translator for {lang}",
                            catalog.profile_name
                        )
                    })?
                    .to_string(),
            };
            if catalog.model(&model)?.architecture.is_translator() {
                single_threaded_kernels();
            }
            eval(
                &cli.device.open()?,
                &resources,
                &catalog,
                progress,
                args,
                &lang,
                &model,
            )
        }
        Command::Models { action } => models(&catalog, action, cli.quiet),
        Command::Bench { action } => bench(&cli.device, &resources, &catalog, progress, action),
    }
}

fn bench(
    device: &crossbrief::device::DeviceChoice,
    resources: &Resources,
    catalog: &Catalog,
    progress: Progress,
    action: BenchAction,
) -> anyhow::Result<ExitCode> {
    match action {
        BenchAction::Bandwidth { mib, threads } => {
            let threads = threads
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
            let gb_s = crossbrief::bench::read_bandwidth_gb_s(mib << 20, threads, 5);
            println!(
                "{}",
                serde_json::json!({ "read_gb_s": gb_s, "mib": mib, "threads": threads })
            );
        }
        BenchAction::Llm {
            prompts,
            model,
            batch_rows,
            sweep,
            new_tokens,
            no_download,
        } => {
            let text = std::fs::read_to_string(&prompts)
                .with_context(|| format!("reading {}", prompts.display()))?;
            let recorded = text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(serde_json::from_str)
                .collect::<Result<Vec<crossbrief::backend::llm::RecordedPrompt>, _>>()
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
            let decoding = ctx.decoding.resolve(catalog.model(&model)?);
            let engine = ctx.registry.llm(&model)?;
            if !sweep.is_empty() {
                let points =
                    crossbrief::bench::sweep(engine, &recorded, &sweep, new_tokens, decoding)?;
                println!("{}", serde_json::to_string_pretty(&points)?);
                return Ok(ExitCode::SUCCESS);
            }
            if let Some(rows) = batch_rows {
                engine.set_batch_rows(rows);
            }
            let report = crossbrief::bench::replay(engine, &recorded, decoding)?;
            println!("{}", serde_json::to_string_pretty(&report)?);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A dedicated translator on the CPU runs one batch per core, each with single-threaded
/// kernels: its matrices are small, and splitting every one across cores costs more in
/// synchronisation than it gains. Left alone when the user set the variables. Called before
/// candle starts any thread.
fn single_threaded_kernels() {
    for var in ["RAYON_NUM_THREADS", "CANDLE_NUM_THREADS"] {
        if std::env::var_os(var).is_none() {
            std::env::set_var(var, "1");
        }
    }
}

fn overrides(d: &DecodingArgs) -> DecodingOverride {
    DecodingOverride {
        temperature: d.temperature,
        top_p: d.top_p,
        seed: d.seed,
        beam_size: d.beam,
        batch_rows: d.batch_rows,
        batch_tokens: d.batch_tokens,
        shortlist: d.no_shortlist.then_some(false),
    }
}

fn context<'a>(
    device: &candle_core::Device,
    resources: &Resources,
    catalog: &'a Catalog,
    progress: Progress,
    decoding: DecodingOverride,
    no_download: bool,
) -> anyhow::Result<Context<'a>> {
    let resolver = Resolver::from_env(progress.is_visible());
    Ok(Context {
        catalog,
        registry: Registry::new(catalog, resolver, device.clone(), !no_download),
        prompts: Prompts::load(&resources.prompts_dir())?,
        rules: BoilerplateRules::load(&resources.rules_dir().join("boilerplate"))?,
        progress,
        decoding,
    })
}

fn run_job(
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
    let outcome = pipeline::run(&mut ctx, &args.paths, &args.out, args.max_bytes)?;
    let record = RunRecord {
        crossbrief_version: env!("CARGO_PKG_VERSION"),
        profile: catalog.profile_name.clone(),
        device: device::describe(device),
        models: ctx.registry.records.clone(),
        decoding: DecodingRecord {
            temperature: decoding.temperature,
            top_p: decoding.top_p,
            seed: decoding.seed,
        },
        stages: outcome.stages.clone(),
        total_wall_s: started.elapsed().as_secs_f64(),
        peak_memory_mb: report::peak_memory_mb(),
    };
    report::write_brief(&args.out, &outcome, record.clone())?;

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
    println!(
        "wrote {} ({} article(s) translated, {} failed)",
        args.out.join("brief.md").display(),
        outcome.articles.len(),
        outcome.failures.len()
    );
    Ok(if outcome.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(PARTIAL_FAILURE)
    })
}

fn print_stages(stages: &[StageStats]) {
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

fn translate(
    device: &candle_core::Device,
    resources: &Resources,
    catalog: &Catalog,
    progress: Progress,
    args: TranslateArgs,
) -> anyhow::Result<ExitCode> {
    let lang = args.from.to_ascii_lowercase();
    let doc = article::load(&args.file, "input".into(), args.max_bytes)?;
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
        let mut stats = StageStats::default();
        let segmentation = if args.lines {
            Segmentation::WholeUnits
        } else {
            Segmentation::Sentences
        };
        let translated =
            pipeline::translate_units(&mut ctx, &lang, &texts, segmentation, &mut stats, &bar)?;
        bar.finish_and_clear();
        let mut out = vec![String::new(); units.len()];
        for ((i, source), translation) in non_empty.iter().zip(translated.units.clone()) {
            for number in check::lost_numbers(source, &lang, &translation) {
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
    let separator = if args.lines { "\n" } else { "\n\n" };
    writeln!(stdout, "{}", output.join(separator))?;
    Ok(ExitCode::SUCCESS)
}

fn eval(
    device: &candle_core::Device,
    resources: &Resources,
    catalog: &Catalog,
    progress: Progress,
    args: EvalArgs,
    lang: &str,
    model: &str,
) -> anyhow::Result<ExitCode> {
    let corpus =
        crossbrief::eval::Corpus::load(&args.src, &args.reference, args.docids.as_deref())?
            .skip_documents(args.skip_docs);
    let mut ctx = context(
        device,
        resources,
        catalog,
        progress,
        overrides(&args.decoding),
        args.no_download,
    )?;
    let report = crossbrief::eval::evaluate(&mut ctx, lang, model, &corpus, args.documents)?;
    if let Some(path) = &args.hyp {
        std::fs::write(path, report.hypotheses.join("\n") + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{lang}→en, {} {}, {}: chrF {:.2}, BLEU {:.2} ({:.1} s)",
            report.segments,
            report.mode,
            report.translator,
            report.chrf,
            report.bleu,
            report.wall_s
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn models(catalog: &Catalog, action: ModelsAction, quiet: bool) -> anyhow::Result<ExitCode> {
    let resolver = Resolver::from_env(!quiet);
    let profile_models = catalog.profile_model_names();
    let chosen = |all: bool| -> Vec<&crossbrief::manifest::ModelManifest> {
        catalog
            .models
            .values()
            .filter(|m| all || profile_models.contains(&m.name))
            .collect()
    };
    match action {
        ModelsAction::List => {
            println!(
                "profile {} · cache {}",
                catalog.profile_name,
                resolver.cache_dir().display()
            );
            for m in chosen(true) {
                let used = if profile_models.contains(&m.name) {
                    " (in profile)"
                } else {
                    ""
                };
                println!(
                    "{}{used}\n  {} · {}@{} · {:?}",
                    m.name, m.display_name, m.hub.repo, m.hub.revision, m.architecture
                );
                for f in &m.files {
                    let state = match resolver.cached(m, f) {
                        Some((path, _)) => format!("cached at {}", path.display()),
                        None => "missing".into(),
                    };
                    let size = f
                        .size
                        .map(|s| format!("{:.1} MB", s as f64 / 1e6))
                        .unwrap_or_default();
                    let checksum = f
                        .sha256
                        .as_ref()
                        .map_or("not pinned".to_string(), |s| format!("{}…", &s[..12]));
                    println!(
                        "  - {:?} {} {size} sha256 {checksum} {state}",
                        f.role, f.name
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        ModelsAction::Fetch { all } | ModelsAction::Verify { all } => {
            let download = matches!(action, ModelsAction::Fetch { .. });
            let mut failed = 0;
            for m in chosen(all) {
                for f in &m.files {
                    match resolver.resolve(m, f, download) {
                        Ok(r) => println!(
                            "ok      {} {} ({:?}, sha256 {})",
                            m.name,
                            r.path.display(),
                            r.origin,
                            if r.pinned {
                                "verified"
                            } else {
                                "recorded, not pinned"
                            }
                        ),
                        Err(e) => {
                            failed += 1;
                            println!("FAILED  {} {}: {e}", m.name, f.name);
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
