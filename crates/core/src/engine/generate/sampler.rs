//! Choosing the next token from the logits: repetition penalty, then greedy or
//! temperature → top-k → top-p sampling from a seeded generator (same seed, same tokens).

use rand_chacha::rand_core::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// How tokens are picked. `temperature == 0` means greedy (the most likely token, the first one
/// on a tie); otherwise tokens are sampled.
#[derive(Debug, Clone, PartialEq)]
pub struct Sampling {
    pub temperature: f32,
    /// Keep the `top_k` most likely tokens (0 = all).
    pub top_k: usize,
    /// Keep the smallest set of most likely tokens whose probabilities add up to `top_p`.
    pub top_p: f32,
    /// Hugging Face's rule: a token already in the prompt or the output has its logit divided by
    /// the penalty when positive, multiplied when negative (1.0 = off).
    pub repetition_penalty: f32,
    pub seed: u64,
}

impl Sampling {
    pub fn greedy() -> Sampling {
        Sampling { temperature: 0.0, top_k: 0, top_p: 1.0, repetition_penalty: 1.0, seed: 0 }
    }

    pub fn is_greedy(&self) -> bool {
        self.temperature <= 0.0
    }
}

pub struct Sampler {
    params: Sampling,
    rng: ChaCha8Rng,
    /// Whether each token id has been seen (for the repetition penalty), and the seen ids.
    seen: Vec<bool>,
    seen_ids: Vec<u32>,
    /// Scratch space reused across steps: (logit or probability, token id).
    candidates: Vec<(f32, u32)>,
}

impl Sampler {
    pub fn new(params: Sampling, vocab: usize, prompt: &[u32]) -> Sampler {
        let rng = ChaCha8Rng::seed_from_u64(params.seed);
        let mut sampler =
            Sampler { params, rng, seen: vec![false; vocab], seen_ids: Vec::new(), candidates: Vec::new() };
        for &id in prompt {
            sampler.observe(id);
        }
        sampler
    }

    /// Record a token that is now part of the sequence.
    pub fn observe(&mut self, id: u32) {
        if let Some(seen) = self.seen.get_mut(id as usize) {
            if !*seen {
                *seen = true;
                self.seen_ids.push(id);
            }
        }
    }

    /// The next token for these logits (modified in place by the penalty).
    pub fn sample(&mut self, logits: &mut [f32]) -> u32 {
        let penalty = self.params.repetition_penalty;
        if penalty != 1.0 {
            for &id in &self.seen_ids {
                if let Some(logit) = logits.get_mut(id as usize) {
                    *logit = if *logit > 0.0 { *logit / penalty } else { *logit * penalty };
                }
            }
        }
        if self.params.is_greedy() {
            return argmax(logits);
        }
        self.candidates.clear();
        let inv_t = 1.0 / self.params.temperature;
        self.candidates.extend(logits.iter().enumerate().map(|(i, &l)| (l * inv_t, i as u32)));
        let by_logit = |a: &(f32, u32), b: &(f32, u32)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
        let k = self.params.top_k;
        if k > 0 && k < self.candidates.len() {
            self.candidates.select_nth_unstable_by(k - 1, by_logit);
            self.candidates.truncate(k);
        }
        self.candidates.sort_unstable_by(by_logit);
        // Softmax over what is left (the largest logit first, so exp never overflows).
        let max = self.candidates.first().map(|c| c.0).unwrap_or(0.0);
        let mut total = 0.0f64;
        for c in &mut self.candidates {
            c.0 = (c.0 - max).exp();
            total += f64::from(c.0);
        }
        let mut keep = self.candidates.len();
        if self.params.top_p < 1.0 {
            let mut cumulative = 0.0;
            for (i, c) in self.candidates.iter().enumerate() {
                cumulative += f64::from(c.0) / total;
                if cumulative >= f64::from(self.params.top_p) {
                    keep = i + 1;
                    break;
                }
            }
            total = self.candidates[..keep].iter().map(|c| f64::from(c.0)).sum();
        }
        let mut target = uniform(&mut self.rng) * total;
        for c in &self.candidates[..keep] {
            target -= f64::from(c.0);
            if target < 0.0 {
                return c.1;
            }
        }
        self.candidates[keep - 1].1
    }
}

/// The index of the largest value, the first one on a tie (as numpy's argmax).
pub fn argmax(values: &[f32]) -> u32 {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        if v > values[best] {
            best = i;
        }
    }
    best as u32
}

/// A uniform number in [0, 1) with 53 random bits.
fn uniform(rng: &mut ChaCha8Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sampling(temperature: f32, top_k: usize, top_p: f32, seed: u64) -> Sampling {
        Sampling { temperature, top_k, top_p, repetition_penalty: 1.0, seed }
    }

    #[test]
    fn greedy_takes_the_first_maximum() {
        assert_eq!(argmax(&[0.1, 3.0, 3.0, -1.0]), 1);
        let mut s = Sampler::new(Sampling::greedy(), 4, &[]);
        assert_eq!(s.sample(&mut [0.0, 1.0, 5.0, 2.0]), 2);
    }

    #[test]
    fn penalty_follows_the_hugging_face_rule() {
        let mut params = Sampling::greedy();
        params.repetition_penalty = 2.0;
        let mut s = Sampler::new(params, 3, &[0, 1]);
        let mut logits = [4.0, -1.0, 2.5];
        assert_eq!(s.sample(&mut logits), 2);
        assert_eq!(logits, [2.0, -2.0, 2.5]);
    }

    #[test]
    fn same_seed_same_tokens_and_other_seeds_differ() {
        let logits: Vec<f32> = (0..100).map(|i| ((i * 37) % 11) as f32 * 0.3).collect();
        let run = |seed| {
            let mut s = Sampler::new(sampling(1.0, 0, 1.0, seed), 100, &[]);
            (0..50).map(|_| s.sample(&mut logits.clone())).collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn top_k_and_top_p_bound_the_choice() {
        let logits = [5.0, 4.0, 3.0, 0.0, -1.0];
        let mut s = Sampler::new(sampling(1.0, 2, 1.0, 1), 5, &[]);
        for _ in 0..200 {
            assert!(s.sample(&mut logits.clone()) < 2);
        }
        // p(0) ≈ 0.66, p(1) ≈ 0.24: top_p 0.5 keeps only the first.
        let mut s = Sampler::new(sampling(1.0, 0, 0.5, 1), 5, &[]);
        for _ in 0..200 {
            assert_eq!(s.sample(&mut logits.clone()), 0);
        }
    }

    #[test]
    fn sampling_follows_the_distribution() {
        // Two tokens with probabilities 0.75 / 0.25 (logit difference ln 3).
        let logits = [3f32.ln(), 0.0];
        let mut s = Sampler::new(sampling(1.0, 0, 1.0, 42), 2, &[]);
        let zeros = (0..20_000).filter(|_| s.sample(&mut logits.clone()) == 0).count();
        let share = zeros as f64 / 20_000.0;
        assert!((share - 0.75).abs() < 0.015, "{share}");
    }
}
