//! ReLU criticality of a network's stages: which stages' ReLUs matter most for accuracy.
//!
//! Two measurements, and the output says which one it is; stages are ranked by value per
//! thousand ReLUs by default (how much a stage's ReLUs are worth each, what ReLU equalization
//! needs: a large stage otherwise wins by its size alone) or by the total value:
//! - **DeepReDuce** (Jha et al., ICML 2021, Sec. 3.1): the network with only one stage's ReLUs
//!   (every other counted ReLU the identity), trained with distillation from the all-ReLU model
//!   for `epochs` (0: evaluated as it is, which is cheap but reads mostly how well the weights
//!   survive the cut); a stage is the more critical the higher that accuracy. Accuracy per
//!   thousand ReLUs is reported beside it.
//! - **Shapley**: a stage-level game (`privlin importance --players stages`), one Shapley value
//!   per stage, read from its `importance.json`.

use super::cull::{counted_stages, keep_flags};
use super::equalize::order_name;
use crate::data::Loader;
use crate::importance::Importance;
use crate::linearize::finetune::Finetune;
use crate::linearize::{FinetuneConfig, Teacher};
use crate::nn::removal::{stage_of, stages};
use crate::nn::{MaskSet, Model};
use crate::train::{evaluate, fit, load_model, FitOptions};
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StageCriticality {
    pub stage: String,
    /// Counted ReLUs of the stage.
    pub relus: i64,
    /// Test accuracy (%) with only this stage's ReLUs (DeepReDuce), or the Shapley value.
    pub value: f64,
    /// `value` above the baseline (DeepReDuce: the all-linear accuracy; Shapley: 0) per
    /// thousand ReLUs.
    pub per_krelu: f64,
}

/// How stages are ranked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RankBy {
    /// Value above the baseline per thousand ReLUs (default).
    PerRelu,
    /// The value itself (DeepReDuce's accuracy, the stage's Shapley value).
    Total,
}

impl std::str::FromStr for RankBy {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "per-relu" => RankBy::PerRelu,
            "total" => RankBy::Total,
            other => bail!("unknown ranking `{other}` (expected per-relu or total)"),
        })
    }
}

/// `criticality.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Criticality {
    /// `deepreduce` or `shapley:<estimator>`.
    pub method: String,
    /// What `value` is.
    pub unit: String,
    pub stages: Vec<StageCriticality>,
    pub ranked_by: RankBy,
    /// Stage names, most critical first.
    pub order: Vec<String>,
    /// The slides' notation of the order over the body stages (`S3>S2>S4>S1`).
    pub order_s: String,
    /// Accuracy (%) with every counted ReLU removed, for reference (DeepReDuce).
    pub linear_accuracy: Option<f64>,
    pub checkpoint: Option<String>,
    pub seconds: f64,
}

impl Criticality {
    fn finish(
        method: String,
        unit: &str,
        mut stages_: Vec<StageCriticality>,
        body: &[String],
        rank: RankBy,
        baseline: f64,
    ) -> Self {
        for s in &mut stages_ {
            s.per_krelu = (s.value - baseline) / (s.relus.max(1) as f64 / 1000.0);
        }
        let key = |s: &StageCriticality| match rank {
            RankBy::PerRelu => s.per_krelu,
            RankBy::Total => s.value,
        };
        let mut idx: Vec<usize> = (0..stages_.len()).collect();
        idx.sort_by(|&a, &b| {
            key(&stages_[b])
                .total_cmp(&key(&stages_[a]))
                .then(a.cmp(&b))
        });
        let order: Vec<String> = idx.iter().map(|&i| stages_[i].stage.clone()).collect();
        let body_order: Vec<usize> = order
            .iter()
            .filter_map(|s| body.iter().position(|b| b == s))
            .collect();
        let order_s = order_name(&body_order, ">");
        Criticality {
            method,
            unit: unit.to_string(),
            stages: stages_,
            ranked_by: rank,
            order,
            order_s,
            linear_accuracy: None,
            checkpoint: None,
            seconds: 0.0,
        }
    }

    /// From a stage-level Shapley game (`--players stages`): the stem player (`act1`) is the stem.
    pub fn from_importance(imp: &Importance, model: &Model, rank: RankBy) -> Result<Self> {
        let body = stages(model.sites());
        let mut rows = Vec::new();
        for (name, &v) in imp.players.iter().zip(&imp.values) {
            let stage = if body.contains(name) {
                name.clone()
            } else if let Some(i) = model.sites().iter().position(|s| &s.name == name) {
                stage_of(&model.sites()[i])
            } else {
                bail!(
                    "importance player `{name}` is not a stage of {}: compute it with --players stages",
                    model.spec.arch
                );
            };
            rows.push(StageCriticality {
                relus: stage_relus(model, &stage),
                stage,
                value: v,
                per_krelu: 0.0,
            });
        }
        let mut c = Self::finish(
            format!("shapley:{}", imp.method),
            "Shapley value of the stage (accuracy points of U)",
            rows,
            &body,
            rank,
            0.0,
        );
        c.checkpoint = imp.checkpoint.clone();
        c.seconds = imp.seconds;
        Ok(c)
    }
}

fn stage_relus(model: &Model, stage: &str) -> i64 {
    model
        .sites()
        .iter()
        .enumerate()
        .filter(|(i, s)| model.counted(*i) && stage_of(s) == stage)
        .map(|(_, s)| s.count())
        .sum()
}

/// Masks keeping only `stage`'s counted ReLUs (uncounted sites keep theirs).
pub fn only_stage(model: &Model, stage: &str) -> MaskSet {
    MaskSet::coalition(&keep_flags(model, &[stage.to_string()], None))
}

/// DeepReDuce's criticality of every stage with counted ReLUs of the all-ReLU checkpoint `ar`:
/// only that stage's ReLUs kept, `epochs` of distillation from the all-ReLU model (0: none),
/// accuracy on `test` (the split named `split`: the pipeline passes the holdout split).
#[allow(clippy::too_many_arguments)]
pub fn deepreduce(
    ar: &Path,
    train: &Loader,
    test: &Loader,
    split: &str,
    finetune: &FinetuneConfig,
    epochs: usize,
    rank: RankBy,
    scratch: &Path,
) -> Result<Criticality> {
    let t0 = std::time::Instant::now();
    let device = test.device;
    let (base, _) = load_model(ar, device)?;
    let body = stages(base.sites());
    let names = counted_stages(&base);
    let linear = evaluate(&base, test, Some(&base.all_linearized())).accuracy;
    let pb = indicatif::ProgressBar::new(names.len() as u64);
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "criticality[deepreduce] [{bar:30}] {pos}/{len} stages {elapsed_precise}",
        )
        .expect("valid template"),
    );
    let mut rows = Vec::new();
    for st in &names {
        let masks = only_stage(&base, st);
        let acc = if epochs == 0 {
            evaluate(&base, test, Some(&masks)).accuracy
        } else {
            let (mut model, _) = load_model(ar, device)?;
            model.use_channels_last(finetune.train.channels_last)?;
            let mut teacher = load_model(ar, device)?.0;
            teacher.use_channels_last(finetune.train.channels_last)?;
            let teacher = Teacher::new(teacher);
            let mut cfg = finetune.clone();
            cfg.train.epochs = epochs;
            let mut obj = Finetune::new(teacher, masks.clone(), cfg.clone());
            let dir = scratch.join(st);
            fit(
                &mut model,
                train,
                &mut obj,
                FitOptions {
                    cfg: &cfg.train,
                    out: &dir,
                    resume: false,
                    eval: None,
                    eval_masks: None,
                    label: &format!("criticality[{st}]"),
                    verbose: false,
                },
            )?;
            let _ = std::fs::remove_dir_all(&dir);
            evaluate(&model, test, Some(&masks)).accuracy
        };
        rows.push(StageCriticality {
            stage: st.clone(),
            relus: stage_relus(&base, st),
            value: 100.0 * acc,
            per_krelu: 0.0,
        });
        pb.inc(1);
    }
    pb.finish_and_clear();
    let mut c = Criticality::finish(
        "deepreduce".into(),
        &format!(
            "{split} accuracy (%) with only the stage's ReLUs, after {epochs} epochs of distillation"
        ),
        rows,
        &body,
        rank,
        100.0 * linear,
    );
    c.linear_accuracy = Some(100.0 * linear);
    c.checkpoint = Some(ar.display().to_string());
    c.seconds = t0.elapsed().as_secs_f64();
    Ok(c)
}

impl Criticality {
    /// A table for the terminal.
    pub fn table(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(s, "stage criticality by {} ({})", self.method, self.unit);
        let _ = writeln!(
            s,
            "{:<10} {:>10} {:>12} {:>14}",
            "stage", "ReLUs", "value", "gain/kReLU"
        );
        for r in &self.stages {
            let _ = writeln!(
                s,
                "{:<10} {:>10} {:>12.3} {:>14.4}",
                r.stage, r.relus, r.value, r.per_krelu
            );
        }
        if let Some(l) = self.linear_accuracy {
            let _ = writeln!(s, "every counted ReLU removed: {l:.2} %");
        }
        let _ = writeln!(
            s,
            "order (most critical first, by {}): {}   [{}]",
            match self.ranked_by {
                RankBy::PerRelu => "value above the baseline per kReLU",
                RankBy::Total => "total value",
            },
            self.order.join(" > "),
            self.order_s
        );
        s
    }
}
