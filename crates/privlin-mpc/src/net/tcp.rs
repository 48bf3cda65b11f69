//! TCP transport (`privlin pi serve` / `privlin pi client`).

use super::{Transport, HEADER};
use crate::error::{MpcError, Result};
use std::io::{BufReader, BufWriter, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

pub struct TcpTransport {
    r: BufReader<TcpStream>,
    w: BufWriter<TcpStream>,
}

impl TcpTransport {
    /// Wraps a connected stream; a peer silent for `timeout` is an error.
    pub fn new(stream: TcpStream, timeout: Duration) -> Result<Self> {
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(timeout))?;
        let r = BufReader::with_capacity(1 << 20, stream.try_clone()?);
        let w = BufWriter::with_capacity(1 << 20, stream);
        Ok(TcpTransport { r, w })
    }
}

fn read_err(e: std::io::Error, context: &str) -> MpcError {
    match e.kind() {
        ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset | ErrorKind::BrokenPipe => {
            MpcError::Disconnected {
                context: format!("while reading {context}"),
            }
        }
        ErrorKind::WouldBlock | ErrorKind::TimedOut => {
            MpcError::Protocol(format!("timed out waiting for {context}"))
        }
        _ => MpcError::Io(e),
    }
}

impl Transport for TcpTransport {
    fn write_frame(&mut self, at: u64, payload: Vec<u8>) -> Result<()> {
        let wr = |w: &mut BufWriter<TcpStream>| -> std::io::Result<()> {
            w.write_all(&(payload.len() as u32).to_le_bytes())?;
            w.write_all(&at.to_le_bytes())?;
            w.write_all(&payload)?;
            w.flush()
        };
        wr(&mut self.w).map_err(|e| match e.kind() {
            ErrorKind::BrokenPipe | ErrorKind::ConnectionReset => MpcError::Disconnected {
                context: "while sending".into(),
            },
            _ => MpcError::Io(e),
        })
    }

    fn read_header(&mut self, context: &str) -> Result<(u64, u64)> {
        let mut h = [0u8; HEADER as usize];
        self.r
            .read_exact(&mut h)
            .map_err(|e| read_err(e, context))?;
        Ok((
            u32::from_le_bytes(h[0..4].try_into().unwrap()) as u64,
            u64::from_le_bytes(h[4..12].try_into().unwrap()),
        ))
    }

    fn read_payload(&mut self, len: usize, context: &str) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; len];
        self.r
            .read_exact(&mut buf)
            .map_err(|e| read_err(e, context))?;
        Ok(buf)
    }
}
