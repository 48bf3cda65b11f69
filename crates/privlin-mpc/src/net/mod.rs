//! Counted message channels between the two parties.
//!
//! Every message is one frame: a 12-byte header (payload length, and the instant the in-process
//! shaper delivers it, zero when unshaped) and the payload. [`Channel`] counts bytes each way,
//! messages and flights (maximal runs of messages in one direction), per phase label, and refuses
//! frames larger than its limit before allocating them.

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
/// Default largest frame accepted from a peer.
pub const DEFAULT_MAX_FRAME: u64 = 1 << 30;

/// A byte pipe that carries frames.
pub trait Transport: Send {
    /// Writes one frame (header then payload) and flushes; the payload is handed over, so that an
    /// in-memory transport moves it instead of copying.
    fn write_frame(&mut self, deliver_at_ns: u64, payload: Vec<u8>) -> Result<()>;
    /// Reads one frame's header: `(payload length, deliver_at_ns)`.
    fn read_header(&mut self, context: &str) -> Result<(u64, u64)>;
    /// Reads `len` payload bytes after a header.
    fn read_payload(&mut self, len: usize, context: &str) -> Result<Vec<u8>>;
}

pub struct Channel {
    transport: Box<dyn Transport>,
    pub meter: Meter,
    max_frame: u64,
    shaper: Option<Shaper>,
}

impl Channel {
    pub fn new(transport: Box<dyn Transport>) -> Self {
        Channel {
            transport,
            meter: Meter::default(),
            max_frame: DEFAULT_MAX_FRAME,
            shaper: None,
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

    /// The label that the following messages are counted under.
    pub fn phase(&mut self, label: impl Into<String>) {
        self.meter.set_label(label.into());
    }

    pub fn send(&mut self, payload: Vec<u8>) -> Result<()> {
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

    /// Receives one message; `what` names it in errors.
    pub fn recv(&mut self, what: &str) -> Result<Vec<u8>> {
        let (len, at) = self.transport.read_header(what)?;
        if len > self.max_frame {
            return Err(MpcError::Oversized {
                len,
                max: self.max_frame,
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
            shaper::wait_until(at);
        }
        self.meter.received(len + HEADER);
        Ok(payload)
    }
}
