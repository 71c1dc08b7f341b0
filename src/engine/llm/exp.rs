//! `f32::exp` 16 lanes at a time, bit for bit, for the softmaxes and SiLU of the LLM.
//!
//! Written here because the C library's `expf` is scalar and was 4% of the sample run, more
//! than the attention's arithmetic. This is glibc's algorithm (2.28 and later,
//! sysdeps/ieee754/flt-32/e_expf.c, as its FMA build compiles it: the variant every AVX-512 CPU
//! runs), step for step on 16 lanes, so it gives `f32::exp`'s bits; the test checks that.

use std::mem::MaybeUninit;

use crate::engine::pool::UnzeroedOutputs;

/// Whether the 16-lane forms run here: the CPU has AVX-512 and they give this C library's
/// `expf` bits on a spread of inputs (checked once; a C library of another algorithm, or one
/// that picked its non-FMA variant, keeps the scalar calls).
pub fn available() -> bool {
    static AGREES: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AGREES.get_or_init(|| has_avx512() && agrees_with_the_c_library())
}

fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The 16-lane `exp` against `f32::exp` on 4,096 values from -110 to 90 and the special ones.
fn agrees_with_the_c_library() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        let mut inputs: Vec<f32> = (0..4096)
            .map(|i| -110.0 + i as f32 * (200.0 / 4096.0))
            .collect();
        inputs.extend([
            0.0,
            -0.0,
            -87.5,
            -88.0,
            -103.5,
            -104.0,
            88.7,
            f32::NEG_INFINITY,
        ]);
        inputs.extend([1e-30, -1e-30, 0.3, -0.3, 17.25, -17.25, 0.5, -0.5]);
        inputs.chunks_exact(16).all(|chunk| {
            let mut got = [0f32; 16];
            // SAFETY: has_avx512() checked the feature; each chunk and `got` hold 16 values.
            unsafe {
                use core::arch::x86_64::*;
                _mm512_storeu_ps(
                    got.as_mut_ptr(),
                    x86::exp16(_mm512_loadu_ps(chunk.as_ptr())),
                );
            }
            chunk
                .iter()
                .zip(got)
                .all(|(x, y)| x.exp().to_bits() == y.to_bits())
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `s = exp(s - max)` for each value, as `f32::exp` gives it.
pub fn exp_less(values: &mut [f32], max: f32) {
    #[cfg(target_arch = "x86_64")]
    if available() {
        // SAFETY: the feature was checked.
        unsafe { x86::exp_less(values, max) };
        return;
    }
    exp_less_scalar(values, max);
}

/// [`exp_less`] one value at a time (and the vector form's tail).
fn exp_less_scalar(values: &mut [f32], max: f32) {
    for s in values.iter_mut() {
        *s = (*s - max).exp();
    }
}

/// `out[i] = silu(gate[i]) · up[i]`, as candle's `silu` (`v / (1 + exp(-v))`) then its
/// product give it. Every output is written, none read: `out` may be a fresh, unzeroed buffer.
pub fn silu_times(gate: &[f32], up: &[f32], out: &mut [MaybeUninit<f32>]) {
    assert!(gate.len() == up.len() && up.len() == out.len());
    #[cfg(target_arch = "x86_64")]
    if available() {
        // SAFETY: the feature was checked; the slices have the same length.
        unsafe { x86::silu_times(gate, up, out) };
        return;
    }
    silu_times_scalar(gate, up, out);
}

/// [`silu_times`] one value at a time (and the vector form's tail).
fn silu_times_scalar(gate: &[f32], up: &[f32], out: &mut [MaybeUninit<f32>]) {
    for ((o, g), u) in out.iter_mut().zip(gate).zip(up) {
        o.write((g / (1.0 + (-g).exp())) * u);
    }
}

/// [`silu_times`] into a new vector, the values shared among the CPU pool's threads (each
/// value is computed alone, so the split changes nothing).
pub fn silu_times_parallel(gate: &[f32], up: &[f32]) -> Vec<f32> {
    // values per work item: a few pages, many items for a prompt's [tokens, 8960]
    const CHUNK: usize = 4096;
    assert_eq!(gate.len(), up.len());
    let n = gate.len();
    let mut outs = UnzeroedOutputs::new();
    let out_ptr = outs.push(n);
    candle_core::utils::barrier_pool().execute_chunked(n.div_ceil(CHUNK), |items| {
        for item in items {
            let (start, end) = (item * CHUNK, n.min(item * CHUNK + CHUNK));
            // SAFETY: within the capacity; each item writes only its own values.
            let out = unsafe {
                std::slice::from_raw_parts_mut(
                    (out_ptr as *mut MaybeUninit<f32>).add(start),
                    end - start,
                )
            };
            silu_times(&gate[start..end], &up[start..end], out);
        }
    });
    // SAFETY: the items cover `0..n`, and `silu_times` writes every value it is given.
    unsafe { outs.assume_filled() }.remove(0)
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use core::arch::x86_64::*;
    use std::mem::MaybeUninit;

    /// `s = exp(s - max)` for each score, as `f32::exp` gives it.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn exp_less(scores: &mut [f32], max: f32) {
        let max16 = _mm512_set1_ps(max);
        let mut chunks = scores.chunks_exact_mut(16);
        for chunk in &mut chunks {
            let x = _mm512_sub_ps(_mm512_loadu_ps(chunk.as_ptr()), max16);
            _mm512_storeu_ps(chunk.as_mut_ptr(), exp16(x));
        }
        super::exp_less_scalar(chunks.into_remainder(), max);
    }

    /// glibc 2.28+'s `expf` (sysdeps/ieee754/flt-32/e_expf.c, the FMA build) on 16 lanes: in
    /// double precision, `x · 32/ln 2 = k + r`, then `2^(k/32)` from a table times a cubic in
    /// `r`. Lanes of magnitude 88 or more, or NaN, take `f32::exp` itself.
    #[inline]
    #[target_feature(enable = "avx512f")]
    pub unsafe fn exp16(x: __m512) -> __m512 {
        let bits = _mm512_castps_si512(x);
        let top = _mm512_and_si512(_mm512_srli_epi32::<20>(bits), _mm512_set1_epi32(0x7ff));
        let special = _mm512_cmpgt_epi32_mask(top, _mm512_set1_epi32(0x42a));
        let low = exp8(_mm512_cvtps_pd(_mm512_castps512_ps256(x)));
        let high_half = _mm512_extractf64x4_pd::<1>(_mm512_castps_pd(x));
        let high = exp8(_mm512_cvtps_pd(_mm256_castpd_ps(high_half)));
        let y = _mm512_insertf64x4::<1>(
            _mm512_castpd256_pd512(_mm256_castps_pd(_mm512_cvtpd_ps(low))),
            _mm256_castps_pd(_mm512_cvtpd_ps(high)),
        );
        let y = _mm512_castpd_ps(y);
        if special == 0 {
            return y;
        }
        let (mut xs, mut ys) = ([0f32; 16], [0f32; 16]);
        _mm512_storeu_ps(xs.as_mut_ptr(), x);
        _mm512_storeu_ps(ys.as_mut_ptr(), y);
        for lane in 0..16 {
            if special & (1 << lane) != 0 {
                ys[lane] = xs[lane].exp();
            }
        }
        _mm512_loadu_ps(ys.as_ptr())
    }

    /// `__exp2f_data.tab`: `bits(2^(i/32)) - (i << 47)`.
    const TABLE: [u64; 32] = [
        0x3ff0000000000000,
        0x3fefd9b0d3158574,
        0x3fefb5586cf9890f,
        0x3fef9301d0125b51,
        0x3fef72b83c7d517b,
        0x3fef54873168b9aa,
        0x3fef387a6e756238,
        0x3fef1e9df51fdee1,
        0x3fef06fe0a31b715,
        0x3feef1a7373aa9cb,
        0x3feedea64c123422,
        0x3feece086061892d,
        0x3feebfdad5362a27,
        0x3feeb42b569d4f82,
        0x3feeab07dd485429,
        0x3feea47eb03a5585,
        0x3feea09e667f3bcd,
        0x3fee9f75e8ec5f74,
        0x3feea11473eb0187,
        0x3feea589994cce13,
        0x3feeace5422aa0db,
        0x3feeb737b0cdc5e5,
        0x3feec49182a3f090,
        0x3feed503b23e255d,
        0x3feee89f995ad3ad,
        0x3feeff76f2fb5e47,
        0x3fef199bdd85529c,
        0x3fef3720dcef9069,
        0x3fef5818dcfba487,
        0x3fef7c97337b9b5f,
        0x3fefa4afa2a490da,
        0x3fefd0765b6e4540,
    ];

    /// The double-precision body of glibc's `expf` for 8 lanes, operation for operation as
    /// its FMA build compiles it.
    #[inline]
    #[target_feature(enable = "avx512f")]
    unsafe fn exp8(x: __m512d) -> __m512d {
        let inv_ln2_n = _mm512_set1_pd(f64::from_bits(0x40471547652b82fe)); // 32 / ln 2
        let shift = _mm512_set1_pd(f64::from_bits(0x4338000000000000)); // 0x1.8p52
        let c0 = _mm512_set1_pd(f64::from_bits(0x3ebc6af84b912394));
        let c1 = _mm512_set1_pd(f64::from_bits(0x3f2ebfce50fac4f3));
        let c2 = _mm512_set1_pd(f64::from_bits(0x3f962e42ff0c52d6));
        let shifted = _mm512_fmadd_pd(inv_ln2_n, x, shift);
        let ki = _mm512_castpd_si512(shifted);
        let kd = _mm512_sub_pd(shifted, shift);
        let r = _mm512_fmsub_pd(inv_ln2_n, x, kd);
        let table = |i: usize| _mm512_loadu_si512(TABLE.as_ptr().add(8 * i) as *const _);
        let first = _mm512_permutex2var_epi64(table(0), ki, table(1));
        let second = _mm512_permutex2var_epi64(table(2), ki, table(3));
        let upper = _mm512_test_epi64_mask(ki, _mm512_set1_epi64(16));
        let t = _mm512_mask_blend_epi64(upper, first, second);
        let s = _mm512_castsi512_pd(_mm512_add_epi64(t, _mm512_slli_epi64::<47>(ki)));
        let z = _mm512_fmadd_pd(r, c0, c1);
        let r2 = _mm512_mul_pd(r, r);
        let y = _mm512_fmadd_pd(r, c2, _mm512_set1_pd(1.0));
        let y = _mm512_fmadd_pd(z, r2, y);
        _mm512_mul_pd(y, s)
    }

    /// [`super::silu_times`] 16 lanes at a time.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn silu_times(gate: &[f32], up: &[f32], out: &mut [MaybeUninit<f32>]) {
        let one = _mm512_set1_ps(1.0);
        let mut gates = gate.chunks_exact(16);
        let mut ups = up.chunks_exact(16);
        let mut outs = out.chunks_exact_mut(16);
        for ((g, u), o) in (&mut gates).zip(&mut ups).zip(&mut outs) {
            let v = _mm512_loadu_ps(g.as_ptr());
            // `-v` flips the sign bit, as Rust's negation does (0 - v would make -0 of +0)
            let negated = _mm512_castsi512_ps(_mm512_xor_si512(
                _mm512_castps_si512(v),
                _mm512_set1_epi32(i32::MIN),
            ));
            let silu = _mm512_div_ps(v, _mm512_add_ps(one, exp16(negated)));
            let product = _mm512_mul_ps(silu, _mm512_loadu_ps(u.as_ptr()));
            _mm512_storeu_ps(o.as_mut_ptr().cast(), product);
        }
        super::silu_times_scalar(gates.remainder(), ups.remainder(), outs.into_remainder());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The vector `exp` is the C library's bit for bit, over a stride through every f32
    /// (every sign, exponent and NaN payload class) and around the special-case bounds.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn vector_exp_is_the_c_librarys() {
        const STEP: usize = 997;
        if !has_avx512() {
            eprintln!("skipped vector_exp_is_the_c_librarys: this CPU has no AVX-512");
            return;
        }
        use core::arch::x86_64::*;
        let mut inputs: Vec<f32> = (0..=u32::MAX).step_by(STEP).map(f32::from_bits).collect();
        for bound in [-103.97f32, -103.28, -88.0, 88.0, 88.72, 0.0, -0.0] {
            let b = bound.to_bits();
            inputs.extend((0..2000).map(|d| f32::from_bits(b.wrapping_add(d).wrapping_sub(1000))));
        }
        inputs.extend([
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            f32::MIN_POSITIVE,
        ]);
        while !inputs.len().is_multiple_of(16) {
            inputs.push(-1.5);
        }
        for chunk in inputs.chunks_exact(16) {
            let mut got = [0f32; 16];
            // SAFETY: the feature was checked; `chunk` and `got` hold 16 values.
            unsafe {
                _mm512_storeu_ps(
                    got.as_mut_ptr(),
                    x86::exp16(_mm512_loadu_ps(chunk.as_ptr())),
                )
            };
            for (x, y) in chunk.iter().zip(got) {
                let want = x.exp();
                assert!(
                    want.to_bits() == y.to_bits() || (want.is_nan() && y.is_nan()),
                    "exp({x:e}) = {want:e}, vector gave {y:e}"
                );
            }
        }
    }

    /// The fused SiLU product is candle's `silu` then `*`, bit for bit, over a spread of
    /// values (large ones whose exponential overflows, zeros of both signs) and a ragged tail.
    #[test]
    fn silu_times_is_candles() -> candle_core::Result<()> {
        use candle_core::{Device, Tensor};
        let mut gate: Vec<f32> = (0..10003)
            .map(|i| ((i as f32) * 0.7331).sin() * 12.0)
            .collect();
        gate.extend([
            100.0,
            -100.0,
            0.0,
            -0.0,
            88.5,
            -88.5,
            1e-30,
            -1e-30,
            f32::MAX,
            f32::MIN,
        ]);
        let up: Vec<f32> = (0..gate.len())
            .map(|i| ((i as f32) * 1.37).cos() * 3.0)
            .collect();
        let g = Tensor::from_vec(gate.clone(), gate.len(), &Device::Cpu)?;
        let u = Tensor::from_vec(up.clone(), up.len(), &Device::Cpu)?;
        let theirs = (g.silu()? * u)?.to_vec1::<f32>()?;
        let ours = silu_times_parallel(&gate, &up);
        // the lone form on a slice that starts off the 16-lane grid
        let mut single = vec![MaybeUninit::new(0f32); gate.len() - 1];
        silu_times(&gate[1..], &up[1..], &mut single);
        assert!(ours[1..]
            .iter()
            .zip(&single)
            // SAFETY: initialised above (and written by `silu_times`)
            .all(|(a, b)| a.to_bits() == unsafe { b.assume_init() }.to_bits()));
        for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
            assert!(
                a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan()),
                "{i}: {a} vs {b}"
            );
        }
        Ok(())
    }
}
