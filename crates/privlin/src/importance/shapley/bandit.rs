//! Adaptive sampling with confidence bounds, after Neuron Shapley (Ghorbani & Zou 2020): every
//! round samples one marginal `U(S u i) - U(S)` (S = the players before `i` in a random
//! permutation) for each player still active; a player stops once its confidence interval is
//! narrow enough (half-width at most `tolerance`), or, with `top_k`, once it lies entirely on one
//! side of the boundary between the k-th and (k+1)-th largest means (the multi-armed-bandit top-k
//! identification of Neuron Shapley). The half-width is the empirical Bernstein bound
//! (Maurer & Pontil 2009) that Neuron Shapley uses,
//! `sqrt(2 var ln(3/delta) / t) + 3 R ln(3/delta) / t`, with `R` the range of all marginals seen so
//! far: unlike a normal interval it does not collapse when a player's first samples happen to be
//! equal.

use super::{mean_stderr, ShapleyEstimator};
use crate::importance::game::Game;
use anyhow::Result;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

pub struct Bandit {
    pub seed: u64,
    /// Failure probability of each confidence bound.
    pub delta: f64,
    /// Stop a player when its half-width is at most this (utility units).
    pub tolerance: f64,
    pub min_samples: usize,
    pub max_samples: usize,
    /// Identify the top-k players instead of estimating every value to `tolerance`.
    pub top_k: Option<usize>,
}

impl Default for Bandit {
    fn default() -> Self {
        Bandit {
            seed: 0,
            delta: 0.05,
            tolerance: 0.5,
            min_samples: 10,
            max_samples: 2000,
            top_k: None,
        }
    }
}

impl ShapleyEstimator for Bandit {
    fn name(&self) -> &'static str {
        "shapley-bandit"
    }

    fn params(&self) -> serde_json::Value {
        serde_json::json!({
            "seed": self.seed, "delta": self.delta, "tolerance": self.tolerance,
            "min_samples": self.min_samples, "max_samples": self.max_samples, "top_k": self.top_k,
        })
    }

    fn estimate(&self, game: &mut Game) -> Result<(Vec<f64>, Option<Vec<f64>>)> {
        let n = game.n();
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let (mut sum, mut sumsq, mut t) = (vec![0.0; n], vec![0.0; n], vec![0usize; n]);
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        let log_term = (3.0 / self.delta).ln();
        loop {
            let range = if hi > lo { hi - lo } else { 0.0 };
            let half_width = |i: usize, se: f64| {
                let tf = t[i] as f64;
                let var = se * se * tf;
                (2.0 * var * log_term / tf).sqrt() + 3.0 * range * log_term / tf
            };
            let stats: Vec<(f64, f64)> = (0..n)
                .map(|i| mean_stderr(sum[i], sumsq[i], t[i]))
                .collect();
            let boundary = self.top_k.filter(|&k| k > 0 && k < n).map(|k| {
                let mut means: Vec<f64> = stats.iter().map(|s| s.0).collect();
                means.sort_by(|a, b| b.total_cmp(a));
                0.5 * (means[k - 1] + means[k])
            });
            let active: Vec<usize> = (0..n)
                .filter(|&i| {
                    if t[i] < self.min_samples {
                        return true;
                    }
                    if t[i] >= self.max_samples {
                        return false;
                    }
                    let hw = half_width(i, stats[i].1);
                    match boundary {
                        Some(b) => stats[i].0 - hw <= b && stats[i].0 + hw >= b,
                        None => hw > self.tolerance,
                    }
                })
                .collect();
            if active.is_empty() {
                break;
            }
            let mut batch = Vec::with_capacity(2 * active.len());
            for &i in &active {
                let mut p: Vec<usize> = (0..n).collect();
                p.shuffle(&mut rng);
                let s = p
                    .iter()
                    .take_while(|&&j| j != i)
                    .fold(0u64, |c, &j| c | 1 << j);
                batch.push(s);
                batch.push(s | 1 << i);
            }
            let u = game.utilities(&batch)?;
            for (k, &i) in active.iter().enumerate() {
                let m = u[2 * k + 1] - u[2 * k];
                lo = lo.min(m);
                hi = hi.max(m);
                sum[i] += m;
                sumsq[i] += m * m;
                t[i] += 1;
            }
        }
        let stats: Vec<(f64, f64)> = (0..n)
            .map(|i| mean_stderr(sum[i], sumsq[i], t[i]))
            .collect();
        Ok((
            stats.iter().map(|s| s.0).collect(),
            Some(stats.iter().map(|s| s.1).collect()),
        ))
    }
}
