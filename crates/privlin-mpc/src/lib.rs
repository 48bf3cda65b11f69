//! Two-party private inference of partial-ReLU networks (DELPHI, Mishra et al. 2020), without
//! libtorch.
//!
//! The client holds an image, the server a model exported by privlin ([`model`]): convolutions
//! and linear layers with batch norm folded, average pooling, residual additions and activation
//! sites whose *active* positions (the ReLUs the linearization kept) are listed. Values live in the
//! ring `Z_2^l` with `f` fractional bits ([`ring`]); both parties hold additive shares.
//!
//! * Linear layers run on shares: the server computes `W (x - r) + b + s` online on the client's
//!   masked input, the client's share `W r - s` is an offline correlation ([`protocol::linear`]).
//!   It comes from homomorphic encryption ([`he`], the default) or, as a labelled measurement
//!   mode, from a dealer.
//! * Active ReLUs run in garbled circuits ([`gc`]: free-XOR, half-gates, fixed-key AES) that add
//!   the shares, apply ReLU, truncate and re-share; the client's input labels come from IKNP OT
//!   extension ([`ot`]) on Chou-Orlandi base OTs, garbling and OT both offline, so that online the
//!   server sends only the labels of its own share and the client returns one bit per output wire.
//!   Or ([`nonlinear`], `--nonlinear ot`) on the millionaires' protocol over random OTs from a
//!   silent OT extension ([`ot::silent`], Ferret).
//! * Identity (linearized) positions cost no circuit: both parties truncate their shares locally
//!   (SecureML, Mohassel-Zhang 2017, Thm. 1).
//!
//! Every message goes through a counted [`net::Channel`] (TCP, or in-memory for tests), optionally
//! behind an in-process network shaper; [`cost`] predicts the traffic and latency the protocol
//! will have.

pub mod cost;
pub mod error;
pub mod fuzz;
pub mod gc;
pub mod harness;
pub mod he;
pub mod linalg;
pub mod model;
pub mod net;
pub mod nonlinear;
pub mod ot;
pub mod plain;
pub mod protocol;
pub mod ring;
pub mod wire;

pub use error::{MpcError, Result};
pub use model::{ModelFile, Op, QuantModel};
pub use ring::Ring;
// The harness's modules at their former paths (`privlin_mpc::bench`, ...), for the CLI and tests.
pub use harness::{bench, load, synthetic};
