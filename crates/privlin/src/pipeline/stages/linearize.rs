//! Stage `linearize`: masks within the point's budget by one of the four learners.

use crate::linearize::run::{linearize_from, BudgetSource};
use crate::linearize::LinearizeConfig;
use crate::pipeline::stage::{Ctx, Stage, StageKind};
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Where the budget comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Per-site budgets (`budget.json` of an allocate stage).
    Allocation(PathBuf),
    /// One total over the counted sites (global learners).
    Total(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Linearize {
    /// The all-ReLU checkpoint.
    pub ar: PathBuf,
    pub source: Source,
    /// `method` is set (the preset's learner or the config's).
    pub config: LinearizeConfig,
    /// The partial-ReLU checkpoint directory.
    pub out: PathBuf,
    /// `snl` only: the point of the same line at the next larger budget, whose stopping state
    /// this run continues from (SNL's path does not depend on the budget until it stops).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continue_from: Option<PathBuf>,
}

impl Stage for Linearize {
    fn kind(&self) -> StageKind {
        StageKind::Linearize
    }

    fn reads(&self) -> Vec<PathBuf> {
        let mut r = vec![self.ar.clone()];
        if let Source::Allocation(p) = &self.source {
            r.push(p.clone());
        }
        r.extend(self.continue_from.clone());
        r
    }

    fn writes(&self) -> Vec<PathBuf> {
        vec![self.out.clone()]
    }

    fn run(&self, ctx: &Ctx) -> Result<String> {
        let source = match &self.source {
            Source::Allocation(p) => BudgetSource::Allocation(p),
            Source::Total(b) => BudgetSource::Total(b.parse()?),
        };
        let resume = ctx.resume_from(&self.out.join(crate::train::checkpoint::RESUME_FILE));
        let r = linearize_from(
            &self.ar,
            source,
            &self.config,
            &self.out,
            ctx.device()?,
            resume,
            self.continue_from.as_deref(),
        )?;
        Ok(format!(
            "{}: {} of {} ReLUs kept, test accuracy {:.2} %{}",
            r.method,
            r.relus,
            r.capacity,
            100.0 * r.test_acc,
            if resume { ", resumed" } else { "" }
        ))
    }
}
