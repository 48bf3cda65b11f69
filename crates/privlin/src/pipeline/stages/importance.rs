//! Stage `importance`: one importance result per method (PrivShap's Shapley values, SENet's
//! sensitivity, ReLUPruner's layer importance, baselines), shared by every point of a sweep.

use crate::importance::compute::{compute, ImportanceConfig};
use crate::importance::Importance;
use crate::pipeline::stage::{Ctx, Stage, StageKind};
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportanceStage {
    /// The all-ReLU checkpoint.
    pub ckpt: PathBuf,
    pub config: ImportanceConfig,
    /// `importance.json`; the bar chart goes beside it as `.svg`.
    pub out: PathBuf,
}

impl Stage for ImportanceStage {
    fn kind(&self) -> StageKind {
        StageKind::Importance
    }

    fn reads(&self) -> Vec<PathBuf> {
        vec![self.ckpt.clone()]
    }

    fn writes(&self) -> Vec<PathBuf> {
        vec![self.out.clone(), self.out.with_extension("svg")]
    }

    fn fingerprint(&self) -> serde_json::Value {
        // The worker count and the coalitions per forward pass change where and how utilities
        // are computed, not what they are (stacking changes kernel shapes: equal up to float
        // rounding, tests/importance_model.rs).
        let mut config = self.config.clone();
        config.workers = 1;
        config.coalitions_per_pass = 1;
        serde_json::json!({ "ckpt": self.ckpt, "config": config, "out": self.out })
    }

    fn run(&self, ctx: &Ctx) -> Result<String> {
        let imp = compute(
            &self.config,
            &self.ckpt,
            ctx.device()?,
            ctx.utility_workers.as_ref(),
        )?;
        if let Some(dir) = self.out.parent() {
            std::fs::create_dir_all(dir)?;
        }
        crate::io::atomic_write_json(&self.out, &imp)?;
        crate::importance::compute::draw(&imp, &self.out.with_extension("svg"))?;
        Ok(summary(&imp))
    }
}

/// `method: player value, ...` in one line.
pub fn summary(imp: &Importance) -> String {
    let values: Vec<String> = imp
        .players
        .iter()
        .zip(&imp.values)
        .map(|(p, v)| format!("{p} {v:.3}"))
        .collect();
    format!(
        "{} ({} utility evaluations, {:.1} s): {}",
        imp.method,
        imp.evaluations,
        imp.seconds,
        values.join(", ")
    )
}
