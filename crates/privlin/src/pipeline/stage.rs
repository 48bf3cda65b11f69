//! One step of the pipeline: what it reads, what it writes, the config that decides its
//! artifacts, and how to make them. Whether a stage runs, resumes, is skipped or is refused is
//! decided once for all stages by [`super::runner`], never by a stage.

use crate::importance::workers::WorkerSpec;
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The kinds of stage, in pipeline order (what an executor sizes resources by).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StageKind {
    Train,
    Importance,
    Allocate,
    Linearize,
    Finetune,
    Reshape,
    Pi,
    Report,
    Collect,
}

impl StageKind {
    pub fn name(self) -> &'static str {
        match self {
            StageKind::Train => "train",
            StageKind::Importance => "importance",
            StageKind::Allocate => "allocate",
            StageKind::Linearize => "linearize",
            StageKind::Finetune => "finetune",
            StageKind::Reshape => "reshape",
            StageKind::Pi => "pi",
            StageKind::Report => "report",
            StageKind::Collect => "collect",
        }
    }
}

/// What every stage gets from the process that runs it.
#[derive(Debug, Clone, Default)]
pub struct Ctx {
    /// auto, cpu, cuda or cuda:N.
    pub device: String,
    /// libtorch threads (0: libtorch's default).
    pub threads: usize,
    /// How to start utility workers, for importance stages with `workers > 1`.
    pub utility_workers: Option<WorkerSpec>,
}

impl Ctx {
    pub fn device(&self) -> Result<tch::Device> {
        if self.threads > 0 {
            tch::set_num_threads(self.threads as i32);
        }
        crate::device::parse_device(&self.device)
    }
}

/// See [`Stage::on_change`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnChange {
    Refuse,
    Redo,
}

/// A pipeline stage.
pub trait Stage {
    fn kind(&self) -> StageKind;
    /// Artifacts (files or directories) the stage reads.
    fn reads(&self) -> Vec<PathBuf>;
    /// Artifacts it writes; with the runner's stamp they mark the stage complete.
    fn writes(&self) -> Vec<PathBuf>;
    /// The config that decides the artifacts (paths included; not the device or thread count).
    fn fingerprint(&self) -> serde_json::Value;
    /// Make the artifacts, resuming from a stage's own partial state where it has one; returns a
    /// one-line summary.
    fn run(&self, ctx: &Ctx) -> Result<String>;
    /// What the runner does when the artifacts exist but were made under another config: refuse
    /// (stages whose work is expensive: training, importance) or make them again (cheap stages
    /// derived from others: allocation, private-inference measurement, reports).
    fn on_change(&self) -> OnChange {
        OnChange::Refuse
    }

    /// Stages whose output depends on more than their inputs (a sweep's collection of every
    /// finished point) run every time.
    fn always(&self) -> bool {
        false
    }
}
