//! A chat LLM ready to generate: GGUF weights (one file or split parts), tokenizer from the
//! same file (candle's `TokenizerFromGguf`), chat template and stop tokens from the settings. The engine batches prompts
//! over any causal-LM family behind [`CausalLm`]; the family comes from the GGUF's
//! `general.architecture`.

pub mod attention;
mod draft;
pub mod exp;
pub mod family;
pub mod gguf;
pub mod kv_cache;
pub mod qwen2;
pub mod sampler;
mod schedule;

use std::path::PathBuf;
use std::time::Duration;

use candle_core::quantized::tokenizer::TokenizerFromGguf;
use candle_core::Device;
use serde::Serialize;
use tokenizers::Tokenizer;

use crate::config::decoding::Decoding;
use crate::domain::{ChatMessage, StageStats};
use crate::error::{Error, Result};
use crate::store::{Key, ModelStore};
pub use family::{CausalLm, LmShape};
use gguf::GgufModel;
use kv_cache::KvCache;
use qwen2::Qwen2;

/// The family implementation for a GGUF's `general.architecture`.
pub fn load_family(gguf: &mut GgufModel, device: &Device) -> Result<Box<dyn CausalLm>> {
    match gguf.architecture()?.as_str() {
        "qwen2" => Ok(Box::new(Qwen2::load(gguf, device)?)),
        other => Err(Error::Model {
            model: gguf.path().display().to_string(),
            problem: format!("model family {other:?} is not supported (supported: qwen2)"),
        }),
    }
}

/// How to prompt and batch a chat LLM (`[prompt]` and `[generation]` of its manifest).
#[derive(Debug, Clone)]
pub struct ChatSettings {
    /// minijinja template over `messages`.
    pub chat_template: String,
    /// Tokens that end an answer.
    pub stop: Vec<String>,
    /// Rows decoded together at most.
    pub batch_rows: usize,
    /// KV-cache memory one batch may hold, in bytes.
    pub kv_budget_bytes: usize,
}

/// Prompts longer than this are prefilled in pieces of [`PREFILL_PIECE`] tokens, so that the
/// attention scores of one pass (heads × piece × context) stay bounded; shorter prompts are
/// prefilled whole, as they always were.
const PREFILL_WHOLE_MAX: usize = 4096;
const PREFILL_PIECE: usize = 512;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Finish {
    /// The model emitted a stop token.
    Stop,
    /// The new-token budget ran out first: the answer may be cut short.
    Budget,
}

/// One prompt of a batch and its new-token budget.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub messages: Vec<ChatMessage>,
    pub max_new_tokens: usize,
    /// This row's own sampling, where it differs from the call's (consensus candidates).
    pub sampling: Option<Decoding>,
    /// What it is for (translate, summarize, brief): the work store counts by it.
    pub task: &'static str,
}

impl Request {
    pub fn new(messages: Vec<ChatMessage>, max_new_tokens: usize) -> Self {
        Request {
            messages,
            max_new_tokens,
            sampling: None,
            task: "generate",
        }
    }

    pub fn for_task(self, task: &'static str) -> Self {
        Request { task, ..self }
    }
}

#[derive(Debug, Clone)]
pub struct Generation {
    pub text: String,
    /// Taken from the work store: nothing was computed (the token counts are 0).
    pub from_store: bool,
    /// Prompt tokens prefilled by this call.
    pub prompt_tokens: usize,
    /// Prompt tokens whose cached keys and values were reused.
    pub reused_tokens: usize,
    pub new_tokens: usize,
    pub finish: Finish,
    /// The new tokens' ids.
    pub ids: Vec<u32>,
    /// Each new token's log-probability under the model (natural log, before sampling's
    /// temperature), and the entropy of the distribution it was drawn from.
    pub logprobs: Vec<f32>,
    pub entropies: Vec<f32>,
}

/// The version of the generation algorithm in work-store keys: raise it when a change to the
/// engine changes what a prompt generates.
const STORE_VERSION: u64 = 1;
const STORE_KIND: &str = "llm";

/// A generation as the work store keeps it: what it produced, not what it cost.
#[derive(Serialize, serde::Deserialize)]
struct StoredGeneration {
    text: String,
    finish: Finish,
    ids: Vec<u32>,
    #[serde(with = "crate::store::exact_f32s")]
    logprobs: Vec<f32>,
    #[serde(with = "crate::store::exact_f32s")]
    entropies: Vec<f32>,
}

impl From<StoredGeneration> for Generation {
    fn from(s: StoredGeneration) -> Self {
        Generation {
            text: s.text,
            from_store: true,
            prompt_tokens: 0,
            reused_tokens: 0,
            new_tokens: 0,
            finish: s.finish,
            ids: s.ids,
            logprobs: s.logprobs,
            entropies: s.entropies,
        }
    }
}

/// One prompt of a `generate_batch` call as `CROSSBRIEF_RECORD_PROMPTS` writes it (a JSON
/// line each), so that benchmarks can replay exactly the run's prompts and batches.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct RecordedPrompt {
    /// The `generate_batch` call it was part of, counted from 0 per engine.
    pub call: usize,
    pub prompt_ids: Vec<u32>,
    pub max_new_tokens: usize,
    pub generated_ids: Vec<u32>,
    pub finish: Finish,
}

/// Where the time of one `generate_batch` call went.
#[derive(Debug, Clone, Copy, Default)]
pub struct BatchTimings {
    pub prefill: Duration,
    pub decode: Duration,
    /// Decoding batches run (one per call: rows join as others finish), and the most
    /// sequences decoded in one step (draft rows not counted).
    pub batches: usize,
    pub largest_batch: usize,
    /// Forward passes of the decoding loops (each advances every live row by one token, and
    /// by each draft token kept).
    pub steps: usize,
    /// Draft tokens checked in those steps, and kept.
    pub drafted: usize,
    pub accepted: usize,
}

impl Generation {
    /// Counts this generation's tokens into `stage`.
    pub fn record(&self, stage: &mut StageStats) {
        stage.add_generation(self.prompt_tokens, self.reused_tokens, self.new_tokens);
    }
}

impl BatchTimings {
    /// Counts this call's time and batches into `stage`.
    pub fn record(&self, stage: &mut StageStats) {
        stage.add_batch(
            self.prefill,
            self.decode,
            self.batches,
            self.largest_batch,
            self.steps,
        );
        stage.draft_tokens += self.drafted;
        stage.accepted_draft_tokens += self.accepted;
    }
}

/// A prompt ready to decode: its tokens, budget, and where it goes in the results.
fn encode_with(tokenizer: &Tokenizer, text: &str) -> Result<Vec<u32>> {
    Ok(tokenizer
        .encode(text, false)
        .map_err(|e| Error::Tokenizer(e.to_string()))?
        .get_ids()
        .to_vec())
}

struct Prepared {
    /// The submission it belongs to, and its place in it.
    ticket: Ticket,
    index: usize,
    ids: Vec<u32>,
    budget: usize,
    sampling: Decoding,
    /// Its work-store key, when the engine has a store, and what it is for.
    key: Option<Key>,
    task: &'static str,
}

/// A submission of prompts to the engine's one queue ([`LlmEngine::submit`]): its results
/// are taken with [`LlmEngine::collect`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ticket(usize);

pub struct LlmEngine {
    name: String,
    model: Box<dyn CausalLm>,
    /// Parses control tokens (`<|im_start|>`): for the chat template's own text only.
    tokenizer: Tokenizer,
    /// Reads every string as plain text, control-token spellings included: for message
    /// contents (articles, titles, summaries), so untrusted text never becomes a control token.
    text_tokenizer: Tokenizer,
    stop_ids: Vec<u32>,
    templates: minijinja::Environment<'static>,
    /// Rows decoded together at most.
    batch_rows: usize,
    /// Rows of a decoding step, its sequences' own included, up to which drafts fill it
    /// (none at 0 or 1).
    draft_step_rows: usize,
    /// KV-cache bytes one batch may hold.
    kv_budget_bytes: usize,
    /// The last prompt prefilled and its keys and values. Prompts that share a prefix with it
    /// (same system prompt and instructions) skip that part of the prefill.
    cached: Vec<u32>,
    prefix_cache: KvCache,
    /// Where to append each call's prompts (`CROSSBRIEF_RECORD_PROMPTS`), and calls so far.
    record_to: Option<std::path::PathBuf>,
    calls: usize,
    /// Decode every row to its full budget, stop tokens or not (throughput benchmarks only).
    ignore_stops: bool,
    /// Where finished generations are kept and looked up, if anywhere.
    store: Option<ModelStore>,
    /// Every submitted prompt not yet decoding, the rows decoding, and each submission's
    /// results so far: one queue for all the engine's work (`schedule`).
    queue: schedule::Queue,
}

impl LlmEngine {
    /// Loads the model in `weights` (one GGUF file, or every part of a split one) under
    /// `name`.
    pub fn from_gguf(
        name: &str,
        weights: &[PathBuf],
        settings: ChatSettings,
        device: &Device,
    ) -> Result<Self> {
        let mut gguf = GgufModel::open(weights)?;
        // candle's builder gives the same ids as the GGUF's own vocabulary and merges did by
        // hand before: checked on all 33 prompts and generations of the sample run.
        let tokenizer = Tokenizer::from_gguf(gguf.header())
            .map_err(|e| Error::Tokenizer(format!("{}: {e}", gguf.path().display())))?;
        let mut text_tokenizer = tokenizer.clone();
        text_tokenizer.set_encode_special_tokens(true);
        let model = load_family(&mut gguf, device)?;
        let stop_ids = settings
            .stop
            .iter()
            .map(|s| {
                tokenizer.token_to_id(s).ok_or_else(|| {
                    Error::model(name, format!("stop token {s:?} is not in the vocabulary"))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut templates = minijinja::Environment::new();
        templates.set_keep_trailing_newline(true);
        templates
            .add_template_owned("chat", settings.chat_template)
            .map_err(|source| Error::Prompt {
                name: format!("{name} chat_template"),
                source,
            })?;
        let prefix_cache = KvCache::new(model.shape().n_layers);
        Ok(LlmEngine {
            name: name.to_string(),
            model,
            tokenizer,
            text_tokenizer,
            stop_ids,
            templates,
            batch_rows: settings.batch_rows.max(1),
            draft_step_rows: schedule::DRAFT_STEP_ROWS,
            kv_budget_bytes: settings.kv_budget_bytes.max(1),
            cached: Vec::new(),
            prefix_cache,
            record_to: std::env::var_os("CROSSBRIEF_RECORD_PROMPTS").map(Into::into),
            calls: 0,
            ignore_stops: false,
            store: None,
            queue: schedule::Queue::default(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn context_length(&self) -> usize {
        self.model.shape().context_length
    }

    /// Ids of `text` read as plain text: a control token's spelling in it stays text.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        encode_with(&self.text_tokenizer, text)
    }

    /// Ids of the prompt the chat template makes of `messages`: the template's own text is
    /// read with its control tokens, each message's content as plain text. The template is
    /// rendered with a marker in place of each content, and the pieces between markers are
    /// tokenized apart (ordinary text gives the same ids as tokenizing the whole prompt: the
    /// pre-tokenizer splits at the line breaks and control tokens the markers sit between).
    pub fn encode_prompt(&self, messages: &[ChatMessage]) -> Result<Vec<u32>> {
        let marker = |i: usize| format!("\u{E000}{i}\u{E001}");
        let marked: Vec<ChatMessage> = messages
            .iter()
            .enumerate()
            .map(|(i, m)| ChatMessage {
                role: m.role,
                content: marker(i),
            })
            .collect();
        let rendered = self.render(&marked)?;
        let mut ids = Vec::new();
        let mut rest = rendered.as_str();
        for (i, message) in messages.iter().enumerate() {
            let Some((template_part, after)) = rest.split_once(&marker(i)) else {
                return Err(Error::model(
                    &self.name,
                    "the chat template must write each message's content once, unchanged",
                ));
            };
            ids.extend(encode_with(&self.tokenizer, template_part)?);
            ids.extend(encode_with(&self.text_tokenizer, &message.content)?);
            rest = after;
        }
        ids.extend(encode_with(&self.tokenizer, rest)?);
        Ok(ids)
    }

    /// Ids of `text` read with its control tokens: the whole rendered prompt as it was
    /// tokenized before message contents were read as plain text (tests compare the two).
    pub fn encode_with_controls(&self, text: &str) -> Result<Vec<u32>> {
        encode_with(&self.tokenizer, text)
    }

    /// Whether `id` is one of the vocabulary's control (added) tokens.
    pub fn is_control_token(&self, id: u32) -> bool {
        self.tokenizer
            .get_added_tokens_decoder()
            .get(&id)
            .is_some_and(|t| t.special)
    }

    /// The id of a token by its spelling (`<|im_start|>`), if the vocabulary has it.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.tokenizer.token_to_id(token)
    }

    pub fn count_tokens(&self, text: &str) -> Result<usize> {
        Ok(self.encode(text)?.len())
    }

    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.tokenizer
            .decode(ids, true)
            .map_err(|e| Error::Tokenizer(e.to_string()))
    }

    /// The prompt text the chat template makes of `messages`.
    pub fn render(&self, messages: &[ChatMessage]) -> Result<String> {
        self.templates
            .get_template("chat")
            .and_then(|t| t.render(minijinja::context! { messages => messages }))
            .map_err(|source| Error::Prompt {
                name: format!("{} chat_template", self.name),
                source,
            })
    }

    /// Bytes of weights each decoding step reads (the bound of one-sequence decoding).
    pub fn streamed_bytes(&self) -> usize {
        self.model.streamed_bytes()
    }

    pub fn batch_rows(&self) -> usize {
        self.batch_rows
    }

    /// Makes every row decode its whole budget, past stop tokens: for throughput figures at a
    /// fixed length, never for real output.
    pub fn set_ignore_stops(&mut self, ignore: bool) {
        self.ignore_stops = ignore;
    }

    /// Keeps each finished generation in `store`, and takes from it any already made.
    pub fn set_store(&mut self, store: Option<ModelStore>) {
        self.store = store;
    }

    /// The work-store key of a prompt: its exact tokens (template, instructions and data as
    /// this tokenizer read them), its budget, its sampling and the stop tokens.
    fn store_key(&self, ids: &[u32], budget: usize, decoding: Decoding) -> Option<Key> {
        // Benchmarks that decode past stop tokens make no real output.
        if self.ignore_stops {
            return None;
        }
        let store = self.store.as_ref()?;
        let mut key = store.key(STORE_KIND, STORE_VERSION);
        key.ids(ids).number(budget as u64).ids(&self.stop_ids);
        key.float(decoding.temperature);
        // Greedy decoding does not read the seed or top-p.
        if decoding.temperature > 0.0 {
            key.float(decoding.top_p).number(decoding.seed);
        }
        Some(key.finish())
    }

    pub fn set_batch_rows(&mut self, rows: usize) {
        self.batch_rows = rows.max(1);
    }

    /// Rows a decoding step fills with draft tokens while its sequences leave room (0: no
    /// drafts). Drafts change no token, only how many steps decoding takes.
    pub fn set_draft_step_rows(&mut self, rows: usize) {
        self.draft_step_rows = rows;
    }

    /// Generates an answer to `messages` on its own.
    pub fn generate(
        &mut self,
        messages: &[ChatMessage],
        max_new_tokens: usize,
        decoding: Decoding,
    ) -> Result<(Generation, BatchTimings)> {
        let request = Request::new(messages.to_vec(), max_new_tokens);
        let (mut results, timings) = self.generate_batch(&[request], decoding, &mut |_| {})?;
        Ok((results.remove(0)?, timings))
    }

    /// Generates answers to many prompts, decoding up to `batch_rows` of them together: one
    /// forward pass per step serves every row, so the weights are read once per step instead
    /// of once per row. A prompt that cannot run (too long for the context) gets its own error
    /// and the others go on; `on_done` is called with a request's index when it finishes.
    /// Prompts submitted earlier and not yet collected decode in the same steps.
    /// Greedy results do not depend on the batch they ran in (see `schedule`).
    pub fn generate_batch(
        &mut self,
        requests: &[Request],
        decoding: Decoding,
        on_done: &mut dyn FnMut(usize),
    ) -> Result<(Vec<Result<Generation>>, BatchTimings)> {
        let ticket = self.submit(requests, decoding)?;
        self.collect(ticket, on_done)
    }

    /// Puts `requests` in the engine's queue and returns at once: they decode in the steps of
    /// the calls that run next (a later stage's prompts beside an earlier stage's), and
    /// [`collect`](Self::collect) finishes them and takes their results. Prompts already in the
    /// work store, or that cannot run, are settled here.
    pub fn submit(&mut self, requests: &[Request], decoding: Decoding) -> Result<Ticket> {
        let prepared = requests
            .iter()
            .map(|r| {
                let ids = self.encode_prompt(&r.messages)?;
                Ok((ids, r.max_new_tokens))
            })
            .collect::<Result<Vec<_>>>()?;
        let sampling: Vec<Option<Decoding>> = requests.iter().map(|r| r.sampling).collect();
        let tasks: Vec<&'static str> = requests.iter().map(|r| r.task).collect();
        Ok(self.submit_rows(prepared, &sampling, &tasks, decoding))
    }

    /// Decodes until every prompt of `ticket` is done (other submissions' rows decode in the
    /// same steps and may stay in the queue), and returns its results in request order and
    /// the time its rows took; `on_done` is called with each request's index as it finishes.
    pub fn collect(
        &mut self,
        ticket: Ticket,
        on_done: &mut dyn FnMut(usize),
    ) -> Result<(Vec<Result<Generation>>, BatchTimings)> {
        let (prompts, results, timings) = self.run_until(ticket, on_done)?;
        self.record(&prompts, &results)?;
        self.calls += 1;
        Ok((results, timings))
    }

    /// Drops a submission that is no longer wanted: its waiting prompts leave the queue and
    /// its decoding rows free their slots.
    pub fn cancel(&mut self, ticket: Ticket) {
        self.queue.cancel(ticket);
    }

    /// `generate_batch` on prompts already tokenized: `(prompt ids, new-token budget)` each.
    pub fn generate_from_ids(
        &mut self,
        prompts: &[(Vec<u32>, usize)],
        decoding: Decoding,
        on_done: &mut dyn FnMut(usize),
    ) -> Result<(Vec<Result<Generation>>, BatchTimings)> {
        self.generate_rows(
            prompts,
            &vec![None; prompts.len()],
            &vec!["generate"; prompts.len()],
            decoding,
            on_done,
        )
    }

    /// `submit` on prompts already tokenized.
    pub fn submit_ids(&mut self, prompts: &[(Vec<u32>, usize)], decoding: Decoding) -> Ticket {
        self.submit_rows(
            prompts.to_vec(),
            &vec![None; prompts.len()],
            &vec!["generate"; prompts.len()],
            decoding,
        )
    }

    /// `generate_from_ids` where row i samples with `sampling[i]` when it is given (consensus
    /// candidates: one prompt, each row its own seed).
    pub fn generate_sampled_from_ids(
        &mut self,
        prompts: &[(Vec<u32>, usize)],
        sampling: &[Option<Decoding>],
        decoding: Decoding,
        on_done: &mut dyn FnMut(usize),
    ) -> Result<(Vec<Result<Generation>>, BatchTimings)> {
        assert_eq!(prompts.len(), sampling.len());
        self.generate_rows(
            prompts,
            sampling,
            &vec!["generate"; prompts.len()],
            decoding,
            on_done,
        )
    }

    fn generate_rows(
        &mut self,
        prompts: &[(Vec<u32>, usize)],
        sampling: &[Option<Decoding>],
        tasks: &[&'static str],
        decoding: Decoding,
        on_done: &mut dyn FnMut(usize),
    ) -> Result<(Vec<Result<Generation>>, BatchTimings)> {
        let ticket = self.submit_rows(prompts.to_vec(), sampling, tasks, decoding);
        self.collect(ticket, on_done)
    }

    /// Queues `prompts` as one submission, row i sampling with `sampling[i]` when it is given
    /// and counted under `tasks[i]` by the work store. Stored generations and prompts that do
    /// not fit are its results at once.
    fn submit_rows(
        &mut self,
        prompts: Vec<(Vec<u32>, usize)>,
        sampling: &[Option<Decoding>],
        tasks: &[&'static str],
        decoding: Decoding,
    ) -> Ticket {
        let ticket = self.queue.open(prompts.clone());
        for (index, (ids, budget)) in prompts.into_iter().enumerate() {
            let sampling = sampling[index].unwrap_or(decoding);
            let key = self.store_key(&ids, budget, sampling);
            if let Some(stored) = key.as_ref().and_then(|k| {
                let store = self.store.as_ref()?;
                store.get::<StoredGeneration>(STORE_KIND, tasks[index], k)
            }) {
                self.queue.settle(ticket, index, Ok(stored.into()));
                continue;
            }
            match self.fit(&ids, budget) {
                Ok(budget) => self.queue.push(Prepared {
                    ticket,
                    index,
                    ids,
                    budget,
                    sampling,
                    key,
                    task: tasks[index],
                }),
                Err(e) => self.queue.settle(ticket, index, Err(e)),
            }
        }
        ticket
    }

    fn record(&self, prompts: &[(Vec<u32>, usize)], results: &[Result<Generation>]) -> Result<()> {
        let Some(path) = &self.record_to else {
            return Ok(());
        };
        let mut lines = String::new();
        for ((ids, budget), result) in prompts.iter().zip(results) {
            if let Ok(g) = result {
                let line = RecordedPrompt {
                    call: self.calls,
                    prompt_ids: ids.clone(),
                    max_new_tokens: *budget,
                    generated_ids: g.ids.clone(),
                    finish: g.finish,
                };
                lines.push_str(&serde_json::to_string(&line).expect("plain data serializes"));
                lines.push('\n');
            }
        }
        use std::io::Write;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .and_then(|mut f| f.write_all(lines.as_bytes()))
            .map_err(|e| Error::io(path, e))
    }

    /// KV-cache bytes of one token of one row.
    fn kv_bytes_per_token(&self) -> usize {
        let shape = self.model.shape();
        // Keys and values, f32.
        shape.n_layers * shape.n_kv_heads * shape.head_dim * 2 * 4
    }

    /// The budget of a prompt of `ids`, fitted to the room the context leaves; a prompt the
    /// context or the KV budget cannot hold is refused.
    fn fit(&self, ids: &[u32], budget: usize) -> Result<usize> {
        let room = self.context_length().saturating_sub(ids.len());
        if room == 0 || ids.is_empty() {
            return Err(Error::model(
                &self.name,
                format!(
                    "prompt of {} tokens leaves no room in the context of {}",
                    ids.len(),
                    self.context_length()
                ),
            ));
        }
        let budget = budget.min(room).max(1);
        let need = (ids.len() + budget) * self.kv_bytes_per_token();
        if need > self.kv_budget_bytes {
            return Err(Error::model(
                &self.name,
                format!(
                    "a prompt of {} tokens with {budget} new ones needs {:.1} MiB of KV cache, over the budget of {:.1} MiB (kv_budget_mb in the manifest)",
                    ids.len(),
                    need as f64 / (1024.0 * 1024.0),
                    self.kv_budget_bytes as f64 / (1024.0 * 1024.0)
                ),
            ));
        }
        Ok(budget)
    }

    /// Prefills `prompt` after the prefix it shares with the previous prompt, whose keys and
    /// values are kept; returns the logits of its last position and the tokens reused.
    fn prefill(&mut self, ids: &[u32]) -> Result<(Vec<f32>, usize)> {
        // At least one prompt token is prefilled, for the logits of the first new token.
        let shared = self
            .cached
            .iter()
            .zip(ids)
            .take_while(|(a, b)| a == b)
            .count()
            .min(ids.len() - 1);
        self.prefix_cache.truncate(shared)?;
        self.cached.truncate(shared);
        let fresh = &ids[shared..];
        let logits = if fresh.len() <= PREFILL_WHOLE_MAX {
            self.model.prefill(fresh, &mut self.prefix_cache)?
        } else {
            // pieces end at multiples of PREFILL_PIECE positions, whatever the prefix reused:
            // a piece ending elsewhere rounds its attention differently
            // (`examples/prefill_pieces.rs`)
            let mut last = None;
            let mut start = shared;
            while start < ids.len() {
                let end = ((start / PREFILL_PIECE + 1) * PREFILL_PIECE).min(ids.len());
                last = Some(
                    self.model
                        .prefill(&ids[start..end], &mut self.prefix_cache)?,
                );
                start = end;
            }
            last.expect("a prompt has tokens")
        };
        self.cached.extend_from_slice(fresh);
        Ok((logits.squeeze(0)?.to_vec1::<f32>()?, shared))
    }
}
