//! The stages, one file each; [`StageSpec`] is the serializable form a plan stores, so that any
//! process (a local child, a Ray worker) can rebuild the stage from `plan.json`.

pub mod allocate;
pub mod collect;
pub mod finetune;
pub mod importance;
pub mod linearize;
pub mod pi;
pub mod report;
pub mod reshape;
pub mod train;

use super::stage::Stage;
use serde::{Deserialize, Serialize};

/// One stage instance of a plan (adding a stage: its file, one variant here, and the plan
/// builder that uses it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "stage", rename_all = "lowercase")]
pub enum StageSpec {
    Train(train::Train),
    Importance(importance::ImportanceStage),
    Allocate(allocate::Allocate),
    Linearize(linearize::Linearize),
    Finetune(finetune::Finetune),
    Reshape(reshape::Reshape),
    Pi(pi::Pi),
    Report(report::Report),
    Collect(collect::Collect),
}

impl StageSpec {
    pub fn stage(&self) -> &dyn Stage {
        match self {
            StageSpec::Train(s) => s,
            StageSpec::Importance(s) => s,
            StageSpec::Allocate(s) => s,
            StageSpec::Linearize(s) => s,
            StageSpec::Finetune(s) => s,
            StageSpec::Reshape(s) => s,
            StageSpec::Pi(s) => s,
            StageSpec::Report(s) => s,
            StageSpec::Collect(s) => s,
        }
    }
}
