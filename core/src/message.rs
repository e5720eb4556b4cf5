//! Messages between Raft peers.
//!
//! Every message carries the sender's term; the receiver first reconciles terms (a higher term
//! makes it a follower, a lower one marks the message stale) and only then looks at the body.
//! New kinds (pre-vote, read-index, snapshots) are added as new [`MessageBody`] variants at the
//! end, which keeps the encoding of existing variants unchanged.

use crate::log::Entry;
use crate::snapshot::SnapshotMeta;
use crate::types::{LogIndex, NodeId, Term};
use serde::{Deserialize, Serialize};

/// A message from one peer to another.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// The sender.
    pub from: NodeId,
    /// The intended receiver.
    pub to: NodeId,
    /// The sender's current term.
    pub term: Term,
    /// What the message says.
    pub body: MessageBody,
}

/// The kinds of peer message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MessageBody {
    /// A candidate asks for a vote (Raft Figure 2, RequestVote).
    RequestVote {
        /// Index of the candidate's last log entry.
        last_log_index: LogIndex,
        /// Term of the candidate's last log entry.
        last_log_term: Term,
    },
    /// The answer to a [`MessageBody::RequestVote`].
    RequestVoteResponse {
        /// Whether the vote was granted.
        granted: bool,
    },
    /// A leader replicates entries, or just asserts leadership when `entries` is empty.
    AppendEntries {
        /// Index of the entry just before `entries`.
        prev_log_index: LogIndex,
        /// Term of that entry.
        prev_log_term: Term,
        /// Entries to store, contiguous from `prev_log_index + 1`; possibly none.
        entries: Vec<Entry>,
        /// The leader's commit index.
        leader_commit: LogIndex,
    },
    /// The answer to an [`MessageBody::AppendEntries`].
    AppendEntriesResponse(AppendOutcome),
    /// A node whose election timer fired asks whether it could win an election (pre-vote,
    /// dissertation §9.6) before it raises its term. The message's term is the term it would
    /// campaign in; the receiver's term and vote do not change.
    PreVote {
        /// Index of the asker's last log entry.
        last_log_index: LogIndex,
        /// Term of the asker's last log entry.
        last_log_term: Term,
    },
    /// The answer to a [`MessageBody::PreVote`]: in the asked term if granted, in the
    /// answerer's own term if not.
    PreVoteResponse {
        /// Whether the answerer would vote for the asker.
        granted: bool,
    },
    /// A leader handing over its leadership tells the chosen follower, whose log it has
    /// brought up to date, to campaign at once (dissertation §3.10).
    TimeoutNow,
    /// A RequestVote from the node its leader chose in a leadership transfer: voters answer it
    /// even while they hear from that leader (they would ignore a plain RequestVote then).
    TransferVote {
        /// Index of the candidate's last log entry.
        last_log_index: LogIndex,
        /// Term of the candidate's last log entry.
        last_log_term: Term,
    },
    /// A leader confirms that it still leads before it serves reads (ReadIndex, dissertation
    /// §6.4); a follower of its term answers with a [`MessageBody::ReadRoundAck`].
    ReadRound {
        /// The round, echoed in the answer.
        round: u64,
    },
    /// The answer to a [`MessageBody::ReadRound`].
    ReadRoundAck {
        /// The round answered.
        round: u64,
    },
    /// A follower asks its leader for the index at which it may serve a linearizable read.
    ReadIndexRequest {
        /// The request, echoed in the answer.
        id: u64,
        /// Whether the leader may answer from its lease, without a round.
        lease: bool,
    },
    /// The leader's answer to a [`MessageBody::ReadIndexRequest`]: the follower serves the read
    /// once it has applied `index`, at leader time `time_ms`.
    ReadIndexResponse {
        /// The request answered.
        id: u64,
        /// The read index.
        index: LogIndex,
        /// The leader time to run the read at.
        time_ms: u64,
    },
    /// A leader sends a follower that needs entries it compacted away one chunk of its
    /// snapshot. Chunks go one at a time, each after the previous one's acknowledgement, and
    /// a lost one is sent again at the next heartbeat, so a broken transfer resumes where it
    /// stopped.
    InstallSnapshot {
        /// The snapshot the chunk belongs to.
        meta: SnapshotMeta,
        /// The size of its whole image.
        total_bytes: u64,
        /// Where in the image the chunk starts.
        offset: u64,
        /// The chunk's bytes.
        chunk: Vec<u8>,
    },
    /// A follower says how much of the snapshot at `index` it holds: the leader sends on from
    /// `received`. Once the follower holds the whole image it installs it and answers with an
    /// [`MessageBody::AppendEntriesResponse`] instead.
    SnapshotChunkAck {
        /// The snapshot's index.
        index: LogIndex,
        /// Bytes of its image received so far, in order.
        received: u64,
    },
}

/// A follower's verdict on an AppendEntries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AppendOutcome {
    /// The follower's log now matches the leader's up to `match_index`.
    Accepted {
        /// Last index known to match: `prev_log_index + entries.len()` of the request.
        match_index: LogIndex,
    },
    /// The follower holds no entry at `rejected_index` with the requested term.
    Rejected {
        /// The `prev_log_index` of the rejected request.
        rejected_index: LogIndex,
        /// The follower's best guess of where the logs may agree: the last index at or below
        /// `rejected_index` whose term is at most the request's `prev_log_term`.
        hint_index: LogIndex,
        /// The follower's term at `hint_index`.
        hint_term: Term,
    },
}
