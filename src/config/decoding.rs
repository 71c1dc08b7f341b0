//! Decoding settings: an LLM's sampling (from its manifest's `[generation]`), a dedicated
//! translator's search and batching (`[marian]`), and the command line's overrides of both.

use serde::{Deserialize, Serialize};

/// Decoding settings for one call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decoding {
    pub temperature: f64,
    pub top_p: f64,
    pub seed: u64,
}

/// Decoding and batching settings (`[marian]` in a manifest).
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(default)]
pub struct MarianSettings {
    /// A translation may be at most this many times as long as its source (in tokens)...
    pub max_length_factor: f64,
    /// ...but never shorter than this.
    pub min_max_length: usize,
    /// Padded source tokens per batch.
    pub batch_tokens: usize,
    /// Sentences per batch.
    pub batch_rows: usize,
    /// 1 is greedy decoding.
    pub beam_size: usize,
    /// Beam scores are divided by length^this.
    pub length_normalization: f64,
    /// Restrict the output layer to the lexical shortlist, when the model has one.
    pub shortlist: bool,
    /// Longer sentences are split at word boundaries before translation.
    pub max_source_tokens: usize,
    /// Batches decoded at once, one per thread; 0 = one per core when candle's kernels are
    /// single-threaded (`RAYON_NUM_THREADS=1`), else 1.
    pub threads: usize,
}

impl Default for MarianSettings {
    fn default() -> Self {
        MarianSettings {
            max_length_factor: 2.5,
            min_max_length: 16,
            batch_tokens: 4096,
            batch_rows: 64,
            beam_size: 1,
            length_normalization: 1.0,
            shortlist: true,
            max_source_tokens: 200,
            threads: 0,
        }
    }
}

/// When translations are decoded again as several candidates and chosen by consensus.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum ConsensusMode {
    /// Translations below the confidence threshold or failing a check.
    #[default]
    Auto,
    /// Every translation (for calibration and evaluation).
    All,
    /// None: the first translation is kept, scored all the same.
    Off,
}

/// Overrides of the manifest's decoding settings from the command line.
#[derive(Debug, Clone, Copy, Default)]
pub struct DecodingOverride {
    pub consensus: ConsensusMode,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub seed: Option<u64>,
    pub beam_size: Option<usize>,
    pub batch_rows: Option<usize>,
    pub batch_tokens: Option<usize>,
    pub shortlist: Option<bool>,
}

impl DecodingOverride {
    /// A dedicated translator's manifest settings with these overrides applied.
    pub fn apply(self, settings: &mut MarianSettings) {
        settings.beam_size = self.beam_size.unwrap_or(settings.beam_size);
        settings.batch_rows = self.batch_rows.unwrap_or(settings.batch_rows);
        settings.batch_tokens = self.batch_tokens.unwrap_or(settings.batch_tokens);
        settings.shortlist = self.shortlist.unwrap_or(settings.shortlist);
    }

    /// A manifest's decoding settings (`defaults`) with these overrides applied.
    pub fn resolve(self, defaults: Decoding) -> Decoding {
        Decoding {
            temperature: self.temperature.unwrap_or(defaults.temperature),
            top_p: self.top_p.unwrap_or(defaults.top_p),
            seed: self.seed.unwrap_or(defaults.seed),
        }
    }
}
