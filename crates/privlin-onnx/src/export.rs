//! [`Graph`] → ONNX (opset 17): what a user evaluates in onnxruntime or PyTorch after privlin
//! linearized the model. A site whose mask keeps everything is a `Relu` (`Clip(0, 6)` for
//! ReLU6), one that keeps nothing an `Identity`, a partial one `x + m (relu(x) - x)` with the mask
//! `m` as an initializer (`mask.<site>`, broadcast over the batch): PrivShap eq. 3 / SNL's mask,
//! `m relu(x) + (1 - m) x`. A batch norm whose input only a convolution reads is folded into
//! that convolution, as for private inference.

use crate::ir::{Graph, Op, TensorData};
use crate::proto;
use prost::Message;
use std::collections::HashMap;

/// The opset the writer targets.
pub const OPSET: i64 = 17;

/// What a site becomes in the exported model.
#[derive(Debug, Clone, PartialEq)]
pub enum SiteExport {
    Keep,
    Identity,
    /// 0/1 mask of shape `(C, H, W)`, `(C, 1, 1)` or `()`.
    Mask(TensorData),
}

mod attr {
    use crate::proto::{attribute_proto::AttributeType, AttributeProto};
    pub fn ints(name: &str, v: &[i64]) -> AttributeProto {
        AttributeProto {
            name: Some(name.into()),
            ints: v.to_vec(),
            r#type: Some(AttributeType::Ints as i32),
            ..Default::default()
        }
    }
    pub fn int(name: &str, v: i64) -> AttributeProto {
        AttributeProto {
            name: Some(name.into()),
            i: Some(v),
            r#type: Some(AttributeType::Int as i32),
            ..Default::default()
        }
    }
    pub fn float(name: &str, v: f32) -> AttributeProto {
        AttributeProto {
            name: Some(name.into()),
            f: Some(v),
            r#type: Some(AttributeType::Float as i32),
            ..Default::default()
        }
    }
}

fn tensor(name: &str, t: &TensorData) -> proto::TensorProto {
    let mut raw = Vec::with_capacity(t.data.len() * 4);
    for v in &t.data {
        raw.extend_from_slice(&v.to_le_bytes());
    }
    proto::TensorProto {
        name: Some(name.into()),
        dims: t.shape.clone(),
        data_type: Some(proto::tensor_proto::DataType::Float as i32),
        raw_data: Some(raw),
        ..Default::default()
    }
}

fn value_info(name: &str, dims: &[i64]) -> proto::ValueInfoProto {
    use proto::tensor_shape_proto::{dimension::Value, Dimension};
    let mut dim = vec![Dimension {
        value: Some(Value::DimParam("batch".into())),
        ..Default::default()
    }];
    dim.extend(dims.iter().map(|&d| Dimension {
        value: Some(Value::DimValue(d)),
        ..Default::default()
    }));
    proto::ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(proto::TypeProto {
            value: Some(proto::type_proto::Value::TensorType(
                proto::type_proto::Tensor {
                    elem_type: Some(proto::tensor_proto::DataType::Float as i32),
                    shape: Some(proto::TensorShapeProto { dim }),
                },
            )),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn onnx_node(
    op: &str,
    name: &str,
    inputs: &[&str],
    output: &str,
    attribute: Vec<proto::AttributeProto>,
) -> proto::NodeProto {
    proto::NodeProto {
        op_type: Some(op.into()),
        name: Some(name.into()),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.to_string()],
        attribute,
        ..Default::default()
    }
}

/// Write `graph` with parameters from `param` and sites as `sites` says (a site not listed
/// keeps its activation) as an ONNX model, batch norms folded into the convolutions before them
/// when `fold_batchnorm` (the form to evaluate or serve) or kept (the form to train further);
/// `Err` names a parameter `param` does not have.
pub fn export(
    graph: &Graph,
    param: &dyn Fn(&str) -> Option<TensorData>,
    sites: &HashMap<String, SiteExport>,
    producer: &str,
    fold_batchnorm: bool,
) -> Result<Vec<u8>, String> {
    let get = |n: &str| param(n).ok_or_else(|| format!("parameter `{n}` is missing"));
    // Convolution node -> the batch norm folded into it.
    let folds = if fold_batchnorm {
        graph.batchnorm_folds()
    } else {
        HashMap::new()
    };
    let folded: std::collections::HashSet<usize> = folds.values().copied().collect();
    let mut nodes = Vec::new();
    let mut inits: Vec<proto::TensorProto> = Vec::new();
    let mut relu6_bounds = false;
    for (j, n) in graph.nodes.iter().enumerate() {
        let ins: Vec<&str> = n.inputs.iter().map(|s| s.as_str()).collect();
        match &n.op {
            Op::Conv {
                weight,
                bias,
                stride,
                pads,
                dilation,
                groups,
            } => {
                let mut w = get(weight)?;
                let o = w.shape[0] as usize;
                let mut b = match bias {
                    Some(b) => get(b)?.data,
                    None => vec![0.0; o],
                };
                let mut output = n.output.as_str();
                let fused = folds.contains_key(&j);
                if let Some(&bi) = folds.get(&j) {
                    let bn = &graph.nodes[bi];
                    let Op::BatchNorm {
                        scale,
                        bias: beta,
                        mean,
                        var,
                        epsilon,
                    } = &bn.op
                    else {
                        unreachable!()
                    };
                    let (g, be, m, v) = (
                        get(scale)?.data,
                        get(beta)?.data,
                        get(mean)?.data,
                        get(var)?.data,
                    );
                    let per = w.data.len() / o;
                    for c in 0..o {
                        let a = g[c] as f64 / (v[c] as f64 + epsilon).sqrt();
                        for x in &mut w.data[c * per..(c + 1) * per] {
                            *x = (*x as f64 * a) as f32;
                        }
                        b[c] = ((b[c] as f64 - m[c] as f64) * a + be[c] as f64) as f32;
                    }
                    output = bn.output.as_str();
                }
                inits.push(tensor(weight, &w));
                // The bias: the layer's own, the folded batch norm's, or none.
                let bname = match (bias, fused) {
                    (Some(b), false) => Some(b.clone()),
                    (_, true) => Some(format!("{weight}.bias_folded")),
                    (None, false) => None,
                };
                let mut inputs = vec![ins[0], weight.as_str()];
                if let Some(bn) = &bname {
                    inits.push(tensor(bn, &TensorData::new(vec![o as i64], b)));
                    inputs.push(bn);
                }
                let k = [w.shape[2], w.shape[3]];
                nodes.push(onnx_node(
                    "Conv",
                    &n.name,
                    &inputs,
                    output,
                    vec![
                        attr::ints("kernel_shape", &k),
                        attr::ints("strides", stride),
                        attr::ints("pads", pads),
                        attr::ints("dilations", dilation),
                        attr::int("group", *groups),
                    ],
                ));
            }
            Op::BatchNorm {
                scale,
                bias,
                mean,
                var,
                epsilon,
            } => {
                if folded.contains(&j) {
                    continue;
                }
                for p in [scale, bias, mean, var] {
                    inits.push(tensor(p, &get(p)?));
                }
                nodes.push(onnx_node(
                    "BatchNormalization",
                    &n.name,
                    &[ins[0], scale, bias, mean, var],
                    &n.output,
                    vec![attr::float("epsilon", *epsilon as f32)],
                ));
            }
            Op::Relu | Op::Relu6 => {
                let how = sites.get(&n.name).unwrap_or(&SiteExport::Keep);
                let act =
                    |out: &str, nodes: &mut Vec<proto::NodeProto>, relu6_bounds: &mut bool| {
                        if n.op == Op::Relu6 {
                            *relu6_bounds = true;
                            nodes.push(onnx_node(
                                "Clip",
                                &n.name,
                                &[ins[0], "relu6.min", "relu6.max"],
                                out,
                                vec![],
                            ));
                        } else {
                            nodes.push(onnx_node("Relu", &n.name, &[ins[0]], out, vec![]));
                        }
                    };
                match how {
                    SiteExport::Keep => act(&n.output, &mut nodes, &mut relu6_bounds),
                    SiteExport::Identity => {
                        nodes.push(onnx_node("Identity", &n.name, &[ins[0]], &n.output, vec![]))
                    }
                    SiteExport::Mask(m) => {
                        let (a, d, md, mname) = (
                            format!("{}.act", n.name),
                            format!("{}.gap", n.name),
                            format!("{}.masked", n.name),
                            format!("mask.{}", n.name),
                        );
                        act(&a, &mut nodes, &mut relu6_bounds);
                        inits.push(tensor(&mname, m));
                        nodes.push(onnx_node(
                            "Sub",
                            &format!("{}.sub", n.name),
                            &[&a, ins[0]],
                            &d,
                            vec![],
                        ));
                        nodes.push(onnx_node(
                            "Mul",
                            &format!("{}.mul", n.name),
                            &[&d, &mname],
                            &md,
                            vec![],
                        ));
                        nodes.push(onnx_node(
                            "Add",
                            &format!("{}.add", n.name),
                            &[ins[0], &md],
                            &n.output,
                            vec![],
                        ));
                    }
                }
            }
            Op::Add => nodes.push(onnx_node("Add", &n.name, &ins, &n.output, vec![])),
            Op::Concat => nodes.push(onnx_node(
                "Concat",
                &n.name,
                &ins,
                &n.output,
                vec![attr::int("axis", 1)],
            )),
            Op::MaxPool(w) | Op::AvgPool { window: w, .. } => {
                let mut at = vec![
                    attr::ints("kernel_shape", &w.kernel),
                    attr::ints("strides", &w.stride),
                    attr::ints("pads", &w.pads),
                    attr::int("ceil_mode", i64::from(w.ceil)),
                ];
                let op = match n.op {
                    Op::MaxPool(_) => "MaxPool",
                    Op::AvgPool {
                        count_include_pad, ..
                    } => {
                        at.push(attr::int("count_include_pad", i64::from(count_include_pad)));
                        "AveragePool"
                    }
                    _ => unreachable!(),
                };
                nodes.push(onnx_node(op, &n.name, &ins, &n.output, at));
            }
            Op::GlobalAvgPool => nodes.push(onnx_node(
                "GlobalAveragePool",
                &n.name,
                &ins,
                &n.output,
                vec![],
            )),
            Op::Flatten => nodes.push(onnx_node(
                "Flatten",
                &n.name,
                &ins,
                &n.output,
                vec![attr::int("axis", 1)],
            )),
            Op::Linear { weight, bias } => {
                let w = get(weight)?;
                inits.push(tensor(weight, &w));
                let mut inputs = vec![ins[0], weight.as_str()];
                if let Some(b) = bias {
                    inits.push(tensor(b, &get(b)?));
                    inputs.push(b);
                }
                nodes.push(onnx_node(
                    "Gemm",
                    &n.name,
                    &inputs,
                    &n.output,
                    vec![attr::int("transB", 1)],
                ));
            }
        }
    }
    if relu6_bounds {
        inits.push(tensor("relu6.min", &TensorData::new(vec![], vec![0.0])));
        inits.push(tensor("relu6.max", &TensorData::new(vec![], vec![6.0])));
    }
    let model = proto::ModelProto {
        ir_version: Some(8),
        producer_name: Some(producer.into()),
        opset_import: vec![proto::OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(OPSET),
        }],
        graph: Some(proto::GraphProto {
            name: Some("privlin".into()),
            node: nodes,
            initializer: inits,
            input: vec![value_info(&graph.input, &graph.input_shape)],
            output: vec![value_info(&graph.output, &[graph.classes()])],
            ..Default::default()
        }),
        ..Default::default()
    };
    Ok(model.encode_to_vec())
}
