//! `privlin`: partial-ReLU networks for two-party private inference.

mod bench;
mod common;
mod design;
mod eval;
mod importance;
mod importance_flags;
mod info;
mod linearize;
mod onnx;
mod pi;

mod pipeline;
mod reshape;
mod train;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "privlin",
    version,
    about = "Partial-ReLU CNNs for two-party private inference"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train an all-ReLU baseline (checkpoint, metrics, per-site ReLU table).
    Train(train::TrainArgs),
    /// The main job: the `privshap` pipeline of configs/demo.toml (built in) on synthetic data:
    /// train, Shapley importance, budgets, gradient-projection masks, fine-tuning, report.
    Demo(pipeline::RunArgs),
    /// Import an ONNX model (opset 13+) as a privlin checkpoint: a graph model with a site at
    /// every Relu and Clip(0, 6), trainable and linearizable like the zoo's.
    Import(onnx::ImportArgs),
    /// Write a checkpoint (imported or zoo, masks and fine-tuned weights included) as ONNX.
    ExportOnnx(onnx::ExportOnnxArgs),
    /// Evaluate a checkpoint (optionally with masks or with every site linearized).
    Eval(eval::EvalArgs),
    /// Per-site ReLU counts, MACs and parameters of an architecture or checkpoint.
    Info(info::InfoArgs),
    /// Layer importance of a trained model's activation sites (Shapley, SENet, Taylor, baselines),
    /// or Shapley values of a game given as a utility table.
    Importance(importance::ImportanceArgs),
    /// Per-site ReLU budgets from importance.json and a total budget.
    Allocate(importance::AllocateArgs),
    /// Score Shapley estimators against the exact values of a stored game (utility table):
    /// Pearson, Spearman and max error vs utility evaluations, several seeds.
    ShapleyScore(importance::ScoreArgs),
    /// Learn masks within a budget (gradproj, taylor, snl, l1-fixed-epochs, l1-budget-ramp, senet, deepreduce) -> a partial-ReLU checkpoint.
    Linearize(linearize::LinearizeArgs),
    /// Fine-tune a partial-ReLU checkpoint with frozen masks (KL + CE + PRAM).
    Finetune(linearize::FinetuneArgs),
    /// Depth reduction of a partial-ReLU checkpoint ("Making Models Shallow Again"): gated
    /// branching on blocks below d_th, an auxiliary classifier, fine-tuning, main branches deleted.
    Reshape(reshape::ReshapeArgs),
    /// The whole pipeline from a config: train -> importance -> allocate -> linearize ->
    /// finetune -> report, skipping stages whose artifacts are complete.
    Run(pipeline::RunArgs),
    /// The pipeline at several budgets and presets -> sweep.csv, pareto.svg, retention SVGs.
    Sweep(pipeline::SweepArgs),
    /// The plan (DAG of stages) that `run` / `sweep` would execute, with each stage's status.
    Plan(pipeline::PlanArgs),
    /// Run one stage of a saved plan (what executors and remote workers call).
    #[command(subcommand)]
    Stage(pipeline::StageCommandArgs),
    /// Answer a Shapley game's utility requests on stdin/stdout (started by `--workers N`).
    #[command(hide = true)]
    UtilityWorker,
    /// Rewrite report.md of a run directory from its artifacts.
    Report(linearize::ReportArgs),
    /// Benchmarks that compare against the PyTorch twin in the same run.
    Bench(bench::BenchArgs),
    /// Two-party private inference (privlin-mpc): export, serve, client, bench.
    #[command(subcommand)]
    Pi(pi::PiCommand),
    /// Predicted private-inference cost per layer: active ReLUs, MACs, bytes, latency per network
    /// profile (with this machine's measured speeds), and the papers' 0.021 s per 1,000 ReLUs.
    Cost(pi::CostArgs),
    /// Network design: stage criticality (DeepReDuce, Shapley) and HybReNets by ReLU
    /// equalization (DeepReShape).
    #[command(subcommand)]
    Design(design::DesignCommand),
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train(a) => train::run(a),
        Command::Demo(a) => pipeline::run(a, true),
        Command::Import(a) => onnx::run_import(a),
        Command::ExportOnnx(a) => onnx::run_export(a),
        Command::Eval(a) => eval::run(a),
        Command::Info(a) => info::run(a),
        Command::Importance(a) => importance::run_importance(a),
        Command::Allocate(a) => importance::run_allocate(a),
        Command::ShapleyScore(a) => importance::run_score(a),
        Command::Linearize(a) => linearize::run_linearize(a),
        Command::Finetune(a) => linearize::run_finetune(a),
        Command::Reshape(a) => reshape::run(a),
        Command::Run(a) => pipeline::run(a, false),
        Command::Sweep(a) => pipeline::sweep(a),
        Command::Plan(a) => pipeline::plan(a),
        Command::Stage(c) => pipeline::stage(c),
        Command::UtilityWorker => importance::run_utility_worker(),
        Command::Report(a) => linearize::run_report(a),
        Command::Bench(a) => bench::run(a),
        Command::Pi(c) => pi::run(c),
        Command::Cost(a) => pi::cost_cmd(a),
        Command::Design(c) => design::run(c),
    };
    if let Err(e) = result {
        // One write, so that errors of parallel stage processes do not interleave.
        use std::io::Write;
        let _ = std::io::stderr().write_all(format!("error: {e:#}\n").as_bytes());
        std::process::exit(1);
    }
}
