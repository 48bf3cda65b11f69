//! DeepReDuce's coarse operations chosen for a ReLU budget (Jha et al., ICML 2021, Sec. 3).
//!
//! Two rules ([`CullRule`]):
//! - `deepreduce` (the default, DeepReDuce's order): cull whole stages least critical first and,
//!   at each number of kept stages, thin them (every second ReLU layer of a stage) before culling
//!   the next; the first configuration at or below the budget is taken. So the kept stages are
//!   always the most critical ones.
//! - `search` (a privlin variant): every set of kept stages with and without thinning, the
//!   largest ReLU count at or below the budget, criticality only breaking ties. It may keep a
//!   less critical stage in place of a more critical one to use more of the budget (at 10 % of the
//!   full ResNet-18 with layer3 > layer2 > layer4 > ... it keeps layer3 + layer4 thinned where
//!   DeepReDuce's order keeps layer3 thinned).
//!
//! When even the smallest configuration is over the budget, it is returned marked as not
//! reaching it: DeepReDuce would then narrow the channels (`--width`) or the resolution
//! (`stem_stride`), which changes the architecture and is priced with `privlin info`.

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

/// How a budget picks the stages to cull.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum CullRule {
    /// Least critical stages first, thinning before the next cull (DeepReDuce's order).
    #[default]
    Deepreduce,
    /// The largest count within the budget over every set of stages (privlin's variant).
    Search,
}

/// The configuration for `budget` counted ReLUs, given the stages most critical first (every
/// stage with counted ReLUs must appear), by `rule`.
pub fn plan(model: &Model, order: &[String], budget: i64, rule: CullRule) -> Result<CullPlan> {
    match rule {
        CullRule::Deepreduce => plan_in_order(model, order, budget),
        CullRule::Search => plan_search(model, order, budget),
    }
}

/// The ranked stages of `order` that hold counted ReLUs, refusing an order that misses one.
fn ranked<'a>(model: &Model, order: &'a [String]) -> Result<Vec<&'a String>> {
    let units = counted_stages(model);
    for u in &units {
        if !order.contains(u) {
            bail!(
                "the criticality order {order:?} does not rank stage `{u}` of {}",
                model.spec.arch
            );
        }
    }
    Ok(order.iter().filter(|s| units.contains(s)).collect())
}

/// Counted ReLUs that keep their nonlinearity under `keep`.
fn kept_relus(model: &Model, keep: &[bool]) -> i64 {
    let sites = model.sites();
    (0..sites.len())
        .filter(|&i| model.counted(i) && keep[i])
        .map(|i| sites[i].count())
        .sum()
}

/// The configuration that keeps the stages `kept` (thinned or not) and culls the rest of
/// `ranked`; `None` when it keeps no counted ReLU.
fn configuration(
    model: &Model,
    ranked: &[&String],
    kept: &[String],
    thin: Option<Thin>,
    budget: i64,
) -> Option<CullPlan> {
    let keep = keep_flags(model, kept, thin);
    let relus = kept_relus(model, &keep);
    (relus > 0).then(|| CullPlan {
        culled: ranked
            .iter()
            .filter(|s| !kept.contains(s))
            .map(|s| s.to_string())
            .collect(),
        kept: kept.to_vec(),
        thin,
        relus,
        reached: relus <= budget,
        keep,
    })
}

/// DeepReDuce's order: keep the `k` most critical stages for `k` from all down to one, each
/// whole and then thinned; the first configuration within the budget, or the smallest (the most
/// critical stage thinned) marked as not reaching it.
fn plan_in_order(model: &Model, order: &[String], budget: i64) -> Result<CullPlan> {
    let ranked = ranked(model, order)?;
    let mut last = None;
    for k in (1..=ranked.len()).rev() {
        let kept: Vec<String> = ranked[..k].iter().map(|s| s.to_string()).collect();
        for thin in [None, Some(Thin::Second)] {
            let Some(p) = configuration(model, &ranked, &kept, thin, budget) else {
                continue;
            };
            if p.reached {
                return Ok(p);
            }
            last = Some(p);
        }
    }
    Ok(last.expect("at least one stage has counted ReLUs"))
}

/// The `search` rule: every subset of stages, with and without thinning.
fn plan_search(model: &Model, order: &[String], budget: i64) -> Result<CullPlan> {
    let ranked = ranked(model, order)?;
    if ranked.len() > 16 {
        bail!("{} stages: too many to search every subset", ranked.len());
    }
    let mut best: Option<(i64, Vec<bool>, CullPlan)> = None;
    let mut smallest: Option<CullPlan> = None;
    for subset in 1u32..(1 << ranked.len()) {
        let kept: Vec<String> = (0..ranked.len())
            .filter(|k| subset >> k & 1 == 1)
            .map(|k| ranked[k].clone())
            .collect();
        for thin in [None, Some(Thin::Second)] {
            let Some(p) = configuration(model, &ranked, &kept, thin, budget) else {
                continue;
            };
            let relus = p.relus;
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
