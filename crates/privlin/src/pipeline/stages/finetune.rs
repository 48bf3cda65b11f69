//! Stage `finetune`: the partial-ReLU checkpoint trained with frozen masks against its all-ReLU
//! teacher (KL + CE + PRAM).

use crate::linearize::run::finetune;
use crate::linearize::FinetuneConfig;
use crate::pipeline::stage::{Ctx, Stage, StageKind};
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finetune {
    /// The partial-ReLU checkpoint of the linearize stage.
    pub pr: PathBuf,
    /// The all-ReLU teacher.
    pub ar: PathBuf,
    pub config: FinetuneConfig,
    pub out: PathBuf,
}

impl Stage for Finetune {
    fn kind(&self) -> StageKind {
        StageKind::Finetune
    }

    fn reads(&self) -> Vec<PathBuf> {
        vec![self.pr.clone(), self.ar.clone()]
    }

    fn writes(&self) -> Vec<PathBuf> {
        vec![self.out.clone()]
    }

    fn run(&self, ctx: &Ctx) -> Result<String> {
        let resume = ctx.resume_from(&self.out.join(crate::train::checkpoint::RESUME_FILE));
        let r = finetune(
            &self.pr,
            Some(&self.ar),
            &self.config,
            &self.out,
            ctx.device()?,
            resume,
        )?;
        Ok(format!(
            "{} ReLUs, test accuracy {:.2} % (all-ReLU {:.2} %){}",
            r.relus,
            100.0 * r.test_acc,
            100.0 * r.test_acc_ar,
            if resume { ", resumed" } else { "" }
        ))
    }
}
