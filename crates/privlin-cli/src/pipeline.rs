//! `privlin run`, `privlin demo`, `privlin sweep`, `privlin plan` and `privlin stage run`: parse
//! arguments, build a plan with `privlin::pipeline`, hand it to an executor, print the results.

use crate::common::{cores, python, repo_path, WorkerArgs};
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use privlin::pipeline::runner::{complete_nodes, run_node};
use privlin::pipeline::{
    Ctx, Executor, PipelineConfig, Plan, Processes, Ray, Sequential, StageCommand,
};
use std::path::PathBuf;

/// How a plan is executed.
#[derive(Args, Debug, Clone)]
pub struct ExecArgs {
    /// local (this machine) or ray (a Ray cluster, `bash scripts/setup.sh --ray` installs it).
    #[arg(long, default_value = "local")]
    executor: String,
    /// local: independent stages at once, each in a child process (1: all in this process).
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// ray: the cluster (auto or HOST:PORT); without it a local Ray instance is started.
    #[arg(long)]
    address: Option<String>,
    /// ray: CPUs of the local instance (default: all).
    #[arg(long)]
    ray_cpus: Option<usize>,
    /// ray: CPUs (and libtorch threads) per stage task.
    #[arg(long, default_value_t = 1)]
    stage_cpus: usize,
    /// ray: retries of a failed task.
    #[arg(long, default_value_t = 2)]
    retries: usize,
}

impl ExecArgs {
    /// The executor, and the utility workers a stage in this process would use.
    fn executor(&self, plan: &Plan) -> Result<(Box<dyn Executor>, Ctx)> {
        let mut ctx = Ctx {
            device: plan.device.clone(),
            threads: plan.threads,
            utility_workers: None,
            resume: false,
        };
        let program = std::env::current_exe()?;
        Ok(match self.executor.as_str() {
            "local" if self.jobs <= 1 => {
                ctx.utility_workers = Some(crate::common::worker_spec(
                    &WorkerArgs {
                        utility_workers: "local".into(),
                        ray_address: None,
                    },
                    &plan.device,
                    plan.threads,
                )?);
                (Box::new(Sequential), ctx)
            }
            "local" => {
                let threads = if plan.threads > 0 {
                    plan.threads
                } else {
                    (cores() / self.jobs).max(1)
                };
                (
                    Box::new(Processes {
                        jobs: self.jobs,
                        command: StageCommand {
                            program,
                            threads,
                            extra: vec![],
                        },
                    }),
                    ctx,
                )
            }
            "ray" => {
                let mut extra = vec!["--utility-workers".to_string(), "ray".to_string()];
                if let Some(a) = &self.address {
                    extra.extend(["--ray-address".to_string(), a.clone()]);
                }
                (
                    Box::new(Ray {
                        python: python(),
                        driver: repo_path("scripts/ray_plan.py"),
                        address: self.address.clone(),
                        cpus: self.ray_cpus,
                        retries: self.retries,
                        command: StageCommand {
                            program,
                            threads: self.stage_cpus.max(1),
                            extra,
                        },
                    }),
                    ctx,
                )
            }
            other => bail!("unknown --executor `{other}` (expected local or ray)"),
        })
    }
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Pipeline config (TOML): out, preset, budget, [model], [data], [train], [importance],
    /// [linearize], [finetune], [pi].
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
    #[command(flatten)]
    exec: ExecArgs,
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

/// Save `plan`, execute it, and print every point's results.
fn execute(plan: &Plan, exec: &ExecArgs) -> Result<()> {
    plan.save()?;
    let (executor, ctx) = exec.executor(plan)?;
    executor.execute(plan, &ctx)?;
    for r in plan.reports() {
        println!("{}", r.summary()?);
    }
    Ok(())
}

pub fn run(a: RunArgs, demo: bool) -> Result<()> {
    let cfg = load_config(&a, demo)?;
    let t0 = std::time::Instant::now();
    std::fs::create_dir_all(&cfg.out).with_context(|| format!("creating {}", cfg.out.display()))?;
    privlin::io::atomic_write_bytes(
        &cfg.out.join("run.toml"),
        toml::to_string_pretty(&cfg)?.as_bytes(),
    )?;
    execute(&Plan::run(&cfg)?, &a.exec)?;
    println!("done in {:.1} s", t0.elapsed().as_secs_f64());
    if demo && cfg.data.is_synthetic() {
        println!("same job on real data: ./privlin demo --data ../shared/data/cifar10 --out runs/cifar10-demo");
    }
    Ok(())
}

/// What a sweep covers (shared by `sweep` and `plan`).
#[derive(Args, Debug)]
pub struct SweepShape {
    /// Pipeline config (TOML), as for `privlin run`.
    config: PathBuf,
    /// Budgets, comma-separated: counts (6k, 12900) or shares of the counted ReLUs (1%).
    #[arg(long, value_delimiter = ',')]
    budgets: Vec<String>,
    /// Presets to compare, comma-separated (default: the config's). A preset other than the
    /// config's `preset` runs its own importance method and learner: an explicit
    /// `[importance] method` or `linearize.method` belongs to the config's preset only.
    #[arg(long, value_delimiter = ',')]
    presets: Vec<String>,
    /// Name of this variant's line (default: the preset); for ablations with `--set`. A variant
    /// with its own method also sets the preset: `--presets senet --tag senet-sparse --set
    /// preset="senet" --set importance.method="senet-sparse"` (refused without the preset).
    #[arg(long)]
    tag: Option<String>,
    /// Base networks to sweep, comma-separated: ARCH or ARCH@WIDTH (e.g.
    /// resnet18@0.25,hrn-5x7x2x@0.0625); each is trained once and gets every preset and budget.
    #[arg(long, value_delimiter = ',')]
    models: Vec<String>,
    /// Override a config value, e.g. `--set linearize.taylor.second_order=false`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
}

impl SweepShape {
    fn config(&self) -> Result<PipelineConfig> {
        PipelineConfig::load(&self.config, &self.sets)
    }

    fn plan(&self, cfg: &PipelineConfig) -> Result<Plan> {
        Plan::sweep(
            cfg,
            &self.budgets,
            &self.presets,
            self.tag.as_deref(),
            &self.models,
        )
    }
}

#[derive(Args, Debug)]
pub struct SweepArgs {
    #[command(flatten)]
    shape: SweepShape,
    /// Only collect the finished points into the CSV and plots.
    #[arg(long)]
    collect_only: bool,
    #[command(flatten)]
    exec: ExecArgs,
}

pub fn sweep(a: SweepArgs) -> Result<()> {
    let base = a.shape.config()?;
    if a.collect_only {
        println!(
            "{}",
            privlin::pipeline::stages::collect::collect(&base.out)?
        );
        return Ok(());
    }
    let t0 = std::time::Instant::now();
    let plan = a.shape.plan(&base)?;
    execute(&plan, &a.exec)?;
    // The plan's last node collected every point; its stamp holds the table it printed.
    let stamp: privlin::pipeline::runner::Stamp =
        privlin::io::read_json(&plan.stamp_path("collect"))?;
    println!("{}", stamp.summary.unwrap_or_default());
    println!("done in {:.1} s", t0.elapsed().as_secs_f64());
    Ok(())
}

#[derive(Args, Debug)]
pub struct PlanArgs {
    /// Without --budgets: the plan of `privlin run`.
    #[command(flatten)]
    shape: SweepShape,
    /// Print the plan as JSON (what `privlin stage run` reads).
    #[arg(long)]
    json: bool,
}

pub fn plan(a: PlanArgs) -> Result<()> {
    let cfg = a.shape.config()?;
    let s = &a.shape;
    let plan = if s.budgets.is_empty() {
        if !s.presets.is_empty() || s.tag.is_some() || !s.models.is_empty() {
            bail!("--presets, --tag and --models describe a sweep: give --budgets too");
        }
        Plan::run(&cfg)?
    } else {
        s.plan(&cfg)?
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&plan)?);
        return Ok(());
    }
    println!(
        "{:<4} {:<34} {:<10} {:<9} depends on",
        "#", "stage", "kind", "status"
    );
    let done = complete_nodes(&plan)?;
    for (i, n) in plan.nodes.iter().enumerate() {
        let status = if done.contains(&n.id) {
            "complete"
        } else if plan.stamp_path(&n.id).exists() {
            "started"
        } else {
            "to do"
        };
        println!(
            "{:<4} {:<34} {:<10} {:<9} {}",
            i + 1,
            n.id,
            n.spec.stage().kind().name(),
            status,
            n.deps.join(", ")
        );
    }
    println!(
        "{} stages; stamps and plan.json in {}",
        plan.nodes.len(),
        plan.out.join(privlin::pipeline::plan::STAGES_DIR).display()
    );
    Ok(())
}

#[derive(Subcommand, Debug)]
pub enum StageCommandArgs {
    /// Run one node of a saved plan (what executors and remote workers call).
    Run(StageRunArgs),
}

#[derive(Args, Debug)]
pub struct StageRunArgs {
    /// plan.json (OUT/stages/plan.json, written by run / sweep, or `privlin plan --json`).
    plan: PathBuf,
    /// The node's id (`privlin plan CONFIG` lists them).
    id: String,
    /// libtorch threads (default: the plan's).
    #[arg(long)]
    threads: Option<usize>,
    /// Device (default: the plan's).
    #[arg(long)]
    device: Option<String>,
    #[command(flatten)]
    workers: WorkerArgs,
}

pub fn stage(c: StageCommandArgs) -> Result<()> {
    let StageCommandArgs::Run(a) = c;
    let plan = Plan::load(&a.plan)?;
    let device = a.device.clone().unwrap_or_else(|| plan.device.clone());
    let threads = a.threads.unwrap_or(plan.threads);
    let ctx = Ctx {
        utility_workers: Some(crate::common::worker_spec(&a.workers, &device, threads)?),
        device,
        threads,
        resume: false,
    };
    run_node(&plan, &a.id, &ctx)?;
    Ok(())
}
