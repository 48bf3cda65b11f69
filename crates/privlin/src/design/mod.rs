//! Network design (DeepReShape, DeepReDuce): where a network's ReLUs sit decides much of what
//! ReLU optimization can reach, and FLOPs are not free once the offline HE work of a stream of
//! requests counts (`shared/papers/004_*`).
//!
//! - [`stages`]: per-stage ReLUs and MACs of a ResNet-family spec by formula, so candidate
//!   networks far too wide to build can be priced.
//! - [`equalize`]: ReLU equalization, the HybReNet multipliers whose stage ReLU counts follow a
//!   criticality order under a bound on the last multiplier.
//! - [`criticality`]: stage criticality measured DeepReDuce's way (only one stage's ReLUs kept)
//!   or read from a stage-level Shapley game.
//! - [`cull`]: DeepReDuce's culling and thinning chosen for a ReLU budget.

pub mod criticality;
pub mod cull;
pub mod equalize;
pub mod stages;

pub use criticality::{Criticality, RankBy};
pub use equalize::{equalize, Candidate, EqualizeConfig};
pub use stages::{stage_costs, StageCost};
