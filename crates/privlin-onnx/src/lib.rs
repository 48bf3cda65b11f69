//! ONNX models in and out of privlin.
//!
//! [`import`] reads an ONNX model (opset 13 and later) through the official `onnx.proto`
//! (compiled by prost) into a checked [`ir::Graph`] of the operations privlin supports, with its
//! parameters; anything else is refused with the node's name and the list in [`ir::SUPPORTED`],
//! nothing is approximated. [`export`] writes a graph back to ONNX with every partially
//! linearized site as `x + m (relu(x) - x)` (= `m relu(x) + (1 - m) x`) and batch norms folded
//! into the convolutions before them. No libtorch: the model that trains is built from the graph
//! in `privlin::nn::graph`.

pub mod error;
pub mod export;
pub mod import;
pub mod ir;

/// The types generated from `proto/onnx.proto`.
#[allow(clippy::all, missing_docs)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/onnx.rs"));
}

pub use error::{Error, Result};
pub use export::{export, SiteExport};
pub use import::{import, Imported};
pub use ir::{Graph, Node, Op, Param, Role, TensorData, Window, SUPPORTED};
