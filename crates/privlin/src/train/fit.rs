//! The one training loop of privlin. Stages differ only in their [`Objective`] (cross-entropy for
//! the all-ReLU baseline; later CE + KL + PRAM, mask projection after every step).

use super::checkpoint::{load_resume, save_resume, METRICS_FILE, RESUME_FILE, WEIGHTS_FILE};
use super::config::TrainConfig;
use super::evaluate::{evaluate, EvalResult};
use super::losses::{correct, cross_entropy};
use super::optim::Optimizer;
use crate::data::{Batch, Loader};
use crate::nn::{MaskSet, Model};
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;
use std::time::Instant;
use tch::{Kind, Tensor};

/// What a stage optimizes.
pub trait Objective {
    /// Loss (scalar) and logits for one training batch, in training mode.
    fn loss(&mut self, model: &Model, batch: &Batch) -> Result<(Tensor, Tensor)>;

    /// Called before every epoch, also the first one after a resume (e.g. to set a gate that
    /// follows the epoch).
    fn before_epoch(&mut self, _model: &Model, _epoch: usize) -> Result<()> {
        Ok(())
    }

    /// Called after every optimizer step (e.g. to project masks back onto their budget).
    fn after_step(&mut self, _model: &Model, _step: usize) -> Result<()> {
        Ok(())
    }

    /// Called after every epoch (before the checkpoint is saved), e.g. to check a stopping rule
    /// once per epoch as SNL does.
    fn after_epoch(&mut self, _model: &Model, _epoch: usize) -> Result<()> {
        Ok(())
    }

    /// Whether training should stop before the next epoch (checked after a resume too, from the
    /// restored state): SNL stops when its ReLU count has reached the budget.
    fn done(&self) -> bool {
        false
    }

    /// The masks the model is evaluated with after an epoch, when the objective owns them (mask
    /// learners); `None` uses [`FitOptions::eval_masks`].
    fn eval_masks(&self) -> Option<MaskSet> {
        None
    }

    /// State saved with every resume checkpoint (masks, running scores, counters).
    fn state(&self) -> Vec<(String, Tensor)> {
        Vec::new()
    }

    /// Restore what [`Objective::state`] saved.
    fn load_state(&mut self, _state: &std::collections::HashMap<String, Tensor>) -> Result<()> {
        Ok(())
    }

    /// A mask learner's state after an epoch, recorded in that epoch's `metrics.jsonl` line
    /// (called after [`Objective::after_epoch`]); `None` for objectives without one.
    fn progress(&self) -> Option<MaskProgress> {
        None
    }
}

/// Where a mask learner stands after an epoch (the `masks` field of a `metrics.jsonl` line): what
/// a run of hundreds of epochs, like SNL's, is read by afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MaskProgress {
    /// ReLUs the learner counts as kept (SNL: alphas above its threshold; binary masks once
    /// frozen).
    pub relus: i64,
    /// The weight of the sparsity penalty while it applies (l1 learners); `None` once the masks
    /// are frozen or for learners without a penalty.
    pub lambda: Option<f64>,
}

/// Cross-entropy (with optional label smoothing): the all-ReLU baseline's objective.
pub struct CrossEntropy {
    pub label_smoothing: f64,
}

impl Objective for CrossEntropy {
    fn loss(&mut self, model: &Model, batch: &Batch) -> Result<(Tensor, Tensor)> {
        let logits = model.forward(&batch.images, true);
        Ok((
            cross_entropy(&logits, &batch.labels, self.label_smoothing),
            logits,
        ))
    }
}

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    pub epoch: usize,
    pub lr: f64,
    pub train_loss: f64,
    pub train_acc: f64,
    pub test_loss: Option<f64>,
    pub test_acc: Option<f64>,
    pub images_per_sec: f64,
    pub epoch_seconds: f64,
    /// The mask learner's state after the epoch ([`Objective::progress`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub masks: Option<MaskProgress>,
}

/// Where and how a fit runs.
pub struct FitOptions<'a> {
    pub cfg: &'a TrainConfig,
    /// Checkpoint directory (weights, resume file, metrics).
    pub out: &'a Path,
    /// Continue from `out/resume.safetensors` if it exists.
    pub resume: bool,
    /// Evaluated after every epoch.
    pub eval: Option<&'a Loader>,
    pub eval_masks: Option<&'a MaskSet>,
    /// Shown before the progress bar.
    pub label: &'a str,
    /// Print one summary line per epoch.
    pub verbose: bool,
}

fn read_metrics(path: &Path) -> Result<Vec<EpochMetrics>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l).with_context(|| format!("{}: line {}", path.display(), i + 1))
        })
        .collect()
}

fn write_metrics(path: &Path, rows: &[EpochMetrics]) -> Result<()> {
    let mut text = String::new();
    for r in rows {
        text.push_str(&serde_json::to_string(r)?);
        text.push('\n');
    }
    crate::io::atomic_write_bytes(path, text.as_bytes())
}

fn append_metrics(path: &Path, row: &EpochMetrics) -> Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    writeln!(f, "{}", serde_json::to_string(row)?)?;
    Ok(())
}

fn progress(label: &str, epoch: usize, epochs: usize, len: usize) -> ProgressBar {
    let pb = ProgressBar::new(len as u64);
    pb.set_style(
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {elapsed_precise} {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    pb.set_prefix(format!("{label} epoch {}/{epochs}", epoch + 1));
    pb
}

/// Train `model` with `objective` on `train` for `cfg.epochs` epochs, evaluating, checkpointing and
/// appending metrics after every epoch. Returns the metrics of every epoch run so far (including
/// epochs done before a resume).
pub fn fit(
    model: &mut Model,
    train: &Loader,
    objective: &mut dyn Objective,
    opts: FitOptions,
) -> Result<Vec<EpochMetrics>> {
    let cfg = opts.cfg;
    cfg.validate()?;
    std::fs::create_dir_all(opts.out)
        .with_context(|| format!("creating {}", opts.out.display()))?;
    let params: Vec<(String, Tensor)> = model
        .vs
        .variables()
        .into_iter()
        .filter(|(_, t)| t.requires_grad())
        .collect();
    let mut opt = Optimizer::new(cfg.optimizer.clone(), params);
    let metrics_path = opts.out.join(METRICS_FILE);
    let mut history = Vec::new();
    let mut start = 0;
    if opts.resume && opts.out.join(RESUME_FILE).exists() {
        let (done, state) = load_resume(opts.out, model, &mut opt)?;
        objective.load_state(&state).with_context(|| {
            format!(
                "restoring the objective's state from {}",
                opts.out.display()
            )
        })?;
        start = done;
        history = read_metrics(&metrics_path)?;
        history.retain(|m| m.epoch <= start);
        write_metrics(&metrics_path, &history)?;
        if opts.verbose {
            eprintln!(
                "{}: resumed after epoch {start} from {}",
                opts.label,
                opts.out.join(RESUME_FILE).display()
            );
        }
    } else {
        write_metrics(&metrics_path, &[])?;
    }
    let nb = train.batches_per_epoch();
    if nb == 0 {
        bail!(
            "the training split ({} images) is smaller than one batch ({})",
            train.data.len(),
            train.batch_size
        );
    }
    let dev = model.device();
    for epoch in start..cfg.epochs {
        if objective.done() {
            break;
        }
        objective.before_epoch(model, epoch)?;
        let pb = progress(opts.label, epoch, cfg.epochs, nb);
        let t0 = Instant::now();
        let mut loss_sum = Tensor::zeros([], (Kind::Float, dev));
        let mut hits = Tensor::zeros([], (Kind::Int64, dev));
        let mut seen = 0usize;
        let mut lr = cfg.optimizer.lr;
        for (i, batch) in train.epoch(epoch as u64).enumerate() {
            lr = cfg.schedule.lr_at(
                cfg.optimizer.lr,
                epoch as f64 + i as f64 / nb as f64,
                cfg.epochs,
            );
            let (loss, logits) = objective.loss(model, &batch)?;
            let loss_v = loss.double_value(&[]);
            if !loss_v.is_finite() {
                bail!(
                    "{}: loss is {loss_v} at epoch {}, step {} (lr {lr:.3e}); the last good checkpoint in {} is kept",
                    opts.label,
                    epoch + 1,
                    i + 1,
                    opts.out.display()
                );
            }
            opt.zero_grad();
            loss.backward();
            opt.step(lr);
            objective.after_step(model, epoch * nb + i)?;
            let n = batch.len();
            tch::no_grad(|| {
                loss_sum += loss.detach() * n as f64;
                hits += correct(&logits, &batch.labels);
            });
            seen += n as usize;
            pb.inc(1);
            if i % 10 == 9 || i + 1 == nb {
                let secs = t0.elapsed().as_secs_f64();
                pb.set_message(format!(
                    "loss {:.3} acc {:.1}% {:.0} img/s",
                    loss_sum.double_value(&[]) / seen as f64,
                    100.0 * hits.int64_value(&[]) as f64 / seen as f64,
                    seen as f64 / secs
                ));
            }
        }
        let train_secs = t0.elapsed().as_secs_f64();
        pb.finish_and_clear();
        objective.after_epoch(model, epoch)?;
        let own_masks = objective.eval_masks();
        let masks = own_masks.as_ref().or(opts.eval_masks);
        let ev: Option<EvalResult> = opts.eval.map(|l| evaluate(model, l, masks));
        let row = EpochMetrics {
            epoch: epoch + 1,
            lr,
            train_loss: loss_sum.double_value(&[]) / seen as f64,
            train_acc: hits.int64_value(&[]) as f64 / seen as f64,
            test_loss: ev.map(|e| e.loss),
            test_acc: ev.map(|e| e.accuracy),
            images_per_sec: seen as f64 / train_secs,
            epoch_seconds: t0.elapsed().as_secs_f64(),
            masks: objective.progress(),
        };
        if opts.verbose {
            eprintln!(
                "{} epoch {}/{}: loss {:.4} train acc {:.2}% {}| {:.0} img/s, {:.1} s",
                opts.label,
                row.epoch,
                cfg.epochs,
                row.train_loss,
                100.0 * row.train_acc,
                row.test_acc
                    .map(|a| format!("test acc {:.2}% ", 100.0 * a))
                    .unwrap_or_default(),
                row.images_per_sec,
                row.epoch_seconds
            );
        }
        append_metrics(&metrics_path, &row)?;
        model.save_weights(&opts.out.join(WEIGHTS_FILE))?;
        save_resume(opts.out, model, &opt, objective.state(), epoch + 1)?;
        history.push(row);
    }
    Ok(history)
}
