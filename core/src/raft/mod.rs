//! The Raft node: a deterministic state machine driven by inputs, producing [`Ready`] batches.
//!
//! Inputs are [`Node::step`] (a peer message), [`Node::tick`] (logical time),
//! [`Node::propose`] (a client operation), [`Node::read`] (a read without a log entry) and
//! [`Node::on_persisted`] (the driver's report that a
//! write is durable). Outputs are drained with [`Node::ready`]; see [`Ready`] for the order in
//! which the driver must carry them out. The node never blocks, never does IO and draws its only
//! randomness from the seed in its [`Config`].
//!
//! The work is split by concern: `election` (terms, votes, roles), `replication`
//! (AppendEntries on both sides, commitment), `apply` (committed entries into the state
//! machine, replies to proposals), `reads` (ReadIndex, leases, stale reads) and `snapshots`
//! (taking, sending and installing snapshots, compacting the log).

mod apply;
mod election;
mod proposals;
mod reads;
mod ready;
mod replication;
mod snapshots;

pub use reads::{ReadConsistency, ReadError};
pub use ready::{ClientReply, HardState, Outcome, PersistAck, Ready, RequestTag};

use crate::config::{Config, ConfigError};
use crate::kv::{ClientOp, StateMachine};
use crate::log::{Entry, EntryPayload, LogError, RaftLog};
use crate::message::{Message, MessageBody};
use crate::progress::Progress;
use crate::snapshot::{Snapshot, SnapshotMeta};
use crate::types::{LogIndex, NodeId, Term};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;
use std::collections::BTreeMap;

/// A node's role in its current term.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Follows a leader (or waits for one).
    Follower,
    /// Asking whether it could win an election, before raising its term (pre-vote).
    PreCandidate,
    /// Campaigning for votes.
    Candidate,
    /// Leads the current term.
    Leader,
}

/// Why a proposal was not accepted. Nothing was appended to the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    /// Only the leader takes proposals; `leader` is the current leader if this node knows it.
    #[error("this node is not the leader; retry at {}", leader.map_or("an unknown node (wait for an election)".to_string(), |l| format!("node {l}")))]
    NotLeader {
        /// The leader this node follows, if known.
        leader: Option<NodeId>,
    },
    /// The leader is handing its leadership to `to`; retry once the new leader is known.
    #[error("this leader is handing over to node {to}; retry there")]
    Transferring {
        /// The node taking over.
        to: NodeId,
    },
    /// Too many uncommitted entries, or too many attempts of this very request waiting; retry
    /// after some commit (followers may be unreachable).
    #[error(
        "{uncommitted} entries (or attempts of this request) are waiting to commit, the limit; retry later"
    )]
    Overloaded {
        /// The number of uncommitted entries, or of attempts waiting on this request's entry.
        uncommitted: usize,
    },
}

/// Recovered durable state that cannot form a node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    /// The configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// The recovered log is not a valid Raft log.
    #[error("recovered log is invalid: {0}")]
    Log(#[from] LogError),
    /// The snapshot is older than the log says.
    #[error(
        "the log starts after a snapshot at index {} (term {}), but the snapshot file holds index {} \
         (term {}): the snapshot is older than the log, so the data directory is damaged",
        log_start.index, log_start.term, snapshot.index, snapshot.term
    )]
    SnapshotBehindLog {
        /// The snapshot read back.
        snapshot: SnapshotMeta,
        /// Where the log starts.
        log_start: SnapshotMeta,
    },
    /// The recovered snapshot's image is not a state machine.
    #[error("recovered snapshot at index {index} is invalid: {error}")]
    Snapshot {
        /// The snapshot's index.
        index: LogIndex,
        /// What is wrong with its image.
        error: crate::kv::ImageError,
    },
    /// The hard state contradicts the log.
    #[error(
        "recovered hard state {hard_state:?} contradicts the log (last index {last_index}, last term {last_term}): the data directory is damaged"
    )]
    HardState {
        /// The recovered hard state.
        hard_state: HardState,
        /// The last recovered index.
        last_index: LogIndex,
        /// The last recovered term.
        last_term: Term,
    },
}

/// What a driver read back from stable storage after a restart.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    /// The last durable hard state.
    pub hard_state: HardState,
    /// The latest durable snapshot, if any.
    pub snapshot: Option<Snapshot>,
    /// Where the durable log starts: at the last snapshot marker in the WAL
    /// ([`crate::wal::WalRecord::snapshot`]), or at index 0. The snapshot is at least as new
    /// (it is written before its marker); if it is newer (a crash came between the two), the
    /// entries it covers are dropped, and all of them if the log disagrees with its last entry.
    pub log_start: SnapshotMeta,
    /// The durable log entries after `log_start`, contiguous and in order.
    pub entries: Vec<Entry>,
}

/// Why a leadership transfer cannot start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransferError {
    /// Only a leader hands over leadership.
    #[error("this node is not the leader; ask the leader{}", leader.map_or(String::new(), |l| format!(" (node {l})")))]
    NotLeader {
        /// The leader this node follows, if known.
        leader: Option<NodeId>,
    },
    /// The chosen node is not another voter of the cluster.
    #[error("node {to} is not another voter of this cluster")]
    NotAPeer {
        /// The chosen node.
        to: NodeId,
    },
}

/// A leadership transfer in progress.
#[derive(Clone, Copy, Debug)]
struct Transfer {
    /// The node taking over.
    to: NodeId,
    /// The leader's tick count when it started; it gives up after an election timeout.
    started_tick: u64,
}

/// Per-role state that only exists in that role.
#[derive(Clone, Debug)]
enum RoleState {
    Follower,
    PreCandidate {
        votes: BTreeMap<NodeId, bool>,
    },
    Candidate {
        votes: BTreeMap<NodeId, bool>,
    },
    Leader {
        progress: BTreeMap<NodeId, Progress>,
        /// Ticks since this node took office.
        ticks: u64,
        transfer: Option<Transfer>,
    },
}

/// One Raft node together with its key-value state machine. See the module documentation.
#[derive(Clone, Debug)]
pub struct Node {
    config: Config,
    rng: ChaCha8Rng,

    term: Term,
    vote: Option<NodeId>,
    log: RaftLog,
    commit: LogIndex,

    role: RoleState,
    leader: Option<NodeId>,
    election_elapsed_ticks: u64,
    election_timeout_ticks: u64,
    heartbeat_elapsed_ticks: u64,

    /// Last index whose durability the driver acknowledged.
    stable_index: LogIndex,
    /// First index not yet handed to the driver for persistence, if any.
    unpersisted_from: Option<LogIndex>,
    /// The hard state last handed to the driver.
    emitted_hard_state: HardState,

    state_machine: StateMachine,
    /// The latest snapshot, taken here or installed from a leader.
    snapshot: Option<Snapshot>,
    /// A snapshot not yet handed to the driver to write.
    snapshot_to_write: Option<Snapshot>,
    /// A snapshot being received from the leader.
    incoming: Option<snapshots::Incoming>,
    /// Where to compact the log at the next [`Node::ready`] (after a snapshot was taken).
    compact_to: Option<LogIndex>,
    /// Snapshots installed from a leader since this node started.
    installed_snapshots: u64,
    /// Payload bytes applied since the latest snapshot.
    applied_bytes_since_snapshot: u64,
    /// The driver's clock, milliseconds since the Unix epoch (see [`Node::set_clock_ms`]).
    clock_ms: u64,
    /// The latest stamp in this leader's log or read: new entries are stamped no earlier.
    stamp_floor_ms: u64,
    /// The driver's monotonic clock (see [`Node::set_monotonic_ms`]).
    monotonic_ms: u64,
    /// Whether this node has not yet waited a minimum election timeout since it started: until
    /// then it grants no vote, since before its restart it may have promised a leader (by
    /// acknowledging it) to hear no candidate for that long.
    starting: bool,
    /// Reads served without the log.
    reads: reads::Reads,
    /// Proposals made on this node awaiting their entry's fate.
    pending: proposals::Proposals,

    outbox: Vec<Message>,
    /// A leader's AppendEntries, which may leave before the local persist.
    early_outbox: Vec<Message>,
    replies: Vec<ClientReply>,
    /// The commit index read back at the last restart (bug catalogue only).
    #[cfg(feature = "bug-catalogue")]
    recovered_commit: LogIndex,
}

impl Node {
    /// A brand-new node with an empty log, as on first start.
    pub fn new(config: Config) -> Result<Node, ConfigError> {
        Node::restore(config, Recovered::default()).map_err(|error| match error {
            RestoreError::Config(error) => error,
            other => unreachable!("an empty recovered state is always valid: {other}"),
        })
    }

    /// A node restarted from what the driver read back from stable storage. It starts as a
    /// follower of no one and re-applies its committed prefix in the first [`Node::ready`].
    pub fn restore(config: Config, recovered: Recovered) -> Result<Node, RestoreError> {
        config.validate()?;
        let meta = recovered
            .snapshot
            .as_ref()
            .map_or(SnapshotMeta::default(), |s| s.meta);
        let state_machine = match &recovered.snapshot {
            Some(snapshot) => StateMachine::from_snapshot_image(
                config.sessions,
                config.max_value_bytes,
                &snapshot.data,
                meta.index,
            )
            .map_err(|error| RestoreError::Snapshot {
                index: meta.index,
                error,
            })?,
            None => StateMachine::new(config.sessions, config.max_value_bytes),
        };
        if meta.index < recovered.log_start.index
            || meta.index == recovered.log_start.index && meta != recovered.log_start
        {
            return Err(RestoreError::SnapshotBehindLog {
                snapshot: meta,
                log_start: recovered.log_start,
            });
        }
        let entries = after_snapshot(meta, recovered.entries);
        let log = RaftLog::from_entries((meta.index, meta.term), entries)?;
        let mut hard_state = recovered.hard_state;
        hard_state.commit = hard_state.commit.max(meta.index);
        let vote_ok = hard_state.vote.is_none_or(|v| config.voters.contains(&v));
        if hard_state.commit > log.last_index() || log.last_term() > hard_state.term || !vote_ok {
            return Err(RestoreError::HardState {
                hard_state,
                last_index: log.last_index(),
                last_term: log.last_term(),
            });
        }
        let mut node = Node {
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            state_machine,
            // A snapshot newer than the log's start (a crash came between writing it and its
            // marker) is written again with its marker first, so that the log the node appends
            // to on disk starts where its log in memory does.
            snapshot_to_write: recovered
                .snapshot
                .clone()
                .filter(|s| s.meta != recovered.log_start),
            snapshot: recovered.snapshot,
            incoming: None,
            compact_to: None,
            installed_snapshots: 0,
            applied_bytes_since_snapshot: 0,
            clock_ms: 0,
            stamp_floor_ms: 0,
            monotonic_ms: 0,
            starting: true,
            reads: reads::Reads::new(config.seed),
            term: hard_state.term,
            vote: hard_state.vote,
            commit: hard_state.commit,
            role: RoleState::Follower,
            leader: None,
            election_elapsed_ticks: 0,
            election_timeout_ticks: 0,
            heartbeat_elapsed_ticks: 0,
            stable_index: log.last_index(),
            unpersisted_from: None,
            emitted_hard_state: hard_state,
            pending: proposals::Proposals::default(),
            outbox: Vec::new(),
            early_outbox: Vec::new(),
            replies: Vec::new(),
            #[cfg(feature = "bug-catalogue")]
            recovered_commit: hard_state.commit,
            log,
            config,
        };
        if crate::injected!(node.config, ForgetSessions) {
            #[cfg(feature = "bug-catalogue")]
            node.state_machine.forget_sessions_until(hard_state.commit);
        }
        arm_state_machine_bugs(&node.config, &mut node.state_machine);
        node.reset_election_timer();
        tracing::info!(
            node = node.id().0,
            term = node.term.0,
            snapshot = meta.index.0,
            last_index = node.log.last_index().0,
            commit = node.commit.0,
            "node started"
        );
        Ok(node)
    }

    /// Advances logical time by one tick: followers and candidates count towards an election
    /// (a pre-vote first, if configured), leaders towards the next heartbeat, their quorum
    /// check and the deadline of a leadership transfer.
    pub fn tick(&mut self) {
        match self.role {
            RoleState::Leader { .. } => {
                let heartbeat = self.tick_leader();
                self.tick_reads(heartbeat);
            }
            RoleState::Follower | RoleState::PreCandidate { .. } | RoleState::Candidate { .. } => {
                self.tick_reads(false);
                self.election_elapsed_ticks += 1;
                if self.election_elapsed_ticks >= self.config.election_timeout_ticks {
                    self.starting = false;
                }
                let leader_taken_for_live = self.leader.is_some()
                    && crate::injected!(self.config, StickinessOutlivesLeader);
                if self.election_elapsed_ticks >= self.election_timeout_ticks
                    && !leader_taken_for_live
                {
                    if self.config.pre_vote {
                        self.pre_campaign();
                    } else {
                        self.campaign("election timeout", false);
                    }
                }
            }
        }
    }

    /// Starts handing leadership to `to`: the leader stops taking proposals, brings `to`'s log
    /// up to date, then tells it to campaign at once (`TimeoutNow`). If `to` has not taken
    /// over within an election timeout, the leader takes proposals again. A transfer to a node
    /// already being handed over to is a no-op; another target replaces it.
    pub fn transfer_leadership(&mut self, to: NodeId) -> Result<(), TransferError> {
        let leader = self.leader;
        let RoleState::Leader {
            progress,
            ticks,
            transfer,
        } = &mut self.role
        else {
            return Err(TransferError::NotLeader { leader });
        };
        if !progress.contains_key(&to) {
            return Err(TransferError::NotAPeer { to });
        }
        if transfer.is_some_and(|t| t.to == to) {
            return Ok(());
        }
        *transfer = Some(Transfer {
            to,
            started_tick: *ticks,
        });
        self.forfeit_lease();
        tracing::info!(
            node = self.id().0,
            term = self.term.0,
            to = to.0,
            "leadership transfer started"
        );
        self.advance_transfer();
        Ok(())
    }

    /// The peer a leader that is about to stop should hand over to: the most up to date
    /// (highest match index) among the peers heard within the election timeout, the lowest
    /// id among equals; `None` on a non-leader or when no peer is live.
    #[must_use]
    pub fn handover_target(&self) -> Option<NodeId> {
        let RoleState::Leader {
            progress, ticks, ..
        } = &self.role
        else {
            return None;
        };
        progress
            .iter()
            .filter(|(_, p)| p.heard_within(*ticks, self.config.election_timeout_ticks))
            .max_by_key(|&(&id, p)| (p.match_index, std::cmp::Reverse(id)))
            .map(|(&id, _)| id)
    }

    /// The node a leadership transfer is handing over to, if one is under way.
    #[must_use]
    pub fn transferring_to(&self) -> Option<NodeId> {
        match &self.role {
            RoleState::Leader {
                transfer: Some(transfer),
                ..
            } => Some(transfer.to),
            _ => None,
        }
    }

    /// Tells the node the driver's clock (milliseconds since the Unix epoch; the simulator's
    /// virtual clock). It is read only to stamp the entries this node appends as leader, so
    /// it may drift, jump or go back: stamps never go back (see [`EntryPayload::Client`]).
    pub fn set_clock_ms(&mut self, now_ms: u64) {
        self.clock_ms = now_ms;
    }

    /// Handles a message from a peer. Messages not addressed to this node, or from a node
    /// that is not a voter, are dropped (and logged): they can only come from a confused or
    /// hostile sender.
    pub fn step(&mut self, message: Message) {
        if message.to != self.id()
            || message.from == self.id()
            || !self.config.voters.contains(&message.from)
        {
            tracing::warn!(
                node = self.id().0,
                from = message.from.0,
                to = message.to.0,
                "dropped message with foreign sender or receiver"
            );
            return;
        }
        let ignored = matches!(self.role, RoleState::Leader { .. })
            && matches!(
                message.body,
                MessageBody::RequestVoteResponse { .. } | MessageBody::AppendEntriesResponse(_)
            )
            && crate::injected!(self.config, LeaderIgnoresHigherTerm);
        if message.term > self.term && !ignored {
            match message.body {
                // A pre-vote, and a granted answer to one, carry the term their asker would
                // campaign in: nobody has raised its term yet.
                MessageBody::PreVote { .. } | MessageBody::PreVoteResponse { granted: true } => {}
                // Leader stickiness: a node that hears from a live leader ignores a vote
                // request (and its term) unless the leader itself asked for the election.
                MessageBody::RequestVote { .. } if self.in_lease() => {
                    tracing::info!(
                        node = self.id().0,
                        term = self.term.0,
                        candidate = message.from.0,
                        candidate_term = message.term.0,
                        "ignored a vote request: a live leader was heard within the election timeout"
                    );
                    return;
                }
                _ => {
                    let leader = matches!(
                        message.body,
                        MessageBody::AppendEntries { .. }
                            | MessageBody::ReadRound { .. }
                            | MessageBody::InstallSnapshot { .. }
                    )
                    .then_some(message.from);
                    self.become_follower(message.term, leader, "message with higher term");
                }
            }
        }
        let is_response = matches!(
            message.body,
            MessageBody::RequestVoteResponse { .. }
                | MessageBody::AppendEntriesResponse(_)
                | MessageBody::PreVoteResponse { .. }
        );
        if message.term < self.term
            && !(is_response && crate::injected!(self.config, IgnoreResponseTerm))
        {
            self.answer_stale(&message);
            return;
        }
        match message.body {
            MessageBody::RequestVote {
                last_log_index,
                last_log_term,
            }
            | MessageBody::TransferVote {
                last_log_index,
                last_log_term,
            } => self.handle_request_vote(message.from, last_log_index, last_log_term),
            MessageBody::PreVote {
                last_log_index,
                last_log_term,
            } => self.handle_pre_vote(&message, last_log_index, last_log_term),
            MessageBody::PreVoteResponse { granted } => {
                self.handle_pre_vote_response(message.from, message.term, granted);
            }
            MessageBody::TimeoutNow => self.handle_timeout_now(message.from),
            MessageBody::RequestVoteResponse { granted } => {
                self.handle_vote_response(message.from, granted);
            }
            MessageBody::AppendEntries {
                prev_log_index,
                prev_log_term,
                entries,
                leader_commit,
            } => self.handle_append_entries(
                message.from,
                prev_log_index,
                prev_log_term,
                entries,
                leader_commit,
            ),
            MessageBody::AppendEntriesResponse(outcome) => {
                self.handle_append_response(message.from, outcome);
            }
            MessageBody::ReadRound { round } => self.handle_read_round(message.from, round),
            MessageBody::ReadRoundAck { round } => {
                self.handle_read_round_ack(message.from, round);
            }
            MessageBody::ReadIndexRequest { id, lease } => {
                self.handle_read_index_request(message.from, id, lease);
            }
            MessageBody::ReadIndexResponse { id, index, time_ms } => {
                self.handle_read_index_response(message.from, id, index, time_ms);
            }
            MessageBody::InstallSnapshot {
                meta,
                total_bytes,
                offset,
                chunk,
            } => self.handle_install_snapshot(message.from, meta, total_bytes, offset, chunk),
            MessageBody::SnapshotChunkAck { index, received } => {
                self.handle_snapshot_chunk_ack(message.from, index, received);
            }
        }
    }

    /// Proposes a client operation. On the leader it is appended to the log and its reply will
    /// come, tagged with `tag`, in a later [`Ready::replies`]; returns the index it was given.
    pub fn propose(&mut self, tag: RequestTag, op: ClientOp) -> Result<LogIndex, ProposeError> {
        if !matches!(self.role, RoleState::Leader { .. }) {
            tracing::debug!(node = self.id().0, leader = ?self.leader, "proposal rejected: not leader");
            return Err(ProposeError::NotLeader {
                leader: self.leader,
            });
        }
        if let Some(to) = self.transferring_to() {
            return Err(ProposeError::Transferring { to });
        }
        let uncommitted =
            usize::try_from(self.log.last_index().0 - self.commit.0).unwrap_or(usize::MAX);
        if uncommitted >= self.config.max_uncommitted_entries {
            tracing::debug!(
                node = self.id().0,
                uncommitted,
                "proposal rejected: overloaded"
            );
            return Err(ProposeError::Overloaded { uncommitted });
        }
        #[cfg(feature = "bug-catalogue")]
        if crate::injected!(self.config, StaleRead)
            && let ClientOp::Request(crate::kv::ClientRequest {
                command: crate::kv::Command::Strings(crate::kv::cmd::StringCommand::Get { key }),
                ..
            }) = &op
        {
            let value = self.state_machine.store().get(key).map(|v| v.value.clone());
            let index = self.state_machine.applied_index();
            self.replies.push(ClientReply {
                tag,
                index,
                outcome: Outcome::Applied(crate::kv::Reply::Executed(crate::kv::Frame::optional(
                    value,
                ))),
            });
            return Ok(index);
        }
        let retry = proposals::Retry::of(&op);
        match self.pending.join(retry, tag) {
            proposals::Join::Joined(index) => return Ok(index),
            proposals::Join::Full => {
                return Err(ProposeError::Overloaded {
                    uncommitted: proposals::MAX_TAGS_PER_ENTRY,
                });
            }
            proposals::Join::New => {}
        }
        let time_ms = self.clock_ms.max(self.stamp_floor_ms);
        self.stamp_floor_ms = time_ms;
        let index = self.append_own(EntryPayload::Client { op, time_ms });
        self.pending.insert(index, self.term, tag, retry);
        Ok(index)
    }

    /// Drains everything the node wants done, or `None` when there is nothing. Replication to
    /// followers is batched here: all entries proposed since the last call travel together.
    pub fn ready(&mut self) -> Option<Ready> {
        self.compact_scheduled();
        self.flush_replication();
        self.apply_committed();
        self.maybe_snapshot();
        self.serve_reads();
        let snapshot = self.snapshot_to_write.take();
        // With a snapshot, every entry after it is written again, so that the snapshot and
        // the records of this `Ready` together hold the whole durable state.
        let from = match &snapshot {
            Some(snapshot) => Some(snapshot.meta.index.next()),
            None => self.unpersisted_from,
        };
        self.unpersisted_from = None;
        let entries = match from {
            Some(from) => self.log.slice(from, usize::MAX).to_vec(),
            None => Vec::new(),
        };
        // A change of the commit index alone is written with the next write the node makes
        // anyway, not on its own: no promise depends on it (a restarted node learns its commit
        // index again from its leader), and an fsync for it would cost a follower one per
        // heartbeat that advances it.
        let hard_state = self.hard_state();
        let emitted = self.emitted_hard_state;
        let promise_changed = (hard_state.term, hard_state.vote) != (emitted.term, emitted.vote);
        let worth_a_write =
            promise_changed || snapshot.is_some() || (!entries.is_empty() && hard_state != emitted);
        let hard_state = worth_a_write.then(|| {
            self.emitted_hard_state = hard_state;
            hard_state
        });
        let ack = match (&snapshot, entries.last()) {
            (_, Some(last)) => Some(PersistAck {
                last_index: last.index,
                last_term: last.term,
            }),
            (Some(snapshot), None) => Some(PersistAck {
                last_index: snapshot.meta.index,
                last_term: snapshot.meta.term,
            }),
            (None, None) => None,
        };
        let ready = Ready {
            snapshot,
            hard_state,
            entries,
            early_messages: std::mem::take(&mut self.early_outbox),
            messages: std::mem::take(&mut self.outbox),
            replies: std::mem::take(&mut self.replies),
            ack,
        };
        (!ready.is_empty()).then_some(ready)
    }

    /// Reports that the entries of a [`Ready`] are durable. A leader may then count them
    /// towards commitment. An ack for entries the node has since replaced is ignored.
    pub fn on_persisted(&mut self, ack: PersistAck) {
        if !self.log.matches(ack.last_index, ack.last_term) || ack.last_index <= self.stable_index {
            return;
        }
        self.stable_index = ack.last_index;
        if matches!(self.role, RoleState::Leader { .. }) {
            self.maybe_commit();
        }
    }

    /// This node's id.
    #[must_use]
    pub fn id(&self) -> NodeId {
        self.config.id
    }

    /// The configuration the node runs with.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The current term.
    #[must_use]
    pub fn term(&self) -> Term {
        self.term
    }

    /// The current role.
    #[must_use]
    pub fn role(&self) -> Role {
        match self.role {
            RoleState::Follower => Role::Follower,
            RoleState::PreCandidate { .. } => Role::PreCandidate,
            RoleState::Candidate { .. } => Role::Candidate,
            RoleState::Leader { .. } => Role::Leader,
        }
    }

    /// The leader of the current term, if known (this node itself when it leads).
    #[must_use]
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    /// The current durable state (term, vote, commit).
    #[must_use]
    pub fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            vote: self.vote,
            commit: self.commit,
        }
    }

    /// The highest index known to be committed.
    #[must_use]
    pub fn commit_index(&self) -> LogIndex {
        self.commit
    }

    /// The log (read-only).
    #[must_use]
    pub fn log(&self) -> &RaftLog {
        &self.log
    }

    /// The latest snapshot's position, if the node has one.
    #[must_use]
    pub fn snapshot_meta(&self) -> Option<SnapshotMeta> {
        self.snapshot.as_ref().map(|s| s.meta)
    }

    /// How many snapshots this node installed from a leader since it started.
    #[must_use]
    pub fn installed_snapshots(&self) -> u64 {
        self.installed_snapshots
    }

    /// The key-value state machine (read-only).
    #[must_use]
    pub fn state_machine(&self) -> &StateMachine {
        &self.state_machine
    }

    /// A leader's replication progress for `peer` (None on non-leaders and for itself).
    #[must_use]
    pub fn progress(&self, peer: NodeId) -> Option<&Progress> {
        match &self.role {
            RoleState::Leader { progress, .. } => progress.get(&peer),
            _ => None,
        }
    }

    /// A leader's progress of peer `from`, marked as heard from now (what check-quorum
    /// counts); `None` on a non-leader and for a node that is not a peer.
    fn heard_from(&mut self, from: NodeId) -> Option<&mut Progress> {
        let RoleState::Leader {
            progress, ticks, ..
        } = &mut self.role
        else {
            return None;
        };
        let p = progress.get_mut(&from)?;
        p.last_heard_tick = *ticks;
        Some(p)
    }

    /// Appends an entry of the current term to a leader's own log.
    fn append_own(&mut self, payload: EntryPayload) -> LogIndex {
        debug_assert!(matches!(self.role, RoleState::Leader { .. }));
        let index = self.log.last_index().next();
        self.log.append(Entry {
            index,
            term: self.term,
            payload,
        });
        self.mark_unpersisted(index);
        index
    }

    fn mark_unpersisted(&mut self, from: LogIndex) {
        self.unpersisted_from = Some(self.unpersisted_from.map_or(from, |old| old.min(from)));
    }

    fn send(&mut self, to: NodeId, body: MessageBody) {
        self.send_in_term(to, self.term, body);
    }

    /// Sends a message carrying `term` rather than the current term (pre-votes carry the term
    /// they ask about).
    fn send_in_term(&mut self, to: NodeId, term: Term, body: MessageBody) {
        debug_assert_ne!(to, self.id());
        self.outbox.push(Message {
            from: self.id(),
            to,
            term,
            body,
        });
    }

    fn peers(&self) -> impl Iterator<Item = NodeId> + use<> {
        let me = self.id();
        let voters: Vec<NodeId> = self.config.voters.iter().copied().collect();
        voters.into_iter().filter(move |&v| v != me)
    }
}

/// The recovered `entries` that follow the snapshot at `meta`: those after its index if the
/// log holds its last entry (or starts right after it), none if the log disagrees with it or
/// ends before it. Without a snapshot (`meta` at index 0) all of them.
fn after_snapshot(meta: SnapshotMeta, mut entries: Vec<Entry>) -> Vec<Entry> {
    let Some(first) = entries.first().map(|e| e.index) else {
        return entries;
    };
    if first > meta.index {
        return entries;
    }
    let at = usize::try_from(meta.index.0 - first.0).unwrap_or(usize::MAX);
    match entries.get(at) {
        Some(entry) if entry.term == meta.term => entries.split_off(at + 1),
        _ => Vec::new(),
    }
}

/// Switches on `config`'s catalogued state machine bug, if any, in `machine`: at a start, on
/// a state machine installed from a snapshot, and on a replay of the committed log.
#[cfg_attr(
    not(feature = "bug-catalogue"),
    allow(unused_variables, reason = "no bug to switch on")
)]
pub(crate) fn arm_state_machine_bugs(config: &Config, machine: &mut StateMachine) {
    if crate::injected!(config, SessionWindowNewerReply) {
        #[cfg(feature = "bug-catalogue")]
        machine.answer_retries_with_newer_replies();
    }
    if crate::injected!(config, CasVersionAtLeast) {
        #[cfg(feature = "bug-catalogue")]
        machine.compare_versions_at_least();
    }
    if crate::injected!(config, TransactionReadsBefore) {
        #[cfg(feature = "bug-catalogue")]
        machine.read_transactions_before_their_writes();
    }
}
