//! Plaintext fixed-point inference of an exported model: the reference the two-party protocol must
//! reproduce.

use crate::linalg;
use crate::model::{Op, QuantModel};

/// What plaintext inference reports besides the logits.
#[derive(Debug, Clone, Default)]
pub struct PlainRun {
    /// Logits at the output's scale (`scales.last()`).
    pub logits: Vec<u64>,
    /// Active positions (and max-pool inputs) whose value did not fit the circuit width `w` (the
    /// protocol and this reference then agree with each other but not with the float model).
    pub gc_overflows: usize,
    /// The largest `|y|` at identity positions (and channel-affine inputs), the value local
    /// truncation truncates: the wrap-failure bound ([`crate::protocol::policy::
    /// wrap_failure_log2`]) assumes it below `2^(w - 1)`.
    pub max_identity_abs: u64,
}

impl PlainRun {
    /// Whether an identity position left the magnitude the wrap-failure bound assumes.
    pub fn identity_over_bound(&self, ring: &crate::Ring) -> bool {
        self.max_identity_abs >= 1u64 << (ring.gc_bits - 1)
    }
}

/// Runs the model on an encoded input. Sites round to nearest: `y + 2^(shift-1)` is truncated
/// (`ReLU` of it at active positions, which equals rounding `ReLU(y)`). `identity(op, position,
/// y, shift)` truncates an identity position's `y` (the half already added): [`forward`] uses
/// `floor(y / 2^shift)`; tests replay the protocol's local truncation through it. A channel
/// affine's input is truncated through it as well (`op` is then the affine's index).
pub fn forward_with(
    model: &QuantModel,
    x: &[u64],
    identity: &mut dyn FnMut(usize, usize, u64, u32) -> u64,
) -> PlainRun {
    let ring = &model.ring;
    let arch = &model.arch;
    let mut vals: Vec<Vec<u64>> = vec![x.to_vec()];
    let mut overflows = 0;
    let mut max_identity = 0u64;
    let mut identity = |op: usize, p: usize, y: u64, shift: u32| {
        max_identity = max_identity.max(ring.signed(y).unsigned_abs());
        identity(op, p, y, shift)
    };
    for (i, op) in arch.ops().iter().enumerate() {
        let out = match op {
            Op::Conv { .. } | Op::Linear { .. } | Op::ChannelAffine { .. } => {
                let x = &vals[op.inputs()[0]];
                // A channel affine's input, truncated to scale f like an identity position.
                let shift = crate::model::input_shift(arch, &model.scales, ring, i);
                let truncated: Vec<u64>;
                let x = if shift > 0 {
                    let half = ring.half(shift);
                    truncated = x
                        .iter()
                        .enumerate()
                        .map(|(p, &y)| identity(i, p, ring.reduce(y.wrapping_add(half)), shift))
                        .collect();
                    &truncated
                } else {
                    x
                };
                linalg::weight_layer(arch, ring, i, &model.layers[&i], x, true)
            }
            Op::MaxPool { input, kernel, .. } => {
                // The circuit's maximum of the values sign-extended from `w` bits.
                let x = crate::protocol::circuit_inputs(arch, i, &vals[*input]);
                x.chunks(kernel * kernel)
                    .map(|win| {
                        let m = win.iter().map(|&y| ring.sext_gc(y)).max().unwrap();
                        overflows += win
                            .iter()
                            .filter(|&&y| ring.sext_gc(y) != ring.signed(y))
                            .count();
                        ring.from_signed(m)
                    })
                    .collect()
            }
            Op::AvgPool {
                input,
                kernel,
                stride,
            } => {
                let s = &arch.shapes[*input];
                linalg::sum_pool(&vals[*input], [s[0], s[1], s[2]], *kernel, *stride, ring)
            }
            Op::Concat { inputs } => {
                let s = model.scales[i + 1];
                let parts: Vec<(&[u64], u32)> = inputs
                    .iter()
                    .map(|&v| (vals[v].as_slice(), s - model.scales[v]))
                    .collect();
                linalg::concat_aligned(&parts, ring)
            }
            Op::Add { inputs: [a, b] } => {
                let s = model.scales[i + 1];
                linalg::add_aligned(
                    &vals[*a],
                    s - model.scales[*a],
                    &vals[*b],
                    s - model.scales[*b],
                    ring,
                )
            }
            Op::Relu { input, .. } => {
                // Round to nearest: the half unit is added before the floor truncation.
                let shift = model.scales[*input] - ring.frac;
                let half = ring.half(shift);
                let active = &arch.active[&i];
                let cap = op.relu_cap(ring.frac);
                let mut k = 0;
                vals[*input]
                    .iter()
                    .enumerate()
                    .map(|(p, &y)| {
                        let y = ring.reduce(y.wrapping_add(half));
                        if k < active.len() && active[k] as usize == p {
                            k += 1;
                            if ring.sext_gc(y) != ring.signed(y) {
                                overflows += 1;
                            }
                            ring.relu_trunc_capped(y, shift, cap)
                        } else {
                            identity(i, p, y, shift)
                        }
                    })
                    .collect()
            }
        };
        vals.push(out);
    }
    PlainRun {
        logits: vals.pop().unwrap(),
        gc_overflows: overflows,
        max_identity_abs: max_identity,
    }
}

/// Plaintext inference with exact (round-to-nearest) truncation at identity positions.
pub fn forward(model: &QuantModel, x: &[u64]) -> PlainRun {
    let ring = model.ring;
    forward_with(model, x, &mut |_, _, y, shift| ring.truncate(y, shift))
}

/// Decoded logits and the predicted class.
pub fn decode_logits(model: &QuantModel, logits: &[u64]) -> (Vec<f64>, usize) {
    let scale = *model.scales.last().unwrap();
    let v: Vec<f64> = logits
        .iter()
        .map(|&x| model.ring.decode(x, scale))
        .collect();
    let arg = argmax(&v);
    (v, arg)
}

pub fn argmax(v: &[f64]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}
