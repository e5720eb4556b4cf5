//! Terms, votes and roles (Raft §5.2, §5.4.1), plus the leader's quorum check.

use super::{Node, RoleState};
use crate::log::{Entry, EntryPayload};
use crate::message::{AppendOutcome, Message, MessageBody};
use crate::progress::Progress;
use crate::quorum::{self, VoteResult};
use crate::types::{LogIndex, NodeId, Term};
use rand_chacha::rand_core::RngCore;
use std::collections::BTreeMap;

impl Node {
    /// Restarts the election clock with a fresh timeout drawn uniformly from
    /// `[election_timeout_ticks, 2 * election_timeout_ticks)`.
    pub(super) fn reset_election_timer(&mut self) {
        let base = self.config.election_timeout_ticks;
        self.election_elapsed_ticks = 0;
        self.election_timeout_ticks = base + self.rng.next_u64() % base;
    }

    /// Asks every peer whether it would vote for this node in the next term, without raising
    /// the term or voting (pre-vote, dissertation §9.6). The node campaigns for real only once
    /// a majority says yes; until then it cannot depose anyone.
    pub(super) fn pre_campaign(&mut self) {
        self.abandon_reads();
        self.leader = None;
        self.role = RoleState::PreCandidate {
            votes: BTreeMap::from([(self.id(), true)]),
        };
        self.reset_election_timer();
        tracing::info!(
            node = self.id().0,
            term = self.term.0,
            "became pre-candidate"
        );
        if self.tally() == VoteResult::Won {
            self.campaign("won the pre-vote", false);
            return;
        }
        let (last_log_index, last_log_term) = (self.log.last_index(), self.log.last_term());
        let next_term = self.term.next();
        for peer in self.peers() {
            self.send_in_term(
                peer,
                next_term,
                MessageBody::PreVote {
                    last_log_index,
                    last_log_term,
                },
            );
        }
    }

    /// Starts an election for the next term, voting for itself. A campaign its leader asked
    /// for (`transfer`) sends [`MessageBody::TransferVote`], which voters answer even while
    /// they hear from that leader.
    pub(super) fn campaign(&mut self, reason: &'static str, transfer: bool) {
        self.abandon_reads();
        self.starting = false;
        self.term = self.term.next();
        self.vote = Some(self.id());
        self.leader = None;
        self.role = RoleState::Candidate {
            votes: BTreeMap::from([(self.id(), true)]),
        };
        self.reset_election_timer();
        tracing::info!(
            node = self.id().0,
            term = self.term.0,
            reason,
            "became candidate"
        );
        if self.tally() == VoteResult::Won {
            self.become_leader();
            return;
        }
        let (last_log_index, last_log_term) = (self.log.last_index(), self.log.last_term());
        for peer in self.peers() {
            let body = if transfer {
                MessageBody::TransferVote {
                    last_log_index,
                    last_log_term,
                }
            } else {
                MessageBody::RequestVote {
                    last_log_index,
                    last_log_term,
                }
            };
            self.send(peer, body);
        }
    }

    /// Whether this node heard from a live leader within the minimum election timeout (or
    /// leads itself, or started less than a minimum election timeout ago): then it neither
    /// grants votes nor pre-votes to others (leader stickiness, dissertation §4.2.3), so a
    /// node that cannot hear the leader cannot depose it, and a leader's lease holds (see
    /// [`Node::read`]). A leader that lost its majority steps down within the same timeout (check-quorum),
    /// so the cluster is never held leaderless by it.
    #[must_use]
    pub fn in_lease(&self) -> bool {
        match self.role {
            RoleState::Leader { .. } => true,
            RoleState::Follower => {
                (self.leader.is_some() || self.starting)
                    && (self.election_elapsed_ticks < self.config.election_timeout_ticks
                        || crate::injected!(self.config, StickinessOutlivesLeader))
            }
            RoleState::PreCandidate { .. } | RoleState::Candidate { .. } => false,
        }
    }

    /// Answers a pre-vote for term `message.term`: yes if the asker's log is at least as up to
    /// date, this node hears no live leader, and the asked term is newer than this node's (or
    /// is this term, with no vote cast and no leader known). Nothing of this node changes.
    pub(super) fn handle_pre_vote(
        &mut self,
        message: &Message,
        last_log_index: LogIndex,
        last_log_term: Term,
    ) {
        let up_to_date = self.log_up_to_date(last_log_index, last_log_term);
        let term_free = message.term > self.term
            || (self.vote.is_none_or(|vote| vote == message.from) && self.leader.is_none());
        let in_lease = self.in_lease();
        let granted = up_to_date && term_free && !in_lease;
        tracing::debug!(
            node = self.id().0,
            term = self.term.0,
            asker = message.from.0,
            asked_term = message.term.0,
            granted,
            up_to_date,
            in_lease,
            "pre-vote"
        );
        let term = if granted { message.term } else { self.term };
        self.send_in_term(message.from, term, MessageBody::PreVoteResponse { granted });
    }

    /// Counts a pre-vote answer; a majority of yes starts the real campaign.
    pub(super) fn handle_pre_vote_response(&mut self, voter: NodeId, term: Term, granted: bool) {
        let RoleState::PreCandidate { votes } = &mut self.role else {
            return;
        };
        if granted && term != self.term.next() {
            return;
        }
        votes.insert(voter, granted);
        match self.tally() {
            VoteResult::Won => self.campaign("won the pre-vote", false),
            VoteResult::Lost => self.become_follower(self.term, None, "lost the pre-vote"),
            VoteResult::Pending => {}
        }
    }

    /// The leader of this term hands its leadership over: campaign at once, without a
    /// pre-vote, asking for votes that voters grant even while they hear from that leader.
    pub(super) fn handle_timeout_now(&mut self, from: NodeId) {
        if self.leader != Some(from) || !matches!(self.role, RoleState::Follower) {
            tracing::info!(
                node = self.id().0,
                term = self.term.0,
                from = from.0,
                "ignored TimeoutNow from a node that is not this term's leader"
            );
            return;
        }
        self.campaign("the leader handed over", true);
    }

    /// Becomes a follower in `term` (which must not be older than the current one), clearing
    /// the vote if the term is new.
    pub(super) fn become_follower(
        &mut self,
        term: Term,
        leader: Option<NodeId>,
        reason: &'static str,
    ) {
        assert!(term >= self.term, "terms never go back");
        if term > self.term || crate::injected!(self.config, ClearVoteOnStepDown) {
            self.term = term;
            self.vote = None;
        }
        let was = self.role();
        self.abandon_reads();
        self.role = RoleState::Follower;
        self.leader = leader;
        self.reset_election_timer();
        tracing::info!(
            node = self.id().0,
            term = self.term.0,
            leader = leader.map(|l| l.0),
            was = ?was,
            reason,
            "became follower"
        );
    }

    /// Takes leadership of the current term: fresh progress for every peer and a no-op entry
    /// so that entries of earlier terms can commit.
    fn become_leader(&mut self) {
        let next = self.log.last_index().next();
        let max_inflight = self.config.max_inflight_appends;
        let progress = self
            .peers()
            .map(|peer| (peer, Progress::new(next, max_inflight, 0)))
            .collect();
        self.abandon_reads();
        self.role = RoleState::Leader {
            progress,
            ticks: 0,
            transfer: None,
        };
        self.leader = Some(self.id());
        self.heartbeat_elapsed_ticks = 0;
        tracing::info!(
            node = self.id().0,
            term = self.term.0,
            last_index = self.log.last_index().0,
            "became leader"
        );
        self.stamp_floor_ms = self.last_stamp_ms();
        self.append_own(EntryPayload::Noop);
    }

    /// The stamp of the last client entry in the log, or the time of the applied state if the
    /// log holds none (it may all be compacted into a snapshot). Stamps never decrease along a
    /// log, so it is the largest.
    fn last_stamp_ms(&self) -> u64 {
        let first = self.log.first_index();
        let mut index = self.log.last_index();
        while index >= first && index.0 > 0 {
            if let Some(Entry {
                payload: EntryPayload::Client { time_ms, .. },
                ..
            }) = self.log.entry(index)
            {
                return *time_ms;
            }
            index = LogIndex(index.0 - 1);
        }
        self.state_machine.store().now_ms()
    }

    pub(super) fn handle_request_vote(
        &mut self,
        candidate: NodeId,
        last_log_index: LogIndex,
        last_log_term: Term,
    ) {
        let free = self.vote.is_none_or(|vote| vote == candidate)
            || crate::injected!(self.config, DoubleVote);
        let up_to_date = self.log_up_to_date(last_log_index, last_log_term);
        let granted = free && up_to_date;
        if granted {
            self.vote = Some(candidate);
            self.reset_election_timer();
        }
        let reason = match (free, up_to_date) {
            (true, true) => "granted",
            (false, _) => "already voted in this term",
            (true, false) => "candidate's log is behind",
        };
        tracing::info!(
            node = self.id().0,
            term = self.term.0,
            candidate = candidate.0,
            granted,
            reason,
            "vote"
        );
        if granted && crate::injected!(self.config, VoteBeforeFsync) {
            self.early_outbox.push(Message {
                from: self.id(),
                to: candidate,
                term: self.term,
                body: MessageBody::RequestVoteResponse { granted },
            });
            return;
        }
        self.send(candidate, MessageBody::RequestVoteResponse { granted });
    }

    /// Whether a log ending at `last_log_index` of `last_log_term` is at least as up to date
    /// as this node's (§5.4.1): a vote or pre-vote goes only to such a log.
    fn log_up_to_date(&self, last_log_index: LogIndex, last_log_term: Term) -> bool {
        (last_log_term, last_log_index) >= (self.log.last_term(), self.log.last_index())
            || crate::injected!(self.config, SkipLogCheck)
    }

    pub(super) fn handle_vote_response(&mut self, voter: NodeId, granted: bool) {
        let RoleState::Candidate { votes } = &mut self.role else {
            return;
        };
        votes.insert(voter, granted);
        match self.tally() {
            VoteResult::Won => self.become_leader(),
            VoteResult::Lost => self.become_follower(self.term, None, "lost election"),
            VoteResult::Pending => {}
        }
    }

    fn tally(&self) -> VoteResult {
        match &self.role {
            RoleState::Candidate { votes } | RoleState::PreCandidate { votes } => {
                quorum::vote_result(&self.config.voters, votes)
            }
            _ => VoteResult::Pending,
        }
    }

    /// Answers a message from an older term so that a deposed leader or stale candidate
    /// learns the current term; responses from older terms are simply dropped.
    pub(super) fn answer_stale(&mut self, message: &Message) {
        tracing::debug!(
            node = self.id().0,
            term = self.term.0,
            from = message.from.0,
            stale_term = message.term.0,
            "stale message"
        );
        match message.body {
            MessageBody::RequestVote { .. } | MessageBody::TransferVote { .. } => {
                self.send(
                    message.from,
                    MessageBody::RequestVoteResponse { granted: false },
                );
            }
            MessageBody::PreVote { .. } => {
                self.send(
                    message.from,
                    MessageBody::PreVoteResponse { granted: false },
                );
            }
            MessageBody::AppendEntries { prev_log_index, .. } => {
                self.send(
                    message.from,
                    MessageBody::AppendEntriesResponse(AppendOutcome::Rejected {
                        rejected_index: prev_log_index,
                        hint_index: self.log.last_index(),
                        hint_term: self.log.last_term(),
                    }),
                );
            }
            // A deposed leader's round: the answer in this term tells it to step down.
            MessageBody::ReadRound { round } => {
                self.send(message.from, MessageBody::ReadRoundAck { round });
            }
            // A deposed leader's snapshot: the answer in this term tells it to step down.
            MessageBody::InstallSnapshot { meta, .. } => {
                self.send(
                    message.from,
                    MessageBody::SnapshotChunkAck {
                        index: meta.index,
                        received: 0,
                    },
                );
            }
            MessageBody::RequestVoteResponse { .. }
            | MessageBody::SnapshotChunkAck { .. }
            | MessageBody::AppendEntriesResponse(_)
            | MessageBody::PreVoteResponse { .. }
            | MessageBody::TimeoutNow
            | MessageBody::ReadRoundAck { .. }
            | MessageBody::ReadIndexRequest { .. }
            | MessageBody::ReadIndexResponse { .. } => {}
        }
    }

    /// A leader's tick: heartbeats every `heartbeat_interval_ticks`; check-quorum (a leader
    /// that has not heard from a majority, itself included, within the minimum election
    /// timeout steps down at once, so it never believes it leads longer than a follower waits
    /// before campaigning); and a leadership transfer that has not finished within an election
    /// timeout is abandoned. Returns whether it was a heartbeat tick.
    pub(super) fn tick_leader(&mut self) -> bool {
        self.heartbeat_elapsed_ticks += 1;
        let heartbeat = self.heartbeat_elapsed_ticks >= self.config.heartbeat_interval_ticks;
        if heartbeat {
            self.heartbeat_elapsed_ticks = 0;
            self.broadcast_heartbeat();
        }
        let election_timeout = self.config.election_timeout_ticks;
        let voters = self.config.voters.len();
        let never_expires = crate::injected!(self.config, CheckQuorumOnce);
        let RoleState::Leader {
            progress,
            ticks,
            transfer,
        } = &mut self.role
        else {
            unreachable!("tick_leader runs on leaders");
        };
        *ticks += 1;
        let now = *ticks;
        if let Some(abandoned) = transfer.take_if(|t| now - t.started_tick >= election_timeout) {
            tracing::warn!(
                node = self.config.id.0,
                term = self.term.0,
                to = abandoned.to.0,
                "leadership transfer abandoned: the node did not take over within an election timeout"
            );
        }
        let active = 1 + progress
            .values()
            .filter(|p| never_expires || p.heard_within(now, election_timeout))
            .count();
        let needed = quorum::majority(voters)
            + usize::from(crate::injected!(self.config, QuorumCheckOffByOne));
        if active < needed {
            tracing::warn!(
                node = self.id().0,
                term = self.term.0,
                active,
                "leader lost its quorum"
            );
            self.become_follower(self.term, None, "lost contact with a majority");
        }
        heartbeat
    }

    /// Moves a leadership transfer on: whenever the target acknowledges the leader's last
    /// entry, tells it to campaign (again at each such acknowledgement, so a lost `TimeoutNow`
    /// does not waste the transfer; the target ignores it once it campaigns).
    pub(super) fn advance_transfer(&mut self) {
        let last_index = self.log.last_index();
        let RoleState::Leader {
            progress,
            transfer: Some(transfer),
            ..
        } = &mut self.role
        else {
            return;
        };
        let caught_up = progress
            .get(&transfer.to)
            .is_some_and(|p| p.match_index == last_index);
        if !caught_up {
            return;
        }
        let to = transfer.to;
        tracing::info!(
            node = self.id().0,
            term = self.term.0,
            to = to.0,
            "leadership transfer: the node is caught up; told it to campaign"
        );
        self.send(to, MessageBody::TimeoutNow);
    }
}
