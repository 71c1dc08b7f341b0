//! The many-row kernel's multiply-accumulate rate (`quant::gemm`, prefill and batched
//! decoding) on random Q4K and Q6K matrices of the 1.5B model's MLP shapes, beside the rate of
//! `vpdpbusd` alone on this CPU, its ceiling. Prints G MAC/s; timings only, no assertions.
//! Usage: cargo run --release --example gemm_rate [ROWS]   (default 256)

use crossbrief::engine::quant::{activations, gemm, gemv::Format};
use std::time::Instant;

fn random_bytes(n: usize, state: &mut u64) -> Vec<u8> {
    (0..n)
        .map(|_| {
            *state ^= *state << 13;
            *state ^= *state >> 7;
            *state ^= *state << 17;
            (*state >> 24) as u8
        })
        .collect()
}

fn main() {
    if !gemm::available() {
        eprintln!("this CPU has no AVX-512 VNNI: the many-row kernel does not run here");
        return;
    }
    let rows: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("ROWS is a number"))
        .unwrap_or(256);
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    // (format, n, k, block bytes, offset of the f16 scale d in a block)
    for (format, n, k, bytes, d_at) in [
        (Format::Q4K, 8960usize, 1536usize, 144usize, 0usize),
        (Format::Q6K, 1536, 8960, 210, 208),
    ] {
        let kb = k / 256;
        let mut blocks = random_bytes(n * kb * bytes, &mut state);
        // finite, small scales (random bytes would include NaNs)
        let d = half::f16::from_f32(0.01).to_bits().to_le_bytes();
        for b in 0..n * kb {
            let at = b * bytes + d_at;
            blocks[at..at + 2].copy_from_slice(&d);
            if format == Format::Q4K {
                blocks[at + 2..at + 4].copy_from_slice(&d);
            }
        }
        let packed = gemm::PackedMatrix::pack(format, &blocks, n, k);
        let xs: Vec<f32> = random_bytes(rows * k, &mut state)
            .iter()
            .map(|&b| b as f32 / 128.0 - 1.0)
            .collect();
        let act = activations::quantize_rows(&xs);
        gemm::gemm_many(&[&packed], &act, rows);
        let reps = 10;
        let started = Instant::now();
        for _ in 0..reps {
            std::hint::black_box(gemm::gemm_many(&[&packed], &act, rows));
        }
        let s = started.elapsed().as_secs_f64() / reps as f64;
        let macs = (rows * n * k) as f64;
        println!(
            "{format:?} {n}x{k}, {rows} rows: {:.2} ms, {:.1} G MAC/s",
            s * 1e3,
            macs / s / 1e9
        );
    }
    #[cfg(target_arch = "x86_64")]
    {
        let threads = candle_core::utils::barrier_pool().n_workers() + 1;
        let per_core = dpbusd_rate();
        println!(
            "vpdpbusd alone: {per_core:.1} G MAC/s a core, {:.1} on {threads} threads",
            per_core * threads as f64
        );
    }
}

/// 64 multiply-accumulates per `vpdpbusd`, 12 independent chains so that latency never waits.
#[cfg(target_arch = "x86_64")]
fn dpbusd_rate() -> f64 {
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    unsafe fn chains(n: u64) -> i32 {
        use core::arch::x86_64::*;
        let (a, b) = (_mm512_set1_epi8(3), _mm512_set1_epi8(5));
        let mut acc = [_mm512_setzero_si512(); 12];
        for _ in 0..n {
            for s in acc.iter_mut() {
                *s = _mm512_dpbusd_epi32(*s, a, b);
            }
        }
        let mut total = _mm512_setzero_si512();
        for s in acc {
            total = _mm512_add_epi32(total, s);
        }
        _mm512_reduce_add_epi32(total)
    }
    let n = 50_000_000u64;
    let started = Instant::now();
    // SAFETY: gemm::available() checked the features.
    let sum = unsafe { chains(n) };
    std::hint::black_box(sum);
    12.0 * 64.0 * n as f64 / started.elapsed().as_secs_f64() / 1e9
}
