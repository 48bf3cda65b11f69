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
