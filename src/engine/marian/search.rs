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
        };
        rows
    ];
    // alive[j] is the original row of the decoder state's row j.
    let mut alive: Vec<usize> = (0..rows).collect();
    let mut previous = vec![model.eos; rows];
    while !alive.is_empty() {
        let hidden = model.decode_step(&mut state, &previous)?;
        let next = output.argmax(&output.logits(&hidden, &state)?)?;
        let mut keep = Vec::with_capacity(alive.len());
        for (j, (&row, &token)) in alive.iter().zip(&next).enumerate() {
            if token == model.eos {
                continue;
            }
            hyps[row].tokens.push(token);
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
    score: f32,
    /// Row of the decoder state holding this beam.
    row: usize,
}

/// Beam search: each sentence keeps up to `size` hypotheses; a hypothesis ending in
/// end-of-sentence is set aside and the sentence's beam narrows by one (as Marian does).
/// The best finished hypothesis by `score / length^alpha` wins.
pub fn beam(
    model: &MarianModel,
    mut state: DecoderState,
    output: &OutputLayer,
    limits: &[usize],
    size: usize,
    alpha: f64,
) -> Result<Vec<Hypothesis>> {
    let sentences = state.rows;
    let mut beams: Vec<Vec<Beam>> = (0..sentences)
        .map(|s| {
            vec![Beam {
                tokens: Vec::new(),
                score: 0.0,
                row: s,
            }]
        })
        .collect();
    let mut finished: Vec<Vec<(Vec<u32>, f32, bool)>> = vec![Vec::new(); sentences];
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
                if token == model.eos {
                    finished[s].push((parent.tokens.clone(), score, false));
                    continue;
                }
                let mut tokens = parent.tokens.clone();
                tokens.push(token);
                if tokens.len() >= limits[s] {
                    finished[s].push((tokens, score, true));
                    continue;
                }
                survivors.push((tokens, score, parent.row));
            }
            beams[s] = survivors
                .into_iter()
                .map(|(tokens, score, parent_row)| {
                    next_rows.push(parent_row as u32);
                    next_tokens.push(*tokens.last().expect("non-empty"));
                    Beam {
                        tokens,
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
        .map(|f| {
            f.into_iter()
                .max_by(|a, b| normalized(&a.0, a.1).total_cmp(&normalized(&b.0, b.1)))
                .map(|(tokens, _, truncated)| Hypothesis { tokens, truncated })
                .unwrap_or(Hypothesis {
                    tokens: Vec::new(),
                    truncated: true,
                })
        })
        .collect())
}
