//! Attention of one new query per row over the cached keys and values of its slot up to its
//! own position, on the CPU.
//!
//! Written here because candle's general path (two batched f32 GEMMs, a scale and a softmax,
//! each a separate pass with its own buffers) took 15 ms of a 66 ms decoding step at a
//! 1,000-token context; this is one pass per (sequence, head). Each (sequence, head) is
//! computed alone, in the same order whatever the batch, so batching never changes a result.

use candle_core::{Device, Storage, Tensor};

use crate::error::{Error, Result};

/// `q`: `[rows, heads, 1, head dim]`; `k`, `v`: `[slots, kv heads, capacity, head dim]`, a
/// batch cache; row r attends over positions `[0, len)` of slot `slot` for `spans[r] = (slot,
/// len)`. Returns `[rows, heads, 1, head dim]`.
pub fn attend(q: &Tensor, k: &Tensor, v: &Tensor, spans: &[(usize, usize)]) -> Result<Tensor> {
    let (rows, heads, _, hd) = q.dims4()?;
    let (slots, kv_heads, capacity, _) = k.dims4()?;
    if spans.len() != rows
        || spans
            .iter()
            .any(|&(slot, len)| slot >= slots || len > capacity)
    {
        return Err(Error::model(
            "qwen2",
            "attention spans do not fit the cache",
        ));
    }
    let group = heads / kv_heads;
    let q = q.flatten_all()?.to_vec1::<f32>()?;
    let (k_store, k_layout) = k.storage_and_layout();
    let (v_store, v_layout) = v.storage_and_layout();
    let (Storage::Cpu(k_cpu), Storage::Cpu(v_cpu)) = (&*k_store, &*v_store) else {
        return Err(Error::model("qwen2", "CPU attention needs a CPU cache"));
    };
    let (k_all, v_all) = (k_cpu.as_slice::<f32>()?, v_cpu.as_slice::<f32>()?);
    let (ks, vs) = (k_layout.stride(), v_layout.stride());
    if ks[3] != 1 || vs[3] != 1 || ks[2] != hd || vs[2] != hd {
        return Err(Error::model("qwen2", "KV cache rows are not contiguous"));
    }
    let (k0, v0) = (k_layout.start_offset(), v_layout.start_offset());
    let scale = 1.0 / (hd as f32).sqrt();
    let mut out = vec![0f32; rows * heads * hd];
    let out_ptr = out.as_mut_ptr() as usize;
    // one item per (row, KV head): its keys and values are read once for all the query heads
    // that share them
    candle_core::utils::barrier_pool().execute_chunked(rows * kv_heads, |items| {
        let mut scores = Vec::new();
        for item in items {
            let (r, kv) = (item / kv_heads, item % kv_heads);
            let (slot, len) = spans[r];
            let keys = &k_all[k0 + slot * ks[0] + kv * ks[1]..][..len * hd];
            let values = &v_all[v0 + slot * vs[0] + kv * vs[1]..][..len * hd];
            let first = (r * heads + kv * group) * hd;
            let queries = &q[first..first + group * hd];
            // SAFETY: each item writes only the outputs of its own query heads.
            let o = unsafe {
                std::slice::from_raw_parts_mut((out_ptr as *mut f32).add(first), group * hd)
            };
            attend_group(queries, keys, values, hd, scale, &mut scores, o);
        }
    });
    Ok(Tensor::from_vec(out, (rows, heads, 1, hd), &Device::Cpu)?)
}

/// Softmax-weighted sums of `values` for the query heads in `queries` (`[group, hd]`) over
/// `keys` and `values` (`[slots, hd]`); `out` is `[group, hd]`.
fn attend_group(
    queries: &[f32],
    keys: &[f32],
    values: &[f32],
    hd: usize,
    scale: f32,
    scores: &mut Vec<f32>,
    out: &mut [f32],
) {
    let group = queries.len() / hd;
    let slots = keys.len() / hd;
    // scores[g * slots + j]: head g against slot j
    scores.clear();
    scores.resize(group * slots, 0.0);
    for (j, key) in keys.chunks_exact(hd).enumerate() {
        for (g, query) in queries.chunks_exact(hd).enumerate() {
            scores[g * slots + j] = dot(query, key) * scale;
        }
    }
    let mut totals = vec![0f32; group];
    for (g, head) in scores.chunks_exact_mut(slots).enumerate() {
        let max = head.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        for s in head.iter_mut() {
            *s = (*s - max).exp();
            totals[g] += *s;
        }
    }
    out.fill(0.0);
    for (j, value) in values.chunks_exact(hd).enumerate() {
        for (g, o) in out.chunks_exact_mut(hd).enumerate() {
            let p = scores[g * slots + j];
            for (o, x) in o.iter_mut().zip(value) {
                *o = p.mul_add(*x, *o);
            }
        }
    }
    for (o, total) in out.chunks_exact_mut(hd).zip(&totals) {
        for o in o.iter_mut() {
            *o /= total;
        }
    }
}

/// 32 running sums so that the compiler can vectorize and overlap them (one sum would force
/// sequential adds).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 32];
    for (x, y) in a.chunks_exact(32).zip(b.chunks_exact(32)) {
        for i in 0..32 {
            acc[i] = x[i].mul_add(y[i], acc[i]);
        }
    }
    let tail: f32 = a
        .chunks_exact(32)
        .remainder()
        .iter()
        .zip(b.chunks_exact(32).remainder())
        .map(|(x, y)| x * y)
        .sum();
    acc.iter().sum::<f32>() + tail
}
