//! Many activation rows (prefill, decoding batches of three rows or more) times a Q4K or Q6K
//! matrix with AVX-512 VNNI integer dot products: the weights are repacked once into tiles of
//! 16 matrix rows, and each tile's 4-bit or 6-bit values are unpacked once for 8 activation
//! rows whose sums stay in registers.
//!
//! Written here because candle's tiled kernel keeps the sums of a run-time number of rows (at
//! most 4) in arrays the compiler leaves in memory: it ran at about a quarter of the dot
//! product instructions' rate on the sample run's prompts (figures in the README). The float
//! operations that scale and accumulate each sub-block's exact integer sum are candle's, in
//! candle's order, so every output is bit-identical to candle's tiles (AVX-512 VNNI and AMX
//! alike) and to [`gemv`](super::gemv): a prompt gives the same tokens whatever kernel its
//! rows went through.

use candle_core::quantized::k_quants::BlockQ8K;

use crate::engine::pool::{for_each_guided, UnzeroedOutputs};

// GGUF block sizes and `BlockQ8K` field offsets, as `gemv` reads them (it checks the size).
use super::activations::{Q8K_BSUMS, Q8K_BYTES, Q8K_QS, QK_K};
use super::gemv::{Format, Q4K_BYTES, Q6K_BYTES};

/// Matrix rows per tile: one f32 lane each.
const TILE: usize = 16;
/// Activation rows per kernel call, their sums and accumulators held in registers.
const ROWS: usize = 8;
/// Activation bytes a work item keeps in cache while it walks the matrix's tiles.
const CHUNK_BYTES: usize = 1 << 20;

/// One superblock (256 columns) of 16 matrix rows: per sub-block f32 scales and mins as
/// candle's tiles compute them (`d * sc`, `dmin * m`), and the 4-bit values: bytes
/// `[8-column group][row][4]`, low nibble column `8g + j`, high nibble `8g + j + 4`.
#[repr(C, align(64))]
struct TileQ4K {
    scales: [[f32; TILE]; 8],
    mins: [[f32; TILE]; 8],
    qs: [u8; QK_K / 8 * TILE * 4],
}

/// One superblock of 16 matrix rows: per 16-column sub-block scales (`d * sc`) and the 6-bit
/// values as bytes 0..63 (the weight is the value less 32), `[4-column group][row][4]`.
#[repr(C, align(64))]
struct TileQ6K {
    scales: [[f32; TILE]; 16],
    qs: [u8; QK_K / 4 * TILE * 4],
}

// Whole cache lines (3,072 and 5,120 bytes), so the prefetches below cover a tile exactly.
const _: () = assert!(std::mem::size_of::<TileQ4K>() == 48 * 64);
const _: () = assert!(std::mem::size_of::<TileQ6K>() == 80 * 64);

enum Tiles {
    Q4K(Vec<TileQ4K>),
    Q6K(Vec<TileQ6K>),
}

/// A `n × k` matrix repacked for [`gemm_many`]: tile `t * kb + b` holds rows `16t..16t + 16`
/// of superblock `b`.
pub struct PackedMatrix {
    n: usize,
    k: usize,
    tiles: Tiles,
}

/// Whether this CPU runs these kernels (AVX-512 with VNNI; elsewhere candle's tiles serve).
pub fn available() -> bool {
    super::gemv::wide()
}

fn f16_at(bytes: &[u8], at: usize) -> f32 {
    half::f16::from_bits(u16::from_le_bytes([bytes[at], bytes[at + 1]])).to_f32()
}

/// ggml's 6-bit scale and min of sub-block `j` from a Q4K block's 12 scale bytes.
fn q4k_scale_min(j: usize, s: &[u8]) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        (
            (s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4),
            (s[j + 4] >> 4) | ((s[j] >> 6) << 4),
        )
    }
}

impl PackedMatrix {
    /// Repacks the GGUF blocks of an `n × k` matrix (`n` a multiple of 16, `k` of 256).
    pub fn pack(format: Format, blocks: &[u8], n: usize, k: usize) -> Self {
        assert!(n.is_multiple_of(TILE) && k.is_multiple_of(QK_K));
        let kb = k / QK_K;
        let tiles = match format {
            Format::Q4K => {
                assert!(blocks.len() >= n * kb * Q4K_BYTES);
                Tiles::Q4K(every_tile(n, kb, |t, b| pack_q4k(blocks, kb, t, b)))
            }
            Format::Q6K => {
                assert!(blocks.len() >= n * kb * Q6K_BYTES);
                Tiles::Q6K(every_tile(n, kb, |t, b| pack_q6k(blocks, kb, t, b)))
            }
        };
        PackedMatrix { n, k, tiles }
    }

    pub fn rows(&self) -> usize {
        self.n
    }
}

/// `pack(t, b)` for every tile of an `n`-row matrix of `kb` superblocks, tile `t * kb + b`
/// holding rows `16t..16t + 16` of superblock `b`, on the CPU pool's threads (a gigabyte of
/// weights is repacked on first use, while decoding waits).
fn every_tile<T: Send>(n: usize, kb: usize, pack: impl Fn(usize, usize) -> T + Sync) -> Vec<T> {
    // sized up front: a collected flat_map grew by doubling, copying up to 200 MB a matrix
    let count = n / TILE * kb;
    let mut tiles: Vec<T> = Vec::with_capacity(count);
    let base = tiles.as_mut_ptr() as usize;
    candle_core::utils::barrier_pool().execute_chunked(count, |items| {
        for i in items {
            // SAFETY: within the capacity; each item writes only its own tile, once.
            unsafe { (base as *mut T).add(i).write(pack(i / kb, i % kb)) };
        }
    });
    // SAFETY: every one of the `count` tiles was written above.
    unsafe { tiles.set_len(count) };
    tiles
}

fn pack_q4k(blocks: &[u8], kb: usize, t: usize, b: usize) -> TileQ4K {
    let mut tile = TileQ4K {
        scales: [[0.0; TILE]; 8],
        mins: [[0.0; TILE]; 8],
        qs: [0; QK_K / 8 * TILE * 4],
    };
    for r in 0..TILE {
        let blk = &blocks[((t * TILE + r) * kb + b) * Q4K_BYTES..][..Q4K_BYTES];
        let (d, dmin) = (f16_at(blk, 0), f16_at(blk, 2));
        for sub in 0..8 {
            let (sc, mn) = q4k_scale_min(sub, &blk[4..16]);
            tile.scales[sub][r] = d * sc as f32;
            tile.mins[sub][r] = dmin * mn as f32;
        }
        // 32-byte chunk c holds columns [64c, 64c + 32) in its low nibbles, the next 32 in
        // its high nibbles
        let qs = &blk[16..];
        let value = |col: usize| {
            let byte = qs[col / 64 * 32 + col % 32];
            if col % 64 < 32 {
                byte & 0x0F
            } else {
                byte >> 4
            }
        };
        for g in 0..QK_K / 8 {
            for j in 0..4 {
                tile.qs[(g * TILE + r) * 4 + j] = value(8 * g + j) | (value(8 * g + j + 4) << 4);
            }
        }
    }
    tile
}

fn pack_q6k(blocks: &[u8], kb: usize, t: usize, b: usize) -> TileQ6K {
    let mut tile = TileQ6K {
        scales: [[0.0; TILE]; 16],
        qs: [0; QK_K / 4 * TILE * 4],
    };
    for r in 0..TILE {
        let blk = &blocks[((t * TILE + r) * kb + b) * Q6K_BYTES..][..Q6K_BYTES];
        let (ql, qh, scales) = (&blk[..128], &blk[128..192], &blk[192..208]);
        let d = f16_at(blk, 208);
        for (sub, &scale) in scales.iter().enumerate() {
            tile.scales[sub][r] = d * (scale as i8) as f32;
        }
        // ggml's layout: 128-column halves, low 4 bits in ql, high 2 bits in qh
        let mut vals = [0u8; QK_K];
        for h in 0..2 {
            let (ql, qh) = (&ql[h * 64..], &qh[h * 32..]);
            for j in 0..32 {
                vals[h * 128 + j] = (ql[j] & 0x0F) | ((qh[j] & 3) << 4);
                vals[h * 128 + j + 32] = (ql[j + 32] & 0x0F) | (((qh[j] >> 2) & 3) << 4);
                vals[h * 128 + j + 64] = (ql[j] >> 4) | (((qh[j] >> 4) & 3) << 4);
                vals[h * 128 + j + 96] = (ql[j + 32] >> 4) | (((qh[j] >> 6) & 3) << 4);
            }
        }
        for g in 0..QK_K / 4 {
            for j in 0..4 {
                tile.qs[(g * TILE + r) * 4 + j] = vals[g * 4 + j];
            }
        }
    }
    tile
}

/// `x · matrices[i]ᵀ` for `rows` activation rows `x` (quantized by
/// [`activations::quantize_rows`](super::activations::quantize_rows)) and matrices of the same
/// `k`: one `rows × n_i` output per matrix. All products share one pass of candle's thread
/// pool; a work item is one tile column of one matrix for a chunk of rows small enough to
/// stay in cache, the chunks of one product as even as `ROWS` allows.
pub fn gemm_many(matrices: &[&PackedMatrix], x: &[BlockQ8K], rows: usize) -> Vec<Vec<f32>> {
    assert!(available() && !matrices.is_empty());
    let k = matrices[0].k;
    let kb = k / QK_K;
    assert!(x.len() == rows * kb);
    let most = (CHUNK_BYTES / (kb * Q8K_BYTES)).clamp(ROWS, 256) / ROWS * ROWS;
    let chunks = rows.div_ceil(most);
    let chunk = rows.div_ceil(chunks.max(1)).div_ceil(ROWS) * ROWS;
    // (first item, matrix, out) per matrix
    let mut parts = Vec::with_capacity(matrices.len());
    let mut outs = UnzeroedOutputs::new();
    let mut items = 0;
    for m in matrices {
        assert!(m.k == k);
        parts.push((items, *m, outs.push(rows * m.n)));
        items += chunks * (m.n / TILE);
    }
    let act = x.as_ptr() as usize;
    let row_bytes = kb * Q8K_BYTES;
    for_each_guided(items, 1, |range| {
        for item in range {
            let p = parts.partition_point(|part| part.0 <= item) - 1;
            let (first, matrix, out) = parts[p];
            let n_tiles = matrix.n / TILE;
            let (c, t) = ((item - first) / n_tiles, (item - first) % n_tiles);
            let end = rows.min((c + 1) * chunk);
            let mut r0 = c * chunk;
            while r0 < end {
                let count = (end - r0).min(ROWS);
                let act = (act as *const u8).wrapping_add(r0 * row_bytes);
                let out = (out as *mut f32).wrapping_add(r0 * matrix.n + t * TILE);
                // SAFETY: `available()` checked the features; the tiles of column `t` are
                // `kb` long, `act` holds `count` rows of `kb` blocks, and each item writes only
                // its own 16 columns of its own rows.
                #[cfg(target_arch = "x86_64")]
                unsafe {
                    match &matrix.tiles {
                        Tiles::Q4K(tiles) => {
                            x86::q4k(&tiles[t * kb..][..kb], act, row_bytes, count, out, matrix.n)
                        }
                        Tiles::Q6K(tiles) => {
                            x86::q6k(&tiles[t * kb..][..kb], act, row_bytes, count, out, matrix.n)
                        }
                    }
                }
                #[cfg(not(target_arch = "x86_64"))]
                let _ = (act, out, count);
                r0 += count;
            }
        }
    });
    // SAFETY: the items cover every tile column of every row chunk of each output.
    unsafe { outs.assume_filled() }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::*;
    use core::arch::x86_64::*;

    /// 4 activation bytes at `p`, broadcast to every 32-bit lane.
    #[inline(always)]
    unsafe fn bcast4(p: *const u8) -> __m512i {
        _mm512_set1_epi32((p as *const i32).read_unaligned())
    }

    /// Dispatches `count` (1..=8) rows to the kernel compiled for that many.
    macro_rules! by_rows {
        ($kernel:ident, $count:expr, $($arg:expr),*) => {
            match $count {
                1 => $kernel::<1>($($arg),*),
                2 => $kernel::<2>($($arg),*),
                3 => $kernel::<3>($($arg),*),
                4 => $kernel::<4>($($arg),*),
                5 => $kernel::<5>($($arg),*),
                6 => $kernel::<6>($($arg),*),
                7 => $kernel::<7>($($arg),*),
                _ => $kernel::<ROWS>($($arg),*),
            }
        };
    }

    pub unsafe fn q4k(
        tiles: &[TileQ4K],
        act: *const u8,
        row_bytes: usize,
        count: usize,
        out: *mut f32,
        n: usize,
    ) {
        by_rows!(q4k_rows, count, tiles, act, row_bytes, out, n)
    }

    pub unsafe fn q6k(
        tiles: &[TileQ6K],
        act: *const u8,
        row_bytes: usize,
        count: usize,
        out: *mut f32,
        n: usize,
    ) {
        by_rows!(q6k_rows, count, tiles, act, row_bytes, out, n)
    }

    /// `R` activation rows (`row_bytes` apart) times one tile column of a Q4K matrix into
    /// `out[i * n..][..16]`. Per output: for each superblock and sub-block in order,
    /// `acc += isum · (scale · d)` then `acc -= min · (d · bsum)`, as candle's tiles do.
    // `sub` indexes the tile, the per-row sums and the prefetch addresses alike
    #[allow(clippy::needless_range_loop)]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn q4k_rows<const R: usize>(
        tiles: &[TileQ4K],
        act: *const u8,
        row_bytes: usize,
        out: *mut f32,
        n: usize,
    ) {
        let mask = _mm512_set1_epi8(0x0F);
        let mut acc = [_mm512_setzero_ps(); R];
        for (b, tile) in tiles.iter().enumerate() {
            let blocks: [*const u8; R] =
                std::array::from_fn(|i| act.add(i * row_bytes + b * Q8K_BYTES));
            let d: [f32; R] = std::array::from_fn(|i| *(blocks[i] as *const f32));
            // d · (bsum 2s + bsum 2s + 1) for the 8 sub-blocks of each row, 8 lanes at once:
            // the same integer sum, conversion and product the scalar form took per sub-block
            let mut dsums = [[0f32; 8]; R];
            for (i, dsum) in dsums.iter_mut().enumerate() {
                let bsums = _mm256_loadu_si256(blocks[i].add(Q8K_BSUMS) as *const __m256i);
                let pairs = _mm256_madd_epi16(bsums, _mm256_set1_epi16(1));
                let products = _mm256_mul_ps(_mm256_cvtepi32_ps(pairs), _mm256_set1_ps(d[i]));
                _mm256_storeu_ps(dsum.as_mut_ptr(), products);
            }
            let next = (tile as *const TileQ4K).wrapping_add(1) as *const i8;
            for sub in 0..8 {
                // the next tile's 48 cache lines, 6 per sub-block, while this one computes
                for line in 0..6 {
                    _mm_prefetch::<_MM_HINT_T0>(next.wrapping_add((sub * 6 + line) * 64));
                }
                let mut isum = [_mm512_setzero_si512(); R];
                for g4 in 0..4 {
                    let w = _mm512_loadu_si512(tile.qs.as_ptr().add((sub * 4 + g4) * 64) as _);
                    let lo = _mm512_and_si512(w, mask);
                    let hi = _mm512_and_si512(_mm512_srli_epi16::<4>(w), mask);
                    for i in 0..R {
                        let q = blocks[i].add(Q8K_QS + sub * 32 + g4 * 8);
                        isum[i] = _mm512_dpbusd_epi32(isum[i], lo, bcast4(q));
                        isum[i] = _mm512_dpbusd_epi32(isum[i], hi, bcast4(q.add(4)));
                    }
                }
                let scale = _mm512_loadu_ps(tile.scales[sub].as_ptr());
                let min = _mm512_loadu_ps(tile.mins[sub].as_ptr());
                for i in 0..R {
                    acc[i] = _mm512_fmadd_ps(
                        _mm512_cvtepi32_ps(isum[i]),
                        _mm512_mul_ps(scale, _mm512_set1_ps(d[i])),
                        acc[i],
                    );
                    acc[i] = _mm512_fnmadd_ps(min, _mm512_set1_ps(dsums[i][sub]), acc[i]);
                }
            }
        }
        for (i, acc) in acc.iter().enumerate() {
            _mm512_storeu_ps(out.add(i * n), *acc);
        }
    }

    /// The same for a Q6K matrix: per sub-block, `acc += (isum − 32 · bsum) · (scale · d)`.
    // `sub` indexes the tile, the per-row sums and the prefetch addresses alike
    #[allow(clippy::needless_range_loop)]
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn q6k_rows<const R: usize>(
        tiles: &[TileQ6K],
        act: *const u8,
        row_bytes: usize,
        out: *mut f32,
        n: usize,
    ) {
        let mut acc = [_mm512_setzero_ps(); R];
        for (b, tile) in tiles.iter().enumerate() {
            let blocks: [*const u8; R] =
                std::array::from_fn(|i| act.add(i * row_bytes + b * Q8K_BYTES));
            let d: [f32; R] = std::array::from_fn(|i| *(blocks[i] as *const f32));
            // −32 · bsum per row and sub-block, where each integer sum starts: |isum| and
            // |32 · bsum| stay below 2^24, so converting isum − 32 · bsum is exactly the float
            // difference of the two converted values that candle's order forms
            let mut offsets = [[0i32; 16]; R];
            for (i, offset) in offsets.iter_mut().enumerate() {
                let bsums = _mm256_loadu_si256(blocks[i].add(Q8K_BSUMS) as *const __m256i);
                let times32 = _mm512_slli_epi32::<5>(_mm512_cvtepi16_epi32(bsums));
                let negated = _mm512_sub_epi32(_mm512_setzero_si512(), times32);
                _mm512_storeu_si512(offset.as_mut_ptr() as *mut _, negated);
            }
            let next = (tile as *const TileQ6K).wrapping_add(1) as *const i8;
            for sub in 0..16 {
                // the next tile's 80 cache lines, 5 per sub-block
                for line in 0..5 {
                    _mm_prefetch::<_MM_HINT_T0>(next.wrapping_add((sub * 5 + line) * 64));
                }
                let mut isum: [__m512i; R] =
                    std::array::from_fn(|i| _mm512_set1_epi32(offsets[i][sub]));
                for g4 in 0..4 {
                    let w = _mm512_loadu_si512(tile.qs.as_ptr().add((sub * 4 + g4) * 64) as _);
                    for i in 0..R {
                        let q = blocks[i].add(Q8K_QS + sub * 16 + g4 * 4);
                        isum[i] = _mm512_dpbusd_epi32(isum[i], w, bcast4(q));
                    }
                }
                let scale = _mm512_loadu_ps(tile.scales[sub].as_ptr());
                for i in 0..R {
                    let f = _mm512_cvtepi32_ps(isum[i]);
                    acc[i] = _mm512_fmadd_ps(f, _mm512_mul_ps(scale, _mm512_set1_ps(d[i])), acc[i]);
                }
            }
        }
        for (i, acc) in acc.iter().enumerate() {
            _mm512_storeu_ps(out.add(i * n), *acc);
        }
    }
}
