//! Activation rows to the Q8K blocks our kernels multiply: byte for byte what candle's
//! `BlockQ8K::from_float` gives, with AVX-512 where the CPU has it.
//!
//! Written here because candle's quantizer is scalar (it rounds each value with `f32::round`)
//! and took 3.5% of the sample run's CPU time, more than the attention's softmax.

use candle_core::quantized::k_quants::{BlockQ8K, GgmlType};

/// Values per block (a GGUF superblock).
pub(super) const QK_K: usize = 256;
/// `BlockQ8K` is `#[repr(C)] { d: f32, qs: [i8; 256], bsums: [i16; 16] }`; its fields are
/// private to candle, so they are written and read at these offsets (by `gemv`, `gemm`).
pub(super) const Q8K_BYTES: usize = 292;
pub(super) const Q8K_QS: usize = 4;
pub(super) const Q8K_BSUMS: usize = 260;
const _: () = assert!(std::mem::size_of::<BlockQ8K>() == Q8K_BYTES);

/// Activation rows (`x` is `rows × k`) as Q8K blocks, as candle quantizes them before its
/// kernels.
pub fn quantize_rows(x: &[f32]) -> Vec<BlockQ8K> {
    let mut blocks = zeroed_blocks(x.len() / QK_K);
    quantize(x, &mut blocks);
    blocks
}

/// [`quantize_rows`] with the rows shared among candle's threads (a prompt's rows are many;
/// each row is quantized alone either way, so the blocks are the same).
pub fn quantize_rows_parallel(xs: &[f32], rows: usize, k: usize) -> Vec<BlockQ8K> {
    let kb = k / QK_K;
    let mut blocks = zeroed_blocks(rows * kb);
    let out = blocks.as_mut_ptr() as usize;
    candle_core::utils::barrier_pool().execute_chunked(rows, |range| {
        for r in range {
            // SAFETY: each row writes only its own `kb` blocks.
            let own =
                unsafe { std::slice::from_raw_parts_mut((out as *mut BlockQ8K).add(r * kb), kb) };
            quantize(&xs[r * k..(r + 1) * k], own);
        }
    });
    blocks
}

/// `n` all-zero blocks from the allocator's zeroed memory: `vec![BlockQ8K::zeros(); n]`
/// cloned them one by one on the main thread (0.3 s of a sample run's serial time), where
/// `calloc` takes fresh pages already zero.
fn zeroed_blocks(n: usize) -> Vec<BlockQ8K> {
    if n == 0 {
        return Vec::new();
    }
    let layout = std::alloc::Layout::array::<BlockQ8K>(n).expect("a block count that fits memory");
    // SAFETY: a non-zero layout; all-zero bytes are a valid `BlockQ8K` (an f32, i8s and i16s),
    // and the vector owns the allocation with the global allocator's layout for `n` blocks.
    unsafe {
        let blocks = std::alloc::alloc_zeroed(layout) as *mut BlockQ8K;
        if blocks.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        Vec::from_raw_parts(blocks, n, n)
    }
}

/// Quantizes `xs` (a multiple of 256 values) into `ys`, one block per 256 values.
pub fn quantize(xs: &[f32], ys: &mut [BlockQ8K]) {
    assert_eq!(xs.len(), ys.len() * QK_K);
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx512f") {
        for (x, y) in xs.chunks_exact(QK_K).zip(ys.iter_mut()) {
            // SAFETY: the feature was checked; `x` holds 256 values and `y` is one block.
            if !unsafe { x86::block(x, y) } {
                BlockQ8K::from_float(x, std::slice::from_mut(y));
            }
        }
        return;
    }
    BlockQ8K::from_float(xs, ys);
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::*;
    use core::arch::x86_64::*;

    /// One block as candle makes it: the value of largest magnitude (the first, on ties) sets
    /// `iscale = -127 / max`; each value becomes `round(iscale · x)` (half away from zero)
    /// clamped to [-128, 127]; `bsums` are the sums of each 16; `d = 1 / iscale`. Returns
    /// false, leaving the block to candle, when a value is NaN (candle's scan skips it) or
    /// `iscale` is not a finite non-zero number.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn block(x: &[f32], y: &mut BlockQ8K) -> bool {
        let p = x.as_ptr();
        let sign = _mm512_set1_ps(-0.0);
        let mut amax = _mm512_setzero_ps();
        for g in 0..QK_K / 16 {
            let v = _mm512_loadu_ps(p.add(16 * g));
            if _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v) != 0 {
                return false;
            }
            amax = _mm512_max_ps(amax, _mm512_andnot_ps(sign, v));
        }
        let amax = _mm512_reduce_max_ps(amax);
        let out = y as *mut BlockQ8K as *mut u8;
        if amax == 0.0 {
            std::ptr::write_bytes(out, 0, std::mem::size_of::<BlockQ8K>());
            return true;
        }
        let max = *x
            .iter()
            .find(|v| v.abs() == amax)
            .expect("the largest is there");
        let iscale = -127f32 / max;
        if !iscale.is_finite() || iscale == 0.0 {
            // an infinite or subnormal largest value: candle's rounding of the NaNs it makes
            return false;
        }
        let scale = _mm512_set1_ps(iscale);
        let (half, one) = (_mm512_set1_ps(0.5), _mm512_set1_ps(1.0));
        let (low, high) = (_mm512_set1_ps(-128.0), _mm512_set1_ps(127.0));
        for g in 0..QK_K / 16 {
            let v = _mm512_mul_ps(scale, _mm512_loadu_ps(p.add(16 * g)));
            // f32::round: the integer part, plus one away from zero where the exact
            // fraction is half or more
            let whole = _mm512_roundscale_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(v);
            let fraction = _mm512_andnot_ps(sign, _mm512_sub_ps(v, whole));
            let up = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(fraction, half);
            let away = _mm512_or_ps(one, _mm512_and_ps(sign, v));
            let rounded = _mm512_mask_add_ps(whole, up, whole, away);
            let q = _mm512_cvttps_epi32(_mm512_min_ps(_mm512_max_ps(rounded, low), high));
            _mm_storeu_si128(
                out.add(Q8K_QS + 16 * g) as *mut __m128i,
                _mm512_cvtepi32_epi8(q),
            );
            let sum = _mm512_reduce_add_epi32(q) as i16;
            (out.add(Q8K_BSUMS + 2 * g) as *mut i16).write_unaligned(sum);
        }
        (out as *mut f32).write_unaligned(1.0 / iscale);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(blocks: &[BlockQ8K]) -> &[u8] {
        // SAFETY: plain data, read as bytes.
        unsafe {
            std::slice::from_raw_parts(blocks.as_ptr() as *const u8, std::mem::size_of_val(blocks))
        }
    }

    /// Byte for byte candle's blocks: random rows at several scales, values that round at
    /// exactly one half, ties for the largest magnitude, an all-zero block, a NaN, an infinity
    /// and a subnormal largest value.
    #[test]
    fn blocks_are_candles() {
        let mut state = 7u64;
        let mut next = || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        };
        let mut rows: Vec<Vec<f32>> = [1e-3f32, 1.0, 40.0, 3e4]
            .iter()
            .map(|&s| (0..QK_K * 3).map(|_| next() * s).collect())
            .collect();
        // max 127 makes iscale -1: values k + 0.5 round at exactly one half
        let mut halves: Vec<f32> = (0..QK_K).map(|i| (i % 120) as f32 - 60.5).collect();
        halves[3] = 127.0;
        rows.push(halves);
        let mut ties: Vec<f32> = (0..QK_K).map(|_| next()).collect();
        ties[10] = -2.0;
        ties[200] = 2.0;
        rows.push(ties);
        rows.push(vec![0.0; QK_K]);
        let mut nan: Vec<f32> = (0..QK_K).map(|_| next()).collect();
        nan[17] = f32::NAN;
        rows.push(nan);
        let mut infinite: Vec<f32> = (0..QK_K).map(|_| next()).collect();
        infinite[40] = f32::NEG_INFINITY;
        rows.push(infinite);
        let mut tiny = vec![0.0f32; QK_K];
        tiny[5] = 1e-40;
        rows.push(tiny);
        for (i, row) in rows.iter().enumerate() {
            let n = row.len() / QK_K;
            let (mut ours, mut theirs) = (vec![BlockQ8K::zeros(); n], vec![BlockQ8K::zeros(); n]);
            quantize(row, &mut ours);
            BlockQ8K::from_float(row, &mut theirs);
            assert_eq!(bytes(&ours), bytes(&theirs), "row set {i}");
        }
    }
}
