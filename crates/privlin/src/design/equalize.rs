//! ReLU equalization (DeepReShape, `shared/papers/004_*`, "ReLU Equalization" and "Design of
//! PI-efficient HybReNets").
//!
//! What the slides say: ReLUs are redistributed over the stages by their criticality, by choosing
//! the stage width multipliers (alpha, beta, gamma; stage widths `m, alpha m, alpha beta m,
//! alpha beta gamma m`) so that the stages' ReLU counts follow the criticality order (for
//! ResNet-18 on CIFAR-100, `#ReLUs(S3) > #ReLUs(S2) > #ReLUs(S4) > #ReLUs(S1)`, giving
//! HRN-7x5x2x); a bound on gamma keeps the deepest stage's FLOPs from exploding (HRN-5x5x3x
//! without it); HRN-6x6x2x and HRN-5x7x2x are the alternatives.
//!
//! What had to be decided, and how:
//! - Strict inequalities between consecutive stages of the order, on the stage ReLU counts of
//!   [`super::stage_costs`] (so blocks per stage, input size and stem stride count).
//! - Integer multipliers from 1 to `max_multiplier`, gamma at most `gamma_max`.
//! - "The smallest multipliers that satisfy it": the candidates kept are the minimal ones, those
//!   for which no other feasible triple is at most as large in every multiplier. With the slides'
//!   order and `gamma_max = 2` these are exactly HRN-7x5x2x, HRN-6x6x2x and HRN-5x7x2x (the three
//!   networks on the slide) plus, with gamma = 1, triples whose total ReLUs are all larger; with
//!   `gamma_max = 3` HRN-5x5x3x joins them: the slides' four networks fall out of this rule,
//!   which is the check that it is the right reading (tested).
//! - Which candidate to train: the one with the fewest ReLUs, then the fewest MACs (HRN-5x7x2x
//!   for the slides' order: 354 vs 376 and 386 units of `32 m` ReLUs); every candidate is printed
//!   so a user can take another.

use super::stages::{stage_costs, StageCost};
use crate::nn::{Arch, ModelSpec};
use anyhow::{bail, Result};
use serde::Serialize;

#[derive(Debug, Clone)]
pub struct EqualizeConfig {
    /// Stage indices 0..4, most critical first (a permutation).
    pub order: Vec<usize>,
    /// Upper bound on gamma, the last stage's multiplier.
    pub gamma_max: i64,
    /// Largest multiplier searched.
    pub max_multiplier: i64,
    /// Width, input size, blocks per stage, stem stride and classes of the candidates.
    pub base: ModelSpec,
}

/// A HybReNet that satisfies the order.
#[derive(Debug, Clone, Serialize)]
pub struct Candidate {
    pub arch: String,
    pub multipliers: [i64; 3],
    pub stages: [StageCost; 4],
    /// ReLUs of the four stages plus the stem.
    pub relus: i64,
    pub macs: i64,
}

/// Parses a criticality order such as `S3>S2>S4>S1` or `3,2,4,1` into stage indices.
pub fn parse_order(s: &str) -> Result<Vec<usize>> {
    let parts: Vec<&str> = s
        .split(|c: char| c == '>' || c == ',' || c.is_whitespace())
        .filter(|p| !p.is_empty())
        .collect();
    let mut order = Vec::new();
    for p in parts {
        let l = p.to_ascii_lowercase();
        let d = l
            .strip_prefix("layer")
            .or_else(|| l.strip_prefix('s'))
            .unwrap_or(&l);
        match d.parse::<usize>() {
            Ok(i) if (1..=4).contains(&i) => order.push(i - 1),
            _ => bail!(
                "criticality order `{s}`: unknown stage `{p}` (expected S1..S4, e.g. S3>S2>S4>S1)"
            ),
        }
    }
    validate_order(&order, s)?;
    Ok(order)
}

/// An order of stage indices in the slides' notation, joined by `sep` (`S3>S2>S4>S1`).
pub fn order_name(order: &[usize], sep: &str) -> String {
    order
        .iter()
        .map(|i| format!("S{}", i + 1))
        .collect::<Vec<_>>()
        .join(sep)
}

fn validate_order(order: &[usize], what: &str) -> Result<()> {
    let mut seen = [false; 4];
    for &i in order {
        if i >= 4 || seen[i] {
            bail!("criticality order `{what}` must name each of the four stages once");
        }
        seen[i] = true;
    }
    if order.len() != 4 {
        bail!("criticality order `{what}` must name each of the four stages once");
    }
    Ok(())
}

/// The minimal HybReNets whose stage ReLUs follow `cfg.order`, fewest ReLUs (then MACs) first.
pub fn equalize(cfg: &EqualizeConfig) -> Result<Vec<Candidate>> {
    validate_order(&cfg.order, &format!("{:?}", cfg.order))?;
    if cfg.gamma_max < 1 {
        bail!("gamma bound {} must be at least 1", cfg.gamma_max);
    }
    if cfg.max_multiplier < 1 {
        bail!(
            "largest multiplier {} must be at least 1",
            cfg.max_multiplier
        );
    }
    let mut feasible: Vec<Candidate> = Vec::new();
    for a in 1..=cfg.max_multiplier {
        for b in 1..=cfg.max_multiplier {
            for g in 1..=cfg.gamma_max.min(cfg.max_multiplier) {
                let mut spec = cfg.base.clone();
                spec.arch = Arch::Hrn {
                    alpha: a,
                    beta: b,
                    gamma: g,
                };
                let (stem, st, head) = stage_costs(&spec)?;
                let ok = cfg
                    .order
                    .windows(2)
                    .all(|w| st[w[0]].relus > st[w[1]].relus);
                if ok {
                    feasible.push(Candidate {
                        arch: spec.arch.to_string(),
                        multipliers: [a, b, g],
                        stages: st,
                        relus: stem.relus + st.iter().map(|s| s.relus).sum::<i64>(),
                        macs: stem.macs + st.iter().map(|s| s.macs).sum::<i64>() + head,
                    });
                }
            }
        }
    }
    let dominated = |c: &Candidate| {
        feasible.iter().any(|o| {
            o.multipliers != c.multipliers && (0..3).all(|k| o.multipliers[k] <= c.multipliers[k])
        })
    };
    let mut minimal: Vec<Candidate> = feasible.iter().filter(|c| !dominated(c)).cloned().collect();
    minimal.sort_by_key(|c| (c.relus, c.macs, c.multipliers));
    if minimal.is_empty() {
        bail!(
            "no multipliers up to {} (gamma at most {}) put the stages' ReLUs in the order {}: raise --max-multiplier or --gamma-max",
            cfg.max_multiplier,
            cfg.gamma_max,
            order_name(&cfg.order, " > ")
        );
    }
    Ok(minimal)
}

/// The chosen candidate as the `[model]` table of a run config (`privlin train --config`), with
/// the base spec's width, blocks and stem stride.
pub fn model_config(c: &Candidate, base: &ModelSpec) -> crate::train::ModelConfig {
    crate::train::ModelConfig {
        arch: c.arch.clone(),
        width: base.width,
        activation: base.activation,
        convention: base.convention.name(),
        blocks: base.blocks.clone(),
        stem_stride: base.stem_stride,
        cull: Vec::new(),
        thin: None,
        from: None,
    }
}

/// A table of the candidates, the chosen one (`[0]`) marked.
pub fn table(cands: &[Candidate], base: &ModelSpec) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let m = base.ch(64);
    let _ = writeln!(
        s,
        "{:<2}{:<14} {:>38} {:>11} {:>10}",
        "", "network", "stage ReLUs S1 / S2 / S3 / S4", "ReLUs", "MMACs"
    );
    for (i, c) in cands.iter().enumerate() {
        let st = c
            .stages
            .iter()
            .map(|x| x.relus.to_string())
            .collect::<Vec<_>>()
            .join(" / ");
        let _ = writeln!(
            s,
            "{:<2}{:<14} {:>38} {:>11} {:>10.1}",
            if i == 0 { "*" } else { "" },
            c.arch,
            st,
            c.relus,
            c.macs as f64 / 1e6
        );
    }
    let _ = writeln!(
        s,
        "m = {m} (width {}), input {}x{}, stem stride {}; * = fewest ReLUs, then fewest MACs",
        base.width, base.input_size, base.input_size, base.stem_stride
    );
    s
}
