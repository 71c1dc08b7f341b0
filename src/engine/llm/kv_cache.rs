//! The KV cache every model family decodes over: one growable row for prefill with prefix
//! reuse, or a batch of slots written in place, each holding one sequence of its own length,
//! so that a finished sequence's slot takes the next waiting one (continuous batching).

use candle_core::{DType, Device, Tensor};

use crate::error::{Error, Result};

/// Keys and values of every layer, `[rows, kv heads, positions, head dim]` (`[slots, …]` for
/// a batch cache), and how many positions are filled (a growable cache's; a batch cache keeps
/// each slot's own). A growable cache (one prompt, prefix reuse) appends by
/// concatenation, so truncating it and copying rows out never alias. A batch cache is
/// allocated once at its final size and written in place: copying a many-row cache at every
/// step would cost more than the step.
pub struct KvCache {
    pub(crate) layers: Vec<Option<(Tensor, Tensor)>>,
    pub(crate) len: usize,
    /// Batch caches: the slot of each row the next step decodes and the position its input
    /// goes to, in the order of the step's inputs. A slot may hold several consecutive rows: a
    /// sequence's next token and the draft tokens after it, checked in one step.
    pub(crate) live: Option<Vec<(usize, usize)>>,
    /// Batch caches: each slot's filled length.
    lens: Vec<usize>,
}

impl KvCache {
    pub fn new(n_layers: usize) -> Self {
        KvCache {
            layers: vec![None; n_layers],
            len: 0,
            live: None,
            lens: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Keeps the first `len` slots of a growable cache (prefix reuse).
    pub fn truncate(&mut self, len: usize) -> Result<()> {
        if len >= self.len {
            return Ok(());
        }
        if self.live.is_none() {
            for layer in &mut self.layers {
                if let Some((k, v)) = layer.take() {
                    if len > 0 {
                        *layer = Some((k.narrow(2, 0, len)?, v.narrow(2, 0, len)?));
                    }
                }
            }
        }
        self.len = len;
        Ok(())
    }

    pub(crate) fn live(&self) -> Option<&[(usize, usize)]> {
        self.live.as_deref()
    }

    /// A batch step's `(slot, position + new)` per live row: what each attends over once its
    /// `new` positions are written (the positions before its own, drafts of this step
    /// included, and its own).
    pub(crate) fn spans(&self, new: usize) -> Option<Vec<(usize, usize)>> {
        let live = self.live.as_ref()?;
        Some(live.iter().map(|&(slot, at)| (slot, at + new)).collect())
    }

    /// An empty batch cache of `slots` slots of `capacity` positions each, to be filled slot by
    /// slot with `fill_slot`; written in place.
    pub fn batch(
        n_layers: usize,
        (slots, kv_heads, capacity, head_dim): (usize, usize, usize, usize),
        device: &Device,
    ) -> Result<Self> {
        let zeros = || Tensor::zeros((slots, kv_heads, capacity, head_dim), DType::F32, device);
        let layers = (0..n_layers)
            .map(|_| Ok(Some((zeros()?, zeros()?))))
            .collect::<Result<Vec<_>>>()?;
        Ok(KvCache {
            layers,
            len: 0,
            live: Some(Vec::new()),
            lens: vec![0; slots],
        })
    }

    /// Positions a slot of this batch cache holds.
    pub fn capacity(&self) -> usize {
        self.layers
            .first()
            .and_then(|l| l.as_ref())
            .map_or(0, |(k, _)| k.dim(2).unwrap_or(0))
    }

    /// Copies the filled positions of the one-row cache `row` into `slot` of this batch cache
    /// (the rest of the slot is never read: each row attends over its own length only).
    pub fn fill_slot(&mut self, slot: usize, row: &KvCache) -> Result<()> {
        if self.live.is_none() {
            return Err(Error::model(
                "qwen2",
                "only a batch cache has slots to fill",
            ));
        }
        self.write_slot(slot, row, 0, row.len)
    }

    /// Copies the filled positions of slot `from` of the batch cache `source` into slot `slot`
    /// of this one (a cache regrown for more rows or longer ones).
    pub fn copy_slot(&mut self, slot: usize, source: &KvCache, from: usize) -> Result<()> {
        self.write_slot(slot, source, from, source.lens[from])
    }

    /// Positions `[0, len)` of row `from` of every layer of `source` into `slot`.
    fn write_slot(&mut self, slot: usize, source: &KvCache, from: usize, len: usize) -> Result<()> {
        if len > self.capacity() {
            return Err(Error::model(
                "qwen2",
                "a sequence is longer than its batch slot",
            ));
        }
        let mut copies = Vec::with_capacity(2 * self.layers.len());
        for (layer, own) in self.layers.iter().zip(&source.layers) {
            match (layer, own) {
                (Some((kb, vb)), Some((k, v))) => copies.extend([(kb, k), (vb, v)]),
                _ => return Err(Error::model("qwen2", "empty KV cache")),
            }
        }
        if len > 0 {
            // On the pool, a tensor per item: a slot's first write has the kernel zero and
            // map each page, most of a copy's time, and the main thread did it alone.
            let failed = std::sync::Mutex::new(None);
            candle_core::utils::barrier_pool().execute_chunked(copies.len(), |items| {
                for (into, from_cache) in &copies[items] {
                    let copied = from_cache
                        .narrow(0, from, 1)
                        .and_then(|t| t.narrow(2, 0, len))
                        .and_then(|t| t.contiguous())
                        .and_then(|rows| into.narrow(0, slot, 1)?.slice_set(&rows, 2, 0));
                    if let Err(e) = copied {
                        *failed.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
                    }
                }
            });
            if let Some(e) = failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
                return Err(e.into());
            }
        }
        self.lens[slot] = len;
        Ok(())
    }

    /// The rows the next decoding step runs, as `(slot, position)`, in the order of its
    /// inputs.
    pub fn set_live(&mut self, rows: &[(usize, usize)]) {
        self.live = Some(rows.to_vec());
    }

    /// Keeps the first `len` positions of `slot`: a step wrote drafts past what was
    /// accepted, and the next step writes over them.
    pub fn keep(&mut self, slot: usize, len: usize) {
        self.lens[slot] = self.lens[slot].min(len);
    }

    /// Adds `k`, `v` (`[rows, kv heads, seq, head dim]`) to `layer`: in a batch cache at each
    /// live row's slot and position, else after the filled positions; returns the layer's
    /// keys and values, the new ones included.
    pub(crate) fn append(
        &mut self,
        layer: usize,
        k: &Tensor,
        v: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let slot = &mut self.layers[layer];
        if let Some(live) = &self.live {
            // each row's new position goes where `live` puts it, in its slot
            let (kb, vb) = slot
                .as_ref()
                .ok_or_else(|| Error::model("qwen2", "empty batch KV cache"))?;
            let (rows, new) = (k.dim(0)?, k.dim(2)?);
            if rows != live.len() {
                return Err(Error::model(
                    "qwen2",
                    "a step's rows are not the cache's live rows",
                ));
            }
            for (i, &(slot, at)) in live.iter().enumerate() {
                if at + new > kb.dim(2)? {
                    return Err(Error::model("qwen2", "batch KV cache is full"));
                }
                kb.narrow(0, slot, 1)?
                    .slice_set(&k.narrow(0, i, 1)?.contiguous()?, 2, at)?;
                vb.narrow(0, slot, 1)?
                    .slice_set(&v.narrow(0, i, 1)?.contiguous()?, 2, at)?;
            }
            return Ok((kb.clone(), vb.clone()));
        }
        let (k, v) = match slot.take() {
            Some((pk, pv)) => (Tensor::cat(&[&pk, k], 2)?, Tensor::cat(&[&pv, v], 2)?),
            None => (k.clone(), v.clone()),
        };
        *slot = Some((k.clone(), v.clone()));
        Ok((k, v))
    }

    /// Counts `n` new positions: of every live row in a batch cache, else of the one row.
    pub(crate) fn advance(&mut self, n: usize) {
        if let Some(live) = &self.live {
            for &(slot, at) in live {
                self.lens[slot] = self.lens[slot].max(at + n);
            }
            return;
        }
        self.len += n;
    }
}
