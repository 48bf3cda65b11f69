//! TCP transport (`privlin pi serve` / `privlin pi client`).

use super::{Transport, HEADER};
use crate::error::{MpcError, Result};
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Bytes handed to one `write` call: between two calls the session deadline is checked again and
/// the socket's send timeout re-armed, so a peer that drains a few bytes per timeout period cannot
/// hold a write past the deadline.
const WRITE_CHUNK: usize = 64 << 10;

pub struct TcpTransport {
    r: BufReader<TcpStream>,
    w: TcpStream,
    /// Per-operation timeout: a peer that neither sends nor takes bytes for this long is dropped.
    timeout: Duration,
    /// The session deadline: reads and writes are cut at it, however the peer trickles bytes.
    deadline: Option<Instant>,
}

impl TcpTransport {
    /// Wraps a connected stream; a peer silent for `timeout` (reading) or not taking bytes for
    /// `timeout` (writing) is an error.
    pub fn new(stream: TcpStream, timeout: Duration) -> Result<Self> {
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        let r = BufReader::with_capacity(1 << 20, stream.try_clone()?);
        let w = stream;
        Ok(TcpTransport {
            r,
            w,
            timeout,
            deadline: None,
        })
    }

    /// The socket timeouts for the next operation: the per-operation timeout, shortened to what
    /// is left of the session; an error once the deadline has passed.
    fn arm(&mut self, context: &str) -> Result<()> {
        let Some(at) = self.deadline else {
            return Ok(());
        };
        let left = at.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(MpcError::Protocol(format!(
                "session deadline passed while {context}"
            )));
        }
        let t = Some(self.timeout.min(left));
        self.r.get_ref().set_read_timeout(t)?;
        self.w.set_write_timeout(t)?;
        Ok(())
    }

    /// `write_all` in chunks of at most [`WRITE_CHUNK`] bytes, re-arming the send timeout (and
    /// checking the session deadline) before each: a slow-reading peer is cut at the deadline.
    fn write_all(&mut self, mut buf: &[u8]) -> Result<()> {
        while !buf.is_empty() {
            self.arm("sending")?;
            let n = buf.len().min(WRITE_CHUNK);
            match self.w.write(&buf[..n]) {
                Ok(0) => {
                    return Err(MpcError::Disconnected {
                        context: "while sending".into(),
                    })
                }
                Ok(k) => buf = &buf[k..],
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if self.deadline.is_some_and(|at| Instant::now() >= at) => {
                    return Err(MpcError::Protocol(format!(
                        "session deadline passed while sending ({e})"
                    )))
                }
                Err(e) => {
                    return Err(match e.kind() {
                        ErrorKind::BrokenPipe | ErrorKind::ConnectionReset => {
                            MpcError::Disconnected {
                                context: "while sending".into(),
                            }
                        }
                        ErrorKind::WouldBlock | ErrorKind::TimedOut => MpcError::Protocol(
                            "timed out sending: the peer does not take bytes".into(),
                        ),
                        _ => MpcError::Io(e),
                    })
                }
            }
        }
        Ok(())
    }

    /// `read_exact` in pieces, re-arming the timeouts before each, so that a peer sending one
    /// byte per timeout period still meets the session deadline.
    fn read_all(&mut self, buf: &mut [u8], context: &str) -> Result<()> {
        let mut done = 0;
        while done < buf.len() {
            self.arm(context)?;
            match self.r.read(&mut buf[done..]) {
                Ok(0) => {
                    return Err(MpcError::Disconnected {
                        context: format!("while reading {context}"),
                    })
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if self.deadline.is_some_and(|at| Instant::now() >= at) => {
                    return Err(MpcError::Protocol(format!(
                        "session deadline passed while reading {context} ({e})"
                    )))
                }
                Err(e) => return Err(read_err(e, context)),
            }
        }
        Ok(())
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
        let mut head = [0u8; HEADER as usize];
        head[0..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        head[4..12].copy_from_slice(&at.to_le_bytes());
        if payload.len() <= WRITE_CHUNK {
            // One write for a small frame (no extra segment with Nagle off).
            let mut frame = Vec::with_capacity(head.len() + payload.len());
            frame.extend_from_slice(&head);
            frame.extend_from_slice(&payload);
            return self.write_all(&frame);
        }
        self.write_all(&head)?;
        self.write_all(&payload)
    }

    fn set_deadline(&mut self, at: Instant) {
        self.deadline = Some(at);
    }

    fn wait_readable(&mut self, slice: Duration) -> Result<bool> {
        if !self.r.buffer().is_empty() {
            return Ok(true);
        }
        self.arm("waiting for a request")?;
        let t = self
            .r
            .get_ref()
            .read_timeout()?
            .map_or(slice, |t| t.min(slice));
        self.r
            .get_ref()
            .set_read_timeout(Some(t.max(Duration::from_millis(1))))?;
        let res = match self.r.fill_buf() {
            Ok([]) => Err(MpcError::Disconnected {
                context: "while waiting for a request".into(),
            }),
            Ok(_) => Ok(true),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => Ok(false),
            Err(e) if e.kind() == ErrorKind::Interrupted => Ok(false),
            Err(e) => Err(read_err(e, "a request")),
        };
        self.r.get_ref().set_read_timeout(Some(self.timeout))?;
        res
    }

    fn read_header(&mut self, context: &str) -> Result<(u64, u64)> {
        let mut h = [0u8; HEADER as usize];
        self.read_all(&mut h, context)?;
        Ok((
            u32::from_le_bytes(h[0..4].try_into().unwrap()) as u64,
            u64::from_le_bytes(h[4..12].try_into().unwrap()),
        ))
    }

    fn read_payload(&mut self, len: usize, context: &str) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; len];
        self.read_all(&mut buf, context)?;
        Ok(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// `slow_reader`: a peer that drains 64 KiB every 20 ms (every write makes progress well
    /// within the 5 s send timeout, and the 64 MiB frame would take about 20 s) cannot hold the
    /// frame past the 1 s session deadline: the write is cut at the deadline with an error that
    /// says so (before the fix, one send timeout armed per frame let it run to the end). The
    /// reader stops by itself after 10 s whatever happens.
    #[test]
    fn slow_reader_is_cut_at_the_deadline() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let reader = std::thread::spawn(move || {
            let mut s = TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            let started = Instant::now();
            let mut buf = vec![0u8; 64 << 10];
            while started.elapsed() < Duration::from_secs(10) {
                match s.read(&mut buf) {
                    Ok(0) => break,
                    Ok(_) | Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        let (stream, _) = listener.accept().unwrap();
        let mut t = TcpTransport::new(stream, Duration::from_secs(5)).unwrap();
        let started = Instant::now();
        t.set_deadline(started + Duration::from_secs(1));
        let err = t.write_frame(0, vec![7u8; 64 << 20]).unwrap_err();
        let took = started.elapsed();
        assert!(err.to_string().contains("deadline"), "{err}");
        assert!(took < Duration::from_millis(1800), "cut after {took:?}");
        drop(t);
        reader.join().unwrap();
    }
}
