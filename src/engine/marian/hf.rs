//! Loads Hugging Face Marian checkpoints (opus-mt): `config.json` plus `model.safetensors` or
//! `pytorch_model.bin`, with transformers' tensor names.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use serde::Deserialize;

use super::model::{
    sinusoidal_positions, Activation, Attention, DecoderLayer, DecoderStart, EncoderLayer,
    FeedForward, LayerNorm, Linear, MarianModel, SelfBlock,
};
use crate::error::{Error, Result};

/// The fields of a MarianConfig that decide the computation.
#[derive(Debug, Clone, Deserialize)]
pub struct HfMarianConfig {
    pub d_model: usize,
    pub encoder_layers: usize,
    pub decoder_layers: usize,
    pub encoder_attention_heads: usize,
    pub decoder_attention_heads: usize,
    pub activation_function: String,
    pub vocab_size: usize,
    pub pad_token_id: u32,
    pub eos_token_id: u32,
    pub decoder_start_token_id: u32,
    #[serde(default = "default_positions")]
    pub max_position_embeddings: usize,
    #[serde(default = "yes")]
    pub scale_embedding: bool,
    #[serde(default)]
    pub normalize_before: bool,
    #[serde(default = "yes")]
    pub share_encoder_decoder_embeddings: bool,
}

fn default_positions() -> usize {
    512
}
fn yes() -> bool {
    true
}

/// transformers' nn.LayerNorm default.
const LAYER_NORM_EPS: f32 = 1e-5;

/// Reads every tensor of a safetensors or PyTorch checkpoint as f32.
fn read_tensors(path: &Path, device: &Device) -> Result<HashMap<String, Tensor>> {
    let fail =
        |e: candle_core::Error| Error::input(path, format!("cannot read the checkpoint: {e}"));
    let raw: HashMap<String, Tensor> = if path.extension().is_some_and(|e| e == "safetensors") {
        candle_core::safetensors::load(path, device).map_err(fail)?
    } else {
        candle_core::pickle::read_all(path)
            .map_err(fail)?
            .into_iter()
            .collect()
    };
    raw.into_iter()
        .map(|(name, t)| {
            let t = t
                .to_dtype(DType::F32)
                .and_then(|t| t.to_device(device))
                .map_err(fail)?;
            Ok((name, t))
        })
        .collect()
}

pub fn load(config_path: &Path, weights_path: &Path, device: &Device) -> Result<MarianModel> {
    let text = std::fs::read_to_string(config_path).map_err(|e| Error::io(config_path, e))?;
    let cfg: HfMarianConfig = serde_json::from_str(&text)
        .map_err(|e| Error::input(config_path, format!("not a Marian config.json: {e}")))?;
    let unsupported = |what: String| {
        Error::input(
            config_path,
            format!("unsupported Marian configuration: {what}"),
        )
    };
    if cfg.normalize_before {
        return Err(unsupported("pre-norm layers (normalize_before)".into()));
    }
    if !cfg.share_encoder_decoder_embeddings {
        return Err(unsupported(
            "separate encoder and decoder embeddings".into(),
        ));
    }
    if cfg.encoder_attention_heads != cfg.decoder_attention_heads
        || !cfg.d_model.is_multiple_of(cfg.encoder_attention_heads)
    {
        return Err(unsupported(
            "encoder and decoder head counts differ or do not divide d_model".into(),
        ));
    }
    let activation = match cfg.activation_function.as_str() {
        "relu" => Activation::Relu,
        "swish" | "silu" => Activation::Swish,
        "gelu" => Activation::Gelu,
        other => return Err(unsupported(format!("activation {other}"))),
    };

    let tensors = read_tensors(weights_path, device)?;
    let missing = |name: &str| Error::input(weights_path, format!("tensor {name} is missing"));
    let get =
        |name: &str| -> Result<Tensor> { tensors.get(name).cloned().ok_or_else(|| missing(name)) };
    let linear = |p: &str| -> Result<Linear> {
        Linear::from_out_in(
            &get(&format!("{p}.weight"))?,
            Some(get(&format!("{p}.bias"))?),
        )
    };
    let norm = |p: &str| -> Result<LayerNorm> {
        Ok(LayerNorm {
            scale: get(&format!("{p}.weight"))?,
            bias: get(&format!("{p}.bias"))?,
            eps: LAYER_NORM_EPS,
        })
    };
    let attention = |p: &str| -> Result<Attention> {
        Ok(Attention {
            q: linear(&format!("{p}.q_proj"))?,
            k: linear(&format!("{p}.k_proj"))?,
            v: linear(&format!("{p}.v_proj"))?,
            o: linear(&format!("{p}.out_proj"))?,
        })
    };
    let ffn = |p: &str| -> Result<FeedForward> {
        Ok(FeedForward {
            up: linear(&format!("{p}.fc1"))?,
            down: linear(&format!("{p}.fc2"))?,
            activation,
        })
    };

    let encoder = (0..cfg.encoder_layers)
        .map(|l| {
            let p = format!("model.encoder.layers.{l}");
            Ok(EncoderLayer {
                attention: attention(&format!("{p}.self_attn"))?,
                attention_norm: norm(&format!("{p}.self_attn_layer_norm"))?,
                ffn: ffn(&p)?,
                ffn_norm: norm(&format!("{p}.final_layer_norm"))?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let decoder = (0..cfg.decoder_layers)
        .map(|l| {
            let p = format!("model.decoder.layers.{l}");
            Ok(DecoderLayer {
                self_block: SelfBlock::Attention(attention(&format!("{p}.self_attn"))?),
                self_norm: norm(&format!("{p}.self_attn_layer_norm"))?,
                cross: attention(&format!("{p}.encoder_attn"))?,
                cross_norm: norm(&format!("{p}.encoder_attn_layer_norm"))?,
                ffn: ffn(&p)?,
                ffn_norm: norm(&format!("{p}.final_layer_norm"))?,
            })
        })
        .collect::<Result<Vec<_>>>()?;

    let embeddings = ["model.shared.weight", "model.encoder.embed_tokens.weight"]
        .iter()
        .find_map(|n| tensors.get(*n).cloned())
        .ok_or_else(|| missing("model.shared.weight"))?;
    let output_weight = tensors
        .get("lm_head.weight")
        .cloned()
        .unwrap_or_else(|| embeddings.clone());
    let (vocab, dim) = embeddings.dims2()?;
    if dim != cfg.d_model || vocab != cfg.vocab_size {
        return Err(Error::input(
            weights_path,
            format!(
                "embeddings are {vocab}×{dim}, config says {}×{}",
                cfg.vocab_size, cfg.d_model
            ),
        ));
    }
    let output_bias = match tensors.get("final_logits_bias") {
        Some(b) => b.flatten_all()?,
        None => Tensor::zeros(vocab, DType::F32, device)?,
    };
    // transformers stores the sinusoidal table in some checkpoints and builds it in others.
    let positions = match tensors.get("model.encoder.embed_positions.weight") {
        Some(table) => table.clone(),
        None => sinusoidal_positions(cfg.max_position_embeddings, dim, (dim / 2) as f64, device)?,
    };
    Ok(MarianModel {
        dim,
        heads: cfg.encoder_attention_heads,
        embeddings,
        output_weight,
        embed_scale: if cfg.scale_embedding {
            (dim as f64).sqrt()
        } else {
            1.0
        },
        positions,
        encoder,
        decoder,
        output_bias,
        // transformers' Marian never generates the pad token.
        banned: vec![cfg.pad_token_id],
        start: DecoderStart::Token(cfg.decoder_start_token_id),
        eos: cfg.eos_token_id,
        device: device.clone(),
    })
}
