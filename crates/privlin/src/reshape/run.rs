//! The `reshape` stage: from a partial-ReLU checkpoint, gated branching on the blocks below
//! `d_th`, an auxiliary classifier if asked, fine-tuning with SENet's eq. 2 loss (plus AKD) while
//! the gate rises, then deletion of the main branches (and, when the AC serves, of the stages
//! after it). Writes the reshaped checkpoint and `reshape.json`, whose rows follow the paper's
//! Tables 1-2 (ReLUs, accuracy, layer depth, MAC saving and ReLU reduction against the all-ReLU
//! baseline).

use super::branch_fit::{fit_branches, BranchFit};
use super::sensitivity::{block_sensitivity, BlockSensitivity};
use super::{AuxMode, BranchInit, GateSchedule, ReshapeConfig};
use crate::linearize::export::MASKS_FILE;
use crate::linearize::finetune::Finetune;
use crate::linearize::run::{
    load_with_masks, loaders, save_pr, site_counts, teacher_of, StageReport, FINETUNE_REPORT,
};
use crate::linearize::{FinetuneConfig, Teacher};
use crate::nn::auxiliary::AUX_SITE;
use crate::nn::{AuxHead, MaskSet, Model, ModelSpec, SiteMask};
use crate::train::checkpoint::RESUME_FILE;
use crate::train::{evaluate, fit, CheckpointSpec, FitOptions};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

pub const RESHAPE_REPORT: &str = "reshape.json";
/// Sub-directory of the stage's output where the gated model trains (and resumes).
pub const GATED_DIR: &str = "gated";
const BRANCH_INIT_FILE: &str = "branch_init.json";

/// One model of the report: the paper's columns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VariantRow {
    pub variant: String,
    /// Counted ReLUs the masks keep.
    pub relus: i64,
    /// MACs per image of the served model.
    pub macs: i64,
    /// Weight layers on the longest path, and the paper's layer depth (convolutions inside
    /// residual blocks on that path).
    pub depth: Option<usize>,
    pub layer_depth: Option<usize>,
    pub test_acc: f64,
}

/// `reshape.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReshapeReport {
    pub start: String,
    pub teacher: String,
    pub d_th: f64,
    pub blocks: Vec<BlockSensitivity>,
    /// `R^2` of the shallow branches to their main branches at initialization.
    pub branch_init: Vec<BranchFit>,
    /// Test accuracy with every gate at 1 before fine-tuning: random branches, then fitted ones.
    pub test_acc_gate1_random: Option<f64>,
    pub test_acc_gate1_fit: Option<f64>,
    /// All-ReLU, start (partial-ReLU, no fine-tuning), with GB, with GB and AC output.
    pub rows: Vec<VariantRow>,
    /// The variant the checkpoint holds.
    pub served: String,
    pub epochs: usize,
    pub ramp_epochs: usize,
    pub test_images: usize,
    pub train_images: usize,
    pub seconds: f64,
    pub notes: Vec<String>,
    pub config: serde_json::Value,
}

impl ReshapeReport {
    /// The paper's Tables 1-2 as markdown: every row against the all-ReLU baseline.
    pub fn table(&self) -> String {
        let base = &self.rows[0];
        let mut s = String::from(
            "| model | ReLUs | test acc. (%) | layer depth | depth | MMACs | MAC saving | ReLU reduction |\n|---|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        let opt = |v: Option<usize>| v.map(|d| d.to_string()).unwrap_or_else(|| "-".into());
        for r in &self.rows {
            s.push_str(&format!(
                "| {} | {} | {:.2} | {} | {} | {:.2} | {:.2}x | {:.2}x |\n",
                r.variant,
                r.relus,
                100.0 * r.test_acc,
                opt(r.layer_depth),
                opt(r.depth),
                r.macs as f64 / 1e6,
                base.macs as f64 / r.macs.max(1) as f64,
                base.relus as f64 / r.relus.max(1) as f64,
            ));
        }
        s
    }

    /// The row of the variant the checkpoint holds.
    pub fn served_row(&self) -> &VariantRow {
        self.rows
            .iter()
            .find(|r| self.served.starts_with(&r.variant))
            .unwrap_or(&self.rows[self.rows.len() - 1])
    }

    /// Block sensitivities, selection and the branch fit, one line per block.
    pub fn blocks_table(&self) -> String {
        let mut s = String::from(
            "| block | intra-block ReLUs kept / capacity | d | shallow | R^2 random | R^2 fitted |\n|---|---:|---:|:---:|---:|---:|\n",
        );
        for b in &self.blocks {
            let fit = self.branch_init.iter().find(|f| f.block == b.block);
            s.push_str(&format!(
                "| {} | {} / {} | {:.3} | {} | {} | {} |\n",
                b.block,
                b.kept,
                b.capacity,
                b.d,
                if b.selected { "yes" } else { "" },
                fit.map(|f| format!("{:.3}", f.r2_random))
                    .unwrap_or_default(),
                fit.and_then(|f| f.r2_fit)
                    .map(|r| format!("{r:.3}"))
                    .unwrap_or_default(),
            ));
        }
        s
    }
}

/// Copy every tensor of `to` from the tensor of the same name in `from` (shapes must agree);
/// returns the names `from` lacks.
pub fn copy_by_name(from: &Model, to: &Model) -> Result<Vec<String>> {
    let src: HashMap<String, Tensor> = from.named_tensors().into_iter().collect();
    let mut missing = Vec::new();
    tch::no_grad(|| -> Result<()> {
        for (name, mut t) in to.named_tensors() {
            match src.get(&name) {
                Some(s) if s.size() == t.size() => {
                    t.copy_(s);
                }
                Some(s) => bail!(
                    "tensor `{name}` has shape {:?} in the source, {:?} in the reshaped model",
                    s.size(),
                    t.size()
                ),
                None => missing.push(name),
            }
        }
        Ok(())
    })?;
    Ok(missing)
}

/// `spec` built from `model`'s weights, which must hold every tensor it needs.
pub fn derive(model: &Model, spec: ModelSpec) -> Result<Model> {
    let out = Model::new(spec, model.device())?;
    let missing = copy_by_name(model, &out)?;
    if let Some(m) = missing.first() {
        bail!("the reshaped model needs tensor `{m}`, which the trained model does not have");
    }
    Ok(out)
}

/// Counted ReLUs kept by `masks` on `model`.
pub fn kept_relus(model: &Model, masks: &MaskSet) -> Result<i64> {
    let counts = masks.counts(model.sites())?;
    Ok((0..counts.len())
        .filter(|&i| model.counted(i))
        .map(|i| counts[i])
        .sum())
}

fn row(name: &str, model: &Model, masks: &MaskSet, acc: f64) -> Result<VariantRow> {
    let depth = model.depth();
    Ok(VariantRow {
        variant: name.into(),
        relus: kept_relus(model, masks)?,
        macs: model.macs_total(),
        depth: depth.map(|d| d.0),
        layer_depth: depth.map(|d| d.1),
        test_acc: acc,
    })
}

/// The mask of the AC's site in `model` under `policy`: its index, the mask and the ReLUs it keeps.
/// `Match` keeps as many as `masks` kept on `pr`'s sites that serving from the AC removes (the
/// stages after `after` and the final site), whole channels first.
fn aux_mask(
    pr: &Model,
    masks: &MaskSet,
    model: &Model,
    after: &str,
    policy: super::AuxRelus,
) -> Result<(usize, SiteMask, i64)> {
    use super::AuxRelus;
    let idx = model
        .sites()
        .iter()
        .position(|s| s.name == AUX_SITE)
        .context("the model has no auxiliary classifier site")?;
    let shape = model.sites()[idx].shape;
    let cap = shape.iter().product::<i64>();
    let k = match policy {
        AuxRelus::All => return Ok((idx, SiteMask::Keep, cap)),
        AuxRelus::None => return Ok((idx, SiteMask::Identity, 0)),
        AuxRelus::Match => {
            let stages = pr.spec.body_stages();
            let cut = stages
                .iter()
                .position(|s| s == after)
                .unwrap_or(stages.len());
            let later = &stages[cut + 1..];
            let counts = masks.counts(pr.sites())?;
            (0..counts.len())
                .filter(|&i| pr.counted(i))
                .filter(|&i| {
                    let s = &pr.sites()[i];
                    s.kind == crate::nn::SiteKind::Final
                        || later
                            .iter()
                            .any(|st| *st == crate::nn::removal::stage_of(s))
                })
                .map(|i| counts[i])
                .sum::<i64>()
                .min(cap)
        }
    };
    let m = Tensor::zeros([cap], (Kind::Float, model.device()));
    if k > 0 {
        let _ = m.narrow(0, 0, k).fill_(1.0);
    }
    Ok((idx, SiteMask::Tensor(m.view(shape)), k))
}

/// The stage a default AC reads: the one before the last.
fn default_aux_after(spec: &ModelSpec) -> Result<String> {
    let stages = spec.body_stages();
    if stages.len() < 2 {
        bail!(
            "{} has fewer than two residual stages: there is no place for an auxiliary classifier",
            spec.arch
        );
    }
    Ok(stages[stages.len() - 2].clone())
}

/// Run the stage: reshape the partial-ReLU checkpoint `pr` (teacher: `teacher_dir` or the one its
/// `linearize.json` names), fine-tune with `ft`, write the reshaped checkpoint into `out`.
pub fn reshape(
    pr: &Path,
    teacher_dir: Option<&Path>,
    ft: &FinetuneConfig,
    rc: &ReshapeConfig,
    out: &Path,
    device: Device,
    resume: bool,
) -> Result<ReshapeReport> {
    ft.validate()?;
    rc.validate()?;
    let (pr_model, spec, masks) = load_with_masks(pr, device)?;
    let Some(masks) = masks else {
        bail!(
            "{} has no masks: reshape a checkpoint written by `privlin linearize`",
            pr.display()
        );
    };
    if pr_model.spec.is_reshaped() {
        bail!("{} is already reshaped", pr.display());
    }
    if pr_model.spec.block_names().is_empty() {
        bail!(
            "{} is a {}, which has no residual blocks: gated branching and the auxiliary classifier need a ResNet, HybReNet or WRN",
            pr.display(),
            pr_model.spec.arch
        );
    }
    let (teacher_dir, mut teacher, prev) = teacher_of(pr, &pr_model, teacher_dir, device)?;
    let (train, test) = loaders(&spec, &ft.train, ft.train_per_class, device)?;
    let t0 = Instant::now();
    let mut notes = Vec::new();
    // The threshold follows the share of ReLUs the model keeps unless the config fixes it.
    let share = kept_relus(&pr_model, &masks)? as f64 / pr_model.relu_count().max(1) as f64;
    let d_th = rc.d_th_for(share);
    notes.push(format!(
        "d_th = {d_th:.4} ({}; the model keeps {:.2} % of its ReLUs)",
        if rc.d_th.is_some() {
            "set in [reshape]"
        } else {
            "following the budget: 0.1 x min(1, share / 15 %)"
        },
        100.0 * share
    ));
    let blocks = block_sensitivity(&pr_model, &masks, d_th)?;
    let selected: Vec<String> = blocks
        .iter()
        .filter(|b| b.selected)
        .map(|b| b.block.clone())
        .collect();
    if selected.is_empty() {
        let msg = format!(
            "no block has ReLU sensitivity below d_th = {:.4} (lowest: {:.3}): continuing without gated branching",
            d_th,
            blocks.iter().map(|b| b.d).fold(f64::INFINITY, f64::min)
        );
        eprintln!("reshape: {msg}");
        notes.push(msg);
    }
    let ramp = rc.ramp(&ft.train);
    if !selected.is_empty() && ramp >= ft.train.epochs {
        bail!(
            "the gate rises over {ramp} epochs but fine-tuning runs {}: the shallow branches would never carry the blocks alone (set reshape.ramp_epochs below finetune.train.epochs)",
            ft.train.epochs
        );
    }
    let aux_after = match (&rc.aux, &rc.aux_after) {
        (AuxMode::None, _) => None,
        (_, Some(a)) => Some(a.clone()),
        (_, None) => Some(default_aux_after(&pr_model.spec)?),
    };
    let mut gspec = pr_model.spec.clone();
    gspec.gated = selected.clone();
    gspec.shallow_kernel = rc.kernel;
    gspec.aux = aux_after.clone().map(|after| AuxHead {
        after,
        serve: false,
    });
    gspec
        .validate()
        .context("the [reshape] settings do not fit this model")?;
    let mut model = Model::seeded(gspec.clone(), device, ft.train.seed)?;
    copy_by_name(&pr_model, &model)?;
    model.use_channels_last(ft.train.channels_last)?;
    teacher.use_channels_last(ft.train.channels_last)?;
    let mut gmasks = masks.by_name(pr_model.sites(), model.sites());
    if let Some(after) = &aux_after {
        let (idx, mask, k) = aux_mask(&pr_model, &masks, &model, after, rc.aux_relus)?;
        gmasks.set(idx, mask);
        notes.push(format!(
            "auxiliary classifier after {after}: its site keeps {k} ReLUs ({:?})",
            rc.aux_relus
        ));
    }
    let test_acc_start = evaluate(&pr_model, &test, Some(&masks)).accuracy;

    let gated_dir = out.join(GATED_DIR);
    std::fs::create_dir_all(&gated_dir)
        .with_context(|| format!("creating {}", gated_dir.display()))?;
    let resuming = resume && gated_dir.join(RESUME_FILE).exists();
    let init_path = gated_dir.join(BRANCH_INIT_FILE);
    type Init = (Vec<BranchFit>, Option<f64>, Option<f64>);
    let (branch_init, acc_random, acc_fit): Init = if resuming && init_path.exists() {
        crate::io::read_json(&init_path)?
    } else if selected.is_empty() {
        (Vec::new(), None, None)
    } else {
        model.set_gate(1.0);
        let acc_random = evaluate(&model, &test, Some(&gmasks)).accuracy;
        let fit = rc.init == BranchInit::Fit;
        let fits = fit_branches(&model, &gmasks, &train, rc.init_batches, fit)?;
        let acc_fit = fit.then(|| evaluate(&model, &test, Some(&gmasks)).accuracy);
        let init = (fits, Some(acc_random), acc_fit);
        crate::io::atomic_write_json(&init_path, &init)?;
        init
    };
    model.set_gate(0.0);

    // PRAM over the sites that remain: those of the teacher, less the gated blocks' inner ones.
    let gone: HashSet<&String> = blocks
        .iter()
        .filter(|b| b.selected)
        .flat_map(|b| &b.sites)
        .collect();
    let pairs: Vec<(usize, usize)> = model
        .sites()
        .iter()
        .enumerate()
        .filter(|(_, s)| !gone.contains(&s.name))
        .filter_map(|(i, s)| {
            teacher
                .sites()
                .iter()
                .position(|t| t.name == s.name)
                .map(|j| (i, j))
        })
        .collect();
    let test_acc_ar = evaluate(&teacher, &test, None).accuracy;
    let ar_row = row(
        "all-ReLU",
        &teacher,
        &MaskSet::all_kept(teacher.sites().len()),
        test_acc_ar,
    )?;
    let start_row = row("partial-ReLU (start)", &pr_model, &masks, test_acc_start)?;
    let mut objective = Finetune::new(Teacher::new(teacher), gmasks.clone(), ft.clone())
        .with_pram_pairs(pairs)
        .with_gate(GateSchedule {
            shape: rc.gate,
            ramp,
        });
    fit(
        &mut model,
        &train,
        &mut objective,
        FitOptions {
            cfg: &ft.train,
            out: &gated_dir,
            resume: resuming,
            eval: Some(&test),
            eval_masks: None,
            label: "reshape",
            verbose: true,
        },
    )?;
    model.set_gate(1.0);

    // The two served forms: main classifier with shallow blocks, and AC output.
    let mut main_spec = gspec.clone();
    main_spec.shallow = std::mem::take(&mut main_spec.gated);
    main_spec.aux = None;
    let main = derive(&model, main_spec.clone())?;
    let main_masks = gmasks.by_name(model.sites(), main.sites());
    let gb_name = if selected.is_empty() {
        "fine-tuned (no block below d_th)"
    } else {
        "with GB"
    };
    let mut rows = vec![
        ar_row,
        start_row,
        row(
            gb_name,
            &main,
            &main_masks,
            evaluate(&main, &test, Some(&main_masks)).accuracy,
        )?,
    ];
    let mut ac_spec = None;
    if let Some(after) = &aux_after {
        let mut s = main_spec.clone();
        // Shallow blocks after the AC go with their stages.
        let stages = s.body_stages();
        let cut = stages
            .iter()
            .position(|st| st == after)
            .unwrap_or(stages.len());
        s.shallow.retain(|b| {
            stages[..=cut]
                .iter()
                .any(|st| st == ModelSpec::stage_of_block(b))
        });
        s.aux = Some(AuxHead {
            after: after.clone(),
            serve: true,
        });
        let ac = derive(&model, s.clone())?;
        let ac_masks = gmasks.by_name(model.sites(), ac.sites());
        rows.push(row(
            &format!("{gb_name}, AC output"),
            &ac,
            &ac_masks,
            evaluate(&ac, &test, Some(&ac_masks)).accuracy,
        )?);
        ac_spec = Some(s);
    }
    let (served_spec, served) = match rc.aux {
        AuxMode::None => (main_spec.clone(), rows[2].variant.clone()),
        AuxMode::Train => {
            let mut s = main_spec.clone();
            s.aux = gspec.aux.clone();
            (s, format!("{} (AC trained, not served)", rows[2].variant))
        }
        AuxMode::Serve => (ac_spec.expect("AC spec built"), rows[3].variant.clone()),
    };
    let final_model = derive(&model, served_spec.clone())?;
    let final_masks = gmasks.by_name(model.sites(), final_model.sites());
    final_model.save_weights(&out.join(crate::train::checkpoint::WEIGHTS_FILE))?;
    save_pr(
        out,
        &CheckpointSpec {
            model: served_spec,
            masks: Some(MASKS_FILE.into()),
            ..spec.clone()
        },
        &final_model,
        &final_masks,
    )?;
    let report = ReshapeReport {
        start: pr.display().to_string(),
        teacher: teacher_dir.display().to_string(),
        d_th,
        blocks,
        branch_init,
        test_acc_gate1_random: acc_random,
        test_acc_gate1_fit: acc_fit,
        rows,
        served,
        epochs: ft.train.epochs,
        ramp_epochs: ramp,
        test_images: test.data.len(),
        train_images: train.data.len(),
        seconds: t0.elapsed().as_secs_f64(),
        notes,
        config: serde_json::json!({ "reshape": rc, "finetune": ft }),
    };
    crate::io::atomic_write_json(&out.join(RESHAPE_REPORT), &report)?;
    // The fine-tuning report the pipeline's report and collect read, for the served variant.
    let served_row = report.served_row();
    let sites = site_counts(&final_model, &final_masks, None)?;
    let stage = StageReport {
        stage: "reshape".into(),
        method: prev.as_ref().map(|r| r.method.clone()).unwrap_or_default(),
        granularity: prev
            .as_ref()
            .map(|r| r.granularity)
            .unwrap_or(crate::nn::Granularity::Pixel),
        teacher: report.teacher.clone(),
        start: report.start.clone(),
        budget: prev.as_ref().map(|r| r.budget).unwrap_or(served_row.relus),
        relus: served_row.relus,
        capacity: final_model.relu_count(),
        convention: final_model.spec.convention.describe(),
        sites,
        test_acc_ar: report.rows[0].test_acc,
        test_acc_start: Some(report.rows[1].test_acc),
        test_acc: served_row.test_acc,
        test_images: report.test_images,
        train_images: report.train_images,
        epochs: report.epochs,
        budget_outcome: prev.as_ref().and_then(|r| r.budget_outcome),
        seconds: report.seconds,
        notes: report.notes.clone(),
        config: report.config.clone(),
    };
    crate::io::atomic_write_json(&out.join(FINETUNE_REPORT), &stage)?;
    crate::io::atomic_write_bytes(
        &out.join("reshape.md"),
        format!("{}\n{}", report.table(), report.blocks_table()).as_bytes(),
    )?;
    Ok(report)
}
