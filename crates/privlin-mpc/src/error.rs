//! Errors of the two-party protocol: every failure names what was wrong, never panics on peer input.

use std::path::PathBuf;

pub type Result<T, E = MpcError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum MpcError {
    #[error("{path}: {msg}")]
    File { path: PathBuf, msg: String },
    #[error("model: {0}")]
    Model(String),
    #[error("parameters: {0}")]
    Params(String),
    #[error("malformed message from the peer ({what}): {msg}")]
    Malformed { what: String, msg: String },
    #[error("oversized message from the peer: {len} bytes announced, at most {max} allowed")]
    Oversized { len: u64, max: u64 },
    #[error("the peer disconnected ({context})")]
    Disconnected { context: String },
    #[error("network: {0}")]
    Io(#[from] std::io::Error),
    #[error("protocol: {0}")]
    Protocol(String),
}

impl MpcError {
    pub fn malformed(what: impl Into<String>, msg: impl Into<String>) -> Self {
        MpcError::Malformed {
            what: what.into(),
            msg: msg.into(),
        }
    }
    pub fn model(msg: impl Into<String>) -> Self {
        MpcError::Model(msg.into())
    }
    pub fn file(path: impl Into<PathBuf>, msg: impl std::fmt::Display) -> Self {
        MpcError::File {
            path: path.into(),
            msg: msg.to_string(),
        }
    }
}
