//! The Marian transformer family as one batched implementation: a post-norm encoder and a
//! decoder whose self-attention block is either an SSRU cell (Bergamot "tiny") or standard
//! attention with a KV cache (Hugging Face opus-mt). Every batch carries a padding mask; the
//! cross-attention keys and values are computed once per batch; decoder state is per row and
//! can be compacted as rows finish.

use candle_core::{DType, Device, IndexOp, Tensor, D};
use candle_nn::ops;

use crate::error::Result;

/// A dense layer stored as `[in, out]` so a batch of rows multiplies it directly.
#[derive(Debug, Clone)]
pub struct Linear {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
}

impl Linear {
    /// From a PyTorch-layout `[out, in]` weight.
    pub fn from_out_in(weight: &Tensor, bias: Option<Tensor>) -> Result<Self> {
        Ok(Linear {
            weight: weight.t()?.contiguous()?,
            bias,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = x.matmul(&self.weight)?;
        Ok(match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        })
    }
}

#[derive(Debug, Clone)]
pub struct LayerNorm {
    pub scale: Tensor,
    pub bias: Tensor,
    pub eps: f32,
}

impl LayerNorm {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(ops::layer_norm(x, &self.scale, &self.bias, self.eps)?)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Relu,
    Swish,
    Gelu,
}

#[derive(Debug, Clone)]
pub struct FeedForward {
    pub up: Linear,
    pub down: Linear,
    pub activation: Activation,
}

impl FeedForward {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let h = self.up.forward(x)?;
        let h = match self.activation {
            Activation::Relu => h.relu()?,
            Activation::Swish => ops::silu(&h)?,
            Activation::Gelu => h.gelu_erf()?,
        };
        self.down.forward(&h)
    }
}

#[derive(Debug, Clone)]
pub struct Attention {
    pub q: Linear,
    pub k: Linear,
    pub v: Linear,
    pub o: Linear,
}

/// The Simpler Simple Recurrent Unit: `f = σ(x·Wf + bf)`, `c = f⊙c' + (1−f)⊙(x·W)`, out `relu(c)`.
#[derive(Debug, Clone)]
pub struct Ssru {
    pub w: Linear,
    pub forget: Linear,
}

#[derive(Debug, Clone)]
pub enum SelfBlock {
    Ssru(Ssru),
    Attention(Attention),
}

#[derive(Debug, Clone)]
pub struct EncoderLayer {
    pub attention: Attention,
    pub attention_norm: LayerNorm,
    pub ffn: FeedForward,
    pub ffn_norm: LayerNorm,
}

#[derive(Debug, Clone)]
pub struct DecoderLayer {
    pub self_block: SelfBlock,
    pub self_norm: LayerNorm,
    pub cross: Attention,
    pub cross_norm: LayerNorm,
    pub ffn: FeedForward,
    pub ffn_norm: LayerNorm,
}

/// What the decoder is fed at step 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecoderStart {
    /// A zero embedding (Marian's native models).
    Zero,
    /// The embedding of this token (Hugging Face: `decoder_start_token_id`).
    Token(u32),
}

#[derive(Debug, Clone)]
pub struct MarianModel {
    pub dim: usize,
    pub heads: usize,
    /// `[vocab, dim]` embeddings shared by source, target and the output layer.
    pub embeddings: Tensor,
    /// `[vocab, dim]` output projection (the same tensor as `embeddings` when tied).
    pub output_weight: Tensor,
    pub embed_scale: f64,
    /// `[max_positions, dim]` sinusoidal table.
    pub positions: Tensor,
    pub encoder: Vec<EncoderLayer>,
    pub decoder: Vec<DecoderLayer>,
    /// `[vocab]` output bias.
    pub output_bias: Tensor,
    /// Tokens that may never be produced (the pad token of Hugging Face models).
    pub banned: Vec<u32>,
    pub start: DecoderStart,
    pub eos: u32,
    pub device: Device,
}

/// Marian's sinusoidal table: `[sin | cos]` halves with frequencies
/// `10000^(-j / divisor)`; Marian's own models use `divisor = dim/2 - 1`, Hugging Face's
/// port `dim/2`.
pub fn sinusoidal_positions(
    max_positions: usize,
    dim: usize,
    divisor: f64,
    device: &Device,
) -> Result<Tensor> {
    let half = dim / 2;
    let mut table = vec![0f32; max_positions * dim];
    for p in 0..max_positions {
        for j in 0..half {
            let angle = p as f64 * (-(10000f64.ln()) * j as f64 / divisor).exp();
            table[p * dim + j] = angle.sin() as f32;
            table[p * dim + half + j] = angle.cos() as f32;
        }
    }
    Ok(Tensor::from_vec(table, (max_positions, dim), device)?)
}

/// The encoder's output for one batch: keys and values of every decoder layer's
/// cross-attention, computed once, with the padding bias.
pub struct DecoderState {
    /// Per decoder layer: `[rows, heads, src_len, head_dim]` keys and values.
    cross: Vec<(Tensor, Tensor)>,
    /// `[rows, 1, 1, src_len]`: 0 for real tokens, a large negative number for padding.
    pad_bias: Tensor,
    /// Per decoder layer: the SSRU cell `[rows, dim]` or the self-attention cache.
    recurrent: Vec<Option<(Tensor, Option<Tensor>)>>,
    /// `[rows, columns]`: 0 where the output column is in the row's own shortlist, -inf
    /// elsewhere, so a sentence's output never depends on what it is batched with.
    pub logit_mask: Option<Tensor>,
    pub step: usize,
    pub rows: usize,
}

impl DecoderState {
    /// Keeps only `rows` (indices into the current rows), in that order.
    pub fn select(&mut self, rows: &[u32]) -> Result<()> {
        let device = self.pad_bias.device().clone();
        let idx = Tensor::new(rows, &device)?;
        for (k, v) in &mut self.cross {
            *k = k.index_select(&idx, 0)?;
            *v = v.index_select(&idx, 0)?;
        }
        self.pad_bias = self.pad_bias.index_select(&idx, 0)?;
        if let Some(mask) = &mut self.logit_mask {
            *mask = mask.index_select(&idx, 0)?;
        }
        for slot in self.recurrent.iter_mut().flatten() {
            slot.0 = slot.0.index_select(&idx, 0)?;
            if let Some(v) = &mut slot.1 {
                *v = v.index_select(&idx, 0)?;
            }
        }
        self.rows = rows.len();
        Ok(())
    }
}

const PAD_BIAS: f32 = -1e9;

impl MarianModel {
    fn head_dim(&self) -> usize {
        self.dim / self.heads
    }

    /// `[rows * len, dim]` → `[rows, heads, len, head_dim]`.
    fn split_heads(&self, x: &Tensor, rows: usize, len: usize) -> Result<Tensor> {
        Ok(x.reshape((rows, len, self.heads, self.head_dim()))?
            .transpose(1, 2)?
            .contiguous()?)
    }

    /// Scaled dot-product attention; returns `[rows * q_len, dim]`.
    fn attend(&self, q: &Tensor, k: &Tensor, v: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
        let (rows, _, q_len, _) = q.dims4()?;
        let mut scores = q.matmul(&k.t()?)?;
        if let Some(b) = bias {
            scores = scores.broadcast_add(b)?;
        }
        let probs = ops::softmax_last_dim(&scores)?;
        let context = probs.matmul(v)?;
        Ok(context.transpose(1, 2)?.reshape((rows * q_len, self.dim))?)
    }

    fn query(&self, attention: &Attention, x: &Tensor, rows: usize, len: usize) -> Result<Tensor> {
        let scale = 1.0 / (self.head_dim() as f64).sqrt();
        self.split_heads(&(attention.q.forward(x)? * scale)?, rows, len)
    }

    fn embed(&self, ids: &Tensor) -> Result<Tensor> {
        Ok((self.embeddings.index_select(ids, 0)? * self.embed_scale)?)
    }

    /// Encodes a padded batch `ids` `[rows, len]` whose real lengths are `lengths`, and
    /// prepares the decoder's state.
    pub fn encode(&self, ids: &Tensor, lengths: &[usize]) -> Result<DecoderState> {
        let (rows, len) = ids.dims2()?;
        let x = self.embed(&ids.flatten_all()?)?;
        let x = x
            .reshape((rows, len, self.dim))?
            .broadcast_add(&self.positions.i(0..len)?)?;
        let mut x = x.reshape((rows * len, self.dim))?;

        let mut bias = vec![0f32; rows * len];
        for (r, &n) in lengths.iter().enumerate() {
            bias[r * len + n..(r + 1) * len].fill(PAD_BIAS);
        }
        let pad_bias = Tensor::from_vec(bias, (rows, 1, 1, len), &self.device)?;

        for layer in &self.encoder {
            let a = &layer.attention;
            let q = self.query(a, &x, rows, len)?;
            let k = self.split_heads(&a.k.forward(&x)?, rows, len)?;
            let v = self.split_heads(&a.v.forward(&x)?, rows, len)?;
            let context = a.o.forward(&self.attend(&q, &k, &v, Some(&pad_bias))?)?;
            x = layer.attention_norm.forward(&(x + context)?)?;
            let f = layer.ffn.forward(&x)?;
            x = layer.ffn_norm.forward(&(x + f)?)?;
        }

        let mut cross = Vec::with_capacity(self.decoder.len());
        for layer in &self.decoder {
            let k = self.split_heads(&layer.cross.k.forward(&x)?, rows, len)?;
            let v = self.split_heads(&layer.cross.v.forward(&x)?, rows, len)?;
            cross.push((k, v));
        }
        Ok(DecoderState {
            cross,
            pad_bias,
            recurrent: vec![None; self.decoder.len()],
            logit_mask: None,
            step: 0,
            rows,
        })
    }

    /// One decoder step for every row of `state`; `previous` holds each row's last token
    /// (ignored at step 0). Returns the final hidden states `[rows, dim]`.
    pub fn decode_step(&self, state: &mut DecoderState, previous: &[u32]) -> Result<Tensor> {
        let rows = state.rows;
        let mut x = match (state.step, self.start) {
            (0, DecoderStart::Zero) => Tensor::zeros((rows, self.dim), DType::F32, &self.device)?,
            (0, DecoderStart::Token(t)) => {
                self.embed(&Tensor::new(vec![t; rows], &self.device)?)?
            }
            _ => self.embed(&Tensor::new(previous, &self.device)?)?,
        };
        x = x.broadcast_add(&self.positions.i(state.step)?)?;

        for (i, layer) in self.decoder.iter().enumerate() {
            let out = match &layer.self_block {
                SelfBlock::Ssru(cell) => {
                    let forget = ops::sigmoid(&cell.forget.forward(&x)?)?;
                    let candidate = cell.w.forward(&x)?;
                    let c = match &state.recurrent[i] {
                        None => ((1.0 - &forget)? * candidate)?,
                        Some((c_prev, _)) => {
                            ((&forget * c_prev)? + ((1.0 - &forget)? * candidate)?)?
                        }
                    };
                    let out = c.relu()?;
                    state.recurrent[i] = Some((c, None));
                    out
                }
                SelfBlock::Attention(a) => {
                    let q = self.query(a, &x, rows, 1)?;
                    let k = self.split_heads(&a.k.forward(&x)?, rows, 1)?;
                    let v = self.split_heads(&a.v.forward(&x)?, rows, 1)?;
                    let (k, v) = match &state.recurrent[i] {
                        Some((k_prev, Some(v_prev))) => (
                            Tensor::cat(&[k_prev, &k], 2)?,
                            Tensor::cat(&[v_prev, &v], 2)?,
                        ),
                        _ => (k, v),
                    };
                    let context = self.attend(&q, &k, &v, None)?;
                    state.recurrent[i] = Some((k, Some(v)));
                    a.o.forward(&context)?
                }
            };
            x = layer.self_norm.forward(&(x + out)?)?;

            let q = self.query(&layer.cross, &x, rows, 1)?;
            let (k, v) = &state.cross[i];
            let context = self.attend(&q, k, v, Some(&state.pad_bias))?;
            let context = layer.cross.o.forward(&context)?;
            x = layer.cross_norm.forward(&(x + context)?)?;

            let f = layer.ffn.forward(&x)?;
            x = layer.ffn_norm.forward(&(x + f)?)?;
        }
        state.step += 1;
        Ok(x)
    }
}

/// The output layer, restricted to a subset of the vocabulary (a lexical shortlist) or whole.
pub struct OutputLayer {
    /// `[dim, n]`.
    weight: Tensor,
    /// `[n]`, with banned tokens at -inf.
    bias: Tensor,
    /// Vocabulary id of each column; `None` when the layer covers the whole vocabulary.
    ids: Option<Vec<u32>>,
}

impl OutputLayer {
    pub fn new(model: &MarianModel, ids: Option<Vec<u32>>) -> Result<Self> {
        let (weight, mut bias) = match &ids {
            Some(ids) => {
                let idx = Tensor::new(ids.as_slice(), &model.device)?;
                (
                    model.output_weight.index_select(&idx, 0)?,
                    model.output_bias.index_select(&idx, 0)?.to_vec1::<f32>()?,
                )
            }
            None => (
                model.output_weight.clone(),
                model.output_bias.to_vec1::<f32>()?,
            ),
        };
        for &banned in &model.banned {
            let column = match &ids {
                Some(ids) => ids.iter().position(|&i| i == banned),
                None => Some(banned as usize),
            };
            if let Some(c) = column {
                bias[c] = f32::NEG_INFINITY;
            }
        }
        let n = bias.len();
        Ok(OutputLayer {
            weight: weight.t()?.contiguous()?,
            bias: Tensor::from_vec(bias, n, &model.device)?,
            ids,
        })
    }

    /// Logits `[rows, n]` for hidden states `[rows, dim]`, with the state's per-row mask.
    pub fn logits(&self, hidden: &Tensor, state: &DecoderState) -> Result<Tensor> {
        let logits = hidden.matmul(&self.weight)?.broadcast_add(&self.bias)?;
        Ok(match &state.logit_mask {
            Some(mask) => (logits + mask)?,
            None => logits,
        })
    }

    /// The columns of this layer (vocabulary ids), when it is restricted.
    pub fn columns(&self) -> Option<&[u32]> {
        self.ids.as_deref()
    }

    /// The vocabulary id of column `c`.
    pub fn token(&self, c: usize) -> u32 {
        match &self.ids {
            Some(ids) => ids[c],
            None => c as u32,
        }
    }

    /// Each row's best column.
    pub fn argmax(&self, logits: &Tensor) -> Result<Vec<u32>> {
        Ok(logits
            .argmax(D::Minus1)?
            .to_vec1::<u32>()?
            .into_iter()
            .map(|c| self.token(c as usize))
            .collect())
    }
}
