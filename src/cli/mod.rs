//! The command line: its arguments ([`args`]) and one function per subcommand.
//!
//! Exit codes: 0 done; 1 error (the command could not do its work: missing resources, a bad
//! file given to translate or eval, an output folder it cannot write); 2 usage error (clap);
//! 3 `run` finished but some or all articles failed (each is in `brief.json`). A closed
//! stdout (`| head`) ends the command quietly with 0.

pub mod args;
pub mod bench;
pub mod cache;
pub mod docs;
pub mod eval;
pub mod merge;
pub mod models;
pub mod run;
pub mod translate;

use std::process::ExitCode;

use anyhow::Context as _;

use crate::config::decoding::DecodingOverride;
use crate::config::manifest::Catalog;
use crate::config::prompts::Prompts;
use crate::context::Context;
use crate::engine::hub::Resolver;
use crate::engine::registry::Registry;
use crate::language::{self, Packs};
use crate::progress::{Progress, ProgressMode};
use crate::resources::Resources;
use crate::store::WorkStore;
pub use args::{Cli, Command};
use args::{DecodingArgs, StoreArgs};

/// An error: the command could not do its work (missing resources, a bad file given to
/// translate or eval, an output folder it cannot write).
pub const EXIT_ERROR: u8 = 1;
/// `run` finished, but some or all articles failed (each named on stderr and in
/// `brief.json`).
pub const EXIT_PARTIAL: u8 = 3;

/// Runs the parsed command line; the exit codes are those of this module's documentation.
pub fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    // Commands that need no models, resources or device.
    match &cli.command {
        Command::Calibrate(args) => return eval::calibrate(args),
        Command::Completions { shell } => return docs::completions(*shell),
        Command::Man => return docs::man(),
        Command::Schema => return docs::schema(),
        Command::Cache { action } => return cache::cache(action),
        _ => {}
    }
    let resources = Resources::locate(cli.resources.as_deref())?;
    language::install(Packs::load(&resources)?);
    let catalog = Catalog::load(&resources, cli.profile.as_deref())?;
    let progress = Progress::new(cli.progress.unwrap_or(if cli.quiet {
        ProgressMode::Off
    } else {
        ProgressMode::Auto
    }));
    match cli.command {
        Command::Run(args) => run::run(
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
            translate::translate(&cli.device.open()?, &resources, &catalog, progress, args)
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
            eval::eval(
                &cli.device.open()?,
                &resources,
                &catalog,
                progress,
                args,
                &lang,
                &model,
            )
        }
        Command::Models { action } => models::models(&catalog, action, cli.quiet),
        Command::Bench { action } => {
            bench::bench(&cli.device, &resources, &catalog, progress, action)
        }
        Command::Merge(args) => merge::merge(
            &cli.device.open()?,
            &resources,
            &catalog,
            progress,
            args,
            cli.quiet,
        ),
        Command::Calibrate(_)
        | Command::Completions { .. }
        | Command::Man
        | Command::Schema
        | Command::Cache { .. } => {
            unreachable!("handled above")
        }
    }
}

/// A dedicated translator on the CPU runs one batch per core, each with single-threaded
/// kernels: its matrices are small, and splitting every one across cores costs more in
/// synchronisation than it gains. Left alone when the user set the variables. Called before
/// candle starts any thread.
pub fn single_threaded_kernels() {
    for var in ["RAYON_NUM_THREADS", "CANDLE_NUM_THREADS"] {
        if std::env::var_os(var).is_none() {
            std::env::set_var(var, "1");
        }
    }
}

/// The work store a run keeps its units in: `--cache`, `CROSSBRIEF_CACHE` or the user's cache
/// directory; none with `--no-cache`. One that cannot be opened costs the reuse, not the run.
pub fn open_store(args: &StoreArgs) -> Option<std::sync::Arc<WorkStore>> {
    if args.no_cache {
        return None;
    }
    let Some(root) = args.cache.clone().or_else(WorkStore::default_root) else {
        eprintln!("warning: no cache directory is known (set --cache or CROSSBRIEF_CACHE); nothing from this run can be reused");
        return None;
    };
    match WorkStore::open(&root) {
        Ok(store) => Some(std::sync::Arc::new(store)),
        Err(e) => {
            eprintln!("warning: the work store cannot be opened ({e}); nothing from this run can be reused");
            None
        }
    }
}

/// Each failed article on stderr, one line each: its file, stage and error.
pub fn print_failures(failures: &[crate::domain::Failure]) {
    for f in failures {
        eprintln!(
            "error: {} ({}): {}",
            printable(&f.source_path.display().to_string()),
            f.stage,
            printable(&f.error)
        );
    }
}

/// 0 when every article made it, else 3 (the brief is written all the same).
pub fn exit_code(failures: &[crate::domain::Failure]) -> ExitCode {
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_PARTIAL)
    }
}

/// The store's line for the end of a run.
pub fn report_store(record: Option<&crate::store::StoreRecord>, quiet: bool) {
    let Some(r) = record else { return };
    for entry in &r.corrupt_entries {
        eprintln!(
            "warning: work store entry {} was corrupt: removed, its unit computed again",
            printable(&entry.display().to_string())
        );
    }
    if let Some(e) = &r.write_error {
        eprintln!(
            "warning: the work store could not be written ({e}); this run's work is not reusable"
        );
    }
    if !quiet {
        eprintln!(
            "work store {}: {} unit(s) reused, {} computed, {} corrupt recomputed",
            printable(&r.path.display().to_string()),
            r.total.reused,
            r.total.computed,
            r.total.corrupt
        );
    }
}

pub fn overrides(d: &DecodingArgs) -> DecodingOverride {
    DecodingOverride {
        temperature: d.temperature,
        top_p: d.top_p,
        seed: d.seed,
        beam_size: d.beam,
        batch_rows: d.batch_rows,
        batch_tokens: d.batch_tokens,
        shortlist: d.no_shortlist.then_some(false),
        consensus: d.consensus,
    }
}

pub fn context<'a>(
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
        prompts: Prompts::load(resources)?,
        progress,
        decoding,
    })
}

pub use crate::output::printable;

/// Whether `error` is a write to a closed pipe (`crossbrief translate … | head -1`).
pub fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Reads a regular file (never a FIFO, which would block) of UTF-8 text for a command,
/// naming it in the error.
pub fn read_file(path: &std::path::Path) -> anyhow::Result<String> {
    // Evaluation corpora and calibration lines, far bigger than any article.
    const LIMIT: u64 = 1 << 30;
    let bytes = crate::stages::load::read_bounded(path, LIMIT)?;
    String::from_utf8(bytes).with_context(|| format!("reading {}: not UTF-8", path.display()))
}
