//! Prompt-tuning aid: writes the summaries (with `--summaries`) and the brief again from the
//! translations of an earlier run, so that `prompts/summarize.toml` and `prompts/brief.toml`
//! can be tried without translating everything again.
//!     cargo run --release --example rebrief -- out/brief.json [--summaries]

use anyhow::Context as _;
use crossbrief::clean::BoilerplateRules;
use crossbrief::hub::Resolver;
use crossbrief::lang;
use crossbrief::manifest::Catalog;
use crossbrief::pipeline::{self, ArticleOutcome, Context, DecodingOverride, StageStats};
use crossbrief::progress::Progress;
use crossbrief::prompts::{BriefSource, Prompts};
use crossbrief::registry::Registry;
use crossbrief::resources::Resources;

fn main() -> anyhow::Result<()> {
    let path = std::env::args()
        .nth(1)
        .context("usage: rebrief OUT/brief.json [--summaries]")?;
    let resummarize = std::env::args().any(|a| a == "--summaries");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&path)?)?;
    let mut articles: Vec<ArticleOutcome> = serde_json::from_value(json["articles"].clone())?;
    let resources = Resources::locate(None)?;
    let catalog = Catalog::load(&resources.models_dir(), None)?;
    let mut ctx = Context {
        catalog: &catalog,
        registry: Registry::new(
            &catalog,
            Resolver::from_env(false),
            candle_core::Device::Cpu,
            false,
        ),
        prompts: Prompts::load(&resources.prompts_dir())?,
        rules: BoilerplateRules::load(&resources.rules_dir().join("boilerplate"))?,
        progress: Progress::hidden(),
        decoding: DecodingOverride::default(),
    };
    let mut stats = StageStats::default();
    if resummarize {
        let model = catalog.profile.summarize.clone();
        let bar = indicatif::ProgressBar::hidden();
        let summaries = pipeline::summarize_all(&mut ctx, &model, &articles, &mut stats, &bar)?;
        for (a, summary) in articles.iter_mut().zip(summaries) {
            a.summary = Some(summary?);
            println!("[{}] {}\n", a.id, a.summary.as_deref().unwrap_or_default());
        }
    }
    let sources: Vec<BriefSource> = articles
        .iter()
        .filter_map(|a| a.summary.as_ref().map(|s| (a, s)))
        .enumerate()
        .map(|(i, (a, summary))| BriefSource {
            n: i + 1,
            title: a.title_en.clone(),
            language: lang::english_name(&a.language),
            summary: summary.clone(),
        })
        .collect();
    // brief.json does not carry the originals: the translations' figures stand in for them.
    let supported: Vec<f64> = articles
        .iter()
        .flat_map(|a| crossbrief::check::numbers(&a.translation, "en"))
        .flat_map(|(_, values)| values)
        .collect();
    let model = catalog.profile.brief.clone();
    let (brief, removed) =
        pipeline::write_brief(&mut ctx, &model, &sources, &supported, &mut stats)?;
    println!("{brief}\n");
    for flag in removed {
        eprintln!("{}", flag.message);
    }
    eprintln!(
        "{} prompt tokens, {} new tokens",
        stats.prompt_tokens, stats.generated_tokens
    );
    Ok(())
}
