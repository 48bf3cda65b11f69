//! The `linearize` and `finetune` stages: read a checkpoint directory, train, and write a
//! partial-ReLU checkpoint (weights, `spec.json` naming its masks, the mask export) plus a stage
//! report (`linearize.json` / `finetune.json`, written last: its presence marks the stage done).

use super::config::{FinetuneConfig, LinearizeConfig};
use super::deepreduce::DeepReduce;
use super::export::{export, MASKS_FILE};
use super::finetune::Finetune;
use super::gradproj::GradProj;
use super::senet::SenetMasks;
use super::snl::{Schedule, Snl};
use super::taylor::ProgressiveTaylor;
use super::{BudgetOutcome, MaskLearner, Method, Targets, Teacher};
use crate::nn::{Granularity, MaskSet, Model};
pub use crate::train::data::{checkpoint_loaders, load_with_masks, loaders, CheckpointLoaders};
use crate::train::{
    evaluate, fit, load_model, CheckpointSpec, EpochMetrics, FitOptions, MaskProgress,
};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::Device;

pub const LINEARIZE_REPORT: &str = "linearize.json";
pub const FINETUNE_REPORT: &str = "finetune.json";
/// A mask learner's path over its epochs (learners that record one: the l1 family, taylor).
pub const TRAJECTORY_PLOT: &str = "trajectory.svg";

/// ReLUs of one site after a stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SiteCount {
    pub name: String,
    pub capacity: i64,
    pub counted: bool,
    /// The site's budget, for per-site learners.
    pub budget: Option<i64>,
    pub kept: i64,
}

/// `linearize.json` / `finetune.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageReport {
    pub stage: String,
    pub method: String,
    pub granularity: Granularity,
    /// The all-ReLU checkpoint (the teacher).
    pub teacher: String,
    /// The checkpoint this stage started from.
    pub start: String,
    pub budget: i64,
    pub relus: i64,
    pub capacity: i64,
    pub convention: String,
    pub sites: Vec<SiteCount>,
    /// Test accuracy of the all-ReLU teacher, of the start checkpoint with this stage's masks
    /// before any training (fine-tuning only), and after this stage.
    pub test_acc_ar: f64,
    pub test_acc_start: Option<f64>,
    pub test_acc: f64,
    pub test_images: usize,
    pub train_images: usize,
    /// Epochs run (a learner with a stopping rule, SNL, may stop before the configured count).
    pub epochs: usize,
    /// How the masks hold the budget: `not_reached` when SNL's cap came first (the masks are over
    /// it), `filled` when a top-k at the end did what the learner's own rule did not (the l1
    /// variants). A fine-tuning report carries its linearization's; `None` in reports written
    /// before this field existed, `not_reached` in those that said `"budget_reached": false`.
    #[serde(
        default,
        alias = "budget_reached",
        deserialize_with = "BudgetOutcome::deserialize_recorded"
    )]
    pub budget_outcome: Option<BudgetOutcome>,
    pub seconds: f64,
    pub notes: Vec<String>,
    pub config: serde_json::Value,
}

/// Where a stage's ReLU budget comes from.
pub enum BudgetSource<'a> {
    /// Per-site budgets (`budget.json`).
    Allocation(&'a Path),
    /// One total over the counted sites (global learners).
    Total(crate::budget::Budget),
}

pub(crate) fn site_counts(
    model: &Model,
    masks: &MaskSet,
    targets: Option<&Targets>,
) -> Result<Vec<SiteCount>> {
    let counts = masks.counts(model.sites())?;
    Ok(model
        .sites()
        .iter()
        .enumerate()
        .map(|(i, s)| SiteCount {
            name: s.name.clone(),
            capacity: s.count(),
            counted: model.counted(i),
            budget: targets.filter(|t| t.per_site).and_then(|t| t.site[i]),
            kept: counts[i],
        })
        .collect())
}

fn counted_total(sites: &[SiteCount]) -> i64 {
    sites.iter().filter(|s| s.counted).map(|s| s.kept).sum()
}

/// Check the masks against the targets: per site (per-site learners) and in total. At pixel
/// granularity the budgets must hold exactly; coarser masks may fall short by less than one entry.
fn check_budget(
    model: &Model,
    sites: &[SiteCount],
    targets: &Targets,
    granularity: Granularity,
    outcome: BudgetOutcome,
) -> Result<()> {
    if !outcome.reached() {
        return Ok(());
    }
    let exact = granularity == Granularity::Pixel
        && matches!(outcome, BudgetOutcome::Exact | BudgetOutcome::Filled);
    for (i, s) in sites.iter().enumerate() {
        if let (Some(b), true) = (s.budget, targets.per_site) {
            let entry = granularity.entry_size(model.sites()[i].shape);
            let ok = if exact {
                s.kept == b
            } else {
                s.kept <= b && b - s.kept < entry
            };
            if !ok {
                bail!(
                    "site {}: {} ReLUs kept, budget {b}: the learner broke its budget",
                    s.name,
                    s.kept
                );
            }
        }
    }
    let total = counted_total(sites);
    if exact && total != targets.total || total > targets.total {
        bail!(
            "{total} ReLUs kept, budget {}: the learner broke its budget",
            targets.total
        );
    }
    Ok(())
}

/// Write a partial-ReLU checkpoint's spec (naming its masks) and the mask export into `out`.
pub(crate) fn save_pr(
    out: &Path,
    spec: &CheckpointSpec,
    model: &Model,
    masks: &MaskSet,
) -> Result<()> {
    export(model, masks, out)?;
    CheckpointSpec {
        masks: Some(MASKS_FILE.into()),
        ..spec.clone()
    }
    .save(out)
}

/// DeepReDuce's stage order: the config's, or measured on the checkpoint (written to
/// `out/criticality.json`).
fn deepreduce_order(
    ar: &Path,
    model: &Model,
    cfg: &LinearizeConfig,
    data: &CheckpointLoaders,
    out: &Path,
) -> Result<Vec<String>> {
    let d = &cfg.deepreduce;
    if !d.order.is_empty() {
        return d
            .order
            .iter()
            .map(|s| crate::nn::removal::resolve_stage(s, model.sites()))
            .collect::<Result<Vec<_>>>()
            .context("linearize.deepreduce.order");
    }
    let mut ft = super::FinetuneConfig::default();
    ft.train.batch_size = cfg.train.batch_size;
    // Ranked on the holdout split, so the stages the preset keeps are not chosen on the images
    // it reports on (issue 39); the test split only where the checkpoint has no holdout.
    if data.select_split == "test" {
        eprintln!(
            "warning: {} has no holdout split (train with data.holdout > 0): stage criticality \
             is measured on the test split the run reports on",
            ar.display()
        );
    }
    let c = crate::design::criticality::deepreduce(
        ar,
        &data.train,
        &data.select,
        data.select_split,
        &ft,
        d.criticality_epochs,
        d.rank_by,
        &out.join("criticality-scratch"),
    )?;
    std::fs::create_dir_all(out)?;
    crate::io::atomic_write_json(&out.join("criticality.json"), &c)?;
    eprintln!("{}", c.table());
    Ok(c.order)
}

/// The `linearize` stage: learn masks for the all-ReLU checkpoint `ar` within `budget` and write
/// the partial-ReLU checkpoint to `out`.
pub fn linearize(
    ar: &Path,
    budget: BudgetSource,
    cfg: &LinearizeConfig,
    out: &Path,
    device: Device,
    resume: bool,
) -> Result<StageReport> {
    linearize_from(ar, budget, cfg, out, device, resume, None)
}

/// [`linearize`], for `snl` optionally continuing the path of the run in `continue_from`: the same
/// checkpoint, config and seed stopped there at a larger budget (see [`seed_from_path`]).
pub fn linearize_from(
    ar: &Path,
    budget: BudgetSource,
    cfg: &LinearizeConfig,
    out: &Path,
    device: Device,
    mut resume: bool,
    continue_from: Option<&Path>,
) -> Result<StageReport> {
    cfg.validate()?;
    let method: Method = cfg
        .method
        .as_deref()
        .context("linearize.method is not set (gradproj, taylor, snl, l1-fixed-epochs, l1-budget-ramp, senet or deepreduce)")?
        .parse()?;
    let (mut model, spec, ar_masks) = load_with_masks(ar, device)?;
    if ar_masks.is_some() {
        bail!(
            "{} already has masks: linearize starts from an all-ReLU checkpoint",
            ar.display()
        );
    }
    model.use_channels_last(cfg.train.channels_last)?;
    let mut teacher = load_model(ar, device)?.0;
    teacher.use_channels_last(cfg.train.channels_last)?;
    let teacher = Teacher::new(teacher);
    let targets = match budget {
        BudgetSource::Allocation(p) => {
            let alloc: crate::budget::Allocation = crate::io::read_json(p)?;
            let t = Targets::from_allocation(&model, &alloc, &p.display().to_string())?;
            if method.is_global() {
                Targets::global(&model, t.total)?
            } else {
                t
            }
        }
        BudgetSource::Total(b) => {
            if !method.is_global() {
                bail!(
                    "`{}` learns masks within per-site budgets: give it a budget.json (privlin allocate)",
                    method.name()
                );
            }
            Targets::global(&model, b.resolve(model.relu_count())?)?
        }
    };
    let mut path_note = None;
    if let Some(from) = continue_from {
        if method != Method::Snl {
            bail!(
                "only `snl` continues another run's path (its trajectory does not depend on the budget until it stops); `{}` plans with its budget from the first step",
                method.name()
            );
        }
        path_note = Some(seed_from_path(from, ar, cfg, targets.total, out)?);
        resume = true;
    }
    let data = checkpoint_loaders(&spec, &cfg.train, cfg.train_per_class, device)?;
    let (train, test) = (&data.train, &data.test);
    let total_steps = cfg.train.epochs * train.batches_per_epoch();
    let g = cfg.granularity;
    let mut learner: Box<dyn MaskLearner> = match method {
        Method::GradProj => Box::new(GradProj::new(
            &model,
            teacher,
            &targets,
            g,
            cfg.distill.clone(),
            &cfg.gradproj,
        )?),
        Method::Taylor => Box::new(ProgressiveTaylor::new(
            &model,
            teacher,
            &targets,
            g,
            cfg.distill.clone(),
            cfg.taylor.clone(),
            total_steps,
        )),
        Method::Snl | Method::L1FixedEpochs | Method::L1BudgetRamp => Box::new(Snl::new(
            match method {
                Method::Snl => Schedule::Snl,
                Method::L1FixedEpochs => Schedule::FixedEpochs,
                _ => Schedule::BudgetRamp,
            },
            &model,
            teacher,
            &targets,
            g,
            cfg.distill.clone(),
            cfg.snl.clone(),
            cfg.train.optimizer.lr,
            total_steps,
        )),
        Method::Senet => Box::new(SenetMasks::new(
            &model,
            teacher,
            &targets,
            g,
            cfg.distill.clone(),
            cfg.senet.clone(),
        )?),
        Method::DeepReduce => {
            let order = deepreduce_order(ar, &model, cfg, &data, out)?;
            Box::new(DeepReduce::new(
                &model,
                teacher,
                targets.total,
                &order,
                cfg.deepreduce.cull,
                cfg.distill.clone(),
            )?)
        }
    };
    let ar_acc = evaluate(&model, test, None).accuracy;
    let t0 = Instant::now();
    let history = fit(
        &mut model,
        train,
        learner.as_mut(),
        FitOptions {
            cfg: &cfg.train,
            out,
            resume,
            eval: Some(test),
            eval_masks: None,
            label: &format!("linearize[{}]", method.name()),
            verbose: true,
        },
    )?;
    let (masks, mut notes) = learner.finish(&model)?;
    notes.extend(path_note);
    plot_trajectory(out, method, &history, targets.total)?;
    let outcome = learner.outcome();
    let sites = site_counts(&model, &masks, Some(&targets))?;
    check_budget(&model, &sites, &targets, g, outcome)?;
    let acc = evaluate(&model, test, Some(&masks)).accuracy;
    model.save_weights(&out.join(crate::train::checkpoint::WEIGHTS_FILE))?;
    save_pr(out, &spec, &model, &masks)?;
    let report = StageReport {
        stage: "linearize".into(),
        method: method.name().into(),
        granularity: g,
        teacher: ar.display().to_string(),
        start: ar.display().to_string(),
        budget: targets.total,
        relus: counted_total(&sites),
        capacity: model.relu_count(),
        convention: model.spec.convention.describe(),
        sites,
        test_acc_ar: ar_acc,
        test_acc_start: None,
        test_acc: acc,
        test_images: test.data.len(),
        train_images: train.data.len(),
        epochs: history.len(),
        budget_outcome: Some(outcome),
        seconds: t0.elapsed().as_secs_f64(),
        notes,
        config: serde_json::to_value(cfg)?,
    };
    crate::io::atomic_write_json(&out.join(LINEARIZE_REPORT), &report)?;
    Ok(report)
}

/// `trajectory.svg`: the learner's kept ReLUs (and lambda) per epoch, from the `masks` records
/// of `metrics.jsonl` (epochs of an earlier run on the same SNL path included); nothing for
/// learners without such records.
fn plot_trajectory(
    out: &Path,
    method: Method,
    history: &[EpochMetrics],
    budget: i64,
) -> Result<()> {
    let at = |f: &dyn Fn(&MaskProgress) -> Option<f64>| -> Vec<(i32, f64)> {
        history
            .iter()
            .filter_map(|m| m.masks.as_ref().and_then(f).map(|v| (m.epoch as i32, v)))
            .collect()
    };
    let relus = at(&|p| Some(p.relus as f64));
    if relus.is_empty() {
        return Ok(());
    }
    crate::plot::trajectory(
        &out.join(TRAJECTORY_PLOT),
        &format!("linearize[{}]: ReLUs kept per epoch", method.name()),
        &relus,
        budget as f64,
        &at(&|p| p.lambda),
    )
}

/// Start an `snl` run for `target` ReLUs in `out` where the run in `from` stopped: SNL's lambda
/// schedule and stopping rule (Cho et al. 2022; `snl_finetune_unstructured.py`) read the budget
/// only to stop, so a run to a smaller budget passes through exactly the state in which a run of
/// the same checkpoint, config and seed stopped at a larger one, and continuing from there gives
/// the same masks and weights as running it from epoch 0 (tested) at the cost of the remaining
/// epochs only. `from` must be a finished `snl` run of `ar` with the same `[linearize]` config and
/// a budget of at least `target` that stopped at that budget (`at_most`) or at the epoch cap
/// (`not_reached`, which a smaller budget then cannot reach either); its resume state and metrics
/// are copied into `out` (each atomically) unless `out` holds a resume state of its own already (an
/// interrupted continuation), and the epochs `out` reports count both parts. Returns the note that
/// says so.
pub fn seed_from_path(
    from: &Path,
    ar: &Path,
    cfg: &LinearizeConfig,
    target: i64,
    out: &Path,
) -> Result<String> {
    use crate::train::checkpoint::{METRICS_FILE, RESUME_FILE};
    let rp = from.join(LINEARIZE_REPORT);
    if !rp.exists() {
        bail!(
            "cannot continue the SNL path of {}: it has no {LINEARIZE_REPORT} (the run has not finished)",
            from.display()
        );
    }
    let prev: StageReport =
        crate::io::read_json(&rp).with_context(|| format!("reading {}", rp.display()))?;
    if prev.method != Method::Snl.name() {
        bail!(
            "cannot continue the SNL path of {}: it was made by `{}`, not `snl`",
            rp.display(),
            prev.method
        );
    }
    if prev.teacher != ar.display().to_string() {
        bail!(
            "cannot continue the SNL path of {}: it linearized {}, not {}",
            rp.display(),
            prev.teacher,
            ar.display()
        );
    }
    if prev.config != serde_json::to_value(cfg)? {
        bail!(
            "cannot continue the SNL path of {}: its [linearize] config differs from this run's (the path is the same only for the same config and seed)",
            rp.display()
        );
    }
    // A run that hit the epoch cap first is where a run to a smaller budget ends too: copying it
    // gives that run's "budget not reached" result without another epoch.
    if !matches!(
        prev.budget_outcome,
        Some(BudgetOutcome::AtMost | BudgetOutcome::NotReached)
    ) {
        bail!(
            "cannot continue the SNL path of {}: {}, not a stop at the budget or at the epoch cap",
            rp.display(),
            match prev.budget_outcome {
                Some(o) => format!("its budget outcome is {}", serde_json::to_string(&o)?),
                None => "it has no budget_outcome (written by a privlin before that field)".into(),
            }
        );
    }
    if target > prev.budget {
        bail!(
            "cannot continue the SNL path of {} to {target} ReLUs: it stopped at its budget of {}, and a run to a larger budget stops earlier on the same path",
            rp.display(),
            prev.budget
        );
    }
    let resume = from.join(RESUME_FILE);
    if !resume.exists() {
        bail!(
            "cannot continue the SNL path of {}: {} is missing",
            from.display(),
            resume.display()
        );
    }
    // A continuation that was interrupted resumes its own, later state.
    if !out.join(RESUME_FILE).exists() {
        std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
        // Metrics first: a resume file without them would be a half-made continuation.
        for name in [METRICS_FILE, RESUME_FILE] {
            let (src, dst) = (from.join(name), out.join(name));
            let bytes =
                std::fs::read(&src).with_context(|| format!("reading {}", src.display()))?;
            crate::io::atomic_write_bytes(&dst, &bytes)?;
        }
    }
    Ok(format!(
        "continued the SNL path of {} (budget {}, {} after {} epochs with {} ReLUs): its epochs are counted here too",
        from.display(),
        prev.budget,
        if prev.budget_outcome == Some(BudgetOutcome::AtMost) {
            "reached"
        } else {
            "not reached"
        },
        prev.epochs,
        prev.relus
    ))
}

/// The all-ReLU teacher of the partial-ReLU checkpoint `pr` (loaded as `model`): `teacher_dir`,
/// or the one its `linearize.json` names; also that report, if there is one.
pub fn teacher_of(
    pr: &Path,
    model: &Model,
    teacher_dir: Option<&Path>,
    device: Device,
) -> Result<(PathBuf, Model, Option<StageReport>)> {
    let prev: Option<StageReport> = {
        let p = pr.join(LINEARIZE_REPORT);
        p.exists().then(|| crate::io::read_json(&p)).transpose()?
    };
    let teacher_dir: PathBuf = match (teacher_dir, &prev) {
        (Some(t), _) => t.to_path_buf(),
        (None, Some(r)) => PathBuf::from(&r.teacher),
        (None, None) => bail!(
            "{} has no linearize.json naming its all-ReLU teacher: pass --teacher",
            pr.display()
        ),
    };
    let teacher = load_model(&teacher_dir, device)
        .with_context(|| format!("loading the teacher {}", teacher_dir.display()))?
        .0;
    if teacher.spec != model.spec {
        bail!(
            "the teacher {} is not the same architecture as {}",
            teacher_dir.display(),
            pr.display()
        );
    }
    Ok((teacher_dir, teacher, prev))
}

/// The `finetune` stage: train the partial-ReLU checkpoint `pr` with its masks frozen against its
/// all-ReLU teacher and write the result to `out`.
pub fn finetune(
    pr: &Path,
    teacher_dir: Option<&Path>,
    cfg: &FinetuneConfig,
    out: &Path,
    device: Device,
    resume: bool,
) -> Result<StageReport> {
    cfg.validate()?;
    let (mut model, spec, masks) = load_with_masks(pr, device)?;
    let Some(masks) = masks else {
        bail!(
            "{} has no masks: fine-tune a checkpoint written by `privlin linearize`",
            pr.display()
        );
    };
    let (teacher_dir, mut teacher, prev) = teacher_of(pr, &model, teacher_dir, device)?;
    model.use_channels_last(cfg.train.channels_last)?;
    teacher.use_channels_last(cfg.train.channels_last)?;
    let (train, test) = loaders(&spec, &cfg.train, cfg.train_per_class, device)?;
    // The linearize stage measured the teacher on the same test set already.
    let ar_acc = match &prev {
        Some(r) if r.teacher == teacher_dir.display().to_string() => r.test_acc_ar,
        _ => evaluate(&teacher, &test, None).accuracy,
    };
    let start_acc = evaluate(&model, &test, Some(&masks)).accuracy;
    let mut objective = Finetune::new(Teacher::new(teacher), masks.clone(), cfg.clone());
    let t0 = Instant::now();
    fit(
        &mut model,
        &train,
        &mut objective,
        FitOptions {
            cfg: &cfg.train,
            out,
            resume,
            eval: Some(&test),
            eval_masks: None,
            label: "finetune",
            verbose: true,
        },
    )?;
    let acc = evaluate(&model, &test, Some(&masks)).accuracy;
    save_pr(out, &spec, &model, &masks)?;
    let sites = site_counts(&model, &masks, None)?;
    let sites = match &prev {
        Some(r) => sites
            .into_iter()
            .zip(&r.sites)
            .map(|(s, p)| SiteCount {
                budget: p.budget,
                ..s
            })
            .collect(),
        None => sites,
    };
    let relus = counted_total(&sites);
    let report = StageReport {
        stage: "finetune".into(),
        method: prev.as_ref().map(|r| r.method.clone()).unwrap_or_default(),
        granularity: prev
            .as_ref()
            .map(|r| r.granularity)
            .unwrap_or(Granularity::Pixel),
        teacher: teacher_dir.display().to_string(),
        start: pr.display().to_string(),
        budget: prev.as_ref().map(|r| r.budget).unwrap_or(relus),
        relus,
        capacity: model.relu_count(),
        convention: model.spec.convention.describe(),
        sites,
        test_acc_ar: ar_acc,
        test_acc_start: Some(start_acc),
        test_acc: acc,
        test_images: test.data.len(),
        train_images: train.data.len(),
        epochs: cfg.train.epochs,
        budget_outcome: prev.as_ref().and_then(|r| r.budget_outcome),
        seconds: t0.elapsed().as_secs_f64(),
        notes: Vec::new(),
        config: serde_json::to_value(cfg)?,
    };
    crate::io::atomic_write_json(&out.join(FINETUNE_REPORT), &report)?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `linearize.json` with `extra` as its budget field(s).
    fn report(extra: &str) -> serde_json::Result<StageReport> {
        serde_json::from_str(&format!(
            r#"{{"stage": "linearize", "method": "snl", "granularity": "pixel", "teacher": "ar",
                "start": "ar", "budget": 100, "relus": 900, "capacity": 1000,
                "convention": "all", "sites": [], "test_acc_ar": 0.66, "test_acc_start": null,
                "test_acc": 0.64, "test_images": 10, "train_images": 10, "epochs": 36,
                "seconds": 1.0, "notes": [], "config": {{}}{extra}}}"#
        ))
    }

    /// A final stage far below its start is warned about, with the stage and both accuracies;
    /// one within the margin, or without a start, is not (issue 39).
    #[test]
    fn a_stage_far_below_its_start_is_warned_about() {
        let mut r = report("").unwrap();
        r.stage = "reshape".into();
        assert!(
            super::super::report::far_below_start(&r).is_none(),
            "no start"
        );
        r.test_acc_start = Some(0.736);
        r.test_acc = 0.288;
        let w = super::super::report::far_below_start(&r).expect("44.8 points below");
        assert!(
            w.contains("`reshape`") && w.contains("28.80 %") && w.contains("73.60 %"),
            "{w}"
        );
        r.test_acc = 0.70;
        assert!(
            super::super::report::far_below_start(&r).is_none(),
            "3.6 points"
        );
    }

    #[test]
    fn a_report_that_said_budget_reached_false_reads_as_not_reached() {
        let outcome = |extra: &str| report(extra).unwrap().budget_outcome;
        assert_eq!(
            outcome(r#", "budget_reached": false"#),
            Some(BudgetOutcome::NotReached)
        );
        assert_eq!(outcome(r#", "budget_reached": true"#), None);
        assert_eq!(outcome(""), None);
        assert_eq!(
            outcome(r#", "budget_outcome": "filled""#),
            Some(BudgetOutcome::Filled)
        );
        assert_eq!(
            outcome(r#", "budget_outcome": "not_reached""#),
            Some(BudgetOutcome::NotReached)
        );
        // Written back, a legacy report says `budget_outcome`.
        let r = report(r#", "budget_reached": false"#).unwrap();
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["budget_outcome"], "not_reached");
        assert!(v.get("budget_reached").is_none());
        assert!(report(r#", "budget_outcome": "sometimes""#).is_err());
    }
}
