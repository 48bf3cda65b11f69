//! The DELPHI-style protocol (Mishra et al., USENIX Security 2020, Fig. 3) for partial-ReLU
//! models, semi-honest, client input and server model.
//!
//! Invariant: every value `v` is shared as `v = v_S + v_C mod 2^l` where the client's share `v_C`
//! is fixed in the offline phase (a random mask at the input and at every active ReLU's output,
//! derived locally elsewhere), and the server's share is computed online.
//!
//! *Offline* (input-independent): per weight layer, the client obtains `W v_C - s` and the server
//! keeps `s` ([`linear`]); per site with active positions, IKNP gives the client the labels of its
//! circuit inputs (its share `y_C` and `q = -r'`) and the server garbles the circuits
//! ([`garbled`]; max-pools likewise, one circuit per window).
//! *Online*: the client sends `x - r_0`; the server evaluates weight layers on its shares
//! (`W v_S + b + s`) and, at each site, sends the labels of its share's low `w` bits; the client
//! evaluates and returns the permute bit of each output wire, which only the server can decode
//! into its new share `ReLU(y) >> f - r'`. Identity positions are truncated locally by each
//! party. At the end the client learns the class through a garbled argmax over the logits'
//! shares ([`argmax`], the default [`OutputMode::Class`]), or the server sends its share of the
//! logits ([`OutputMode::Logits`]).
//!
//! A session may run offline phases ahead ([`Client::precompute`]): both parties keep each one's
//! state in a FIFO pool, and an inference takes the oldest, or runs its offline phase inline when
//! the pool is empty (both parties see alike which).

pub mod argmax;
pub mod client;
pub mod garbled;
pub mod homomorphic;
pub mod linear;
pub mod policy;
pub mod server;
pub mod service;

pub use client::{Client, Inference};
pub use linear::OfflineMode;
pub use policy::{Limits, Options, OutputMode, Randomness, Truncation};
pub use server::{Request, Server};

use crate::error::{MpcError, Result};
use crate::model::{Arch, Op};
use crate::nonlinear::Nonlinear;
use crate::ring::Ring;
use crate::wire::{Reader, Writer};

const MAGIC: &[u8] = b"privlin-pi/4";
/// What a server at its session limit sends instead of a hello, followed by its reason.
const BUSY: &[u8] = b"privlin-pi/busy";
/// Client commands.
pub(crate) const CMD_INFER: u8 = 1;
pub(crate) const CMD_BYE: u8 = 0;
/// Run one offline phase ahead and keep it (both parties) for a later inference.
pub(crate) const CMD_PRECOMPUTE: u8 = 2;

/// What the server announces: ring, offline mode, output mode, nonlinear family, architecture
/// and active positions.
#[derive(Debug, Clone)]
pub struct Hello {
    pub ring: Ring,
    pub offline: String,
    pub output: OutputMode,
    pub nonlinear: Nonlinear,
    /// Precomputed offline phases the server keeps for the session (its `max_pool`, lowered to
    /// its memory budget): a client asks for no more.
    pub max_pool: u32,
    pub truncation: Truncation,
    pub arch: Arch,
}

impl Hello {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.bytes(MAGIC)
            .u32(self.ring.bits)
            .u32(self.ring.frac)
            .u32(self.ring.gc_bits)
            .bytes(self.offline.as_bytes())
            .u8(self.output.code())
            .u8(self.nonlinear.code())
            .u32(self.max_pool)
            .u8(self.truncation.code())
            .bytes(&self.arch.to_bytes());
        w.finish()
    }

    pub fn decode(buf: &[u8]) -> Result<Self> {
        let what = "hello";
        let mut r = Reader::new(buf, what);
        let magic = r.bytes()?;
        if magic == BUSY {
            let why = String::from_utf8_lossy(r.bytes()?).into_owned();
            return Err(MpcError::Protocol(format!(
                "the server refused the session: {why}"
            )));
        }
        if magic != MAGIC {
            return Err(MpcError::malformed(what, "not a privlin-pi/4 server"));
        }
        let ring = Ring {
            bits: r.u32()?,
            frac: r.u32()?,
            gc_bits: r.u32()?,
        };
        ring.validate()
            .map_err(|e| MpcError::malformed(what, e.to_string()))?;
        let offline = String::from_utf8(r.bytes()?.to_vec())
            .map_err(|_| MpcError::malformed(what, "offline mode is not UTF-8"))?;
        let code = r.u8()?;
        let output = OutputMode::from_code(code)
            .ok_or_else(|| MpcError::malformed(what, format!("unknown output mode {code}")))?;
        let code = r.u8()?;
        let nonlinear = Nonlinear::from_code(code)
            .ok_or_else(|| MpcError::malformed(what, format!("unknown nonlinear family {code}")))?;
        let max_pool = r.u32()?;
        let code = r.u8()?;
        let truncation = Truncation::from_code(code)
            .ok_or_else(|| MpcError::malformed(what, format!("unknown truncation {code}")))?;
        let arch = Arch::from_bytes(r.bytes()?)?;
        r.end()?;
        Ok(Hello {
            ring,
            offline,
            output,
            nonlinear,
            max_pool,
            truncation,
            arch,
        })
    }
}

/// The message a server sends instead of its hello when it refuses a session (`why` is shown to
/// the client).
pub fn busy_message(why: &str) -> Vec<u8> {
    let mut w = Writer::new();
    w.bytes(BUSY).bytes(why.as_bytes());
    w.finish()
}

/// The label of op `i` in traffic reports: the weight's module path or the site name.
pub fn op_label(arch: &Arch, i: usize) -> String {
    match &arch.ops()[i] {
        Op::Conv { weight, .. } | Op::Linear { weight, .. } | Op::ChannelAffine { weight, .. } => {
            weight.strip_suffix(".weight").unwrap_or(weight).to_string()
        }
        Op::Relu { site, .. } => site.clone(),
        Op::AvgPool { .. } => format!("pool{i}"),
        Op::MaxPool { .. } => format!("maxpool{i}"),
        Op::Add { .. } => format!("add{i}"),
        Op::Concat { .. } => format!("concat{i}"),
    }
}

/// What each garbled circuit of a layer computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gadget {
    /// An active ReLU position, truncated by `shift` bits, at most `cap` when the site has an
    /// upper bound ([`crate::gc::circuit::relu_capped`]).
    Relu { shift: usize, cap: Option<u64> },
    /// The maximum of a max-pool window of `window` values ([`crate::gc::circuit::max_pool`]).
    Max { window: usize },
}

/// Dimensions of one layer's garbled circuits (a site's active positions or a max-pool's
/// windows).
#[derive(Debug, Clone, Copy)]
pub struct SiteDims {
    /// Circuits (active positions, or max-pool outputs).
    pub n: usize,
    pub w: usize,
    pub l: usize,
    pub gadget: Gadget,
    /// AND gates per circuit.
    pub ands: usize,
}

impl SiteDims {
    /// A site's `n` active ReLUs, truncating by `shift`.
    pub fn new(ring: &Ring, n: usize, shift: u32) -> Self {
        Self::capped(ring, n, shift, None)
    }

    /// A site's `n` active ReLUs, truncating by `shift`, at most `cap` (ReLU6).
    pub fn capped(ring: &Ring, n: usize, shift: u32, cap: Option<u64>) -> Self {
        let (w, l) = (ring.gc_bits as usize, ring.bits as usize);
        SiteDims {
            n,
            w,
            l,
            gadget: Gadget::Relu {
                shift: shift as usize,
                cap,
            },
            ands: crate::gc::circuit::relu_capped_and_gates(w, l, shift as usize, cap),
        }
    }

    /// `n` max-pool windows of `window` values.
    pub fn max_pool(ring: &Ring, n: usize, window: usize) -> Self {
        let (w, l) = (ring.gc_bits as usize, ring.bits as usize);
        SiteDims {
            n,
            w,
            l,
            gadget: Gadget::Max { window },
            ands: crate::gc::circuit::max_pool_and_gates(window, w, l),
        }
    }

    /// The circuits of op `i` (`scales`: [`crate::model::value_scales`]); `None` for an op
    /// without any (weight layers, additions, average pooling, a site with no active position).
    pub fn of(arch: &Arch, scales: &[u32], ring: &Ring, i: usize) -> Option<Self> {
        match &arch.ops()[i] {
            op @ Op::Relu { input, .. } => {
                let n = arch.active[&i].len();
                let cap = op.relu_cap(ring.frac);
                (n > 0).then(|| SiteDims::capped(ring, n, scales[*input] - ring.frac, cap))
            }
            Op::MaxPool { kernel, .. } => {
                Some(SiteDims::max_pool(ring, arch.numel(i + 1), kernel * kernel))
            }
            _ => None,
        }
    }

    /// Values per circuit (1 for a ReLU).
    pub fn window(&self) -> usize {
        match self.gadget {
            Gadget::Relu { .. } => 1,
            Gadget::Max { window } => window,
        }
    }

    /// Server input bits per circuit: the low `w` bits of its share of each value.
    pub fn server_bits(&self) -> usize {
        self.window() * self.w
    }

    /// Client input bits per circuit: its shares' low `w` bits and its mask (`l`).
    pub fn client_bits(&self) -> usize {
        self.server_bits() + self.l
    }
}

/// The OT rounds of op `i` when the family is OT: one site for a site with active ReLUs
/// ([`crate::nonlinear::ot_relu`]), one per level of the tree for a max-pool
/// ([`crate::nonlinear::ot_pool`]); `None` for other ops and under the circuits.
pub fn ot_rounds(
    arch: &Arch,
    scales: &[u32],
    ring: &Ring,
    nonlinear: Nonlinear,
    i: usize,
) -> Result<Option<Vec<crate::nonlinear::ot_relu::Shape>>> {
    match (nonlinear, &arch.ops()[i]) {
        (Nonlinear::Ot { digit_bits }, op @ Op::Relu { input, .. }) => {
            let n = arch.active[&i].len();
            if n == 0 {
                return Ok(None);
            }
            let shift = scales[*input] - ring.frac;
            let s = crate::nonlinear::ot_relu::Shape::new(ring, shift, digit_bits, n)?;
            // A bounded site (ReLU6) is two: min(ReLU(y) >> s, c) = (ReLU(y) >> s) -
            // (ReLU(y - c 2^s) >> s), the second on the values less the public constant.
            Ok(Some(match op.relu_cap(ring.frac) {
                Some(_) => vec![s.clone(), s],
                None => vec![s],
            }))
        }
        (Nonlinear::Ot { digit_bits }, Op::MaxPool { kernel, .. }) => {
            crate::nonlinear::ot_pool::shapes(ring, digit_bits, arch.numel(i + 1), kernel * kernel)
                .map(Some)
        }
        (Nonlinear::Auto, _) => Err(MpcError::Params(
            "nonlinear family `auto` must be resolved (cost::choose_nonlinear) before a session or a prediction".into(),
        )),
        _ => Ok(None),
    }
}

/// The identity positions of site `i` (its positions that are not active), in order.
pub fn identity_positions(arch: &Arch, i: usize) -> Vec<u32> {
    let active = &arch.active[&i];
    let mut next = active.iter().peekable();
    (0..arch.numel(i + 1) as u32)
        .filter(|p| {
            if next.peek() == Some(&p) {
                next.next();
                false
            } else {
                true
            }
        })
        .collect()
}

/// The faithful truncation of site `i`'s identity positions ([`Truncation::Faithful`]): one OT
/// site of the truncation gadget over them (`None` under local truncation, for other ops, a
/// site that truncates nothing, or one without identity positions). Refused outside the OT
/// family.
pub fn ot_truncation(
    arch: &Arch,
    scales: &[u32],
    ring: &Ring,
    nonlinear: Nonlinear,
    truncation: Truncation,
    i: usize,
) -> Result<Option<crate::nonlinear::ot_relu::Shape>> {
    let Op::Relu { input, .. } = &arch.ops()[i] else {
        return Ok(None);
    };
    match (truncation, nonlinear) {
        (Truncation::Local, _) => Ok(None),
        (Truncation::Faithful, Nonlinear::Ot { digit_bits }) => {
            let shift = scales[*input] - ring.frac;
            let n = arch.numel(i + 1) - arch.active[&i].len();
            if shift == 0 || n == 0 {
                return Ok(None);
            }
            crate::nonlinear::ot_relu::Shape::truncation(ring, shift, digit_bits, n).map(Some)
        }
        (Truncation::Faithful, other) => Err(MpcError::Params(format!(
            "faithful truncation runs on the OT comparison (--nonlinear ot), not `{}`",
            other.name()
        ))),
    }
}

/// The OT rounds of the class output's argmax when the family is OT (`None` for the circuit, the
/// logits output, or one class).
pub fn ot_argmax(
    arch: &Arch,
    ring: &Ring,
    nonlinear: Nonlinear,
    output: OutputMode,
) -> Result<Option<Vec<crate::nonlinear::ot_relu::Shape>>> {
    match (nonlinear, output) {
        (Nonlinear::Ot { digit_bits }, OutputMode::Class) if arch.json.classes >= 2 => {
            crate::nonlinear::ot_argmax::shapes(ring, digit_bits, arch.json.classes).map(Some)
        }
        _ => Ok(None),
    }
}

/// [`SiteDims::of`] for the family: `None` for a site or max-pool that runs on OT.
pub fn garbled_site(
    arch: &Arch,
    scales: &[u32],
    ring: &Ring,
    nonlinear: Nonlinear,
    i: usize,
) -> Option<SiteDims> {
    match (nonlinear, &arch.ops()[i]) {
        (Nonlinear::Ot { .. }, Op::Relu { .. } | Op::MaxPool { .. }) => None,
        _ => SiteDims::of(arch, scales, ring, i),
    }
}

/// A party's circuit inputs for op `i` from its share `y` of the op's input: the active positions
/// of a site, the windows of a max-pool ([`crate::linalg::pool_windows`]).
pub fn circuit_inputs(arch: &Arch, i: usize, y: &[u64]) -> Vec<u64> {
    match &arch.ops()[i] {
        Op::Relu { .. } => arch.active[&i].iter().map(|&p| y[p as usize]).collect(),
        Op::MaxPool {
            input,
            kernel,
            stride,
            padding,
        } => {
            let s = &arch.shapes[*input];
            crate::linalg::pool_windows(y, [s[0], s[1], s[2]], *kernel, *stride, *padding)
        }
        other => unreachable!("circuit inputs of a {}", other.kind()),
    }
}
