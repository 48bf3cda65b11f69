//! One ONNX node into the graph: the supported operations with their attributes, the
//! bookkeeping folded (Constant, Identity, Dropout, shape arithmetic, a bias Add).

use super::attrs::Attrs;
use super::builder::Builder;
use super::tensor::{tensor_const, transpose, Const, BATCH};
use crate::error::{Error, Result};
use crate::ir::{Op, Role, TensorData, Window};
use crate::proto;

pub(super) fn node(b: &mut Builder, n: &proto::NodeProto) -> Result<()> {
    let op = n.op_type();
    let raw_name = if n.name().is_empty() {
        format!("{op}_{}", b.nodes.len())
    } else {
        n.name().to_string()
    };
    if !(n.domain().is_empty() || n.domain() == "ai.onnx") {
        return Err(Error::Unsupported {
            node: raw_name,
            op: format!("{}::{op}", n.domain()),
        });
    }
    let a = Attrs {
        node: &raw_name,
        list: &n.attribute,
    };
    let out = n.output.first().cloned().unwrap_or_default();
    let ins: Vec<&str> = n.input.iter().map(|s| s.as_str()).collect();
    let arg = |k: usize| -> Result<&str> {
        ins.get(k)
            .copied()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| Error::Attribute {
                node: raw_name.clone(),
                msg: format!("{op} needs input {k}"),
            })
    };
    match op {
        "Constant" => {
            let t = a.get("value").and_then(|x| x.t.as_ref()).ok_or_else(|| {
                a.err("Constant without a tensor `value` (value_float and friends are not read)")
            })?;
            let c = tensor_const(t, "constant")?;
            b.consts.insert(out, c);
        }
        // Shape arithmetic on the batch size, as PyTorch writes `x.view(x.size(0), -1)`: the
        // batch is a symbol (BATCH) that may only end up as the first entry of a Reshape target.
        "Shape" => {
            let x = b.activation(arg(0)?, &raw_name)?;
            let mut v = vec![BATCH];
            v.extend(&x.1);
            b.consts.insert(out, Const::I64(vec![v.len() as i64], v));
        }
        "Gather" | "Unsqueeze" | "Squeeze" | "Cast"
            if ins
                .first()
                .is_some_and(|v| matches!(b.consts.get(b.resolve(v)), Some(Const::I64(..)))) =>
        {
            let Some(Const::I64(_, data)) = b.consts.get(b.resolve(ins[0])).cloned() else {
                unreachable!()
            };
            let v = match op {
                "Gather" => {
                    let idx = match b.constant(arg(1)?, &raw_name)? {
                        Const::I64(s, i) if s.is_empty() || i.len() == 1 => i[0],
                        _ => return Err(a.err("Gather of shape entries by a non-scalar index")),
                    };
                    let k = if idx < 0 {
                        data.len() as i64 + idx
                    } else {
                        idx
                    };
                    vec![*data
                        .get(k as usize)
                        .ok_or_else(|| a.err(format!("index {idx} out of range")))?]
                }
                _ => data,
            };
            let shape = if op == "Gather" || (op == "Squeeze" && v.len() == 1) {
                vec![]
            } else {
                vec![v.len() as i64]
            };
            b.consts.insert(out, Const::I64(shape, v));
        }
        "Concat"
            if ins
                .iter()
                .filter(|v| !v.is_empty())
                .all(|v| matches!(b.consts.get(b.resolve(v)), Some(Const::I64(..)))) =>
        {
            let mut v = Vec::new();
            for i in ins.iter().filter(|v| !v.is_empty()) {
                if let Some(Const::I64(_, d)) = b.consts.get(b.resolve(i)) {
                    v.extend(d);
                }
            }
            b.consts.insert(out, Const::I64(vec![v.len() as i64], v));
        }
        "Identity" | "Dropout" => {
            if op == "Dropout"
                && n.output
                    .get(1)
                    .is_some_and(|m| !m.is_empty() && b.readers.contains_key(m))
            {
                return Err(
                    a.err("the Dropout mask output is read; privlin imports inference graphs")
                );
            }
            let src = arg(0)?;
            let r = b.resolve(src).to_string();
            if let Some(c) = b.consts.get(&r).cloned() {
                b.consts.insert(out, c);
            } else {
                b.alias.insert(out, r);
            }
        }
        "Conv" => {
            let name = b.unique_node_name(&raw_name, op);
            let x = b.activation(arg(0)?, &name)?;
            let w = match b.constant(arg(1)?, &name)? {
                Const::F32(t) => t.clone(),
                _ => return Err(a.err("the weight is not a float tensor")),
            };
            if w.shape.len() != 4 {
                return Err(a.err(format!(
                    "weight shape {:?}: privlin reads 2-D convolutions",
                    w.shape
                )));
            }
            let bias = match ins.get(2).filter(|s| !s.is_empty()) {
                Some(bn) => {
                    let c = b.constant(bn, &name)?;
                    Some(TensorData::new(c.shape().to_vec(), c.floats()))
                }
                None => None,
            };
            if let Some(k) = a.ints("kernel_shape") {
                if k[..] != w.shape[2..] {
                    return Err(a.err(format!(
                        "kernel_shape {k:?} disagrees with the weight's {:?}",
                        &w.shape[2..]
                    )));
                }
            }
            let stride = a.pair("strides", 1)?;
            let dilation = a.pair("dilations", 1)?;
            let hw = if x.1.len() == 3 {
                [x.1[1], x.1[2]]
            } else {
                [0, 0]
            };
            let pads = a.resolve_pads(hw, [w.shape[2], w.shape[3]], stride, dilation)?;
            let groups = a.int("group", 1);
            let wn = b.claim(arg(1)?, w, Role::Weight);
            let bn = bias.map(|t| b.claim(ins[2], t, Role::Bias));
            b.push(
                name,
                Op::Conv {
                    weight: wn,
                    bias: bn,
                    stride,
                    pads,
                    dilation,
                    groups,
                },
                vec![x],
                &out,
            )?;
        }
        "BatchNormalization" => {
            let name = b.unique_node_name(&raw_name, op);
            if a.int("training_mode", 0) != 0 || n.output.iter().skip(1).any(|o| !o.is_empty()) {
                return Err(
                    a.err("BatchNormalization in training mode; export the model in eval mode")
                );
            }
            let x = b.activation(arg(0)?, &name)?;
            let mut names = Vec::new();
            for (k, role) in [
                (1, Role::BnScale),
                (2, Role::BnBias),
                (3, Role::BnMean),
                (4, Role::BnVar),
            ] {
                let src = arg(k)?;
                let c = b.constant(src, &name)?;
                let t = TensorData::new(c.shape().to_vec(), c.floats());
                names.push(b.claim(src, t, role));
            }
            let op = Op::BatchNorm {
                scale: names[0].clone(),
                bias: names[1].clone(),
                mean: names[2].clone(),
                var: names[3].clone(),
                epsilon: a.float("epsilon", 1e-5) as f64,
            };
            b.push(name, op, vec![x], &out)?;
        }
        "Relu" => {
            let name = b.unique_node_name(&raw_name, op);
            let x = b.activation(arg(0)?, &name)?;
            b.push(name, Op::Relu, vec![x], &out)?;
        }
        "Clip" => {
            let name = b.unique_node_name(&raw_name, op);
            let bound = |k: usize| -> Result<Option<f32>> {
                match ins.get(k).filter(|s| !s.is_empty()) {
                    None => Ok(None),
                    Some(v) => {
                        let c = b.constant(v, &name)?.floats();
                        match c[..] {
                            [x] => Ok(Some(x)),
                            _ => Err(a.err("Clip bounds must be scalars")),
                        }
                    }
                }
            };
            let (lo, hi) = (bound(1)?, bound(2)?);
            let op_ir = match (lo, hi) {
                (Some(l), Some(h)) if l == 0.0 && h == 6.0 => Op::Relu6,
                (Some(0.0), None) => Op::Relu,
                (l, h) => {
                    return Err(Error::Unsupported {
                        node: name,
                        op: format!(
                            "Clip({}, {})",
                            l.map_or("-inf".into(), |v| v.to_string()),
                            h.map_or("inf".into(), |v| v.to_string())
                        ),
                    })
                }
            };
            let x = b.activation(arg(0)?, &name)?;
            b.push(name, op_ir, vec![x], &out)?;
        }
        "Add" => {
            let name = b.unique_node_name(&raw_name, op);
            let (l, r) = (arg(0)?, arg(1)?);
            let (lc, rc) = (
                b.consts.contains_key(b.resolve(l)),
                b.consts.contains_key(b.resolve(r)),
            );
            match (lc, rc) {
                (false, false) => {
                    let (x, y) = (b.activation(l, &name)?, b.activation(r, &name)?);
                    b.push(name, Op::Add, vec![x, y], &out)?;
                }
                (true, true) => {
                    return Err(a.err("Add of two constants (fold constants before import)"))
                }
                _ => {
                    let (v, c) = if lc { (r, l) } else { (l, r) };
                    fold_bias(b, &name, v, c, &out)?;
                }
            }
        }
        "Concat" => {
            let name = b.unique_node_name(&raw_name, op);
            let axis = a.int("axis", 1);
            let xs = ins
                .iter()
                .filter(|s| !s.is_empty())
                .map(|v| b.activation(v, &name))
                .collect::<Result<Vec<_>>>()?;
            let rank = xs.first().map(|x| x.1.len() as i64 + 1).unwrap_or(4);
            if axis != 1 && axis != 1 - rank {
                return Err(a.err(format!(
                    "Concat along axis {axis}; privlin concatenates channels (axis 1)"
                )));
            }
            b.push(name, Op::Concat, xs, &out)?;
        }
        "MaxPool" | "AveragePool" => {
            let name = b.unique_node_name(&raw_name, op);
            if n.output.iter().skip(1).any(|o| !o.is_empty()) {
                return Err(a.err("MaxPool's indices output is not supported"));
            }
            let x = b.activation(arg(0)?, &name)?;
            let kernel = a.pair("kernel_shape", 0)?;
            if kernel[0] < 1 {
                return Err(a.err("no kernel_shape"));
            }
            let stride = a.pair("strides", 1)?;
            if a.pair("dilations", 1)? != [1, 1] {
                return Err(a.err("dilated pooling is not supported"));
            }
            if a.int("storage_order", 0) != 0 {
                return Err(a.err("storage_order = 1 is not supported"));
            }
            let hw = if x.1.len() == 3 {
                [x.1[1], x.1[2]]
            } else {
                [0, 0]
            };
            let pads = a.resolve_pads(hw, kernel, stride, [1, 1])?;
            let window = Window {
                kernel,
                stride,
                pads,
                ceil: a.int("ceil_mode", 0) != 0,
            };
            let op_ir = if op == "MaxPool" {
                Op::MaxPool(window)
            } else {
                Op::AvgPool {
                    window,
                    count_include_pad: a.int("count_include_pad", 0) != 0,
                }
            };
            b.push(name, op_ir, vec![x], &out)?;
        }
        "GlobalAveragePool" => {
            let name = b.unique_node_name(&raw_name, op);
            let x = b.activation(arg(0)?, &name)?;
            b.push(name, Op::GlobalAvgPool, vec![x], &out)?;
        }
        "Flatten" => {
            let name = b.unique_node_name(&raw_name, op);
            let axis = a.int("axis", 1);
            if axis != 1 {
                return Err(a.err(format!(
                    "Flatten(axis = {axis}); privlin flattens after the batch (axis 1)"
                )));
            }
            let x = b.activation(arg(0)?, &name)?;
            b.push(name, Op::Flatten, vec![x], &out)?;
        }
        "Reshape" => {
            let name = b.unique_node_name(&raw_name, op);
            let x = b.activation(arg(0)?, &name)?;
            let target: Vec<i64> = match b.constant(arg(1)?, &name)? {
                Const::I64(_, v) => v.clone(),
                _ => return Err(a.err("the target shape is not an int64 tensor")),
            };
            let feats: i64 = x.1.iter().product();
            // (batch, features): the batch written as 0 (copy), -1 (infer) or 1 (a model
            // exported at batch 1); the features as their count or -1.
            let ok = target.len() == 2
                && matches!(target[0], 0 | -1 | 1 | BATCH)
                && (target[1] == feats || (target[1] == -1 && target[0] != -1));
            if !ok {
                return Err(a.err(format!(
                    "Reshape of (batch, {:?}) to {target:?}: privlin reads a Reshape only as a flatten to (batch, {feats})",
                    x.1
                )));
            }
            b.push(name, Op::Flatten, vec![x], &out)?;
        }
        "Gemm" => {
            let name = b.unique_node_name(&raw_name, op);
            if a.int("transA", 0) != 0 {
                return Err(a.err("Gemm with transA = 1 is not supported"));
            }
            let x = b.activation(arg(0)?, &name)?;
            let (alpha, beta) = (a.float("alpha", 1.0), a.float("beta", 1.0));
            let w = match b.constant(arg(1)?, &name)? {
                Const::F32(t) if t.shape.len() == 2 => t.clone(),
                c => {
                    return Err(a.err(format!(
                        "the weight of shape {:?} is not a float matrix",
                        c.shape()
                    )))
                }
            };
            let mut w = if a.int("transB", 0) != 0 {
                w
            } else {
                transpose(&w)
            };
            if alpha != 1.0 {
                w.data.iter_mut().for_each(|v| *v *= alpha);
            }
            let wn = b.claim(arg(1)?, w, Role::Weight);
            let bias = match ins.get(2).filter(|s| !s.is_empty()) {
                Some(bn) => {
                    let c = b.constant(bn, &name)?;
                    let mut t = TensorData::new(vec![c.shape().iter().product()], c.floats());
                    t.data.iter_mut().for_each(|v| *v *= beta);
                    Some(b.claim(bn, t, Role::Bias))
                }
                None => None,
            };
            b.push(name, Op::Linear { weight: wn, bias }, vec![x], &out)?;
        }
        "MatMul" => {
            let name = b.unique_node_name(&raw_name, op);
            let x = b.activation(arg(0)?, &name)?;
            let w = match b.constant(arg(1)?, &name)? {
                Const::F32(t) if t.shape.len() == 2 => transpose(t),
                c => {
                    return Err(a.err(format!(
                        "MatMul by a {:?} operand: privlin reads x (batch, in) times a constant (in, out) matrix",
                        c.shape()
                    )))
                }
            };
            let wn = b.claim(arg(1)?, w, Role::Weight);
            b.push(
                name,
                Op::Linear {
                    weight: wn,
                    bias: None,
                },
                vec![x],
                &out,
            )?;
        }
        other => {
            return Err(Error::Unsupported {
                node: raw_name,
                op: other.to_string(),
            })
        }
    }
    Ok(())
}

/// `Add(v, c)` with a constant `c`: the bias of the bias-free Conv, Gemm or MatMul that wrote
/// `v` and nothing else reads.
fn fold_bias(b: &mut Builder, name: &str, v: &str, c: &str, out: &str) -> Result<()> {
    let rv = b.resolve(v).to_string();
    let single = b.readers.get(v).copied().unwrap_or(0) == 1
        && b.readers.get(&rv).copied().unwrap_or(0) <= 1;
    let c_data = b.constant(c, name)?.clone();
    let idx = b.nodes.iter().rposition(|n| n.output == rv);
    let fail = |why: &str| {
        Error::Attribute {
        node: name.to_string(),
        msg: format!("Add of the constant `{c}`: {why}; privlin reads a constant Add only as the bias of the Conv, Gemm or MatMul before it"),
    }
    };
    let Some(idx) = idx else {
        return Err(fail("it does not follow a layer"));
    };
    if !single {
        return Err(fail("the layer's output is read elsewhere too"));
    }
    let outs = match &b.nodes[idx].op {
        Op::Conv {
            weight, bias: None, ..
        }
        | Op::Linear { weight, bias: None } => b
            .params
            .iter()
            .find(|p| &p.name == weight)
            .map(|p| p.shape[0])
            .unwrap_or(0),
        _ => {
            return Err(fail(
                "the layer before it has a bias already or is not a weight layer",
            ))
        }
    };
    let numel: i64 = c_data.shape().iter().product();
    let per_channel = c_data.shape().iter().filter(|&&d| d != 1).count() <= 1;
    if numel != outs || !per_channel {
        return Err(fail(&format!(
            "shape {:?} is not one value per output channel ({outs})",
            c_data.shape()
        )));
    }
    let bname = b.claim(c, TensorData::new(vec![outs], c_data.floats()), Role::Bias);
    match &mut b.nodes[idx].op {
        Op::Conv { bias, .. } | Op::Linear { bias, .. } => *bias = Some(bname),
        _ => unreachable!(),
    }
    b.alias.insert(out.to_string(), rv);
    Ok(())
}
