//! The KV cache every model family decodes over: one growable row for prefill with prefix
//! reuse, or a batch of left-padded rows written in place.

use candle_core::{DType, Device, Tensor};

use crate::error::{Error, Result};

/// Keys and values of every layer, `[rows, kv heads, slots, head dim]`, and how many slots are
/// filled. A growable cache (one prompt, prefix reuse) appends by concatenation, so truncating
/// it and copying rows out never alias. A batch cache is allocated once at its final size and
/// written in place: copying a many-row cache at every step would cost more than the step.
pub struct KvCache {
    pub(crate) layers: Vec<Option<(Tensor, Tensor)>>,
    pub(crate) len: usize,
    /// Batch caches: the first filled slot of each row (the slots before it are padding).
    pub(crate) row_starts: Option<Vec<usize>>,
}

impl KvCache {
    pub fn new(n_layers: usize) -> Self {
        KvCache {
            layers: vec![None; n_layers],
            len: 0,
            row_starts: None,
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
        if self.row_starts.is_none() {
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

    /// This one-row cache's filled slots placed at `[pad, pad + len)` of a row of `capacity`
    /// zero slots, per layer.
    pub fn padded_row(&self, pad: usize, capacity: usize) -> Result<Vec<(Tensor, Tensor)>> {
        let place = |t: &Tensor| -> Result<Tensor> {
            let t = t.narrow(2, 0, self.len)?;
            let (b, h, _, d) = t.dims4()?;
            let mut parts = Vec::with_capacity(3);
            if pad > 0 {
                parts.push(Tensor::zeros((b, h, pad, d), t.dtype(), t.device())?);
            }
            parts.push(t.clone());
            let after = capacity - pad - self.len;
            if after > 0 {
                parts.push(Tensor::zeros((b, h, after, d), t.dtype(), t.device())?);
            }
            Ok(Tensor::cat(&parts, 2)?)
        };
        self.layers
            .iter()
            .map(|layer| {
                let (k, v) = layer
                    .as_ref()
                    .ok_or_else(|| Error::model("qwen2", "empty KV cache"))?;
                Ok((place(k)?, place(v)?))
            })
            .collect()
    }

    pub(crate) fn row_starts(&self) -> Option<&[usize]> {
        self.row_starts.as_deref()
    }

    /// An empty batch cache of `rows` rows of `capacity` slots each, to be filled row by row
    /// with `set_row`; written in place so that only one row is ever held twice.
    pub fn batch(
        n_layers: usize,
        (rows, kv_heads, capacity, head_dim): (usize, usize, usize, usize),
        device: &Device,
    ) -> Result<Self> {
        let zeros = || Tensor::zeros((rows, kv_heads, capacity, head_dim), DType::F32, device);
        let layers = (0..n_layers)
            .map(|_| Ok(Some((zeros()?, zeros()?))))
            .collect::<Result<Vec<_>>>()?;
        Ok(KvCache {
            layers,
            len: 0,
            row_starts: Some(vec![0; rows]),
        })
    }

    /// Writes row `r` of a batch cache from a `padded_row` whose filled slots start at `start`.
    pub fn set_row(&mut self, r: usize, row: Vec<(Tensor, Tensor)>, start: usize) -> Result<()> {
        let Some(starts) = &mut self.row_starts else {
            return Err(Error::model("qwen2", "only a batch cache has rows to set"));
        };
        starts[r] = start;
        for (layer, (k, v)) in self.layers.iter().zip(row) {
            let (kb, vb) = layer
                .as_ref()
                .ok_or_else(|| Error::model("qwen2", "empty batch KV cache"))?;
            kb.slice_set(&k, 0, r)?;
            vb.slice_set(&v, 0, r)?;
        }
        Ok(())
    }

    /// Marks the first `len` slots of every row of a batch cache as written.
    pub fn set_len(&mut self, len: usize) {
        self.len = len;
    }

    /// Keeps only rows `keep` (in that order), dropping finished sequences.
    pub fn select_rows(&mut self, keep: &[usize]) -> Result<()> {
        let Some(starts) = &self.row_starts else {
            return Err(Error::model("qwen2", "only a batch cache has rows to drop"));
        };
        let starts: Vec<usize> = keep.iter().map(|&r| starts[r]).collect();
        let ids: Vec<u32> = keep.iter().map(|&r| r as u32).collect();
        let mut index = None;
        for layer in self.layers.iter_mut().flatten() {
            let index = match &index {
                Some(i) => i,
                None => index.insert(Tensor::new(ids.as_slice(), layer.0.device())?),
            };
            *layer = (
                layer.0.index_select(index, 0)?,
                layer.1.index_select(index, 0)?,
            );
        }
        self.row_starts = Some(starts);
        Ok(())
    }

    /// Adds `k`, `v` (`[rows, kv heads, seq, head dim]`) after the filled slots of `layer` and
    /// returns the layer's filled keys and values, the new ones included.
    pub(crate) fn append(
        &mut self,
        layer: usize,
        k: &Tensor,
        v: &Tensor,
    ) -> Result<(Tensor, Tensor)> {
        let total = self.len + k.dim(2)?;
        let slot = &mut self.layers[layer];
        if self.row_starts.is_some() {
            let (kb, vb) = slot
                .as_ref()
                .ok_or_else(|| Error::model("qwen2", "empty batch KV cache"))?;
            if total > kb.dim(2)? {
                return Err(Error::model("qwen2", "batch KV cache is full"));
            }
            kb.slice_set(k, 2, self.len)?;
            vb.slice_set(v, 2, self.len)?;
            return Ok((kb.narrow(2, 0, total)?, vb.narrow(2, 0, total)?));
        }
        let (k, v) = match slot.take() {
            Some((pk, pv)) => (Tensor::cat(&[&pk, k], 2)?, Tensor::cat(&[&pv, v], 2)?),
            None => (k.clone(), v.clone()),
        };
        *slot = Some((k.clone(), v.clone()));
        Ok((k, v))
    }

    pub(crate) fn advance(&mut self, n: usize) {
        self.len += n;
    }
}
