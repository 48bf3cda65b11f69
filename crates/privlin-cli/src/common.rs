//! Flags shared by several subcommands, and where the repository's scripts and Python are.

use anyhow::{bail, Result};
use clap::Args;
use privlin::importance::workers::WorkerSpec;
use std::path::PathBuf;
use tch::Device;

#[derive(Args, Debug, Clone, Default)]
pub struct RuntimeArgs {
    /// auto, cpu, cuda or cuda:N.
    #[arg(long)]
    pub device: Option<String>,
    /// libtorch intra-op threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

/// Apply the thread count and pick the device.
pub fn runtime(device: &str, threads: usize) -> Result<Device> {
    if threads > 0 {
        tch::set_num_threads(threads as i32);
    }
    privlin::device::parse_device(device)
}

/// Where a Shapley game's utility workers run (`--workers N` > 1).
#[derive(Args, Debug, Clone, Default)]
pub struct WorkerArgs {
    /// Utility workers: local (processes on this machine) or ray (actors on a Ray cluster, each
    /// loading the model once; `bash scripts/setup.sh --ray` installs Ray).
    #[arg(long, default_value = "local")]
    pub utility_workers: String,
    /// Ray address for `--utility-workers ray` (auto or HOST:PORT; default: $RAY_ADDRESS, else
    /// a local Ray instance).
    #[arg(long)]
    pub ray_address: Option<String>,
}

/// The machine's cores.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A file of the repository (scripts, the venv): beside the working directory, or above the
/// running binary (`target/release/privlin`).
pub fn repo_path(rel: &str) -> PathBuf {
    let here = PathBuf::from(rel);
    if here.exists() {
        return here;
    }
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1) {
            let p = dir.join(rel);
            if p.exists() {
                return p;
            }
        }
    }
    here
}

/// The Python with Ray: `$PRIVLIN_PYTHON`, else the project's `.venv`.
pub fn python() -> PathBuf {
    std::env::var_os("PRIVLIN_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_path(".venv/bin/python"))
}

fn exe() -> Result<PathBuf> {
    Ok(std::env::current_exe()?)
}

/// How to start utility workers; `threads` per worker (0: the cores over the local workers, one
/// per Ray actor).
pub fn worker_spec(w: &WorkerArgs, device: &str, threads: usize) -> Result<WorkerSpec> {
    let exe = exe()?.display().to_string();
    Ok(match w.utility_workers.as_str() {
        "local" => WorkerSpec {
            argv: vec![exe, "utility-worker".into()],
            pool: false,
            threads,
            device: device.to_string(),
        },
        "ray" => {
            let mut argv = vec![
                python().display().to_string(),
                repo_path("scripts/ray_utility_pool.py")
                    .display()
                    .to_string(),
                "--privlin".into(),
                exe,
            ];
            if let Some(a) = &w.ray_address {
                argv.extend(["--address".into(), a.clone()]);
            }
            WorkerSpec {
                argv,
                pool: true,
                threads,
                device: device.to_string(),
            }
        }
        other => bail!("unknown --utility-workers `{other}` (expected local or ray)"),
    })
}
