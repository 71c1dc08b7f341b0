//! Prompt-tuning aid: writes the summaries (with `--summaries`) and the brief again from the
//! translations of an earlier run, so that `prompts/summarize.toml` and `prompts/brief.toml`
//! can be tried without translating everything again.
//!     cargo run --release --example rebrief -- out/brief.json [--summaries]

use anyhow::Context as _;
use crossbrief::config::decoding::DecodingOverride;
use crossbrief::config::manifest::Catalog;
use crossbrief::config::prompts::{BriefSource, Prompts};
use crossbrief::context::Context;
use crossbrief::domain::{ArticleOutcome, StageStats};
use crossbrief::engine::hub::Resolver;
use crossbrief::engine::registry::Registry;
use crossbrief::language;
use crossbrief::progress::Progress;
use crossbrief::resources::Resources;
use crossbrief::stages::{brief, summarize};

fn main() -> anyhow::Result<()> {
    let path = std::env::args()
        .nth(1)
        .context("usage: rebrief OUT/brief.json [--summaries]")?;
    let resummarize = std::env::args().any(|a| a == "--summaries");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&path)?)?;
    let mut articles: Vec<ArticleOutcome> = serde_json::from_value(json["articles"].clone())?;
    let resources = Resources::locate(None)?;
    let catalog = Catalog::load(&resources, None)?;
    let mut ctx = Context {
        catalog: &catalog,
        registry: Registry::new(
            &catalog,
            Resolver::from_env(false),
            candle_core::Device::Cpu,
            false,
        ),
        prompts: Prompts::load(&resources)?,
        progress: Progress::hidden(),
        decoding: DecodingOverride::default(),
    };
    let mut stats = StageStats::default();
    if resummarize {
        let model = catalog.profile.summarize.clone();
        let bar = Progress::hidden().stage("summarize", 0, "articles");
        let summaries = summarize::summarize_all(&mut ctx, &model, &articles, &mut stats, &bar)?;
        for (a, summary) in articles.iter_mut().zip(summaries) {
            let grounded = summary?;
            a.summary = grounded.text;
            for flag in grounded.flags {
                eprintln!("[{}] {}", a.id, flag.message);
            }
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
            language: language::english_name(&a.language),
            summary: summary.clone(),
        })
        .collect();
    // brief.json does not carry the originals: the translations' figures stand in for them.
    let supported: Vec<f64> = articles
        .iter()
        .flat_map(|a| crossbrief::language::numbers::numbers(&a.translation, "en"))
        .flat_map(|(_, values)| values)
        .collect();
    let model = catalog.profile.brief.clone();
    let summarized: Vec<&ArticleOutcome> =
        articles.iter().filter(|a| a.summary.is_some()).collect();
    let (brief, removed) = brief::write_brief(
        &mut ctx,
        &model,
        &sources,
        &supported,
        &summarized,
        Vec::new(),
        &mut stats,
    )?;
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
