//! `privlin run` and `privlin sweep`: train -> importance -> allocate -> linearize -> finetune ->
//! private inference -> report, each stage skipped when its artifacts are complete, so a killed run resumes.

use crate::common::runtime;
use anyhow::{bail, Context, Result};
use clap::Args;
use privlin::budget::{Allocation, Budget};
use privlin::data::DataConfig;
use privlin::importance::Importance;
use privlin::linearize::report::{markdown, ReportInputs, DELPHI_SECONDS_PER_KRELU};
use privlin::linearize::run::{
    finetune, linearize, BudgetSource, StageReport, FINETUNE_REPORT, LINEARIZE_REPORT,
};
use privlin::linearize::{FinetuneConfig, LinearizeConfig, Method};
use privlin::pi::{PiConfig, PiReport, PI_REPORT};
use privlin::train::{ModelConfig, RunConfig, TrainConfig};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A pipeline config (`privlin run CONFIG.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineConfig {
    /// Run directory.
    pub out: PathBuf,
    /// privshap, relupruner, senet, snl, uniform, or custom.
    pub preset: String,
    /// Total ReLUs to keep: a count (12900, 50k) or a share of the counted ReLUs (5%).
    pub budget: String,
    pub device: String,
    pub threads: usize,
    pub model: ModelConfig,
    pub data: DataConfig,
    /// The all-ReLU training.
    pub train: TrainConfig,
    /// Flags of `privlin importance` (`method`, `players`, `threshold`, ...), without `--`.
    pub importance: toml::Table,
    pub linearize: LinearizeConfig,
    pub finetune: FinetuneConfig,
    /// The private-inference stage (test images under the two-party protocol).
    pub pi: PiConfig,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            out: PathBuf::from("runs/run"),
            preset: "privshap".into(),
            budget: "5%".into(),
            device: "auto".into(),
            threads: 0,
            model: ModelConfig::default(),
            data: DataConfig::default(),
            train: TrainConfig::default(),
            importance: toml::Table::new(),
            linearize: LinearizeConfig::default(),
            finetune: FinetuneConfig::default(),
            pi: PiConfig::default(),
        }
    }
}

/// The papers' recipes: which importance method sets the per-site budgets (none for the global
/// learners) and which learner finds the masks.
pub fn preset(name: &str) -> Result<(Option<&'static str>, &'static str)> {
    Ok(match name {
        "privshap" => (Some("shapley-tree"), "gradproj"),
        "uniform" => (Some("uniform"), "gradproj"),
        "senet" => (Some("senet"), "senet"),
        "relupruner" => (None, "taylor"),
        "snl" => (None, "snl"),
        "custom" => (None, ""),
        other => bail!(
            "unknown preset `{other}` (expected privshap, relupruner, senet, snl, uniform or custom)"
        ),
    })
}

/// Apply `key.path=value` overrides to a TOML table (the value parsed as TOML, else a string).
fn apply_sets(table: &mut toml::Table, sets: &[String]) -> Result<()> {
    for s in sets {
        let Some((key, value)) = s.split_once('=') else {
            bail!("--set `{s}`: expected key.path=value");
        };
        let value: toml::Value = toml::from_str::<toml::Table>(&format!("v = {value}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(value.to_string()));
        let parts: Vec<&str> = key.trim().split('.').collect();
        let mut t = &mut *table;
        for p in &parts[..parts.len() - 1] {
            t = t
                .entry(p.to_string())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                .as_table_mut()
                .with_context(|| format!("--set `{s}`: `{p}` is not a table"))?;
        }
        t.insert(parts[parts.len() - 1].to_string(), value);
    }
    Ok(())
}

impl PipelineConfig {
    /// Parse `text` (from `origin`) with `--set` overrides.
    pub fn parse(text: &str, origin: &str, sets: &[String]) -> Result<Self> {
        let mut table: toml::Table =
            toml::from_str(text).with_context(|| format!("config {origin}"))?;
        apply_sets(&mut table, sets)?;
        let cfg: PipelineConfig = toml::Value::Table(table)
            .try_into()
            .with_context(|| format!("config {origin}"))?;
        preset(&cfg.preset).with_context(|| format!("config {origin}: preset"))?;
        cfg.budget
            .parse::<Budget>()
            .with_context(|| format!("config {origin}: budget"))?;
        cfg.linearize
            .validate()
            .with_context(|| format!("config {origin}: [linearize]"))?;
        cfg.finetune
            .validate()
            .with_context(|| format!("config {origin}: [finetune]"))?;
        cfg.pi
            .validate()
            .with_context(|| format!("config {origin}: [pi]"))?;
        Ok(cfg)
    }

    pub fn load(path: &Path, sets: &[String]) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading config {}", path.display()))?;
        Self::parse(&text, &path.display().to_string(), sets)
    }

    /// The importance method and learner, from the preset unless set explicitly.
    fn methods(&self) -> Result<(Option<String>, Method)> {
        let (imp, lin) = preset(&self.preset)?;
        let imp = match self.importance.get("method") {
            Some(v) => Some(
                v.as_str()
                    .context("[importance] method must be a string")?
                    .to_string(),
            ),
            None => imp.map(str::to_string),
        };
        let lin = match &self.linearize.method {
            Some(m) => m.clone(),
            None if lin.is_empty() => bail!("preset `custom` needs linearize.method"),
            None => lin.to_string(),
        };
        let lin: Method = lin.parse()?;
        if !lin.is_global() && imp.is_none() {
            bail!(
                "learner `{}` needs per-site budgets: set [importance] method",
                lin.name()
            );
        }
        Ok((imp, lin))
    }
}

/// Where the artifacts of one pipeline point live.
pub struct Layout {
    pub ar: PathBuf,
    pub importance: PathBuf,
    pub budget: PathBuf,
    pub pr: PathBuf,
    pub final_: PathBuf,
    /// The private-inference export and `pi.json`.
    pub pi: PathBuf,
    pub report: PathBuf,
}

impl Layout {
    pub fn single(out: &Path) -> Self {
        Layout {
            ar: out.join("ar"),
            importance: out.join("importance.json"),
            budget: out.join("budget.json"),
            pr: out.join("pr"),
            final_: out.join("final"),
            pi: out.join("pi"),
            report: out.join("report.md"),
        }
    }
}

fn ar_complete(dir: &Path, epochs: usize) -> bool {
    dir.join("spec.json").exists()
        && dir.join("model.safetensors").exists()
        && std::fs::read_to_string(dir.join("metrics.jsonl"))
            .map(|t| t.lines().filter(|l| !l.trim().is_empty()).count() >= epochs)
            .unwrap_or(false)
}

fn importance_flags(
    cfg: &PipelineConfig,
    method: &str,
    ckpt: &Path,
    classes: i64,
) -> Result<Vec<String>> {
    let mut table = cfg.importance.clone();
    table.insert("method".into(), toml::Value::String(method.into()));
    if method == "shapley-tree" && !table.contains_key("threshold") {
        // PrivShap's 5 % is for 100 classes; on fewer classes the trim threshold sits above chance.
        table.insert(
            "threshold".into(),
            toml::Value::Float(100.0 / classes as f64 + 5.0),
        );
    }
    if method.starts_with("shapley") && !table.contains_key("players") {
        table.insert("players".into(), toml::Value::String("blocks".into()));
    }
    let mut flags = vec!["--ckpt".to_string(), ckpt.display().to_string()];
    for (k, v) in &table {
        if matches!(k.as_str(), "ckpt" | "out" | "plot") {
            bail!("[importance] {k} is set by the pipeline");
        }
        let flag = format!("--{}", k.replace('_', "-"));
        match v {
            toml::Value::Boolean(true) => flags.push(flag),
            toml::Value::Boolean(false) => {}
            toml::Value::String(s) => flags.extend([flag, s.clone()]),
            toml::Value::Integer(i) => flags.extend([flag, i.to_string()]),
            toml::Value::Float(f) => flags.extend([flag, f.to_string()]),
            other => bail!("[importance] {k} = {other}: expected a string, number or boolean"),
        }
    }
    flags.extend(["--device".to_string(), cfg.device.clone()]);
    Ok(flags)
}

/// Refuse to reuse a stage's artifacts made with another config.
fn same_config<T: Serialize>(report: &StageReport, cfg: &T, dir: &Path) -> Result<()> {
    let now = serde_json::to_value(cfg)?;
    if report.config != now {
        bail!(
            "{} was made with a different config than the current one: delete it to redo the stage, or restore the config",
            dir.display()
        );
    }
    Ok(())
}

/// Run (or resume) the pipeline for `cfg` into `layout`, printing what each stage does.
pub fn run_pipeline(cfg: &PipelineConfig, layout: &Layout, title: &str) -> Result<()> {
    let device = runtime(&cfg.device, cfg.threads)?;
    let (imp_method, learner) = cfg.methods()?;
    if let (Some(m), false) = (&imp_method, learner.is_global()) {
        // Check the [importance] table now, not only when its stage runs.
        crate::importance::args_from(&importance_flags(cfg, m, &layout.ar, 10)?)?;
    }
    // 1. The all-ReLU model.
    let ar_cfg = RunConfig {
        out: layout.ar.clone(),
        device: cfg.device.clone(),
        threads: cfg.threads,
        model: cfg.model.clone(),
        data: cfg.data.clone(),
        train: cfg.train.clone(),
    };
    if ar_complete(&layout.ar, cfg.train.epochs) {
        let old = RunConfig::from_toml_file(&layout.ar.join("config.toml")).ok();
        if old.as_ref().is_some_and(|o| {
            o.model != ar_cfg.model || o.data != ar_cfg.data || o.train != ar_cfg.train
        }) {
            bail!(
                "{} holds an all-ReLU model trained with another [model], [data] or [train]: delete it or restore the config",
                layout.ar.display()
            );
        }
        eprintln!("[1/6] train: {} is complete, skipped", layout.ar.display());
    } else {
        let resume = layout.ar.join("resume.safetensors").exists();
        eprintln!(
            "[1/6] train: all-ReLU model -> {}{}",
            layout.ar.display(),
            if resume { " (resuming)" } else { "" }
        );
        crate::train::train(&ar_cfg, resume)?;
    }
    let (model, _) = privlin::train::load_model(&layout.ar, tch::Device::Cpu)?;
    // 2-3. Importance and per-site budgets (per-site learners only).
    let source = if let (Some(m), false) = (&imp_method, learner.is_global()) {
        if layout.importance.exists() {
            eprintln!(
                "[2/6] importance: {} exists, skipped",
                layout.importance.display()
            );
        } else {
            eprintln!("[2/6] importance: {m} -> {}", layout.importance.display());
            let flags = importance_flags(cfg, m, &layout.ar, model.spec.classes)?;
            let imp = crate::importance::compute(&crate::importance::args_from(&flags)?)?;
            if let Some(dir) = layout.importance.parent() {
                std::fs::create_dir_all(dir)?;
            }
            privlin::io::atomic_write_json(&layout.importance, &imp)?;
            crate::importance::print_importance(
                &imp,
                &layout.importance,
                Some(&layout.importance.with_extension("svg")),
            )?;
        }
        let want = cfg.budget.parse::<Budget>()?.resolve(model.relu_count())?;
        let have: Option<Allocation> = privlin::io::read_json(&layout.budget).ok();
        let imp: Importance = privlin::io::read_json(&layout.importance)?;
        if have
            .as_ref()
            .is_some_and(|a| a.budget == want && a.method == imp.method)
        {
            eprintln!(
                "[3/6] allocate: {} exists, skipped",
                layout.budget.display()
            );
        } else {
            eprintln!(
                "[3/6] allocate: {} ReLUs by {} -> {}",
                want,
                imp.method,
                layout.budget.display()
            );
            if let Some(dir) = layout.budget.parent() {
                std::fs::create_dir_all(dir)?;
            }
            crate::importance::allocate_to(
                &layout.importance,
                &cfg.budget,
                &layout.budget,
                Some(&layout.budget.with_extension("svg")),
            )?;
        }
        BudgetSource::Allocation(&layout.budget)
    } else {
        eprintln!(
            "[2-3/6] importance, allocate: `{}` ranks ReLUs globally, no per-site budgets",
            learner.name()
        );
        BudgetSource::Total(cfg.budget.parse()?)
    };
    // 4. Masks.
    let mut lin_cfg = cfg.linearize.clone();
    lin_cfg.method = Some(learner.name().into());
    let lin_report = layout.pr.join(LINEARIZE_REPORT);
    let lin: StageReport = if lin_report.exists() {
        let r: StageReport = privlin::io::read_json(&lin_report)?;
        same_config(&r, &lin_cfg, &layout.pr)?;
        eprintln!(
            "[4/6] linearize: {} is complete, skipped",
            layout.pr.display()
        );
        r
    } else {
        let resume = layout.pr.join("resume.safetensors").exists();
        eprintln!(
            "[4/6] linearize: {} -> {}{}",
            learner.name(),
            layout.pr.display(),
            if resume { " (resuming)" } else { "" }
        );
        linearize(&layout.ar, source, &lin_cfg, &layout.pr, device, resume)?
    };
    // 5. Fine-tuning.
    let ft_report = layout.final_.join(FINETUNE_REPORT);
    let ft: StageReport = if ft_report.exists() {
        let r: StageReport = privlin::io::read_json(&ft_report)?;
        same_config(&r, &cfg.finetune, &layout.final_)?;
        eprintln!(
            "[5/6] finetune: {} is complete, skipped",
            layout.final_.display()
        );
        r
    } else {
        let resume = layout.final_.join("resume.safetensors").exists();
        eprintln!(
            "[5/6] finetune: KL + CE + PRAM -> {}{}",
            layout.final_.display(),
            if resume { " (resuming)" } else { "" }
        );
        finetune(
            &layout.pr,
            Some(&layout.ar),
            &cfg.finetune,
            &layout.final_,
            device,
            resume,
        )?
    };
    // 6. Private inference of the result.
    let pi = private_inference(cfg, layout, &model)?;
    // Report.
    let imp: Option<Importance> = privlin::io::read_json(&layout.importance).ok();
    let alloc: Option<Allocation> = match (&imp_method, learner.is_global()) {
        (Some(_), false) => Some(privlin::io::read_json(&layout.budget)?),
        _ => None,
    };
    let md = markdown(&ReportInputs {
        title,
        model: &model,
        importance: imp.as_ref().filter(|_| alloc.is_some()),
        allocation: alloc.as_ref(),
        linearize: Some(&lin),
        finetune: Some(&ft),
        pi: pi.as_ref(),
    });
    privlin::io::atomic_write_bytes(&layout.report, md.as_bytes())?;
    println!(
        "{title}: {} of {} ReLUs ({:.2} %), test accuracy all-ReLU {:.2} %, linearized {:.2} %, fine-tuned {:.2} %; DELPHI estimate {:.3} s (papers' {} s per 1,000 ReLUs)",
        ft.relus,
        ft.capacity,
        100.0 * ft.relus as f64 / ft.capacity as f64,
        100.0 * ft.test_acc_ar,
        100.0 * lin.test_acc,
        100.0 * ft.test_acc,
        ft.relus as f64 / 1000.0 * DELPHI_SECONDS_PER_KRELU,
        DELPHI_SECONDS_PER_KRELU
    );
    if let Some(p) = &pi {
        let wan = p.partial.slowest().expect("profiles");
        println!(
            "private inference of {} test images: private class = float class on {}/{}; per inference {:.2} MB online, {:.2} MB offline, measured {:.3} s online / {:.3} s offline here; predicted online {:.3} s on {}",
            p.images,
            p.agree_float,
            p.images,
            p.partial.online_bytes as f64 / 1e6,
            p.partial.offline_bytes as f64 / 1e6,
            p.online_s,
            p.offline_s,
            wan.online_s,
            wan.network
        );
    }
    println!(
        "report: {}; masks: {}/masks.safetensors, active ReLU index: {}/active.safetensors",
        layout.report.display(),
        layout.final_.display(),
        layout.final_.display()
    );
    Ok(())
}

/// Stage 6: export `final/` and classify test images under the two-party protocol (skipped when
/// `pi/pi.json` was made from the same checkpoint with the same `[pi]`, or when `[pi] images = 0`).
fn private_inference(
    cfg: &PipelineConfig,
    layout: &Layout,
    model: &privlin::nn::Model,
) -> Result<Option<PiReport>> {
    if cfg.pi.images == 0 {
        eprintln!("[6/6] private inference: [pi] images = 0, skipped");
        return Ok(None);
    }
    if let Some(why) = privlin::pi::export::unsupported(model) {
        eprintln!("[6/6] private inference: skipped: {why}");
        return Ok(None);
    }
    let done = layout.pi.join(PI_REPORT);
    if let Ok(r) = privlin::io::read_json::<PiReport>(&done) {
        if r.config == cfg.pi && r.checkpoint == layout.final_.display().to_string() {
            eprintln!(
                "[6/6] private inference: {} is complete, skipped",
                done.display()
            );
            return Ok(Some(r));
        }
        eprintln!(
            "[6/6] private inference: {} was made with another [pi] or checkpoint, measuring again",
            done.display()
        );
    }
    eprintln!(
        "[6/6] private inference: export -> {}, {} test images under the two-party protocol",
        layout.pi.display(),
        cfg.pi.images
    );
    privlin::pi::measure(&layout.final_, &layout.pi, &cfg.pi).map(Some)
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Pipeline config (TOML): out, preset, budget, [model], [data], [train], [importance],
    /// [linearize], [finetune].
    config: Option<PathBuf>,
    /// Override a config value, e.g. `--set budget=3%` or `--set linearize.train.epochs=2`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Shortcuts for `--set out=...`, `--set data.source=...`, `--set device=...`.
    #[arg(long)]
    out: Option<String>,
    #[arg(long)]
    data: Option<String>,
    #[arg(long)]
    device: Option<String>,
}

const DEMO: &str = include_str!("../../../configs/demo.toml");

fn load_config(a: &RunArgs, demo: bool) -> Result<PipelineConfig> {
    let mut sets = a.sets.clone();
    if let Some(o) = &a.out {
        sets.push(format!("out={}", toml::Value::String(o.clone())));
    }
    if let Some(d) = &a.data {
        sets.push(format!("data.source={}", toml::Value::String(d.clone())));
        sets.push("data.format=\"auto\"".into());
    }
    if let Some(d) = &a.device {
        sets.push(format!("device={}", toml::Value::String(d.clone())));
    }
    match (&a.config, demo) {
        (Some(p), _) => PipelineConfig::load(p, &sets),
        (None, true) => PipelineConfig::parse(DEMO, "configs/demo.toml (built in)", &sets),
        (None, false) => bail!("privlin run needs a config file (see configs/demo.toml)"),
    }
}

pub fn run(a: RunArgs, demo: bool) -> Result<()> {
    let cfg = load_config(&a, demo)?;
    let t0 = std::time::Instant::now();
    std::fs::create_dir_all(&cfg.out).with_context(|| format!("creating {}", cfg.out.display()))?;
    privlin::io::atomic_write_bytes(
        &cfg.out.join("run.toml"),
        toml::to_string_pretty(&cfg)?.as_bytes(),
    )?;
    let title = format!(
        "privlin run: preset `{}`, budget {}",
        cfg.preset, cfg.budget
    );
    run_pipeline(&cfg, &Layout::single(&cfg.out), &title)?;
    println!("done in {:.1} s", t0.elapsed().as_secs_f64());
    if demo && cfg.data.is_synthetic() {
        println!("same job on real data: ./privlin demo --data ../shared/data/cifar10 --out runs/cifar10-demo");
    }
    Ok(())
}
