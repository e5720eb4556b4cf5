//! The simulated network: latency, loss, duplication, reordering and partitions.
//!
//! Every message between nodes travels as codec bytes (the caller encodes and decodes), and the
//! network decides, per copy, whether and when it arrives:
//!
//! - **latency**: uniform in `[latency_min_us, latency_max_us]`, plus the link's extra latency
//!   (a slow link), plus, with probability `reorder_per_mille`, an extra delay uniform in
//!   `[0, reorder_delay_max_us]` that lets later messages overtake it;
//! - **loss**: dropped with probability `drop_per_mille`;
//! - **duplication**: with probability `duplicate_per_mille`, a second copy with its own latency;
//! - **partitions**: a directed connectivity matrix; a message on a cut link is dropped at send
//!   time and at delivery time (a cut made while it was in flight loses it too). Cuts may be
//!   one-way (asymmetric).
//!
//! Probabilities are integers per mille and times integers in microseconds, so every decision is
//! platform-independent.

use crate::rng::SimRng;
use serde::{Deserialize, Serialize};
use verity_core::NodeId;

/// Network behaviour, all rates per mille and times in microseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkOptions {
    /// Lowest one-way latency.
    pub latency_min_us: u64,
    /// Highest one-way latency (before reordering and slow links).
    pub latency_max_us: u64,
    /// Chance that a message is lost.
    pub drop_per_mille: u64,
    /// Chance that a message arrives twice.
    pub duplicate_per_mille: u64,
    /// Chance that a message is held back so later ones overtake it.
    pub reorder_per_mille: u64,
    /// Longest hold-back of a reordered message.
    pub reorder_delay_max_us: u64,
}

impl NetworkOptions {
    /// A calm local network: 0.5-5 ms, nothing lost.
    #[must_use]
    pub fn calm() -> NetworkOptions {
        NetworkOptions {
            latency_min_us: 500,
            latency_max_us: 5_000,
            drop_per_mille: 0,
            duplicate_per_mille: 0,
            reorder_per_mille: 0,
            reorder_delay_max_us: 0,
        }
    }
}

/// The state of the simulated network.
#[derive(Clone, Debug)]
pub struct Network {
    /// Current behaviour (faults may change it for a while).
    pub options: NetworkOptions,
    /// `cut[from][to]`: messages from `from` to `to` are dropped.
    cut: Vec<Vec<bool>>,
    /// `extra_latency_us[from][to]`: added to every message on that link.
    extra_latency_us: Vec<Vec<u64>>,
}

impl Network {
    /// A fully connected network of nodes `1..=nodes`.
    #[must_use]
    pub fn new(nodes: u64, options: NetworkOptions) -> Network {
        let size = nodes as usize + 1;
        Network {
            options,
            cut: vec![vec![false; size]; size],
            extra_latency_us: vec![vec![0; size]; size],
        }
    }

    /// Whether `from` can currently reach `to`.
    #[must_use]
    pub fn connected(&self, from: NodeId, to: NodeId) -> bool {
        !self.cut[from.0 as usize][to.0 as usize]
    }

    /// Cuts or restores the one-way link `from -> to`.
    pub fn set_cut(&mut self, from: NodeId, to: NodeId, cut: bool) {
        self.cut[from.0 as usize][to.0 as usize] = cut;
    }

    /// Sets the extra latency of the one-way link `from -> to`.
    pub fn set_extra_latency(&mut self, from: NodeId, to: NodeId, extra_us: u64) {
        self.extra_latency_us[from.0 as usize][to.0 as usize] = extra_us;
    }

    /// Heals every cut and slow link.
    pub fn heal_links(&mut self) {
        for row in &mut self.cut {
            row.fill(false);
        }
        for row in &mut self.extra_latency_us {
            row.fill(0);
        }
    }

    /// Decides the fate of one message sent now: the delays (zero, one or two copies) after
    /// which copies arrive.
    pub fn route(&self, rng: &mut SimRng, from: NodeId, to: NodeId) -> Vec<u64> {
        if !self.connected(from, to) || rng.chance(self.options.drop_per_mille) {
            return Vec::new();
        }
        let copies = if rng.chance(self.options.duplicate_per_mille) {
            2
        } else {
            1
        };
        (0..copies).map(|_| self.latency(rng, from, to)).collect()
    }

    /// A one-way latency for a message that is not lost (also used for client traffic).
    pub fn latency(&self, rng: &mut SimRng, from: NodeId, to: NodeId) -> u64 {
        let o = &self.options;
        let mut delay = rng.between(o.latency_min_us, o.latency_max_us.max(o.latency_min_us));
        delay += self.extra_latency_us[from.0 as usize][to.0 as usize];
        if rng.chance(o.reorder_per_mille) {
            delay += rng.between(0, o.reorder_delay_max_us);
        }
        delay
    }
}
