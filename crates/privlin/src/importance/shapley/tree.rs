//! Tree-trimming Shapley estimation (PrivShap section 3.1, Algorithm 1).
//!
//! For each player `i`, start at the root `S = N \ {i}` and walk down the subset tree (children of
//! `S` are `S \ {j}`), adding `(U(S u i) - U(S)) / C(n-1, |S|)` for every visited `S`; the children
//! of `S` are expanded only while the tested utility is at least the threshold `alpha`. Algorithm 1
//! tests `U(S u {i})`, the text of section 3.1 tests `U(S)`: both are available, Algorithm 1 is the
//! default. With `alpha` below every utility nothing is trimmed and the result is exact. Each tree
//! level of every player is evaluated in one batch, so the model can share work between them.

use super::{binomial, members, ShapleyEstimator};
use crate::importance::game::{full, Game};
use anyhow::{bail, Result};
use std::collections::HashSet;

/// Which utility decides whether a node's children are expanded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrimTest {
    /// `U(S u {i}) >= alpha` (PrivShap Algorithm 1, line 10).
    WithPlayer,
    /// `U(S) >= alpha` (PrivShap section 3.1 text).
    Coalition,
}

pub struct TreeTrimming {
    /// The trimming threshold `alpha`, in utility units (accuracy in percent for model games).
    pub threshold: f64,
    pub test: TrimTest,
    /// Give up (with an explanation) after this many distinct coalitions.
    pub max_evaluations: usize,
}

impl Default for TreeTrimming {
    fn default() -> Self {
        TreeTrimming {
            threshold: 5.0,
            test: TrimTest::WithPlayer,
            max_evaluations: 200_000,
        }
    }
}

impl ShapleyEstimator for TreeTrimming {
    fn name(&self) -> &'static str {
        "shapley-tree"
    }

    fn params(&self) -> serde_json::Value {
        serde_json::json!({
            "threshold": self.threshold,
            "test": match self.test { TrimTest::WithPlayer => "with-player", TrimTest::Coalition => "coalition" },
            "max_evaluations": self.max_evaluations,
        })
    }

    fn estimate(&self, game: &mut Game) -> Result<(Vec<f64>, Option<Vec<f64>>)> {
        let n = game.n();
        let mut sv = vec![0.0; n];
        let mut frontier: Vec<Vec<u64>> = (0..n).map(|i| vec![full(n) & !(1 << i)]).collect();
        let mut visited: Vec<HashSet<u64>> = frontier
            .iter()
            .map(|f| f.iter().copied().collect())
            .collect();
        while frontier.iter().any(|f| !f.is_empty()) {
            if game.evaluations() > self.max_evaluations {
                bail!(
                    "tree-trimming asked for {} coalitions and is not done: the threshold {} trims too little \
                     (utilities stay above it; with accuracy as utility, chance level is 100/classes): raise \
                     --threshold, group sites with --players, or raise --max-evaluations",
                    game.evaluations(),
                    self.threshold
                );
            }
            let mut batch = Vec::new();
            for (i, f) in frontier.iter().enumerate() {
                for &s in f {
                    batch.push(s);
                    batch.push(s | 1 << i);
                }
            }
            let u = game.utilities(&batch)?;
            let mut k = 0;
            let mut next: Vec<Vec<u64>> = vec![Vec::new(); n];
            for (i, f) in frontier.iter().enumerate() {
                for &s in f {
                    let (us, usi) = (u[k], u[k + 1]);
                    k += 2;
                    sv[i] += (usi - us) / binomial(n - 1, s.count_ones() as usize);
                    let tested = match self.test {
                        TrimTest::WithPlayer => usi,
                        TrimTest::Coalition => us,
                    };
                    if tested >= self.threshold {
                        for j in members(s, n) {
                            let child = s & !(1 << j);
                            if visited[i].insert(child) {
                                next[i].push(child);
                            }
                        }
                    }
                }
            }
            frontier = next;
        }
        for v in &mut sv {
            *v /= n as f64;
        }
        Ok((sv, None))
    }
}
