//! Traffic counters per phase label.

use serde::{Deserialize, Serialize};

/// Bytes, messages and flights under one label, from one party's side.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Traffic {
    pub label: String,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub messages: u64,
    /// Maximal runs of consecutive messages in one direction (one-way latencies paid).
    pub flights: u64,
    /// Wall time spent under this label (this party's clock).
    pub seconds: f64,
}

impl Traffic {
    pub fn bytes(&self) -> u64 {
        self.bytes_sent + self.bytes_received
    }
}

#[derive(Debug, Clone, Default)]
pub struct Meter {
    entries: Vec<Traffic>,
    current: Option<usize>,
    last_dir: Option<bool>,
    since: Option<std::time::Instant>,
}

impl Meter {
    pub fn set_label(&mut self, label: String) {
        self.stop_clock();
        self.since = Some(std::time::Instant::now());
        let i = match self.entries.iter().position(|e| e.label == label) {
            Some(i) => i,
            None => {
                self.entries.push(Traffic {
                    label,
                    ..Default::default()
                });
                self.entries.len() - 1
            }
        };
        self.current = Some(i);
    }

    fn entry(&mut self, sending: bool) -> &mut Traffic {
        if self.current.is_none() {
            self.set_label("unlabelled".into());
        }
        let new_flight = self.last_dir != Some(sending);
        self.last_dir = Some(sending);
        let e = &mut self.entries[self.current.unwrap()];
        if new_flight {
            e.flights += 1;
        }
        e.messages += 1;
        e
    }

    pub fn sent(&mut self, bytes: u64) {
        self.entry(true).bytes_sent += bytes;
    }

    pub fn received(&mut self, bytes: u64) {
        self.entry(false).bytes_received += bytes;
    }

    /// Charges the time since the last label change to the current label.
    pub fn stop_clock(&mut self) {
        if let (Some(i), Some(t)) = (self.current, self.since.take()) {
            self.entries[i].seconds += t.elapsed().as_secs_f64();
        }
    }

    pub fn entries(&self) -> &[Traffic] {
        &self.entries
    }

    /// The entries with their clocks zeroed: what two meters of the same message sequence (a
    /// session's and the cost model's replay) must agree on to the byte.
    pub fn counts(&self) -> Vec<Traffic> {
        self.entries
            .iter()
            .map(|e| Traffic {
                seconds: 0.0,
                ..e.clone()
            })
            .collect()
    }

    /// Sum over labels starting with `prefix`.
    pub fn total(&self, prefix: &str) -> Traffic {
        let mut t = Traffic {
            label: prefix.to_string(),
            ..Default::default()
        };
        for e in self.entries.iter().filter(|e| e.label.starts_with(prefix)) {
            t.bytes_sent += e.bytes_sent;
            t.bytes_received += e.bytes_received;
            t.messages += e.messages;
            t.flights += e.flights;
            t.seconds += e.seconds;
        }
        t
    }

    pub fn reset(&mut self) {
        *self = Meter::default();
    }
}
