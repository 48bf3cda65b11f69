//! A network built from an imported graph ([`privlin_onnx::Graph`], `privlin import`): the same
//! operations on libtorch, parameters in the var store under their (sanitized) ONNX names, and a
//! site at every `Relu` and `Clip(0, 6)` named after its node, so every method of privlin works
//! on it as on a zoo model.
//!
//! Segments follow the graph's topological order: segment `i` runs the nodes after site `i - 1`
//! up to site `i`; the values a later segment still reads travel in [`State::live`].

use super::forward::{Forward, LayerKind};
use super::site::{Activation, SiteKind};
use super::{Net, State};
use privlin_onnx::{Graph, Op, Role};
use std::collections::HashMap;
use tch::{nn, Tensor};

#[derive(Debug)]
pub struct GraphNet {
    graph: Graph,
    params: HashMap<String, Tensor>,
    /// Node ranges of the segments (one per site, then the head).
    segments: Vec<std::ops::Range<usize>>,
    /// Per node: the values it reads (0 is the input, node `j` writes value `j + 1`).
    reads: Vec<Vec<usize>>,
    /// Per value: the last node that reads it (`nodes.len()` for the output).
    last_read: Vec<usize>,
    output: usize,
    /// Per site node: its kind for the counting convention.
    kinds: HashMap<usize, SiteKind>,
}

/// Create the variable named `a.b.c` (path `a.b`, variable `c`) with `make`.
fn create(root: &nn::Path, name: &str, make: impl FnOnce(&nn::Path, &str) -> Tensor) -> Tensor {
    let mut parts: Vec<&str> = name.split('.').collect();
    let last = parts.pop().unwrap_or("param");
    match parts.split_first() {
        None => make(root, last),
        Some((first, rest)) => {
            let p = rest.iter().fold(root / *first, |p, s| &p / *s);
            make(&p, last)
        }
    }
}

impl GraphNet {
    pub fn new(root: &nn::Path, graph: &Graph) -> Self {
        // The fan-in of each weight layer's parameters: its weight's `I k k` (or `I`), which
        // PyTorch's default initialization of the weight and the bias both read.
        let shapes: HashMap<&str, &[i64]> = graph
            .params
            .iter()
            .map(|p| (p.name.as_str(), p.shape.as_slice()))
            .collect();
        let mut fans: HashMap<&str, i64> = HashMap::new();
        for n in &graph.nodes {
            if let Op::Conv { weight, bias, .. } | Op::Linear { weight, bias } = &n.op {
                let fan = shapes[weight.as_str()]
                    .iter()
                    .skip(1)
                    .product::<i64>()
                    .max(1);
                fans.insert(weight, fan);
                if let Some(b) = bias {
                    fans.insert(b, fan);
                }
            }
        }
        let mut params = HashMap::new();
        for p in &graph.params {
            let t = create(root, &p.name, |path, last| match p.role {
                // PyTorch's default for Conv2d and Linear: kaiming-uniform with a = sqrt(5),
                // i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)); the bias likewise.
                Role::Weight | Role::Bias => {
                    let fan = fans.get(p.name.as_str()).copied().unwrap_or(1);
                    let bound = 1.0 / (fan as f64).sqrt();
                    path.var(
                        last,
                        &p.shape,
                        nn::Init::Uniform {
                            lo: -bound,
                            up: bound,
                        },
                    )
                }
                Role::BnScale => path.ones(last, &p.shape),
                Role::BnBias => path.zeros(last, &p.shape),
                Role::BnMean => path.zeros_no_train(last, &p.shape),
                Role::BnVar => path.ones_no_train(last, &p.shape),
            });
            params.insert(p.name.clone(), t);
        }
        let mut index: HashMap<&str, usize> = HashMap::new();
        index.insert(&graph.input, 0);
        for (j, n) in graph.nodes.iter().enumerate() {
            index.insert(&n.output, j + 1);
        }
        let reads: Vec<Vec<usize>> = graph
            .nodes
            .iter()
            .map(|n| n.inputs.iter().map(|v| index[v.as_str()]).collect())
            .collect();
        let mut last_read = vec![0usize; graph.nodes.len() + 1];
        for (j, r) in reads.iter().enumerate() {
            for &v in r {
                last_read[v] = last_read[v].max(j);
            }
        }
        let output = index[graph.output.as_str()];
        last_read[output] = graph.nodes.len();
        let mut segments = Vec::new();
        let mut start = 0;
        let mut kinds = HashMap::new();
        let mut weights_before = 0;
        for (j, n) in graph.nodes.iter().enumerate() {
            match n.op {
                Op::Conv { .. } | Op::Linear { .. } => weights_before += 1,
                Op::Relu | Op::Relu6 => {
                    let after_add = reads[j]
                        .first()
                        .is_some_and(|&v| v > 0 && graph.nodes[v - 1].op == Op::Add);
                    let kind = if segments.is_empty() && weights_before <= 1 {
                        SiteKind::Stem
                    } else if after_add {
                        SiteKind::PostAdd
                    } else {
                        SiteKind::Block
                    };
                    kinds.insert(j, kind);
                    segments.push(start..j + 1);
                    start = j + 1;
                }
                _ => {}
            }
        }
        segments.push(start..graph.nodes.len());
        GraphNet {
            graph: graph.clone(),
            params,
            segments,
            reads,
            last_read,
            output,
            kinds,
        }
    }

    fn p(&self, name: &str) -> &Tensor {
        &self.params[name]
    }

    fn run(&self, j: usize, x: &[&Tensor], f: &mut Forward) -> Tensor {
        let n = &self.graph.nodes[j];
        match &n.op {
            Op::Conv {
                weight,
                bias,
                stride,
                pads,
                dilation,
                groups,
            } => {
                let w = self.p(weight);
                let b = bias.as_ref().map(|b| self.p(b));
                let symmetric = pads[0] == pads[2] && pads[1] == pads[3];
                let y = if symmetric {
                    x[0].conv2d(w, b, stride, [pads[0], pads[1]], dilation, *groups)
                } else {
                    x[0].constant_pad_nd([pads[1], pads[3], pads[0], pads[2]])
                        .conv2d(w, b, stride, [0, 0], dilation, *groups)
                };
                if f.tracing() {
                    let ws = w.size();
                    let macs = n.shape.iter().product::<i64>() * ws[1] * ws[2] * ws[3];
                    f.record_layer(&n.name, LayerKind::Conv, &y, macs);
                }
                y
            }
            Op::BatchNorm {
                scale,
                bias,
                mean,
                var,
                epsilon,
            } => Tensor::batch_norm(
                x[0],
                Some(self.p(scale)),
                Some(self.p(bias)),
                Some(self.p(mean)),
                Some(self.p(var)),
                f.train,
                0.1,
                *epsilon,
                false,
            ),
            Op::Relu => f.site(&n.name, self.kinds[&j], x[0]),
            Op::Relu6 => f.site_as(&n.name, self.kinds[&j], Activation::Relu6, x[0]),
            Op::Add => x[0] + x[1],
            Op::Concat => Tensor::cat(x, 1),
            Op::MaxPool(w) => {
                let symmetric = w.pads[0] == w.pads[2] && w.pads[1] == w.pads[3];
                if symmetric {
                    x[0].max_pool2d(w.kernel, w.stride, [w.pads[0], w.pads[1]], [1, 1], w.ceil)
                } else {
                    x[0].pad(
                        [w.pads[1], w.pads[3], w.pads[0], w.pads[2]],
                        "constant",
                        f64::NEG_INFINITY,
                    )
                    .max_pool2d(w.kernel, w.stride, [0, 0], [1, 1], w.ceil)
                }
            }
            Op::AvgPool {
                window: w,
                count_include_pad,
            } => {
                let symmetric = w.pads[0] == w.pads[2] && w.pads[1] == w.pads[3];
                if symmetric {
                    x[0].avg_pool2d(
                        w.kernel,
                        w.stride,
                        [w.pads[0], w.pads[1]],
                        w.ceil,
                        *count_include_pad,
                        None,
                    )
                } else {
                    // Asymmetric padding: sum over the zero-padded map divided by the count
                    // of the window's cells (all of them, or the real ones).
                    let pad = [w.pads[1], w.pads[3], w.pads[0], w.pads[2]];
                    let sum = x[0].constant_pad_nd(pad).avg_pool2d(
                        w.kernel,
                        w.stride,
                        [0, 0],
                        w.ceil,
                        true,
                        None,
                    );
                    if *count_include_pad {
                        sum
                    } else {
                        let ones = x[0].ones_like().narrow(1, 0, 1);
                        let cells = ones.constant_pad_nd(pad).avg_pool2d(
                            w.kernel,
                            w.stride,
                            [0, 0],
                            w.ceil,
                            true,
                            None,
                        );
                        sum / cells
                    }
                }
            }
            Op::GlobalAvgPool => x[0].adaptive_avg_pool2d([1, 1]),
            Op::Flatten => x[0].flatten(1, -1),
            Op::Linear { weight, bias } => {
                let w = self.p(weight);
                let y = x[0].linear(w, bias.as_ref().map(|b| self.p(b)));
                if f.tracing() {
                    let ws = w.size();
                    f.record_layer(&n.name, LayerKind::Linear, &y, ws[0] * ws[1]);
                }
                y
            }
        }
    }

    /// The imported graph.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }
}

impl Net for GraphNet {
    fn segments(&self) -> usize {
        self.segments.len()
    }

    fn segment(&self, i: usize, s: &mut State, f: &mut Forward) {
        let mut vals: HashMap<usize, Tensor> = s.live.drain(..).collect();
        if i == 0 {
            vals.insert(0, s.x.shallow_clone());
        }
        let range = self.segments[i].clone();
        let mut last = None;
        for j in range.clone() {
            let y = {
                let ins: Vec<&Tensor> = self.reads[j].iter().map(|v| &vals[v]).collect();
                self.run(j, &ins, f)
            };
            for &v in &self.reads[j] {
                if self.last_read[v] == j {
                    vals.remove(&v);
                }
            }
            vals.insert(j + 1, y);
            last = Some(j + 1);
        }
        let end = range.end;
        let is_head = i + 1 == self.segments.len();
        s.x = if is_head {
            vals.remove(&self.output)
                .expect("the graph's output is computed by its last segment")
        } else {
            let v = last.expect("a site segment ends with its site");
            vals[&v].shallow_clone()
        };
        let mut live: Vec<(usize, Tensor)> = vals
            .into_iter()
            .filter(|(v, _)| !is_head && self.last_read[*v] >= end)
            .collect();
        live.sort_by_key(|(v, _)| *v);
        s.live = live;
    }
}
