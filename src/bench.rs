//! Figures for `crossbrief bench`: memory bandwidth (the ceiling of one-sequence decoding) and
//! a replay of a run's recorded LLM prompts at a chosen batch size.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::Serialize;

use crate::backend::llm::RecordedPrompt;
use crate::backend::{BatchTimings, Decoding, LlmEngine};
use crate::error::Result;

/// Read bandwidth in GB/s: `threads` threads sum disjoint parts of a `bytes` buffer, best of
/// `repeats` passes. Written here because the figure must come from this binary's own
/// threads on this machine; a one-pass read is what decoding one token does to the weights.
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
                        for block in chunk.chunks_exact(8) {
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

/// What replaying recorded prompts at one batch size gave.
#[derive(Debug, Clone, Serialize)]
pub struct ReplayReport {
    pub model: String,
    /// Weight bytes one decoding step reads.
    pub streamed_bytes: usize,
    pub batch_rows: usize,
    pub prompts: usize,
    pub calls: usize,
    pub prompt_tokens: usize,
    pub reused_prompt_tokens: usize,
    pub generated_tokens: usize,
    pub prefill_s: f64,
    pub decode_s: f64,
    pub prefill_tokens_per_s: f64,
    pub decode_tokens_per_s: f64,
    pub batches: usize,
    pub largest_batch: usize,
    pub decode_steps: usize,
    /// Agreement with the recorded outputs: tokens of the common prefix of each pair of
    /// outputs over the longer output's tokens, summed over prompts; and prompts whose
    /// output is identical.
    pub agreement: f64,
    pub identical_prompts: usize,
    /// Per recorded call: prefill and decode seconds, rows, new tokens.
    pub per_call: Vec<CallFigures>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CallFigures {
    pub call: usize,
    pub rows: usize,
    pub prompt_tokens: usize,
    pub generated_tokens: usize,
    pub prefill_s: f64,
    pub decode_s: f64,
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
    let mut total = BatchTimings::default();
    let (mut prompt_tokens, mut reused, mut generated) = (0, 0, 0);
    let (mut common, mut longest, mut identical) = (0usize, 0usize, 0usize);
    let mut per_call = Vec::new();
    for (&call, prompts) in &calls {
        let inputs: Vec<(Vec<u32>, usize)> = prompts
            .iter()
            .map(|p| (p.prompt_ids.clone(), p.max_new_tokens))
            .collect();
        let (results, timings) = engine.generate_from_ids(&inputs, decoding, &mut |_| {})?;
        total.add(&timings);
        let mut figures = CallFigures {
            call,
            rows: prompts.len(),
            prompt_tokens: 0,
            generated_tokens: 0,
            prefill_s: timings.prefill.as_secs_f64(),
            decode_s: timings.decode.as_secs_f64(),
        };
        for (p, result) in prompts.iter().zip(results) {
            let g = result?;
            prompt_tokens += g.prompt_tokens;
            reused += g.reused_tokens;
            generated += g.new_tokens;
            figures.prompt_tokens += g.prompt_tokens;
            figures.generated_tokens += g.new_tokens;
            let same = g
                .ids
                .iter()
                .zip(&p.generated_ids)
                .take_while(|(a, b)| a == b)
                .count();
            common += same;
            longest += g.ids.len().max(p.generated_ids.len());
            identical += usize::from(g.ids == p.generated_ids);
        }
        per_call.push(figures);
    }
    let rate = |n: usize, s: f64| if s > 0.0 { n as f64 / s } else { 0.0 };
    let (prefill_s, decode_s) = (total.prefill.as_secs_f64(), total.decode.as_secs_f64());
    Ok(ReplayReport {
        model: engine.name().to_string(),
        streamed_bytes: engine.streamed_bytes(),
        batch_rows: engine.batch_rows(),
        prompts: recorded.len(),
        calls: calls.len(),
        prompt_tokens,
        reused_prompt_tokens: reused,
        generated_tokens: generated,
        prefill_s,
        decode_s,
        prefill_tokens_per_s: rate(prompt_tokens, prefill_s),
        decode_tokens_per_s: rate(generated, decode_s),
        batches: total.batches,
        largest_batch: total.largest_batch,
        decode_steps: total.steps,
        agreement: if longest > 0 {
            common as f64 / longest as f64
        } else {
            1.0
        },
        identical_prompts: identical,
        per_call,
    })
}
