//! Stratified sampling by coalition size (Maleki et al. 2013, "Bounding the estimation error of
//! sampling-based Shapley value approximation"; Castro et al. 2017): PrivShap eq. 1 is
//! `SV_i = 1/n sum_k E[U(S u i) - U(S) | S in N \ {i}, |S| = k]`, so each player's value is the
//! mean of `n` stratum means, each estimated from its own uniform samples. Strata of size 0 and
//! `n - 1` hold one coalition and are computed exactly; the variance of the estimate is
//! `1/n^2 sum_k s_k^2 / m_k` over the sampled strata.

use super::{mean_stderr, random_subset, ShapleyEstimator};
use crate::importance::game::{full, Coalition, Game};
use anyhow::{bail, Result};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

pub struct Stratified {
    pub seed: u64,
    /// Samples per stratum and round.
    pub per_stratum: usize,
    /// Rounds at least / at most.
    pub min_rounds: usize,
    pub max_rounds: usize,
    /// Stop when every standard error is at most this (utility units).
    pub target_stderr: f64,
}

impl Default for Stratified {
    fn default() -> Self {
        Stratified {
            seed: 0,
            per_stratum: 2,
            min_rounds: 5,
            max_rounds: 200,
            target_stderr: 0.25,
        }
    }
}

impl ShapleyEstimator for Stratified {
    fn name(&self) -> &'static str {
        "shapley-stratified"
    }

    fn params(&self) -> serde_json::Value {
        serde_json::json!({
            "seed": self.seed, "per_stratum": self.per_stratum, "min_rounds": self.min_rounds,
            "max_rounds": self.max_rounds, "target_stderr": self.target_stderr,
        })
    }

    fn estimate(&self, game: &mut Game) -> Result<(Vec<f64>, Option<Vec<f64>>)> {
        let n = game.n();
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        // Running sums per (player, size): count, sum, sum of squares of the marginals.
        let mut stats = vec![vec![(0usize, 0.0f64, 0.0f64); n]; n];
        let exact = |k: usize| k == 0 || k + 1 == n;
        let mut se = vec![f64::INFINITY; n];
        let mut rounds = 0;
        while rounds < self.max_rounds {
            // The marginals of this round: (player, size, S).
            let mut draws: Vec<(usize, usize, Coalition)> = Vec::new();
            for i in 0..n {
                let pool: Vec<usize> = (0..n).filter(|&j| j != i).collect();
                for k in 0..n {
                    let m = if exact(k) {
                        usize::from(rounds == 0)
                    } else {
                        self.per_stratum.max(2)
                    };
                    for _ in 0..m {
                        draws.push((i, k, random_subset(&mut rng, &pool, k)));
                    }
                }
            }
            let coalitions: Vec<Coalition> = draws
                .iter()
                .flat_map(|&(i, _, s)| [s, s | 1 << i])
                .collect();
            if !game.fits(&coalitions) {
                if rounds == 0 {
                    bail!("--max-evaluations leaves no room for one round of {n} x {n} strata");
                }
                break;
            }
            let u = game.utilities(&coalitions)?;
            for (d, &(i, k, _)) in draws.iter().enumerate() {
                let m = u[2 * d + 1] - u[2 * d];
                let s = &mut stats[i][k];
                s.0 += 1;
                s.1 += m;
                s.2 += m * m;
            }
            rounds += 1;
            se = (0..n)
                .map(|i| {
                    let var: f64 = (0..n)
                        .filter(|&k| !exact(k))
                        .map(|k| {
                            let (c, s, q) = stats[i][k];
                            mean_stderr(s, q, c).1.powi(2)
                        })
                        .sum();
                    var.sqrt() / n as f64
                })
                .collect();
            if rounds >= self.min_rounds && se.iter().all(|&s| s <= self.target_stderr) {
                break;
            }
        }
        game.utility(full(n))?;
        let values = (0..n)
            .map(|i| stats[i].iter().map(|&(c, s, _)| s / c as f64).sum::<f64>() / n as f64)
            .collect();
        Ok((values, Some(se)))
    }
}
