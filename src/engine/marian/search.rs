//! Decoding a batch: greedy, or beam search with length normalisation. Rows that finish
//! are dropped from the decoder state so they stop costing compute.

use candle_core::D;
use candle_nn::ops;

use super::model::{DecoderState, MarianModel, OutputLayer};
use crate::error::Result;

#[derive(Debug, Clone, PartialEq)]
pub struct Hypothesis {
    /// Target ids without end-of-sentence.
    pub tokens: Vec<u32>,
    /// Stopped at the length limit.
    pub truncated: bool,
    /// Each token's log-probability under the model.
    pub logprobs: Vec<f32>,
}

/// Greedy decoding of every row of `state`; `limits[r]` caps row r's length.
pub fn greedy(
    model: &MarianModel,
    mut state: DecoderState,
    output: &OutputLayer,
    limits: &[usize],
) -> Result<Vec<Hypothesis>> {
    let rows = state.rows;
    let mut hyps = vec![
        Hypothesis {
            tokens: Vec::new(),
            truncated: false,
            logprobs: Vec::new(),
        };
        rows
    ];
    // alive[j] is the original row of the decoder state's row j.
    let mut alive: Vec<usize> = (0..rows).collect();
    let mut previous = vec![model.eos; rows];
    while !alive.is_empty() {
        let hidden = model.decode_step(&mut state, &previous)?;
        let logits = output.logits(&hidden, &state)?;
        let columns = logits.argmax_keepdim(D::Minus1)?;
        let chosen = ops::log_softmax(&logits, D::Minus1)?
            .gather(&columns, D::Minus1)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        let next: Vec<u32> = columns
            .flatten_all()?
            .to_vec1::<u32>()?
            .into_iter()
            .map(|c| output.token(c as usize))
            .collect();
        let mut keep = Vec::with_capacity(alive.len());
        for (j, (&row, &token)) in alive.iter().zip(&next).enumerate() {
            if token == model.eos {
                continue;
            }
            hyps[row].tokens.push(token);
            hyps[row].logprobs.push(chosen[j]);
            if hyps[row].tokens.len() >= limits[row] {
                hyps[row].truncated = true;
                continue;
            }
            keep.push(j);
        }
        if keep.len() < alive.len() {
            if keep.is_empty() {
                break;
            }
            let kept: Vec<u32> = keep.iter().map(|&j| j as u32).collect();
            state.select(&kept)?;
            alive = keep.iter().map(|&j| alive[j]).collect();
        }
        previous = keep.iter().map(|&j| next[j]).collect();
    }
    Ok(hyps)
}

struct Beam {
    tokens: Vec<u32>,
    logprobs: Vec<f32>,
    score: f32,
    /// Row of the decoder state holding this beam.
    row: usize,
}

/// Beam search: each sentence keeps up to `size` hypotheses; a hypothesis ending in
/// end-of-sentence is set aside and the sentence's beam narrows by one (as Marian does).
/// Each sentence's finished hypotheses come back best first by `score / length^alpha`.
pub fn beam(
    model: &MarianModel,
    mut state: DecoderState,
    output: &OutputLayer,
    limits: &[usize],
    size: usize,
    alpha: f64,
) -> Result<Vec<Vec<Hypothesis>>> {
    let sentences = state.rows;
    let mut beams: Vec<Vec<Beam>> = (0..sentences)
        .map(|s| {
            vec![Beam {
                tokens: Vec::new(),
                logprobs: Vec::new(),
                score: 0.0,
                row: s,
            }]
        })
        .collect();
    let mut finished: Vec<Vec<(Hypothesis, f32)>> = vec![Vec::new(); sentences];
    let mut previous = vec![model.eos; sentences];
    let normalized =
        |tokens: &[u32], score: f32| score as f64 / ((tokens.len() + 1) as f64).powf(alpha);

    loop {
        let hidden = model.decode_step(&mut state, &previous)?;
        let log_probs =
            ops::log_softmax(&output.logits(&hidden, &state)?, D::Minus1)?.to_vec2::<f32>()?;
        let mut next_rows: Vec<u32> = Vec::new();
        let mut next_tokens: Vec<u32> = Vec::new();
        for s in 0..sentences {
            let width = size.saturating_sub(finished[s].len());
            if beams[s].is_empty() || width == 0 {
                beams[s].clear();
                continue;
            }
            // The best `width` continuations of each beam, then the best `width` overall.
            let mut candidates: Vec<(f32, usize, usize)> = Vec::new();
            for (b, beam) in beams[s].iter().enumerate() {
                let row = &log_probs[beam.row];
                let mut columns: Vec<usize> = (0..row.len()).collect();
                let take = width.min(columns.len());
                columns.select_nth_unstable_by(take - 1, |&x, &y| row[y].total_cmp(&row[x]));
                candidates.extend(columns[..take].iter().map(|&c| (beam.score + row[c], b, c)));
            }
            candidates.sort_by(|x, y| y.0.total_cmp(&x.0));
            candidates.truncate(width);
            let mut survivors = Vec::new();
            for (score, b, c) in candidates {
                let parent = &beams[s][b];
                let token = output.token(c);
                let done = |tokens: Vec<u32>, logprobs: Vec<f32>, truncated| {
                    let hypothesis = Hypothesis {
                        tokens,
                        truncated,
                        logprobs,
                    };
                    let rank = normalized(&hypothesis.tokens, score);
                    (hypothesis, rank as f32)
                };
                if token == model.eos {
                    finished[s].push(done(parent.tokens.clone(), parent.logprobs.clone(), false));
                    continue;
                }
                let mut tokens = parent.tokens.clone();
                tokens.push(token);
                let mut logprobs = parent.logprobs.clone();
                logprobs.push(log_probs[parent.row][c]);
                if tokens.len() >= limits[s] {
                    finished[s].push(done(tokens, logprobs, true));
                    continue;
                }
                survivors.push((tokens, logprobs, score, parent.row));
            }
            beams[s] = survivors
                .into_iter()
                .map(|(tokens, logprobs, score, parent_row)| {
                    next_rows.push(parent_row as u32);
                    next_tokens.push(*tokens.last().expect("non-empty"));
                    Beam {
                        tokens,
                        logprobs,
                        score,
                        row: next_rows.len() - 1,
                    }
                })
                .collect();
        }
        if next_rows.is_empty() {
            break;
        }
        state.select(&next_rows)?;
        previous = next_tokens;
    }

    Ok(finished
        .into_iter()
        .map(|mut f| {
            // Of equal scores the last finished wins, as before n-best lists existed.
            f.reverse();
            f.sort_by(|a, b| b.1.total_cmp(&a.1));
            let mut best: Vec<Hypothesis> = f.into_iter().map(|(h, _)| h).collect();
            if best.is_empty() {
                best.push(Hypothesis {
                    tokens: Vec::new(),
                    truncated: true,
                    logprobs: Vec::new(),
                });
            }
            best
        })
        .collect())
}
