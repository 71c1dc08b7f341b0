//! `--device auto|cpu|cuda[:N]` to a candle device.

use std::str::FromStr;

use candle_core::Device;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceChoice {
    Auto,
    Cpu,
    Cuda(usize),
}

impl FromStr for DeviceChoice {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "auto" => Ok(DeviceChoice::Auto),
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" => Ok(DeviceChoice::Cuda(0)),
            other => other
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(DeviceChoice::Cuda)
                .ok_or_else(|| format!("unknown device {other:?}: use auto, cpu, cuda or cuda:N")),
        }
    }
}

impl DeviceChoice {
    /// Opens the device; `auto` takes the first GPU when this build has CUDA and one is present.
    pub fn open(self) -> Result<Device> {
        match self {
            DeviceChoice::Cpu => Ok(Device::Cpu),
            DeviceChoice::Auto => {
                if cfg!(feature = "cuda") && candle_core::utils::cuda_is_available() {
                    Device::new_cuda(0).map_err(|e| Error::Device(format!("cuda:0: {e}")))
                } else {
                    Ok(Device::Cpu)
                }
            }
            DeviceChoice::Cuda(n) => {
                if !cfg!(feature = "cuda") {
                    return Err(Error::Device(
                        "this build has no CUDA support; rebuild with `cargo build --release --features cuda` or use --device cpu".into(),
                    ));
                }
                Device::new_cuda(n).map_err(|e| Error::Device(format!("cuda:{n}: {e}")))
            }
        }
    }
}

/// A short human name for the run record.
pub fn describe(device: &Device) -> String {
    match device {
        Device::Cpu => format!(
            "cpu ({} threads, {})",
            candle_core::utils::get_num_threads(),
            cpu_features()
        ),
        Device::Cuda(_) => "cuda".to_string(),
        Device::Metal(_) => "metal".to_string(),
    }
}

fn cpu_features() -> String {
    let mut features = Vec::new();
    if candle_core::utils::with_avx() {
        features.push("avx");
    }
    if candle_core::utils::with_f16c() {
        features.push("f16c");
    }
    if candle_core::utils::with_neon() {
        features.push("neon");
    }
    if features.is_empty() {
        "no SIMD".into()
    } else {
        features.join("+")
    }
}

/// Makes glibc's malloc keep freed memory for reuse instead of returning it to the kernel.
/// Prefill's activations (up to 32 MiB a tensor) were freed and allocated again at every
/// layer, and each time the kernel zeroed fresh pages for them: about 6% of the sample run's
/// CPU time in `clear_page`. Fixed thresholds also turn off glibc's own adaptive ones.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator settings; it is called before other threads
    // start allocating.
    unsafe {
        // the largest mmap threshold glibc accepts on 64-bit targets: 32 MiB
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        // the top of the heap is never given back while the process runs
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}
