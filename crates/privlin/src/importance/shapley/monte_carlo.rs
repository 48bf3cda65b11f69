//! Truncated Monte-Carlo permutation sampling (Ghorbani & Zou 2019, "Data Shapley", Algorithm 1).
//!
//! Each sampled permutation contributes the marginal `U(prefix u i) - U(prefix)` of every player;
//! once a prefix's utility is within `truncation` of `U(N)` the remaining marginals are taken as
//! zero. Sampling stops when every player's standard error is at most `target_stderr` (after
//! `min_permutations`), or at `max_permutations`. Permutations are drawn in rounds of `round`, and
//! the prefixes of one position across a round are evaluated in one batch.

use super::{mean_stderr, prefixes, ShapleyEstimator};
use crate::importance::game::{full, Game};
use anyhow::Result;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

pub struct MonteCarlo {
    pub seed: u64,
    pub min_permutations: usize,
    pub max_permutations: usize,
    /// Convergence: stop when every standard error is at most this (utility units).
    pub target_stderr: f64,
    /// Truncation tolerance, relative to `|U(N)|` (0 disables truncation).
    pub truncation: f64,
    pub round: usize,
}

impl Default for MonteCarlo {
    fn default() -> Self {
        MonteCarlo {
            seed: 0,
            min_permutations: 100,
            max_permutations: 2000,
            target_stderr: 0.25,
            truncation: 0.01,
            round: 10,
        }
    }
}

impl ShapleyEstimator for MonteCarlo {
    fn name(&self) -> &'static str {
        "shapley-mc"
    }

    fn params(&self) -> serde_json::Value {
        serde_json::json!({
            "seed": self.seed, "min_permutations": self.min_permutations, "max_permutations": self.max_permutations,
            "target_stderr": self.target_stderr, "truncation": self.truncation, "round": self.round,
        })
    }

    fn estimate(&self, game: &mut Game) -> Result<(Vec<f64>, Option<Vec<f64>>)> {
        let n = game.n();
        let u_full = game.utility(full(n))?;
        let u_empty = game.utility(0)?;
        let tol = self.truncation * u_full.abs();
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let (mut sum, mut sumsq) = (vec![0.0; n], vec![0.0; n]);
        let mut t = 0usize;
        let mut se = vec![f64::INFINITY; n];
        // The round shrinks to one permutation when a full one would pass --max-evaluations, so
        // the cap is spent to within one permutation's prefixes (issue 39).
        let mut round = self.round.max(1);
        while t < self.max_permutations {
            let r = round.min(self.max_permutations - t);
            let perms: Vec<Vec<usize>> = (0..r)
                .map(|_| {
                    let mut p: Vec<usize> = (0..n).collect();
                    p.shuffle(&mut rng);
                    p
                })
                .collect();
            // --max-evaluations: stop before a round whose prefixes could pass it.
            let all: Vec<u64> = perms.iter().flat_map(|p| prefixes(p)).collect();
            if !game.fits(&all) {
                if r > 1 {
                    round = 1;
                    continue;
                }
                if t == 0 {
                    anyhow::bail!("--max-evaluations leaves no room for one round of permutations");
                }
                break;
            }
            let mut coal = vec![0u64; r];
            let mut prev = vec![u_empty; r];
            let mut done = vec![false; r];
            let mut marg = vec![vec![0.0; n]; r];
            for j in 0..n {
                let live: Vec<usize> = (0..r).filter(|&p| !done[p]).collect();
                for &p in &live {
                    coal[p] |= 1 << perms[p][j];
                }
                let u = game.utilities(&live.iter().map(|&p| coal[p]).collect::<Vec<_>>())?;
                for (&p, v) in live.iter().zip(u) {
                    marg[p][perms[p][j]] = v - prev[p];
                    prev[p] = v;
                    if self.truncation > 0.0 && (u_full - v).abs() < tol {
                        done[p] = true;
                    }
                }
            }
            for m in &marg {
                for i in 0..n {
                    sum[i] += m[i];
                    sumsq[i] += m[i] * m[i];
                }
            }
            t += r;
            se = (0..n).map(|i| mean_stderr(sum[i], sumsq[i], t).1).collect();
            if t >= self.min_permutations && se.iter().all(|&s| s <= self.target_stderr) {
                break;
            }
        }
        let values = (0..n).map(|i| sum[i] / t as f64).collect();
        Ok((values, Some(se)))
    }
}
