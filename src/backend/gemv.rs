//! One or a few activation rows (decoding steps) times a Q4K or Q6K matrix, read straight from the
//! GGUF blocks.
//!
//! Written here because candle's x86 kernels multiply by tiles repacked for many rows, which
//! hold 1.33× (Q4K) and 1.5× (Q6K) the GGUF bytes, and decoding one or two rows is bound by
//! the bytes it reads. Each block of 8 matrix rows is unpacked once for all activation rows,
//! but the per-row horizontal sums make it slower than the tiles from 3 rows on (figures in
//! `qweight`), so it takes at most 2 rows there.
//! The result is bit-identical to candle's tiled kernels (AVX2, AVX-VNNI and AVX-512 tiers
//! alike): the integer dot product of each 32 (Q4K) or 16 (Q6K) values is exact, and the
//! float operations that scale and accumulate them are the very same ones in the same order,
//! whatever the number of rows. So a sequence decodes to the same tokens alone or in a batch.

use candle_core::quantized::k_quants::{BlockQ8K, GgmlType};

const QK_K: usize = 256;
const Q4K_BYTES: usize = 144;
const Q6K_BYTES: usize = 210;
/// `BlockQ8K` is `#[repr(C)] { d: f32, qs: [i8; 256], bsums: [i16; 16] }`; its fields are
/// private to candle, so they are read at these offsets.
const Q8K_BYTES: usize = 292;
const Q8K_QS: usize = 4;
const Q8K_BSUMS: usize = 260;
const _: () = assert!(std::mem::size_of::<BlockQ8K>() == Q8K_BYTES);

/// Rows of the weight matrix computed together, one per f32 lane.
const GROUP: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Q4K,
    Q6K,
}

/// Whether this CPU has the instructions the kernels need.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Activation rows a call takes at most (their accumulators live on the stack).
pub const MAX_ROWS: usize = 32;

/// Quantizes activation rows (`x` is `rows × k`) to Q8K blocks, exactly as candle does before
/// its kernels.
pub fn quantize_rows(x: &[f32]) -> Vec<BlockQ8K> {
    let mut blocks = vec![BlockQ8K::zeros(); x.len() / QK_K];
    BlockQ8K::from_float(x, &mut blocks);
    blocks
}

/// `outs[i] = x · matrices[i]ᵀ` for matrices of `k` columns given as (format, GGUF blocks) and
/// `rows` ≤ [`MAX_ROWS`] activation rows `x` quantized by [`quantize_rows`]; `outs[i]` is
/// `rows × n_i`, `n_i` a multiple of 8. All products share one pass of candle's thread pool,
/// 8 matrix rows per work item.
pub fn gemv_many(
    matrices: &[(Format, &[u8])],
    k: usize,
    x: &[BlockQ8K],
    rows: usize,
    outs: &mut [Vec<f32>],
) {
    let kb = k / QK_K;
    assert!(available() && rows <= MAX_ROWS && x.len() == rows * kb);
    assert!(matrices.len() == outs.len());
    // (first item, row bytes, weights, out) per matrix
    let mut parts = Vec::with_capacity(matrices.len());
    let mut items = 0;
    for (&(format, weights), out) in matrices.iter().zip(outs.iter_mut()) {
        let block_bytes = match format {
            Format::Q4K => Q4K_BYTES,
            Format::Q6K => Q6K_BYTES,
        };
        let n = out.len() / rows.max(1);
        assert!(n % GROUP == 0 && out.len() == rows * n && n * kb * block_bytes <= weights.len());
        parts.push((
            items,
            format,
            kb * block_bytes,
            weights,
            out.as_mut_ptr() as usize,
            n,
        ));
        items += n / GROUP;
    }
    let act = x.as_ptr() as usize;
    candle_core::utils::barrier_pool().execute_chunked(items, |range| {
        for item in range {
            let p = parts.partition_point(|part| part.0 <= item) - 1;
            let (first, format, row_bytes, weights, out, n) = parts[p];
            let g = item - first;
            let w = weights[g * GROUP * row_bytes..].as_ptr();
            let out = (out as *mut f32).wrapping_add(g * GROUP);
            let act = act as *const u8;
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `available()` checked the features; `w` starts 8 full matrix rows of
            // `kb` blocks, `act` holds `rows × kb` blocks, and each item writes only its own 8
            // columns of the `rows × n` output.
            unsafe {
                match format {
                    Format::Q4K => x86::q4k_rows8(w, row_bytes, kb, act, rows, out, n),
                    Format::Q6K => x86::q6k_rows8(w, row_bytes, kb, act, rows, out, n),
                }
            }
            #[cfg(not(target_arch = "x86_64"))]
            let _ = (w, row_bytes, format, act, out, n);
        }
    });
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::*;
    use core::arch::x86_64::*;

    /// Sums each of 8 vectors of 16 i16 (rows 0..8 of one Q4K sub-block, as `maddubs` leaves
    /// them) into i32 lane r of one vector. A Q4K sub-block's products are at most 15 · 128 per
    /// value, so 8 of the 16 lanes (30,720) still fit an i16 before the last widening add.
    #[inline(always)]
    unsafe fn sum_rows_i16(v: &[__m256i; 8]) -> __m256i {
        let x = _mm256_hadd_epi16(_mm256_hadd_epi16(v[0], v[1]), _mm256_hadd_epi16(v[2], v[3]));
        let y = _mm256_hadd_epi16(_mm256_hadd_epi16(v[4], v[5]), _mm256_hadd_epi16(v[6], v[7]));
        let z = _mm256_hadd_epi16(x, y);
        _mm256_add_epi32(
            _mm256_cvtepi16_epi32(_mm256_castsi256_si128(z)),
            _mm256_cvtepi16_epi32(_mm256_extracti128_si256(z, 1)),
        )
    }

    /// Rows 0..8 of two sub-blocks at once: vector r holds row r's sums of sub-block A in its
    /// low 128 bits and of sub-block B in its high 128 bits. Returns (A, B) with lane = row.
    #[inline(always)]
    unsafe fn sum_rows_pairs(v: &[__m256i; 8]) -> (__m256i, __m256i) {
        let x = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
        let y = _mm256_hadd_epi32(_mm256_hadd_epi32(v[4], v[5]), _mm256_hadd_epi32(v[6], v[7]));
        (
            _mm256_permute2x128_si256(x, y, 0x20),
            _mm256_permute2x128_si256(x, y, 0x31),
        )
    }

    /// Transposes 8 rows of 16 bytes: vector j of the result holds column 2j (rows 0..8) in
    /// its low 8 bytes and column 2j + 1 in its high 8 bytes.
    #[inline(always)]
    unsafe fn transpose_8x16(r: &[__m128i; 8]) -> [__m128i; 8] {
        let mut out = [_mm_setzero_si128(); 8];
        for (half, unpack) in [(0, false), (4, true)] {
            let pairs: [__m128i; 4] = std::array::from_fn(|k| {
                if unpack {
                    _mm_unpackhi_epi8(r[2 * k], r[2 * k + 1])
                } else {
                    _mm_unpacklo_epi8(r[2 * k], r[2 * k + 1])
                }
            });
            let c0 = _mm_unpacklo_epi16(pairs[0], pairs[1]);
            let c1 = _mm_unpackhi_epi16(pairs[0], pairs[1]);
            let c2 = _mm_unpacklo_epi16(pairs[2], pairs[3]);
            let c3 = _mm_unpackhi_epi16(pairs[2], pairs[3]);
            out[half] = _mm_unpacklo_epi32(c0, c2);
            out[half + 1] = _mm_unpackhi_epi32(c0, c2);
            out[half + 2] = _mm_unpacklo_epi32(c1, c3);
            out[half + 3] = _mm_unpackhi_epi32(c1, c3);
        }
        out
    }

    /// Column `c` (8 bytes) of [`transpose_8x16`]'s result, widened to 8 lanes.
    #[inline(always)]
    unsafe fn column_u8(t: &[__m128i; 8], c: usize) -> __m256 {
        let v = t[c / 2];
        let v = if c % 2 == 0 {
            v
        } else {
            _mm_unpackhi_epi64(v, v)
        };
        _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v))
    }

    #[inline(always)]
    unsafe fn column_i8(t: &[__m128i; 8], c: usize) -> __m256 {
        let v = t[c / 2];
        let v = if c % 2 == 0 {
            v
        } else {
            _mm_unpackhi_epi64(v, v)
        };
        _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v))
    }

    /// Asks for the same block of the row 8 rows on, which the next work item reads: the
    /// hardware prefetcher alone loses track of 8 interleaved rows (measured: 8 GB/s).
    #[inline(always)]
    unsafe fn prefetch_next_group(blk: *const u8, row_bytes: usize, block_bytes: usize) {
        let ahead = blk.wrapping_add(GROUP * row_bytes);
        let mut offset = 0;
        while offset < block_bytes {
            _mm_prefetch(ahead.wrapping_add(offset) as *const i8, _MM_HINT_T0);
            offset += 64;
        }
    }

    #[inline(always)]
    unsafe fn f16_at(p: *const u8) -> f32 {
        half::f16::from_bits(u16::from_le_bytes([*p, *p.add(1)])).to_f32()
    }

    /// The 6-bit scales and mins of a Q4K block as bytes `[sc0..sc8, m0..m8]` (ggml's layout).
    #[inline(always)]
    unsafe fn q4k_scales(p: *const u8) -> __m128i {
        let w =
            |i: usize| u32::from_le_bytes([*p.add(i), *p.add(i + 1), *p.add(i + 2), *p.add(i + 3)]);
        let (a, b, c) = (w(0), w(4), w(8));
        let sc_lo = a & 0x3f3f_3f3f;
        let sc_hi = (c & 0x0f0f_0f0f) | (((a >> 6) & 0x0303_0303) << 4);
        let mn_lo = b & 0x3f3f_3f3f;
        let mn_hi = ((c >> 4) & 0x0f0f_0f0f) | (((b >> 6) & 0x0303_0303) << 4);
        _mm_set_epi32(mn_hi as i32, mn_lo as i32, sc_hi as i32, sc_lo as i32)
    }

    /// 8 matrix rows (`w`, `row_bytes` apart) times `m` activation rows (`act`, `kb` blocks
    /// each) into `out[i * n + r]`.
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn q4k_rows8(
        w: *const u8,
        row_bytes: usize,
        kb: usize,
        act: *const u8,
        m: usize,
        out: *mut f32,
        n: usize,
    ) {
        let mask = _mm256_set1_epi8(0x0F);
        let mut acc = [_mm256_setzero_ps(); MAX_ROWS];
        for b in 0..kb {
            let mut d = [0f32; GROUP];
            let mut dmin = [0f32; GROUP];
            let mut packed = [_mm_setzero_si128(); GROUP];
            for r in 0..GROUP {
                let blk = w.add(r * row_bytes + b * Q4K_BYTES);
                prefetch_next_group(blk, row_bytes, Q4K_BYTES);
                d[r] = f16_at(blk);
                dmin[r] = f16_at(blk.add(2));
                packed[r] = q4k_scales(blk.add(4));
            }
            // column s: the scale of sub-block s in each row; column 8 + s: its min
            let scales_mins = transpose_8x16(&packed);
            let dv = _mm256_loadu_ps(d.as_ptr());
            let dminv = _mm256_loadu_ps(dmin.as_ptr());
            // the tiles' per-row f32 scales and mins: d * sc, dmin * m
            let scales: [__m256; 8] =
                std::array::from_fn(|s| _mm256_mul_ps(dv, column_u8(&scales_mins, s)));
            let mins: [__m256; 8] =
                std::array::from_fn(|s| _mm256_mul_ps(dminv, column_u8(&scales_mins, 8 + s)));
            for c in 0..4 {
                // the 8 rows' 4-bit values of sub-blocks 2c (low nibbles) and 2c + 1, unpacked
                // once for all activation rows
                let mut lo = [_mm256_setzero_si256(); GROUP];
                let mut hi = [_mm256_setzero_si256(); GROUP];
                for r in 0..GROUP {
                    let q = _mm256_loadu_si256(
                        w.add(r * row_bytes + b * Q4K_BYTES + 16 + c * 32) as *const __m256i
                    );
                    lo[r] = _mm256_and_si256(q, mask);
                    hi[r] = _mm256_and_si256(_mm256_srli_epi16(q, 4), mask);
                }
                for (i, acc) in acc.iter_mut().enumerate().take(m) {
                    let a = act.add((i * kb + b) * Q8K_BYTES);
                    let dall = *(a as *const f32);
                    let aq = a.add(Q8K_QS);
                    let bsums = a.add(Q8K_BSUMS) as *const i16;
                    let a_lo = _mm256_loadu_si256(aq.add(c * 64) as *const __m256i);
                    let a_hi = _mm256_loadu_si256(aq.add(c * 64 + 32) as *const __m256i);
                    let dallv = _mm256_set1_ps(dall);
                    for (s, q, a) in [(2 * c, &lo, a_lo), (2 * c + 1, &hi, a_hi)] {
                        let products: [__m256i; GROUP] =
                            std::array::from_fn(|r| _mm256_maddubs_epi16(q[r], a));
                        let isum = sum_rows_i16(&products);
                        *acc = _mm256_fmadd_ps(
                            _mm256_cvtepi32_ps(isum),
                            _mm256_mul_ps(scales[s], dallv),
                            *acc,
                        );
                        let bsum = (*bsums.add(2 * s) as i32 + *bsums.add(2 * s + 1) as i32) as f32;
                        *acc = _mm256_fnmadd_ps(mins[s], _mm256_set1_ps(dall * bsum), *acc);
                    }
                }
            }
        }
        for (i, acc) in acc.iter().enumerate().take(m) {
            _mm256_storeu_ps(out.add(i * n), *acc);
        }
    }

    /// As [`q4k_rows8`], for Q6K blocks.
    #[target_feature(enable = "avx2,fma")]
    // `r` picks one row in each of the four unpacked arrays
    #[allow(clippy::too_many_arguments, clippy::needless_range_loop)]
    pub unsafe fn q6k_rows8(
        w: *const u8,
        row_bytes: usize,
        kb: usize,
        act: *const u8,
        m: usize,
        out: *mut f32,
        n: usize,
    ) {
        let m4 = _mm256_set1_epi8(0x0F);
        let m2 = _mm256_set1_epi8(0x03);
        let m2_2 = _mm256_set1_epi8(0x0C);
        let m2_4 = _mm256_set1_epi8(0x30);
        let m2_6 = _mm256_set1_epi8(0xC0u8 as i8);
        let ones = _mm256_set1_epi16(1);
        let mut acc = [_mm256_setzero_ps(); MAX_ROWS];
        for b in 0..kb {
            let mut d = [0f32; GROUP];
            let mut packed = [_mm_setzero_si128(); GROUP];
            for r in 0..GROUP {
                let blk = w.add(r * row_bytes + b * Q6K_BYTES);
                prefetch_next_group(blk, row_bytes, Q6K_BYTES);
                d[r] = f16_at(blk.add(208));
                packed[r] = _mm_loadu_si128(blk.add(192) as *const __m128i);
            }
            // column s: the scale of sub-block s in each row
            let columns = transpose_8x16(&packed);
            let dv = _mm256_loadu_ps(d.as_ptr());
            // the tiles' per-row f32 scales: d * sc
            let scales: [__m256; 16] =
                std::array::from_fn(|s| _mm256_mul_ps(dv, column_i8(&columns, s)));
            for h in 0..2 {
                // values[j][r]: row r's 6-bit values of sub-blocks h·8 + 2j and h·8 + 2j + 1,
                // unpacked once for all activation rows
                let mut values = [[_mm256_setzero_si256(); GROUP]; 4];
                for r in 0..GROUP {
                    let blk = w.add(r * row_bytes + b * Q6K_BYTES);
                    let ql_a = _mm256_loadu_si256(blk.add(h * 64) as *const __m256i);
                    let ql_b = _mm256_loadu_si256(blk.add(h * 64 + 32) as *const __m256i);
                    let qh = _mm256_loadu_si256(blk.add(128 + h * 32) as *const __m256i);
                    values[0][r] = _mm256_or_si256(
                        _mm256_and_si256(ql_a, m4),
                        _mm256_slli_epi16(_mm256_and_si256(qh, m2), 4),
                    );
                    values[1][r] = _mm256_or_si256(
                        _mm256_and_si256(ql_b, m4),
                        _mm256_slli_epi16(_mm256_and_si256(qh, m2_2), 2),
                    );
                    values[2][r] = _mm256_or_si256(
                        _mm256_and_si256(_mm256_srli_epi16(ql_a, 4), m4),
                        _mm256_and_si256(qh, m2_4),
                    );
                    values[3][r] = _mm256_or_si256(
                        _mm256_and_si256(_mm256_srli_epi16(ql_b, 4), m4),
                        _mm256_srli_epi16(_mm256_and_si256(qh, m2_6), 2),
                    );
                }
                for (i, acc) in acc.iter_mut().enumerate().take(m) {
                    let a = act.add((i * kb + b) * Q8K_BYTES);
                    let dall = *(a as *const f32);
                    let aq = a.add(Q8K_QS);
                    let bsums = a.add(Q8K_BSUMS) as *const i16;
                    let dallv = _mm256_set1_ps(dall);
                    for (j, v) in values.iter().enumerate() {
                        let av = _mm256_loadu_si256(aq.add(h * 128 + j * 32) as *const __m256i);
                        let parts: [__m256i; GROUP] = std::array::from_fn(|r| {
                            _mm256_madd_epi16(_mm256_maddubs_epi16(v[r], av), ones)
                        });
                        let (isum_a, isum_b) = sum_rows_pairs(&parts);
                        for (s, isum) in [(h * 8 + 2 * j, isum_a), (h * 8 + 2 * j + 1, isum_b)] {
                            let bsum = *bsums.add(s) as f32;
                            let f = _mm256_sub_ps(
                                _mm256_cvtepi32_ps(isum),
                                _mm256_set1_ps(32.0 * bsum),
                            );
                            *acc = _mm256_fmadd_ps(f, _mm256_mul_ps(scales[s], dallv), *acc);
                        }
                    }
                }
            }
        }
        for (i, acc) in acc.iter().enumerate().take(m) {
            _mm256_storeu_ps(out.add(i * n), *acc);
        }
    }
}
