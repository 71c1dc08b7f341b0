//! Command-line arguments (clap derive).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use clap_complete::Shell;

use crate::config::decoding::ConsensusMode;
use crate::engine::device::DeviceChoice;
use crate::progress::ProgressMode;
use crate::stages::load::DEFAULT_MAX_BYTES;

const AFTER_HELP: &str = "\
Examples:
  crossbrief run articles/ --out out        translate, summarize and brief a folder
  crossbrief translate --from fr article.txt
  crossbrief run articles/ --shard 0/3 --out s0   one third of the articles
  crossbrief merge s0 s1 s2 --out out       one brief from three shards
  crossbrief cache prune --older-than 30d   forget work not reused for a month
  crossbrief models fetch                   download the profile's models
  crossbrief eval --from pt --src pt.txt --ref en.txt --json
  crossbrief completions bash > /etc/bash_completion.d/crossbrief

Exit codes:
  0  done
  1  error (the command could not do its work: missing resources, a bad file given
     to translate or eval, an output folder it cannot write)
  2  usage error (bad arguments)
  3  the run finished, but some articles failed (named on stderr and in brief.json;
     a model that cannot be loaded fails the articles that need it)

Environment:
  CROSSBRIEF_DEVICE      default for --device
  CROSSBRIEF_PROFILE     default for --profile
  CROSSBRIEF_RESOURCES   default for --resources
  HF_HOME                Hugging Face cache (models are looked up and downloaded there)
  HF_ENDPOINT            Hugging Face hub address
  HF_HUB_OFFLINE=1       never download; use the cache only
  RUST_LOG               log filter (overrides -v/-q), e.g. crossbrief=debug
  CROSSBRIEF_CACHE       default for --cache (the work store)
  CROSSBRIEF_NO_CACHE=1  as --no-cache
  CROSSBRIEF_SHARD=K/N   the shard of --shard auto (else Slurm's or Kubernetes' variables)
  CROSSBRIEF_RECORD_PROMPTS=FILE   append every LLM prompt to FILE (for crossbrief bench llm)";

#[derive(Debug, Parser)]
#[command(
    name = "crossbrief",
    version,
    about = "Cross-lingual news briefs: translate articles into English with local open models, summarize each, and write one brief that cites its sources.",
    after_help = AFTER_HELP
)]
pub struct Cli {
    /// Where models run: auto (CUDA when built with it and a GPU is present, else CPU), cpu, cuda or cuda:N.
    #[arg(
        long,
        global = true,
        default_value = "auto",
        env = "CROSSBRIEF_DEVICE",
        help_heading = "Global options"
    )]
    pub device: DeviceChoice,

    /// Model profile from models/profiles.toml (which model translates each language, summarizes and briefs); default: the file's `default`.
    #[arg(
        long,
        global = true,
        env = "CROSSBRIEF_PROFILE",
        help_heading = "Global options"
    )]
    pub profile: Option<String>,

    /// Folder whose models/, prompts/, rules/ and languages/ files override the built-in ones, file by file (then ~/.config/crossbrief, then the built-in defaults).
    #[arg(
        long,
        global = true,
        env = "CROSSBRIEF_RESOURCES",
        help_heading = "Global options"
    )]
    pub resources: Option<PathBuf>,

    /// More log output on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count, help_heading = "Global options")]
    pub verbose: u8,

    /// No progress bars and only errors on stderr.
    #[arg(short, long, global = true, help_heading = "Global options")]
    pub quiet: bool,

    /// Progress on stderr: bars when stderr is a terminal (auto), bars, JSON lines (stage,
    /// items done, tokens/s) or nothing [default: auto, none with -q].
    #[arg(long, global = true, value_enum, help_heading = "Global options")]
    pub progress: Option<ProgressMode>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Translate, summarize and brief articles (files or folders of .txt, .md and .json).
    Run(RunArgs),
    /// Print the English translation of one file.
    Translate(TranslateArgs),
    /// Translate a line-aligned corpus and score it against English references (chrF, BLEU).
    Eval(EvalArgs),
    /// Fit a translator's confidence calibration from `eval --consensus all --lines-out`
    /// files (scripts/calibrate.sh runs it on the dev set).
    Calibrate(CalibrateArgs),
    /// List, download or verify the models of the profile.
    Models {
        #[command(subcommand)]
        action: ModelsAction,
    },
    /// Performance figures (scripts/bench.sh runs them beside llama.cpp).
    Bench {
        #[command(subcommand)]
        action: BenchAction,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions { shell: Shell },
    /// Print the manual page (roff).
    Man,
    /// Print the JSON Schema of brief.json.
    Schema,
    /// Write one brief from the outputs of sharded runs (`run --shard K/N`), as a single
    /// run over all their articles would.
    Merge(MergeArgs),
    /// Inspect or prune the work store.
    Cache {
        #[command(subcommand)]
        action: CacheAction,
    },
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The shards' output folders (each written by `crossbrief run --shard K/N`).
    #[arg(required = true)]
    pub shards: Vec<PathBuf>,

    /// Output folder for the merged brief.md, brief.json, brief.html and articles/. The brief
    /// is written with the decoding settings the shards ran with.
    #[arg(long, short)]
    pub out: PathBuf,

    /// Never download: use only models already in the local cache.
    #[arg(long)]
    pub no_download: bool,

    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Subcommand)]
pub enum BenchAction {
    /// Memory read bandwidth of this machine, GB/s (the bound of one-sequence decoding).
    Bandwidth {
        /// Buffer size in MiB (well beyond the caches).
        #[arg(long, default_value_t = 2048)]
        mib: usize,
        /// Reader threads (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
        /// Print the figures as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Replays LLM prompts recorded by a run (CROSSBRIEF_RECORD_PROMPTS=FILE crossbrief run …)
    /// call by call, and prints prefill/decode figures as JSON.
    Llm {
        /// The recorded prompts (JSON lines).
        prompts: PathBuf,
        /// The LLM to run them on (default: the profile's summarizer).
        #[arg(long)]
        model: Option<String>,
        /// Prompts decoded together at most (default: the manifest's).
        #[arg(long)]
        batch_rows: Option<usize>,
        /// Instead of the replay, decode throughput at these batch sizes (e.g. 1,8,16,32):
        /// that many of the prompts (repeated if fewer) each decode exactly --new-tokens
        /// tokens together, past stop tokens.
        #[arg(long, value_delimiter = ',')]
        sweep: Vec<usize>,
        /// New tokens per row in --sweep.
        #[arg(long, default_value_t = 64)]
        new_tokens: usize,
        /// Never download: use only models already in the local cache.
        #[arg(long)]
        no_download: bool,
        /// Print the figures as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Decoding and batching")]
pub struct DecodingArgs {
    /// Sampling temperature; 0 decodes greedily (deterministic). Default: the model manifest's.
    #[arg(long, value_parser = temperature)]
    pub temperature: Option<f64>,
    /// Nucleus sampling threshold in (0, 1], used when temperature > 0. Default: the manifest's.
    #[arg(long, value_parser = top_p)]
    pub top_p: Option<f64>,
    /// Random seed for sampling. Default: the manifest's.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Dedicated translators: beam size (1 = greedy). Default: the manifest's.
    #[arg(long, value_parser = at_least_one)]
    pub beam: Option<usize>,
    /// At most this many sentences (dedicated translators) or prompts (LLM) decoded together.
    /// Default: the manifest's.
    #[arg(long, value_parser = at_least_one)]
    pub batch_rows: Option<usize>,
    /// Dedicated translators: at most this many padded source tokens per batch. Default: the manifest's.
    #[arg(long, value_parser = at_least_one)]
    pub batch_tokens: Option<usize>,
    /// Dedicated translators: score the whole vocabulary instead of the lexical shortlist.
    #[arg(long)]
    pub no_shortlist: bool,
    /// Consensus re-decoding: of translations below the confidence threshold or failing a
    /// check (auto), of every translation (all), or of none (off).
    #[arg(long, value_enum, default_value_t = ConsensusMode::Auto)]
    pub consensus: ConsensusMode,
}

/// `--temperature`: a finite number, 0 or more.
fn temperature(text: &str) -> Result<f64, String> {
    let t: f64 = text.parse().map_err(|e| format!("{e}"))?;
    if t.is_finite() && t >= 0.0 {
        Ok(t)
    } else {
        Err(format!("{text} is not a finite number of 0 or more"))
    }
}

/// `--top-p`: a share in (0, 1].
fn top_p(text: &str) -> Result<f64, String> {
    let p: f64 = text.parse().map_err(|e| format!("{e}"))?;
    if p > 0.0 && p <= 1.0 {
        Ok(p)
    } else {
        Err(format!("{text} is not in (0, 1]"))
    }
}

/// Beam and batch sizes: 1 or more.
fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        Ok(_) => Err("must be 1 or more".into()),
        Err(e) => Err(format!("{e}")),
    }
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Article files or folders (.txt, .md, .json with title/body/optional lang).
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,

    /// Output folder for brief.md, brief.json, brief.html (the review page) and articles/.
    #[arg(long, short, default_value = "out")]
    pub out: PathBuf,

    /// Refuse input files larger than this many bytes.
    #[arg(long, default_value_t = DEFAULT_MAX_BYTES, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_bytes: u64,

    /// Never download: use only models already in the local cache.
    #[arg(long)]
    pub no_download: bool,

    /// Take only shard K of N of the articles (those whose id hashes to K mod N), or `auto`:
    /// CROSSBRIEF_SHARD=K/N, else a Slurm array task, else a Kubernetes Indexed Job
    /// (JOB_COMPLETION_INDEX out of CROSSBRIEF_SHARD_COUNT).
    #[arg(long, value_name = "K/N|auto")]
    pub shard: Option<String>,

    #[command(flatten)]
    pub store: StoreArgs,

    #[command(flatten)]
    pub decoding: DecodingArgs,
}

/// Where finished work is kept for re-runs.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// The work store's folder: finished translations and summaries are kept there, and a
    /// re-run (after a kill, or over a grown folder) takes them instead of computing them
    /// again. Default: crossbrief/ in the user's cache directory.
    #[arg(long, value_name = "DIR", env = "CROSSBRIEF_CACHE")]
    pub cache: Option<PathBuf>,

    /// Neither read nor write the work store: compute everything.
    #[arg(long, env = "CROSSBRIEF_NO_CACHE", value_parser = clap::builder::FalseyValueParser::new())]
    pub no_cache: bool,
}

#[derive(Debug, Subcommand)]
pub enum CacheAction {
    /// Entries, size and ages of the work store.
    Stats {
        /// The store's folder (default: crossbrief/ in the user's cache directory).
        #[arg(long, value_name = "DIR", env = "CROSSBRIEF_CACHE")]
        cache: Option<PathBuf>,
        /// Print the figures as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove corrupt entries and leftover temporary files, and with --older-than every
    /// entry not used for that long.
    Prune {
        #[arg(long, value_name = "DIR", env = "CROSSBRIEF_CACHE")]
        cache: Option<PathBuf>,
        /// Also remove entries not used for this long: 30d, 12h, 90min, 1w.
        #[arg(long, value_name = "D", value_parser = humantime::parse_duration)]
        older_than: Option<std::time::Duration>,
    },
}

#[derive(Debug, Args)]
pub struct TranslateArgs {
    /// Source language (ISO 639-1: pt, fr, ar, …).
    #[arg(long = "from")]
    pub from: String,

    /// Translate each line on its own and print exactly one line per input line (for aligned evaluation corpora).
    #[arg(long)]
    pub lines: bool,

    /// Print one JSON object per line (per paragraph without --lines) instead of text:
    /// `text` (the English), `confidence` (in [0, 1]: its least trusted sentence's) and
    /// `flags` (what the checks found, and why the confidence is low).
    #[arg(long)]
    pub jsonl: bool,

    /// The file to translate (UTF-8 text).
    pub file: PathBuf,

    /// Write the translation's figures (segments, tokens, seconds, model load time) as JSON here.
    #[arg(long)]
    pub stats: Option<PathBuf>,

    /// Refuse input files larger than this many bytes.
    #[arg(long, default_value_t = 16 * DEFAULT_MAX_BYTES)]
    pub max_bytes: u64,

    /// Never download: use only models already in the local cache.
    #[arg(long)]
    pub no_download: bool,

    #[command(flatten)]
    pub decoding: DecodingArgs,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Source language (ISO 639-1: pt, fr, ar, …).
    #[arg(long = "from")]
    pub from: String,

    /// Source text, one segment per line.
    #[arg(long)]
    pub src: PathBuf,

    /// English references, line-aligned with --src.
    #[arg(long = "ref")]
    pub reference: PathBuf,

    /// Document ids, one per line (for --documents and --skip-docs).
    #[arg(long)]
    pub docids: Option<PathBuf>,

    /// Translate each document whole, as an article (its lines joined), and score documents
    /// instead of lines.
    #[arg(long, requires = "docids")]
    pub documents: bool,

    /// Leave out the first N documents (where the prompts' worked examples come from).
    #[arg(long, requires = "docids", default_value_t = 0)]
    pub skip_docs: usize,

    /// Translate with this model instead of the profile's translator for the language.
    #[arg(long)]
    pub model: Option<String>,

    /// Write the translations here, one segment (line or document) per line.
    #[arg(long)]
    pub hyp: Option<PathBuf>,

    /// Write every line's translations, signals, confidence and chrF here (JSON lines), the
    /// input of `crossbrief calibrate`.
    #[arg(long)]
    pub lines_out: Option<PathBuf>,

    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,

    /// Never download: use only models already in the local cache.
    #[arg(long)]
    pub no_download: bool,

    #[command(flatten)]
    pub decoding: DecodingArgs,
}

#[derive(Debug, Args)]
pub struct CalibrateArgs {
    /// Evaluated lines (JSON lines from `eval --lines-out`), any number of languages.
    #[arg(required = true)]
    pub lines: Vec<PathBuf>,

    /// Below this calibrated confidence a sentence is low confidence.
    #[arg(long, default_value_t = 0.5)]
    pub threshold: f64,

    /// What the lines were fitted on (recorded in the file).
    #[arg(long, default_value = "NTREX dev set")]
    pub fitted_on: String,

    /// Write the calibration here (TOML), e.g. models/<manifest stem>.calibration.toml.
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum ModelsAction {
    /// Show each model of the catalog, its files and whether they are in the local cache.
    List {
        /// Print the list as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Download the profile's models from the Hugging Face hub into the local cache (honours HF_HOME, HF_ENDPOINT, HF_HUB_OFFLINE).
    Fetch {
        /// Every model with a manifest, not only the profile's.
        #[arg(long)]
        all: bool,
    },
    /// Check that the profile's model files are in the cache with the pinned sha256.
    Verify {
        /// Every model with a manifest, not only the profile's.
        #[arg(long)]
        all: bool,
    },
}
