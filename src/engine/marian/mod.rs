//! Encoder–decoder translators of the Marian family in candle: Bergamot/Firefox binary models
//! (int8, SSRU decoder) and Hugging Face opus-mt checkpoints share one batched engine.

pub mod bergamot;
pub mod hf;
pub mod model;
pub mod search;
pub mod shortlist;
pub mod spm;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use tokenizers::Tokenizer;

pub use crate::config::decoding::MarianSettings;
use crate::engine::batch;
use crate::error::{Error, Result};
use crate::store::{Key, ModelStore};
pub use model::MarianModel;
use model::OutputLayer;
pub use search::Hypothesis;
pub use shortlist::Shortlist;

/// The version of the translation algorithm in work-store keys: raise it when a change to the
/// engine changes what a sentence translates to.
const STORE_VERSION: u64 = 1;
const STORE_KIND: &str = "translator";

/// Told of each finished batch: its sequences' indices and their hypotheses.
pub type BatchDone<'a> = dyn FnMut(&[usize], &[Vec<Hypothesis>]) + 'a;

/// One translated segment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SegmentOutput {
    pub text: String,
    pub source_tokens: usize,
    pub target_tokens: usize,
    /// Stopped at the length limit instead of producing end-of-sentence.
    pub truncated: bool,
    /// Each target token's log-probability.
    #[serde(with = "crate::store::exact_f32s")]
    pub logprobs: Vec<f32>,
}

/// Work done by one `translate` call.
#[derive(Debug, Clone, Default, Serialize)]
pub struct BatchStats {
    pub segments: usize,
    pub batches: usize,
    pub source_tokens: usize,
    /// Source positions including padding.
    pub padded_source_tokens: usize,
    pub target_tokens: usize,
    pub wall: Duration,
}

pub struct MarianEngine {
    name: String,
    model: MarianModel,
    source: Tokenizer,
    target: Tokenizer,
    shortlist: Option<Shortlist>,
    /// The whole-vocabulary output layer (a transposed copy of the embeddings), built the
    /// first time a batch runs without a shortlist.
    full_output: OnceLock<OutputLayer>,
    pub settings: MarianSettings,
    /// Where finished translations are kept and looked up, if anywhere.
    store: Option<ModelStore>,
}

fn tokenizer(path: &Path) -> Result<Tokenizer> {
    Tokenizer::from_file(path).map_err(|e| Error::Tokenizer(format!("{}: {e}", path.display())))
}

impl MarianEngine {
    pub fn new(
        name: &str,
        model: MarianModel,
        source: Tokenizer,
        target: Tokenizer,
        shortlist: Option<Shortlist>,
        settings: MarianSettings,
    ) -> Result<Self> {
        let mut source = source;
        // Source text is untrusted: "</s>" or "<pad>" written in an article stays text.
        source.set_encode_special_tokens(true);
        Ok(MarianEngine {
            name: name.to_string(),
            model,
            source,
            target,
            shortlist,
            full_output: OnceLock::new(),
            settings,
            store: None,
        })
    }

    /// A Bergamot model: the binary model, its `tokenizer.json` (one vocabulary for both
    /// sides) and optionally its shortlist.
    pub fn from_bergamot(
        name: &str,
        model_path: &Path,
        tokenizer_path: &Path,
        shortlist_path: Option<&Path>,
        settings: MarianSettings,
        device: &Device,
    ) -> Result<Self> {
        let model = bergamot::load(model_path, device)?;
        let vocab = tokenizer(tokenizer_path)?;
        let shortlist = shortlist_path.map(Shortlist::load).transpose()?;
        Self::new(name, model, vocab.clone(), vocab, shortlist, settings)
    }

    /// A Hugging Face Marian checkpoint as the hub ships it: `config.json`, weights,
    /// `source.spm`, `target.spm` and `vocab.json`.
    #[allow(clippy::too_many_arguments)]
    pub fn from_hf(
        name: &str,
        config: &Path,
        weights: &Path,
        source_spm: &Path,
        target_spm: &Path,
        vocab: &Path,
        settings: MarianSettings,
        device: &Device,
    ) -> Result<Self> {
        let model = hf::load(config, weights, device)?;
        let source = spm::tokenizer(source_spm, vocab)?;
        let target = spm::tokenizer(target_spm, vocab)?;
        Self::new(name, model, source, target, None, settings)
    }

    /// A Hugging Face Marian checkpoint in a local folder (`model.safetensors` or
    /// `pytorch_model.bin`).
    pub fn from_hf_dir(
        name: &str,
        dir: &Path,
        settings: MarianSettings,
        device: &Device,
    ) -> Result<Self> {
        let weights = ["model.safetensors", "pytorch_model.bin"]
            .iter()
            .map(|f| dir.join(f))
            .find(|p| p.is_file())
            .ok_or_else(|| Error::input(dir, "no model.safetensors or pytorch_model.bin"))?;
        Self::from_hf(
            name,
            &dir.join("config.json"),
            &weights,
            &dir.join("source.spm"),
            &dir.join("target.spm"),
            &dir.join("vocab.json"),
            settings,
            device,
        )
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn model(&self) -> &MarianModel {
        &self.model
    }

    /// Source ids of `text`, end-of-sentence included.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self
            .source
            .encode(text, false)
            .map_err(|e| Error::Tokenizer(e.to_string()))?;
        let mut ids = encoding.get_ids().to_vec();
        ids.push(self.model.eos);
        Ok(ids)
    }

    pub fn count_tokens(&self, text: &str) -> Result<usize> {
        Ok(self.encode(text)?.len())
    }

    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.target
            .decode(ids, true)
            .map_err(|e| Error::Tokenizer(e.to_string()))
    }

    /// Keeps each finished translation in `store`, and takes from it any already made.
    pub fn set_store(&mut self, store: Option<ModelStore>) {
        self.store = store;
    }

    /// The work-store key of `segment`'s `beam`-best translations under the current
    /// settings (batching does not change a result, so it is not part of the key).
    fn store_key(&self, segment: &str, beam: usize) -> Option<Key> {
        let s = &self.settings;
        let mut key = self.store.as_ref()?.key(STORE_KIND, STORE_VERSION);
        key.text(segment)
            .number(beam as u64)
            .float(s.max_length_factor)
            .number(s.min_max_length as u64)
            .float(s.length_normalization)
            .number(u64::from(s.shortlist));
        Some(key.finish())
    }

    /// Translates independent segments (sentences), batched across all of them; the output
    /// is in input order. `done` is called with the number of segments each batch finished.
    pub fn translate(
        &self,
        segments: &[String],
        done: &mut dyn FnMut(usize),
    ) -> Result<(Vec<SegmentOutput>, BatchStats)> {
        let (outputs, stats) =
            self.nbest_for(segments, self.settings.beam_size, "translate", done)?;
        let best = outputs.into_iter().map(|mut n| n.swap_remove(0)).collect();
        Ok((best, stats))
    }

    /// Up to `beam` translations of each segment, best first (beam search's finished
    /// hypotheses; one, the greedy one, when `beam` is 1): the candidates of consensus
    /// re-decoding.
    pub fn translate_nbest(
        &self,
        segments: &[String],
        beam: usize,
        done: &mut dyn FnMut(usize),
    ) -> Result<(Vec<Vec<SegmentOutput>>, BatchStats)> {
        self.nbest_for(segments, beam, "consensus", done)
    }

    /// `translate_nbest`, counted under `task` by the work store.
    fn nbest_for(
        &self,
        segments: &[String],
        beam: usize,
        task: &str,
        done: &mut dyn FnMut(usize),
    ) -> Result<(Vec<Vec<SegmentOutput>>, BatchStats)> {
        let started = Instant::now();
        let keys: Vec<Option<Key>> = segments.iter().map(|s| self.store_key(s, beam)).collect();
        let mut outputs: Vec<Option<Vec<SegmentOutput>>> = keys
            .iter()
            .map(|k| {
                let (store, key) = (self.store.as_ref()?, k.as_ref()?);
                store.get(STORE_KIND, task, key)
            })
            .collect();
        let reused = outputs.iter().filter(|o| o.is_some()).count();
        if reused > 0 {
            done(reused);
        }
        let missing: Vec<usize> = (0..segments.len())
            .filter(|&i| outputs[i].is_none())
            .collect();
        let sources = missing
            .iter()
            .map(|&i| self.encode(&segments[i]))
            .collect::<Result<Vec<_>>>()?;
        let mut stats = BatchStats::default();
        let mut failed = None;
        // Each batch's translations are decoded and stored as soon as the batch is done.
        let mut finished = |batch: &[usize], hypotheses: &[Vec<Hypothesis>]| {
            for (&j, nbest) in batch.iter().zip(hypotheses) {
                let i = missing[j];
                let converted = nbest
                    .iter()
                    .map(|hyp| {
                        let text = if segments[i].trim().is_empty() {
                            String::new()
                        } else {
                            self.decode(&hyp.tokens)?
                        };
                        Ok(SegmentOutput {
                            text,
                            source_tokens: sources[j].len(),
                            target_tokens: hyp.tokens.len(),
                            truncated: hyp.truncated,
                            logprobs: hyp.logprobs.clone(),
                        })
                    })
                    .collect::<Result<Vec<_>>>();
                match converted {
                    Ok(list) => {
                        if let (Some(store), Some(key)) = (&self.store, &keys[i]) {
                            store.put(STORE_KIND, task, key, &list);
                        }
                        outputs[i] = Some(list);
                    }
                    Err(e) => {
                        failed.get_or_insert(e);
                    }
                }
            }
            done(batch.len());
        };
        self.translate_ids(&sources, beam, &mut stats, &mut finished)?;
        if let Some(e) = failed {
            return Err(e);
        }
        stats.wall = started.elapsed();
        let outputs = outputs
            .into_iter()
            .map(|o| o.expect("every segment is stored or translated"))
            .collect();
        Ok((outputs, stats))
    }

    /// Translates id sequences (each ending in end-of-sentence) in length-sorted batches and
    /// returns each one's hypotheses (best first, up to `beam`) in input order; `done` gets
    /// each finished batch (its sequences' indices and their hypotheses).
    pub fn translate_ids(
        &self,
        sources: &[Vec<u32>],
        beam: usize,
        stats: &mut BatchStats,
        done: &mut BatchDone,
    ) -> Result<Vec<Vec<Hypothesis>>> {
        let lengths: Vec<usize> = sources.iter().map(Vec::len).collect();
        let batches = batch::by_token_budget(
            &lengths,
            self.settings.batch_tokens,
            self.settings.batch_rows,
        );
        let threads = match self.settings.threads {
            // Auto: one batch per core when candle's kernels run single-threaded, else one
            // batch at a time with candle's own threads.
            0 if candle_core::utils::get_num_threads() == 1 => {
                std::thread::available_parallelism().map_or(1, |n| n.get())
            }
            0 => 1,
            n => n,
        }
        .min(batches.len().max(1));
        // Batches are independent: each worker takes the next one (longest first). On a CPU,
        // whole batches per core beat splitting every small matrix product across cores.
        let next = AtomicUsize::new(0);
        let (sender, receiver) = std::sync::mpsc::channel();
        let mut results: Vec<Option<Vec<Hypothesis>>> = vec![None; sources.len()];
        std::thread::scope(|scope| -> Result<()> {
            for _ in 0..threads {
                let sender = sender.clone();
                let (next, batches) = (&next, &batches);
                scope.spawn(move || loop {
                    let b = next.fetch_add(1, Ordering::Relaxed);
                    let Some(indices) = batches.get(b) else { break };
                    let batch: Vec<&[u32]> =
                        indices.iter().map(|&i| sources[i].as_slice()).collect();
                    let outcome = self.run_batch(&batch, beam);
                    let failed = outcome.is_err();
                    if sender.send((b, outcome)).is_err() || failed {
                        break;
                    }
                });
            }
            drop(sender);
            for (b, outcome) in receiver {
                let hypotheses = outcome?;
                let indices = &batches[b];
                let longest = indices.iter().map(|&i| lengths[i]).max().unwrap_or(0);
                stats.batches += 1;
                stats.segments += indices.len();
                stats.padded_source_tokens += longest * indices.len();
                stats.source_tokens += indices.iter().map(|&i| lengths[i]).sum::<usize>();
                stats.target_tokens += hypotheses.iter().map(|h| h[0].tokens.len()).sum::<usize>();
                done(indices, &hypotheses);
                for (&i, h) in indices.iter().zip(hypotheses) {
                    results[i] = Some(h);
                }
            }
            Ok(())
        })?;
        Ok(results
            .into_iter()
            .map(|h| h.expect("every index is in one batch"))
            .collect())
    }

    /// Encodes one padded batch and decodes it.
    fn run_batch(&self, batch: &[&[u32]], beam: usize) -> Result<Vec<Vec<Hypothesis>>> {
        let rows = batch.len();
        let longest = batch.iter().map(|s| s.len()).max().unwrap_or(1).max(1);
        let mut ids = vec![self.model.eos; rows * longest];
        for (r, s) in batch.iter().enumerate() {
            ids[r * longest..r * longest + s.len()].copy_from_slice(s);
        }
        let ids = Tensor::from_vec(ids, (rows, longest), &self.model.device)?;
        let lengths: Vec<usize> = batch.iter().map(|s| s.len().max(1)).collect();
        let t0 = Instant::now();
        let mut state = self.model.encode(&ids, &lengths)?;
        tracing::debug!(
            rows,
            longest,
            encode_ms = t0.elapsed().as_millis() as u64,
            "encoded batch"
        );
        let limits: Vec<usize> = lengths
            .iter()
            .map(|&n| {
                ((n as f64 * self.settings.max_length_factor).ceil() as usize)
                    .max(self.settings.min_max_length)
                    // Never past the position table, whatever the settings say.
                    .min(self.model.positions.dims()[0].saturating_sub(1))
            })
            .collect();
        let restricted;
        let output = match (&self.shortlist, self.settings.shortlist) {
            (Some(list), true) => {
                let vocab = self.model.output_bias.dims1()?;
                let allowed = list.allowed(batch.iter().flat_map(|s| s.iter().copied()), vocab);
                let mut mask = vec![f32::NEG_INFINITY; rows * allowed.len()];
                for (r, source) in batch.iter().enumerate() {
                    let own = list.allowed(source.iter().copied(), vocab);
                    let row = &mut mask[r * allowed.len()..(r + 1) * allowed.len()];
                    // Both lists are sorted: walk them together.
                    let mut j = 0;
                    for id in own {
                        while allowed[j] < id {
                            j += 1;
                        }
                        row[j] = 0.0;
                    }
                }
                state.logit_mask = Some(Tensor::from_vec(
                    mask,
                    (rows, allowed.len()),
                    &self.model.device,
                )?);
                restricted = OutputLayer::new(&self.model, Some(allowed))?;
                &restricted
            }
            _ => match self.full_output.get() {
                Some(layer) => layer,
                None => {
                    let layer = OutputLayer::new(&self.model, None)?;
                    self.full_output.get_or_init(|| layer)
                }
            },
        };
        if beam <= 1 {
            Ok(search::greedy(&self.model, state, output, &limits)?
                .into_iter()
                .map(|h| vec![h])
                .collect())
        } else {
            search::beam(
                &self.model,
                state,
                output,
                &limits,
                beam,
                self.settings.length_normalization,
            )
        }
    }
}
