//! Regression estimators of Shapley values: KernelSHAP (Lundberg & Lee 2017, Thm. 2) and its
//! leverage-score-sampling variant (Musco & Witter 2024, "Provably accurate Shapley value
//! estimation via leverage score sampling").
//!
//! Shapley values solve a weighted least-squares problem over all proper coalitions `S` with the
//! Shapley kernel `mu(S) = (n - 1) / (C(n, |S|) |S| (n - |S|))`, under the efficiency constraint
//! `sum phi = U(N) - U(0)`. Both estimators sample coalitions, weight each by `mu(S) / p(S)`, and
//! solve the constrained problem in closed form (Covert & Lee 2021, eq. 7;
//! [`super::constrained_wls`]), so efficiency holds exactly:
//! - `shapley-kernel` draws `S` from the kernel itself (size `k` with probability proportional
//!   to `1 / (k (n - k))`, then a uniform subset): every draw weighs the same;
//! - `shapley-leverage` draws the size uniformly from `1..n-1` (the leverage scores of the
//!   regression are equal within a size and proportional to `1 / C(n, k)`), each draw weighted
//!   `(n - 1) / (k (n - k))`.
//!
//! Paired sampling (Covert & Lee 2021) adds each draw's complement. Standard errors come from a
//! bootstrap over the draws (pairs resampled together). When the sample size reaches all
//! `2^n - 2` proper coalitions the estimator enumerates them with their exact kernel weights, and
//! the solution equals the exact Shapley values.

use super::{constrained_wls, kernel_weight, random_subset, ShapleyEstimator};
use crate::importance::game::{full, Coalition, Game};
use anyhow::Result;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// How coalition sizes are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sampling {
    /// From the Shapley kernel (KernelSHAP).
    Kernel,
    /// Uniform over sizes (leverage scores).
    Leverage,
}

pub struct KernelShap {
    pub seed: u64,
    pub sampling: Sampling,
    /// Coalitions to draw (a pair counts two).
    pub samples: usize,
    /// Also evaluate each draw's complement.
    pub paired: bool,
    /// Bootstrap resamples for the standard errors (0: none).
    pub bootstrap: usize,
    /// Draws evaluated per batch.
    pub round: usize,
}

impl Default for KernelShap {
    fn default() -> Self {
        KernelShap {
            seed: 0,
            sampling: Sampling::Kernel,
            samples: 2048,
            paired: true,
            bootstrap: 200,
            round: 64,
        }
    }
}

impl KernelShap {
    pub fn leverage() -> Self {
        KernelShap {
            sampling: Sampling::Leverage,
            ..Default::default()
        }
    }

    /// A size in `1..n-1` and the weight of a draw of that size.
    fn draw_size<R: Rng>(&self, rng: &mut R, n: usize, cdf: &[f64]) -> (usize, f64) {
        match self.sampling {
            Sampling::Kernel => {
                let x: f64 = rng.gen();
                let k = cdf.iter().position(|&c| x < c).unwrap_or(n - 2) + 1;
                (k, 1.0)
            }
            Sampling::Leverage => {
                let k = rng.gen_range(1..n);
                (k, (n - 1) as f64 / (k * (n - k)) as f64)
            }
        }
    }
}

impl ShapleyEstimator for KernelShap {
    fn name(&self) -> &'static str {
        match self.sampling {
            Sampling::Kernel => "shapley-kernel",
            Sampling::Leverage => "shapley-leverage",
        }
    }

    fn params(&self) -> serde_json::Value {
        serde_json::json!({
            "seed": self.seed, "samples": self.samples, "paired": self.paired,
            "bootstrap": self.bootstrap, "round": self.round,
            "sampling": match self.sampling { Sampling::Kernel => "kernel", Sampling::Leverage => "leverage" },
        })
    }

    fn estimate(&self, game: &mut Game) -> Result<(Vec<f64>, Option<Vec<f64>>)> {
        let n = game.n();
        let (u_empty, u_full) = (game.utility(0)?, game.utility(full(n))?);
        if n < 2 {
            return Ok((vec![u_full - u_empty; n], Some(vec![0.0; n])));
        }
        let proper = (1u128 << n) - 2;
        let room = game.cap().is_none_or(|c| c as u128 >= proper + 2);
        if (self.samples as u128) >= proper && n <= 24 && room {
            // Every proper coalition with its kernel weight: the exact solution.
            let all: Vec<Coalition> = (1..full(n)).collect();
            let u = game.utilities(&all)?;
            let rows: Vec<(Coalition, f64, f64)> = all
                .iter()
                .zip(u)
                .map(|(&c, u)| (c, kernel_weight(n, c.count_ones() as usize), u))
                .collect();
            return Ok((
                constrained_wls(n, &rows, u_empty, u_full)?,
                Some(vec![0.0; n]),
            ));
        }
        let pool: Vec<usize> = (0..n).collect();
        let inv: Vec<f64> = (1..n).map(|k| 1.0 / (k * (n - k)) as f64).collect();
        let total: f64 = inv.iter().sum();
        let cdf: Vec<f64> = inv
            .iter()
            .scan(0.0, |s, x| {
                *s += x / total;
                Some(*s)
            })
            .collect();
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let per = if self.paired { 2 } else { 1 };
        // Draws: one coalition, or a coalition and its complement (one bootstrap unit each).
        let mut units: Vec<Vec<(Coalition, f64, f64)>> = Vec::new();
        // Under --max-evaluations the rounds shrink to one draw when a full one would pass the
        // cap, and a last draw goes in without its complement when only one distinct coalition
        // is left: the cap is spent exactly (issue 39; draws repeat coalitions, so the sampler
        // keeps drawing until the distinct ones reach it).
        let mut round = self.round.max(1);
        while units.len() * per < self.samples {
            let r = round.min((self.samples - units.len() * per).div_ceil(per));
            let draws: Vec<(Coalition, f64)> = (0..r)
                .map(|_| {
                    let (k, w) = self.draw_size(&mut rng, n, &cdf);
                    (random_subset(&mut rng, &pool, k), w)
                })
                .collect();
            let mut coalitions: Vec<Coalition> = draws.iter().map(|d| d.0).collect();
            if self.paired {
                coalitions.extend(draws.iter().map(|d| full(n) & !d.0));
            }
            if !game.fits(&coalitions) {
                if r > 1 {
                    round = 1;
                    continue;
                }
                if self.paired && game.fits(&coalitions[..1]) {
                    let (c, w) = draws[0];
                    let u = game.utilities(&[c])?;
                    units.push(vec![(c, w, u[0])]);
                }
                break;
            }
            let u = game.utilities(&coalitions)?;
            for (j, &(c, w)) in draws.iter().enumerate() {
                let mut unit = vec![(c, w, u[j])];
                if self.paired {
                    unit.push((full(n) & !c, w, u[r + j]));
                }
                units.push(unit);
            }
        }
        let rows: Vec<(Coalition, f64, f64)> = units.iter().flatten().copied().collect();
        let values = constrained_wls(n, &rows, u_empty, u_full)?;
        if self.bootstrap < 2 {
            return Ok((values, None));
        }
        let mut boot = ChaCha8Rng::seed_from_u64(self.seed ^ 0xb007);
        let (mut sum, mut sumsq) = (vec![0.0; n], vec![0.0; n]);
        let mut b = 0usize;
        for _ in 0..self.bootstrap {
            let rows: Vec<(Coalition, f64, f64)> = (0..units.len())
                .flat_map(|_| units[boot.gen_range(0..units.len())].iter().copied())
                .collect();
            // A resample can be singular when draws are few; it is skipped.
            if let Ok(v) = constrained_wls(n, &rows, u_empty, u_full) {
                for i in 0..n {
                    sum[i] += v[i];
                    sumsq[i] += v[i] * v[i];
                }
                b += 1;
            }
        }
        let se = (0..n)
            .map(|i| {
                if b < 2 {
                    return f64::INFINITY;
                }
                let mean = sum[i] / b as f64;
                ((sumsq[i] - b as f64 * mean * mean) / (b - 1) as f64)
                    .max(0.0)
                    .sqrt()
            })
            .collect();
        Ok((values, Some(se)))
    }
}
