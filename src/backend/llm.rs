//! A chat LLM ready to generate: GGUF weights, tokenizer from the same file, chat template and
//! stop tokens from the manifest, decoding settings from the manifest or the command line.

use std::fs::File;
use std::time::{Duration, Instant};

use candle_core::quantized::gguf_file;
use candle_core::{Device, Tensor};
use serde::Serialize;
use tokenizers::Tokenizer;

use super::gguf_tokenizer::tokenizer_from_gguf;
use super::qwen2::Qwen2;
use super::sampler::Sampler;
use crate::error::{Error, Result};
use crate::hub::ResolvedFile;
use crate::manifest::{Architecture, FileRole, ModelManifest};

#[derive(Debug, Clone, Serialize)]
pub struct ChatMessage {
    pub role: &'static str,
    pub content: String,
}

impl ChatMessage {
    pub fn system(content: impl Into<String>) -> Self {
        ChatMessage {
            role: "system",
            content: content.into(),
        }
    }
    pub fn user(content: impl Into<String>) -> Self {
        ChatMessage {
            role: "user",
            content: content.into(),
        }
    }
}

/// Decoding settings for one call.
#[derive(Debug, Clone, Copy)]
pub struct Decoding {
    pub temperature: f64,
    pub top_p: f64,
    pub seed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Finish {
    /// The model emitted a stop token.
    Stop,
    /// The new-token budget ran out first: the answer may be cut short.
    Budget,
}

#[derive(Debug, Clone)]
pub struct Generation {
    pub text: String,
    /// Prompt tokens prefilled by this call.
    pub prompt_tokens: usize,
    /// Prompt tokens whose cached keys and values were reused.
    pub reused_tokens: usize,
    pub new_tokens: usize,
    pub finish: Finish,
    pub prefill: Duration,
    pub decode: Duration,
}

pub struct LlmEngine {
    name: String,
    model: Qwen2,
    tokenizer: Tokenizer,
    stop_ids: Vec<u32>,
    templates: minijinja::Environment<'static>,
    /// Tokens whose keys and values are in the model's cache, in order. Prompts that share a
    /// prefix with them (same system prompt and instructions) skip that part of the prefill.
    cached: Vec<u32>,
}

impl LlmEngine {
    pub fn load(manifest: &ModelManifest, files: &[ResolvedFile], device: &Device) -> Result<Self> {
        if manifest.architecture != Architecture::Qwen2 {
            return Err(Error::model(
                &manifest.name,
                format!("{:?} is not a GGUF LLM architecture", manifest.architecture),
            ));
        }
        let weights = files
            .iter()
            .find(|f| f.role == FileRole::Weights)
            .ok_or_else(|| Error::model(&manifest.name, "no weights file resolved"))?;
        let prompt = manifest
            .prompt
            .clone()
            .ok_or_else(|| Error::model(&manifest.name, "manifest has no [prompt] section"))?;
        let mut reader = File::open(&weights.path).map_err(|e| Error::io(&weights.path, e))?;
        let content = gguf_file::Content::read(&mut reader).map_err(|e| {
            Error::model(
                &manifest.name,
                format!("{}: not a readable GGUF file: {e}", weights.path.display()),
            )
        })?;
        let tokenizer = tokenizer_from_gguf(&content)?;
        let model = Qwen2::load(&content, &mut reader, device)?;
        let stop_ids = prompt
            .stop
            .iter()
            .map(|s| {
                tokenizer.token_to_id(s).ok_or_else(|| {
                    Error::model(
                        &manifest.name,
                        format!("stop token {s:?} is not in the vocabulary"),
                    )
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut templates = minijinja::Environment::new();
        templates.set_keep_trailing_newline(true);
        templates
            .add_template_owned("chat", prompt.chat_template)
            .map_err(|source| Error::Prompt {
                name: format!("{} chat_template", manifest.name),
                source,
            })?;
        Ok(LlmEngine {
            name: manifest.name.clone(),
            model,
            tokenizer,
            stop_ids,
            templates,
            cached: Vec::new(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn context_length(&self) -> usize {
        self.model.config().context_length
    }

    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        Ok(self
            .tokenizer
            .encode(text, false)
            .map_err(|e| Error::Tokenizer(e.to_string()))?
            .get_ids()
            .to_vec())
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

    /// Generates an answer to `messages`; `on_token` is called after each new token.
    pub fn generate(
        &mut self,
        messages: &[ChatMessage],
        max_new_tokens: usize,
        decoding: Decoding,
        on_token: &mut dyn FnMut(),
    ) -> Result<Generation> {
        let prompt = self.render(messages)?;
        let prompt_ids = self.encode(&prompt)?;
        let room = self.context_length().saturating_sub(prompt_ids.len());
        if room == 0 {
            return Err(Error::model(
                &self.name,
                format!(
                    "prompt of {} tokens leaves no room in the context of {}",
                    prompt_ids.len(),
                    self.context_length()
                ),
            ));
        }
        let budget = max_new_tokens.min(room);
        let mut sampler = Sampler::new(decoding.temperature, decoding.top_p, decoding.seed);
        let device = self.model.device().clone();

        // Reuse the cached prefix shared with this prompt; at least one token is prefilled.
        let shared = self
            .cached
            .iter()
            .zip(&prompt_ids)
            .take_while(|(a, b)| a == b)
            .count()
            .min(prompt_ids.len() - 1);
        self.model.truncate_kv_cache(shared)?;
        self.cached.truncate(shared);

        let started = Instant::now();
        let input = Tensor::new(&prompt_ids[shared..], &device)?.unsqueeze(0)?;
        let mut logits = self.model.forward(&input, shared)?;
        self.cached.extend_from_slice(&prompt_ids[shared..]);
        let prefill = started.elapsed();

        let started = Instant::now();
        let mut generated: Vec<u32> = Vec::new();
        let mut finish = Finish::Budget;
        while generated.len() < budget {
            let row: Vec<f32> = logits.squeeze(0)?.to_vec1()?;
            let next = sampler.sample(&row);
            if self.stop_ids.contains(&next) {
                finish = Finish::Stop;
                break;
            }
            generated.push(next);
            on_token();
            if generated.len() == budget {
                break;
            }
            let input = Tensor::new(&[next], &device)?.unsqueeze(0)?;
            logits = self.model.forward(&input, self.cached.len())?;
            self.cached.push(next);
        }
        let decode = started.elapsed();
        Ok(Generation {
            text: self.decode(&generated)?,
            prompt_tokens: prompt_ids.len() - shared,
            reused_tokens: shared,
            new_tokens: generated.len(),
            finish,
            prefill,
            decode,
        })
    }
}
