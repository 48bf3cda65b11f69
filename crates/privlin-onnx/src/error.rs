//! What can be wrong with an ONNX model, each naming the node or value at fault.

use crate::ir::SUPPORTED;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("not a readable ONNX model ({0}); is the file truncated or not ONNX?")]
    Decode(String),
    #[error("{0}")]
    Model(String),
    #[error("node `{node}`: operation `{op}` is not supported; privlin imports {SUPPORTED}")]
    Unsupported { node: String, op: String },
    #[error("node `{node}`: {msg}")]
    Attribute { node: String, msg: String },
    #[error("node `{node}`: shapes do not agree: {msg}")]
    Shape { node: String, msg: String },
    #[error("node `{node}` reads `{value}`, which no node, input or initializer produces")]
    Missing { node: String, value: String },
    #[error("the graph has a cycle through node `{node}`")]
    Cycle { node: String },
    #[error("{0}")]
    Graph(String),
}

pub type Result<T> = std::result::Result<T, Error>;
