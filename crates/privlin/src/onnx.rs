//! ONNX in and out of privlin checkpoints: [`import`] turns an ONNX model into a checkpoint of an
//! imported graph model ([`crate::nn::graph`]), [`export`] writes any model privlin can describe
//! as a graph (imported or zoo) back to ONNX with its masks. The ONNX side (protobuf, the checked
//! graph, the writer) is `privlin-onnx`.

use crate::data::{DataConfig, Normalization};
use crate::nn::{GraphNode, MaskSet, Model, ModelSpec, SiteMask};
use crate::train::checkpoint::{CheckpointSpec, WEIGHTS_FILE};
use anyhow::{bail, Context, Result};
use privlin_onnx::{Graph, Node, Op, Param, SiteExport, TensorData, Window};
use std::collections::HashMap;
use std::path::Path;
use tch::{Device, Kind, Tensor};

/// What the graph does not say and the user may.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Read images of this side instead of the graph's (every shape is inferred again).
    pub input_size: Option<i64>,
    /// The number of classes the user expects (checked against the graph's output).
    pub classes: Option<i64>,
    /// The input normalization the network was trained with (default: none, pixels in [0, 1]).
    pub normalization: Option<Normalization>,
}

/// What [`import`] read.
#[derive(Debug, Clone)]
pub struct ImportReport {
    pub opset: i64,
    pub producer: String,
    pub nodes: usize,
    pub sites: usize,
    pub relus: i64,
    pub macs: i64,
    pub params: i64,
}

fn to_tensor(t: &TensorData) -> Tensor {
    Tensor::from_slice(&t.data).view(t.shape.as_slice())
}

fn to_data(t: &Tensor) -> TensorData {
    let t = t
        .detach()
        .to_device(Device::Cpu)
        .to_kind(Kind::Float)
        .contiguous();
    let shape = t.size();
    let data = Vec::<f32>::try_from(t.flatten(0, -1)).unwrap_or_default();
    TensorData::new(shape, data)
}

/// Import the ONNX model at `onnx` into a checkpoint directory `out` (`spec.json` with the graph,
/// `model.safetensors` with the initializers). Everything is checked before anything is written.
pub fn import(onnx: &Path, out: &Path, opts: &ImportOptions) -> Result<ImportReport> {
    let bytes = std::fs::read(onnx).with_context(|| format!("reading {}", onnx.display()))?;
    let imported =
        privlin_onnx::import(&bytes).with_context(|| format!("importing {}", onnx.display()))?;
    let mut graph = imported.graph;
    if let Some(s) = opts.input_size {
        graph = graph
            .with_input_size(s)
            .with_context(|| format!("{}: --input-size {s}", onnx.display()))?;
    }
    let [c, h, w] = graph.input_shape[..] else {
        bail!("{}: input shape {:?}", onnx.display(), graph.input_shape);
    };
    if c != 3 || h != w {
        bail!(
            "{}: the input `{}` is (batch, {c}, {h}, {w}); privlin feeds square RGB images (batch, 3, S, S)",
            onnx.display(),
            graph.input
        );
    }
    if let Some(k) = opts.classes {
        if k != graph.classes() {
            bail!(
                "{}: --classes {k}, but the output `{}` has {} entries",
                onnx.display(),
                graph.output,
                graph.classes()
            );
        }
    }
    let spec = ModelSpec::imported(graph);
    let mut model = Model::new(spec.clone(), Device::Cpu)
        .with_context(|| format!("building {}", onnx.display()))?;
    let tensors: HashMap<String, Tensor> = imported
        .tensors
        .iter()
        .map(|(n, t)| (n.clone(), to_tensor(t)))
        .collect();
    model.load_named(tensors, &onnx.display().to_string())?;
    let classes = spec.classes;
    let ckpt = CheckpointSpec {
        convention_text: spec.convention.describe(),
        dataset: format!(
            "imported from {}",
            onnx.file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default()
        ),
        data: DataConfig::default(),
        class_names: (0..classes).map(|k| k.to_string()).collect(),
        normalization: opts.normalization.unwrap_or(Normalization {
            mean: [0.0; 3],
            std: [1.0; 3],
        }),
        masks: None,
        model: spec,
    };
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    model.save_weights(&out.join(WEIGHTS_FILE))?;
    ckpt.save(out)?;
    let info = crate::info::ModelInfo::of(&model);
    Ok(ImportReport {
        opset: imported.opset,
        producer: imported.producer,
        nodes: model.spec.graph.as_ref().map_or(0, |g| g.nodes.len()),
        sites: model.sites().len(),
        relus: model.relu_count(),
        macs: model.macs_total(),
        params: info.params,
    })
}

/// The model as a graph: an imported model's own, a zoo model's from its export graph
/// ([`Model::graph`]; batch norms with PyTorch's epsilon).
pub fn graph_of(model: &Model) -> Result<Graph> {
    if let Some(g) = &model.spec.graph {
        return Ok((**g).clone());
    }
    if model.spec.activation != crate::nn::Activation::Relu {
        bail!(
            "{} with activation {:?}: only ReLU models are exported to ONNX",
            model.spec.arch,
            model.spec.activation
        );
    }
    let nodes = model.graph().with_context(|| {
        format!(
            "{} has no export graph (gated blocks or an architecture without one)",
            model.spec.arch
        )
    })?;
    let shapes: HashMap<String, Vec<i64>> = model
        .named_tensors()
        .into_iter()
        .map(|(n, t)| (n, t.size()))
        .collect();
    let s = model.spec.input_size;
    let mut g = Graph {
        input: "input".into(),
        input_shape: vec![3, s, s],
        output: String::new(),
        nodes: Vec::new(),
        params: Vec::new(),
    };
    let value = |v: usize| {
        if v == 0 {
            "input".to_string()
        } else {
            format!("v{v}")
        }
    };
    let mut out_of: Vec<String> = vec!["input".into()];
    let push =
        |g: &mut Graph, name: String, op: Op, inputs: Vec<String>, output: String| -> Result<()> {
            for (p, role) in op.params() {
                let shape = shapes
                    .get(p)
                    .with_context(|| format!("tensor `{p}` missing from the model"))?
                    .clone();
                g.params.push(Param {
                    name: p.to_string(),
                    shape,
                    role,
                });
            }
            let ins: Vec<Vec<i64>> = inputs
                .iter()
                .map(|v| g.shape_of(v).map(|s| s.to_vec()).unwrap_or_default())
                .collect();
            let refs: Vec<&[i64]> = ins.iter().map(|s| s.as_slice()).collect();
            let shape = privlin_onnx::ir::infer(&op, &refs, &|p| shapes.get(p).cloned())
                .map_err(|m| anyhow::anyhow!("node `{name}`: {m}"))?;
            g.nodes.push(Node {
                name,
                op,
                inputs,
                output,
                shape,
            });
            Ok(())
        };
    let bn = |b: &str| Op::BatchNorm {
        scale: format!("{b}.weight"),
        bias: format!("{b}.bias"),
        mean: format!("{b}.running_mean"),
        var: format!("{b}.running_var"),
        epsilon: 1e-5,
    };
    for (i, n) in nodes.iter().enumerate() {
        let v = i + 1;
        let out = value(v);
        match n {
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
                ..
            } => {
                let bias = format!("{conv}.bias");
                let op = Op::Conv {
                    weight: format!("{conv}.weight"),
                    bias: shapes.contains_key(&bias).then_some(bias),
                    stride: [*stride; 2],
                    pads: [*padding; 4],
                    dilation: [1, 1],
                    groups: 1,
                };
                if let GraphNode::ConvBn { bn: b, .. } = n {
                    let mid = format!("{out}.conv");
                    push(
                        &mut g,
                        conv.clone(),
                        op,
                        vec![out_of[*input].clone()],
                        mid.clone(),
                    )?;
                    push(&mut g, b.clone(), bn(b), vec![mid], out.clone())?;
                } else {
                    push(
                        &mut g,
                        conv.clone(),
                        op,
                        vec![out_of[*input].clone()],
                        out.clone(),
                    )?;
                }
            }
            GraphNode::BatchNorm { input, bn: b } => {
                push(
                    &mut g,
                    b.clone(),
                    bn(b),
                    vec![out_of[*input].clone()],
                    out.clone(),
                )?;
            }
            GraphNode::Linear { input, name } => {
                let mut x = out_of[*input].clone();
                if g.shape_of(&x).is_some_and(|s| s.len() == 3) {
                    let flat = format!("{out}.flat");
                    push(
                        &mut g,
                        format!("{name}.flatten"),
                        Op::Flatten,
                        vec![x],
                        flat.clone(),
                    )?;
                    x = flat;
                }
                let op = Op::Linear {
                    weight: format!("{name}.weight"),
                    bias: Some(format!("{name}.bias")),
                };
                push(&mut g, name.clone(), op, vec![x], out.clone())?;
            }
            GraphNode::GlobalAvgPool { input } => {
                push(
                    &mut g,
                    format!("gap{v}"),
                    Op::GlobalAvgPool,
                    vec![out_of[*input].clone()],
                    out.clone(),
                )?;
            }
            GraphNode::MaxPool {
                input,
                kernel,
                stride,
            } => {
                let w = Window {
                    kernel: [*kernel; 2],
                    stride: [*stride; 2],
                    pads: [0; 4],
                    ceil: false,
                };
                push(
                    &mut g,
                    format!("maxpool{v}"),
                    Op::MaxPool(w),
                    vec![out_of[*input].clone()],
                    out.clone(),
                )?;
            }
            GraphNode::Add { inputs } => {
                let ins = vec![out_of[inputs[0]].clone(), out_of[inputs[1]].clone()];
                push(&mut g, format!("add{v}"), Op::Add, ins, out.clone())?;
            }
            GraphNode::Site { input, name } => {
                push(
                    &mut g,
                    name.clone(),
                    Op::Relu,
                    vec![out_of[*input].clone()],
                    out.clone(),
                )?;
            }
        }
        out_of.push(out);
    }
    g.output = out_of.last().cloned().unwrap_or_default();
    g.check().context("the zoo model's export graph")?;
    Ok(g)
}

/// What [`export`] wrote.
#[derive(Debug, Clone)]
pub struct ExportReport {
    pub nodes: usize,
    pub sites_kept: usize,
    pub sites_partial: usize,
    pub sites_identity: usize,
    pub bytes: usize,
}

/// Write `model` with `masks` (or every site kept) to `path` as ONNX, atomically; batch norms
/// folded into their convolutions when `fold_batchnorm`.
pub fn export(
    model: &Model,
    masks: Option<&MaskSet>,
    path: &Path,
    fold_batchnorm: bool,
) -> Result<ExportReport> {
    let graph = graph_of(model)?;
    let tensors: HashMap<String, Tensor> = model.named_tensors().into_iter().collect();
    let mut sites = HashMap::new();
    let (mut kept, mut partial, mut identity) = (0, 0, 0);
    for (i, site) in model.sites().iter().enumerate() {
        let how = if model.removed(i) {
            SiteExport::Identity
        } else {
            match masks.map(|m| m.get(i)).unwrap_or(&SiteMask::Keep) {
                SiteMask::Keep => SiteExport::Keep,
                SiteMask::Identity => SiteExport::Identity,
                SiteMask::Tensor(t) => {
                    let m = to_data(&t.gt(0.5).to_kind(Kind::Float));
                    if m.data.iter().all(|&v| v == 1.0) {
                        SiteExport::Keep
                    } else if m.data.iter().all(|&v| v == 0.0) {
                        SiteExport::Identity
                    } else {
                        SiteExport::Mask(m)
                    }
                }
            }
        };
        match how {
            SiteExport::Keep => kept += 1,
            SiteExport::Identity => identity += 1,
            SiteExport::Mask(_) => partial += 1,
        }
        sites.insert(site.name.clone(), how);
    }
    let bytes = privlin_onnx::export(
        &graph,
        &|n| tensors.get(n).map(to_data),
        &sites,
        &format!("privlin {}", env!("CARGO_PKG_VERSION")),
        fold_batchnorm,
    )
    .map_err(|e| anyhow::anyhow!("exporting {}: {e}", path.display()))?;
    crate::io::atomic_write_bytes(path, &bytes)?;
    Ok(ExportReport {
        nodes: graph.nodes.len(),
        sites_kept: kept,
        sites_partial: partial,
        sites_identity: identity,
        bytes: bytes.len(),
    })
}
