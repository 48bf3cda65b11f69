//! `privlin import` and `privlin export-onnx`: ONNX models in and out (the library's
//! `privlin::onnx`).

use anyhow::{bail, Context, Result};
use clap::Args;
use privlin::data::Normalization;
use privlin::onnx::{export, import, ImportOptions};
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// The ONNX model (opset 13 or later; weights inside the file).
    model: PathBuf,
    /// Checkpoint directory to write (spec.json with the graph, model.safetensors).
    #[arg(long)]
    out: PathBuf,
    /// Read square images of this side instead of the graph's (shapes are inferred again).
    #[arg(long)]
    input_size: Option<i64>,
    /// Expected number of classes (checked against the graph's output).
    #[arg(long)]
    classes: Option<i64>,
    /// Per-channel input mean the network was trained with, `r,g,b` (default 0,0,0).
    #[arg(long, value_delimiter = ',')]
    mean: Option<Vec<f32>>,
    /// Per-channel input standard deviation, `r,g,b` (default 1,1,1).
    #[arg(long, value_delimiter = ',')]
    std: Option<Vec<f32>>,
}

pub fn run_import(a: ImportArgs) -> Result<()> {
    let normalization = match (&a.mean, &a.std) {
        (None, None) => {
            eprintln!(
                "import: no --mean/--std given: the model reads pixels in [0, 1] unnormalized"
            );
            None
        }
        (m, s) => {
            let m = m.clone().unwrap_or(vec![0.0; 3]);
            let s = s.clone().unwrap_or(vec![1.0; 3]);
            if m.len() != 3 || s.len() != 3 {
                bail!("--mean {m:?} / --std {s:?}: give three values each, r,g,b");
            }
            if s.iter().any(|&v| v <= 0.0 || !v.is_finite()) {
                bail!("--std {s:?}: every entry must be positive");
            }
            Some(Normalization {
                mean: [m[0], m[1], m[2]],
                std: [s[0], s[1], s[2]],
            })
        }
    };
    crate::common::runtime("cpu", 0)?;
    let rep = import(
        &a.model,
        &a.out,
        &ImportOptions {
            input_size: a.input_size,
            classes: a.classes,
            normalization,
        },
    )?;
    println!(
        "imported {} (opset {}, {}): {} nodes, {} sites, {} ReLUs, {:.2} M MACs, {} parameters -> {}",
        a.model.display(),
        rep.opset,
        if rep.producer.is_empty() { "no producer named" } else { &rep.producer },
        rep.nodes,
        rep.sites,
        rep.relus,
        rep.macs as f64 / 1e6,
        rep.params,
        a.out.display()
    );
    Ok(())
}

#[derive(Args, Debug)]
pub struct ExportOnnxArgs {
    /// Checkpoint directory (an imported model, a zoo model, a linearized or fine-tuned one).
    #[arg(long)]
    ckpt: PathBuf,
    /// The ONNX file to write.
    #[arg(long)]
    out: PathBuf,
    /// Export every site with its ReLU even when the checkpoint has masks.
    #[arg(long)]
    no_masks: bool,
    /// Keep batch norms as BatchNormalization nodes (to train the model further, e.g. after
    /// `privlin import`) instead of folding them into the convolutions before them.
    #[arg(long)]
    keep_batchnorm: bool,
}

pub fn run_export(a: ExportOnnxArgs) -> Result<()> {
    crate::common::runtime("cpu", 0)?;
    let (model, _, masks) = privlin::train::data::load_with_masks(&a.ckpt, tch::Device::Cpu)
        .with_context(|| format!("loading {}", a.ckpt.display()))?;
    let masks = if a.no_masks { None } else { masks };
    let rep = export(&model, masks.as_ref(), &a.out, !a.keep_batchnorm)?;
    println!(
        "wrote {} ({} nodes, {:.2} MB): sites kept {}, partial {}, identity {}",
        a.out.display(),
        rep.nodes,
        rep.bytes as f64 / 1e6,
        rep.sites_kept,
        rep.sites_partial,
        rep.sites_identity
    );
    Ok(())
}
