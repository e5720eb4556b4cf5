//! The node's output batch and the contract for handling it.

use crate::kv::Reply;
use crate::log::Entry;
use crate::message::Message;
use crate::snapshot::Snapshot;
use crate::types::{LogIndex, NodeId, Term};
use serde::{Deserialize, Serialize};

/// The state Raft must keep on stable storage across crashes (Figure 2's "persistent state").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardState {
    /// The latest term this node has seen.
    pub term: Term,
    /// Whom this node voted for in `term`, if anyone.
    pub vote: Option<NodeId>,
    /// The highest index known committed when the hard state was last written. Not needed for
    /// safety, so a change of it alone is written only with the next term, vote or entries;
    /// it lets a restarted node re-apply the prefix it covers without waiting for a leader.
    pub commit: LogIndex,
}

/// An opaque tag the driver attaches to a proposal; it comes back with the proposal's reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RequestTag(pub u64);

/// What finally became of a proposal.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// The entry was committed and applied, with this result.
    Applied(Reply),
    /// The entry this node appended was overwritten before it committed here. The outcome
    /// is **unknown**: another copy of the same entry may still commit on another node (a
    /// five-node run: A appends X reaching only B; C wins term 2 without X and its entry
    /// overwrites X on A, which answers `Superseded`; C crashes; B wins term 3 and commits
    /// X). Retry under the same session and sequence number, which is always safe.
    Superseded,
    /// A read ([`crate::Node::read`]) was not served: leadership changed, or the leader did not
    /// answer in time. It had no effect; retry it.
    NotServed,
}

/// The answer to one proposal made on this node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientReply {
    /// The tag given to [`crate::Node::propose`] or [`crate::Node::read`].
    pub tag: RequestTag,
    /// The log index the proposal was placed at; for a read, the applied index of the state
    /// it read (0 if it was not served). A client that saw an answer at an index has seen
    /// the store's state there or later.
    pub index: LogIndex,
    /// Its fate.
    pub outcome: Outcome,
}

/// Proof for [`crate::Node::on_persisted`] that a [`Ready`]'s entries are durable: the index
/// and term of the last entry it carried.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistAck {
    /// Index of the last entry persisted.
    pub last_index: LogIndex,
    /// Its term; if the node has since replaced that entry the ack is ignored.
    pub last_term: Term,
}

/// Everything a node asks its driver to do, drained with [`crate::Node::ready`].
///
/// # Contract
///
/// Handle each `Ready` completely, and `Ready`s in the order they were returned:
///
/// 0. **Send** `early_messages` at once, in parallel with step 1 if the driver likes. They are a
///    leader's AppendEntries, whose only promise (its term) is already durable; replicating
///    while the leader's own write is in flight saves a full fsync of latency (Raft
///    dissertation §10.2.1), and is safe because of step 4.
/// 1. **Persist** `snapshot` (if `Some`) first, atomically (a crash leaves the old snapshot or
///    the new one, whole), then `hard_state` (if `Some`) and `entries` (if any), and make them
///    durable (fsync). Before writing `entries`, discard every stored entry whose index is at
///    or after `entries[0].index`: a follower may overwrite an uncommitted suffix. A `Ready`
///    with a snapshot always has a hard state, and its entries are every entry after the
///    snapshot: once all of it is durable, the driver may delete every earlier write (older
///    snapshots and the log records before this `Ready`'s).
/// 2. **Then send** `messages`. None of them may leave before step 1 is durable: they can
///    promise a vote, a term or stored entries that a crash must not take back.
/// 3. **Deliver** `replies` to the waiting clients, at any time: each answers an entry that is
///    already committed on a majority (or will never commit), so it does not wait for step 1.
/// 4. **Acknowledge** step 1 with [`crate::Node::on_persisted`]`(ack)` when `ack` is `Some`.
///    A leader counts its own log towards commitment only up to acknowledged entries.
///
/// A driver may hand step 1 to a background writer and call [`crate::Node::ready`] again before
/// it completes, as long as persists complete in order and each `Ready`'s messages wait for
/// its own persist **and every earlier one** (a later `Ready` may rely on state an earlier one
/// wrote, such as the vote behind a later response).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[must_use = "a Ready holds messages and writes the driver must carry out"]
pub struct Ready {
    /// A snapshot to write, taken here or installed from the leader.
    pub snapshot: Option<Snapshot>,
    /// New hard state to persist, if its term or vote changed, or with `entries` if any of it
    /// changed (a change of the commit index alone waits for the next write).
    pub hard_state: Option<HardState>,
    /// Entries to persist, contiguous, replacing any stored suffix from the first one's index.
    pub entries: Vec<Entry>,
    /// A leader's AppendEntries: may be sent before the above is durable.
    pub early_messages: Vec<Message>,
    /// Messages to send only once the above is durable.
    pub messages: Vec<Message>,
    /// Answers to proposals made on this node.
    pub replies: Vec<ClientReply>,
    /// What to pass to [`crate::Node::on_persisted`] once `entries` (and `snapshot`) are
    /// durable.
    pub ack: Option<PersistAck>,
}

impl Ready {
    /// Whether there is nothing to do.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.snapshot.is_none()
            && self.hard_state.is_none()
            && self.entries.is_empty()
            && self.early_messages.is_empty()
            && self.messages.is_empty()
            && self.replies.is_empty()
    }
}
