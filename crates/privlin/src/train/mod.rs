//! All-ReLU training, evaluation, checkpoints.

pub mod checkpoint;
pub mod config;
pub mod data;
pub mod distill;
pub mod evaluate;
pub mod fit;
pub mod losses;
pub mod optim;
pub mod run;
pub mod schedule;

pub use checkpoint::{load_model, CheckpointSpec};
pub use config::{ModelConfig, RunConfig, TrainConfig};
pub use evaluate::{evaluate, EvalResult};
pub use fit::{fit, CrossEntropy, EpochMetrics, FitOptions, MaskProgress, Objective};
