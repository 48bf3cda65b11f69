//! Helpers shared by the CLI's integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs the `privlin` binary: (success, stdout, stderr).
pub fn privlin(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_privlin"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs the `privlin` binary with one environment variable set: (success, stdout, stderr).
pub fn privlin_env(args: &[&str], key: &str, value: &str) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_privlin"))
        .args(args)
        .env(key, value)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Writes `dir/run.toml`: a pipeline writing to `dir/run` on the CPU with `body` (preset, budget,
/// model, data and any further tables) and one short epoch for every training stage.
pub fn pipeline_config(dir: &Path, body: &str) -> PathBuf {
    let cfg = format!(
        r#"out = "{}"
device = "cpu"
{body}
[train]
epochs = 1
batch_size = 32

[linearize.train]
epochs = 1
batch_size = 32

[linearize.taylor]
update_every = 1

[finetune.train]
epochs = 1
batch_size = 32
"#,
        dir.join("run").display()
    );
    let p = dir.join("run.toml");
    std::fs::write(&p, cfg).unwrap();
    p
}

/// A sweep config on synthetic data with one libtorch thread (so child processes compute what
/// the in-process executor computes).
/// The tiny pipeline of the CLI tests: SENet at 4 % on a ResNet-9 (width x0.125), synthetic data.
pub const TINY_PIPELINE: &str = r#"preset = "senet"
budget = "4%"

[model]
arch = "resnet9"
width = 0.125

[data]
source = "synthetic"
train_per_class = 30
test_per_class = 10
holdout = 0.2

[importance]
players = "stages"
density = 0.2

[pi]
images = 0
"#;

/// [`TINY_PIPELINE`] with its private-inference stage on two test images (ResNet-9's max-pools as
/// garbled circuits, HE offline phase); sweeps leave it off (`images = 0`) to keep the suite short.
pub fn tiny_pipeline_with_pi() -> String {
    TINY_PIPELINE.replace("[pi]\nimages = 0", "[pi]\nimages = 2")
}

/// [`TINY_PIPELINE`] with one libtorch thread (so child processes compute what the in-process
/// executor computes).
pub fn sweep_config(dir: &Path) -> PathBuf {
    pipeline_config(dir, &format!("threads = 1\n{TINY_PIPELINE}"))
}

pub const SWEEP: [&str; 4] = ["--budgets", "3%,6%", "--presets", "senet,relupruner"];

/// sweep.csv without the columns that measure time.
pub fn numbers(run: &Path) -> String {
    let csv = std::fs::read_to_string(run.join("sweep.csv")).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let keep: Vec<usize> = (0..header.len())
        .filter(|&i| !header[i].ends_with("_s") && !header[i].contains("_s_"))
        .collect();
    csv.lines()
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            keep.iter().map(|&i| f[i]).collect::<Vec<_>>().join(",")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The bytes of every checkpoint and mask file of a sweep, by path relative to the run.
pub fn weights(run: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![run.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if matches!(
                p.file_name().and_then(|n| n.to_str()),
                Some("model.safetensors" | "masks.safetensors")
            ) {
                let rel = p.strip_prefix(run).unwrap().display().to_string();
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// Trains the tiny model of the sweep config and returns its checkpoint.
pub fn tiny_checkpoint(dir: &Path) -> PathBuf {
    let cfg = sweep_config(dir);
    let (ok, out, err) = privlin(&["plan", s(&cfg), "--json"]);
    assert!(ok, "{err}");
    let plan_file = dir.join("plan.json");
    std::fs::write(&plan_file, out).unwrap();
    let (ok, _, err) = privlin(&["stage", "run", s(&plan_file), "train"]);
    assert!(ok, "{err}");
    dir.join("run/ar")
}

/// `privlin importance` on the tiny model; returns importance.json and the utility cache.
pub fn game(dir: &Path, ckpt: &Path, name: &str, extra: &[&str]) -> (serde_json::Value, String) {
    let out = dir.join(format!("{name}.json"));
    let cache = dir.join(format!("{name}-cache.json"));
    let mut args = vec![
        "importance",
        "--ckpt",
        s(ckpt),
        "--players",
        "sites",
        "--utility-size",
        "60",
        "--batch-size",
        "16",
        "--device",
        "cpu",
        "--threads",
        "1",
        "--out",
        s(&out),
        "--utility-cache",
        s(&cache),
    ];
    args.extend(extra);
    let (ok, _, err) = privlin(&args);
    assert!(ok, "{err}");
    let imp = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let mut c: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cache).unwrap()).unwrap();
    (imp, c["utilities"].take().to_string())
}
