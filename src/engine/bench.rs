//! Figures for `crossbrief bench`: memory bandwidth (the ceiling of one-sequence decoding) and
//! a replay of a run's recorded LLM prompts at a chosen batch size, and decode throughput at
//! fixed lengths over a range of batch sizes.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::Serialize;

use crate::config::decoding::Decoding;
use crate::domain::StageStats;
use crate::engine::llm::{LlmEngine, RecordedPrompt};
use crate::error::Result;

/// Read bandwidth in GB/s: `threads` threads sum disjoint parts of a `bytes` buffer, best of
/// `repeats` passes. Written here because the figure must come from this binary's own
/// threads on this machine; a one-pass read is what decoding one token does to the weights.
/// Each thread asks for its data [`PREFETCH_AHEAD`] bytes ahead, as the decoding kernel does:
/// on the machines measured, the hardware prefetcher alone delivers about a third of the
/// bandwidth (9.3 against 30 GB/s), which would understate the ceiling.
pub fn read_bandwidth_gb_s(bytes: usize, threads: usize, repeats: usize) -> f64 {
    let words = bytes / 8;
    // Written, so that every page is really mapped before timing.
    let buffer: Vec<u64> = (0..words as u64).collect();
    let part = words.div_ceil(threads.max(1));
    let mut best = f64::INFINITY;
    for _ in 0..repeats.max(1) {
        let started = Instant::now();
        let total: u64 = std::thread::scope(|scope| {
            let handles: Vec<_> = buffer
                .chunks(part)
                .map(|chunk| {
                    scope.spawn(move || {
                        // Eight independent sums keep the loads in flight.
                        let mut acc = [0u64; 8];
                        for (i, block) in chunk.chunks_exact(8).enumerate() {
                            prefetch(chunk, (i * 8 + PREFETCH_AHEAD / 8).min(chunk.len() - 1));
                            for (a, &x) in acc.iter_mut().zip(block) {
                                *a = a.wrapping_add(x);
                            }
                        }
                        acc.iter().fold(0u64, |s, &a| s.wrapping_add(a))
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("reader thread"))
                .fold(0u64, u64::wrapping_add)
        });
        std::hint::black_box(total);
        best = best.min(started.elapsed().as_secs_f64());
    }
    (words * 8) as f64 / best / 1e9
}

/// How far ahead [`read_bandwidth_gb_s`] prefetches (the decoding kernel asks for the next 8
/// matrix rows, some 7 KB ahead).
const PREFETCH_AHEAD: usize = 8 << 10;

/// Asks for the cache line holding `words[i]` (one 8-word block is one 64-byte line).
fn prefetch(words: &[u64], i: usize) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `i` is within `words`; a prefetch never faults and changes no memory.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch(words.as_ptr().add(i) as *const i8, _MM_HINT_T0);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (words, i);
}

/// What replaying recorded prompts at one batch size gave.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayReport {
    pub model: String,
    /// Weight bytes one decoding step reads.
    pub streamed_bytes: usize,
    pub batch_rows: usize,
    pub prompts: usize,
    pub calls: usize,
    /// Tokens, seconds, rates and batches of the whole replay, as a run's stage reports them.
    #[serde(flatten)]
    pub figures: StageStats,
    /// Agreement with the recorded outputs: tokens of the common prefix of each pair of
    /// outputs over the longer output's tokens, summed over prompts; and prompts whose
    /// output is identical.
    pub agreement: f64,
    pub identical_prompts: usize,
    /// The same figures per recorded call.
    pub per_call: Vec<StageStats>,
}

/// Runs the recorded prompts call by call (each call's prompts together, as the run had
/// them) with the engine's current batch size, greedy.
pub fn replay(
    engine: &mut LlmEngine,
    recorded: &[RecordedPrompt],
    decoding: Decoding,
) -> Result<ReplayReport> {
    let mut calls: BTreeMap<usize, Vec<&RecordedPrompt>> = BTreeMap::new();
    for r in recorded {
        calls.entry(r.call).or_default().push(r);
    }
    let started = Instant::now();
    let mut total = StageStats::new("replay");
    let (mut common, mut longest, mut identical) = (0usize, 0usize, 0usize);
    let mut per_call = Vec::new();
    for (&call, prompts) in &calls {
        let call_started = Instant::now();
        let mut figures = StageStats::new(&format!("call {call}"));
        let inputs: Vec<(Vec<u32>, usize)> = prompts
            .iter()
            .map(|p| (p.prompt_ids.clone(), p.max_new_tokens))
            .collect();
        let (results, timings) = engine.generate_from_ids(&inputs, decoding, &mut |_| {})?;
        timings.record(&mut figures);
        timings.record(&mut total);
        for (p, result) in prompts.iter().zip(results) {
            let g = result?;
            g.record(&mut figures);
            g.record(&mut total);
            common += g
                .ids
                .iter()
                .zip(&p.generated_ids)
                .take_while(|(a, b)| a == b)
                .count();
            longest += g.ids.len().max(p.generated_ids.len());
            identical += usize::from(g.ids == p.generated_ids);
        }
        figures.finish(call_started);
        per_call.push(figures);
    }
    total.finish(started);
    Ok(ReplayReport {
        model: engine.name().to_string(),
        streamed_bytes: engine.streamed_bytes(),
        batch_rows: engine.batch_rows(),
        prompts: recorded.len(),
        calls: calls.len(),
        figures: total,
        agreement: if longest > 0 {
            common as f64 / longest as f64
        } else {
            1.0
        },
        identical_prompts: identical,
        per_call,
    })
}

/// Decode throughput of one batch size in [`sweep`].
#[derive(Debug, Clone, Serialize)]
pub struct SweepPoint {
    pub rows: usize,
    pub new_tokens: usize,
    pub decode_s: f64,
    /// All rows' new tokens over the decoding time.
    pub decode_tokens_per_s: f64,
}

/// For each batch size: that many prompts of the recorded call with the most prompts (the
/// sample run's translation chunks; repeated when there are fewer) decode exactly `new_tokens` each, all together and past stop tokens, as llama.cpp's
/// `llama-batched-bench` measures; so every step carries every row, unlike a real run whose
/// rows finish at different times.
pub fn sweep(
    engine: &mut LlmEngine,
    recorded: &[RecordedPrompt],
    sizes: &[usize],
    new_tokens: usize,
    decoding: Decoding,
) -> Result<Vec<SweepPoint>> {
    let mut calls: BTreeMap<usize, Vec<&RecordedPrompt>> = BTreeMap::new();
    for r in recorded {
        calls.entry(r.call).or_default().push(r);
    }
    let largest = calls.into_values().max_by_key(Vec::len).unwrap_or_default();
    let mut points = Vec::new();
    engine.set_ignore_stops(true);
    for &rows in sizes {
        let rows = rows.max(1);
        let inputs: Vec<(Vec<u32>, usize)> = largest
            .iter()
            .cycle()
            .take(rows)
            .map(|p| (p.prompt_ids.clone(), new_tokens))
            .collect();
        engine.set_batch_rows(rows);
        let (results, timings) = engine.generate_from_ids(&inputs, decoding, &mut |_| {})?;
        let mut generated = 0;
        for result in results {
            generated += result?.new_tokens;
        }
        let decode_s = timings.decode.as_secs_f64();
        points.push(SweepPoint {
            rows,
            new_tokens,
            decode_s,
            decode_tokens_per_s: generated as f64 / decode_s,
        });
    }
    engine.set_ignore_stops(false);
    Ok(points)
}
