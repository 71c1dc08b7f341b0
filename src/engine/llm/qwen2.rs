//! Qwen2 decoder-only transformer over quantized GGUF weights (llama.cpp tensor names).
//! Written here rather than taken from candle-transformers so that the attention, masks and
//! KV cache are ours to batch.

use candle_core::quantized::QTensor;
use candle_core::{DType, Device, Tensor};

use super::family::{CausalLm, LmShape};
use super::gguf::{GgufModel, MappedTensor};
use super::kv_cache::KvCache;
use crate::engine::quant::qweight::{with_values, Weight};
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
    fn from_gguf(gguf: &GgufModel) -> Result<Self> {
        let get = |key: &str| {
            gguf.metadata()
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
    q: Weight,
    k: Weight,
    v: Weight,
    q_bias: Tensor,
    k_bias: Tensor,
    v_bias: Tensor,
    o: Weight,
}

struct Mlp {
    gate: Weight,
    up: Weight,
    down: Weight,
}

struct Layer {
    attn_norm: Tensor,
    attn: Attention,
    ffn_norm: Tensor,
    mlp: Mlp,
}

pub struct Qwen2 {
    cfg: Qwen2Config,
    embed: Embedding,
    layers: Vec<Layer>,
    norm: Tensor,
    lm_head: Weight,
    cos: Tensor,
    sin: Tensor,
    device: Device,
    streamed_bytes: usize,
}

/// The token embedding table, where it is.
enum Embedding {
    Mapped(MappedTensor),
    Owned(QTensor),
}

impl Embedding {
    fn lookup(&self, ids: &Tensor) -> Result<Tensor> {
        match self {
            Embedding::Mapped(m) => m.embedding(ids),
            Embedding::Owned(t) => Ok(t.embedding(ids)?),
        }
    }
}

struct Loader<'a> {
    gguf: &'a mut GgufModel,
    device: &'a Device,
    /// Bytes of the weights every token reads (all but the embedding table's other rows).
    streamed: usize,
}

impl Loader<'_> {
    fn qtensor(&mut self, name: &str) -> Result<QTensor> {
        self.gguf.tensor(name, self.device)
    }
    /// A matrix read in place from the mapped file where the CPU kernels serve.
    fn matmul(&mut self, name: &str) -> Result<Weight> {
        match self.gguf.mapped(name)? {
            Some(m) => {
                self.streamed += m.bytes().len();
                Weight::mapped(m, self.device)
            }
            None => {
                let t = self.qtensor(name)?;
                self.streamed += t.storage_size_in_bytes();
                Weight::new(t)
            }
        }
    }
    /// The embedding table: rows are looked up in the mapped file on the CPU.
    fn embedding(&mut self, name: &str) -> Result<Embedding> {
        match self.gguf.mapped(name)? {
            Some(m) if self.device.is_cpu() => Ok(Embedding::Mapped(m)),
            _ => Ok(Embedding::Owned(self.qtensor(name)?)),
        }
    }
    fn dense(&mut self, name: &str) -> Result<Tensor> {
        let t = self.qtensor(name)?;
        self.streamed += t.storage_size_in_bytes();
        Ok(t.dequantize(self.device)?)
    }
}

impl Qwen2 {
    /// Loads the weights; an untied output matrix (`output.weight`, as the 7B model has) is
    /// used when present, else the embedding table serves as the output layer.
    pub fn load(gguf: &mut GgufModel, device: &Device) -> Result<Self> {
        let cfg = Qwen2Config::from_gguf(gguf)?;
        let untied = gguf.has_tensor("output.weight");
        let mut l = Loader {
            gguf,
            device,
            streamed: 0,
        };
        let embed = l.embedding("token_embd.weight")?;
        let lm_head = if untied {
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
            streamed_bytes: l.streamed,
        })
    }

    pub fn config(&self) -> &Qwen2Config {
        &self.cfg
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Bytes of weights one decoding step reads whatever the batch: every matrix and norm,
    /// and of the embedding table only the rows looked up (left out).
    pub fn streamed_bytes(&self) -> usize {
        self.streamed_bytes
    }

    /// Runs one prompt's `ids` after the positions already in `cache` (a one-row cache) and
    /// returns the logits of its last position, `[1, vocab]`.
    pub fn prefill(&self, ids: &[u32], cache: &mut KvCache) -> Result<Tensor> {
        let offset = cache.len();
        let seq_len = ids.len();
        self.check_context(offset + seq_len)?;
        let ids = Tensor::new(ids, &self.device)?.unsqueeze(0)?;
        let cos = self.cos.narrow(0, offset, seq_len)?;
        let sin = self.sin.narrow(0, offset, seq_len)?;
        let mask = causal_mask(seq_len, offset, &self.device)?;
        self.forward(&ids, &cos, &sin, mask.as_ref(), cache)
    }

    /// One decoding step for a batch cache (`KvCache::batch`) whose live rows are set: `ids[r]`
    /// is row r's input token (a sequence's newest, or a draft after it) and `positions[r]`
    /// its position in its slot's sequence (a slot may hold several consecutive rows).
    /// Returns `[rows, vocab]`.
    pub fn decode_step(
        &self,
        ids: &[u32],
        positions: &[u32],
        cache: &mut KvCache,
    ) -> Result<Tensor> {
        let rows = ids.len();
        if let Some(&last) = positions.iter().max() {
            self.check_context(last as usize + 1)?;
        }
        let ids = Tensor::new(ids, &self.device)?.unsqueeze(1)?;
        let positions = Tensor::new(positions, &self.device)?;
        let half = self.cfg.head_dim() / 2;
        let cos = self
            .cos
            .index_select(&positions, 0)?
            .reshape((rows, 1, half))?;
        let sin = self
            .sin
            .index_select(&positions, 0)?
            .reshape((rows, 1, half))?;
        if cache.live().is_none_or(|s| s.len() != rows) {
            return Err(Error::model(
                "qwen2",
                "a decoding step needs a batch cache of its rows",
            ));
        }
        self.forward(&ids, &cos, &sin, None, cache)
    }

    fn check_context(&self, needed: usize) -> Result<()> {
        if needed > self.cfg.context_length {
            return Err(Error::model(
                "qwen2",
                format!(
                    "sequence of {needed} tokens exceeds the context of {}",
                    self.cfg.context_length
                ),
            ));
        }
        Ok(())
    }

    /// `ids` is `[rows, seq]`; `mask` broadcasts to `[rows, kv heads, group, seq, total]`.
    fn forward(
        &self,
        ids: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        mask: Option<&Tensor>,
        cache: &mut KvCache,
    ) -> Result<Tensor> {
        let (_, seq_len) = ids.dims2()?;
        let mut x = self.embed.lookup(ids)?;
        for (i, layer) in self.layers.iter().enumerate() {
            let h = candle_nn::ops::rms_norm(&x, &layer.attn_norm, self.cfg.rms_eps as f32)?;
            let h = layer
                .attn
                .forward(&h, &self.cfg, cos, sin, mask, cache, i)?;
            x = (x + h)?;
            let h = candle_nn::ops::rms_norm(&x, &layer.ffn_norm, self.cfg.rms_eps as f32)?;
            let h = layer.mlp.forward(&h)?;
            x = (x + h)?;
        }
        cache.advance(seq_len);
        let last = x.narrow(1, seq_len - 1, 1)?.contiguous()?;
        let last = candle_nn::ops::rms_norm(&last, &self.norm, self.cfg.rms_eps as f32)?;
        Ok(self.lm_head.forward(&last)?.squeeze(1)?)
    }
}

impl Mlp {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let [gate, up]: [Tensor; 2] = Weight::forward_shared(&[&self.gate, &self.up], x)?
            .try_into()
            .map_err(|_| Error::model("qwen2", "two projections expected"))?;
        // with MKL or Accelerate candle's silu is theirs (vs_silu), which this would not match
        if !gate.device().is_cpu() || cfg!(any(feature = "mkl", feature = "accelerate")) {
            return self.down.forward(&(gate.silu()? * up)?);
        }
        // candle's silu, then its product, in one pass
        let product = with_values(&gate, |gate| {
            with_values(&up, |up| super::exp::silu_times_parallel(gate, up))
        })??;
        self.down
            .forward(&Tensor::from_vec(product, gate.shape(), gate.device())?)
    }
}

impl Attention {
    #[allow(clippy::too_many_arguments)]
    fn forward(
        &self,
        x: &Tensor,
        cfg: &Qwen2Config,
        cos: &Tensor,
        sin: &Tensor,
        mask: Option<&Tensor>,
        cache: &mut KvCache,
        layer: usize,
    ) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let hd = cfg.head_dim();
        let (nh, nkv) = (cfg.n_heads, cfg.n_kv_heads);
        let [q, k, v]: [Tensor; 3] = Weight::forward_shared(&[&self.q, &self.k, &self.v], x)?
            .try_into()
            .map_err(|_| Error::model("qwen2", "three projections expected"))?;
        let heads_first = |y: Tensor, bias: &Tensor, heads: usize| -> Result<Tensor> {
            Ok(y.broadcast_add(bias)?
                .reshape((b, t, heads, hd))?
                .transpose(1, 2)?
                .contiguous()?)
        };
        let q = heads_first(q, &self.q_bias, nh)?;
        let k = heads_first(k, &self.k_bias, nkv)?;
        let v = heads_first(v, &self.v_bias, nkv)?;
        let q = candle_nn::rotary_emb::rope(&q, cos, sin)?;
        let k = candle_nn::rotary_emb::rope(&k, cos, sin)?;
        let (k, v) = cache.append(layer, &k, &v)?;
        // A batch step's rows: each attends over its own slot's positions, the new one
        // included, with the very shapes it would have decoding alone, so batching never
        // changes its result.
        let y = match cache.spans(t) {
            Some(spans) if t == 1 && k.device().is_cpu() => {
                super::attention::attend(&q, &k, &v, &spans)?
            }
            Some(spans) if t == 1 => {
                let rows = spans
                    .iter()
                    .enumerate()
                    .map(|(r, &(slot, len))| {
                        let k = k.narrow(0, slot, 1)?.narrow(2, 0, len)?;
                        let v = v.narrow(0, slot, 1)?.narrow(2, 0, len)?;
                        attend(&q.narrow(0, r, 1)?, &k, &v, None, cfg)
                    })
                    .collect::<Result<Vec<_>>>()?;
                Tensor::cat(&rows, 0)?
            }
            _ => attend(&q, &k, &v, mask, cfg)?,
        };
        let y = y.transpose(1, 2)?.reshape((b, t, nh * hd))?;
        self.o.forward(&y)
    }
}

/// Grouped-query attention of `q` (`[rows, heads, t, head dim]`) over `k`, `v` (`[rows, kv
/// heads, total, head dim]`), without copying K/V: the query heads that share a KV head are
/// stacked along the sequence axis. Returns `[rows, heads, t, head dim]`.
fn attend(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    cfg: &Qwen2Config,
) -> Result<Tensor> {
    let (b, nh, t, hd) = q.dims4()?;
    let nkv = cfg.n_kv_heads;
    let total = k.dim(2)?;
    let group = nh / nkv;
    let q = q.reshape((b, nkv, group * t, hd))?;
    let scale = 1.0 / (hd as f64).sqrt();
    // the fused paths rebuild the causal mask of `causal_mask(t, total - t)` themselves; with
    // MKL or Accelerate candle's matmul is theirs, which these paths would not reproduce
    let fused = cfg!(not(any(feature = "mkl", feature = "accelerate")))
        && mask.is_some_and(|m| m.dims() == [t, total]);
    if fused {
        if let Some(y) = super::attention::prompt_attention(&q, k, v, t, scale)? {
            return Ok(y.reshape((b, nh, t, hd))?);
        }
    }
    let scores = q.matmul(&k.t()?)?;
    if fused && scores.device().is_cpu() {
        let probs = super::attention::causal_softmax(&scores, scale, t)?;
        return Ok(probs.matmul(v)?.reshape((b, nh, t, hd))?);
    }
    let scores = (scores * scale)?;
    let scores = match mask {
        Some(mask) => scores
            .reshape((b, nkv, group, t, total))?
            .broadcast_add(mask)?
            .reshape((b, nkv, group * t, total))?,
        None => scores,
    };
    let probs = candle_nn::ops::softmax_last_dim(&scores)?;
    Ok(probs.matmul(v)?.reshape((b, nh, t, hd))?)
}

/// `[t, offset + t]` additive mask hiding later positions; none for single-token steps.
fn causal_mask(t: usize, offset: usize, device: &Device) -> Result<Option<Tensor>> {
    if t == 1 {
        return Ok(None);
    }
    let values = super::attention::causal_mask_values(t, offset);
    Ok(Some(Tensor::from_vec(values, (t, offset + t), device)?))
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

impl CausalLm for Qwen2 {
    fn shape(&self) -> LmShape {
        LmShape {
            n_layers: self.cfg.n_layers,
            n_kv_heads: self.cfg.n_kv_heads,
            head_dim: self.cfg.head_dim(),
            context_length: self.cfg.context_length,
        }
    }

    fn device(&self) -> &Device {
        &self.device
    }

    fn streamed_bytes(&self) -> usize {
        self.streamed_bytes
    }

    fn prefill(&self, ids: &[u32], cache: &mut KvCache) -> Result<Tensor> {
        Qwen2::prefill(self, ids, cache)
    }

    fn decode_step(&self, ids: &[u32], positions: &[u32], cache: &mut KvCache) -> Result<Tensor> {
        Qwen2::decode_step(self, ids, positions, cache)
    }
}
