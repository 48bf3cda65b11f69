//! Counted message channels between the two parties.
//!
//! Every message is one frame: a 12-byte header (payload length, and the instant the in-process
//! shaper delivers it, zero when unshaped) and the payload. [`Channel`] counts bytes each way,
//! messages and flights (maximal runs of messages in one direction), per phase label. Every
//! receive states the size it expects ([`Expect`]: exactly the size the public architecture
//! implies, or a bound), and a frame header that announces anything else is refused before its
//! payload is read or allocated. A session deadline bounds the whole exchange.

pub mod mem;
pub mod meter;
pub mod shaper;
pub mod tcp;

pub use meter::{Meter, Traffic};
pub use shaper::Profile;

use crate::error::{MpcError, Result};
use shaper::Shaper;

/// Bytes of the frame header on the wire.
pub const HEADER: u64 = 12;
/// Default largest frame accepted from a peer (a second bound beside each message's [`Expect`]).
pub const DEFAULT_MAX_FRAME: u64 = 1 << 30;

/// The payload size a receive accepts, stated before the frame is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Exactly this many bytes (every protocol message: its size follows from the public
    /// architecture and ring).
    Exact(u64),
    /// At most this many bytes (the hello, whose architecture is not known yet).
    AtMost(u64),
}

impl Expect {
    fn admits(&self, len: u64) -> bool {
        match *self {
            Expect::Exact(n) => len == n,
            Expect::AtMost(n) => len <= n,
        }
    }
}

/// A byte pipe that carries frames.
pub trait Transport: Send {
    /// Writes one frame (header then payload) and flushes; the payload is handed over, so that an
    /// in-memory transport moves it instead of copying.
    fn write_frame(&mut self, deliver_at_ns: u64, payload: Vec<u8>) -> Result<()>;
    /// Reads one frame's header: `(payload length, deliver_at_ns)`.
    fn read_header(&mut self, context: &str) -> Result<(u64, u64)>;
    /// Reads `len` payload bytes after a header.
    fn read_payload(&mut self, len: usize, context: &str) -> Result<Vec<u8>>;
    /// Cuts reads and writes at `at` (the session deadline); in-memory transports ignore it.
    fn set_deadline(&mut self, _at: std::time::Instant) {}
    /// Waits up to `slice` for the next frame's first byte without consuming anything: `true`
    /// when one is there, `false` when the slice passed, an error when the peer closed. For a
    /// server waiting between requests (it can then check for shutdown); transports that cannot
    /// tell return `true` and the next read blocks.
    fn wait_readable(&mut self, _slice: std::time::Duration) -> Result<bool> {
        Ok(true)
    }
}

pub struct Channel {
    transport: Box<dyn Transport>,
    pub meter: Meter,
    max_frame: u64,
    shaper: Option<Shaper>,
    deadline: Option<std::time::Instant>,
}

impl Channel {
    pub fn new(transport: Box<dyn Transport>) -> Self {
        Channel {
            transport,
            meter: Meter::default(),
            max_frame: DEFAULT_MAX_FRAME,
            shaper: None,
            deadline: None,
        }
    }

    /// Ends the session with an error once `limit` has passed from now: no send or receive
    /// starts after it, and the transport's reads and writes are cut at it.
    pub fn with_deadline(mut self, limit: std::time::Duration) -> Self {
        let at = std::time::Instant::now() + limit;
        self.deadline = Some(at);
        self.transport.set_deadline(at);
        self
    }

    /// Moves the session deadline to `at` (e.g. from a short set-up deadline to the session's).
    pub fn set_deadline(&mut self, at: std::time::Instant) {
        self.deadline = Some(at);
        self.transport.set_deadline(at);
    }

    fn check_deadline(&self, what: &str) -> Result<()> {
        match self.deadline {
            Some(at) if std::time::Instant::now() >= at => Err(MpcError::Protocol(format!(
                "session deadline passed before {what}"
            ))),
            _ => Ok(()),
        }
    }

    pub fn with_max_frame(mut self, max: u64) -> Self {
        self.max_frame = max;
        self
    }

    /// Delays every message as the network `profile` would (see [`shaper`]).
    pub fn with_profile(mut self, profile: Option<Profile>) -> Self {
        self.shaper = profile.map(Shaper::new);
        self
    }

    pub fn profile(&self) -> Option<&Profile> {
        self.shaper.as_ref().map(|s| &s.profile)
    }

    /// See [`Transport::wait_readable`].
    pub fn wait_readable(&mut self, slice: std::time::Duration) -> Result<bool> {
        self.transport.wait_readable(slice)
    }

    /// The label that the following messages are counted under.
    pub fn phase(&mut self, label: impl Into<String>) {
        self.meter.set_label(label.into());
    }

    pub fn send(&mut self, payload: Vec<u8>) -> Result<()> {
        self.check_deadline("sending")?;
        let len = payload.len() as u64;
        if len > u32::MAX as u64 {
            return Err(MpcError::Protocol(format!(
                "a message of {len} bytes does not fit a frame (at most {} bytes)",
                u32::MAX
            )));
        }
        let at = match self.shaper.as_mut() {
            Some(s) => s.departure(len + HEADER),
            None => 0,
        };
        self.transport.write_frame(at, payload)?;
        self.meter.sent(len + HEADER);
        Ok(())
    }

    /// Receives one message of the `expect`ed size; `what` names it in errors. The header is
    /// checked against `expect` (and the channel's frame limit) before the payload is read.
    pub fn recv(&mut self, what: &str, expect: Expect) -> Result<Vec<u8>> {
        self.check_deadline(what)?;
        let (len, at) = self.transport.read_header(what)?;
        if len > self.max_frame {
            return Err(MpcError::Oversized {
                len,
                max: self.max_frame,
            });
        }
        if !expect.admits(len) {
            return Err(match expect {
                Expect::AtMost(max) => MpcError::Oversized { len, max },
                Expect::Exact(n) => MpcError::malformed(
                    what,
                    format!("frame announces {len} bytes, the protocol sends exactly {n}"),
                ),
            });
        }
        let payload = self.transport.read_payload(len as usize, what)?;
        // Delivery stamps are honoured only when this side shapes too, and never beyond a bound:
        // a peer cannot make us sleep arbitrarily long.
        if at != 0 && self.shaper.is_some() {
            let now = shaper::now_ns();
            if at > now + shaper::MAX_DELAY_NS {
                return Err(MpcError::malformed(
                    what,
                    format!(
                        "delivery stamp {:.1} s in the future",
                        (at - now) as f64 * 1e-9
                    ),
                ));
            }
            // Never sleep past the session deadline: a stamp beyond it ends the session there.
            if let Some(d) = self.deadline {
                let left = d.saturating_duration_since(std::time::Instant::now());
                if at > now + left.as_nanos() as u64 {
                    std::thread::sleep(left);
                    return Err(MpcError::Protocol(format!(
                        "session deadline passed while {what} was delayed by the network shaper"
                    )));
                }
            }
            shaper::wait_until(at);
        }
        self.meter.received(len + HEADER);
        Ok(payload)
    }
}
