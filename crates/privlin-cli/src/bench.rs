//! `privlin bench train`: training throughput of privlin against its PyTorch twin, same model,
//! batch, threads and optimizer, alternating in one run, reported as a ratio.

use crate::common::{runtime, RuntimeArgs};
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use privlin::nn::{Model, ModelSpec};
use privlin::train::losses::cross_entropy;
use privlin::train::optim::{Optimizer, OptimizerConfig};
use std::path::PathBuf;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    what: BenchWhat,
}

#[derive(Subcommand, Debug)]
enum BenchWhat {
    /// Training steps per second, privlin vs the PyTorch twin.
    Train(TrainBench),
}

#[derive(Args, Debug)]
struct TrainBench {
    /// Models as arch@width, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "resnet18@0.25,resnet18@1"
    )]
    models: Vec<String>,
    #[arg(long, default_value_t = 128)]
    batch_size: i64,
    #[arg(long, default_value_t = 32)]
    input_size: i64,
    #[arg(long, default_value_t = 10)]
    steps: usize,
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Alternating privlin / PyTorch rounds; the best round of each is reported.
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    #[arg(long)]
    channels_last: bool,
    /// bf16 autocast for the PyTorch twin (CUDA only; privlin trains in fp32).
    #[arg(long)]
    bf16: bool,
    /// Python with torch 2.11.0 (default: the project venv).
    #[arg(long)]
    python: Option<PathBuf>,
    /// Write the results as JSON here too.
    #[arg(long)]
    json: Option<PathBuf>,
    #[command(flatten)]
    rt: RuntimeArgs,
}

fn repo_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn parse_model(s: &str) -> Result<(String, f64)> {
    match s.split_once('@') {
        Some((a, w)) => Ok((
            a.to_string(),
            w.parse().with_context(|| format!("width in `{s}`"))?,
        )),
        None => Ok((s.to_string(), 1.0)),
    }
}

fn privlin_round(model: &Model, b: &TrainBench, device: Device) -> Result<f64> {
    let x = Tensor::randn(model.input_shape(b.batch_size), (Kind::Float, device));
    let x = if b.channels_last {
        privlin::nn::layers::to_channels_last(&x)
    } else {
        x
    };
    let y = Tensor::randint(model.spec.classes, [b.batch_size], (Kind::Int64, device));
    let params = model
        .vs
        .variables()
        .into_iter()
        .filter(|(_, t)| t.requires_grad())
        .collect();
    let mut opt = Optimizer::new(
        OptimizerConfig {
            lr: 0.01,
            ..OptimizerConfig::default()
        },
        params,
    );
    let mut step = || {
        opt.zero_grad();
        let loss = cross_entropy(&model.forward(&x, true), &y, 0.0);
        loss.backward();
        opt.step(0.01);
        loss
    };
    for _ in 0..b.warmup {
        let _ = step();
    }
    if let Device::Cuda(_) = device {
        tch::Cuda::synchronize(0);
    }
    let t0 = Instant::now();
    let mut last = None;
    for _ in 0..b.steps {
        last = Some(step());
    }
    let _ = last.map(|l| l.double_value(&[]));
    if let Device::Cuda(_) = device {
        tch::Cuda::synchronize(0);
    }
    Ok((b.steps as i64 * b.batch_size) as f64 / t0.elapsed().as_secs_f64())
}

fn pytorch_round(
    arch: &str,
    width: f64,
    b: &TrainBench,
    device: Device,
    threads: i32,
) -> Result<(f64, String)> {
    let root = repo_dir();
    let python = b
        .python
        .clone()
        .unwrap_or_else(|| root.join(".venv/bin/python"));
    let mut cmd = std::process::Command::new(&python);
    cmd.arg(root.join("python/bench_train.py"))
        .args(["--arch", arch, "--width", &width.to_string()])
        .args([
            "--batch-size",
            &b.batch_size.to_string(),
            "--input-size",
            &b.input_size.to_string(),
        ])
        .args([
            "--steps",
            &b.steps.to_string(),
            "--warmup",
            &b.warmup.to_string(),
        ])
        .args(["--threads", &threads.to_string()])
        .args([
            "--device",
            if matches!(device, Device::Cuda(_)) {
                "cuda"
            } else {
                "cpu"
            },
        ]);
    if b.channels_last {
        cmd.arg("--channels-last");
    }
    if b.bf16 {
        cmd.arg("--bf16");
    }
    let out = cmd
        .output()
        .with_context(|| format!("running the PyTorch twin with {}", python.display()))?;
    if !out.status.success() {
        bail!(
            "PyTorch twin failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("PyTorch twin output")?;
    Ok((
        v["images_per_sec"].as_f64().context("images_per_sec")?,
        v["torch"].as_str().unwrap_or("?").to_string(),
    ))
}

fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

pub fn run(a: BenchArgs) -> Result<()> {
    let BenchWhat::Train(b) = a.what;
    let device = runtime(
        b.rt.device.as_deref().unwrap_or("cpu"),
        b.rt.threads.unwrap_or(0),
    )?;
    let threads = tch::get_num_threads();
    let machine = match device {
        Device::Cpu => format!(
            "{} ({} cores available, {threads} threads)",
            cpu_name(),
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(0)
        ),
        d => format!("{d:?}"),
    };
    println!("bench train on {machine}; batch {}, {}x{} input, {} timed steps after {} warm-up, best of {} rounds{}", b.batch_size, b.input_size, b.input_size, b.steps, b.warmup, b.rounds, if b.channels_last { ", channels-last" } else { "" });
    println!(
        "{:<16} {:>14} {:>14} {:>8}",
        "model", "privlin img/s", "PyTorch img/s", "ratio"
    );
    let mut rows = Vec::new();
    for m in &b.models {
        let (arch, width) = parse_model(m)?;
        let mut spec = ModelSpec::new(arch.parse()?);
        spec.width = width;
        spec.input_size = b.input_size;
        let mut model = Model::seeded(spec, device, 0)?;
        if b.channels_last {
            model.to_channels_last();
        }
        let (mut best_rs, mut best_py, mut torch_version) = (0f64, 0f64, String::new());
        for _ in 0..b.rounds.max(1) {
            best_rs = best_rs.max(privlin_round(&model, &b, device)?);
            let (py, v) = pytorch_round(&arch, width, &b, device, threads)?;
            best_py = best_py.max(py);
            torch_version = v;
        }
        let ratio = best_rs / best_py;
        println!(
            "{:<16} {:>14.1} {:>14.1} {:>8.3}",
            m, best_rs, best_py, ratio
        );
        rows.push(serde_json::json!({
            "model": m, "batch_size": b.batch_size, "threads": threads, "device": format!("{device:?}"),
            "privlin_images_per_sec": best_rs, "pytorch_images_per_sec": best_py, "ratio": ratio,
            "torch": torch_version, "machine": machine, "channels_last": b.channels_last,
        }));
    }
    if let Some(p) = &b.json {
        privlin::io::atomic_write_json(p, &rows)?;
    }
    Ok(())
}
