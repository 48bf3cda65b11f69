//! Stage `reshape` ("Making Models Shallow Again"): in place of the plain fine-tuning, gated
//! branching on the low-sensitivity blocks, an optional auxiliary classifier, SENet's eq. 2 loss
//! (plus AKD), then the main branches deleted. Writes a checkpoint the `pi` stage exports like any
//! other, `reshape.json` and a `finetune.json` for the report and the sweep's collect.

use crate::linearize::FinetuneConfig;
use crate::pipeline::stage::{Ctx, Stage, StageKind};
use crate::reshape::{reshape, ReshapeConfig};
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reshape {
    /// The partial-ReLU checkpoint of the linearize stage.
    pub pr: PathBuf,
    /// The all-ReLU teacher.
    pub ar: PathBuf,
    pub finetune: FinetuneConfig,
    pub config: ReshapeConfig,
    pub out: PathBuf,
}

impl Stage for Reshape {
    fn kind(&self) -> StageKind {
        StageKind::Reshape
    }

    fn reads(&self) -> Vec<PathBuf> {
        vec![self.pr.clone(), self.ar.clone()]
    }

    fn writes(&self) -> Vec<PathBuf> {
        vec![self.out.clone()]
    }

    fn run(&self, ctx: &Ctx) -> Result<String> {
        let resume = ctx.resume_from(
            &self
                .out
                .join(crate::reshape::run::GATED_DIR)
                .join(crate::train::checkpoint::RESUME_FILE),
        );
        let r = reshape(
            &self.pr,
            Some(&self.ar),
            &self.finetune,
            &self.config,
            &self.out,
            ctx.device()?,
            resume,
        )?;
        let served = r.served_row();
        Ok(format!(
            "{}: {} ReLUs, {:.2} MMACs, layer depth {}, test accuracy {:.2} % (all-ReLU {:.2} %){}",
            r.served,
            served.relus,
            served.macs as f64 / 1e6,
            served
                .layer_depth
                .map(|d| d.to_string())
                .unwrap_or_else(|| "-".into()),
            100.0 * served.test_acc,
            100.0 * r.rows[0].test_acc,
            if resume { ", resumed" } else { "" }
        ))
    }
}
