//! privlin: partial-ReLU convolutional networks for two-party private inference.
//!
//! This crate holds the libtorch side: models whose nonlinearities are named, maskable activation
//! sites ([`nn`]), datasets and loaders ([`data`]), and all-ReLU training with checkpoints
//! ([`train`]).

pub mod budget;
pub mod data;
pub mod design;
pub mod device;
pub mod importance;
pub mod info;
pub mod io;
pub mod linearize;
pub mod nn;
pub mod onnx;
pub mod pi;
pub mod pipeline;
pub mod plot;
pub mod reshape;
pub mod train;
