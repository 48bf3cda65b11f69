//! DeepReDuce's coarse operations chosen for a ReLU budget (Jha et al., ICML 2021, Sec. 3):
//! cull whole stages, least critical first, and thin (every second ReLU layer of a stage) the
//! ones that stay, so that the ReLUs left come as close to the budget as whole layers allow.
//!
//! DeepReDuce hand-picks its configurations per target; to serve any budget, privlin searches
//! every set of kept stages with and without thinning and takes the largest ReLU count at or
//! below the budget; among equal counts, the set that keeps the more critical stages. When even
//! the smallest configuration is over the budget, it is returned marked as not reaching it:
//! DeepReDuce would then narrow the channels (`--width`) or the resolution (`stem_stride`),
//! which changes the architecture and is priced with `privlin info`.

use crate::nn::removal::{stage_of, thin_drops};
use crate::nn::{Model, Thin};
use anyhow::{bail, Result};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CullPlan {
    /// Stages whose ReLUs are all removed.
    pub culled: Vec<String>,
    /// Stages kept, most critical first.
    pub kept: Vec<String>,
    pub thin: Option<Thin>,
    /// Counted ReLUs left.
    pub relus: i64,
    pub reached: bool,
    /// Per site: keeps its nonlinearity.
    #[serde(skip)]
    pub keep: Vec<bool>,
}

/// The stages that hold counted ReLUs, in forward order (`stem`, `layer1`, ...).
pub fn counted_stages(model: &Model) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for (i, s) in model.sites().iter().enumerate() {
        let st = stage_of(s);
        if model.counted(i) && !out.contains(&st) {
            out.push(st);
        }
    }
    out
}

/// Per-site keep flags of keeping `kept` stages, thinned or not; uncounted sites keep.
pub fn keep_flags(model: &Model, kept: &[String], thin: Option<Thin>) -> Vec<bool> {
    let sites = model.sites();
    let mut keep: Vec<bool> = sites
        .iter()
        .enumerate()
        .map(|(i, s)| !model.counted(i) || kept.contains(&stage_of(s)))
        .collect();
    if let Some(t) = thin {
        for (i, d) in thin_drops(sites, t).into_iter().enumerate() {
            if d && model.counted(i) {
                keep[i] = false;
            }
        }
    }
    keep
}

/// The configuration for `budget` counted ReLUs, given the stages most critical first (every
/// stage with counted ReLUs must appear).
pub fn plan(model: &Model, order: &[String], budget: i64) -> Result<CullPlan> {
    let units = counted_stages(model);
    for u in &units {
        if !order.contains(u) {
            bail!(
                "the criticality order {order:?} does not rank stage `{u}` of {}",
                model.spec.arch
            );
        }
    }
    let ranked: Vec<&String> = order.iter().filter(|s| units.contains(s)).collect();
    if ranked.len() > 16 {
        bail!("{} stages: too many to search every subset", ranked.len());
    }
    let counts = model.sites();
    let mut best: Option<(i64, Vec<bool>, CullPlan)> = None;
    let mut smallest: Option<CullPlan> = None;
    for subset in 1u32..(1 << ranked.len()) {
        let kept: Vec<String> = (0..ranked.len())
            .filter(|k| subset >> k & 1 == 1)
            .map(|k| ranked[k].clone())
            .collect();
        for thin in [None, Some(Thin::Second)] {
            let keep = keep_flags(model, &kept, thin);
            let relus: i64 = (0..counts.len())
                .filter(|&i| model.counted(i) && keep[i])
                .map(|i| counts[i].count())
                .sum();
            if relus == 0 {
                continue;
            }
            let p = CullPlan {
                culled: ranked
                    .iter()
                    .filter(|s| !kept.contains(s))
                    .map(|s| s.to_string())
                    .collect(),
                kept: kept.clone(),
                thin,
                relus,
                reached: relus <= budget,
                keep,
            };
            if smallest.as_ref().is_none_or(|s| relus < s.relus) {
                smallest = Some(p.clone());
            }
            if relus > budget {
                continue;
            }
            // Rank: more ReLUs, then more critical stages kept (lexicographic over the order),
            // then no thinning.
            let crit: Vec<bool> = (0..ranked.len()).map(|k| subset >> k & 1 == 1).collect();
            let better = match &best {
                None => true,
                Some((r, c, bp)) => {
                    relus > *r || (relus == *r && (crit > *c || (crit == *c && bp.thin.is_some())))
                }
            };
            if better {
                best = Some((relus, crit, p));
            }
        }
    }
    Ok(match best {
        Some((_, _, p)) => p,
        None => smallest.expect("at least one stage has counted ReLUs"),
    })
}
