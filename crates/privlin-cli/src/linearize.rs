//! `privlin linearize`, `privlin finetune` and `privlin report`.

use crate::common::{runtime, RuntimeArgs};
use anyhow::{bail, Result};
use clap::Args;
use privlin::linearize::report::{markdown, ReportInputs};
use privlin::linearize::run::{
    finetune, linearize_from, BudgetSource, StageReport, FINETUNE_REPORT, LINEARIZE_REPORT,
};
use privlin::pipeline::PipelineConfig;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct LinearizeArgs {
    /// All-ReLU checkpoint directory.
    #[arg(long)]
    ckpt: PathBuf,
    /// gradproj, taylor, snl, l1-fixed-epochs, l1-budget-ramp or senet.
    #[arg(long)]
    method: String,
    /// Per-site budgets (budget.json from `privlin allocate`).
    #[arg(long, conflicts_with = "total")]
    budget: Option<PathBuf>,
    /// A total budget for the global learners (taylor, snl, l1-fixed-epochs, l1-budget-ramp): a count or a share (3%).
    #[arg(long)]
    total: Option<String>,
    /// Output checkpoint directory (weights, spec.json, masks, active index, linearize.json).
    #[arg(long)]
    out: PathBuf,
    /// Take the `[linearize]` table of this pipeline config.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override a config value, e.g. `--set linearize.taylor.second_order=false`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// pixel or channel.
    #[arg(long)]
    granularity: Option<String>,
    #[arg(long)]
    epochs: Option<usize>,
    #[arg(long)]
    train_per_class: Option<usize>,
    /// Continue a killed run from its last checkpoint in --out.
    #[arg(long)]
    resume: bool,
    /// snl only: continue the path of this finished snl run (same checkpoint, config and seed, a
    /// larger budget) from where it stopped, instead of repeating its epochs.
    #[arg(long, value_name = "DIR")]
    continue_from: Option<PathBuf>,
    #[command(flatten)]
    rt: RuntimeArgs,
}

fn base_config(config: &Option<PathBuf>, sets: &[String]) -> Result<PipelineConfig> {
    match config {
        Some(p) => PipelineConfig::load(p, sets),
        None => PipelineConfig::parse("", "the defaults", sets),
    }
}

pub fn run_linearize(a: LinearizeArgs) -> Result<()> {
    let mut cfg = base_config(&a.config, &a.sets)?.linearize;
    cfg.method = Some(a.method.clone());
    if let Some(g) = &a.granularity {
        cfg.granularity = match g.as_str() {
            "pixel" => privlin::nn::Granularity::Pixel,
            "channel" => privlin::nn::Granularity::Channel,
            other => bail!("unknown --granularity `{other}` (expected pixel or channel)"),
        };
    }
    if let Some(e) = a.epochs {
        cfg.train.epochs = e;
    }
    if a.train_per_class.is_some() {
        cfg.train_per_class = a.train_per_class;
    }
    let device = runtime(
        a.rt.device.as_deref().unwrap_or("auto"),
        a.rt.threads.unwrap_or(0),
    )?;
    let source = match (&a.budget, &a.total) {
        (Some(p), None) => BudgetSource::Allocation(p),
        (None, Some(t)) => BudgetSource::Total(t.parse()?),
        _ => bail!("give --budget budget.json (per-site budgets) or --total N (global learners)"),
    };
    let r = linearize_from(
        &a.ckpt,
        source,
        &cfg,
        &a.out,
        device,
        a.resume,
        a.continue_from.as_deref(),
    )?;
    print_stage(&r);
    Ok(())
}

fn print_stage(r: &StageReport) {
    println!(
        "{:<24} {:>10} {:>10} {:>10} {:>8}",
        "site", "capacity", "budget", "kept", "kept %"
    );
    for s in &r.sites {
        println!(
            "{:<24} {:>10} {:>10} {:>10} {:>7.2}%{}",
            s.name,
            s.capacity,
            s.budget
                .map(|b| b.to_string())
                .unwrap_or_else(|| "-".into()),
            s.kept,
            100.0 * s.kept as f64 / s.capacity as f64,
            if s.counted { "" } else { "  (not counted)" }
        );
    }
    println!(
        "{} [{}]: {} of {} ReLUs (budget {}), test accuracy {:.2}% (all-ReLU {:.2}%{}) after {} epochs, {:.1} s",
        r.stage,
        r.method,
        r.relus,
        r.capacity,
        r.budget,
        100.0 * r.test_acc,
        100.0 * r.test_acc_ar,
        r.test_acc_start
            .map(|a| format!(", {:.2}% before this stage", 100.0 * a))
            .unwrap_or_default(),
        r.epochs,
        r.seconds
    );
    for n in &r.notes {
        println!("note: {n}");
    }
}

#[derive(Args, Debug)]
pub struct FinetuneArgs {
    /// Partial-ReLU checkpoint directory (from `privlin linearize`).
    #[arg(long)]
    ckpt: PathBuf,
    /// All-ReLU teacher (default: the one named in the checkpoint's linearize.json).
    #[arg(long)]
    teacher: Option<PathBuf>,
    #[arg(long)]
    out: PathBuf,
    /// Take the `[finetune]` table of this pipeline config.
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    #[arg(long)]
    epochs: Option<usize>,
    #[arg(long)]
    lr: Option<f64>,
    /// Weight of the KL term (1 - lambda weighs CE).
    #[arg(long)]
    lambda: Option<f64>,
    /// Weight of the PRAM terms (0: none).
    #[arg(long)]
    beta: Option<f64>,
    #[arg(long)]
    temperature: Option<f64>,
    #[arg(long)]
    train_per_class: Option<usize>,
    #[arg(long)]
    resume: bool,
    #[command(flatten)]
    rt: RuntimeArgs,
}

pub fn run_finetune(a: FinetuneArgs) -> Result<()> {
    let mut cfg = base_config(&a.config, &a.sets)?.finetune;
    if let Some(e) = a.epochs {
        cfg.train.epochs = e;
    }
    if let Some(v) = a.lr {
        cfg.train.optimizer.lr = v;
    }
    if let Some(v) = a.lambda {
        cfg.lambda = v;
    }
    if let Some(v) = a.beta {
        cfg.beta = v;
    }
    if let Some(v) = a.temperature {
        cfg.temperature = v;
    }
    if a.train_per_class.is_some() {
        cfg.train_per_class = a.train_per_class;
    }
    let device = runtime(
        a.rt.device.as_deref().unwrap_or("auto"),
        a.rt.threads.unwrap_or(0),
    )?;
    let r = finetune(
        &a.ckpt,
        a.teacher.as_deref(),
        &cfg,
        &a.out,
        device,
        a.resume,
    )?;
    print_stage(&r);
    Ok(())
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Run directory of `privlin run` (ar/, importance.json, budget.json, pr/, final/).
    run: PathBuf,
}

pub fn run_report(a: ReportArgs) -> Result<()> {
    let l = privlin::pipeline::Layout::single(&a.run);
    let (model, _) = privlin::train::load_model(&l.ar, tch::Device::Cpu)?;
    let read = |p: PathBuf| -> Result<Option<StageReport>> {
        p.exists().then(|| privlin::io::read_json(&p)).transpose()
    };
    let lin = read(l.pr.join(LINEARIZE_REPORT))?;
    let ft = read(l.final_.join(FINETUNE_REPORT))?;
    let imp = privlin::io::read_json(&l.importance).ok();
    let alloc = privlin::io::read_json(&l.budget).ok();
    let pi = privlin::io::read_json(&l.pi.join(privlin::pi::PI_REPORT)).ok();
    let md = markdown(&ReportInputs {
        title: &format!("privlin report: {}", a.run.display()),
        model: &model,
        importance: imp.as_ref(),
        allocation: alloc.as_ref(),
        linearize: lin.as_ref(),
        finetune: ft.as_ref(),
        pi: pi.as_ref(),
        reshape: privlin::io::read_json(&l.final_.join(privlin::reshape::RESHAPE_REPORT))
            .ok()
            .as_ref(),
    });
    privlin::io::atomic_write_bytes(&l.report, md.as_bytes())?;
    println!("{md}");
    Ok(())
}
