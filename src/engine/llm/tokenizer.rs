//! Builds a `tokenizers::Tokenizer` from the vocabulary and merges stored in a GGUF file, so
//! the model file alone is enough (no separately downloaded tokenizer.json that could drift
//! from the weights).

use candle_core::quantized::gguf_file::{Content, Value};
use serde_json::{json, Map};
use tokenizers::Tokenizer;

use crate::error::{Error, Result};

/// Qwen2's pre-tokenizer split, as published in its tokenizer.json.
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// GGUF token types (llama.cpp's `llama_token_type`).
const TOKEN_CONTROL: i32 = 3;
const TOKEN_USER_DEFINED: i32 = 4;

fn strings(content: &Content, key: &str) -> Result<Vec<String>> {
    let values = content
        .metadata
        .get(key)
        .ok_or_else(|| Error::Tokenizer(format!("GGUF has no {key}")))?
        .to_vec()
        .map_err(|e| Error::Tokenizer(format!("{key}: {e}")))?;
    values
        .iter()
        .map(|v| match v {
            Value::String(s) => Ok(s.clone()),
            other => Err(Error::Tokenizer(format!("{key}: non-string {other:?}"))),
        })
        .collect()
}

/// A string metadata value, empty when absent.
fn metadata_string(content: &Content, key: &str) -> String {
    content
        .metadata
        .get(key)
        .and_then(|v| v.to_string().ok())
        .cloned()
        .unwrap_or_default()
}

/// The byte-level BPE tokenizer of a GGUF whose `tokenizer.ggml.model` is `gpt2`.
pub fn tokenizer_from_gguf(content: &Content) -> Result<Tokenizer> {
    let model = metadata_string(content, "tokenizer.ggml.model");
    if model != "gpt2" {
        return Err(Error::Tokenizer(format!(
            "tokenizer.ggml.model is {model:?}; only byte-level BPE (gpt2) is supported"
        )));
    }
    let pre = metadata_string(content, "tokenizer.ggml.pre");
    if pre != "qwen2" {
        return Err(Error::Tokenizer(format!(
            "pre-tokenizer {pre:?} is not supported (only qwen2)"
        )));
    }
    let tokens = strings(content, "tokenizer.ggml.tokens")?;
    let merges = strings(content, "tokenizer.ggml.merges")?;
    let types: Vec<i32> = content
        .metadata
        .get("tokenizer.ggml.token_type")
        .and_then(|v| v.to_vec().ok())
        .map(|vs| vs.iter().map(|v| v.to_i32().unwrap_or(1)).collect())
        .unwrap_or_else(|| vec![1; tokens.len()]);

    let mut vocab = Map::with_capacity(tokens.len());
    let mut added = Vec::new();
    for (id, token) in tokens.iter().enumerate() {
        vocab.insert(token.clone(), json!(id));
        let kind = types.get(id).copied().unwrap_or(1);
        if kind == TOKEN_CONTROL || kind == TOKEN_USER_DEFINED {
            added.push(json!({
                "id": id, "content": token, "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": false, "special": kind == TOKEN_CONTROL,
            }));
        }
    }
    let spec = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": QWEN2_SPLIT}, "behavior": "Isolated", "invert": false},
            {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false}
        ]},
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false},
        "model": {
            "type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
            "ignore_merges": false, "vocab": vocab, "merges": merges,
        }
    });
    spec.to_string()
        .parse::<Tokenizer>()
        .map_err(|e| Error::Tokenizer(format!("building from GGUF metadata: {e}")))
}
