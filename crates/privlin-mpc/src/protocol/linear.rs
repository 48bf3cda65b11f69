//! Offline correlations of the weight layers: the client needs `W v_C - s` for its share `v_C` of
//! the layer's input, the server keeps `s`.
//!
//! DELPHI computes this with additively homomorphic encryption (the client sends `Enc(v_C)`, the
//! server returns `Enc(W v_C - s)`): [`super::homomorphic::HeOffline`], the default. [`Dealer`]
//! sends the same two messages in the clear: the server learns the client's offline masks, so it
//! is a *measurement mode* only, requested explicitly and labelled `dealer` in every output.

use super::policy::Options;
use crate::error::{MpcError, Result};
use crate::he::HeParams;
use crate::linalg;
use crate::model::{Arch, QuantModel};
use crate::net::{Channel, Expect};
use crate::ring::Ring;
use crate::wire::{ring_vec_bytes, Reader, Writer};
use rand::Rng;
use rand_chacha::ChaCha12Rng;
use serde::{Deserialize, Serialize};

/// How the weight layers' offline correlations are produced.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OfflineMode {
    /// Homomorphic encryption ([`super::homomorphic`]): the default, and the only private mode.
    He(HeParams),
    /// The insecure dealer ([`Dealer`]): a measurement mode, labelled as such.
    Dealer,
}

impl Default for OfflineMode {
    fn default() -> Self {
        OfflineMode::He(HeParams::default())
    }
}

impl OfflineMode {
    pub fn by_name(name: &str) -> Result<Self> {
        match name {
            "he" => Ok(OfflineMode::default()),
            "dealer" => Ok(OfflineMode::Dealer),
            other => Err(MpcError::Params(format!(
                "unknown offline mode `{other}` (he, dealer)"
            ))),
        }
    }

    /// [`OfflineMode::by_name`] with the public HE weight bound `|w| < 2^he_weight_bits` (the
    /// one HE parameter the CLI and `[pi]` expose).
    pub fn named(name: &str, he_weight_bits: u32) -> Result<Self> {
        Ok(match Self::by_name(name)? {
            OfflineMode::He(p) => OfflineMode::He(HeParams {
                weight_bits: he_weight_bits,
                ..p
            }),
            d => d,
        })
    }

    pub fn name(&self) -> &'static str {
        match self {
            OfflineMode::He(_) => "he",
            OfflineMode::Dealer => "dealer",
        }
    }

    /// A fresh backend for one session.
    pub fn backend(&self) -> Box<dyn LinearOffline> {
        match self {
            OfflineMode::He(p) => Box::new(super::homomorphic::HeOffline::new(*p)),
            OfflineMode::Dealer => Box::new(Dealer),
        }
    }

    pub fn label(&self) -> String {
        match self {
            OfflineMode::He(p) => p.label(),
            OfflineMode::Dealer => DEALER_LABEL.into(),
        }
    }
}

pub trait LinearOffline: Send {
    /// Shown in every report next to offline figures; the hello announces it and a client must
    /// run a backend with the same label.
    fn label(&self) -> String;
    /// Server, before the hello: refuses parameters that do not hold for the model.
    fn prepare_server(&mut self, _model: &QuantModel, _opts: &Options) -> Result<()> {
        Ok(())
    }
    /// Client, after the hello: refuses parameters that do not hold for the architecture.
    fn prepare_client(&mut self, _arch: &Arch, _ring: &Ring, _opts: &Options) -> Result<()> {
        Ok(())
    }
    /// Once per session, after the base OTs (key material).
    fn setup_server(&mut self, _ch: &mut Channel) -> Result<()> {
        Ok(())
    }
    fn setup_client(&mut self, _ch: &mut Channel) -> Result<()> {
        Ok(())
    }
    /// Client side of weight layer `op`: returns `W v_c - s`.
    fn client(
        &mut self,
        ch: &mut Channel,
        arch: &Arch,
        ring: &Ring,
        op: usize,
        v_c: &[u64],
    ) -> Result<Vec<u64>>;
    /// Server side of weight layer `op`: returns `s`.
    fn server(
        &mut self,
        ch: &mut Channel,
        model: &QuantModel,
        op: usize,
        rng: &mut ChaCha12Rng,
    ) -> Result<Vec<u64>>;
}

/// The server's masks `s` of weight op `op`, uniform in the ring: every backend draws them this
/// way from the server's main stream, so that the same seeds give the same shares in every mode.
pub fn draw_masks(model: &QuantModel, op: usize, rng: &mut ChaCha12Rng) -> Vec<u64> {
    (0..model.arch.numel(op + 1))
        .map(|_| model.ring.reduce(rng.gen()))
        .collect()
}

/// The dealer stand-in (insecure offline phase for measurement).
pub struct Dealer;

pub const DEALER_LABEL: &str =
    "dealer (insecure stand-in for the HE offline phase of weight layers)";

impl LinearOffline for Dealer {
    fn label(&self) -> String {
        DEALER_LABEL.into()
    }

    fn client(
        &mut self,
        ch: &mut Channel,
        arch: &Arch,
        ring: &Ring,
        op: usize,
        v_c: &[u64],
    ) -> Result<Vec<u64>> {
        let mut w = Writer::new();
        w.ring_vec(v_c, ring.bits);
        ch.send(w.finish())?;
        let n = arch.numel(op + 1);
        let msg = ch.recv(
            "dealer: correlation",
            Expect::Exact(ring_vec_bytes(n, ring.bits)),
        )?;
        let mut r = Reader::new(&msg, "dealer: correlation");
        let out = r.ring_vec_n(ring.bits, n, "W v - s")?;
        r.end()?;
        Ok(out)
    }

    fn server(
        &mut self,
        ch: &mut Channel,
        model: &QuantModel,
        op: usize,
        rng: &mut ChaCha12Rng,
    ) -> Result<Vec<u64>> {
        let arch = &model.arch;
        let ring = &model.ring;
        let input = arch.ops()[op].inputs()[0];
        let n = arch.numel(input);
        let msg = ch.recv(
            "dealer: client mask",
            Expect::Exact(ring_vec_bytes(n, ring.bits)),
        )?;
        let mut r = Reader::new(&msg, "dealer: client mask");
        let v = r.ring_vec_n(ring.bits, n, "client mask")?;
        r.end()?;
        let s = draw_masks(model, op, rng);
        let wv = linalg::weight_layer(arch, ring, op, &model.layers[&op], &v, false);
        let out: Vec<u64> = wv
            .iter()
            .zip(&s)
            .map(|(&a, &b)| ring.reduce(a.wrapping_sub(b)))
            .collect();
        let mut w = Writer::new();
        w.ring_vec(&out, ring.bits);
        ch.send(w.finish())?;
        Ok(s)
    }
}
