//! Two endpoints of an in-memory channel (two threads of one process, for tests and benchmarks).
//! Frames move between the threads without a copy of their payload.

use super::{Transport, HEADER};
use crate::error::{MpcError, Result};
use std::sync::mpsc::{channel, Receiver, Sender};

/// What travels: a frame, or raw bytes that claim to be one (tests of malformed peers).
enum Message {
    Frame { at: u64, payload: Vec<u8> },
    Raw(Vec<u8>),
}

pub struct MemTransport {
    tx: Sender<Message>,
    rx: Receiver<Message>,
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
        self.tx
            .send(Message::Raw(bytes))
            .map_err(|_| MpcError::Disconnected {
                context: "sending raw bytes".into(),
            })
    }
}

impl Transport for MemTransport {
    fn write_frame(&mut self, at: u64, payload: Vec<u8>) -> Result<()> {
        self.tx
            .send(Message::Frame { at, payload })
            .map_err(|_| MpcError::Disconnected {
                context: "sending".into(),
            })
    }

    fn read_header(&mut self, context: &str) -> Result<(u64, u64)> {
        let msg = self.rx.recv().map_err(|_| MpcError::Disconnected {
            context: format!("waiting for {context}"),
        })?;
        match msg {
            Message::Frame { at, payload } => {
                let len = payload.len() as u64;
                self.pending = Some(payload);
                Ok((len, at))
            }
            Message::Raw(f) => {
                if f.len() < HEADER as usize {
                    return Err(MpcError::malformed(
                        context,
                        format!("frame of {} bytes has no header", f.len()),
                    ));
                }
                let len = u32::from_le_bytes(f[0..4].try_into().unwrap()) as u64;
                let at = u64::from_le_bytes(f[4..12].try_into().unwrap());
                self.pending = Some(f[HEADER as usize..].to_vec());
                Ok((len, at))
            }
        }
    }

    fn read_payload(&mut self, len: usize, context: &str) -> Result<Vec<u8>> {
        let body = self.pending.take().unwrap_or_default();
        if body.len() != len {
            return Err(MpcError::malformed(
                context,
                format!("frame announces {len} bytes, carries {}", body.len()),
            ));
        }
        Ok(body)
    }
}
