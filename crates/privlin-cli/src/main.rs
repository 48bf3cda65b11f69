//! `privlin`: partial-ReLU networks for two-party private inference.

mod bench;
mod common;
mod eval;
mod importance;
mod info;
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
    /// The main job on the built-in synthetic data: train a narrow ResNet-18 for a few epochs,
    /// print the per-site ReLU table and test accuracy with all sites kept and all linearized.
    Demo(train::TrainArgs),
    /// Evaluate a checkpoint (optionally with masks or with every site linearized).
    Eval(eval::EvalArgs),
    /// Per-site ReLU counts, MACs and parameters of an architecture or checkpoint.
    Info(info::InfoArgs),
    /// Layer importance of a trained model's activation sites (Shapley, SENet, Taylor, baselines),
    /// or Shapley values of a game given as a utility table.
    Importance(importance::ImportanceArgs),
    /// Per-site ReLU budgets from importance.json and a total budget.
    Allocate(importance::AllocateArgs),
    /// Benchmarks that compare against the PyTorch twin in the same run.
    Bench(bench::BenchArgs),
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train(a) => train::run(a, false),
        Command::Demo(a) => train::run(a, true),
        Command::Eval(a) => eval::run(a),
        Command::Info(a) => info::run(a),
        Command::Importance(a) => importance::run_importance(a),
        Command::Allocate(a) => importance::run_allocate(a),
        Command::Bench(a) => bench::run(a),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
