//! What a session allows: where its randomness comes from, what the client learns at the end,
//! how much a peer's announced architecture may make this party allocate, and how likely a local
//! truncation may fail (docs/private-inference.md, "Security argument").

use super::linear::OfflineMode;
use crate::error::{MpcError, Result};
use crate::model::{value_scales, Arch, Op};
use crate::ring::Ring;
use rand::SeedableRng;
use rand_chacha::ChaCha12Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Where a party's randomness comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Randomness {
    /// The operating system's generator: the only mode in which the protocol is private.
    Os,
    /// ChaCha12 streams derived from a *public* seed, so that tests and benchmarks repeat
    /// exactly. Anyone who knows the seed knows every mask: the session is not private, and
    /// every report produced with it says so ([`Randomness::label`]).
    InsecureSeeded(u64),
}

/// Which party draws from a [`Randomness`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Party {
    Server,
    Client,
}

impl Randomness {
    /// A party's generator. Seeded streams are `SHA-256("privlin-insecure-seed" || seed ||
    /// party)`: distinct per party for every seed (no `seed + 1`, which overflowed at
    /// `u64::MAX` and made a server's stream another session's client stream).
    pub fn rng(&self, party: Party) -> ChaCha12Rng {
        self.rng_for(party, b"")
    }

    /// A separate stream of a party for one purpose (`SHA-256(... || party || purpose)`; the
    /// empty purpose is [`Randomness::rng`]), so that a component drawing from it does not shift
    /// the party's main stream.
    pub fn rng_for(&self, party: Party, purpose: &[u8]) -> ChaCha12Rng {
        match self {
            Randomness::Os => ChaCha12Rng::from_entropy(),
            Randomness::InsecureSeeded(seed) => {
                let mut h = Sha256::new();
                h.update(b"privlin-insecure-seed");
                h.update(seed.to_le_bytes());
                h.update([party as u8]);
                h.update(purpose);
                ChaCha12Rng::from_seed(h.finalize().into())
            }
        }
    }

    pub fn is_insecure(&self) -> bool {
        matches!(self, Randomness::InsecureSeeded(_))
    }

    /// What reports print next to every figure measured with this randomness.
    pub fn label(&self) -> String {
        match self {
            Randomness::Os => "operating-system randomness".into(),
            Randomness::InsecureSeeded(s) => format!(
                "INSECURE seeded randomness (public seed {s}; reproducible measurement, not private)"
            ),
        }
    }
}

/// What the client learns at the end of an inference. The server chooses; the hello announces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputMode {
    /// Only the class: a garbled argmax over the logits' shares (`protocol::argmax`). The
    /// identity positions' local-truncation carries reach the client only through the class.
    #[default]
    Class,
    /// The logits in the clear. With local truncation at identity positions, repeated queries of
    /// one input let the client regress low bits of pre-activations and weights of the layers
    /// after the last active site out of the logits (docs/private-inference.md): a measurement
    /// and testing mode.
    Logits,
}

impl OutputMode {
    pub fn by_name(name: &str) -> Result<Self> {
        match name {
            "class" => Ok(OutputMode::Class),
            "logits" => Ok(OutputMode::Logits),
            other => Err(MpcError::Params(format!(
                "unknown output mode `{other}` (class, logits)"
            ))),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            OutputMode::Class => "class",
            OutputMode::Logits => "logits",
        }
    }

    pub fn label(&self) -> &'static str {
        match self {
            OutputMode::Class => "class only (garbled argmax)",
            OutputMode::Logits => {
                "logits (reveals low bits of pre-activations over repeated queries; measurement mode)"
            }
        }
    }

    pub(crate) fn code(&self) -> u8 {
        match self {
            OutputMode::Class => 1,
            OutputMode::Logits => 2,
        }
    }

    pub(crate) fn from_code(c: u8) -> Option<Self> {
        match c {
            1 => Some(OutputMode::Class),
            2 => Some(OutputMode::Logits),
            _ => None,
        }
    }
}

/// The largest hello a client reads (the architecture JSON and the active indices).
pub const MAX_HELLO_BYTES: u64 = 16 << 20;

/// How the identity positions of sites are truncated back to scale `f`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Truncation {
    /// Each party truncates its own share (SecureML, Mohassel-Zhang 2017, Thm. 1): free; off by
    /// one unit at most, and wrong with the probability [`wrap_failure_log2`] bounds, which also
    /// tells the client about `|y|` (docs/private-inference.md, "Security argument").
    #[default]
    Local,
    /// Identity positions on the OT comparison (SIRNN's faithful truncation with the carry and
    /// the sign from the millionaires' tree, [`crate::nonlinear::ot_relu::SiteGadget::Truncate`]):
    /// exact, no wrap failure and no carry leak, at one comparison per identity position. Runs on
    /// the OT family only; a channel affine's input is still truncated locally.
    Faithful,
}

impl Truncation {
    pub fn by_name(name: &str) -> Result<Self> {
        match name {
            "local" => Ok(Truncation::Local),
            "faithful" => Ok(Truncation::Faithful),
            other => Err(MpcError::Params(format!(
                "unknown truncation `{other}` (local, faithful)"
            ))),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Truncation::Local => "local",
            Truncation::Faithful => "faithful",
        }
    }

    pub(crate) fn code(&self) -> u8 {
        match self {
            Truncation::Local => 1,
            Truncation::Faithful => 2,
        }
    }

    pub(crate) fn from_code(c: u8) -> Option<Self> {
        match c {
            1 => Some(Truncation::Local),
            2 => Some(Truncation::Faithful),
            _ => None,
        }
    }
}

/// Bounds on what a peer's architecture may make this party allocate or compute, checked on the
/// hello before any buffer is sized from it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// Ring elements of all values of one inference together (each party keeps them all).
    pub max_elements: u64,
    /// Active ReLUs of the model.
    pub max_active: u64,
    /// Bytes of offline material the client holds per inference (its input labels and the
    /// garbled tables of every active ReLU), and bytes the server's offline phase may send it
    /// per inference (HE answers included, from the cost model's message sizes).
    pub max_offline_bytes: u64,
    /// Multiply-accumulates of the weight layers.
    pub max_macs: u64,
    /// Precomputed offline phases a session may hold (each party keeps its half of each: for a
    /// model near `max_offline_bytes`, that many times its offline material).
    #[serde(default = "default_max_pool")]
    pub max_pool: usize,
    /// Bytes of weight polynomials in NTT form the server keeps per session under the `he`
    /// offline mode ([`super::homomorphic::cached_layers`]): layers in order while they fit;
    /// the rest are encoded at every inference. 0 turns the cache off.
    #[serde(default = "default_he_cache_bytes")]
    pub he_cache_bytes: u64,
    /// Bytes a server may hold for its sessions (the HE weight cache, the model, and per
    /// concurrent session the offline phase in flight plus `max_pool` precomputed ones,
    /// [`MemoryPlan`]); 0: no budget. Checked at start-up: `max_pool` is lowered to fit, and a
    /// budget that does not hold even without pools is refused.
    #[serde(default)]
    pub max_memory_bytes: u64,
}

fn default_max_pool() -> usize {
    8
}

/// 2 GiB: the whole of a narrow ResNet-18's weight polynomials, most of a full-width one's.
fn default_he_cache_bytes() -> u64 {
    2 << 30
}

impl Default for Limits {
    /// Room for an ordinary machine: 16 GiB of offline material per inference (a full-width
    /// ResNet-18 with every ReLU in garbled circuits needs 4.2 GB), 2^28 values, 16 M active
    /// ReLUs, 2^36 MACs. Larger models (a full ResNet-50 on 224 x 224 images with every ReLU
    /// garbled needs about 67 GB) raise the limits explicitly.
    fn default() -> Self {
        Limits {
            max_elements: 1 << 28,
            max_active: 1 << 24,
            max_offline_bytes: 16 << 30,
            max_macs: 1 << 36,
            max_pool: default_max_pool(),
            he_cache_bytes: default_he_cache_bytes(),
            max_memory_bytes: 0,
        }
    }
}

/// What one inference of `arch` costs a party, as [`Limits`] counts it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Footprint {
    pub elements: u64,
    pub active: u64,
    pub offline_bytes: u64,
    pub macs: u64,
}

impl Footprint {
    pub fn of(arch: &Arch, ring: &Ring) -> Result<Self> {
        let scales = value_scales(arch, ring)?;
        let mut f = Footprint {
            elements: arch.numel(0) as u64,
            active: 0,
            offline_bytes: 0,
            macs: 0,
        };
        for (i, op) in arch.ops().iter().enumerate() {
            f.elements = f.elements.saturating_add(arch.numel(i + 1) as u64);
            f.macs = f.macs.saturating_add(crate::model::macs(arch, i));
            if let Some(d) = super::SiteDims::of(arch, &scales, ring, i) {
                if let Op::Relu { .. } = op {
                    f.active += d.n as u64;
                }
                let per = 16 * (d.client_bits() + 2 * d.ands) as u64;
                f.offline_bytes = f.offline_bytes.saturating_add(d.n as u64 * per);
            }
        }
        Ok(f)
    }

    /// Errors name the first bound the footprint exceeds.
    pub fn check(&self, limits: &Limits) -> Result<()> {
        let over = [
            ("value elements", self.elements, limits.max_elements),
            ("active ReLUs", self.active, limits.max_active),
            (
                "bytes of offline material",
                self.offline_bytes,
                limits.max_offline_bytes,
            ),
            ("MACs", self.macs, limits.max_macs),
        ]
        .into_iter()
        .find(|(_, v, max)| v > max);
        match over {
            Some((what, v, max)) => Err(MpcError::Params(format!(
                "the model needs {v} {what} per inference, above this party's limit of {max}"
            ))),
            None => Ok(()),
        }
    }
}

/// Bytes of the server's half of one offline phase (its state between the offline and the
/// online phase of an inference): the weight layers' masks `s`, per garbled op its input
/// zero-labels and decoding bits, per OT round [`crate::nonlinear::ot_relu::Shape::
/// server_state_bytes`], and the class output's. `nonlinear` must be resolved (not `auto`).
pub fn server_phase_bytes(
    arch: &Arch,
    ring: &Ring,
    nonlinear: crate::nonlinear::Nonlinear,
    output: OutputMode,
    truncation: Truncation,
) -> Result<u64> {
    let scales = value_scales(arch, ring)?;
    let mut bytes = 0u64;
    for (i, op) in arch.ops().iter().enumerate() {
        if let Some(t) = super::ot_truncation(arch, &scales, ring, nonlinear, truncation, i)? {
            bytes += t.server_state_bytes();
        }
        if op.is_weight_layer() {
            bytes += 8 * arch.numel(i + 1) as u64;
        } else if let Some(rounds) = super::ot_rounds(arch, &scales, ring, nonlinear, i)? {
            bytes += rounds.iter().map(|r| r.server_state_bytes()).sum::<u64>();
        } else if let Some(d) = super::garbled_site(arch, &scales, ring, nonlinear, i) {
            bytes += d.n as u64 * (16 * d.server_bits() as u64 + d.l.div_ceil(8) as u64);
        }
    }
    if let Some(rounds) = super::ot_argmax(arch, ring, nonlinear, output)? {
        bytes += rounds.iter().map(|r| r.server_state_bytes()).sum::<u64>();
    } else if output == OutputMode::Class {
        if let Some(d) = super::argmax::ArgmaxDims::new(arch.json.classes, ring) {
            bytes += 16 * d.input_bits() as u64;
        }
    }
    Ok(bytes)
}

/// A server's memory under [`Limits::max_memory_bytes`]: what it holds once (the HE weight
/// cache, the model shared by every session) and per concurrent session (the offline phase in
/// flight and up to `max_pool` precomputed ones).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MemoryPlan {
    pub shared_bytes: u64,
    pub phase_bytes: u64,
    pub sessions: usize,
    /// The pool each session may keep: the configured one, lowered to fit the budget.
    pub max_pool: usize,
    /// Estimated peak with every session holding a full pool and one phase in flight.
    pub peak_bytes: u64,
}

impl MemoryPlan {
    /// Fits `max_pool` to `budget` (0: none); refuses a budget that the shared state and one
    /// phase in flight per session already exceed.
    pub fn fit(
        shared_bytes: u64,
        phase_bytes: u64,
        sessions: usize,
        max_pool: usize,
        budget: u64,
    ) -> Result<Self> {
        let peak = |pool: usize| {
            shared_bytes.saturating_add(
                (sessions as u64)
                    .saturating_mul(pool as u64 + 1)
                    .saturating_mul(phase_bytes),
            )
        };
        let mut pool = max_pool;
        if budget > 0 {
            if peak(0) > budget {
                return Err(MpcError::Params(format!(
                    "a memory budget of {:.1} MB does not hold {sessions} concurrent sessions of this                      model: {:.1} MB shared (HE weight cache, model) and {:.1} MB per session for                      one offline phase in flight; raise --max-memory or lower --max-sessions",
                    budget as f64 / 1e6,
                    shared_bytes as f64 / 1e6,
                    phase_bytes as f64 / 1e6
                )));
            }
            while pool > 0 && peak(pool) > budget {
                pool -= 1;
            }
        }
        Ok(MemoryPlan {
            shared_bytes,
            phase_bytes,
            sessions,
            max_pool: pool,
            peak_bytes: peak(pool),
        })
    }
}

/// Statistical bound on the local truncation's wrap failure (SecureML Thm. 1): an identity
/// position (or a channel affine's input position) with `|y| < 2^k` at its scale fails (an error of about `2^(l - shift)`, which also
/// tells the client `|y|` against its own share) with probability at most `2^(k + 1 - l)`. The
/// public magnitude bound is the circuit width's, `k = w - 1` (active positions must satisfy it to
/// be exact; the operator declares it for every site position). Returns `log2` of the union bound
/// over the truncated positions of one inference (`-inf` when none truncates).
pub fn wrap_failure_log2(arch: &Arch, ring: &Ring) -> Result<f64> {
    let scales = value_scales(arch, ring)?;
    let mut positions = 0u64;
    for (i, op) in arch.ops().iter().enumerate() {
        if crate::model::input_shift(arch, &scales, ring, i) == 0 {
            continue;
        }
        positions += match op {
            Op::Relu { .. } => (arch.numel(i + 1) - arch.active[&i].len()) as u64,
            // A weight layer truncates every position of its input.
            _ => arch.numel(op.inputs()[0]) as u64,
        };
    }
    if positions == 0 {
        return Ok(f64::NEG_INFINITY);
    }
    Ok((positions as f64).log2() + ring.gc_bits as f64 - ring.bits as f64)
}

/// Default largest `log2` of the per-inference wrap-failure bound a party accepts: at most one
/// failed inference in 4,096. Cryptographically negligible bounds (`2^-40`) are out of reach for
/// local truncation in a 64-bit ring on CIFAR-size models; docs/private-inference.md says what
/// would reach them.
pub const DEFAULT_MAX_WRAP_LOG2: f64 = -12.0;

/// Refuses a ring at which local truncation fails too often for this model.
pub fn check_wrap(arch: &Arch, ring: &Ring, max_log2: f64) -> Result<()> {
    let p = wrap_failure_log2(arch, ring)?;
    if p > max_log2 {
        return Err(MpcError::Params(format!(
            "ring l = {} with circuit width w = {} lets local truncation fail with probability up to \
             2^{p:.1} per inference on this model, above the accepted 2^{max_log2:.0}; use a larger \
             l or a smaller w",
            ring.bits, ring.gc_bits
        )));
    }
    Ok(())
}

/// A party's settings for a session.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Options {
    pub randomness: Randomness,
    /// The weight layers' offline phase (both parties must choose the same).
    #[serde(default)]
    pub offline: OfflineMode,
    /// The server's choice of what the client learns (a client follows the hello).
    pub output: OutputMode,
    /// How active ReLUs are computed (both parties must choose the same).
    #[serde(default)]
    pub nonlinear: crate::nonlinear::Nonlinear,
    /// How identity positions are truncated (the server's choice; the hello announces it).
    #[serde(default)]
    pub truncation: Truncation,
    pub limits: Limits,
    /// Largest accepted `log2` of [`wrap_failure_log2`].
    pub max_wrap_log2: f64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            randomness: Randomness::Os,
            offline: OfflineMode::default(),
            output: OutputMode::Class,
            nonlinear: Default::default(),
            truncation: Truncation::Local,
            limits: Limits::default(),
            max_wrap_log2: DEFAULT_MAX_WRAP_LOG2,
        }
    }
}

impl Options {
    /// Seeded, reproducible and **not private**: for tests and benchmarks.
    pub fn insecure_seeded(seed: u64) -> Self {
        Options {
            randomness: Randomness::InsecureSeeded(seed),
            ..Default::default()
        }
    }

    pub fn with_truncation(mut self, truncation: Truncation) -> Self {
        self.truncation = truncation;
        self
    }

    pub fn with_output(mut self, output: OutputMode) -> Self {
        self.output = output;
        self
    }

    pub fn with_nonlinear(mut self, nonlinear: crate::nonlinear::Nonlinear) -> Self {
        self.nonlinear = nonlinear;
        self
    }

    pub fn with_offline(mut self, offline: OfflineMode) -> Self {
        self.offline = offline;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngCore;

    /// Seeded streams repeat, differ per party and per seed, and `u64::MAX` is a seed like any
    /// other (the old `seed + 1` overflowed there).
    #[test]
    fn seeded_streams_are_per_party_and_reproducible() {
        for seed in [0, 7, u64::MAX] {
            let r = Randomness::InsecureSeeded(seed);
            let (mut s, mut c) = (r.rng(Party::Server), r.rng(Party::Client));
            let (a, b) = (s.next_u64(), c.next_u64());
            assert_ne!(a, b);
            assert_eq!(r.rng(Party::Server).next_u64(), a);
            assert!(r.is_insecure() && r.label().contains("INSECURE"));
        }
        // Seed s's client is not seed s + 1's server.
        let c0 = Randomness::InsecureSeeded(0).rng(Party::Client).next_u64();
        let s1 = Randomness::InsecureSeeded(1).rng(Party::Server).next_u64();
        assert_ne!(c0, s1);
        assert!(!Randomness::Os.is_insecure());
        assert_ne!(
            Randomness::Os.rng(Party::Server).next_u64(),
            Randomness::Os.rng(Party::Server).next_u64()
        );
    }
}
