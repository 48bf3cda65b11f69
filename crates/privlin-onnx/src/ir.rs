//! The graph privlin keeps of an imported network: the supported operations only, in topological
//! order, every value's shape known (batch excluded), parameters named. It is stored in the
//! checkpoint's `spec.json` (the weights go to `model.safetensors` under the parameter names) and
//! checked again when it is read back, so a hand-edited spec cannot build a model whose shapes
//! disagree.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// A float32 tensor, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorData {
    pub shape: Vec<i64>,
    pub data: Vec<f32>,
}

impl TensorData {
    pub fn new(shape: Vec<i64>, data: Vec<f32>) -> Self {
        debug_assert_eq!(shape.iter().product::<i64>() as usize, data.len());
        TensorData { shape, data }
    }

    pub fn numel(&self) -> usize {
        self.data.len()
    }
}

/// What a parameter is to the layer that owns it: decides its initialization and whether it is
/// trained (batch-norm statistics are buffers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Weight,
    Bias,
    BnScale,
    BnBias,
    BnMean,
    BnVar,
}

impl Role {
    /// Batch-norm running statistics: buffers, not trained by gradient.
    pub fn is_buffer(self) -> bool {
        matches!(self, Role::BnMean | Role::BnVar)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Param {
    pub name: String,
    pub shape: Vec<i64>,
    pub role: Role,
}

/// Spatial attributes of a pooling window; `pads` in ONNX order `[top, left, bottom, right]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub kernel: [i64; 2],
    pub stride: [i64; 2],
    pub pads: [i64; 4],
    #[serde(default)]
    pub ceil: bool,
}

/// The operations privlin runs (ONNX names in [`SUPPORTED`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// ONNX `Conv`: weight `(O, I / groups, kh, kw)`, optional bias `(O)`.
    Conv {
        weight: String,
        bias: Option<String>,
        stride: [i64; 2],
        pads: [i64; 4],
        dilation: [i64; 2],
        groups: i64,
    },
    /// ONNX `BatchNormalization` (inference form; privlin trains it like PyTorch's).
    BatchNorm {
        scale: String,
        bias: String,
        mean: String,
        var: String,
        epsilon: f64,
    },
    /// `Relu`: an activation site.
    Relu,
    /// `Clip(0, 6)`: an activation site applying ReLU6.
    Relu6,
    /// Element-wise sum of two values of the same shape.
    Add,
    /// Concatenation along channels.
    Concat,
    MaxPool(Window),
    AvgPool {
        #[serde(flatten)]
        window: Window,
        count_include_pad: bool,
    },
    GlobalAvgPool,
    /// `Flatten(axis = 1)` or a `Reshape` to `(batch, features)`.
    Flatten,
    /// `Gemm` or `MatMul` (+ `Add` of a bias): weight `(O, I)`, optional bias `(O)`.
    Linear {
        weight: String,
        bias: Option<String>,
    },
}

/// The ONNX operations the importer reads.
pub const SUPPORTED: &str = "Conv (any kernel, stride, padding, dilation, groups), BatchNormalization, Relu, Clip(0, 6) as ReLU6 and Clip(0, inf) as ReLU, Add, Concat (channels), MaxPool, AveragePool, GlobalAveragePool, Flatten (axis 1), Reshape to (batch, features), Gemm, MatMul (+ Add of a bias), Identity, Dropout (inference), Constant";

impl Op {
    /// Whether the operation is an activation site.
    pub fn is_site(&self) -> bool {
        matches!(self, Op::Relu | Op::Relu6)
    }

    /// The parameters the operation reads, with their roles.
    pub fn params(&self) -> Vec<(&str, Role)> {
        match self {
            Op::Conv { weight, bias, .. } | Op::Linear { weight, bias } => {
                let mut v = vec![(weight.as_str(), Role::Weight)];
                if let Some(b) = bias {
                    v.push((b.as_str(), Role::Bias));
                }
                v
            }
            Op::BatchNorm {
                scale,
                bias,
                mean,
                var,
                ..
            } => vec![
                (scale.as_str(), Role::BnScale),
                (bias.as_str(), Role::BnBias),
                (mean.as_str(), Role::BnMean),
                (var.as_str(), Role::BnVar),
            ],
            _ => Vec::new(),
        }
    }
}

/// One operation of the graph: reads activation values `inputs`, writes `output`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Node {
    /// Unique name (sites are named after it).
    pub name: String,
    #[serde(flatten)]
    pub op: Op,
    pub inputs: Vec<String>,
    pub output: String,
    /// The output's shape without the batch: `(C, H, W)` or `(F)`.
    pub shape: Vec<i64>,
}

/// An imported network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Graph {
    pub input: String,
    /// `(C, H, W)`.
    pub input_shape: Vec<i64>,
    pub output: String,
    pub nodes: Vec<Node>,
    pub params: Vec<Param>,
}

/// Output size of a window over `size` (ONNX / PyTorch rule, `ceil` mode as PyTorch: a window
/// may not start in the right padding).
pub fn window_out(
    size: i64,
    k: i64,
    s: i64,
    pad_lo: i64,
    pad_hi: i64,
    dil: i64,
    ceil: bool,
) -> i64 {
    let span = size + pad_lo + pad_hi - dil * (k - 1) - 1;
    if span < 0 {
        return 0;
    }
    let mut out = if ceil {
        (span + s - 1) / s + 1
    } else {
        span / s + 1
    };
    if ceil && (out - 1) * s >= size + pad_lo {
        out -= 1;
    }
    out
}

/// The output shape of `op` on inputs of `shapes`, or why they disagree.
pub fn infer(
    op: &Op,
    shapes: &[&[i64]],
    param: &dyn Fn(&str) -> Option<Vec<i64>>,
) -> std::result::Result<Vec<i64>, String> {
    let one = |what: &str| -> std::result::Result<Vec<i64>, String> {
        match shapes {
            [s] => Ok(s.to_vec()),
            _ => Err(format!("{what} takes one input, got {}", shapes.len())),
        }
    };
    let map = |what: &str| -> std::result::Result<[i64; 3], String> {
        let s = one(what)?;
        match s[..] {
            [c, h, w] => Ok([c, h, w]),
            _ => Err(format!(
                "{what} needs a (batch, C, H, W) input, got (batch, {s:?})"
            )),
        }
    };
    let p = |n: &str| param(n).ok_or_else(|| format!("parameter `{n}` is missing"));
    match op {
        Op::Conv {
            weight,
            bias,
            stride,
            pads,
            dilation,
            groups,
        } => {
            let [c, h, w] = map("Conv")?;
            let ws = p(weight)?;
            if ws.len() != 4 {
                return Err(format!(
                    "weight `{weight}` has shape {ws:?}, expected (O, I, kh, kw)"
                ));
            }
            if *groups < 1 || c % groups != 0 || ws[0] % groups != 0 {
                return Err(format!(
                    "group = {groups} does not divide the {c} input and {} output channels",
                    ws[0]
                ));
            }
            if ws[1] * groups != c {
                return Err(format!(
                    "weight `{weight}` {ws:?} reads {} channels per group x {groups} groups, the input has {c}",
                    ws[1]
                ));
            }
            if let Some(b) = bias {
                let bs = p(b)?;
                if bs.iter().product::<i64>() != ws[0] {
                    return Err(format!("bias `{b}` has shape {bs:?}, expected ({})", ws[0]));
                }
            }
            if stride.iter().any(|&s| s < 1)
                || dilation.iter().any(|&d| d < 1)
                || pads.iter().any(|&q| q < 0)
            {
                return Err(format!("strides {stride:?}, dilations {dilation:?} and pads {pads:?} must be positive (pads non-negative)"));
            }
            let oh = window_out(h, ws[2], stride[0], pads[0], pads[2], dilation[0], false);
            let ow = window_out(w, ws[3], stride[1], pads[1], pads[3], dilation[1], false);
            if oh < 1 || ow < 1 {
                return Err(format!(
                    "a {}x{} kernel does not fit the {h}x{w} input",
                    ws[2], ws[3]
                ));
            }
            Ok(vec![ws[0], oh, ow])
        }
        Op::BatchNorm { .. } => {
            let s = one("BatchNormalization")?;
            for (n, _) in op.params() {
                let ps = p(n)?;
                if ps.iter().product::<i64>() != s[0] {
                    return Err(format!(
                        "parameter `{n}` has shape {ps:?}, the input has {} channels",
                        s[0]
                    ));
                }
            }
            Ok(s)
        }
        Op::Relu | Op::Relu6 => {
            let s = one("the activation")?;
            if s.len() != 3 {
                return Err(format!(
                    "an activation site needs a (batch, C, H, W) value, got (batch, {s:?}); activations after the classifier's flatten are not supported"
                ));
            }
            Ok(s)
        }
        Op::Add => match shapes {
            [a, b] if a == b => Ok(a.to_vec()),
            [a, b] => Err(format!(
                "Add of shapes {a:?} and {b:?} (no broadcasting between activations)"
            )),
            _ => Err(format!("Add takes two inputs, got {}", shapes.len())),
        },
        Op::Concat => {
            if shapes.is_empty() {
                return Err("Concat of no input".into());
            }
            let mut c = 0;
            for s in shapes {
                if s.len() != 3 || s[1..] != shapes[0][1..] {
                    return Err(format!(
                        "Concat along channels of shapes {:?}: every input needs the same (H, W)",
                        shapes
                    ));
                }
                c += s[0];
            }
            Ok(vec![c, shapes[0][1], shapes[0][2]])
        }
        Op::MaxPool(wd) | Op::AvgPool { window: wd, .. } => {
            let [c, h, w] = map("pooling")?;
            if wd.kernel.iter().chain(&wd.stride).any(|&v| v < 1) || wd.pads.iter().any(|&v| v < 0)
            {
                return Err(format!(
                    "pooling window {wd:?} must have positive kernel and strides"
                ));
            }
            if wd.pads[0] * 2 > wd.kernel[0] || wd.pads[1] * 2 > wd.kernel[1] {
                return Err(format!(
                    "pads {:?} exceed half the {:?} window",
                    wd.pads, wd.kernel
                ));
            }
            let oh = window_out(
                h,
                wd.kernel[0],
                wd.stride[0],
                wd.pads[0],
                wd.pads[2],
                1,
                wd.ceil,
            );
            let ow = window_out(
                w,
                wd.kernel[1],
                wd.stride[1],
                wd.pads[1],
                wd.pads[3],
                1,
                wd.ceil,
            );
            if oh < 1 || ow < 1 {
                return Err(format!(
                    "a {:?} window does not fit the {h}x{w} input",
                    wd.kernel
                ));
            }
            Ok(vec![c, oh, ow])
        }
        Op::GlobalAvgPool => {
            let [c, _, _] = map("GlobalAveragePool")?;
            Ok(vec![c, 1, 1])
        }
        Op::Flatten => Ok(vec![one("Flatten")?.iter().product()]),
        Op::Linear { weight, bias } => {
            let s = one("Gemm")?;
            if s.len() != 1 {
                return Err(format!(
                    "a fully connected layer needs a (batch, features) input, got (batch, {s:?}); add a Flatten"
                ));
            }
            let ws = p(weight)?;
            if ws.len() != 2 || ws[1] != s[0] {
                return Err(format!(
                    "weight `{weight}` has shape (out, in) = {ws:?}, the input has {} features",
                    s[0]
                ));
            }
            if let Some(b) = bias {
                let bs = p(b)?;
                if bs.iter().product::<i64>() != ws[0] {
                    return Err(format!("bias `{b}` has shape {bs:?}, expected ({})", ws[0]));
                }
            }
            Ok(vec![ws[0]])
        }
    }
}

impl Graph {
    /// Number of classes: the output's size.
    pub fn classes(&self) -> i64 {
        self.shape_of(&self.output)
            .map(|s| s.iter().product())
            .unwrap_or(0)
    }

    /// The shape of value `name`.
    pub fn shape_of(&self, name: &str) -> Option<&[i64]> {
        if name == self.input {
            return Some(&self.input_shape);
        }
        self.nodes
            .iter()
            .find(|n| n.output == name)
            .map(|n| n.shape.as_slice())
    }

    /// The nodes that are activation sites, in order.
    pub fn sites(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| n.op.is_site())
    }

    /// Check the graph as read back from a spec: every value produced once before it is read,
    /// every parameter declared once and used by one node, every shape what the operation gives.
    pub fn check(&self) -> Result<()> {
        let params: HashMap<&str, &Param> =
            self.params.iter().map(|p| (p.name.as_str(), p)).collect();
        if params.len() != self.params.len() {
            return Err(Error::Graph("a parameter is declared twice".into()));
        }
        let mut shapes: HashMap<&str, &[i64]> = HashMap::new();
        shapes.insert(&self.input, &self.input_shape);
        let mut used: HashMap<&str, &str> = HashMap::new();
        let mut names = std::collections::HashSet::new();
        for n in &self.nodes {
            if !names.insert(n.name.as_str()) {
                return Err(Error::Graph(format!(
                    "node name `{}` is used twice",
                    n.name
                )));
            }
            let mut ins = Vec::new();
            for i in &n.inputs {
                match shapes.get(i.as_str()) {
                    Some(s) => ins.push(*s),
                    None => {
                        return Err(Error::Missing {
                            node: n.name.clone(),
                            value: i.clone(),
                        })
                    }
                }
            }
            for (p, role) in n.op.params() {
                match params.get(p) {
                    Some(d) if d.role == role => {}
                    Some(d) => {
                        return Err(Error::Graph(format!(
                            "parameter `{p}` is a {:?} of node `{}` but declared as {:?}",
                            role, n.name, d.role
                        )))
                    }
                    None => {
                        return Err(Error::Graph(format!(
                            "node `{}` reads parameter `{p}` that is not declared",
                            n.name
                        )))
                    }
                }
                if let Some(other) = used.insert(p, &n.name) {
                    return Err(Error::Graph(format!(
                        "parameter `{p}` is read by nodes `{other}` and `{}`",
                        n.name
                    )));
                }
            }
            let got =
                infer(&n.op, &ins, &|p| params.get(p).map(|d| d.shape.clone())).map_err(|msg| {
                    Error::Shape {
                        node: n.name.clone(),
                        msg,
                    }
                })?;
            if got != n.shape {
                return Err(Error::Shape {
                    node: n.name.clone(),
                    msg: format!(
                        "declared output shape {:?}, the operation gives {got:?}",
                        n.shape
                    ),
                });
            }
            if shapes.insert(&n.output, &n.shape).is_some() {
                return Err(Error::Graph(format!(
                    "value `{}` is written twice",
                    n.output
                )));
            }
        }
        match shapes.get(self.output.as_str()) {
            Some(s) if s.len() == 1 => Ok(()),
            Some(s) => Err(Error::Graph(format!(
                "the output `{}` has shape (batch, {s:?}); privlin needs (batch, classes)",
                self.output
            ))),
            None => Err(Error::Graph(format!(
                "no node writes the output `{}`",
                self.output
            ))),
        }
    }

    /// The same graph reading `(C, size, size)` images: every shape inferred again (a graph
    /// whose classifier reads a fixed number of features refuses other sizes, naming the node).
    pub fn with_input_size(&self, size: i64) -> Result<Graph> {
        let mut g = self.clone();
        if g.input_shape.len() != 3 {
            return Err(Error::Graph(format!(
                "input shape {:?} is not (C, H, W)",
                g.input_shape
            )));
        }
        g.input_shape[1] = size;
        g.input_shape[2] = size;
        let params: HashMap<&str, Vec<i64>> = self
            .params
            .iter()
            .map(|p| (p.name.as_str(), p.shape.clone()))
            .collect();
        let mut shapes: HashMap<String, Vec<i64>> = HashMap::new();
        shapes.insert(g.input.clone(), g.input_shape.clone());
        for n in &mut g.nodes {
            let ins: Vec<&[i64]> = n
                .inputs
                .iter()
                .map(|v| shapes.get(v).map(|s| s.as_slice()).unwrap_or(&[]))
                .collect();
            n.shape =
                infer(&n.op, &ins, &|p| params.get(p).cloned()).map_err(|msg| Error::Shape {
                    node: n.name.clone(),
                    msg: format!("at input size {size}: {msg}"),
                })?;
            shapes.insert(n.output.clone(), n.shape.clone());
        }
        g.check()?;
        Ok(g)
    }

    /// Weight layers (convolutions and linear layers) on the longest path from the input to the
    /// output.
    pub fn weight_depth(&self) -> usize {
        let mut depth: HashMap<&str, usize> = HashMap::new();
        depth.insert(&self.input, 0);
        for n in &self.nodes {
            let d = n
                .inputs
                .iter()
                .map(|v| depth.get(v.as_str()).copied().unwrap_or(0))
                .max()
                .unwrap_or(0);
            let own = usize::from(matches!(n.op, Op::Conv { .. } | Op::Linear { .. }));
            depth.insert(&n.output, d + own);
        }
        depth.get(self.output.as_str()).copied().unwrap_or(0)
    }

    /// The batch norms that fold into the convolution before them (for serving: `W a`,
    /// `(b - mean) a + beta`): those whose input a convolution writes and nothing else reads.
    /// Convolution node index -> batch-norm node index.
    pub fn batchnorm_folds(&self) -> HashMap<usize, usize> {
        let mut readers: HashMap<&str, usize> = HashMap::new();
        let mut writer: HashMap<&str, usize> = HashMap::new();
        for (i, n) in self.nodes.iter().enumerate() {
            for v in &n.inputs {
                *readers.entry(v.as_str()).or_default() += 1;
            }
            writer.insert(&n.output, i);
        }
        let mut folds = HashMap::new();
        for (i, n) in self.nodes.iter().enumerate() {
            if !matches!(n.op, Op::BatchNorm { .. }) {
                continue;
            }
            let src = n.inputs[0].as_str();
            if let Some(&c) = writer.get(src) {
                if matches!(self.nodes[c].op, Op::Conv { .. })
                    && readers.get(src) == Some(&1)
                    && src != self.output
                {
                    folds.insert(c, i);
                }
            }
        }
        folds
    }
}
