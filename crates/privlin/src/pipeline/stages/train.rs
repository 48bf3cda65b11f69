//! Stage `train`: the all-ReLU model (a checkpoint directory), resumed from its last epoch when
//! a run was killed.

use crate::pipeline::stage::{Ctx, Stage, StageKind};
use crate::train::RunConfig;
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Train {
    /// `out` is the checkpoint directory; device and threads come from the runner.
    pub run: RunConfig,
}

impl Stage for Train {
    fn kind(&self) -> StageKind {
        StageKind::Train
    }

    fn reads(&self) -> Vec<PathBuf> {
        Vec::new()
    }

    fn writes(&self) -> Vec<PathBuf> {
        vec![self.run.out.clone()]
    }

    fn fingerprint(&self) -> serde_json::Value {
        serde_json::json!({
            "out": self.run.out,
            "model": self.run.model,
            "data": self.run.data,
            "train": self.run.train,
        })
    }

    fn run(&self, ctx: &Ctx) -> Result<String> {
        let mut cfg = self.run.clone();
        cfg.device = ctx.device.clone();
        cfg.threads = ctx.threads;
        let resume = ctx.resume_from(&cfg.out.join(crate::train::checkpoint::RESUME_FILE));
        let o = crate::train::run::train(&cfg, resume)?;
        Ok(format!(
            "all-ReLU {} x{}: {} ReLUs, test accuracy {:.2} % after {} epochs ({:.2} % with every counted site linearized){}",
            o.info.arch,
            o.info.width,
            o.info.relu_total,
            100.0 * o.test_acc,
            o.epochs,
            100.0 * o.test_acc_linearized,
            if resume { ", resumed" } else { "" }
        ))
    }
}
