//! One or a few activation rows (decoding steps) times a Q4K or Q6K matrix, read straight from the
//! GGUF blocks.
//!
//! Written here because candle's x86 kernels multiply by tiles repacked for many rows, which
//! hold 1.33× (Q4K) and 1.5× (Q6K) the GGUF bytes, and decoding one or two rows is bound by
//! the bytes it reads. Each block of 8 matrix rows (16 for Q4K with AVX-512) is unpacked once
//! for all activation rows, but the per-row horizontal sums make it slower than the tiles
//! from 3 rows on (figures in `qweight`), so it takes at most 2 rows there.
//! The result is bit-identical to candle's tiled kernels (AVX2, AVX-VNNI and AVX-512 tiers
//! alike): the integer dot product of each 32 (Q4K) or 16 (Q6K) values is exact, and the
//! float operations that scale and accumulate them are the very same ones in the same order,
//! whatever the number of rows. So a sequence decodes to the same tokens alone or in a batch.

use candle_core::quantized::k_quants::BlockQ8K;

pub(super) use super::activations::{Q8K_BSUMS, Q8K_BYTES, Q8K_QS, QK_K};
use crate::engine::pool::{for_each_guided, UnzeroedOutputs};
pub(super) const Q4K_BYTES: usize = 144;
pub(super) const Q6K_BYTES: usize = 210;

/// Rows of the weight matrix computed together, one per f32 lane.
const GROUP: usize = 8;
/// The same with AVX-512 (Q4K only).
const GROUP16: usize = 16;

/// Which kernel multiplies a matrix.
#[derive(Debug, Clone, Copy)]
enum Kernel {
    Q4kRows8,
    Q4kRows16,
    Q6kRows8,
}

impl Kernel {
    /// Q6K stays on 8 rows: a 16-row AVX-512 form was slower from memory (ffn_down 8.4
    /// against 7.0 ms a step) though faster from cache, and was dropped.
    fn for_format(format: Format, wide_q4k: bool) -> Self {
        match (format, wide_q4k) {
            (Format::Q4K, true) => Kernel::Q4kRows16,
            (Format::Q4K, false) => Kernel::Q4kRows8,
            (Format::Q6K, _) => Kernel::Q6kRows8,
        }
    }

    /// Matrix rows per work item.
    fn rows(self) -> usize {
        match self {
            Kernel::Q4kRows16 => GROUP16,
            Kernel::Q4kRows8 | Kernel::Q6kRows8 => GROUP,
        }
    }
}

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

/// Whether this CPU has the AVX-512 instructions of the 16-row kernels.
pub fn wide() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vnni")
            && is_x86_feature_detected!("f16c")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Activation rows a call takes at most (their accumulators live on the stack).
pub const MAX_ROWS: usize = 32;

/// `x · matrices[i]ᵀ` for matrices of `k` columns given as (format, GGUF blocks of `n_i`
/// whole rows) and `rows` ≤ [`MAX_ROWS`] activation rows `x` quantized by
/// [`quantize_rows`](super::activations::quantize_rows): one `rows × n_i` output per matrix,
/// `n_i` a multiple of 16. All products share one pass of candle's thread pool, 16 matrix rows
/// per work item with AVX-512, else 8.
pub fn gemv_many(
    matrices: &[(Format, &[u8])],
    k: usize,
    x: &[BlockQ8K],
    rows: usize,
) -> Vec<Vec<f32>> {
    gemv_many_with(wide(), matrices, k, x, rows)
}

/// [`gemv_many`], with the AVX-512 Q4K kernel or not (`wide_q4k`, which needs [`wide`]).
fn gemv_many_with(
    wide_q4k: bool,
    matrices: &[(Format, &[u8])],
    k: usize,
    x: &[BlockQ8K],
    rows: usize,
) -> Vec<Vec<f32>> {
    let kb = k / QK_K;
    assert!(available() && (!wide_q4k || wide()) && rows <= MAX_ROWS && x.len() == rows * kb);
    // (first item, kernel, row bytes, weights, out, n) per matrix
    let mut parts = Vec::with_capacity(matrices.len());
    let mut outs = UnzeroedOutputs::new();
    let mut items = 0;
    for &(format, weights) in matrices {
        let kernel = Kernel::for_format(format, wide_q4k);
        let block_bytes = match format {
            Format::Q4K => Q4K_BYTES,
            Format::Q6K => Q6K_BYTES,
        };
        let n = weights.len() / (kb * block_bytes);
        assert!(n.is_multiple_of(kernel.rows()) && n * kb * block_bytes == weights.len());
        parts.push((
            items,
            kernel,
            kb * block_bytes,
            weights,
            outs.push(rows * n),
            n,
        ));
        items += n / kernel.rows();
    }
    let act = x.as_ptr() as usize;
    for_each_guided(items, 1, |range| {
        for item in range {
            let p = parts.partition_point(|part| part.0 <= item) - 1;
            let (first, kernel, row_bytes, weights, out, n) = parts[p];
            let g = item - first;
            let w = weights[g * kernel.rows() * row_bytes..].as_ptr();
            let out = (out as *mut f32).wrapping_add(g * kernel.rows());
            let act = act as *const u8;
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `available()` and `wide()` checked the features; `w` starts
            // `kernel.rows()` full matrix rows of `kb` blocks, `act` holds `rows × kb` blocks,
            // and each item writes only its own `kernel.rows()` columns of the `rows × n` output.
            unsafe {
                match kernel {
                    Kernel::Q4kRows16 => x86_512::q4k_rows16(w, row_bytes, kb, act, rows, out, n),
                    Kernel::Q4kRows8 => x86::q4k_rows8(w, row_bytes, kb, act, rows, out, n),
                    Kernel::Q6kRows8 => x86::q6k_rows8(w, row_bytes, kb, act, rows, out, n),
                }
            }
            #[cfg(not(target_arch = "x86_64"))]
            let _ = (w, row_bytes, kernel, act, out, n);
        }
    });
    // SAFETY: the items cover every `kernel.rows()` columns of every row of each output.
    unsafe { outs.assume_filled() }
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
        let v = if c.is_multiple_of(2) {
            v
        } else {
            _mm_unpackhi_epi64(v, v)
        };
        _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v))
    }

    #[inline(always)]
    unsafe fn column_i8(t: &[__m128i; 8], c: usize) -> __m256 {
        let v = t[c / 2];
        let v = if c.is_multiple_of(2) {
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

/// The Q4K product with AVX-512: 16 matrix rows per work item, one per f32 lane, and
/// `vpdpbusd` for the integer dot products, which leaves far fewer shuffles for the
/// horizontal sums than `maddubs` and `hadd`. Lane by lane the float operations are those of
/// the AVX2 kernel above, so the results are the same bits.
#[cfg(target_arch = "x86_64")]
mod x86_512 {
    use super::*;
    use core::arch::x86_64::*;

    /// The 16 bytes at `blocks` and at each of the next 15 rows (`row_bytes` apart), as four
    /// vectors of dwords: vector p holds dword p of every row, lane = row.
    #[inline(always)]
    unsafe fn dwords_of_rows(blocks: *const u8, row_bytes: usize) -> [__m512i; 4] {
        let head = |r: usize| _mm_loadu_si128(blocks.add(r * row_bytes) as *const __m128i);
        // vector q, 128-bit lane l: row 4l + q, so that the transpose below puts rows in order
        let z: [__m512i; 4] = std::array::from_fn(|q| {
            let v = _mm512_castsi128_si512(head(q));
            let v = _mm512_inserti32x4::<1>(v, head(4 + q));
            let v = _mm512_inserti32x4::<2>(v, head(8 + q));
            _mm512_inserti32x4::<3>(v, head(12 + q))
        });
        let t01_lo = _mm512_unpacklo_epi32(z[0], z[1]);
        let t01_hi = _mm512_unpackhi_epi32(z[0], z[1]);
        let t23_lo = _mm512_unpacklo_epi32(z[2], z[3]);
        let t23_hi = _mm512_unpackhi_epi32(z[2], z[3]);
        [
            _mm512_unpacklo_epi64(t01_lo, t23_lo),
            _mm512_unpackhi_epi64(t01_lo, t23_lo),
            _mm512_unpacklo_epi64(t01_hi, t23_hi),
            _mm512_unpackhi_epi64(t01_hi, t23_hi),
        ]
    }

    /// Byte `j` of each dword, zero-extended, as f32.
    #[inline(always)]
    unsafe fn byte_u8(v: __m512i, j: usize) -> __m512 {
        let shifted = _mm512_srlv_epi32(v, _mm512_set1_epi32(8 * j as i32));
        _mm512_cvtepi32_ps(_mm512_and_si512(shifted, _mm512_set1_epi32(0xFF)))
    }

    /// Sums groups of 4 i32 lanes of 16 vectors (one per matrix row): 128-bit lane k of
    /// result q holds, in lane l, row 4q + l's sum of its lanes 4k..4k+4.
    #[inline(always)]
    unsafe fn sum_quads(v: &[__m512i; GROUP16]) -> [__m512i; 4] {
        let pairs: [__m512i; 8] = std::array::from_fn(|p| {
            _mm512_add_epi32(
                _mm512_unpacklo_epi32(v[2 * p], v[2 * p + 1]),
                _mm512_unpackhi_epi32(v[2 * p], v[2 * p + 1]),
            )
        });
        std::array::from_fn(|q| {
            _mm512_add_epi32(
                _mm512_unpacklo_epi64(pairs[2 * q], pairs[2 * q + 1]),
                _mm512_unpackhi_epi64(pairs[2 * q], pairs[2 * q + 1]),
            )
        })
    }

    /// Two Q4K sub-blocks: each row's vector holds 8 partial sums of sub-block A, then 8 of
    /// B. Returns (A, B), lane = row.
    #[inline(always)]
    unsafe fn sum_halves(v: &[__m512i; GROUP16]) -> (__m512i, __m512i) {
        let s = sum_quads(v);
        // [A rows 0-3, B rows 0-3, A rows 4-7, B rows 4-7], and rows 8-15 likewise
        let low = _mm512_add_epi32(
            _mm512_shuffle_i32x4::<0x88>(s[0], s[1]),
            _mm512_shuffle_i32x4::<0xDD>(s[0], s[1]),
        );
        let high = _mm512_add_epi32(
            _mm512_shuffle_i32x4::<0x88>(s[2], s[3]),
            _mm512_shuffle_i32x4::<0xDD>(s[2], s[3]),
        );
        (
            _mm512_shuffle_i32x4::<0x88>(low, high),
            _mm512_shuffle_i32x4::<0xDD>(low, high),
        )
    }

    /// Asks for the `b`-th of `kb` equal slices of the next work item's 16 rows, which lie
    /// in one run of memory: read in address order, not row by row, as the DRAM likes it.
    #[inline(always)]
    unsafe fn prefetch_next_group(w: *const u8, row_bytes: usize, b: usize, kb: usize) {
        let slice = GROUP16 * row_bytes / kb;
        let ahead = w.wrapping_add(GROUP16 * row_bytes + b * slice);
        let mut offset = 0;
        while offset < slice {
            _mm_prefetch(ahead.wrapping_add(offset) as *const i8, _MM_HINT_T0);
            offset += 64;
        }
    }

    /// f16 lanes in the low halves of each dword, as f32.
    #[inline(always)]
    unsafe fn low_f16(v: __m512i) -> __m512 {
        _mm512_cvtph_ps(_mm512_cvtepi32_epi16(v))
    }

    /// A 256-bit value in both halves of a vector.
    #[inline(always)]
    unsafe fn twice(p: *const u8) -> __m512i {
        _mm512_broadcast_i64x4(_mm256_loadu_si256(p as *const __m256i))
    }

    /// `v` in the low 256 bits and `w` in the high, per 16-bit lane.
    #[inline(always)]
    unsafe fn halves_epi16(v: i16, w: i16) -> __m512i {
        _mm512_inserti64x4::<1>(_mm512_set1_epi16(v), _mm256_set1_epi16(w))
    }

    /// As [`super::x86::q4k_rows8`], for 16 matrix rows.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni,f16c")]
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn q4k_rows16(
        w: *const u8,
        row_bytes: usize,
        kb: usize,
        act: *const u8,
        m: usize,
        out: *mut f32,
        n: usize,
    ) {
        let mask = _mm512_set1_epi8(0x0F);
        // the high half of each row's 32 bytes gives the upper nibbles
        let nibble_shift = halves_epi16(0, 4);
        let zero = _mm512_setzero_si512();
        let mut acc = [_mm512_setzero_ps(); MAX_ROWS];
        for b in 0..kb {
            let blocks = w.add(b * Q4K_BYTES);
            prefetch_next_group(w, row_bytes, b, kb);
            let [dm, a, bw, c] = dwords_of_rows(blocks, row_bytes);
            let dv = low_f16(dm);
            let dminv = low_f16(_mm512_srli_epi32::<16>(dm));
            // ggml's 6-bit scales and mins: bytes of sc_lo, sc_hi and mn_lo, mn_hi
            let low6 = _mm512_set1_epi32(0x3f3f_3f3f);
            let low4 = _mm512_set1_epi32(0x0f0f_0f0f);
            let low2 = _mm512_set1_epi32(0x0303_0303);
            let sc_lo = _mm512_and_si512(a, low6);
            let sc_hi = _mm512_or_si512(
                _mm512_and_si512(c, low4),
                _mm512_slli_epi32::<4>(_mm512_and_si512(_mm512_srli_epi32::<6>(a), low2)),
            );
            let mn_lo = _mm512_and_si512(bw, low6);
            let mn_hi = _mm512_or_si512(
                _mm512_and_si512(_mm512_srli_epi32::<4>(c), low4),
                _mm512_slli_epi32::<4>(_mm512_and_si512(_mm512_srli_epi32::<6>(bw), low2)),
            );
            let pick = |lo, hi, s: usize| byte_u8(if s < 4 { lo } else { hi }, s % 4);
            let scales: [__m512; 8] =
                std::array::from_fn(|s| _mm512_mul_ps(dv, pick(sc_lo, sc_hi, s)));
            let mins: [__m512; 8] =
                std::array::from_fn(|s| _mm512_mul_ps(dminv, pick(mn_lo, mn_hi, s)));
            for c in 0..4 {
                // each row's 4-bit values of sub-blocks 2c (low half) and 2c + 1 (high half)
                let q: [__m512i; GROUP16] = std::array::from_fn(|r| {
                    let bytes = twice(blocks.add(r * row_bytes + 16 + c * 32));
                    _mm512_and_si512(_mm512_srlv_epi16(bytes, nibble_shift), mask)
                });
                for (i, acc) in acc.iter_mut().enumerate().take(m) {
                    let a = act.add((i * kb + b) * Q8K_BYTES);
                    let dall = *(a as *const f32);
                    let bsums = a.add(Q8K_BSUMS) as *const i16;
                    let av = _mm512_loadu_si512(a.add(Q8K_QS + c * 64) as *const _);
                    let products: [__m512i; GROUP16] =
                        std::array::from_fn(|r| _mm512_dpbusd_epi32(zero, q[r], av));
                    let (sum_a, sum_b) = sum_halves(&products);
                    let dallv = _mm512_set1_ps(dall);
                    for (s, isum) in [(2 * c, sum_a), (2 * c + 1, sum_b)] {
                        *acc = _mm512_fmadd_ps(
                            _mm512_cvtepi32_ps(isum),
                            _mm512_mul_ps(scales[s], dallv),
                            *acc,
                        );
                        let bsum = (*bsums.add(2 * s) as i32 + *bsums.add(2 * s + 1) as i32) as f32;
                        *acc = _mm512_fnmadd_ps(mins[s], _mm512_set1_ps(dall * bsum), *acc);
                    }
                }
            }
        }
        for (i, acc) in acc.iter().enumerate().take(m) {
            _mm512_storeu_ps(out.add(i * n), *acc);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::{GgmlDType, QTensor};
    use candle_core::{Device, Tensor};

    /// The AVX-512 Q4K kernel against the AVX2 one, bit for bit (the other tests compare
    /// whichever this CPU picks with candle's tiles).
    #[test]
    fn both_q4k_kernels_give_the_same_bits() -> candle_core::Result<()> {
        if !(available() && wide()) {
            return Ok(());
        }
        let (n, k) = (48, 768);
        let w = Tensor::randn(0f32, 1.0, (n, k), &Device::Cpu)?;
        let q = QTensor::quantize(&w, GgmlDType::Q4K)?;
        let bytes = q.data()?;
        for rows in [1, 2, 7] {
            let xs = (Tensor::randn(0f32, 1.0, (rows, k), &Device::Cpu)? * 3.0)?;
            let act =
                super::super::activations::quantize_rows(&xs.flatten_all()?.to_vec1::<f32>()?);
            let run =
                |wide| gemv_many_with(wide, &[(Format::Q4K, &bytes)], k, &act, rows).remove(0);
            let (narrow, wide) = (run(false), run(true));
            assert!(narrow
                .iter()
                .zip(&wide)
                .all(|(a, b)| a.to_bits() == b.to_bits()));
        }
        Ok(())
    }
}
