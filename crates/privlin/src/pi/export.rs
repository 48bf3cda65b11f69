//! Export of a partial-ReLU model to `privlin-mpc`'s private-inference format: batch norm folded
//! into the preceding convolution (`W' = W gamma / sqrt(var + eps)`,
//! `b' = beta - mean gamma / sqrt(var + eps)`), and each site's active positions read from its mask.

use crate::data::Normalization;
use crate::nn::{Activation, GraphNode, MaskSet, Model, SiteMask};
use anyhow::{bail, Context, Result};
use privlin_mpc::model::{Arch, ModelFile, ModelJson, Normalize, Op, FORMAT, VERSION};
use std::collections::{BTreeMap, HashMap};
use tch::{Device, Kind, Tensor};

/// PyTorch's default batch-norm epsilon, which privlin's BatchNorm layers use.
const BN_EPS: f64 = 1e-5;

fn to_vec(t: &Tensor) -> Vec<f32> {
    let t = t
        .to_device(Device::Cpu)
        .to_kind(Kind::Float)
        .contiguous()
        .flatten(0, -1);
    Vec::<f32>::try_from(&t).expect("float tensor")
}

/// Active flat `(C, H, W)` indices of a site under `mask` (1 = ReLU kept).
pub fn active_indices(mask: &SiteMask, shape: [i64; 3]) -> Vec<i64> {
    let n = shape.iter().product::<i64>();
    match mask {
        SiteMask::Keep => (0..n).collect(),
        SiteMask::Identity => Vec::new(),
        SiteMask::Tensor(m) => {
            let full = m
                .to_device(Device::Cpu)
                .to_kind(Kind::Float)
                .expand(shape, false)
                .contiguous()
                .flatten(0, -1);
            let v = Vec::<f32>::try_from(&full).expect("float mask");
            v.iter()
                .enumerate()
                .filter(|(_, &x)| x > 0.5)
                .map(|(i, _)| i as i64)
                .collect()
        }
    }
}

/// Why `model` cannot be exported for private inference, if it cannot: the two-party protocol
/// runs ReLU sites, and the export graph exists for the ResNets (no max-pooling).
pub fn unsupported(model: &Model) -> Option<String> {
    if model.spec.activation != Activation::Relu {
        return Some(format!(
            "private inference runs ReLU sites; this model uses {:?}",
            model.spec.activation
        ));
    }
    if model.graph().is_none() {
        return Some(format!(
            "no private-inference exporter for {} yet (ResNet-18/34/50 have one)",
            model.spec.arch
        ));
    }
    None
}

/// The model (with `masks`, or all ReLUs kept) in the private-inference format.
pub fn export(
    model: &Model,
    masks: Option<&MaskSet>,
    norm: &Normalization,
    name: &str,
) -> Result<ModelFile> {
    if let Some(why) = unsupported(model) {
        bail!("{why}");
    }
    let graph = model.graph().expect("checked by unsupported()");
    let tensors: HashMap<String, Tensor> = model.named_tensors().into_iter().collect();
    let get = |n: &str| -> Result<&Tensor> {
        tensors
            .get(n)
            .with_context(|| format!("tensor `{n}` missing from the model"))
    };
    let sites = model.sites();
    let s = model.spec.input_size as usize;
    let mut shapes: Vec<[usize; 3]> = vec![[3, s, s]];
    let mut ops = Vec::new();
    let mut weight_shapes = BTreeMap::new();
    let mut weights = HashMap::new();
    let mut active = HashMap::new();
    let mut counts = BTreeMap::new();
    for node in &graph {
        let (op, shape) = match node {
            GraphNode::ConvBn {
                input,
                conv,
                bn,
                stride,
                padding,
            } => {
                let w = get(&format!("{conv}.weight"))?;
                let gamma = get(&format!("{bn}.weight"))?;
                let beta = get(&format!("{bn}.bias"))?;
                let mean = get(&format!("{bn}.running_mean"))?;
                let var = get(&format!("{bn}.running_var"))?;
                let scale = gamma / (var + BN_EPS).sqrt();
                let wf = w * scale.view([-1, 1, 1, 1]);
                let bf = beta - mean * &scale;
                let ws: Vec<usize> = w.size().iter().map(|&d| d as usize).collect();
                let (wn, bnm) = (format!("{conv}.weight"), format!("{conv}.bias"));
                weights.insert(wn.clone(), to_vec(&wf));
                weights.insert(bnm.clone(), to_vec(&bf));
                weight_shapes.insert(bnm.clone(), vec![ws[0]]);
                weight_shapes.insert(wn.clone(), ws.clone());
                let [_, h, wd] = shapes[*input];
                let (st, p, k) = (*stride as usize, *padding as usize, ws[2]);
                let out = [ws[0], (h + 2 * p - k) / st + 1, (wd + 2 * p - k) / st + 1];
                (
                    Op::Conv {
                        input: *input,
                        weight: wn,
                        bias: bnm,
                        stride: st,
                        padding: p,
                    },
                    out,
                )
            }
            GraphNode::Linear { input, name } => {
                let w = get(&format!("{name}.weight"))?;
                let b = get(&format!("{name}.bias"))?;
                let ws: Vec<usize> = w.size().iter().map(|&d| d as usize).collect();
                let (wn, bnm) = (format!("{name}.weight"), format!("{name}.bias"));
                weights.insert(wn.clone(), to_vec(w));
                weights.insert(bnm.clone(), to_vec(b));
                weight_shapes.insert(wn.clone(), ws.clone());
                weight_shapes.insert(bnm.clone(), vec![ws[0]]);
                (
                    Op::Linear {
                        input: *input,
                        weight: wn,
                        bias: bnm,
                    },
                    [ws[0], 1, 1],
                )
            }
            GraphNode::GlobalAvgPool { input } => {
                let [c, h, w] = shapes[*input];
                if h != w {
                    bail!("global average pooling over a {h}x{w} map is not square");
                }
                (
                    Op::AvgPool {
                        input: *input,
                        kernel: h,
                        stride: h,
                    },
                    [c, 1, 1],
                )
            }
            GraphNode::Add { inputs } => (Op::Add { inputs: *inputs }, shapes[inputs[0]]),
            GraphNode::Site { input, name } => {
                let idx = sites
                    .iter()
                    .position(|x| &x.name == name)
                    .with_context(|| format!("site `{name}` of the graph is not a model site"))?;
                let keep = SiteMask::Keep;
                let mask = masks.map(|m| m.get(idx)).unwrap_or(&keep);
                let a = active_indices(mask, sites[idx].shape);
                counts.insert(name.clone(), a.len());
                active.insert(name.clone(), a);
                (
                    Op::Relu {
                        input: *input,
                        site: name.clone(),
                    },
                    shapes[*input],
                )
            }
        };
        ops.push(op);
        shapes.push(shape);
    }
    let json = ModelJson {
        format: FORMAT.into(),
        version: VERSION,
        name: name.to_string(),
        input_shape: shapes[0],
        classes: model.spec.classes as usize,
        normalize: Some(Normalize {
            mean: norm.mean.to_vec(),
            std: norm.std.to_vec(),
        }),
        ops,
        weight_shapes,
        active_counts: counts,
    };
    let arch = Arch::new(json, active).context("exported graph is not valid")?;
    Ok(ModelFile { arch, weights })
}

/// An image (`3 x S x S` bytes, CHW) as the normalized floats the model takes.
pub fn normalize_image(pixels: &[u8], norm: &Normalization) -> Vec<f32> {
    let per = pixels.len() / 3;
    pixels
        .iter()
        .enumerate()
        .map(|(i, &p)| {
            let c = i / per;
            (p as f32 / 255.0 - norm.mean[c]) / norm.std[c]
        })
        .collect()
}
