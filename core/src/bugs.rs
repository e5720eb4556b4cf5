//! The bug catalogue: classic Raft, key-value and client-layer bugs that can be switched on,
//! one at a time, to prove that the simulator catches them. Compiled only with the
//! `bug-catalogue` feature; without it, every `injected!` check is the constant `false` and
//! no bug code exists in the binary.
//!
//! Each bug is a minimal change in the real code (the core, or the engine that serves
//! clients), marked `injected!(config, Name)`.

use serde::{Deserialize, Serialize};

/// One catalogued bug.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Bug {
    /// Commit an entry of a previous term by counting its replicas (Raft Figure 8).
    CommitPreviousTerm,
    /// Grant a second vote in a term already voted in.
    DoubleVote,
    /// Grant votes without the up-to-date log check.
    SkipLogCheck,
    /// Count entries sent to a follower as replicated before it acknowledges them durable.
    CommitBeforeAck,
    /// Count the leader's own entries before they are persisted locally.
    CommitUnpersisted,
    /// Answer reads from the leader's state machine without going through the log.
    StaleRead,
    /// Forget the session table on restart, so a retried request executes twice.
    ForgetSessions,
    /// Truncate the log after `prev_log_index` on every heartbeat, without a conflict check.
    HeartbeatTruncates,
    /// Accept responses from older terms as if they were current.
    IgnoreResponseTerm,
    /// Apply the last committed entry again after a restart.
    ApplyTwiceAfterRestart,
    /// Engine: run a command again in a new session when its session vanished after an
    /// attempt that may have executed.
    RerunAfterUnknownSession,
    /// Engine: retry each pipelined command on its own, letting it run ahead of its
    /// predecessors and renumbering it when the session refuses it as out of order.
    IndependentRetries,
    /// Engine: a leader answers a forwarded plain `SET` (always `OK`) when it proposes it,
    /// before it commits.
    ForwardBeforeCommit,
    /// A follower applies entries at its own clock instead of their leader's stamp, so
    /// replicas disagree about time and expiry.
    ExpireOnOwnClock,
    /// A transaction's reads see the store as it was before the transaction, not its own
    /// earlier writes.
    TransactionReadsBefore,
    /// Send a vote grant among the messages that leave before the persist, so the vote may
    /// not be durable when the candidate counts it.
    VoteBeforeFsync,
    /// A leader does not step down on a response carrying a higher term.
    LeaderIgnoresHigherTerm,
    /// The leader's quorum check counts a peer it heard from once as heard forever, so a
    /// leader cut off after its first answers never steps down.
    CheckQuorumOnce,
    /// A follower advances its commit index to the leader's, bounded by its own last index
    /// instead of the index the append matched.
    CommitPastMatch,
    /// The session table answers a request whose number did not execute with the kept reply
    /// of a later number of the same command.
    SessionWindowNewerReply,
    /// WAL recovery takes any damaged record for a torn tail and truncates there, though a
    /// later record shows it was synced.
    ChecksumMismatchIsTorn,
    /// `CASVER` swaps when the expected version is at least the key's (`>=` for `==`).
    CasVersionAtLeast,
    /// Becoming a follower clears the vote even in the same term (`>=` for `>`), so a
    /// candidate that lost may vote again in its own term.
    ClearVoteOnStepDown,
    /// The leader's quorum check needs one voter more than a majority (`<=` for `<`).
    QuorumCheckOffByOne,
    /// Engine: a follower takes the leader's refusal of a forwarded command as proof that no
    /// copy of it runs, though the network may have duplicated the forward.
    TrustForwardedRefusal,
    /// WAL recovery trusts a record's length without its header checksum, and takes a record
    /// that runs past the end of the file for a torn write.
    TrustTornLength,
    /// A new leader serves ReadIndex reads before an entry of its own term commits, at a
    /// commit index that may lag what earlier leaders committed.
    ReadIndexBeforeFirstCommit,
    /// A follower installing a snapshot discards the entries after it even when its log agrees
    /// with the snapshot's last entry.
    SnapshotTruncatesNewer,
    /// A leader whose log no longer holds the entries a follower needs sends it the entries it
    /// still holds, as if the follower had the compacted ones, instead of its snapshot.
    CompactionSkipsSnapshot,
    /// A follower takes the leader it knows for live as long as it knows one, not for one
    /// election timeout past its last message: it refuses pre-votes (stickiness) and does not
    /// campaign while a leader that stepped down (check-quorum) never speaks again.
    StickinessOutlivesLeader,
    /// Engine: a connection's stale reads ignore what it saw (its floor), so a follower that
    /// has not applied them yet serves them.
    StaleReadBelowFloor,
    /// A leader that starts a leadership transfer keeps its lease, though its target's votes
    /// are granted despite stickiness.
    LeaseAcrossTransfer,
}

impl Bug {
    /// Every catalogued bug.
    pub const ALL: [Bug; 32] = [
        Bug::CommitPreviousTerm,
        Bug::DoubleVote,
        Bug::SkipLogCheck,
        Bug::CommitBeforeAck,
        Bug::CommitUnpersisted,
        Bug::StaleRead,
        Bug::ForgetSessions,
        Bug::HeartbeatTruncates,
        Bug::IgnoreResponseTerm,
        Bug::ApplyTwiceAfterRestart,
        Bug::RerunAfterUnknownSession,
        Bug::IndependentRetries,
        Bug::ForwardBeforeCommit,
        Bug::ExpireOnOwnClock,
        Bug::TransactionReadsBefore,
        Bug::VoteBeforeFsync,
        Bug::LeaderIgnoresHigherTerm,
        Bug::CheckQuorumOnce,
        Bug::CommitPastMatch,
        Bug::SessionWindowNewerReply,
        Bug::ChecksumMismatchIsTorn,
        Bug::CasVersionAtLeast,
        Bug::ClearVoteOnStepDown,
        Bug::QuorumCheckOffByOne,
        Bug::TrustForwardedRefusal,
        Bug::TrustTornLength,
        Bug::ReadIndexBeforeFirstCommit,
        Bug::SnapshotTruncatesNewer,
        Bug::CompactionSkipsSnapshot,
        Bug::StickinessOutlivesLeader,
        Bug::StaleReadBelowFloor,
        Bug::LeaseAcrossTransfer,
    ];

    /// The bug's command-line name.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Bug::CommitPreviousTerm => "commit-previous-term",
            Bug::DoubleVote => "double-vote",
            Bug::SkipLogCheck => "skip-log-check",
            Bug::CommitBeforeAck => "commit-before-ack",
            Bug::CommitUnpersisted => "commit-unpersisted",
            Bug::StaleRead => "stale-read",
            Bug::ForgetSessions => "forget-sessions",
            Bug::HeartbeatTruncates => "heartbeat-truncates",
            Bug::IgnoreResponseTerm => "ignore-response-term",
            Bug::ApplyTwiceAfterRestart => "apply-twice-after-restart",
            Bug::RerunAfterUnknownSession => "rerun-after-unknown-session",
            Bug::IndependentRetries => "independent-retries",
            Bug::ForwardBeforeCommit => "forward-before-commit",
            Bug::ExpireOnOwnClock => "expire-on-own-clock",
            Bug::TransactionReadsBefore => "transaction-reads-before",
            Bug::VoteBeforeFsync => "vote-before-fsync",
            Bug::LeaderIgnoresHigherTerm => "leader-ignores-higher-term",
            Bug::CheckQuorumOnce => "check-quorum-once",
            Bug::CommitPastMatch => "commit-past-match",
            Bug::SessionWindowNewerReply => "session-window-newer-reply",
            Bug::ChecksumMismatchIsTorn => "checksum-mismatch-is-torn",
            Bug::CasVersionAtLeast => "cas-version-at-least",
            Bug::ClearVoteOnStepDown => "clear-vote-on-step-down",
            Bug::QuorumCheckOffByOne => "quorum-check-off-by-one",
            Bug::TrustForwardedRefusal => "trust-forwarded-refusal",
            Bug::TrustTornLength => "trust-torn-length",
            Bug::ReadIndexBeforeFirstCommit => "read-index-before-first-commit",
            Bug::SnapshotTruncatesNewer => "snapshot-truncates-newer",
            Bug::CompactionSkipsSnapshot => "compaction-skips-snapshot",
            Bug::StickinessOutlivesLeader => "stickiness-outlives-leader",
            Bug::StaleReadBelowFloor => "stale-read-below-floor",
            Bug::LeaseAcrossTransfer => "lease-across-transfer",
        }
    }

    /// What the bug breaks, in one line.
    #[must_use]
    pub fn breaks(self) -> &'static str {
        match self {
            Bug::CommitPreviousTerm => {
                "an entry committed by counting old-term replicas is overwritten (Figure 8)"
            }
            Bug::DoubleVote => "two candidates win the same term: two leaders",
            Bug::SkipLogCheck => "a candidate missing committed entries wins and erases them",
            Bug::CommitBeforeAck => {
                "writes are acknowledged before a majority stored them; a crash loses them"
            }
            Bug::CommitUnpersisted => {
                "the leader counts its own unsynced log; a crash loses acknowledged writes"
            }
            Bug::StaleRead => "a deposed leader answers reads with stale data",
            Bug::ForgetSessions => "a retried request executes twice after a restart",
            Bug::HeartbeatTruncates => {
                "a heartbeat erases entries the follower already acknowledged"
            }
            Bug::IgnoreResponseTerm => "stale votes and acknowledgements count in a later term",
            Bug::ApplyTwiceAfterRestart => "an entry is applied twice, diverging the state machine",
            Bug::RerunAfterUnknownSession => {
                "a write whose session was evicted after it ran executes again"
            }
            Bug::IndependentRetries => {
                "a connection's pipelined commands take effect out of the order it sent them"
            }
            Bug::ForwardBeforeCommit => {
                "a forwarded write is acknowledged before it commits; a crash loses it"
            }
            Bug::ExpireOnOwnClock => "replicas expire keys at different times and diverge",
            Bug::TransactionReadsBefore => {
                "a transaction's GET misses the SET queued before it in the same MULTI"
            }
            Bug::VoteBeforeFsync => {
                "a voter that crashes before its fsync forgets its vote and votes twice"
            }
            Bug::LeaderIgnoresHigherTerm => {
                "a deposed leader keeps leading in an old term beside the new leader"
            }
            Bug::CheckQuorumOnce => "a leader cut off from its majority never steps down",
            Bug::CommitPastMatch => {
                "a follower commits (and applies) entries of its own that the leader never sent"
            }
            Bug::SessionWindowNewerReply => {
                "a retried command that never ran is answered with a later command's reply"
            }
            Bug::ChecksumMismatchIsTorn => {
                "a damaged record in the middle of the WAL silently drops every record after it"
            }
            Bug::CasVersionAtLeast => "a CASVER with a version the key never had overwrites it",
            Bug::ClearVoteOnStepDown => "a node votes twice in one term: two leaders",
            Bug::QuorumCheckOffByOne => {
                "a leader with a bare majority steps down: no leader while a minority is down"
            }
            Bug::TrustForwardedRefusal => {
                "a duplicated forward runs, and its command runs again in a new session"
            }
            Bug::TrustTornLength => {
                "a flipped bit in a synced record's length truncates it and every record after it"
            }
            Bug::ReadIndexBeforeFirstCommit => {
                "a new leader's read misses a write its predecessor committed and acknowledged"
            }
            Bug::SnapshotTruncatesNewer => {
                "a late snapshot erases entries the follower acknowledged; a committed write is lost"
            }
            Bug::StickinessOutlivesLeader => {
                "a leader that stepped down (check-quorum) leaves followers refusing every \
                 pre-vote (stickiness): the cluster stays leaderless after the partition heals"
            }
            Bug::CompactionSkipsSnapshot => {
                "a follower behind the leader's compacted log never catches up: the cluster stalls when a majority needs it"
            }
            Bug::StaleReadBelowFloor => {
                "a stale read misses the client's own acknowledged write, or goes back in time"
            }
            Bug::LeaseAcrossTransfer => {
                "the old leader serves lease reads after its successor committed: reads miss writes"
            }
        }
    }

    /// The bug named `name`, if catalogued.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Bug> {
        Bug::ALL.into_iter().find(|bug| bug.name() == name)
    }
}
