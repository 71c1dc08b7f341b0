//! Quantized weights whose rows give the same result alone or in any batch, and the
//! decoding kernels that read GGUF blocks directly.

pub mod activations;
pub mod gemm;
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

/// The machine kind results are reproducible on: the kernel class and cpu0's cache sizes
/// (`x86_64-avx512-l1d48k-l2-1024k-l3-32768k`), which set the blocking of candle's matrix
/// products and so their float rounding. Golden files and work-store keys go by it.
pub fn machine_kind() -> String {
    match cache_geometry() {
        Some(caches) => format!("{}-{caches}", kernel_class()),
        None => kernel_class().to_string(),
    }
}

/// `l1d48k-l2-1024k-l3-32768k`: cpu0's data and unified caches, as Linux lists them.
fn cache_geometry() -> Option<String> {
    let mut parts = Vec::new();
    for index in 0..8 {
        let dir = format!("/sys/devices/system/cpu/cpu0/cache/index{index}");
        let read = |f: &str| std::fs::read_to_string(format!("{dir}/{f}")).ok();
        let (Some(level), Some(kind), Some(size)) = (read("level"), read("type"), read("size"))
        else {
            break;
        };
        let size = size.trim().to_lowercase();
        match kind.trim() {
            "Data" => parts.push(format!("l{}d{size}", level.trim())),
            "Unified" => parts.push(format!("l{}-{size}", level.trim())),
            _ => {}
        }
    }
    (!parts.is_empty()).then(|| parts.join("-"))
}
