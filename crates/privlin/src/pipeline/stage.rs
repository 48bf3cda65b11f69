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
    /// Set by the runner alone: this stage's stamp says it started under the current
    /// fingerprint and did not finish, so a stage with partial state of its own continues from
    /// it. A stage never decides this from its files (a resume file left beside a deleted or
    /// changed stamp holds state whose config nobody checked).
    pub resume: bool,
}

impl Ctx {
    /// A stage's partial-state file, when the runner resumes the stage and the file is there.
    pub fn resume_from(&self, file: &std::path::Path) -> bool {
        self.resume && file.exists()
    }

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

/// A stage's config as JSON: every stage is plain serializable data, so this is one
/// implementation for all of them.
pub trait StageConfig {
    fn config_json(&self) -> serde_json::Value;
}

impl<T: Serialize> StageConfig for T {
    fn config_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("a stage is plain data")
    }
}

/// A pipeline stage.
pub trait Stage: StageConfig {
    fn kind(&self) -> StageKind;
    /// Artifacts (files or directories) the stage reads.
    fn reads(&self) -> Vec<PathBuf>;
    /// Artifacts it writes; with the runner's stamp they mark the stage complete.
    fn writes(&self) -> Vec<PathBuf>;
    /// The config that decides the artifacts (paths included; not the device or thread count):
    /// the stage itself, unless it leaves out what does not change its artifacts.
    fn fingerprint(&self) -> serde_json::Value {
        self.config_json()
    }
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

#[cfg(test)]
mod tests {
    use super::Ctx;

    /// A stage resumes from its partial state only when the runner says so: a resume file left
    /// beside a deleted or changed stamp is not read (issue 40).
    #[test]
    fn only_the_runner_decides_resume() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("resume.safetensors");
        std::fs::write(&file, b"partial state").unwrap();
        let fresh = Ctx::default();
        assert!(
            !fresh.resume_from(&file),
            "file present, runner did not say resume"
        );
        let resumed = Ctx {
            resume: true,
            ..Ctx::default()
        };
        assert!(resumed.resume_from(&file));
        assert!(!resumed.resume_from(&dir.path().join("missing")));
    }
}
