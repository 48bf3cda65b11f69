//! Random exported models (residual CNNs with random weights and random active sets), for property
//! tests and the protocol benchmark.

use crate::model::{Arch, ModelFile, ModelJson, Op, FORMAT, VERSION};
use rand::seq::index::sample;
use rand::Rng;
use std::collections::{BTreeMap, HashMap};

/// Shape of a random model: stem conv, `blocks` basic residual blocks (the first of them strided
/// when `downsample`), average pooling, linear head.
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
    };
    let stem_in = if spec.input_site {
        b.relu("input_act", 0)
    } else {
        0
    };
    let mut x = b.conv("conv1", stem_in, spec.width, 3, 1);
    x = b.relu("act1", x);
    let mut c = spec.width;
    for blk in 0..spec.blocks {
        let stride = if blk == 0 && spec.downsample { 2 } else { 1 };
        let cout = if stride == 2 { 2 * c } else { c };
        let p = format!("layer.{blk}");
        let skip = x;
        let h = b.conv(&format!("{p}.conv1"), x, cout, 3, stride);
        let h = b.relu(&format!("{p}.act1"), h);
        let h = b.conv(&format!("{p}.conv2"), h, cout, 3, 1);
        let sc = if stride != 1 || cout != c {
            b.conv(&format!("{p}.downsample.0"), skip, cout, 1, stride)
        } else {
            skip
        };
        let dim = b.dims[h];
        let s = b.push(Op::Add { inputs: [h, sc] }, dim);
        x = b.relu(&format!("{p}.act2"), s);
        c = cout;
    }
    let [ch, h, w] = b.dims[x];
    let pool = b.push(
        Op::AvgPool {
            input: x,
            kernel: h.min(w),
            stride: h.min(w),
        },
        [ch, 1, 1],
    );
    let weight = b.tensor("fc.weight".into(), vec![spec.classes, ch], 1.0);
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
