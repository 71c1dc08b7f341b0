//! Quantized weights whose rows give the same result alone or in any batch, and the
//! decoding kernels that read GGUF blocks directly.

pub mod gemv;
pub mod qweight;

/// The kernel class this CPU runs: `x86_64-avx512` (AVX-512 with VNNI), `x86_64-avx2`, or
/// the architecture's name. Float rounding differs between classes, so golden files are kept
/// per class and the run record names it.
pub fn kernel_class() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if gemv::wide() {
            return "x86_64-avx512";
        }
        if is_x86_feature_detected!("avx2") {
            return "x86_64-avx2";
        }
    }
    std::env::consts::ARCH
}
