//! Random exported models (residual CNNs with random weights and random active sets), for property
//! tests and the protocol benchmark.

use crate::model::{Arch, ModelFile, ModelJson, Op, FORMAT, VERSION};
use rand::seq::index::sample;
use rand::Rng;
use std::collections::{BTreeMap, HashMap};

/// Shape of a random model: stem conv, `blocks` basic residual blocks (the first of them strided
/// when `downsample`), average pooling, linear head; optionally with max-pooling (ResNet-9 /
/// VGG style) or pre-activation blocks (WRN style: channel affine and site before each block's
/// convolutions, none after the addition).
#[derive(Debug, Clone)]
pub struct Spec {
    pub input: [usize; 3],
    pub width: usize,
    pub blocks: usize,
    pub downsample: bool,
    pub classes: usize,
    /// Fraction of each site's positions that are active.
    pub keep: f64,
    /// A site directly on the input (a value at scale `f`: its truncation shift is 0).
    pub input_site: bool,
    /// A 2x2 max-pool after the stem's site, and a global max-pool (instead of the average) before
    /// the head.
    pub max_pool: bool,
    /// Pre-activation blocks: `affine -> site -> conv -> site -> conv (+ x)`, the 1x1 shortcut
    /// (where the shape changes) on the activated input, a final `affine -> site`.
    pub pre_activation: bool,
    /// torchvision's stem pooling: a 3x3 max-pool of stride 2 and padding 1 after the stem's
    /// site (instead of the 2x2 one of `max_pool`).
    pub padded_max_pool: bool,
    /// A 1x1 convolution branch concatenated with the stem's output along channels, before the
    /// blocks (the branch at scale 2f, the stem at f: the concatenation aligns them).
    pub concat: bool,
    /// Every site a ReLU6 (`max = 6`: garbled circuits only).
    pub relu6: bool,
}

impl Default for Spec {
    fn default() -> Self {
        Spec {
            input: [3, 8, 8],
            width: 4,
            blocks: 1,
            downsample: true,
            classes: 5,
            keep: 0.5,
            input_site: false,
            max_pool: false,
            pre_activation: false,
            padded_max_pool: false,
            concat: false,
            relu6: false,
        }
    }
}

struct Builder<'a, R: Rng> {
    rng: &'a mut R,
    ops: Vec<Op>,
    shapes: BTreeMap<String, Vec<usize>>,
    weights: HashMap<String, Vec<f32>>,
    active: HashMap<String, Vec<i64>>,
    counts: BTreeMap<String, usize>,
    dims: Vec<[usize; 3]>,
    keep: f64,
    relu6: bool,
}

impl<R: Rng> Builder<'_, R> {
    fn tensor(&mut self, name: String, shape: Vec<usize>, scale: f32) -> String {
        let n: usize = shape.iter().product();
        let v = (0..n).map(|_| self.rng.gen_range(-scale..scale)).collect();
        self.weights.insert(name.clone(), v);
        self.shapes.insert(name.clone(), shape);
        name
    }

    fn push(&mut self, op: Op, dim: [usize; 3]) -> usize {
        self.ops.push(op);
        self.dims.push(dim);
        self.ops.len()
    }

    fn conv(&mut self, name: &str, input: usize, cout: usize, k: usize, stride: usize) -> usize {
        let [c, h, w] = self.dims[input];
        let scale = (2.0 / (c * k * k) as f32).sqrt() * 1.7;
        let weight = self.tensor(format!("{name}.weight"), vec![cout, c, k, k], scale);
        let bias = self.tensor(format!("{name}.bias"), vec![cout], 0.3);
        let p = k / 2;
        let dim = [
            cout,
            (h + 2 * p - k) / stride + 1,
            (w + 2 * p - k) / stride + 1,
        ];
        self.push(
            Op::Conv {
                input,
                weight,
                bias,
                stride,
                padding: p,
            },
            dim,
        )
    }

    /// A channel affine with scales of both signs (a batch norm on its own) and a random bias.
    fn affine(&mut self, name: &str, input: usize) -> usize {
        let dim = self.dims[input];
        let weight = format!("{name}.weight");
        let w: Vec<f32> = (0..dim[0])
            .map(|_| {
                let m: f32 = self.rng.gen_range(0.2..1.5);
                if self.rng.gen_bool(0.3) {
                    -m
                } else {
                    m
                }
            })
            .collect();
        self.weights.insert(weight.clone(), w);
        self.shapes.insert(weight.clone(), vec![dim[0]]);
        let bias = self.tensor(format!("{name}.bias"), vec![dim[0]], 0.5);
        self.push(
            Op::ChannelAffine {
                input,
                weight,
                bias,
            },
            dim,
        )
    }

    fn padded_max_pool(&mut self, input: usize) -> usize {
        let [c, h, w] = self.dims[input];
        self.push(
            Op::MaxPool {
                input,
                kernel: 3,
                stride: 2,
                padding: 1,
            },
            [c, (h - 1) / 2 + 1, (w - 1) / 2 + 1],
        )
    }

    fn max_pool(&mut self, input: usize, kernel: usize) -> usize {
        let [c, h, w] = self.dims[input];
        self.push(
            Op::MaxPool {
                input,
                kernel,
                stride: kernel,
                padding: 0,
            },
            [c, (h - kernel) / kernel + 1, (w - kernel) / kernel + 1],
        )
    }

    fn relu(&mut self, site: &str, input: usize) -> usize {
        let dim = self.dims[input];
        let n = dim.iter().product::<usize>();
        let k = (n as f64 * self.keep).round() as usize;
        let mut idx: Vec<i64> = sample(self.rng, n, k)
            .into_iter()
            .map(|i| i as i64)
            .collect();
        idx.sort();
        self.counts.insert(site.to_string(), idx.len());
        self.active.insert(site.to_string(), idx);
        self.push(
            Op::Relu {
                input,
                site: site.to_string(),
                max: self.relu6.then_some(6.0),
            },
            dim,
        )
    }
}

/// A random model following `spec`.
pub fn model<R: Rng>(rng: &mut R, spec: &Spec) -> ModelFile {
    let mut b = Builder {
        rng,
        ops: Vec::new(),
        shapes: BTreeMap::new(),
        weights: HashMap::new(),
        active: HashMap::new(),
        counts: BTreeMap::new(),
        dims: vec![spec.input],
        keep: spec.keep,
        relu6: spec.relu6,
    };
    let stem_in = if spec.input_site {
        b.relu("input_act", 0)
    } else {
        0
    };
    let pre = spec.pre_activation;
    let mut x = b.conv("conv1", stem_in, spec.width, 3, 1);
    if !pre {
        x = b.relu("act1", x);
    }
    if spec.max_pool && b.dims[x][1] >= 2 && b.dims[x][2] >= 2 {
        x = b.max_pool(x, 2);
    }
    if spec.padded_max_pool {
        x = b.padded_max_pool(x);
    }
    let mut c = spec.width;
    if spec.concat {
        let branch = b.conv("branch", x, spec.width, 1, 1);
        let [c0, h, w] = b.dims[x];
        x = b.push(
            Op::Concat {
                inputs: vec![x, branch],
            },
            [c0 + spec.width, h, w],
        );
        c += spec.width;
    }
    for blk in 0..spec.blocks {
        let stride = if blk == 0 && spec.downsample { 2 } else { 1 };
        let cout = if stride == 2 { 2 * c } else { c };
        let p = format!("layer.{blk}");
        let shortcut = stride != 1 || cout != c;
        let (h_in, skip) = if pre {
            let a = b.affine(&format!("{p}.bn1"), x);
            let a = b.relu(&format!("{p}.relu1"), a);
            (a, if shortcut { a } else { x })
        } else {
            (x, x)
        };
        let h = b.conv(&format!("{p}.conv1"), h_in, cout, 3, stride);
        let h = b.relu(&format!("{p}.act1"), h);
        let h = b.conv(&format!("{p}.conv2"), h, cout, 3, 1);
        let sc = if shortcut {
            b.conv(&format!("{p}.downsample.0"), skip, cout, 1, stride)
        } else {
            skip
        };
        let dim = b.dims[h];
        let s = b.push(Op::Add { inputs: [h, sc] }, dim);
        x = if pre {
            s
        } else {
            b.relu(&format!("{p}.act2"), s)
        };
        c = cout;
    }
    if pre {
        let a = b.affine("bn1", x);
        x = b.relu("relu", a);
    }
    let [ch, h, w] = b.dims[x];
    let pool = if spec.max_pool && h.max(w) <= crate::model::MAX_POOL_KERNEL {
        b.max_pool(x, h.min(w))
    } else {
        b.push(
            Op::AvgPool {
                input: x,
                kernel: h.min(w),
                stride: h.min(w),
            },
            [ch, 1, 1],
        )
    };
    let feats: usize = b.dims[pool].iter().product();
    let weight = b.tensor("fc.weight".into(), vec![spec.classes, feats], 1.0);
    let bias = b.tensor("fc.bias".into(), vec![spec.classes], 0.3);
    b.push(
        Op::Linear {
            input: pool,
            weight,
            bias,
        },
        [spec.classes, 1, 1],
    );
    let json = ModelJson {
        format: FORMAT.into(),
        version: VERSION,
        name: "synthetic".into(),
        input_shape: spec.input,
        classes: spec.classes,
        normalize: None,
        ops: b.ops,
        weight_shapes: b.shapes,
        active_counts: b.counts,
    };
    let arch = Arch::new(json, b.active).expect("synthetic model is valid");
    ModelFile {
        arch,
        weights: b.weights,
    }
}
