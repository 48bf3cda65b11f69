//! Homomorphic encryption for the offline phase of weight layers: an RLWE scheme whose plaintext
//! ring is the protocol's own `Z_2^l` ([`scheme`]), Cheetah's coefficient encoding of
//! convolutions and fully connected layers ([`layout`]), parameters checked against the HE
//! security standard with a worst-case noise bound per layer ([`params`], [`Layout::choose`]).
//! Polynomial arithmetic (RNS, NTT, modulus switching) is `fhe-math`'s; the scheme is ours because
//! the `fhe` crate's BFV does not accept plaintext moduli near `2^64`.

pub mod codec;
pub mod layout;
pub mod params;
pub mod sample;
pub mod scheme;
pub mod speed;

pub use layout::{Geometry, Layout, Noise};
pub use params::{HeContext, HeParams};
