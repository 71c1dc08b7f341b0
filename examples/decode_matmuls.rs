//! Times one decoding step's quantized matmuls over all layers (weights cold, as in a real
//! step), by kind of matrix: `cargo run --release --example decode_matmuls GGUF ROWS`.
//! `TILED=1` times candle's tiled kernel instead of `Weight` (which takes ours for one row).
use candle_core::quantized::{gguf_file::Content, QMatMul};
use candle_core::{Device, Module, Tensor};
use std::time::Instant;

type Mm = Box<dyn Fn(&Tensor) -> Tensor>;

fn main() -> anyhow::Result<()> {
    let path = std::env::args().nth(1).unwrap();
    let rows: usize = std::env::args()
        .nth(2)
        .map(|s| s.parse().unwrap())
        .unwrap_or(1);
    let tiled = std::env::var("TILED").is_ok();
    let mut f = std::fs::File::open(&path)?;
    let c = Content::read(&mut f)?;
    let kinds = [
        "attn_q",
        "attn_k",
        "attn_v",
        "attn_output",
        "ffn_gate",
        "ffn_up",
        "ffn_down",
    ];
    let mut mats: Vec<(String, usize, usize, Mm)> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for l in 0..28 {
        for kind in kinds {
            names.push(format!("blk.{l}.{kind}.weight"));
        }
    }
    names.push("output.weight".into());
    for name in names {
        let t = c.tensor(&mut f, &name, &Device::Cpu)?;
        let bytes = t.storage_size_in_bytes();
        let k = t.shape().dims2()?.1;
        let mm: Mm = if tiled {
            let q = QMatMul::from_qtensor(t)?;
            Box::new(move |x: &Tensor| q.forward(x).unwrap())
        } else {
            let w = crossbrief::engine::quant::qweight::Weight::new(t)?;
            Box::new(move |x: &Tensor| w.forward(x).unwrap())
        };
        let kind = name.split('.').nth(2).unwrap_or("output").to_string();
        mats.push((kind, bytes, k, mm));
    }
    let xs: Vec<Tensor> = [1536, 8960]
        .iter()
        .map(|&k| Tensor::randn(0f32, 1.0, (rows, k), &Device::Cpu).unwrap())
        .collect();
    let x_for = |k: usize| if k == 1536 { &xs[0] } else { &xs[1] };
    for (_, _, k, mm) in &mats {
        mm(x_for(*k));
    }
    let mut per_kind: std::collections::BTreeMap<String, (f64, usize)> = Default::default();
    let steps = 10;
    let start = Instant::now();
    for _ in 0..steps {
        for (kind, bytes, k, mm) in &mats {
            let t0 = Instant::now();
            mm(x_for(*k));
            let e = per_kind.entry(kind.clone()).or_default();
            e.0 += t0.elapsed().as_secs_f64();
            e.1 += bytes;
        }
    }
    let per_step = start.elapsed().as_secs_f64() / steps as f64;
    for (kind, (s, bytes)) in per_kind {
        println!(
            "{kind:12} {:7.2} ms/step {:5.1} GB/s",
            s / steps as f64 * 1e3,
            bytes as f64 / s / 1e9
        );
    }
    let total: usize = mats.iter().map(|m| m.1).sum();
    println!(
        "all matmuls: {:.1} ms/step, {:.1} GB/s (GGUF bytes)",
        per_step * 1e3,
        total as f64 / per_step / 1e9
    );
    Ok(())
}
