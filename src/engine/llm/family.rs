//! The seam between the engine and a model family: what a decoder-only transformer must do
//! for the engine to batch it. Each family (`qwen2`, …) implements [`CausalLm`] over the
//! shared [`KvCache`].

use candle_core::{Device, Tensor};

use super::kv_cache::KvCache;
use crate::error::Result;

/// What the engine needs to know of a model's cache and context.
#[derive(Debug, Clone, Copy)]
pub struct LmShape {
    pub n_layers: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    pub context_length: usize,
}

/// A decoder-only model family: prefill one prompt into a one-row cache, and decode one step
/// for many rows of a batch cache. Rows must not influence each other's results.
pub trait CausalLm: Send {
    fn shape(&self) -> LmShape;
    fn device(&self) -> &Device;
    /// Bytes of weights each decoding step reads (the bound of one-sequence decoding).
    fn streamed_bytes(&self) -> usize;
    /// Logits of the last of `ids`, run after the positions already in `cache`: `[1, vocab]`.
    fn prefill(&self, ids: &[u32], cache: &mut KvCache) -> Result<Tensor>;
    /// One step: `ids[r]` is row r's input token (a sequence's newest or a draft) at
    /// `positions[r]` of its slot; `[rows, vocab]`.
    fn decode_step(&self, ids: &[u32], positions: &[u32], cache: &mut KvCache) -> Result<Tensor>;
}
