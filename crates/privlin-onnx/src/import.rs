//! ONNX → [`Graph`]: decode with prost, sort the nodes (refusing cycles and values nobody
//! writes), fold what is only bookkeeping (Constant, Identity, Dropout, a bias `Add` after a
//! MatMul), map each supported operation with its attributes and check every shape.

use crate::error::{Error, Result};
use crate::ir::{infer, Graph, Node, Op, Param, Role, TensorData, Window};
use crate::proto;
use prost::Message;
use std::collections::{HashMap, HashSet, VecDeque};

/// An imported model: the graph and its parameters (ONNX initializers under sanitized names).
#[derive(Debug, Clone)]
pub struct Imported {
    pub graph: Graph,
    pub tensors: Vec<(String, TensorData)>,
    /// The default domain's opset.
    pub opset: i64,
    pub producer: String,
}

/// The lowest opset the importer reads.
pub const MIN_OPSET: i64 = 13;

/// The batch size in shape arithmetic (a value no real dimension takes).
const BATCH: i64 = i64::MIN + 7;

const FLOAT: i32 = 1;
const INT32: i32 = 6;
const INT64: i32 = 7;
const DOUBLE: i32 = 11;

#[derive(Debug, Clone)]
enum Const {
    F32(TensorData),
    I64(Vec<i64>, Vec<i64>),
}

impl Const {
    fn shape(&self) -> &[i64] {
        match self {
            Const::F32(t) => &t.shape,
            Const::I64(s, _) => s,
        }
    }
    fn floats(&self) -> Vec<f32> {
        match self {
            Const::F32(t) => t.data.clone(),
            Const::I64(_, v) => v.iter().map(|&x| x as f32).collect(),
        }
    }
}

fn tensor_const(t: &proto::TensorProto, what: &str) -> Result<Const> {
    let name = t.name();
    if t.data_location() == proto::tensor_proto::DataLocation::External {
        return Err(Error::Model(format!(
            "{what} `{name}` keeps its data in an external file; save the model with its weights inside (onnx.save(model, path, save_as_external_data=False))"
        )));
    }
    let shape = t.dims.clone();
    let n: i64 = shape.iter().product();
    let raw = t.raw_data.as_deref().filter(|r| !r.is_empty());
    let c = match t.data_type() {
        FLOAT => {
            let v: Vec<f32> = match raw {
                Some(r) => r.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
                None => t.float_data.clone(),
            };
            Const::F32(TensorData { shape, data: v })
        }
        DOUBLE => {
            let v: Vec<f32> = match raw {
                Some(r) => r
                    .chunks_exact(8)
                    .map(|b| f64::from_le_bytes(b.try_into().unwrap()) as f32)
                    .collect(),
                None => t.double_data.iter().map(|&x| x as f32).collect(),
            };
            Const::F32(TensorData { shape, data: v })
        }
        INT64 => {
            let v: Vec<i64> = match raw {
                Some(r) => r.chunks_exact(8).map(|b| i64::from_le_bytes(b.try_into().unwrap())).collect(),
                None => t.int64_data.clone(),
            };
            Const::I64(shape, v)
        }
        INT32 => {
            let v: Vec<i64> = match raw {
                Some(r) => r.chunks_exact(4).map(|b| i32::from_le_bytes(b.try_into().unwrap()) as i64).collect(),
                None => t.int32_data.iter().map(|&x| x as i64).collect(),
            };
            Const::I64(shape, v)
        }
        other => {
            return Err(Error::Model(format!(
                "{what} `{name}` has ONNX data type {other}; privlin reads float32, float64, int32 and int64 tensors"
            )))
        }
    };
    let got = match &c {
        Const::F32(t) => t.data.len(),
        Const::I64(_, v) => v.len(),
    };
    if got as i64 != n {
        return Err(Error::Model(format!(
            "{what} `{name}` of shape {:?} holds {got} values, expected {n} (truncated file?)",
            c.shape()
        )));
    }
    Ok(c)
}

/// Attributes of one node.
struct Attrs<'a> {
    node: &'a str,
    list: &'a [proto::AttributeProto],
}

impl Attrs<'_> {
    fn get(&self, name: &str) -> Option<&proto::AttributeProto> {
        self.list.iter().find(|a| a.name() == name)
    }
    fn int(&self, name: &str, default: i64) -> i64 {
        self.get(name).map(|a| a.i()).unwrap_or(default)
    }
    fn float(&self, name: &str, default: f32) -> f32 {
        self.get(name).map(|a| a.f()).unwrap_or(default)
    }
    fn ints(&self, name: &str) -> Option<Vec<i64>> {
        self.get(name).map(|a| a.ints.clone())
    }
    fn string(&self, name: &str) -> Option<String> {
        self.get(name)
            .map(|a| String::from_utf8_lossy(a.s()).into_owned())
    }
    fn err(&self, msg: impl Into<String>) -> Error {
        Error::Attribute {
            node: self.node.to_string(),
            msg: msg.into(),
        }
    }
    fn pair(&self, name: &str, default: i64) -> Result<[i64; 2]> {
        match self.ints(name) {
            None => Ok([default; 2]),
            Some(v) if v.len() == 2 => Ok([v[0], v[1]]),
            Some(v) => Err(self.err(format!(
                "`{name}` = {v:?}: privlin reads 2-D operations only"
            ))),
        }
    }
    fn pads(&self) -> Result<[i64; 4]> {
        match self.ints("pads") {
            None => Ok([0; 4]),
            Some(v) if v.len() == 4 => Ok([v[0], v[1], v[2], v[3]]),
            Some(v) => Err(self.err(format!("`pads` = {v:?}: expected four values (2-D)"))),
        }
    }
    /// `auto_pad` resolved to explicit pads for a window of `kernel` (dilated) on `hw`.
    fn resolve_pads(
        &self,
        hw: [i64; 2],
        kernel: [i64; 2],
        stride: [i64; 2],
        dil: [i64; 2],
    ) -> Result<[i64; 4]> {
        let mode = self.string("auto_pad").unwrap_or_else(|| "NOTSET".into());
        match mode.as_str() {
            "NOTSET" | "" => self.pads(),
            "VALID" => Ok([0; 4]),
            "SAME_UPPER" | "SAME_LOWER" => {
                let mut p = [0i64; 4];
                for d in 0..2 {
                    let out = (hw[d] + stride[d] - 1) / stride[d];
                    let total =
                        ((out - 1) * stride[d] + dil[d] * (kernel[d] - 1) + 1 - hw[d]).max(0);
                    let (small, big) = (total / 2, total - total / 2);
                    if mode == "SAME_UPPER" {
                        p[d] = small;
                        p[d + 2] = big;
                    } else {
                        p[d] = big;
                        p[d + 2] = small;
                    }
                }
                Ok(p)
            }
            other => Err(self.err(format!("auto_pad = {other} is not an ONNX value"))),
        }
    }
}

/// A node's name as a module path: PyTorch's exporter writes scopes such as
/// `/layer2/layer2.0/downsample/downsample.0/Conv`, which becomes `layer2.0.downsample.0`
/// (a scope that the next one repeats is dropped, and the trailing operation type).
pub fn node_name(raw: &str, op: &str) -> String {
    let parts: Vec<&str> = raw.split('/').filter(|s| !s.is_empty()).collect();
    let mut kept: Vec<&str> = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        let repeated = parts
            .get(i + 1)
            .is_some_and(|next| next.starts_with(&format!("{p}.")));
        if !repeated {
            kept.push(p);
        }
    }
    if kept.len() > 1 && kept.last().is_some_and(|l| *l == op) {
        kept.pop();
    }
    if kept.is_empty() {
        return op.to_ascii_lowercase();
    }
    sanitize(&kept.join("."))
}

/// A parameter or value name that libtorch's variable store accepts: dot-separated non-empty
/// segments of `[A-Za-z0-9_:-]`.
pub fn sanitize(name: &str) -> String {
    let segs: Vec<String> = name
        .split(['.', '/'])
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '_' || c == ':' || c == '-' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect()
        })
        .collect();
    if segs.is_empty() {
        "param".into()
    } else {
        segs.join(".")
    }
}

struct Builder {
    consts: HashMap<String, Const>,
    /// Activation values: name -> shape.
    shapes: HashMap<String, Vec<i64>>,
    /// A value that is another one (Identity, Dropout, a folded bias Add).
    alias: HashMap<String, String>,
    nodes: Vec<Node>,
    params: Vec<Param>,
    tensors: Vec<(String, TensorData)>,
    claimed: HashSet<String>,
    node_names: HashSet<String>,
    /// How many nodes read each (raw) value.
    readers: HashMap<String, usize>,
}

impl Builder {
    fn resolve<'a>(&'a self, v: &'a str) -> &'a str {
        let mut v = v;
        while let Some(a) = self.alias.get(v) {
            v = a;
        }
        v
    }

    /// Register `data` as a parameter named after `name` (renamed when taken: one parameter per
    /// node that reads it, so tied or deduplicated initializers train apart).
    fn claim(&mut self, name: &str, data: TensorData, role: Role) -> String {
        let base = sanitize(name);
        let mut n = base.clone();
        let mut k = 1;
        while !self.claimed.insert(n.clone()) {
            n = format!("{base}_{k}");
            k += 1;
        }
        self.params.push(Param {
            name: n.clone(),
            shape: data.shape.clone(),
            role,
        });
        self.tensors.push((n.clone(), data));
        n
    }

    fn unique_node_name(&mut self, raw: &str, op: &str) -> String {
        let base = node_name(raw, op);
        let mut n = base.clone();
        let mut k = 1;
        while !self.node_names.insert(n.clone()) {
            n = format!("{base}_{k}");
            k += 1;
        }
        n
    }

    fn constant(&self, v: &str, node: &str) -> Result<&Const> {
        let v = self.resolve(v);
        self.consts.get(v).ok_or_else(|| Error::Attribute {
            node: node.into(),
            msg: format!("input `{v}` must be a constant (an initializer); privlin does not compute weights at run time"),
        })
    }

    fn activation(&self, v: &str, node: &str) -> Result<(String, Vec<i64>)> {
        let r = self.resolve(v);
        match self.shapes.get(r) {
            Some(s) => Ok((r.to_string(), s.clone())),
            None if self.consts.contains_key(r) => Err(Error::Attribute {
                node: node.into(),
                msg: format!("input `{r}` is a constant where privlin expects an activation (constant folding of activations is not supported)"),
            }),
            None => Err(Error::Missing {
                node: node.into(),
                value: v.into(),
            }),
        }
    }

    fn push(
        &mut self,
        name: String,
        op: Op,
        inputs: Vec<(String, Vec<i64>)>,
        output: &str,
    ) -> Result<()> {
        let param_shapes: HashMap<String, Vec<i64>> = self
            .params
            .iter()
            .map(|p| (p.name.clone(), p.shape.clone()))
            .collect();
        let refs: Vec<&[i64]> = inputs.iter().map(|(_, s)| s.as_slice()).collect();
        let shape =
            infer(&op, &refs, &|p| param_shapes.get(p).cloned()).map_err(|msg| Error::Shape {
                node: name.clone(),
                msg,
            })?;
        self.shapes.insert(output.to_string(), shape.clone());
        self.nodes.push(Node {
            name,
            op,
            inputs: inputs.into_iter().map(|(n, _)| n).collect(),
            output: output.to_string(),
            shape,
        });
        Ok(())
    }
}

/// Topological order of `nodes`, refusing a read of a value nobody writes and a cycle.
fn sort(nodes: &[proto::NodeProto], known: &HashSet<String>) -> Result<Vec<usize>> {
    let label = |i: usize| {
        let n = &nodes[i];
        if n.name().is_empty() {
            format!("{} #{i}", n.op_type())
        } else {
            n.name().to_string()
        }
    };
    let mut producer: HashMap<&str, usize> = HashMap::new();
    for (i, n) in nodes.iter().enumerate() {
        for o in &n.output {
            if !o.is_empty() && producer.insert(o, i).is_some() {
                return Err(Error::Graph(format!(
                    "value `{o}` is written by two nodes (the second is `{}`)",
                    label(i)
                )));
            }
        }
    }
    let mut pending = vec![0usize; nodes.len()];
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    for (i, n) in nodes.iter().enumerate() {
        for v in n.input.iter().filter(|v| !v.is_empty()) {
            match producer.get(v.as_str()) {
                Some(&p) => {
                    pending[i] += 1;
                    dependents[p].push(i);
                }
                None if known.contains(v) => {}
                None => {
                    return Err(Error::Missing {
                        node: label(i),
                        value: v.clone(),
                    })
                }
            }
        }
    }
    let mut ready: VecDeque<usize> = (0..nodes.len()).filter(|&i| pending[i] == 0).collect();
    let mut order = Vec::with_capacity(nodes.len());
    while let Some(i) = ready.pop_front() {
        order.push(i);
        for &d in &dependents[i] {
            pending[d] -= 1;
            if pending[d] == 0 {
                ready.push_back(d);
            }
        }
    }
    if order.len() < nodes.len() {
        let stuck = (0..nodes.len()).find(|&i| pending[i] > 0).unwrap();
        return Err(Error::Cycle { node: label(stuck) });
    }
    Ok(order)
}

fn value_shape(v: &proto::ValueInfoProto) -> Option<Vec<Option<i64>>> {
    let t = v.r#type.as_ref()?;
    match t.value.as_ref()? {
        proto::type_proto::Value::TensorType(tt) => Some(
            tt.shape
                .as_ref()?
                .dim
                .iter()
                .map(|d| match d.value {
                    Some(proto::tensor_shape_proto::dimension::Value::DimValue(n)) if n > 0 => {
                        Some(n)
                    }
                    _ => None,
                })
                .collect(),
        ),
        _ => None,
    }
}

/// Read an ONNX model from its bytes.
pub fn import(bytes: &[u8]) -> Result<Imported> {
    let model = proto::ModelProto::decode(bytes).map_err(|e| Error::Decode(e.to_string()))?;
    let opset = model
        .opset_import
        .iter()
        .find(|o| o.domain().is_empty() || o.domain() == "ai.onnx")
        .map(|o| o.version())
        .ok_or_else(|| Error::Model("the model imports no opset of the default ONNX domain (an empty or truncated file?)".into()))?;
    if opset < MIN_OPSET {
        return Err(Error::Model(format!(
            "opset {opset}: privlin imports opset {MIN_OPSET} and later (convert with onnx.version_converter.convert_version(model, 17))"
        )));
    }
    let g = model
        .graph
        .as_ref()
        .ok_or_else(|| Error::Model("the model has no graph".into()))?;
    let mut b = Builder {
        consts: HashMap::new(),
        shapes: HashMap::new(),
        alias: HashMap::new(),
        nodes: Vec::new(),
        params: Vec::new(),
        tensors: Vec::new(),
        claimed: HashSet::new(),
        node_names: HashSet::new(),
        readers: HashMap::new(),
    };
    for t in &g.initializer {
        b.consts
            .insert(t.name().to_string(), tensor_const(t, "initializer")?);
    }
    let inputs: Vec<&proto::ValueInfoProto> = g
        .input
        .iter()
        .filter(|i| !b.consts.contains_key(i.name()))
        .collect();
    let input = match inputs[..] {
        [i] => i,
        [] => return Err(Error::Model("the graph has no input".into())),
        _ => {
            return Err(Error::Model(format!(
                "the graph has {} inputs ({}); privlin models read one image tensor",
                inputs.len(),
                inputs
                    .iter()
                    .map(|i| i.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        }
    };
    let input_shape: Vec<i64> = match value_shape(input).as_deref() {
        Some([_, Some(c), Some(h), Some(w)]) => vec![*c, *h, *w],
        other => {
            return Err(Error::Model(format!(
            "input `{}` has shape {other:?}; privlin needs (batch, C, H, W) with C, H and W fixed",
            input.name()
        )))
        }
    };
    b.shapes
        .insert(input.name().to_string(), input_shape.clone());
    let output = match &g.output[..] {
        [o] => o.name().to_string(),
        outs => {
            return Err(Error::Model(format!(
                "the graph has {} outputs; privlin models give one (batch, classes) tensor",
                outs.len()
            )))
        }
    };
    for n in &g.node {
        for v in &n.input {
            *b.readers.entry(v.clone()).or_default() += 1;
        }
    }
    let mut known: HashSet<String> = b.consts.keys().cloned().collect();
    known.insert(input.name().to_string());
    let order = sort(&g.node, &known)?;
    for i in order {
        let n = &g.node[i];
        node(&mut b, n)?;
    }
    let out = b.resolve(&output).to_string();
    if !b.shapes.contains_key(&out) {
        return Err(Error::Graph(format!(
            "the output `{output}` is not computed from the input"
        )));
    }
    // A declared output shape (batch excluded) must be what the graph computes.
    if let Some(declared) = value_shape(&g.output[0]) {
        let got = &b.shapes[&out];
        let fixed: Vec<Option<i64>> = declared.iter().skip(1).copied().collect();
        let agrees = fixed.len() == got.len()
            && fixed
                .iter()
                .zip(got)
                .all(|(d, g)| d.is_none_or(|d| d == *g));
        if !declared.is_empty() && !agrees {
            let node = b
                .nodes
                .iter()
                .find(|n| n.output == out)
                .map_or(out.clone(), |n| n.name.clone());
            return Err(Error::Shape {
                node,
                msg: format!("the graph declares its output `{output}` as {declared:?} (None: free), the operations give (batch, {got:?})"),
            });
        }
    }
    let graph = Graph {
        input: input.name().to_string(),
        input_shape,
        output: out,
        nodes: b.nodes,
        params: b.params,
    };
    graph.check()?;
    Ok(Imported {
        graph,
        tensors: b.tensors,
        opset,
        producer: format!("{} {}", model.producer_name(), model.producer_version())
            .trim()
            .to_string(),
    })
}

fn node(b: &mut Builder, n: &proto::NodeProto) -> Result<()> {
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
                Some(bn) => Some(TensorData::new(
                    b.constant(bn, &name)?.shape().to_vec(),
                    b.constant(bn, &name)?.floats(),
                )),
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

fn transpose(t: &TensorData) -> TensorData {
    let (r, c) = (t.shape[0] as usize, t.shape[1] as usize);
    let mut data = vec![0f32; r * c];
    for i in 0..r {
        for j in 0..c {
            data[j * r + i] = t.data[i * c + j];
        }
    }
    TensorData::new(vec![c as i64, r as i64], data)
}
