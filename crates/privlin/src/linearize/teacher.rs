//! The all-ReLU teacher and the distillation objective, at home in [`crate::train::distill`]
//! (re-exported here for the learners).

pub use crate::train::distill::{distill_loss, Distill, Teacher};
