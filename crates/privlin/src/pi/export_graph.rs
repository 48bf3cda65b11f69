//! Export of an imported graph model ([`crate::nn::graph`]) to the private-inference format: the
//! same folds as for zoo models (a batch norm that only a convolution feeds is folded into it,
//! another becomes a channel-affine layer), with the operations the two-party engine runs
//! (padded max-pools, concatenation, ReLU6 sites on the garbled circuits; grouped and depthwise
//! convolutions as dense ones with zeros across groups). What the engine does not run (dilated
//! convolutions, rectangular windows, padded average pools) is refused with the node's name.

use super::export::{active_indices, to_vec};
use crate::data::Normalization;
use crate::nn::{MaskSet, Model, SiteMask};
use anyhow::{bail, Context, Result};
use privlin_mpc::model::{ModelFile, Op};
use privlin_onnx::{Graph, Op as G};
use std::collections::{BTreeMap, HashMap};
use tch::{Device, Kind, Tensor};

/// A grouped convolution's weight `(O, I / g, k, k)` as the dense `(O, I, k, k)` one with zeros
/// across groups: exact, and priced (HE and MACs) as the dense layer it becomes. The HE layout
/// packs one dense convolution per ciphertext block; a depthwise packing is not built.
fn grouped_to_dense(w: &Tensor, groups: i64) -> Tensor {
    if groups == 1 {
        return w.shallow_clone();
    }
    let s = w.size();
    let (o, per_in) = (s[0], s[1]);
    let per_out = o / groups;
    let dense = Tensor::zeros([o, per_in * groups, s[2], s[3]], (w.kind(), w.device()));
    for g in 0..groups {
        dense
            .narrow(0, g * per_out, per_out)
            .narrow(1, g * per_in, per_in)
            .copy_(&w.narrow(0, g * per_out, per_out));
    }
    dense
}

/// Why the engine cannot run `graph`, naming the first node it cannot run.
pub fn unsupported(graph: &Graph) -> Option<String> {
    for n in &graph.nodes {
        let why = match &n.op {
            G::Conv {
                stride,
                pads,
                dilation,
                weight,
                ..
            } => {
                let k = graph
                    .params
                    .iter()
                    .find(|p| &p.name == weight)
                    .map(|p| (p.shape[2], p.shape[3]));
                if *dilation != [1, 1] {
                    Some("a dilated convolution".to_string())
                } else if k.is_some_and(|(a, b)| a != b) || stride[0] != stride[1] {
                    Some("a rectangular kernel or stride".to_string())
                } else if pads.iter().any(|&p| p != pads[0]) {
                    Some(format!("unequal padding {pads:?}"))
                } else {
                    None
                }
            }
            G::MaxPool(w) | G::AvgPool { window: w, .. } => {
                // The engine pads max-pools (equally on every side, at most half the kernel:
                // checked at import) but not average pools.
                let padding = if matches!(n.op, G::MaxPool(_)) {
                    w.pads[0]
                } else {
                    0
                };
                if w.pads.iter().any(|&p| p != padding)
                    || w.kernel[0] != w.kernel[1]
                    || w.stride[0] != w.stride[1]
                    || w.ceil
                {
                    Some("a rectangular or ceil-mode pooling window, unequal max-pool padding or a padded average pool".to_string())
                } else {
                    None
                }
            }
            _ => None,
        };
        if let Some(w) = why {
            return Some(format!(
                "node `{}`: {w} is not supported by the private-inference engine yet",
                n.name
            ));
        }
    }
    None
}

/// `model` (an imported graph) with `masks` in the private-inference format.
pub fn export(
    model: &Model,
    graph: &Graph,
    masks: Option<&MaskSet>,
    norm: &Normalization,
    name: &str,
) -> Result<ModelFile> {
    if let Some(why) = unsupported(graph) {
        bail!("{why}");
    }
    let tensors: HashMap<String, Tensor> = model.named_tensors().into_iter().collect();
    let get = |n: &str| -> Result<Tensor> {
        tensors
            .get(n)
            .map(|t| t.to_device(Device::Cpu).to_kind(Kind::Double))
            .with_context(|| format!("tensor `{n}` missing from the model"))
    };
    let bn_affine = |n: &privlin_onnx::Node| -> Result<(Tensor, Tensor)> {
        let G::BatchNorm {
            scale,
            bias,
            mean,
            var,
            epsilon,
        } = &n.op
        else {
            unreachable!()
        };
        let a = get(scale)? / (get(var)? + *epsilon).sqrt();
        let b = get(bias)? - get(mean)? * &a;
        Ok((a, b))
    };
    // Convolution node -> the batch norm folded into it.
    let folds = graph.batchnorm_folds();
    let folded: std::collections::HashSet<usize> = folds.values().copied().collect();
    let sites = model.sites();
    // Engine value of each graph value: 0 is the input, op i writes value i + 1.
    let mut value: HashMap<&str, usize> = HashMap::new();
    value.insert(&graph.input, 0);
    let s = model.spec.input_size as usize;
    let mut shapes: Vec<[usize; 3]> = vec![[3, s, s]];
    let (mut ops, mut weights, mut weight_shapes) = (Vec::new(), HashMap::new(), BTreeMap::new());
    let (mut active, mut counts) = (HashMap::new(), BTreeMap::new());
    let mut add_layer = |layer: &str, w: &Tensor, b: &Tensor| {
        let (wn, bn) = (format!("{layer}.weight"), format!("{layer}.bias"));
        weight_shapes.insert(
            wn.clone(),
            w.size().iter().map(|&d| d as usize).collect::<Vec<_>>(),
        );
        weight_shapes.insert(bn.clone(), vec![b.size()[0] as usize]);
        weights.insert(wn.clone(), to_vec(w));
        weights.insert(bn.clone(), to_vec(b));
        (wn, bn)
    };
    let shape3 = |v: &[i64]| -> [usize; 3] {
        match v {
            [c, h, w] => [*c as usize, *h as usize, *w as usize],
            [f] => [*f as usize, 1, 1],
            _ => [0, 0, 0],
        }
    };
    for (j, n) in graph.nodes.iter().enumerate() {
        if folded.contains(&j) {
            continue;
        }
        let x = |k: usize| value[n.inputs[k].as_str()];
        let (op, out_name) = match &n.op {
            G::Conv {
                weight,
                bias,
                stride,
                pads,
                groups,
                ..
            } => {
                let mut w = grouped_to_dense(&get(weight)?, *groups);
                let o = w.size()[0];
                let mut b = match bias {
                    Some(b) => get(b)?,
                    None => Tensor::zeros([o], (Kind::Double, Device::Cpu)),
                };
                let mut out_name = n.output.as_str();
                // A batch norm that reads only this convolution's output folds into it.
                if let Some(&k) = folds.get(&j) {
                    let (a, c) = bn_affine(&graph.nodes[k])?;
                    w *= a.view([-1, 1, 1, 1]);
                    b = b * &a + c;
                    out_name = graph.nodes[k].output.as_str();
                }
                let (wn, bn) = add_layer(&n.name, &w, &b);
                (
                    Op::Conv {
                        input: x(0),
                        weight: wn,
                        bias: bn,
                        stride: stride[0] as usize,
                        padding: pads[0] as usize,
                    },
                    out_name,
                )
            }
            G::BatchNorm { .. } => {
                let (a, b) = bn_affine(n)?;
                let (wn, bn) = add_layer(&n.name, &a, &b);
                (
                    Op::ChannelAffine {
                        input: x(0),
                        weight: wn,
                        bias: bn,
                    },
                    n.output.as_str(),
                )
            }
            G::Linear { weight, bias } => {
                let w = get(weight)?;
                let b = match bias {
                    Some(b) => get(b)?,
                    None => Tensor::zeros([w.size()[0]], (Kind::Double, Device::Cpu)),
                };
                let (wn, bn) = add_layer(&n.name, &w, &b);
                (
                    Op::Linear {
                        input: x(0),
                        weight: wn,
                        bias: bn,
                    },
                    n.output.as_str(),
                )
            }
            // The engine's linear layer reads its input flattened.
            G::Flatten => {
                value.insert(&n.output, x(0));
                continue;
            }
            G::GlobalAvgPool => {
                let [_, h, w] = shapes[x(0)];
                if h != w {
                    bail!(
                        "node `{}`: global average pooling over a {h}x{w} map is not square",
                        n.name
                    );
                }
                (
                    Op::AvgPool {
                        input: x(0),
                        kernel: h,
                        stride: h,
                    },
                    n.output.as_str(),
                )
            }
            G::AvgPool { window, .. } => (
                Op::AvgPool {
                    input: x(0),
                    kernel: window.kernel[0] as usize,
                    stride: window.stride[0] as usize,
                },
                n.output.as_str(),
            ),
            G::MaxPool(window) => (
                Op::MaxPool {
                    input: x(0),
                    kernel: window.kernel[0] as usize,
                    stride: window.stride[0] as usize,
                    padding: window.pads[0] as usize,
                },
                n.output.as_str(),
            ),
            G::Concat => (
                Op::Concat {
                    inputs: (0..n.inputs.len()).map(x).collect(),
                },
                n.output.as_str(),
            ),
            G::Add => (
                Op::Add {
                    inputs: [x(0), x(1)],
                },
                n.output.as_str(),
            ),
            G::Relu | G::Relu6 => {
                let idx = sites
                    .iter()
                    .position(|s| s.name == n.name)
                    .with_context(|| {
                        format!("site `{}` of the graph is not a model site", n.name)
                    })?;
                let keep = SiteMask::Keep;
                let a =
                    active_indices(masks.map(|m| m.get(idx)).unwrap_or(&keep), sites[idx].shape);
                counts.insert(n.name.clone(), a.len());
                active.insert(n.name.clone(), a);
                (
                    Op::Relu {
                        input: x(0),
                        site: n.name.clone(),
                        max: (n.op == G::Relu6).then_some(6.0),
                    },
                    n.output.as_str(),
                )
            }
        };
        let out_shape = graph.shape_of(out_name).map(shape3).unwrap_or([0, 0, 0]);
        ops.push(op);
        shapes.push(out_shape);
        value.insert(out_name, ops.len());
    }
    if value.get(graph.output.as_str()) != Some(&ops.len()) {
        bail!(
            "the graph's output `{}` is not its last operation",
            graph.output
        );
    }
    super::export::model_file(
        model,
        super::export::Gathered {
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
