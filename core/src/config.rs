//! Static configuration of one Raft node.
//!
//! Everything that decides behaviour is here, including the seed of the node's only source of
//! randomness (election timeouts). Time is counted in ticks: the driver decides how long a tick
//! is (the simulator uses virtual milliseconds, production a timer).

use crate::types::NodeId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The largest [`Config::snapshot_chunk_bytes`]: half a frame, leaving room for the rest of
/// the message.
pub const MAX_SNAPSHOT_CHUNK_BYTES: u64 = crate::codec::MAX_FRAME_BYTES as u64 / 2;

/// The settings of one node. Build with [`Config::new`] and adjust fields; [`Config::validate`]
/// states the rules and is called by the node constructors.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// This node's id; must be one of `voters`.
    pub id: NodeId,
    /// Every voting member of the cluster, this node included. Fixed for now; membership
    /// changes will replace this with a configuration carried in the log.
    pub voters: BTreeSet<NodeId>,
    /// Seed of the node's random generator (election timeout jitter). Give each node of a
    /// cluster a different seed, or elections split more often.
    pub seed: u64,
    /// Minimum election timeout. A follower that hears nothing from a leader for a timeout
    /// drawn uniformly from `[election_timeout_ticks, 2 * election_timeout_ticks)` campaigns.
    pub election_timeout_ticks: u64,
    /// How often a leader sends heartbeats; must be well below `election_timeout_ticks`.
    pub heartbeat_interval_ticks: u64,
    /// Whether a node whose election timer fires first asks its peers whether it could win
    /// (pre-vote, dissertation §9.6), raising its term only if a majority would vote for it.
    /// A node cut off from the cluster, or one that can send but not hear, then never deposes
    /// a healthy leader. On by default; classic Raft without it is kept for tests.
    pub pre_vote: bool,
    /// How long after a confirmed read round starts a leader serves lease reads without a round,
    /// in milliseconds of the driver's monotonic clock; 0 serves them as linearizable reads.
    /// Must stay below the minimum election timeout in real time by the clock drift between
    /// nodes: see [`Config::safe_lease_ms`].
    pub lease_read_ms: u64,
    /// Most entries carried by one AppendEntries message (batching bound).
    pub max_entries_per_append: usize,
    /// Most payload bytes ([`crate::Entry::payload_bytes`]) in one AppendEntries; a message
    /// always carries at least one entry, so one entry may exceed it.
    pub max_append_bytes: u64,
    /// Most AppendEntries messages in flight to one follower in the replicate state.
    pub max_inflight_appends: usize,
    /// Most entries a leader keeps that are not yet committed; proposals beyond it are refused
    /// with [`crate::ProposeError::Overloaded`] so memory stays bounded when followers are away.
    pub max_uncommitted_entries: usize,
    /// Largest value a write may produce (`SET`, `APPEND`, `SETRANGE`, …); larger ones are
    /// refused with Redis's `proto-max-bulk-len` error. Must be the same on every replica.
    pub max_value_bytes: u64,
    /// Session table bounds (exactly-once client semantics).
    pub sessions: SessionLimits,
    /// Take a snapshot and compact the log once this many entries were applied since the
    /// last snapshot.
    pub snapshot_entries: u64,
    /// Or once entries carrying this many payload bytes ([`crate::Entry::payload_bytes`])
    /// were applied since the last snapshot.
    pub snapshot_bytes: u64,
    /// Entries a node keeps in memory below its latest snapshot, so that a follower just
    /// behind is sent entries rather than the whole snapshot.
    pub snapshot_trailing_entries: u64,
    /// Most bytes of a snapshot image in one `InstallSnapshot` message.
    pub snapshot_chunk_bytes: u64,
    /// The catalogued bug switched on, if any (testing builds only).
    #[cfg(feature = "bug-catalogue")]
    pub bug: Option<crate::bugs::Bug>,
}

/// Bounds on the exactly-once session table. Every value here is applied deterministically from
/// the log, so all replicas expire and evict the same sessions at the same index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionLimits {
    /// Most open sessions; opening one more evicts the least recently active.
    pub max_sessions: usize,
    /// A session not used for this many log entries expires.
    pub idle_expiry_entries: u64,
    /// How many of a session's most recent sequence numbers are remembered for retries. A
    /// client may have at most this many requests outstanding (pipelined) on one session.
    pub reply_window: u64,
    /// Most bytes of write replies one session keeps (reads' replies are never kept); the
    /// oldest go first.
    pub max_reply_bytes_per_session: u64,
    /// Most bytes of write replies all sessions keep together; the least recently active
    /// sessions' oldest replies go first.
    pub max_reply_bytes_total: u64,
}

/// A configuration that breaks one of the rules of [`Config::validate`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `id` is not a member of `voters`.
    #[error("node id {id} is not among the voters {voters:?}: add it to the voter list")]
    NotAVoter {
        /// The offending id.
        id: NodeId,
        /// The configured voters.
        voters: Vec<NodeId>,
    },
    /// A node id of zero.
    #[error("node id 0 is reserved: number nodes from 1")]
    ZeroNodeId,
    /// Timeouts that cannot elect a stable leader.
    #[error(
        "heartbeat interval ({heartbeat_ticks} ticks) must be at least 1 and below the election \
         timeout ({election_ticks} ticks): raise election_timeout_ticks"
    )]
    Timeouts {
        /// The configured heartbeat interval.
        heartbeat_ticks: u64,
        /// The configured election timeout.
        election_ticks: u64,
    },
    /// A snapshot chunk that would not fit in one message.
    #[error(
        "snapshot_chunk_bytes is {chunk_bytes}, above the largest chunk a message carries \
         ({MAX_SNAPSHOT_CHUNK_BYTES} bytes)"
    )]
    ChunkTooLarge {
        /// The configured chunk size.
        chunk_bytes: u64,
    },
    /// A bound of zero, which would stop all progress.
    #[error("{name} must be at least 1")]
    ZeroBound {
        /// The field's name.
        name: &'static str,
    },
}

impl Config {
    /// A configuration with defaults suited to a tick of about 10 ms: elections after 150-300 ms
    /// of silence, heartbeats every 30 ms.
    #[must_use]
    pub fn new(id: NodeId, voters: impl IntoIterator<Item = NodeId>, seed: u64) -> Config {
        Config {
            id,
            voters: voters.into_iter().collect(),
            seed,
            election_timeout_ticks: 15,
            heartbeat_interval_ticks: 3,
            pre_vote: true,
            lease_read_ms: 0,
            max_entries_per_append: 256,
            max_append_bytes: 8 << 20,
            max_inflight_appends: 8,
            max_uncommitted_entries: 16_384,
            max_value_bytes: 512 << 20,
            sessions: SessionLimits {
                max_sessions: 4_096,
                idle_expiry_entries: 1_000_000,
                reply_window: 64,
                max_reply_bytes_per_session: 1 << 20,
                max_reply_bytes_total: 64 << 20,
            },
            snapshot_entries: 10_000,
            snapshot_bytes: 64 << 20,
            snapshot_trailing_entries: 1_000,
            snapshot_chunk_bytes: 1 << 20,
            #[cfg(feature = "bug-catalogue")]
            bug: None,
        }
    }

    /// The longest safe [`Config::lease_read_ms`] for ticks of `tick_us` microseconds when
    /// clocks may run up to `drift_per_mille` thousandths fast or slow: the minimum election
    /// timeout less one tick (a follower's timer may start anywhere within a tick), shrunk by
    /// the drift of both the leader's clock and a follower's.
    #[must_use]
    pub fn safe_lease_ms(&self, tick_us: u64, drift_per_mille: u64) -> u64 {
        let timeout_us = self.election_timeout_ticks.saturating_sub(1) * tick_us;
        let kept_per_mille = 1000u64.saturating_sub(2 * drift_per_mille);
        timeout_us * kept_per_mille / 1000 / 1000
    }

    /// Checks the rules: `id` is a non-zero voter, `1 <= heartbeat < election timeout`, no
    /// bound is zero, and a snapshot chunk fits in a message.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.voters.contains(&NodeId(0)) || self.id == NodeId(0) {
            return Err(ConfigError::ZeroNodeId);
        }
        if !self.voters.contains(&self.id) {
            return Err(ConfigError::NotAVoter {
                id: self.id,
                voters: self.voters.iter().copied().collect(),
            });
        }
        if self.heartbeat_interval_ticks == 0
            || self.heartbeat_interval_ticks >= self.election_timeout_ticks
        {
            return Err(ConfigError::Timeouts {
                heartbeat_ticks: self.heartbeat_interval_ticks,
                election_ticks: self.election_timeout_ticks,
            });
        }
        let bounds = [
            ("max_entries_per_append", self.max_entries_per_append as u64),
            ("max_append_bytes", self.max_append_bytes),
            ("max_inflight_appends", self.max_inflight_appends as u64),
            (
                "max_uncommitted_entries",
                self.max_uncommitted_entries as u64,
            ),
            ("sessions.max_sessions", self.sessions.max_sessions as u64),
            (
                "sessions.idle_expiry_entries",
                self.sessions.idle_expiry_entries,
            ),
            ("sessions.reply_window", self.sessions.reply_window),
            ("max_value_bytes", self.max_value_bytes),
            ("snapshot_entries", self.snapshot_entries),
            ("snapshot_bytes", self.snapshot_bytes),
            ("snapshot_chunk_bytes", self.snapshot_chunk_bytes),
        ];
        for (name, value) in bounds {
            if value == 0 {
                return Err(ConfigError::ZeroBound { name });
            }
        }
        if self.snapshot_chunk_bytes > MAX_SNAPSHOT_CHUNK_BYTES {
            return Err(ConfigError::ChunkTooLarge {
                chunk_bytes: self.snapshot_chunk_bytes,
            });
        }
        Ok(())
    }
}
