//! Next-token choice: greedy (deterministic) or temperature with nucleus (top-p) sampling.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub enum Sampler {
    Greedy,
    TopP {
        temperature: f64,
        top_p: f64,
        rng: Box<StdRng>,
    },
}

impl Sampler {
    pub fn new(temperature: f64, top_p: f64, seed: u64) -> Self {
        if temperature <= 0.0 {
            Sampler::Greedy
        } else {
            Sampler::TopP {
                temperature,
                top_p: top_p.clamp(f64::MIN_POSITIVE, 1.0),
                rng: Box::new(StdRng::seed_from_u64(seed)),
            }
        }
    }

    /// Picks a token id from one row of logits.
    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        match self {
            Sampler::Greedy => greedy(logits),
            Sampler::TopP {
                temperature,
                top_p,
                rng,
            } => nucleus(logits, *temperature, *top_p, rng),
        }
    }
}

/// Largest logit, the lowest id on ties.
pub fn greedy(logits: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in logits.iter().enumerate() {
        if v > logits[best] {
            best = i;
        }
    }
    best as u32
}

/// The log-probability of token `chosen` under the softmax of `logits`, and that
/// distribution's entropy (nats): the decoder's own confidence signals.
pub fn token_statistics(logits: &[f32], chosen: u32) -> (f32, f32) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let (mut total, mut weighted) = (0.0f64, 0.0f64);
    for &v in logits {
        let shifted = (v - max) as f64;
        let e = shifted.exp();
        total += e;
        weighted += e * shifted;
    }
    let log_total = total.ln();
    let logprob = (logits[chosen as usize] - max) as f64 - log_total;
    // H = log Z - E[shifted logit].
    let entropy = log_total - weighted / total;
    (logprob as f32, entropy.max(0.0) as f32)
}

/// Candidates ranked before the nucleus is cut: sorting the whole vocabulary (152k entries)
/// for every sampled token cost more than the rest of sampling; the cut almost always comes
/// within the first few hundred.
const NUCLEUS_CANDIDATES: usize = 1024;

fn nucleus(logits: &[f32], temperature: f64, top_p: f64, rng: &mut StdRng) -> u32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let mut probs: Vec<(u32, f64)> = logits
        .iter()
        .enumerate()
        .map(|(i, &v)| (i as u32, ((v as f64 - max) / temperature).exp()))
        .collect();
    let total: f64 = probs.iter().map(|p| p.1).sum();
    // Most probable first, the lower id on ties: the order a stable sort by probability
    // gives, so that ranking only the top candidates keeps every choice the same.
    let order = |a: &(u32, f64), b: &(u32, f64)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    let cut_within = |ranked: &[(u32, f64)]| {
        let mut kept = 0.0;
        ranked.iter().position(|p| {
            kept += p.1 / total;
            kept >= top_p
        })
    };
    let mut cut = None;
    if probs.len() > NUCLEUS_CANDIDATES {
        probs.select_nth_unstable_by(NUCLEUS_CANDIDATES - 1, order);
        probs[..NUCLEUS_CANDIDATES].sort_unstable_by(order);
        cut = cut_within(&probs[..NUCLEUS_CANDIDATES]);
    }
    // the nucleus reaches past the top candidates (a flat distribution): rank them all
    let cut = match cut {
        Some(n) => n + 1,
        None => {
            probs.sort_unstable_by(order);
            cut_within(&probs).map_or(probs.len(), |n| n + 1)
        }
    };
    probs.truncate(cut);
    let mass: f64 = probs.iter().map(|p| p.1).sum();
    let mut target = rng.random::<f64>() * mass;
    for (id, p) in &probs {
        target -= p;
        if target <= 0.0 {
            return *id;
        }
    }
    probs.last().map(|p| p.0).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_statistics_match_the_softmax() {
        let (logprob, entropy) = token_statistics(&[0.0, 0.0], 1);
        assert!((logprob - 0.5f32.ln()).abs() < 1e-6);
        assert!((entropy - 2f32.ln()).abs() < 1e-6);
        let (logprob, entropy) = token_statistics(&[10.0, -10.0, -10.0], 0);
        assert!(logprob > -1e-6 && entropy < 1e-6, "{logprob} {entropy}");
    }

    #[test]
    fn greedy_takes_first_maximum() {
        assert_eq!(greedy(&[0.1, 3.0, 3.0, -1.0]), 1);
    }

    #[test]
    fn tiny_top_p_is_greedy() {
        let mut s = Sampler::new(0.8, 1e-9, 7);
        for _ in 0..20 {
            assert_eq!(s.sample(&[0.0, 5.0, 4.9, 1.0]), 1);
        }
    }

    #[test]
    fn same_seed_same_choices() {
        let logits = [1.0, 1.1, 0.9, 1.05];
        let draw = |seed| {
            let mut s = Sampler::new(1.0, 1.0, seed);
            (0..32).map(|_| s.sample(&logits)).collect::<Vec<_>>()
        };
        assert_eq!(draw(3), draw(3));
        assert!(
            draw(3).iter().any(|&t| t != 1),
            "sampling never left the argmax"
        );
    }

    /// The nucleus as it was drawn before candidates were ranked apart: a stable sort of the
    /// whole vocabulary.
    fn nucleus_by_full_sort(logits: &[f32], temperature: f64, top_p: f64, rng: &mut StdRng) -> u32 {
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
        let mut probs: Vec<(u32, f64)> = logits
            .iter()
            .enumerate()
            .map(|(i, &v)| (i as u32, ((v as f64 - max) / temperature).exp()))
            .collect();
        let total: f64 = probs.iter().map(|p| p.1).sum();
        probs.sort_by(|a, b| b.1.total_cmp(&a.1));
        let mut kept = 0.0;
        let mut cut = probs.len();
        for (n, p) in probs.iter().enumerate() {
            kept += p.1 / total;
            if kept >= top_p {
                cut = n + 1;
                break;
            }
        }
        probs.truncate(cut);
        let mass: f64 = probs.iter().map(|p| p.1).sum();
        let mut target = rng.random::<f64>() * mass;
        for (id, p) in &probs {
            target -= p;
            if target <= 0.0 {
                return *id;
            }
        }
        probs.last().map(|p| p.0).unwrap_or(0)
    }

    #[test]
    fn ranking_the_top_candidates_draws_what_a_full_sort_drew() {
        let mut noise = StdRng::seed_from_u64(11);
        // peaked, flat (the nucleus past the candidates) and tied (quantized) logits
        let mut peaked: Vec<f32> = (0..150_000).map(|_| noise.random::<f32>() * 4.0).collect();
        for i in (0..150_000).step_by(9_973) {
            peaked[i] = 12.0 + (i % 5) as f32;
        }
        let wide: Vec<f32> = (0..150_000)
            .map(|_| noise.random::<f32>() * 12.0 - 6.0)
            .collect();
        let flat: Vec<f32> = (0..5_000).map(|_| noise.random::<f32>() * 0.01).collect();
        let tied: Vec<f32> = (0..4_000).map(|i| ((i * 7919) % 13) as f32).collect();
        for logits in [&peaked, &wide, &flat, &tied] {
            for (temperature, top_p) in [(0.7, 0.9), (1.0, 0.95), (1.3, 0.5)] {
                let (mut a, mut b) = (StdRng::seed_from_u64(5), StdRng::seed_from_u64(5));
                for _ in 0..20 {
                    assert_eq!(
                        nucleus(logits, temperature, top_p, &mut a),
                        nucleus_by_full_sort(logits, temperature, top_p, &mut b)
                    );
                }
            }
        }
    }
}
