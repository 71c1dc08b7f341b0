//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::Path;

pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The kernel family candle dispatches to on this CPU (its AVX-512 VNNI path or AVX2).
pub fn cpu_class() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vnni")
        {
            return "x86_64-avx512";
        }
        if is_x86_feature_detected!("avx2") {
            return "x86_64-avx2";
        }
    }
    std::env::consts::ARCH
}

pub fn golden(name: &str, text: &str) {
    let dir = root().join("tests/golden").join(cpu_class());
    let updating = std::env::var("INSTA_UPDATE").is_ok_and(|v| v == "always");
    assert!(
        updating || dir.is_dir(),
        "no golden files for this CPU class ({}) in {}: generate them with `INSTA_UPDATE=always cargo test --release --test golden --test marian` and review them",
        cpu_class(),
        dir.display()
    );
    insta::with_settings!({snapshot_path => dir, prepend_module_to_snapshot => false, omit_expression => true}, {
        insta::assert_snapshot!(name, text);
    });
}
