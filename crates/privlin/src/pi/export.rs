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

pub(crate) fn to_vec(t: &Tensor) -> Vec<f32> {
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
/// runs ReLU sites, and every zoo architecture has an export graph.
pub fn unsupported(model: &Model) -> Option<String> {
    if model.spec.activation != Activation::Relu {
        return Some(format!(
            "private inference runs ReLU sites; this model uses {:?}",
            model.spec.activation
        ));
    }
    if !model.spec.gated.is_empty() {
        return Some(format!(
            "blocks {} are still gated (main and shallow branch mixed by a training-time gate): export the checkpoint the reshape stage writes at its end, not its gated/ training directory",
            model.spec.gated.join(", ")
        ));
    }
    if let Some(g) = &model.spec.graph {
        return super::export_graph::unsupported(g);
    }
    if model.graph().is_none() {
        return Some(format!(
            "no private-inference exporter for {}",
            model.spec.arch
        ));
    }
    None
}

/// A batch norm's eval-mode map `y = a x + b` per channel: `a = gamma / sqrt(var + eps)`,
/// `b = beta - mean a`.
fn bn_affine(get: &dyn Fn(&str) -> Result<Tensor>, bn: &str) -> Result<(Tensor, Tensor)> {
    let gamma = get(&format!("{bn}.weight"))?;
    let beta = get(&format!("{bn}.bias"))?;
    let mean = get(&format!("{bn}.running_mean"))?;
    let var = get(&format!("{bn}.running_var"))?;
    let a = gamma / (var + BN_EPS).sqrt();
    let b = beta - mean * &a;
    Ok((a, b))
}

/// The model (with `masks`, or all ReLUs kept) in the private-inference format.
///
/// Batch norm directly after a convolution is folded into it. A batch norm on its own (WRN's
/// pre-activation `bn -> relu`, which the residual stream's identity shortcut keeps from any
/// convolution) becomes a [`Op::ChannelAffine`] `a x + b`, a diagonal weight layer.
///
/// (Pushing `|a|` through the ReLU into the next convolution's input channels instead, leaving
/// `sign(a)` and `b / |a|` on the shares, is exact in real arithmetic and saves the layer, but
/// the site then sees `y / |a|`: a small `|a|` takes it out of the circuit's range `2^(w-1)` and
/// multiplies the next layer's fixed-point error by `1 / |a|`. The affine layer keeps the site's
/// input at the batch norm's output and costs `C H W` MACs and one HE product per answer.)
/// The model name an export carries (and a server announces in its hello): the checkpoint
/// directory's name, with its parent's for the pipeline's generic stage folders (`1pct/final`),
/// never the filesystem path (which would tell every client where the server keeps its files).
pub fn model_name(ckpt: &std::path::Path) -> String {
    let part = |p: &std::path::Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let last = part(ckpt);
    let generic = ["final", "pr", "ar", "pi", "export", "ckpt", ""];
    match ckpt.parent() {
        Some(parent) if generic.contains(&last.as_str()) && !part(parent).is_empty() => {
            format!("{}/{last}", part(parent))
        }
        _ if last.is_empty() => "model".into(),
        _ => last,
    }
}

pub fn export(
    model: &Model,
    masks: Option<&MaskSet>,
    norm: &Normalization,
    name: &str,
) -> Result<ModelFile> {
    if let Some(why) = unsupported(model) {
        bail!("{why}");
    }
    if let Some(g) = &model.spec.graph {
        return super::export_graph::export(model, g, masks, norm, name);
    }
    let graph = model.graph().expect("checked by unsupported()");
    let tensors: HashMap<String, Tensor> = model.named_tensors().into_iter().collect();
    let get = |n: &str| -> Result<Tensor> {
        tensors
            .get(n)
            .map(|t| t.to_device(Device::Cpu).to_kind(Kind::Double))
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
    // Stores `module.weight` and `module.bias`; returns their names.
    let mut add_layer = |module: &str, w: &Tensor, b: &Tensor| {
        let (wn, bn) = (format!("{module}.weight"), format!("{module}.bias"));
        let ws: Vec<usize> = w.size().iter().map(|&d| d as usize).collect();
        weights.insert(wn.clone(), to_vec(w));
        weights.insert(bn.clone(), to_vec(b));
        weight_shapes.insert(bn.clone(), vec![b.size()[0] as usize]);
        weight_shapes.insert(wn.clone(), ws);
        (wn, bn)
    };
    for node in &graph {
        let (op, shape) = match node {
            GraphNode::ConvBn {
                input,
                conv,
                stride,
                padding,
                ..
            }
            | GraphNode::Conv {
                input,
                conv,
                stride,
                padding,
            } => {
                let w = get(&format!("{conv}.weight"))?;
                let (w, b) = match node {
                    GraphNode::ConvBn { bn, .. } => {
                        let (a, b) = bn_affine(&get, bn)?;
                        (w * a.view([-1, 1, 1, 1]), b)
                    }
                    _ => {
                        let b = Tensor::zeros([w.size()[0]], (Kind::Double, Device::Cpu));
                        (w, b)
                    }
                };
                let ws: Vec<usize> = w.size().iter().map(|&d| d as usize).collect();
                let (wn, bnm) = add_layer(conv, &w, &b);
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
            GraphNode::BatchNorm { input, bn } => {
                let (a, b) = bn_affine(&get, bn)?;
                let (wn, bnm) = add_layer(bn, &a, &b);
                (
                    Op::ChannelAffine {
                        input: *input,
                        weight: wn,
                        bias: bnm,
                    },
                    shapes[*input],
                )
            }
            GraphNode::Linear { input, name } => {
                let w = get(&format!("{name}.weight"))?;
                let b = get(&format!("{name}.bias"))?;
                let o = w.size()[0] as usize;
                let (wn, bnm) = add_layer(name, &w, &b);
                (
                    Op::Linear {
                        input: *input,
                        weight: wn,
                        bias: bnm,
                    },
                    [o, 1, 1],
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
            GraphNode::MaxPool {
                input,
                kernel,
                stride,
            } => {
                let [c, h, w] = shapes[*input];
                let (k, st) = (*kernel as usize, *stride as usize);
                if h < k || w < k {
                    bail!("a {k}x{k} max-pool over a {h}x{w} map");
                }
                (
                    Op::MaxPool {
                        input: *input,
                        kernel: k,
                        stride: st,
                        padding: 0,
                    },
                    [c, (h - k) / st + 1, (w - k) / st + 1],
                )
            }
            GraphNode::Add { inputs } => (Op::Add { inputs: *inputs }, shapes[inputs[0]]),
            GraphNode::Site { input, name } => {
                let idx = sites
                    .iter()
                    .position(|x| &x.name == name)
                    .with_context(|| format!("site `{name}` of the graph is not a model site"))?;
                let (keep, gone) = (SiteMask::Keep, SiteMask::Identity);
                // A culled or thinned site is no ReLU at all, whatever the masks say.
                let mask = if model.removed(idx) {
                    &gone
                } else {
                    masks.map(|m| m.get(idx)).unwrap_or(&keep)
                };
                let a = active_indices(mask, sites[idx].shape);
                counts.insert(name.clone(), a.len());
                active.insert(name.clone(), a);
                (
                    Op::Relu {
                        input: *input,
                        site: name.clone(),
                        max: None,
                    },
                    shapes[*input],
                )
            }
        };
        ops.push(op);
        shapes.push(shape);
    }
    model_file(
        model,
        Gathered {
            input_shape: shapes[0],
            ops,
            weight_shapes,
            weights,
            active,
            counts,
        },
        norm,
        name,
    )
}

/// What an exporter gathered from a model's graph (zoo or imported).
pub(crate) struct Gathered {
    pub input_shape: [usize; 3],
    pub ops: Vec<Op>,
    pub weight_shapes: BTreeMap<String, Vec<usize>>,
    pub weights: HashMap<String, Vec<f32>>,
    pub active: HashMap<String, Vec<i64>>,
    pub counts: BTreeMap<String, usize>,
}

/// The gathered graph as a checked private-inference model file.
pub(crate) fn model_file(
    model: &Model,
    g: Gathered,
    norm: &Normalization,
    name: &str,
) -> Result<ModelFile> {
    let json = ModelJson {
        format: FORMAT.into(),
        version: VERSION,
        name: name.to_string(),
        input_shape: g.input_shape,
        classes: model.spec.classes as usize,
        normalize: Some(Normalize {
            mean: norm.mean.to_vec(),
            std: norm.std.to_vec(),
        }),
        ops: g.ops,
        weight_shapes: g.weight_shapes,
        active_counts: g.counts,
    };
    let arch = Arch::new(json, g.active).context("exported graph is not valid")?;
    Ok(ModelFile {
        arch,
        weights: g.weights,
    })
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

#[cfg(test)]
mod name_tests {
    use super::model_name;
    use std::path::Path;

    /// The announced name is the checkpoint's folder, with its parent for generic stage
    /// folders; never the path above it.
    #[test]
    fn model_names_are_not_paths() {
        assert_eq!(
            model_name(Path::new("/srv/secret/runs/r18-10pct")),
            "r18-10pct"
        );
        assert_eq!(
            model_name(Path::new("runs/c10/sweep/privshap/1pct/final")),
            "1pct/final"
        );
        assert_eq!(model_name(Path::new("pi")), "pi");
        assert_eq!(model_name(Path::new("/")), "model");
    }
}
