//! Exact Shapley values: all `2^n` coalitions (PrivShap eq. 1).

use super::{binomial, ShapleyEstimator};
use crate::importance::game::{full, Game};
use anyhow::{bail, Result};

pub struct Exact {
    /// Refuse games with more players than this (2^n utilities); the user can raise it.
    pub max_players: usize,
}

impl Default for Exact {
    fn default() -> Self {
        Exact { max_players: 16 }
    }
}

impl ShapleyEstimator for Exact {
    fn name(&self) -> &'static str {
        "shapley-exact"
    }

    fn params(&self) -> serde_json::Value {
        serde_json::json!({ "max_players": self.max_players })
    }

    fn estimate(&self, game: &mut Game) -> Result<(Vec<f64>, Option<Vec<f64>>)> {
        let n = game.n();
        if n > self.max_players {
            bail!(
                "exact Shapley values of {n} players need 2^{n} = {} utility evaluations; refusing above {} players \
                 (raise the limit with --max-exact, group sites with --players blocks|stages, or use shapley-tree)",
                1u128 << n,
                self.max_players
            );
        }
        let all: Vec<u64> = (0..=full(n)).collect();
        let u = game.utilities(&all)?;
        let weights: Vec<f64> = (0..n)
            .map(|k| 1.0 / (n as f64 * binomial(n - 1, k)))
            .collect();
        let mut sv = vec![0.0; n];
        for s in 0..=full(n) {
            let size = s.count_ones() as usize;
            for (i, v) in sv.iter_mut().enumerate() {
                if s >> i & 1 == 0 {
                    *v += weights[size] * (u[(s | 1 << i) as usize] - u[s as usize]);
                }
            }
        }
        Ok((sv, None))
    }
}
