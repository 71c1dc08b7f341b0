//! Attention on the CPU: of one new query per row over the cached keys and values of its slot
//! up to its own position ([`attend`]), and of a prompt over its own and its cached positions
//! ([`prompt_attention`], else candle's matmuls around [`causal_softmax`]).
//!
//! Written here because candle's general path (two batched f32 GEMMs, a scale and a softmax,
//! each a separate pass with its own buffers) took 15 ms of a 66 ms decoding step at a
//! 1,000-token context; this is one pass per (sequence, head). Each (sequence, head) is
//! computed alone, in the same order whatever the batch, so batching never changes a result.
//! A prompt keeps candle's two GEMMs; its scale, mask and softmax are one pass per row here
//! (they were three passes and 6% of the sample run), with candle's values bit for bit.

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

/// A prompt's attention on the CPU: `q` (`[b, kv heads, group · t, hd]`, the query heads that
/// share a KV head stacked, query position `row % t`) over contiguous `k`, `v` (`[b, kv heads,
/// total, hd]`, the last `t` positions the prompt's own), later positions hidden. `None` where
/// the shapes or this machine call for candle's path.
///
/// The values are candle's: each (b, KV head) makes the very `gemm` calls candle's matmuls
/// make (same sizes, strides and blocking), unthreaded, with the scale, causal mask and
/// softmax of [`causal_softmax_row`] between them. The (b, KV head) pairs share the CPU pool:
/// candle ran the matmuls on rayon's threads while the pool's own spun, and the softmax as
/// three passes (6% of the sample run).
pub fn prompt_attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    t: usize,
    scale: f64,
) -> Result<Option<Tensor>> {
    let (b, kv_heads, _, _) = q.dims4()?;
    // one item per (b, KV head): more threads than that would sit idle, so candle's serve
    if candle_core::utils::barrier_pool().n_workers() + 1 > b * kv_heads {
        return Ok(None);
    }
    prompt_attention_on_pool(q, k, v, t, scale)
}

/// [`prompt_attention`] whatever the pool's size.
fn prompt_attention_on_pool(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    t: usize,
    scale: f64,
) -> Result<Option<Tensor>> {
    let (b, kv_heads, m, hd) = q.dims4()?;
    let total = k.dim(2)?;
    let pairs = b * kv_heads;
    if !q.device().is_cpu()
        || t == 0
        || total < t
        || !m.is_multiple_of(t)
        || k.dims4()? != (b, kv_heads, total, hd)
        || v.dims4()? != (b, kv_heads, total, hd)
    {
        return Ok(None);
    }
    let q = q.contiguous()?;
    let (q_store, q_layout) = q.storage_and_layout();
    let (k_store, k_layout) = k.storage_and_layout();
    let (v_store, v_layout) = v.storage_and_layout();
    let (Storage::Cpu(q_cpu), Storage::Cpu(k_cpu), Storage::Cpu(v_cpu)) =
        (&*q_store, &*k_store, &*v_store)
    else {
        return Ok(None);
    };
    let (Some((q0, _)), Some((k0, _)), Some((v0, _))) = (
        q_layout.contiguous_offsets(),
        k_layout.contiguous_offsets(),
        v_layout.contiguous_offsets(),
    ) else {
        return Ok(None);
    };
    let (Ok(q_all), Ok(k_all), Ok(v_all)) = (
        q_cpu.as_slice::<f32>(),
        k_cpu.as_slice::<f32>(),
        v_cpu.as_slice::<f32>(),
    ) else {
        return Ok(None);
    };
    let (q_all, k_all, v_all) = (&q_all[q0..], &k_all[k0..], &v_all[v0..]);
    let mut out = vec![0f32; pairs * m * hd];
    let out_ptr = out.as_mut_ptr() as usize;
    let offset = total - t;
    candle_core::utils::barrier_pool().execute_chunked(pairs, |items| {
        let mut probs = vec![0f32; m * total];
        for pair in items {
            let q = &q_all[pair * m * hd..][..m * hd];
            let k = &k_all[pair * total * hd..][..total * hd];
            let v = &v_all[pair * total * hd..][..total * hd];
            // SAFETY: each (b, KV head) writes only its own `m × hd` outputs.
            let o = unsafe {
                std::slice::from_raw_parts_mut((out_ptr as *mut f32).add(pair * m * hd), m * hd)
            };
            // scores = q · kᵀ, with the strides candle passes for `q.matmul(&k.t())`
            // SAFETY: `q` is `m × hd` (rows `hd` apart), `k` `total × hd`, `probs` `m × total`.
            unsafe { matmul_as_candle(m, total, hd, &mut probs, (q, hd), (k, hd, 1)) };
            for (r, row) in probs.chunks_exact_mut(total).enumerate() {
                causal_softmax_row(row, scale, offset + r % t + 1);
            }
            // out = probs · v, as `probs.matmul(v)`
            // SAFETY: `probs` is `m × total`, `v` `total × hd`, `o` `m × hd`.
            unsafe { matmul_as_candle(m, hd, total, o, (&probs, total), (v, 1, hd)) };
        }
    });
    drop((q_store, k_store, v_store));
    Ok(Some(Tensor::from_vec(
        out,
        (b, kv_heads, m, hd),
        &Device::Cpu,
    )?))
}

/// `dst (m × n, rows n apart) = lhs (m × k, rows lhs.1 apart) · rhs`, `rhs` element (row i,
/// column j) at `i · rhs.2 + j · rhs.1`: the `gemm` call candle's CPU matmul makes for these
/// strides (destination not read, alpha 0, beta 1), on this thread alone.
///
/// # Safety
/// The slices must hold every element these sizes and strides reach.
unsafe fn matmul_as_candle(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    lhs: (&[f32], usize),
    rhs: (&[f32], usize, usize),
) {
    gemm::gemm(
        m,
        n,
        k,
        dst.as_mut_ptr(),
        1,
        n as isize,
        false,
        lhs.0.as_ptr(),
        1,
        lhs.1 as isize,
        rhs.0.as_ptr(),
        rhs.1 as isize,
        rhs.2 as isize,
        0.0,
        1.0,
        false,
        false,
        false,
        gemm::Parallelism::None,
    )
}

/// The additive causal mask of `t` new positions after `offset` cached ones, `[t, offset + t]`
/// row-major: 0 where a position may look, minus infinity at later positions.
pub fn causal_mask_values(t: usize, offset: usize) -> Vec<f32> {
    let total = offset + t;
    (0..t)
        .flat_map(|i| {
            (0..total).map(move |j| {
                if j > offset + i {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
        })
        .collect()
}

/// One row of attention weights in place: `softmax(scale · row + mask)` with the positions from
/// `visible` on hidden, as candle's `affine` (scale converted to f32, then `+ 0`),
/// `broadcast_add` of the causal mask and `softmax_last_dim` (its own `vec_reduce_sum` for
/// the total) give them.
fn causal_softmax_row(row: &mut [f32], scale: f64, visible: usize) {
    use candle_core::cpu::kernels::VecOps;
    let mul = scale as f32;
    for (j, s) in row.iter_mut().enumerate() {
        let mask = if j < visible { 0.0 } else { f32::NEG_INFINITY };
        *s = (*s * mul + 0.0) + mask;
    }
    let mut max = f32::NEG_INFINITY;
    // SAFETY: `row` holds `row.len()` values.
    unsafe { f32::vec_reduce_max(row.as_ptr(), &mut max, row.len()) };
    super::exp::exp_less(row, max);
    let mut sum = 0f32;
    // SAFETY: as above.
    unsafe { f32::vec_reduce_sum(row.as_ptr(), &mut sum, row.len()) };
    for s in row.iter_mut() {
        *s /= sum;
    }
}

/// [`causal_softmax_row`] for every row of `scores` (`[.., rows, total]`, query position
/// `row % t` after `total - t` cached positions) on the CPU pool: the prompt path where
/// [`prompt_attention`] does not serve.
pub fn causal_softmax(scores: &Tensor, scale: f64, t: usize) -> Result<Tensor> {
    let dims = scores.dims().to_vec();
    let total = *dims.last().unwrap_or(&0);
    if t == 0 || total < t {
        return Err(Error::model(
            "qwen2",
            "attention scores shorter than the prompt",
        ));
    }
    let offset = total - t;
    let rows = scores.elem_count() / total;
    let mut out = scores.flatten_all()?.to_vec1::<f32>()?;
    let out_ptr = out.as_mut_ptr() as usize;
    candle_core::utils::barrier_pool().execute_chunked(rows, |range| {
        for r in range {
            // SAFETY: each row writes only its own `total` values.
            let row = unsafe {
                std::slice::from_raw_parts_mut((out_ptr as *mut f32).add(r * total), total)
            };
            causal_softmax_row(row, scale, offset + r % t + 1);
        }
    });
    Ok(Tensor::from_vec(out, dims, &Device::Cpu)?)
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
    #[cfg(target_arch = "x86_64")]
    let wide = hd.is_multiple_of(32) && x86::available();
    #[cfg(not(target_arch = "x86_64"))]
    let wide = false;
    attend_group_with(wide, queries, keys, values, hd, scale, scores, out);
}

/// [`attend_group`], its scores and weighted sums by the AVX-512 forms or not (`wide`, which
/// needs AVX-512 and `hd` a multiple of 32): both do the same operations in the same order per
/// output, so they give the same bits.
#[allow(clippy::too_many_arguments)]
fn attend_group_with(
    wide: bool,
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
    assert!(out.len() == group * hd && values.len() == keys.len());
    // scores[g * slots + j]: head g against slot j
    scores.clear();
    scores.resize(group * slots, 0.0);
    #[cfg(target_arch = "x86_64")]
    if wide {
        // SAFETY: the caller checked AVX-512 and hd.
        unsafe { x86::scores(queries, keys, hd, scale, scores) };
    }
    if !wide {
        for (j, key) in keys.chunks_exact(hd).enumerate() {
            for (g, query) in queries.chunks_exact(hd).enumerate() {
                scores[g * slots + j] = dot(query, key) * scale;
            }
        }
    }
    for head in scores.chunks_exact_mut(slots) {
        let max = head.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        super::exp::exp_less(head, max);
    }
    // each head's total in slot order, the heads interleaved so that their adds overlap
    let mut totals = vec![0f32; group];
    for j in 0..slots {
        for (g, total) in totals.iter_mut().enumerate() {
            *total += scores[g * slots + j];
        }
    }
    #[cfg(target_arch = "x86_64")]
    if wide {
        // SAFETY: as above.
        unsafe { x86::weighted_sums(scores, slots, values, hd, out) };
    }
    if !wide {
        out.fill(0.0);
        for (j, value) in values.chunks_exact(hd).enumerate() {
            for (g, o) in out.chunks_exact_mut(hd).enumerate() {
                let p = scores[g * slots + j];
                for (o, x) in o.iter_mut().zip(value) {
                    *o = p.mul_add(*x, *o);
                }
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

/// AVX-512 forms of [`attend_group_with`]'s scores and weighted sums, each output computed by
/// the same operations in the same order (so the same bits):
/// - scores: 16 keys at once, each key's 32 running sums transposed so that their sequential
///   total is 31 vector adds, not 31 scalar adds a key;
/// - weighted values: up to 8 heads' sums held in registers while each value row is read once.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::dot;
    use core::arch::x86_64::*;

    /// Keys per block: one per lane.
    const KEYS: usize = 16;
    /// Query heads whose weighted sums stay in registers at once.
    const HEADS: usize = 8;

    pub fn available() -> bool {
        is_x86_feature_detected!("avx512f")
    }

    /// `scores[g * slots + j] = dot(query g, key j) · scale`, for `hd` a multiple of 32.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn scores(queries: &[f32], keys: &[f32], hd: usize, scale: f32, scores: &mut [f32]) {
        let group = queries.len() / hd;
        let slots = keys.len() / hd;
        assert!(scores.len() == group * slots);
        let blocks = slots / KEYS;
        let scale16 = _mm512_set1_ps(scale);
        for b in 0..blocks {
            let k = keys.as_ptr().add(b * KEYS * hd);
            for g in 0..group {
                let dots = block_dots(queries.as_ptr().add(g * hd), k, hd);
                let at = scores.as_mut_ptr().add(g * slots + b * KEYS);
                _mm512_storeu_ps(at, _mm512_mul_ps(dots, scale16));
            }
        }
        for j in blocks * KEYS..slots {
            let key = &keys[j * hd..][..hd];
            for g in 0..group {
                scores[g * slots + j] = dot(&queries[g * hd..][..hd], key) * scale;
            }
        }
    }

    /// `out[g] = Σ_j scores[g][j] · values[j]` for every head, `hd` a multiple of 32.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn weighted_sums(
        scores: &[f32],
        slots: usize,
        values: &[f32],
        hd: usize,
        out: &mut [f32],
    ) {
        let group = out.len() / hd;
        let mut first = 0;
        while first < group {
            let heads = (group - first).min(HEADS);
            for dims in (0..hd).step_by(32) {
                let args = (scores, slots, first, values, hd, dims, &mut *out);
                match heads {
                    1 => weighted_sum::<1>(args),
                    2 => weighted_sum::<2>(args),
                    3 => weighted_sum::<3>(args),
                    4 => weighted_sum::<4>(args),
                    5 => weighted_sum::<5>(args),
                    6 => weighted_sum::<6>(args),
                    7 => weighted_sum::<7>(args),
                    _ => weighted_sum::<HEADS>(args),
                }
            }
            first += heads;
        }
    }

    /// The dot products of the query at `q` with the 16 keys at `k` (`hd` apart), as
    /// [`dot`] computes each: 32 running sums of fused multiply-adds, then their total from
    /// the first to the last.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn block_dots(q: *const f32, k: *const f32, hd: usize) -> __m512 {
        let mut total = _mm512_setzero_ps();
        for half in 0..2 {
            let mut sums = [_mm512_setzero_ps(); KEYS];
            for chunk in (0..hd).step_by(32) {
                let at = chunk + 16 * half;
                let query = _mm512_loadu_ps(q.add(at));
                for (j, sum) in sums.iter_mut().enumerate() {
                    *sum = _mm512_fmadd_ps(query, _mm512_loadu_ps(k.add(j * hd + at)), *sum);
                }
            }
            // lane j of column l: key j's running sum 16 * half + l
            for (l, column) in transpose(sums).iter().enumerate() {
                total = if half == 0 && l == 0 {
                    *column
                } else {
                    _mm512_add_ps(total, *column)
                };
            }
        }
        total
    }

    /// The 16 × 16 transpose: lane j of result l is lane l of `rows[j]`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn transpose(rows: [__m512; 16]) -> [__m512; 16] {
        let zero = _mm512_setzero_ps();
        // per 128-bit lane L: rows 2i, 2i + 1 of columns 4L, 4L + 1 (even t) or 4L + 2, 4L + 3
        let mut t = [zero; 16];
        for i in 0..8 {
            t[2 * i] = _mm512_unpacklo_ps(rows[2 * i], rows[2 * i + 1]);
            t[2 * i + 1] = _mm512_unpackhi_ps(rows[2 * i], rows[2 * i + 1]);
        }
        // u[4m + e], per 128-bit lane L: rows 4m..4m + 4 of column 4L + e
        let mut u = [zero; 16];
        for m in 0..4 {
            u[4 * m] = _mm512_shuffle_ps::<0x44>(t[4 * m], t[4 * m + 2]);
            u[4 * m + 1] = _mm512_shuffle_ps::<0xEE>(t[4 * m], t[4 * m + 2]);
            u[4 * m + 2] = _mm512_shuffle_ps::<0x44>(t[4 * m + 1], t[4 * m + 3]);
            u[4 * m + 3] = _mm512_shuffle_ps::<0xEE>(t[4 * m + 1], t[4 * m + 3]);
        }
        // column 4L + e gathers lane L of u[e], u[4 + e], u[8 + e], u[12 + e]
        let mut columns = [zero; 16];
        for e in 0..4 {
            let ab_low = _mm512_shuffle_f32x4::<0x44>(u[e], u[4 + e]);
            let ab_high = _mm512_shuffle_f32x4::<0xEE>(u[e], u[4 + e]);
            let cd_low = _mm512_shuffle_f32x4::<0x44>(u[8 + e], u[12 + e]);
            let cd_high = _mm512_shuffle_f32x4::<0xEE>(u[8 + e], u[12 + e]);
            columns[e] = _mm512_shuffle_f32x4::<0x88>(ab_low, cd_low);
            columns[4 + e] = _mm512_shuffle_f32x4::<0xDD>(ab_low, cd_low);
            columns[8 + e] = _mm512_shuffle_f32x4::<0x88>(ab_high, cd_high);
            columns[12 + e] = _mm512_shuffle_f32x4::<0xDD>(ab_high, cd_high);
        }
        columns
    }

    /// `out[g] = Σ_j scores[g][j] · values[j]` over dims `dims..dims + 32` for heads
    /// `first..first + N`, each sum a chain of fused multiply-adds in slot order.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn weighted_sum<const N: usize>(
        (scores, slots, first, values, hd, dims, out): (
            &[f32],
            usize,
            usize,
            &[f32],
            usize,
            usize,
            &mut [f32],
        ),
    ) {
        assert!(scores.len() >= (first + N) * slots && out.len() >= (first + N) * hd);
        assert!(values.len() >= slots * hd && dims + 32 <= hd);
        let mut sums = [[_mm512_setzero_ps(); 2]; N];
        for j in 0..slots {
            let v = values.as_ptr().add(j * hd + dims);
            let (low, high) = (_mm512_loadu_ps(v), _mm512_loadu_ps(v.add(16)));
            for (h, sum) in sums.iter_mut().enumerate() {
                let p = _mm512_set1_ps(*scores.get_unchecked((first + h) * slots + j));
                sum[0] = _mm512_fmadd_ps(p, low, sum[0]);
                sum[1] = _mm512_fmadd_ps(p, high, sum[1]);
            }
        }
        for (h, sum) in sums.iter().enumerate() {
            let o = out.as_mut_ptr().add((first + h) * hd + dims);
            _mm512_storeu_ps(o, sum[0]);
            _mm512_storeu_ps(o.add(16), sum[1]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bits(x: &Tensor) -> Result<Vec<u32>> {
        let values = x.flatten_all()?.to_vec1::<f32>()?;
        Ok(values.iter().map(|v| v.to_bits()).collect())
    }

    fn random(n: usize, state: &mut u64) -> Vec<f32> {
        (0..n)
            .map(|_| {
                *state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (*state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
            })
            .collect()
    }

    /// Both paths give the same bits, for block-sized, ragged and short contexts, several
    /// group sizes and head sizes, and scores spread wide enough that some underflow.
    #[test]
    fn attend_group_paths_agree_bit_for_bit() {
        #[cfg(target_arch = "x86_64")]
        let wide = x86::available();
        #[cfg(not(target_arch = "x86_64"))]
        let wide = false;
        if !wide {
            eprintln!("skipped attend_group_paths_agree_bit_for_bit: this CPU has no AVX-512 path");
            return;
        }
        let mut state = 11u64;
        for &hd in &[128usize, 64, 32] {
            for &group in &[6usize, 1, 7, 9] {
                for &slots in &[1usize, 15, 16, 17, 48, 613] {
                    for &spread in &[1.0f32, 30.0] {
                        let queries: Vec<f32> = random(group * hd, &mut state)
                            .iter()
                            .map(|q| q * spread)
                            .collect();
                        let keys = random(slots * hd, &mut state);
                        let values = random(slots * hd, &mut state);
                        let scale = 1.0 / (hd as f32).sqrt();
                        let (mut s1, mut s2) = (Vec::new(), Vec::new());
                        let mut fast = vec![0f32; group * hd];
                        let mut plain = vec![0f32; group * hd];
                        attend_group_with(
                            true, &queries, &keys, &values, hd, scale, &mut s1, &mut fast,
                        );
                        attend_group_with(
                            false, &queries, &keys, &values, hd, scale, &mut s2, &mut plain,
                        );
                        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                        assert_eq!(
                            bits(&s1),
                            bits(&s2),
                            "numerators hd {hd} group {group} slots {slots}"
                        );
                        assert_eq!(
                            bits(&fast),
                            bits(&plain),
                            "outputs hd {hd} group {group} slots {slots}"
                        );
                    }
                }
            }
        }
    }

    /// The fused prompt softmax gives candle's bits: scale, causal mask and softmax as three
    /// candle ops, for prompts after a cached prefix, from the start, and of one token, with
    /// scores wide enough that some exponentials underflow.
    #[test]
    fn causal_softmax_is_candles_three_ops() -> Result<()> {
        let mut state = 5u64;
        for &(t, total) in &[(5usize, 12usize), (37, 37), (1, 20), (40, 300)] {
            for &spread in &[1.0f32, 60.0] {
                let values: Vec<f32> = random(2 * 6 * t * total, &mut state)
                    .iter()
                    .map(|x| x * spread)
                    .collect();
                let scores = Tensor::from_vec(values, (1, 2, 6 * t, total), &Device::Cpu)?;
                let mask =
                    Tensor::from_vec(causal_mask_values(t, total - t), (t, total), &Device::Cpu)?;
                let scale = 1.0 / (128f64).sqrt();
                let theirs = (scores.clone() * scale)?
                    .reshape((1, 2, 6, t, total))?
                    .broadcast_add(&mask)?
                    .reshape((1, 2, 6 * t, total))?;
                let theirs = candle_nn::ops::softmax_last_dim(&theirs)?;
                let ours = causal_softmax(&scores, scale, t)?;
                assert_eq!(
                    bits(&ours)?,
                    bits(&theirs)?,
                    "t {t}, total {total}, spread {spread}"
                );
            }
        }
        Ok(())
    }

    /// Prompt attention gives the bits of candle's matmuls, scale, mask and softmax, for
    /// prompts after a cached prefix and from the start.
    #[test]
    fn prompt_attention_is_candles() -> Result<()> {
        let mut state = 9u64;
        let (b, kv_heads, group, hd) = (2usize, 4usize, 6usize, 128usize);
        for &(t, total) in &[(7usize, 7usize), (37, 100), (130, 530)] {
            let tensor = |n: usize, shape: (usize, usize, usize, usize), state: &mut u64| {
                Tensor::from_vec(random(n, state), shape, &Device::Cpu)
            };
            let q = tensor(
                b * kv_heads * group * t * hd,
                (b, kv_heads, group * t, hd),
                &mut state,
            )?;
            let k = tensor(
                b * kv_heads * total * hd,
                (b, kv_heads, total, hd),
                &mut state,
            )?;
            let v = tensor(
                b * kv_heads * total * hd,
                (b, kv_heads, total, hd),
                &mut state,
            )?;
            let k = (k * 4.0)?;
            let scale = 1.0 / (hd as f64).sqrt();
            let ours = prompt_attention_on_pool(&q, &k, &v, t, scale)?
                .expect("contiguous CPU tensors of matching shapes");
            let mask =
                Tensor::from_vec(causal_mask_values(t, total - t), (t, total), &Device::Cpu)?;
            let scores = (q.matmul(&k.t()?)? * scale)?
                .reshape((b, kv_heads, group, t, total))?
                .broadcast_add(&mask)?
                .reshape((b, kv_heads, group * t, total))?;
            let theirs = candle_nn::ops::softmax_last_dim(&scores)?.matmul(&v)?;
            assert_eq!(bits(&ours)?, bits(&theirs)?, "t {t}, total {total}");
        }
        Ok(())
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn transpose_swaps_lanes_and_rows() {
        if !x86::available() {
            return;
        }
        use core::arch::x86_64::*;
        let input: Vec<f32> = (0..256).map(|i| i as f32).collect();
        // SAFETY: the feature was checked; each row is 16 values.
        let output = unsafe {
            let rows: [__m512; 16] =
                std::array::from_fn(|j| _mm512_loadu_ps(input.as_ptr().add(16 * j)));
            let columns = x86::transpose(rows);
            let mut out = vec![0f32; 256];
            for (l, c) in columns.iter().enumerate() {
                _mm512_storeu_ps(out.as_mut_ptr().add(16 * l), *c);
            }
            out
        };
        for l in 0..16 {
            for j in 0..16 {
                assert_eq!(output[16 * l + j], input[16 * j + l]);
            }
        }
    }
}
