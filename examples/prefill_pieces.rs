//! Whether prefilling a prompt in pieces through the KV cache gives the same logits, bit for
//! bit, as prefilling it whole, on prompts recorded by a run (`CROSSBRIEF_RECORD_PROMPTS`):
//! `cargo run --release --example prefill_pieces GGUF PROMPTS.jsonl PIECE [N]` splits N
//! prompts into pieces of PIECE tokens; `SPLIT=k` (or `SPLIT=last`) into the first k tokens
//! and the rest; `PAIRS=1` prefills prompt A, then B after the prefix they share (as the
//! engine's prefix reuse does), against B alone. One line per prompt.
//!
//! On AVX-512 (the sample run's prompts): prefix reuse, `SPLIT=last` and pieces ending at
//! multiples of 32 positions are bit-identical; a piece that ends elsewhere is not (the
//! attention's f32 matmul takes its last, partial block of 32 key columns another way, and
//! the 8-bit activations amplify the difference to about 0.5 in the logits).
use candle_core::Device;
use crossbrief::engine::llm::{gguf::GgufModel, kv_cache::KvCache, load_family, RecordedPrompt};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let gguf = std::path::PathBuf::from(&args[1]);
    let piece: usize = args[3].parse()?;
    let n: usize = args.get(4).map(|s| s.parse()).transpose()?.unwrap_or(5);
    let mut model = GgufModel::open(&[gguf])?;
    let lm = load_family(&mut model, &Device::Cpu)?;
    let layers = lm.shape().n_layers;
    let prompts: Vec<RecordedPrompt> = std::fs::read_to_string(&args[2])?
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let (mut same, mut total) = (0, 0);
    if std::env::var("PAIRS").is_ok() {
        // as prefix reuse runs: prompt A whole, then B after the prefix they share, against B whole
        let mut sorted: Vec<&Vec<u32>> = prompts.iter().map(|p| &p.prompt_ids).collect();
        sorted.sort();
        for pair in sorted.windows(2).step_by((sorted.len() / n).max(1)).take(n) {
            let (a, b) = (pair[0], pair[1]);
            let shared = a
                .iter()
                .zip(b)
                .take_while(|(x, y)| x == y)
                .count()
                .min(b.len() - 1);
            let mut reuse = KvCache::new(layers);
            lm.prefill(a, &mut reuse)?;
            reuse.truncate(shared)?;
            let x = lm
                .prefill(&b[shared..], &mut reuse)?
                .flatten_all()?
                .to_vec1::<f32>()?;
            let y = lm
                .prefill(b, &mut KvCache::new(layers))?
                .flatten_all()?
                .to_vec1::<f32>()?;
            let differing = x
                .iter()
                .zip(&y)
                .filter(|(p, q)| p.to_bits() != q.to_bits())
                .count();
            println!(
                "A {} tokens, B {} tokens, {shared} shared: {differing} logits differ",
                a.len(),
                b.len()
            );
            total += 1;
            same += (differing == 0) as usize;
        }
        println!("{same} of {total} prompts bit-identical");
        return Ok(());
    }
    for p in prompts.iter().step_by((prompts.len() / n).max(1)).take(n) {
        let ids = &p.prompt_ids;
        let mut whole = KvCache::new(layers);
        let a = lm
            .prefill(ids, &mut whole)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let mut pieces = KvCache::new(layers);
        let mut b = Vec::new();
        // SPLIT=k: two pieces, the first k tokens and the rest
        // (SPLIT=last: all but the last token, as consensus candidates reuse their prompt)
        let split: Option<usize> = std::env::var("SPLIT").ok().and_then(|s| match s.as_str() {
            "last" => Some(ids.len() - 1),
            _ => s.parse().ok(),
        });
        let chunks: Vec<&[u32]> = match split {
            Some(k) => vec![&ids[..k], &ids[k..]],
            None => ids.chunks(piece).collect(),
        };
        for chunk in chunks {
            b = lm
                .prefill(chunk, &mut pieces)?
                .flatten_all()?
                .to_vec1::<f32>()?;
        }
        let differing = a
            .iter()
            .zip(&b)
            .filter(|(x, y)| x.to_bits() != y.to_bits())
            .count();
        let worst = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        println!(
            "{} tokens, pieces of {piece}: {differing} of {} logits differ (largest {worst:e})",
            ids.len(),
            a.len()
        );
        total += 1;
        same += (differing == 0) as usize;
    }
    println!("{same} of {total} prompts bit-identical");
    Ok(())
}
