//! DeepReDuce's coarse ReLU operations on a model's sites (Jha et al., ICML 2021, Sec. 3):
//! *culling* removes every ReLU layer of the chosen stages, *thinning* every other ReLU layer of
//! the stages that remain. A removed site is the identity in every forward pass, is not counted,
//! takes no mask and exports as no ReLU: the architecture has changed, not a mask.

use super::site::{SiteInfo, SiteKind};
use super::spec::{ModelSpec, Thin};
use anyhow::{bail, Result};

/// The stage a site belongs to: `stem` and `final` for those kinds, else the first component of
/// its module path (`layer2` for `layer2.1.act1`, `block3` for WRN, `res1` for ResNet-9).
pub fn stage_of(site: &SiteInfo) -> String {
    match site.kind {
        SiteKind::Stem => "stem".into(),
        SiteKind::Final => "final".into(),
        _ => site.name.split('.').next().unwrap_or("").to_string(),
    }
}

/// The body stages of a model in forward order (stem and final site excluded): `s1` is the first.
pub fn stages(sites: &[SiteInfo]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for s in sites {
        if matches!(s.kind, SiteKind::Stem | SiteKind::Final) {
            continue;
        }
        let st = stage_of(s);
        if !out.contains(&st) {
            out.push(st);
        }
    }
    out
}

/// Resolves a stage name as the user wrote it (`layer3`, `s3`, `stem`) against `sites`.
pub fn resolve_stage(name: &str, sites: &[SiteInfo]) -> Result<String> {
    let body = stages(sites);
    let l = name.trim().to_ascii_lowercase();
    let has = |k: SiteKind| sites.iter().any(|s| s.kind == k);
    if (l == "stem" && has(SiteKind::Stem)) || (l == "final" && has(SiteKind::Final)) {
        return Ok(l);
    }
    if body.contains(&l) {
        return Ok(l);
    }
    if let Some(i) = l
        .strip_prefix('s')
        .and_then(|d| d.parse::<usize>().ok())
        .filter(|&i| i >= 1 && i <= body.len())
    {
        return Ok(body[i - 1].clone());
    }
    let mut known: Vec<String> = Vec::new();
    if has(SiteKind::Stem) {
        known.push("stem".into());
    }
    known.extend(body.iter().cloned());
    if has(SiteKind::Final) {
        known.push("final".into());
    }
    bail!(
        "unknown stage `{name}`; this model's stages are {} (or s1..s{})",
        known.join(", "),
        body.len()
    )
}

/// Per site: whether the spec's culling and thinning remove it. Refuses unknown stage names and a
/// configuration that leaves no ReLU at all.
pub fn removed_sites(spec: &ModelSpec, sites: &[SiteInfo]) -> Result<Vec<bool>> {
    let mut culled: Vec<String> = Vec::new();
    for c in &spec.cull {
        let st = resolve_stage(c, sites)?;
        if !culled.contains(&st) {
            culled.push(st);
        }
    }
    let mut removed: Vec<bool> = sites
        .iter()
        .map(|s| culled.contains(&stage_of(s)))
        .collect();
    if let Some(thin) = spec.thin {
        for (r, d) in removed.iter_mut().zip(thin_drops(sites, thin)) {
            *r |= d;
        }
    }
    let left = sites
        .iter()
        .zip(&removed)
        .filter(|(s, &r)| !r && spec.convention.counts(s.kind))
        .count();
    if left == 0 {
        bail!(
            "culling {:?}{} removes every counted ReLU of {}: keep at least one stage",
            spec.cull,
            if spec.thin.is_some() {
                " and thinning"
            } else {
                ""
            },
            spec.arch
        );
    }
    Ok(removed)
}

/// Per site: whether thinning drops it. Sites of the body stages are numbered within their stage
/// from 0; `Second` drops the odd ones, `First` the even ones; stem and final sites never.
pub fn thin_drops(sites: &[SiteInfo], thin: Thin) -> Vec<bool> {
    let mut seen: Vec<(String, usize)> = Vec::new();
    sites
        .iter()
        .map(|s| {
            if matches!(s.kind, SiteKind::Stem | SiteKind::Final) {
                return false;
            }
            let st = stage_of(s);
            let j = match seen.iter_mut().find(|(n, _)| *n == st) {
                Some((_, j)) => {
                    *j += 1;
                    *j
                }
                None => {
                    seen.push((st, 0));
                    0
                }
            };
            match thin {
                Thin::Second => j % 2 == 1,
                Thin::First => j.is_multiple_of(2),
            }
        })
        .collect()
}
