//! What a learner must reach: per-site ReLU budgets (from `budget.json`) or one total.

use crate::budget::Allocation;
use crate::nn::{Granularity, Model};
use anyhow::{bail, Result};

/// ReLU budgets aligned with the model's sites.
#[derive(Debug, Clone, PartialEq)]
pub struct Targets {
    /// Per site: `None` for sites outside the counting convention (they keep their nonlinearity),
    /// otherwise the site's budget in ReLUs (for global learners, its capacity: the ranking
    /// decides).
    pub site: Vec<Option<i64>>,
    /// Total ReLUs over the counted sites.
    pub total: i64,
    /// Whether `site` holds real per-site budgets (from an allocation).
    pub per_site: bool,
}

impl Targets {
    /// Per-site budgets from an allocation; every counted site of `model` must appear in it, and
    /// nothing else.
    pub fn from_allocation(model: &Model, alloc: &Allocation, origin: &str) -> Result<Self> {
        let mut site = vec![None; model.sites().len()];
        for sb in &alloc.sites {
            let Some(i) = model.sites().iter().position(|s| s.name == sb.name) else {
                bail!("{origin}: site `{}` is not a site of this model", sb.name);
            };
            let cap = model.sites()[i].count();
            if sb.capacity != cap {
                bail!(
                    "{origin}: site `{}` has capacity {} there but {cap} in this model",
                    sb.name,
                    sb.capacity
                );
            }
            if sb.budget < 0 || sb.budget > cap {
                bail!(
                    "{origin}: site `{}` has budget {} outside [0, {cap}]",
                    sb.name,
                    sb.budget
                );
            }
            site[i] = Some(sb.budget);
        }
        for (i, s) in model.sites().iter().enumerate() {
            if model.counted(i) && site[i].is_none() {
                bail!("{origin}: no budget for counted site `{}`", s.name);
            }
        }
        let total = site.iter().flatten().sum();
        if total <= 0 {
            bail!("{origin}: the budgets sum to {total}; at least one ReLU must be kept");
        }
        Ok(Targets {
            site,
            total,
            per_site: true,
        })
    }

    /// One total over the counted sites, for global learners.
    pub fn global(model: &Model, total: i64) -> Result<Self> {
        let cap = model.relu_count();
        if total <= 0 || total > cap {
            bail!("a total budget of {total} is refused: it must be in [1, {cap}] (the model's counted ReLUs)");
        }
        Ok(Targets {
            site: (0..model.sites().len())
                .map(|i| model.counted(i).then(|| model.sites()[i].count()))
                .collect(),
            total,
            per_site: false,
        })
    }

    /// Per-site budgets in mask entries at `granularity` (channel and layer masks round down to
    /// whole entries).
    pub fn entries(&self, model: &Model, granularity: Granularity) -> Vec<Option<i64>> {
        self.site
            .iter()
            .zip(model.sites())
            .map(|(b, s)| b.map(|b| b / granularity.entry_size(s.shape)))
            .collect()
    }
}
