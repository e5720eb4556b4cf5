//! Snapshots: the state machine as of a log index, standing for every entry up to it.
//!
//! A node takes one when enough has been applied since its last ([`crate::Config`]'s
//! `snapshot_entries` and `snapshot_bytes`), hands it to its driver to write (in
//! [`crate::Ready::snapshot`]) and compacts its log up to it, keeping a few trailing entries for
//! followers that are just behind. A leader sends it, in chunks, to a follower that needs an
//! entry compacted away; the follower installs it when the last chunk arrives.

use crate::types::{LogIndex, Term};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Which prefix of the log a snapshot stands for: up to `index`, whose entry had `term`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    /// The last index the snapshot covers: its state machine has applied exactly this far.
    pub index: LogIndex,
    /// The term of the entry at `index`.
    pub term: Term,
}

/// A snapshot: its position and the image of the state machine there
/// ([`crate::kv::StateMachine::image`]). Cloning shares the image.
#[derive(Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Where it stands in the log.
    pub meta: SnapshotMeta,
    /// The state machine's image.
    pub data: Arc<Vec<u8>>,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Snapshot {{ index: {}, term: {}, {} bytes }}",
            self.meta.index,
            self.meta.term,
            self.data.len()
        )
    }
}
