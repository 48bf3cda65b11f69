//! ONNX → [`Graph`]: decode with prost, sort the nodes (refusing cycles and values nobody
//! writes), fold what is only bookkeeping (Constant, Identity, Dropout, a bias `Add` after a
//! MatMul), map each supported operation with its attributes and check every shape.

mod attrs;
mod builder;
mod names;
mod ops;
mod tensor;

pub use names::{node_name, sanitize};

use crate::error::{Error, Result};
use crate::ir::{Graph, TensorData};
use crate::proto;
use builder::Builder;
use prost::Message;
use std::collections::{HashMap, HashSet, VecDeque};
use tensor::tensor_const;

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
        ops::node(&mut b, n)?;
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
