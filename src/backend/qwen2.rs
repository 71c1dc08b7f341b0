//! Qwen2 decoder-only transformer over quantized GGUF weights (llama.cpp tensor names).
//! Written here rather than taken from candle-transformers so that the attention, masks and
//! KV cache are ours to batch.

use std::io::{Read, Seek};

use candle_core::quantized::gguf_file::Content;
use candle_core::quantized::{QMatMul, QTensor};
use candle_core::{DType, Device, Module, Tensor, D};

use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub struct Qwen2Config {
    pub n_layers: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub dim: usize,
    pub context_length: usize,
    pub rope_theta: f32,
    pub rms_eps: f64,
}

impl Qwen2Config {
    fn from_gguf(content: &Content) -> Result<Self> {
        let get = |key: &str| {
            content
                .metadata
                .get(&format!("qwen2.{key}"))
                .ok_or_else(|| Error::model("qwen2", format!("GGUF metadata has no qwen2.{key}")))
        };
        let as_usize = |key: &str| -> Result<usize> { Ok(get(key)?.to_u32()? as usize) };
        Ok(Qwen2Config {
            n_layers: as_usize("block_count")?,
            n_heads: as_usize("attention.head_count")?,
            n_kv_heads: as_usize("attention.head_count_kv")?,
            dim: as_usize("embedding_length")?,
            context_length: as_usize("context_length")?,
            rope_theta: get("rope.freq_base")?.to_f32()?,
            rms_eps: get("attention.layer_norm_rms_epsilon")?.to_f32()? as f64,
        })
    }

    pub fn head_dim(&self) -> usize {
        self.dim / self.n_heads
    }
}

struct Attention {
    q: QMatMul,
    k: QMatMul,
    v: QMatMul,
    q_bias: Tensor,
    k_bias: Tensor,
    v_bias: Tensor,
    o: QMatMul,
    kv_cache: Option<(Tensor, Tensor)>,
}

struct Mlp {
    gate: QMatMul,
    up: QMatMul,
    down: QMatMul,
}

struct Layer {
    attn_norm: Tensor,
    attn: Attention,
    ffn_norm: Tensor,
    mlp: Mlp,
}

pub struct Qwen2 {
    cfg: Qwen2Config,
    embed: QTensor,
    layers: Vec<Layer>,
    norm: Tensor,
    lm_head: QMatMul,
    cos: Tensor,
    sin: Tensor,
    device: Device,
}

struct Loader<'a, R> {
    content: &'a Content,
    reader: &'a mut R,
    device: &'a Device,
}

impl<R: Read + Seek> Loader<'_, R> {
    fn qtensor(&mut self, name: &str) -> Result<QTensor> {
        Ok(self.content.tensor(self.reader, name, self.device)?)
    }
    fn matmul(&mut self, name: &str) -> Result<QMatMul> {
        Ok(QMatMul::from_qtensor(self.qtensor(name)?)?)
    }
    fn dense(&mut self, name: &str) -> Result<Tensor> {
        Ok(self.qtensor(name)?.dequantize(self.device)?)
    }
}

impl Qwen2 {
    pub fn load<R: Read + Seek>(
        content: &Content,
        reader: &mut R,
        device: &Device,
    ) -> Result<Self> {
        let cfg = Qwen2Config::from_gguf(content)?;
        let mut l = Loader {
            content,
            reader,
            device,
        };
        let embed = l.qtensor("token_embd.weight")?;
        let lm_head = if content.tensor_infos.contains_key("output.weight") {
            l.matmul("output.weight")?
        } else {
            l.matmul("token_embd.weight")?
        };
        let norm = l.dense("output_norm.weight")?;
        let mut layers = Vec::with_capacity(cfg.n_layers);
        for i in 0..cfg.n_layers {
            let p = format!("blk.{i}");
            layers.push(Layer {
                attn_norm: l.dense(&format!("{p}.attn_norm.weight"))?,
                attn: Attention {
                    q: l.matmul(&format!("{p}.attn_q.weight"))?,
                    k: l.matmul(&format!("{p}.attn_k.weight"))?,
                    v: l.matmul(&format!("{p}.attn_v.weight"))?,
                    q_bias: l.dense(&format!("{p}.attn_q.bias"))?,
                    k_bias: l.dense(&format!("{p}.attn_k.bias"))?,
                    v_bias: l.dense(&format!("{p}.attn_v.bias"))?,
                    o: l.matmul(&format!("{p}.attn_output.weight"))?,
                    kv_cache: None,
                },
                ffn_norm: l.dense(&format!("{p}.ffn_norm.weight"))?,
                mlp: Mlp {
                    gate: l.matmul(&format!("{p}.ffn_gate.weight"))?,
                    up: l.matmul(&format!("{p}.ffn_up.weight"))?,
                    down: l.matmul(&format!("{p}.ffn_down.weight"))?,
                },
            });
        }
        let (cos, sin) = rope_tables(&cfg, device)?;
        Ok(Qwen2 {
            cfg,
            embed,
            layers,
            norm,
            lm_head,
            cos,
            sin,
            device: device.clone(),
        })
    }

    pub fn config(&self) -> &Qwen2Config {
        &self.cfg
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Keeps the first `len` cached positions and forgets the rest (prefix reuse).
    pub fn truncate_kv_cache(&mut self, len: usize) -> Result<()> {
        for layer in &mut self.layers {
            if let Some((k, v)) = layer.attn.kv_cache.take() {
                if len > 0 {
                    layer.attn.kv_cache = Some((k.narrow(2, 0, len)?, v.narrow(2, 0, len)?));
                }
            }
        }
        Ok(())
    }

    /// Runs `ids` (shape `[batch, seq]`) placed after `offset` cached positions and returns
    /// the logits of the last position, `[batch, vocab]`.
    pub fn forward(&mut self, ids: &Tensor, offset: usize) -> Result<Tensor> {
        let (_, seq_len) = ids.dims2()?;
        if offset + seq_len > self.cfg.context_length {
            return Err(Error::model(
                "qwen2",
                format!(
                    "sequence of {} tokens exceeds the context of {}",
                    offset + seq_len,
                    self.cfg.context_length
                ),
            ));
        }
        let mut x = self.embed.embedding(ids)?;
        let cos = self.cos.narrow(0, offset, seq_len)?;
        let sin = self.sin.narrow(0, offset, seq_len)?;
        let mask = causal_mask(seq_len, offset, &self.device)?;
        for layer in &mut self.layers {
            let h = candle_nn::ops::rms_norm(&x, &layer.attn_norm, self.cfg.rms_eps as f32)?;
            let h = layer
                .attn
                .forward(&h, &self.cfg, &cos, &sin, mask.as_ref())?;
            x = (x + h)?;
            let h = candle_nn::ops::rms_norm(&x, &layer.ffn_norm, self.cfg.rms_eps as f32)?;
            let h = layer.mlp.forward(&h)?;
            x = (x + h)?;
        }
        let last = x.narrow(1, seq_len - 1, 1)?.contiguous()?;
        let last = candle_nn::ops::rms_norm(&last, &self.norm, self.cfg.rms_eps as f32)?;
        Ok(self.lm_head.forward(&last)?.squeeze(1)?)
    }
}

impl Mlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let gate = self.gate.forward(x)?.silu()?;
        let up = self.up.forward(x)?;
        Ok(self.down.forward(&(gate * up)?)?)
    }
}

impl Attention {
    fn forward(
        &mut self,
        x: &Tensor,
        cfg: &Qwen2Config,
        cos: &Tensor,
        sin: &Tensor,
        mask: Option<&Tensor>,
    ) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let hd = cfg.head_dim();
        let (nh, nkv) = (cfg.n_heads, cfg.n_kv_heads);
        let project = |w: &QMatMul, bias: &Tensor, heads: usize| -> Result<Tensor> {
            Ok(w.forward(x)?
                .broadcast_add(bias)?
                .reshape((b, t, heads, hd))?
                .transpose(1, 2)?
                .contiguous()?)
        };
        let q = project(&self.q, &self.q_bias, nh)?;
        let k = project(&self.k, &self.k_bias, nkv)?;
        let v = project(&self.v, &self.v_bias, nkv)?;
        let q = candle_nn::rotary_emb::rope(&q, cos, sin)?;
        let k = candle_nn::rotary_emb::rope(&k, cos, sin)?;
        let (k, v) = match self.kv_cache.take() {
            Some((pk, pv)) => (Tensor::cat(&[&pk, &k], 2)?, Tensor::cat(&[&pv, &v], 2)?),
            None => (k, v),
        };
        self.kv_cache = Some((k.clone(), v.clone()));
        let total = k.dim(2)?;

        // Grouped-query attention without copying K/V: the query heads that share a KV head
        // are stacked along the sequence axis.
        let group = nh / nkv;
        let q = q.reshape((b, nkv, group * t, hd))?;
        let scale = 1.0 / (hd as f64).sqrt();
        let scores = (q.matmul(&k.t()?)? * scale)?;
        let scores = match mask {
            Some(mask) => scores
                .reshape((b, nkv, group, t, total))?
                .broadcast_add(mask)?
                .reshape((b, nkv, group * t, total))?,
            None => scores,
        };
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let y = probs.matmul(&v)?; // (b, nkv, group*t, hd)
        let y = y
            .reshape((b, nh, t, hd))?
            .transpose(1, 2)?
            .reshape((b, t, nh * hd))?;
        Ok(self.o.forward(&y)?)
    }
}

/// `[t, offset + t]` additive mask hiding later positions; none for single-token steps.
fn causal_mask(t: usize, offset: usize, device: &Device) -> Result<Option<Tensor>> {
    if t == 1 {
        return Ok(None);
    }
    let total = offset + t;
    let values: Vec<f32> = (0..t)
        .flat_map(|i| {
            (0..total).map(move |j| {
                if j > offset + i {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
        })
        .collect();
    Ok(Some(Tensor::from_vec(values, (t, total), device)?))
}

/// Cos/sin tables for rotate-half RoPE, `[context, head_dim / 2]` each.
fn rope_tables(cfg: &Qwen2Config, device: &Device) -> Result<(Tensor, Tensor)> {
    let hd = cfg.head_dim();
    let inv_freq: Vec<f32> = (0..hd)
        .step_by(2)
        .map(|i| 1.0 / cfg.rope_theta.powf(i as f32 / hd as f32))
        .collect();
    let inv_freq = Tensor::from_vec(inv_freq, (1, hd / 2), device)?;
    let positions = Tensor::arange(0u32, cfg.context_length as u32, device)?
        .to_dtype(DType::F32)?
        .reshape((cfg.context_length, 1))?;
    let freqs = positions.broadcast_mul(&inv_freq)?;
    Ok((freqs.cos()?, freqs.sin()?))
}

/// Index of the largest logit (the first one on ties), for greedy decoding.
pub fn argmax(logits: &Tensor) -> Result<u32> {
    Ok(logits.argmax(D::Minus1)?.to_scalar::<u32>()?)
}
