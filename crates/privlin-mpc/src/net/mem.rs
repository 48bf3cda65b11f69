//! Two endpoints of an in-memory channel (two threads of one process, for tests and benchmarks).

use super::{Transport, HEADER};
use crate::error::{MpcError, Result};
use std::sync::mpsc::{channel, Receiver, Sender};

pub struct MemTransport {
    tx: Sender<Vec<u8>>,
    rx: Receiver<Vec<u8>>,
    pending: Option<Vec<u8>>,
}

/// A connected pair.
pub fn pair() -> (MemTransport, MemTransport) {
    let (ta, rb) = channel();
    let (tb, ra) = channel();
    (
        MemTransport {
            tx: ta,
            rx: ra,
            pending: None,
        },
        MemTransport {
            tx: tb,
            rx: rb,
            pending: None,
        },
    )
}

impl MemTransport {
    /// Sends raw bytes that are not a well-formed frame (tests of malformed peers).
    pub fn send_raw(&mut self, bytes: Vec<u8>) -> Result<()> {
        self.tx.send(bytes).map_err(|_| MpcError::Disconnected {
            context: "sending raw bytes".into(),
        })
    }
}

impl Transport for MemTransport {
    fn write_frame(&mut self, at: u64, payload: &[u8]) -> Result<()> {
        let mut f = Vec::with_capacity(payload.len() + HEADER as usize);
        f.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        f.extend_from_slice(&at.to_le_bytes());
        f.extend_from_slice(payload);
        self.tx.send(f).map_err(|_| MpcError::Disconnected {
            context: "sending".into(),
        })
    }

    fn read_header(&mut self, context: &str) -> Result<(u64, u64)> {
        let f = self.rx.recv().map_err(|_| MpcError::Disconnected {
            context: format!("waiting for {context}"),
        })?;
        if f.len() < HEADER as usize {
            return Err(MpcError::malformed(
                context,
                format!("frame of {} bytes has no header", f.len()),
            ));
        }
        let len = u32::from_le_bytes(f[0..4].try_into().unwrap()) as u64;
        let at = u64::from_le_bytes(f[4..12].try_into().unwrap());
        self.pending = Some(f);
        Ok((len, at))
    }

    fn read_payload(&mut self, len: usize, context: &str) -> Result<Vec<u8>> {
        let f = self.pending.take().unwrap_or_default();
        let body = f.get(HEADER as usize..).unwrap_or(&[]);
        if body.len() != len {
            return Err(MpcError::malformed(
                context,
                format!("frame announces {len} bytes, carries {}", body.len()),
            ));
        }
        Ok(body.to_vec())
    }
}
