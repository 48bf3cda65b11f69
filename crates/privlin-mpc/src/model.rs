//! The export format that privlin writes and the two parties read: `model.json` (the public
//! architecture: operations, shapes, active ReLU positions per site) and `weights.safetensors`
//! (float32 weights with batch norm already folded into the preceding convolution, and
//! `active.<site>`: sorted int64 flat `(C, H, W)` indices of each site's kept ReLUs).
//!
//! Values are numbered: `0` is the input, operation `i` produces value `i + 1`.

use crate::error::{MpcError, Result};
use crate::ring::Ring;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

pub const FORMAT: &str = "privlin-pi";
pub const VERSION: u32 = 1;
pub const MODEL_JSON: &str = "model.json";
pub const WEIGHTS: &str = "weights.safetensors";
/// The largest value or weight tensor an architecture may declare, in elements.
pub const MAX_VALUE_ELEMENTS: usize = 1 << 26;
/// The largest max-pool window side (a global max over an `8 x 8` map; the circuit grows with
/// the window's area).
pub const MAX_POOL_KERNEL: usize = 8;

fn is_zero(v: &usize) -> bool {
    *v == 0
}

/// One operation of the exported graph.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// 2-D convolution, weight `(O, I, k, k)`, bias `(O)`, zero padding.
    Conv {
        input: usize,
        weight: String,
        bias: String,
        stride: usize,
        padding: usize,
    },
    /// Fully connected layer on the flattened input, weight `(O, I)`, bias `(O)`.
    Linear {
        input: usize,
        weight: String,
        bias: String,
    },
    /// Average pooling (no padding); its `1 / k^2` is folded into the consuming layer's weights,
    /// so that on shares it is an exact sum.
    AvgPool {
        input: usize,
        kernel: usize,
        stride: usize,
    },
    /// Max pooling of `kernel x kernel` windows: a garbled circuit over the shares of each window
    /// returns a fresh sharing of its maximum (scale unchanged). With `padding`, windows reach
    /// `padding` cells past each border (at most half the kernel, as in PyTorch) and a cell
    /// outside the map repeats the nearest cell inside it, which lies in the same window: the
    /// maximum is that of the window's cells inside the map, as with -inf padding.
    MaxPool {
        input: usize,
        kernel: usize,
        stride: usize,
        #[serde(default, skip_serializing_if = "is_zero")]
        padding: usize,
    },
    /// Per-channel affine map `y[c] = w[c] x[c] + b[c]`, weight `(C)` and bias `(C)`: a diagonal
    /// weight layer (a batch norm no convolution precedes, e.g. WRN's pre-activation one). Its
    /// input is first brought to scale `f` by local truncation of the shares (rounding to
    /// nearest, as at a site's identity positions), so that, with weights at `f`, the output is at
    /// `2f` like a convolution's and the next site truncates by `f`.
    ChannelAffine {
        input: usize,
        weight: String,
        bias: String,
    },
    /// Residual addition.
    Add { inputs: [usize; 2] },
    /// Concatenation along channels (every input of the same height and width), aligned to the
    /// largest input scale: local on the shares.
    Concat { inputs: Vec<usize> },
    /// Activation site: ReLU at the listed active positions, identity elsewhere. With `max`,
    /// the active positions compute `min(ReLU(x), max)` (ReLU6: `max = 6`, an imported
    /// `Clip(0, 6)`), on the garbled circuits only.
    Relu {
        input: usize,
        site: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max: Option<f64>,
    },
}

impl Op {
    /// A site's upper bound in the ring at scale `frac` (`round(max 2^frac)`), if it has one.
    pub fn relu_cap(&self, frac: u32) -> Option<u64> {
        match self {
            Op::Relu { max: Some(m), .. } => Some((m * f64::powi(2.0, frac as i32)).round() as u64),
            _ => None,
        }
    }

    pub fn inputs(&self) -> Vec<usize> {
        match self {
            Op::Conv { input, .. }
            | Op::Linear { input, .. }
            | Op::AvgPool { input, .. }
            | Op::MaxPool { input, .. }
            | Op::ChannelAffine { input, .. }
            | Op::Relu { input, .. } => vec![*input],
            Op::Add { inputs } => inputs.to_vec(),
            Op::Concat { inputs } => inputs.clone(),
        }
    }
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Conv { .. } => "conv",
            Op::Linear { .. } => "linear",
            Op::AvgPool { .. } => "avg_pool",
            Op::MaxPool { .. } => "max_pool",
            Op::ChannelAffine { .. } => "channel_affine",
            Op::Add { .. } => "add",
            Op::Concat { .. } => "concat",
            Op::Relu { .. } => "relu",
        }
    }

    /// A layer with server weights (`W x + b`), whose offline phase gives the client `W v_C - s`.
    pub fn is_weight_layer(&self) -> bool {
        matches!(
            self,
            Op::Conv { .. } | Op::Linear { .. } | Op::ChannelAffine { .. }
        )
    }

    /// The weight and bias tensor names of a weight layer.
    pub fn weight_names(&self) -> Option<(&str, &str)> {
        match self {
            Op::Conv { weight, bias, .. }
            | Op::Linear { weight, bias, .. }
            | Op::ChannelAffine { weight, bias, .. } => Some((weight, bias)),
            _ => None,
        }
    }
}

/// Input normalization the client applies before encoding (not part of the two-party computation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Normalize {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

/// `model.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelJson {
    pub format: String,
    pub version: u32,
    pub name: String,
    /// `(C, H, W)` of one input.
    pub input_shape: [usize; 3],
    pub classes: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalize: Option<Normalize>,
    pub ops: Vec<Op>,
    /// Weight tensor shapes, so the client knows the architecture without the weights.
    pub weight_shapes: BTreeMap<String, Vec<usize>>,
    /// Active positions per site.
    pub active_counts: BTreeMap<String, usize>,
}

/// The public part of a model: architecture and active ReLU positions. The server sends this to
/// the client at the start of a session.
#[derive(Debug, Clone, PartialEq)]
pub struct Arch {
    pub json: ModelJson,
    /// Sorted, distinct flat indices of the active positions of each relu op (by op index).
    pub active: HashMap<usize, Vec<u32>>,
    pub shapes: Vec<Vec<usize>>,
}

/// A full export: architecture plus float weights.
#[derive(Debug, Clone)]
pub struct ModelFile {
    pub arch: Arch,
    pub weights: HashMap<String, Vec<f32>>,
}

/// Elements of a shape, saturating (a peer's shapes may be absurd; they are refused, not wrapped).
fn numel(s: &[usize]) -> usize {
    s.iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .unwrap_or(usize::MAX)
}

impl Arch {
    /// Validates the graph and infers every value's shape; errors name the op and field.
    pub fn new(json: ModelJson, active: HashMap<String, Vec<i64>>) -> Result<Self> {
        if json.format != FORMAT || json.version != VERSION {
            return Err(MpcError::model(format!(
                "format `{}` version {} is not {FORMAT} version {VERSION}",
                json.format, json.version
            )));
        }
        if json.ops.is_empty() || json.ops.len() > 100_000 {
            return Err(MpcError::model(format!("{} ops", json.ops.len())));
        }
        let mut shapes: Vec<Vec<usize>> = vec![json.input_shape.to_vec()];
        for (name, shape) in &json.weight_shapes {
            let n = numel(shape);
            if shape.is_empty() || n == 0 || n > MAX_VALUE_ELEMENTS {
                return Err(MpcError::model(format!(
                    "weight `{name}`: shape {shape:?} is empty or above {MAX_VALUE_ELEMENTS} elements"
                )));
            }
        }
        if numel(&shapes[0]) == 0 || numel(&shapes[0]) > MAX_VALUE_ELEMENTS {
            return Err(MpcError::model(format!(
                "input_shape {:?} is empty or too large",
                json.input_shape
            )));
        }
        let mut act = HashMap::new();
        let wshape = |name: &str, i: usize| -> Result<&Vec<usize>> {
            json.weight_shapes.get(name).ok_or_else(|| {
                MpcError::model(format!(
                    "op {i}: weight `{name}` missing from weight_shapes"
                ))
            })
        };
        for (i, op) in json.ops.iter().enumerate() {
            for v in op.inputs() {
                if v > i {
                    return Err(MpcError::model(format!(
                        "op {i} ({}): input value {v} is not produced before it",
                        op.kind()
                    )));
                }
            }
            let bad = |msg: String| MpcError::model(format!("op {i} ({}): {msg}", op.kind()));
            let out: Vec<usize> = match op {
                Op::Conv {
                    input,
                    weight,
                    bias,
                    stride,
                    padding,
                } => {
                    let s = &shapes[*input];
                    let w = wshape(weight, i)?;
                    let b = wshape(bias, i)?;
                    if s.len() != 3 || w.len() != 4 || w[1] != s[0] || w[2] != w[3] {
                        return Err(bad(format!("weight {w:?} does not fit input {s:?}")));
                    }
                    if b != &vec![w[0]] || *stride == 0 || w[2] == 0 {
                        return Err(bad(format!("bias {b:?} / stride {stride} invalid")));
                    }
                    if *padding >= w[2] || *stride > 64 {
                        return Err(bad(format!(
                            "padding {padding} / stride {stride} out of range for kernel {}",
                            w[2]
                        )));
                    }
                    let (h, wd) = (s[1] + 2 * padding, s[2] + 2 * padding);
                    if h < w[2] || wd < w[2] {
                        return Err(bad(format!("kernel {} larger than padded input", w[2])));
                    }
                    vec![w[0], (h - w[2]) / stride + 1, (wd - w[2]) / stride + 1]
                }
                Op::Linear {
                    input,
                    weight,
                    bias,
                } => {
                    let n = numel(&shapes[*input]);
                    let w = wshape(weight, i)?;
                    let b = wshape(bias, i)?;
                    if w.len() != 2 || w[1] != n || b != &vec![w[0]] {
                        return Err(bad(format!(
                            "weight {w:?} / bias {b:?} do not fit {n} inputs"
                        )));
                    }
                    vec![w[0]]
                }
                Op::AvgPool {
                    input,
                    kernel,
                    stride,
                }
                | Op::MaxPool {
                    input,
                    kernel,
                    stride,
                    ..
                } => {
                    let padding = match op {
                        Op::MaxPool { padding, .. } => *padding,
                        _ => 0,
                    };
                    if 2 * padding > *kernel {
                        return Err(bad(format!(
                            "padding {padding} above half the {kernel}x{kernel} window"
                        )));
                    }
                    let s = &shapes[*input];
                    // A max-pool window is one garbled circuit: its area is bounded.
                    let max = match op {
                        Op::MaxPool { .. } => MAX_POOL_KERNEL,
                        _ => usize::MAX,
                    };
                    if s.len() != 3
                        || *kernel == 0
                        || *kernel > max
                        || *stride == 0
                        || s[1] + 2 * padding < *kernel
                        || s[2] + 2 * padding < *kernel
                    {
                        return Err(bad(format!(
                            "kernel {kernel} stride {stride} padding {padding} on {s:?} (max-pool \
                             windows at most {MAX_POOL_KERNEL})"
                        )));
                    }
                    vec![
                        s[0],
                        (s[1] + 2 * padding - kernel) / stride + 1,
                        (s[2] + 2 * padding - kernel) / stride + 1,
                    ]
                }
                Op::ChannelAffine {
                    input,
                    weight,
                    bias,
                } => {
                    let s = &shapes[*input];
                    let w = wshape(weight, i)?;
                    let b = wshape(bias, i)?;
                    if s.len() != 3 || w != &vec![s[0]] || b != &vec![s[0]] {
                        return Err(bad(format!(
                            "weight {w:?} / bias {b:?} do not fit {s:?} (one per channel)"
                        )));
                    }
                    s.clone()
                }
                Op::Concat { inputs } => {
                    let first = &shapes[inputs
                        .first()
                        .copied()
                        .ok_or_else(|| bad("no input".into()))?];
                    if inputs.len() > 64
                        || inputs.iter().any(|&v| {
                            shapes[v].len() != 3 || first.len() != 3 || shapes[v][1..] != first[1..]
                        })
                    {
                        return Err(bad(format!(
                            "inputs {:?} are not 1 to 64 maps of one height and width",
                            inputs.iter().map(|&v| &shapes[v]).collect::<Vec<_>>()
                        )));
                    }
                    vec![
                        inputs.iter().map(|&v| shapes[v][0]).sum(),
                        first[1],
                        first[2],
                    ]
                }
                Op::Add { inputs } => {
                    if shapes[inputs[0]] != shapes[inputs[1]] {
                        return Err(bad(format!(
                            "shapes {:?} and {:?} differ",
                            shapes[inputs[0]], shapes[inputs[1]]
                        )));
                    }
                    shapes[inputs[0]].clone()
                }
                Op::Relu { input, site, max } => {
                    if max.is_some_and(|m| !(m.is_finite() && m > 0.0 && m < 1e6)) {
                        return Err(bad(format!(
                            "site `{site}`: upper bound {max:?} is not a positive number"
                        )));
                    }
                    let n = numel(&shapes[*input]);
                    let idx = active.get(site).ok_or_else(|| {
                        bad(format!("no active positions `active.{site}` in the export"))
                    })?;
                    let mut prev: i64 = -1;
                    for &j in idx {
                        if j <= prev || j >= n as i64 {
                            return Err(bad(format!(
                                "site `{site}`: active index {j} out of order or outside 0..{n}"
                            )));
                        }
                        prev = j;
                    }
                    if json.active_counts.get(site) != Some(&idx.len()) {
                        return Err(bad(format!(
                            "site `{site}`: {} active indices, model.json says {:?}",
                            idx.len(),
                            json.active_counts.get(site)
                        )));
                    }
                    act.insert(i, idx.iter().map(|&j| j as u32).collect());
                    shapes[*input].clone()
                }
            };
            // A peer's architecture sizes our buffers: bound every value before anything is
            // allocated for it (2^26 ring elements, 512 MiB, is far above any CIFAR/ImageNet CNN).
            let n = numel(&out);
            if n == 0 || n > MAX_VALUE_ELEMENTS {
                return Err(bad(format!(
                    "output shape {out:?} is empty or above {MAX_VALUE_ELEMENTS} elements"
                )));
            }
            shapes.push(out);
        }
        // Average pooling is folded into its consumers, which must all be weight layers: one
        // pass over the ops' inputs (a peer's hello may carry many ops; the check was quadratic).
        for (j, o) in json.ops.iter().enumerate() {
            if matches!(o, Op::Conv { .. } | Op::Linear { .. }) {
                continue;
            }
            for v in o.inputs() {
                if let Some(i) = v.checked_sub(1) {
                    if let Some(Op::AvgPool { .. }) = json.ops.get(i) {
                        return Err(MpcError::model(format!(
                            "op {j} ({}) consumes average pooling op {i}; only conv/linear may",
                            o.kind()
                        )));
                    }
                }
            }
        }
        let out = shapes.last().unwrap();
        if numel(out) != json.classes {
            return Err(MpcError::model(format!(
                "last op produces {out:?}, expected {} classes",
                json.classes
            )));
        }
        Ok(Arch {
            json,
            active: act,
            shapes,
        })
    }

    pub fn ops(&self) -> &[Op] {
        &self.json.ops
    }

    pub fn numel(&self, value: usize) -> usize {
        numel(&self.shapes[value])
    }

    pub fn active_total(&self) -> usize {
        self.active.values().map(|v| v.len()).sum()
    }

    /// The op that produces `value` (`None` for the input).
    pub fn producer(&self, value: usize) -> Option<&Op> {
        value.checked_sub(1).map(|i| &self.json.ops[i])
    }

    /// Divisor folded into a weight layer reading `input` (the pooled area of an AvgPool, else 1).
    pub fn pool_divisor(&self, input: usize) -> usize {
        match self.producer(input) {
            Some(Op::AvgPool { kernel, .. }) => kernel * kernel,
            _ => 1,
        }
    }

    /// Serializes the public architecture (what the server sends in its hello).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = crate::wire::Writer::new();
        w.bytes(&serde_json::to_vec(&self.json).expect("serializable"));
        let mut ops: Vec<_> = self.active.keys().copied().collect();
        ops.sort();
        w.u64(ops.len() as u64);
        for i in ops {
            w.u64(i as u64);
            let a = &self.active[&i];
            w.u64(a.len() as u64);
            for &j in a {
                w.u32(j);
            }
        }
        w.finish()
    }

    /// Parses and validates an architecture sent by a peer.
    pub fn from_bytes(buf: &[u8]) -> Result<Self> {
        let mut r = crate::wire::Reader::new(buf, "hello: architecture");
        let json: ModelJson = serde_json::from_slice(r.bytes()?)
            .map_err(|e| MpcError::malformed("hello: architecture", e.to_string()))?;
        let n = r.u64()?;
        let mut active = HashMap::new();
        for _ in 0..n {
            let i = r.u64()? as usize;
            let m = r.u64()?;
            if m > (buf.len() as u64) / 4 {
                return Err(MpcError::malformed("hello: active", format!("{m} indices")));
            }
            let mut v = Vec::with_capacity(m as usize);
            for _ in 0..m {
                v.push(r.u32()? as i64);
            }
            let site = match json.ops.get(i) {
                Some(Op::Relu { site, .. }) => site.clone(),
                _ => {
                    return Err(MpcError::malformed(
                        "hello: active",
                        format!("op {i} is not a relu"),
                    ))
                }
            };
            active.insert(site, v);
        }
        r.end()?;
        Arch::new(json, active)
            .map_err(|e| MpcError::malformed("hello: architecture", e.to_string()))
    }
}

fn tensor_f32(view: &TensorView, name: &str, path: &Path) -> Result<Vec<f32>> {
    if view.dtype() != Dtype::F32 {
        return Err(MpcError::file(
            path,
            format!("`{name}` is {:?}, expected F32", view.dtype()),
        ));
    }
    Ok(view
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect())
}

impl ModelFile {
    /// Reads `dir/model.json` and `dir/weights.safetensors`.
    pub fn load(dir: &Path) -> Result<Self> {
        let jp = dir.join(MODEL_JSON);
        let text = std::fs::read(&jp).map_err(|e| MpcError::file(&jp, e))?;
        let json: ModelJson = serde_json::from_slice(&text).map_err(|e| MpcError::file(&jp, e))?;
        let wp = dir.join(WEIGHTS);
        let raw = std::fs::read(&wp).map_err(|e| MpcError::file(&wp, e))?;
        let st =
            SafeTensors::deserialize(&raw).map_err(|e| MpcError::file(&wp, format!("{e:?}")))?;
        let mut active = HashMap::new();
        let mut weights = HashMap::new();
        for (name, view) in st.tensors() {
            if let Some(site) = name.strip_prefix("active.") {
                if view.dtype() != Dtype::I64 {
                    return Err(MpcError::file(&wp, format!("`{name}` must be I64")));
                }
                let v = view
                    .data()
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
                    .collect();
                active.insert(site.to_string(), v);
            } else {
                let want = json.weight_shapes.get(&name).ok_or_else(|| {
                    MpcError::file(
                        &wp,
                        format!("`{name}` is not in model.json's weight_shapes"),
                    )
                })?;
                if view.shape() != want.as_slice() {
                    return Err(MpcError::file(
                        &wp,
                        format!(
                            "`{name}` has shape {:?}, model.json says {want:?}",
                            view.shape()
                        ),
                    ));
                }
                weights.insert(name.clone(), tensor_f32(&view, &name, &wp)?);
            }
        }
        for name in json.weight_shapes.keys() {
            if !weights.contains_key(name) {
                return Err(MpcError::file(&wp, format!("weight `{name}` is missing")));
            }
        }
        let arch = Arch::new(json, active).map_err(|e| MpcError::file(&jp, e))?;
        Ok(ModelFile { arch, weights })
    }

    /// Writes the export atomically (temporary files, then rename).
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| MpcError::file(dir, e))?;
        let mut data: Vec<(String, Vec<u8>, Dtype, Vec<usize>)> = Vec::new();
        for (name, w) in &self.weights {
            let bytes = w.iter().flat_map(|x| x.to_le_bytes()).collect();
            data.push((
                name.clone(),
                bytes,
                Dtype::F32,
                self.arch.json.weight_shapes[name].clone(),
            ));
        }
        for (i, idx) in &self.arch.active {
            if let Op::Relu { site, .. } = &self.arch.json.ops[*i] {
                let bytes = idx.iter().flat_map(|&x| (x as i64).to_le_bytes()).collect();
                data.push((format!("active.{site}"), bytes, Dtype::I64, vec![idx.len()]));
            }
        }
        data.sort_by(|a, b| a.0.cmp(&b.0));
        let views: Vec<(String, TensorView)> = data
            .iter()
            .map(|(n, b, d, s)| {
                Ok((
                    n.clone(),
                    TensorView::new(*d, s.clone(), b)
                        .map_err(|e| MpcError::model(format!("{n}: {e:?}")))?,
                ))
            })
            .collect::<Result<_>>()?;
        let wp = dir.join(WEIGHTS);
        let bytes = safetensors::serialize(views, &None)
            .map_err(|e| MpcError::file(&wp, format!("{e:?}")))?;
        write_atomic(&wp, &bytes)?;
        let jp = dir.join(MODEL_JSON);
        write_atomic(
            &jp,
            &serde_json::to_vec_pretty(&self.arch.json).expect("serializable"),
        )?;
        Ok(())
    }
}

/// Writes `path` through a temporary file in the same directory and a rename; on failure the
/// temporary file is removed and `path` is left as it was. The project's one atomic writer of
/// bytes (`privlin::io::atomic_write_bytes` calls it).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| MpcError::file(dir, e))?;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let result = std::fs::write(&tmp, bytes)
        .map_err(|e| MpcError::file(&tmp, e))
        .and_then(|()| std::fs::rename(&tmp, path).map_err(|e| MpcError::file(path, e)));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// A weight layer in fixed point, on the server.
#[derive(Debug, Clone)]
pub struct QuantLayer {
    /// Weights at scale `f` (with a folded average-pool divisor).
    pub weight: Vec<u64>,
    /// Bias at the layer's output scale.
    pub bias: Vec<u64>,
}

/// The model in the ring: fixed-point weights and the scale of every value.
#[derive(Debug, Clone)]
pub struct QuantModel {
    pub arch: Arch,
    pub ring: Ring,
    /// Weight layers by op index.
    pub layers: HashMap<usize, QuantLayer>,
    /// Scale (fractional bits) of every value.
    pub scales: Vec<u32>,
}

/// Scales of every value: inputs at `f`, weight layers add `f` (a channel affine to its input
/// truncated to `f`: `2f`), sites bring a value back to `f`, pooling keeps it, additions align to
/// the larger scale.
pub fn value_scales(arch: &Arch, ring: &Ring) -> Result<Vec<u32>> {
    let f = ring.frac;
    let mut sc = vec![f];
    for (i, op) in arch.ops().iter().enumerate() {
        let s = match op {
            // An input above scale f (a weight layer reading another's output or a channel
            // affine's, as imported graphs may) is truncated to f first, like a channel affine's:
            // the output is at 2f, never at the 3f that no site's circuit could read.
            Op::Conv { input, .. } | Op::Linear { input, .. } => {
                if sc[*input] < f {
                    return Err(MpcError::model(format!(
                        "op {i}: weight layer input at scale {}",
                        sc[*input]
                    )));
                }
                2 * f
            }
            Op::AvgPool { input, .. } | Op::MaxPool { input, .. } => sc[*input],
            Op::ChannelAffine { input, .. } => {
                if sc[*input] < f {
                    return Err(MpcError::model(format!(
                        "op {i}: channel affine input at scale {}",
                        sc[*input]
                    )));
                }
                2 * f
            }
            Op::Add { inputs } => sc[inputs[0]].max(sc[inputs[1]]),
            Op::Concat { inputs } => inputs.iter().map(|&v| sc[v]).max().unwrap_or(f),
            Op::Relu { input, .. } => {
                if sc[*input] < f {
                    return Err(MpcError::model(format!(
                        "op {i}: site input at scale {}",
                        sc[*input]
                    )));
                }
                f
            }
        };
        if s > 3 * f {
            return Err(MpcError::model(format!(
                "op {i} ({}): scale 2^{s} grows past 3f; put a site between weight layers",
                op.kind()
            )));
        }
        sc.push(s);
    }
    Ok(sc)
}

/// Bits by which op `i` truncates its input locally on the shares before computing: a site's
/// identity positions (and, inside the circuit, its active ones) and the input of a weight layer
/// (channel affine, or a convolution or linear layer reading a value above scale `f`) come to
/// scale `f`; other ops do not truncate.
pub fn input_shift(arch: &Arch, scales: &[u32], ring: &Ring, i: usize) -> u32 {
    match &arch.ops()[i] {
        Op::Relu { input, .. }
        | Op::ChannelAffine { input, .. }
        | Op::Conv { input, .. }
        | Op::Linear { input, .. } => scales[*input] - ring.frac,
        _ => 0,
    }
}

impl QuantModel {
    /// Bytes of the fixed-point weights and biases (what a copy of the model holds).
    pub fn weight_bytes(&self) -> u64 {
        self.layers
            .values()
            .map(|l| 8 * (l.weight.len() + l.bias.len()) as u64)
            .sum()
    }

    /// Encodes the float weights in `ring` (errors name the tensor that does not fit).
    pub fn new(model: &ModelFile, ring: Ring) -> Result<Self> {
        ring.validate()?;
        let arch = model.arch.clone();
        let scales = value_scales(&arch, &ring)?;
        let mut layers = HashMap::new();
        for (i, op) in arch.ops().iter().enumerate() {
            let Some((weight, bias)) = op.weight_names() else {
                continue;
            };
            let div = arch.pool_divisor(op.inputs()[0]) as f64;
            let w = model.weights[weight]
                .iter()
                .map(|&x| ring.encode(x as f64 / div, ring.frac, weight))
                .collect::<Result<Vec<_>>>()?;
            let b = model.weights[bias]
                .iter()
                .map(|&x| ring.encode(x as f64, scales[i + 1], bias))
                .collect::<Result<Vec<_>>>()?;
            layers.insert(i, QuantLayer { weight: w, bias: b });
        }
        Ok(QuantModel {
            arch,
            ring,
            layers,
            scales,
        })
    }

    /// Encodes one (already normalized) input at scale `f`.
    pub fn encode_input(arch: &Arch, ring: &Ring, x: &[f32]) -> Result<Vec<u64>> {
        if x.len() != arch.numel(0) {
            return Err(MpcError::Params(format!(
                "input has {} values, the model takes {:?}",
                x.len(),
                arch.json.input_shape
            )));
        }
        x.iter()
            .map(|&v| ring.encode(v as f64, ring.frac, "input"))
            .collect()
    }
}

/// MACs of weight layer `i`.
pub fn macs(arch: &Arch, i: usize) -> u64 {
    match &arch.ops()[i] {
        Op::Conv { weight, .. } => {
            let w = &arch.json.weight_shapes[weight];
            let o = &arch.shapes[i + 1];
            (o[0] * o[1] * o[2] * w[1] * w[2] * w[3]) as u64
        }
        Op::Linear { weight, .. } => {
            let w = &arch.json.weight_shapes[weight];
            (w[0] * w[1]) as u64
        }
        Op::ChannelAffine { .. } => arch.numel(i + 1) as u64,
        _ => 0,
    }
}
