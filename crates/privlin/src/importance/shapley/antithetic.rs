//! Antithetic permutation sampling (Mitchell, Cooper, Frank & Holmes 2022, "Sampling
//! permutations for Shapley value estimation", section 4): every sampled permutation is paired
//! with its reverse, and the two marginal vectors are averaged. A player early in one is late in
//! the other, so the pair's marginals are negatively correlated and their mean varies less than
//! two independent permutations'. Standard errors are those of the pair means.

use super::{mean_stderr, prefixes, ShapleyEstimator};
use crate::importance::game::{full, Coalition, Game};
use anyhow::{bail, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

pub struct Antithetic {
    pub seed: u64,
    /// Permutation pairs at least / at most.
    pub min_pairs: usize,
    pub max_pairs: usize,
    /// Stop when every standard error is at most this (utility units).
    pub target_stderr: f64,
    /// Pairs per batch.
    pub round: usize,
}

impl Default for Antithetic {
    fn default() -> Self {
        Antithetic {
            seed: 0,
            min_pairs: 50,
            max_pairs: 1000,
            target_stderr: 0.25,
            round: 10,
        }
    }
}

impl ShapleyEstimator for Antithetic {
    fn name(&self) -> &'static str {
        "shapley-antithetic"
    }

    fn params(&self) -> serde_json::Value {
        serde_json::json!({
            "seed": self.seed, "min_pairs": self.min_pairs, "max_pairs": self.max_pairs,
            "target_stderr": self.target_stderr, "round": self.round,
        })
    }

    fn estimate(&self, game: &mut Game) -> Result<(Vec<f64>, Option<Vec<f64>>)> {
        let n = game.n();
        let u_empty = game.utility(0)?;
        game.utility(full(n))?;
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let (mut sum, mut sumsq) = (vec![0.0; n], vec![0.0; n]);
        let mut t = 0usize;
        let mut se = vec![f64::INFINITY; n];
        // The round shrinks to one pair when a full one would pass --max-evaluations (issue 39).
        let mut round = self.round.max(1);
        while t < self.max_pairs {
            let r = round.min(self.max_pairs - t);
            let perms: Vec<Vec<usize>> = (0..r)
                .flat_map(|_| {
                    let mut p: Vec<usize> = (0..n).collect();
                    p.shuffle(&mut rng);
                    let rev: Vec<usize> = p.iter().rev().copied().collect();
                    [p, rev]
                })
                .collect();
            let coals: Vec<Vec<Coalition>> = perms.iter().map(|p| prefixes(p)).collect();
            let flat: Vec<Coalition> = coals.iter().flatten().copied().collect();
            if !game.fits(&flat) {
                if r > 1 {
                    round = 1;
                    continue;
                }
                if t == 0 {
                    bail!(
                        "--max-evaluations leaves no room for one antithetic pair of {n} players"
                    );
                }
                break;
            }
            let u = game.utilities(&flat)?;
            for (q, pair) in perms.chunks(2).enumerate() {
                let mut m = vec![0.0; n];
                for (h, p) in pair.iter().enumerate() {
                    let base = (2 * q + h) * n;
                    let mut prev = u_empty;
                    for (j, &i) in p.iter().enumerate() {
                        m[i] += 0.5 * (u[base + j] - prev);
                        prev = u[base + j];
                    }
                }
                for i in 0..n {
                    sum[i] += m[i];
                    sumsq[i] += m[i] * m[i];
                }
            }
            t += r;
            se = (0..n).map(|i| mean_stderr(sum[i], sumsq[i], t).1).collect();
            if t >= self.min_pairs && se.iter().all(|&s| s <= self.target_stderr) {
                break;
            }
        }
        Ok(((0..n).map(|i| sum[i] / t as f64).collect(), Some(se)))
    }
}
