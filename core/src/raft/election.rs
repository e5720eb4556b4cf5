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

    /// Starts an election for the next term, voting for itself.
    pub(super) fn campaign(&mut self, reason: &'static str) {
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
            self.send(
                peer,
                MessageBody::RequestVote {
                    last_log_index,
                    last_log_term,
                },
            );
        }
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
            .map(|peer| (peer, Progress::new(next, max_inflight)))
            .collect();
        self.role = RoleState::Leader {
            progress,
            ticks_since_quorum_check: 0,
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

    /// The stamp of the last client entry in the log (0 if none). Stamps never decrease along
    /// a log, so it is the largest.
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
        0
    }

    pub(super) fn handle_request_vote(
        &mut self,
        candidate: NodeId,
        last_log_index: LogIndex,
        last_log_term: Term,
    ) {
        let free = self.vote.is_none_or(|vote| vote == candidate)
            || crate::injected!(self.config, DoubleVote);
        let up_to_date = (last_log_term, last_log_index)
            >= (self.log.last_term(), self.log.last_index())
            || crate::injected!(self.config, SkipLogCheck);
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
            RoleState::Candidate { votes } => quorum::vote_result(&self.config.voters, votes),
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
            MessageBody::RequestVote { .. } => {
                self.send(
                    message.from,
                    MessageBody::RequestVoteResponse { granted: false },
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
            MessageBody::RequestVoteResponse { .. } | MessageBody::AppendEntriesResponse(_) => {}
        }
    }

    /// A leader's tick: heartbeats every `heartbeat_interval_ticks`, and every
    /// `election_timeout_ticks` a check that a majority answered since the last check. A leader
    /// cut off from its majority steps down instead of believing it still leads.
    pub(super) fn tick_leader(&mut self) {
        self.heartbeat_elapsed_ticks += 1;
        if self.heartbeat_elapsed_ticks >= self.config.heartbeat_interval_ticks {
            self.heartbeat_elapsed_ticks = 0;
            self.broadcast_heartbeat();
        }
        let election_timeout = self.config.election_timeout_ticks;
        let voters = self.config.voters.len();
        let RoleState::Leader {
            progress,
            ticks_since_quorum_check,
        } = &mut self.role
        else {
            unreachable!("tick_leader runs on leaders");
        };
        *ticks_since_quorum_check += 1;
        if *ticks_since_quorum_check < election_timeout {
            return;
        }
        *ticks_since_quorum_check = 0;
        let active = 1 + progress.values().filter(|p| p.recently_active).count();
        for p in progress.values_mut() {
            p.recently_active = crate::injected!(self.config, CheckQuorumOnce) && p.recently_active;
        }
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
    }
}
