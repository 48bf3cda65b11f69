//! Stage `allocate`: per-site ReLU budgets from an importance result and the point's total budget.

use crate::budget::{allocate, Allocation, Budget};
use crate::importance::Importance;
use crate::pipeline::stage::{Ctx, OnChange, Stage, StageKind};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Allocate {
    pub importance: PathBuf,
    /// A count (12900, 50k) or a share of the counted ReLUs (5%).
    pub budget: String,
    /// `budget.json`; the budget-vs-capacity chart goes beside it as `.svg`.
    pub out: PathBuf,
}

/// Allocate `budget` by the importance file, write `out` and, if asked, the chart `plot`.
pub fn allocate_file(
    importance: &Path,
    budget_text: &str,
    out: &Path,
    plot: Option<&Path>,
) -> Result<Allocation> {
    let imp: Importance = crate::io::read_json(importance)?;
    let budget: Budget = budget_text.parse()?;
    let alloc = allocate(&imp, budget)
        .with_context(|| format!("allocating with {}", importance.display()))?;
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    crate::io::atomic_write_json(out, &alloc)?;
    if let Some(p) = plot {
        let labels: Vec<String> = alloc.sites.iter().map(|s| s.name.clone()).collect();
        let b: Vec<i64> = alloc.sites.iter().map(|s| s.budget).collect();
        let c: Vec<i64> = alloc.sites.iter().map(|s| s.capacity).collect();
        crate::plot::budget_vs_capacity(
            p,
            &format!(
                "{} budget: {} ReLUs ({})",
                alloc.method, alloc.budget, budget_text
            ),
            &labels,
            &b,
            &c,
        )?;
    }
    Ok(alloc)
}

impl Stage for Allocate {
    fn kind(&self) -> StageKind {
        StageKind::Allocate
    }

    fn reads(&self) -> Vec<PathBuf> {
        vec![self.importance.clone()]
    }

    fn writes(&self) -> Vec<PathBuf> {
        vec![self.out.clone(), self.out.with_extension("svg")]
    }

    fn on_change(&self) -> OnChange {
        OnChange::Redo
    }

    fn run(&self, _ctx: &Ctx) -> Result<String> {
        let a = allocate_file(
            &self.importance,
            &self.budget,
            &self.out,
            Some(&self.out.with_extension("svg")),
        )?;
        Ok(format!(
            "{} of {} ReLUs ({:.2} %) over {} sites by {}",
            a.budget,
            a.capacity,
            100.0 * a.budget as f64 / a.capacity as f64,
            a.sites.len(),
            a.method
        ))
    }
}
