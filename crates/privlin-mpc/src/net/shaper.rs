//! An in-process network shaper: each direction is a link of fixed bandwidth and one-way latency.
//!
//! The sender computes when the last byte of a frame would arrive (`max(now, link free) +
//! size / bandwidth + rtt / 2`), stamps the frame with it, and the receiver waits until then. Both
//! parties read the same system clock, so this works across threads and across processes of one
//! machine. It is used instead of Linux `tc netem` because netem is not available on this machine
//! (`tc qdisc add ... netem` answers "Specified qdisc kind is unknown"): every output says which.

use serde::{Deserialize, Serialize};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub name: String,
    /// Bytes per second, each direction.
    pub bandwidth: f64,
    /// Round-trip time in seconds.
    pub rtt: f64,
}

impl Profile {
    /// The profiles: LAN (1 GB/s, 1 ms RTT), fast WAN (300 MB/s, 5 ms), WAN (400 Mbit/s,
    /// 40 ms).
    pub fn presets() -> Vec<Profile> {
        vec![
            Profile {
                name: "lan".into(),
                bandwidth: 1e9,
                rtt: 1e-3,
            },
            Profile {
                name: "wan-fast".into(),
                bandwidth: 300e6,
                rtt: 5e-3,
            },
            Profile {
                name: "wan".into(),
                bandwidth: 400e6 / 8.0,
                rtt: 40e-3,
            },
        ]
    }

    pub fn by_name(name: &str) -> Option<Profile> {
        Self::presets().into_iter().find(|p| p.name == name)
    }

    pub fn describe(&self) -> String {
        format!(
            "{} ({:.0} MB/s, {:.0} ms RTT, in-process shaper)",
            self.name,
            self.bandwidth / 1e6,
            self.rtt * 1e3
        )
    }
}

pub struct Shaper {
    pub profile: Profile,
    link_free_ns: u64,
}

/// The longest a delivery stamp may lie in the future (a slow link with a large frame).
pub const MAX_DELAY_NS: u64 = 120_000_000_000;

pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
}

/// Sleeps until the system clock reaches `at_ns`.
pub fn wait_until(at_ns: u64) {
    let now = now_ns();
    if at_ns > now {
        std::thread::sleep(Duration::from_nanos(at_ns - now));
    }
}

impl Shaper {
    pub fn new(profile: Profile) -> Self {
        Shaper {
            profile,
            link_free_ns: 0,
        }
    }

    /// The delivery instant of a frame of `bytes` sent now.
    pub fn departure(&mut self, bytes: u64) -> u64 {
        let start = now_ns().max(self.link_free_ns);
        let tx = (bytes as f64 / self.profile.bandwidth * 1e9) as u64;
        self.link_free_ns = start + tx;
        self.link_free_ns + (self.profile.rtt / 2.0 * 1e9) as u64
    }
}
