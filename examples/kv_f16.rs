//! What an f16 KV cache would save in a decoding step: the step's attention over f32 keys and
//! values (the engine's own `attend`), then one kernel written twice, over f32 and over f16
//! (converted to f32 in registers), at the sample run's translation batches (30 rows, about
//! 600 cached positions, Qwen2.5-1.5B's 28 layers of 2 KV heads for 12 query heads of 128).
//! Timed alternately: `cargo run --release --example kv_f16 [ROWS] [POSITIONS]`.
//!
//! Only for the measurement: the engine keeps f32 (an f16 cache would change every output).

#[cfg(target_arch = "x86_64")]
use std::time::Instant;

#[cfg(target_arch = "x86_64")]
use candle_core::{Device, Tensor};
#[cfg(target_arch = "x86_64")]
use crossbrief::engine::llm::attention::attend;

#[cfg(target_arch = "x86_64")]
const LAYERS: usize = 28;
#[cfg(target_arch = "x86_64")]
const KV_HEADS: usize = 2;
#[cfg(target_arch = "x86_64")]
const GROUP: usize = 6;
#[cfg(target_arch = "x86_64")]
const HD: usize = 128;

#[cfg(not(target_arch = "x86_64"))]
fn main() {
    eprintln!("kv_f16 measures AVX-512 kernels: x86_64 only");
}

#[cfg(target_arch = "x86_64")]
fn main() -> anyhow::Result<()> {
    anyhow::ensure!(
        is_x86_feature_detected!("avx512f"),
        "kv_f16 measures AVX-512 kernels; this CPU has none"
    );
    let arg = |i: usize, default: usize| {
        std::env::args()
            .nth(i)
            .map_or(default, |s| s.parse().expect("a number"))
    };
    let (rows, positions) = (arg(1, 30), arg(2, 600));
    let heads = KV_HEADS * GROUP;
    let dev = Device::Cpu;
    let spans: Vec<(usize, usize)> = (0..rows).map(|r| (r, positions)).collect();
    let shape = (rows, KV_HEADS, positions, HD);
    let mut caches = Vec::new();
    for _ in 0..LAYERS {
        let k = (Tensor::randn(0f32, 1.0, shape, &dev)? * 0.3)?;
        let v = Tensor::randn(0f32, 1.0, shape, &dev)?;
        caches.push((k, v));
    }
    let q = Tensor::randn(0f32, 1.0, (rows, heads, 1, HD), &dev)?;
    let as_f32 = |t: &Tensor| t.flatten_all().and_then(|t| t.to_vec1::<f32>());
    let flat32: Vec<(Vec<f32>, Vec<f32>)> = caches
        .iter()
        .map(|(k, v)| Ok((as_f32(k)?, as_f32(v)?)))
        .collect::<anyhow::Result<_>>()?;
    let to_f16 = |x: &[f32]| {
        x.iter()
            .map(|&v| half::f16::from_f32(v))
            .collect::<Vec<_>>()
    };
    let flat16: Vec<(Vec<half::f16>, Vec<half::f16>)> =
        flat32.iter().map(|(k, v)| (to_f16(k), to_f16(v))).collect();
    let queries = as_f32(&q)?;
    let bytes32 = LAYERS * 2 * rows * KV_HEADS * positions * HD * 4;
    println!(
        "{rows} rows x {positions} positions, {LAYERS} layers: {:.0} MB of f32 keys and values a step",
        bytes32 as f64 / 1e6
    );

    let mut best = [f64::MAX; 3];
    let mut sink = 0f32;
    for _ in 0..7 {
        let started = Instant::now();
        for (k, v) in &caches {
            sink += attend(&q, k, v, &spans)?
                .flatten_all()?
                .get(0)?
                .to_scalar::<f32>()?;
        }
        best[0] = best[0].min(started.elapsed().as_secs_f64());
        let started = Instant::now();
        for (k, v) in &flat32 {
            sink += simple::attend(&queries, k, v, rows, positions);
        }
        best[1] = best[1].min(started.elapsed().as_secs_f64());
        let started = Instant::now();
        for (k, v) in &flat16 {
            sink += simple::attend(&queries, k, v, rows, positions);
        }
        best[2] = best[2].min(started.elapsed().as_secs_f64());
    }
    println!("(checksum {sink:.3})");
    println!("engine attend, f32:        {:.1} ms a step", best[0] * 1e3);
    println!("same kernel, f32 K/V:      {:.1} ms a step", best[1] * 1e3);
    println!("same kernel, f16 K/V:      {:.1} ms a step", best[2] * 1e3);
    println!(
        "f16/f32 {:.2}; projected on the engine's attend: {:.1} ms saved a step",
        best[2] / best[1],
        best[0] * (1.0 - best[2] / best[1]) * 1e3
    );
    Ok(())
}

#[cfg(target_arch = "x86_64")]
mod simple {
    use super::{GROUP, HD, KV_HEADS};

    /// Keys and values as f32 or f16.
    pub trait Element: Copy + Sync {
        /// Elements `at..at + 16` as f32 lanes.
        ///
        /// # Safety
        /// AVX-512F is present and the 16 elements are in bounds.
        unsafe fn load16(values: &[Self], at: usize) -> std::arch::x86_64::__m512;
    }

    impl Element for f32 {
        #[inline(always)]
        unsafe fn load16(values: &[f32], at: usize) -> std::arch::x86_64::__m512 {
            std::arch::x86_64::_mm512_loadu_ps(values.as_ptr().add(at))
        }
    }

    impl Element for half::f16 {
        #[inline(always)]
        unsafe fn load16(values: &[half::f16], at: usize) -> std::arch::x86_64::__m512 {
            use std::arch::x86_64::*;
            _mm512_cvtph_ps(_mm256_loadu_si256(values.as_ptr().add(at) as *const __m256i))
        }
    }

    /// Every row's attention over `len` positions of its own slot, each (row, KV head) on
    /// one of two threads; returns a value of the outputs so nothing is optimised away.
    pub fn attend<E: Element>(q: &[f32], k: &[E], v: &[E], rows: usize, len: usize) -> f32 {
        let items = rows * KV_HEADS;
        let half = items.div_ceil(2);
        let work = |range: std::ops::Range<usize>| {
            let mut sink = 0f32;
            let mut scores = vec![0f32; GROUP * len];
            let mut out = [0f32; GROUP * HD];
            for item in range {
                let (r, kv) = (item / KV_HEADS, item % KV_HEADS);
                let base = (r * KV_HEADS + kv) * len * HD;
                let queries = &q[(r * KV_HEADS * GROUP + kv * GROUP) * HD..][..GROUP * HD];
                // SAFETY: `main` checked AVX-512F; all indices are within the slices.
                unsafe {
                    one(
                        queries,
                        &k[base..][..len * HD],
                        &v[base..][..len * HD],
                        &mut scores,
                        &mut out,
                    )
                };
                sink += out[0];
            }
            sink
        };
        std::thread::scope(|s| {
            let other = s.spawn(|| work(half..items));
            work(0..half) + other.join().expect("the thread ends")
        })
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn one<E: Element>(
        queries: &[f32],
        keys: &[E],
        values: &[E],
        scores: &mut [f32],
        out: &mut [f32],
    ) {
        use std::arch::x86_64::*;
        let len = keys.len() / HD;
        let scale = 1.0 / (HD as f32).sqrt();
        for j in 0..len {
            let mut sums = [_mm512_setzero_ps(); GROUP];
            for c in (0..HD).step_by(16) {
                let key = E::load16(keys, j * HD + c);
                for (g, sum) in sums.iter_mut().enumerate() {
                    let query = _mm512_loadu_ps(queries.as_ptr().add(g * HD + c));
                    *sum = _mm512_fmadd_ps(query, key, *sum);
                }
            }
            for (g, sum) in sums.iter().enumerate() {
                scores[g * len + j] = _mm512_reduce_add_ps(*sum) * scale;
            }
        }
        for g in 0..GROUP {
            let row = &mut scores[g * len..][..len];
            let max = row.iter().fold(f32::MIN, |m, &s| m.max(s));
            let mut total = 0.0;
            for s in row.iter_mut() {
                *s = (*s - max).exp();
                total += *s;
            }
            for s in row.iter_mut() {
                *s /= total;
            }
        }
        for c in (0..HD).step_by(16) {
            let mut acc = [_mm512_setzero_ps(); GROUP];
            for j in 0..len {
                let value = E::load16(values, j * HD + c);
                for (g, a) in acc.iter_mut().enumerate() {
                    *a = _mm512_fmadd_ps(_mm512_set1_ps(scores[g * len + j]), value, *a);
                }
            }
            for (g, a) in acc.iter().enumerate() {
                _mm512_storeu_ps(out.as_mut_ptr().add(g * HD + c), *a);
            }
        }
    }
}
