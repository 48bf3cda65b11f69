//! Per-site ReLU budgets from layer importance (PrivShap section 3.2, SENet stage 1): the total
//! budget is split in proportion to the sites' scores, capped at each site's capacity with the
//! excess redistributed (water-filling), and rounded to integers that sum exactly to the budget.
//!
//! A player's value is spread over its sites in proportion to their capacity. Negative scores are
//! clipped to zero (and reported); sites with zero score receive ReLUs only when the positive-score
//! sites cannot hold the whole budget, then in proportion to capacity.

use crate::importance::Importance;
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

/// A budget: an absolute count (`12900`, `50k`, `1.2m`) or a share of the capacity (`5%`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Budget {
    Count(i64),
    Ratio(f64),
}

impl std::str::FromStr for Budget {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        let t = s.trim().to_ascii_lowercase();
        let bad =
            || anyhow::anyhow!("budget `{s}` is not a count (12900, 50k, 1.2m) or a ratio (5%)");
        if let Some(p) = t.strip_suffix('%') {
            let v: f64 = p.trim().parse().map_err(|_| bad())?;
            return Ok(Budget::Ratio(v / 100.0));
        }
        let (num, mult) = match t.chars().last() {
            Some('k') => (&t[..t.len() - 1], 1e3),
            Some('m') => (&t[..t.len() - 1], 1e6),
            _ => (t.as_str(), 1.0),
        };
        let v: f64 = num.trim().replace('_', "").parse().map_err(|_| bad())?;
        if !v.is_finite() {
            return Err(bad());
        }
        Ok(Budget::Count((v * mult).round() as i64))
    }
}

impl Budget {
    /// The count this budget means for `capacity` ReLUs; zero or more than the capacity is refused.
    pub fn resolve(self, capacity: i64) -> Result<i64> {
        let n = match self {
            Budget::Count(n) => n,
            Budget::Ratio(r) => (r * capacity as f64).round() as i64,
        };
        if n <= 0 {
            bail!("a ReLU budget of {n} is refused: it must be at least 1 (the model has {capacity} counted ReLUs)");
        }
        if n > capacity {
            bail!("a ReLU budget of {n} is refused: the model has only {capacity} counted ReLUs");
        }
        Ok(n)
    }
}

/// One site of `budget.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SiteBudget {
    pub name: String,
    pub player: String,
    pub capacity: i64,
    pub score: f64,
    pub budget: i64,
}

/// `budget.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Allocation {
    pub budget: i64,
    pub capacity: i64,
    pub method: String,
    pub convention: Option<String>,
    pub sites: Vec<SiteBudget>,
    pub notes: Vec<String>,
}

/// Split `total` over `capacity` in proportion to `score` (all >= 0), capped at capacity, with the
/// excess of capped sites redistributed; real-valued.
fn water_fill(total: f64, score: &[f64], capacity: &[i64]) -> Vec<f64> {
    let mut alloc = vec![0.0; score.len()];
    let mut open: Vec<usize> = (0..score.len()).filter(|&i| score[i] > 0.0).collect();
    let mut left = total;
    while !open.is_empty() && left > 1e-9 {
        let s: f64 = open.iter().map(|&i| score[i]).sum();
        let over: Vec<usize> = open
            .iter()
            .copied()
            .filter(|&i| left * score[i] / s >= capacity[i] as f64)
            .collect();
        if over.is_empty() {
            for &i in &open {
                alloc[i] = left * score[i] / s;
            }
            break;
        }
        for &i in &over {
            alloc[i] = capacity[i] as f64;
            left -= capacity[i] as f64;
        }
        open.retain(|i| !over.contains(i));
    }
    alloc
}

/// Integers that sum to `total`, each within `[0, capacity]`, closest to `real` (largest remainder).
fn round_exact(real: &[f64], capacity: &[i64], total: i64) -> Vec<i64> {
    let mut out: Vec<i64> = real
        .iter()
        .zip(capacity)
        .map(|(r, &c)| (r.floor() as i64).clamp(0, c))
        .collect();
    let mut left = total - out.iter().sum::<i64>();
    let mut order: Vec<usize> = (0..real.len()).collect();
    order.sort_by(|&a, &b| {
        (real[b] - real[b].floor())
            .total_cmp(&(real[a] - real[a].floor()))
            .then(a.cmp(&b))
    });
    while left > 0 {
        let before = left;
        for &i in &order {
            if left == 0 {
                break;
            }
            if out[i] < capacity[i] {
                out[i] += 1;
                left -= 1;
            }
        }
        if left == before {
            break;
        }
    }
    out
}

/// Allocate `budget` over the sites of `imp`.
pub fn allocate(imp: &Importance, budget: Budget) -> Result<Allocation> {
    let Some(sites) = &imp.sites else {
        bail!(
            "importance from method `{}` lists no sites (a utility-table game): budgets need a model's sites",
            imp.method
        );
    };
    let capacity: Vec<i64> = sites.iter().map(|s| s.capacity).collect();
    let total_cap: i64 = capacity.iter().sum();
    let n = budget.resolve(total_cap)?;
    let mut notes = Vec::new();
    let player_cap: Vec<i64> = (0..imp.players.len())
        .map(|p| {
            sites
                .iter()
                .filter(|s| s.player == p)
                .map(|s| s.capacity)
                .sum()
        })
        .collect();
    let mut score: Vec<f64> = sites
        .iter()
        .map(|s| imp.values[s.player] * s.capacity as f64 / player_cap[s.player].max(1) as f64)
        .collect();
    for (s, v) in sites.iter().zip(score.iter_mut()) {
        if !v.is_finite() {
            bail!("importance of site {} is {v}", s.name);
        }
        if *v < 0.0 {
            notes.push(format!(
                "site {} has negative importance {:.4}: clipped to 0",
                s.name, v
            ));
            *v = 0.0;
        }
    }
    if score.iter().all(|&v| v == 0.0) {
        bail!(
            "no site has positive importance under method `{}`: nothing to allocate by (use --method uniform or proportional)",
            imp.method
        );
    }
    let mut real = water_fill(n as f64, &score, &capacity);
    let placed: f64 = real.iter().sum();
    if placed < n as f64 - 1e-6 {
        // The positive-score sites are full: the rest goes to zero-score sites by capacity.
        let rest_score: Vec<f64> = (0..sites.len())
            .map(|i| {
                if score[i] == 0.0 {
                    capacity[i] as f64
                } else {
                    0.0
                }
            })
            .collect();
        let rest_cap: Vec<i64> = capacity.clone();
        let extra = water_fill(n as f64 - placed, &rest_score, &rest_cap);
        for (r, e) in real.iter_mut().zip(extra) {
            *r += e;
        }
        notes.push(format!(
            "the sites with positive importance hold only {placed:.0} ReLUs: {:.0} go to zero-importance sites by capacity",
            n as f64 - placed
        ));
    }
    let ints = round_exact(&real, &capacity, n);
    debug_assert_eq!(ints.iter().sum::<i64>(), n);
    Ok(Allocation {
        budget: n,
        capacity: total_cap,
        method: imp.method.clone(),
        convention: imp.convention.clone(),
        sites: sites
            .iter()
            .zip(score)
            .zip(ints)
            .map(|((s, score), budget)| SiteBudget {
                name: s.name.clone(),
                player: imp.players[s.player].clone(),
                capacity: s.capacity,
                score,
                budget,
            })
            .collect(),
        notes,
    })
}
