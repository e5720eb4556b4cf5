//! Log replication (Raft §5.3) on both sides, and commitment (§5.4.2).
//!
//! Leader side: per-follower [`crate::progress::Progress`] decides what to send; entries are
//! batched (up to `max_entries_per_append` per message) and pipelined (up to
//! `max_inflight_appends` messages) once a follower is known to match. Follower side: the
//! log-matching check, truncation of a conflicting uncommitted suffix, and a rejection hint that
//! lets the leader skip a whole term per round trip.

use super::{Node, RoleState};
use crate::log::Entry;
use crate::message::{AppendOutcome, Message, MessageBody};
use crate::progress::ProgressState;
use crate::quorum;
use crate::types::{LogIndex, NodeId, Term};

impl Node {
    /// Sends every follower what it is missing, as far as its progress allows.
    pub(super) fn flush_replication(&mut self) {
        let RoleState::Leader { progress, .. } = &mut self.role else {
            return;
        };
        let last_index = self.log.last_index();
        for (&peer, p) in progress.iter_mut() {
            while !p.is_paused()
                && (p.state != ProgressState::Replicate || p.next_index <= last_index)
            {
                if let Some(sending) = &p.sending {
                    let (body, end) =
                        super::snapshots::next_chunk(sending, self.config.snapshot_chunk_bytes);
                    p.chunk_sent(end);
                    self.early_outbox.push(Message {
                        from: self.config.id,
                        to: peer,
                        term: self.term,
                        body,
                    });
                    continue;
                }
                let prev_log_index = p.next_index.prev();
                let (prefix_index, prefix_term) = self.log.prefix();
                let (prev_log_index, prev_log_term) = match self.log.term_at(prev_log_index) {
                    Some(term) => (prev_log_index, term),
                    None if crate::injected!(self.config, CompactionSkipsSnapshot) => {
                        (prefix_index, prefix_term)
                    }
                    None => {
                        assert!(
                            prev_log_index < prefix_index,
                            "next_index stays within the log or before it"
                        );
                        tracing::info!(
                            node = self.config.id.0,
                            peer = peer.0,
                            next_index = p.next_index.0,
                            "follower needs compacted entries, sending the snapshot"
                        );
                        p.become_snapshot(
                            self.snapshot
                                .clone()
                                .expect("a log compacted past its start has a snapshot"),
                        );
                        continue;
                    }
                };
                let entries = within_byte_budget(
                    self.log
                        .slice(prev_log_index.next(), self.config.max_entries_per_append),
                    self.config.max_append_bytes,
                )
                .to_vec();
                p.sent(entries.last().map_or(prev_log_index, |e| e.index));
                self.early_outbox.push(Message {
                    from: self.config.id,
                    to: peer,
                    term: self.term,
                    body: MessageBody::AppendEntries {
                        prev_log_index,
                        prev_log_term,
                        entries,
                        leader_commit: self.commit,
                    },
                });
            }
        }
    }

    /// The leader's heartbeat round: followers being probed get a fresh probe (in the next
    /// flush); replicating followers get an empty AppendEntries at their match index, which
    /// cannot truncate anything and carries the commit index.
    pub(super) fn broadcast_heartbeat(&mut self) {
        let RoleState::Leader { progress, .. } = &mut self.role else {
            return;
        };
        for (&peer, p) in progress.iter_mut() {
            if p.heartbeat() {
                tracing::debug!(
                    node = self.config.id.0,
                    peer = peer.0,
                    "replication stalled, probing"
                );
            }
            if p.state != ProgressState::Replicate {
                continue;
            }
            let Some(prev_log_term) = self.log.term_at(p.match_index) else {
                // Compacted past what the follower holds: the next flush sends the snapshot.
                p.become_probe(p.match_index.next());
                continue;
            };
            self.early_outbox.push(Message {
                from: self.config.id,
                to: peer,
                term: self.term,
                body: MessageBody::AppendEntries {
                    prev_log_index: p.match_index,
                    prev_log_term,
                    entries: Vec::new(),
                    leader_commit: self.commit,
                },
            });
        }
    }

    /// A follower (or candidate) receives AppendEntries from the leader of its current term.
    pub(super) fn handle_append_entries(
        &mut self,
        leader: NodeId,
        prev_log_index: LogIndex,
        prev_log_term: Term,
        entries: Vec<Entry>,
        leader_commit: LogIndex,
    ) {
        if !self.hear_leader(leader, "AppendEntries") {
            return;
        }
        if let Err(problem) =
            check_entries_shape(prev_log_index, prev_log_term, self.term, &entries)
        {
            tracing::warn!(
                node = self.id().0,
                from = leader.0,
                problem,
                "dropped malformed AppendEntries"
            );
            return;
        }
        self.hear_leader_commit(leader_commit);
        if prev_log_index < self.log.prefix().0 {
            // Compacted here, so committed: the logs agree up to the commit index.
            self.send(
                leader,
                MessageBody::AppendEntriesResponse(AppendOutcome::Accepted {
                    match_index: self.commit,
                }),
            );
            return;
        }
        if !self.log.matches(prev_log_index, prev_log_term) {
            let (hint_index, hint_term) = self
                .log
                .find_conflict_by_term(prev_log_index, prev_log_term);
            tracing::info!(
                node = self.id().0,
                term = self.term.0,
                prev_log_index = prev_log_index.0,
                prev_log_term = prev_log_term.0,
                hint_index = hint_index.0,
                hint_term = hint_term.0,
                "log conflict found"
            );
            self.send(
                leader,
                MessageBody::AppendEntriesResponse(AppendOutcome::Rejected {
                    rejected_index: prev_log_index,
                    hint_index,
                    hint_term,
                }),
            );
            return;
        }
        let match_index = LogIndex(prev_log_index.0 + entries.len() as u64);
        if crate::injected!(self.config, HeartbeatTruncates)
            && entries.is_empty()
            && prev_log_index < self.log.last_index()
        {
            self.log.truncate_from(prev_log_index.next());
            self.stable_index = self.stable_index.min(prev_log_index);
            self.supersede_pending_from(prev_log_index.next());
        }
        if let Some(first_new) = entries
            .iter()
            .position(|e| !self.log.matches(e.index, e.term))
        {
            let from = entries[first_new].index;
            if from <= self.commit {
                tracing::error!(
                    node = self.id().0,
                    term = self.term.0,
                    index = from.0,
                    commit = self.commit.0,
                    "dropped AppendEntries that would overwrite a committed entry"
                );
                return;
            }
            if from <= self.log.last_index() {
                tracing::info!(
                    node = self.id().0,
                    term = self.term.0,
                    from = from.0,
                    last_index = self.log.last_index().0,
                    "truncating conflicting uncommitted suffix"
                );
                self.log.truncate_from(from);
                self.stable_index = self.stable_index.min(from.prev());
                self.supersede_pending_from(from);
            }
            for entry in entries.into_iter().skip(first_new) {
                self.log.append(entry);
            }
            self.mark_unpersisted(from);
        }
        let matched = if crate::injected!(self.config, CommitPastMatch) {
            self.log.last_index()
        } else {
            match_index
        };
        self.advance_commit(leader_commit.min(matched));
        self.send(
            leader,
            MessageBody::AppendEntriesResponse(AppendOutcome::Accepted { match_index }),
        );
    }

    /// A message (`kind`) from `leader`, the leader of this term, arrived: a candidate of the
    /// term steps down, a follower follows it and restarts its election clock. `false` (the
    /// message is dropped and logged) when this node leads the term itself: only a confused
    /// or hostile sender claims the same term.
    pub(super) fn hear_leader(&mut self, leader: NodeId, kind: &'static str) -> bool {
        match self.role {
            RoleState::Leader { .. } => {
                tracing::error!(
                    node = self.id().0,
                    term = self.term.0,
                    other = leader.0,
                    kind,
                    "dropped a message from a second leader of this term"
                );
                return false;
            }
            RoleState::Candidate { .. } | RoleState::PreCandidate { .. } => {
                self.become_follower(self.term, Some(leader), "heard from the term's leader");
            }
            RoleState::Follower => {
                self.leader = Some(leader);
                self.election_elapsed_ticks = 0;
            }
        }
        true
    }

    /// The leader learns a follower's verdict on an AppendEntries.
    pub(super) fn handle_append_response(&mut self, from: NodeId, outcome: AppendOutcome) {
        let RoleState::Leader {
            progress, ticks, ..
        } = &mut self.role
        else {
            return;
        };
        let Some(p) = progress.get_mut(&from) else {
            return;
        };
        p.last_heard_tick = *ticks;
        match outcome {
            AppendOutcome::Accepted { match_index } => {
                if match_index > self.log.last_index() {
                    tracing::warn!(
                        node = self.config.id.0,
                        from = from.0,
                        match_index = match_index.0,
                        "dropped acknowledgement past the end of the log"
                    );
                    return;
                }
                if p.accept(match_index) {
                    self.maybe_commit();
                }
                self.advance_transfer();
            }
            AppendOutcome::Rejected {
                rejected_index,
                hint_index,
                hint_term,
            } => {
                // A follower that agrees only below the compacted prefix needs the snapshot:
                // probing below the prefix makes the next flush send it.
                let agree_index = if hint_index < self.log.prefix().0 {
                    hint_index
                } else {
                    self.log.find_conflict_by_term(hint_index, hint_term).0
                };
                if p.reject(rejected_index, agree_index) {
                    tracing::debug!(
                        node = self.config.id.0,
                        peer = from.0,
                        next_index = p.next_index.0,
                        "follower rejected append, probing back"
                    );
                }
            }
        }
    }

    /// Commits the highest index stored on a majority, but only if its entry is of the current
    /// term: counting replicas of an older term's entry is unsafe (Raft Figure 8). The leader's
    /// own log counts only as far as the driver acknowledged it durable.
    pub(super) fn maybe_commit(&mut self) {
        let RoleState::Leader { progress, .. } = &self.role else {
            return;
        };
        let mut matched: Vec<LogIndex> = progress
            .values()
            .map(|p| {
                if crate::injected!(self.config, CommitBeforeAck) {
                    p.next_index.prev()
                } else {
                    p.match_index
                }
            })
            .collect();
        matched.push(if crate::injected!(self.config, CommitUnpersisted) {
            self.log.last_index()
        } else {
            self.stable_index
        });
        let candidate = quorum::committed_index(matched);
        if self.log.term_at(candidate) == Some(self.term)
            || crate::injected!(self.config, CommitPreviousTerm)
        {
            self.advance_commit(candidate);
        }
    }

    fn advance_commit(&mut self, index: LogIndex) {
        if index <= self.commit {
            return;
        }
        assert!(
            index <= self.log.last_index(),
            "commit past the end of the log"
        );
        tracing::debug!(
            node = self.id().0,
            term = self.term.0,
            from = self.commit.0,
            to = index.0,
            "commit advanced"
        );
        self.commit = index;
        self.start_read_round(false);
    }
}

/// Checks what an honest leader always sends: entries contiguous from `prev_log_index + 1`,
/// terms not decreasing, from `prev_log_term` up to the message's term.
fn check_entries_shape(
    prev_log_index: LogIndex,
    prev_log_term: Term,
    message_term: Term,
    entries: &[Entry],
) -> Result<(), &'static str> {
    if prev_log_term > message_term {
        return Err("previous term is newer than the message");
    }
    let (mut index, mut term) = (prev_log_index, prev_log_term);
    for entry in entries {
        if entry.index != index.next() {
            return Err("entries are not contiguous");
        }
        if entry.term < term || entry.term > message_term {
            return Err("entry terms out of order");
        }
        (index, term) = (entry.index, entry.term);
    }
    Ok(())
}

/// The longest prefix of `entries` whose payload fits in `budget_bytes`, but at least one
/// entry (so a single large entry still travels).
fn within_byte_budget(entries: &[Entry], budget_bytes: u64) -> &[Entry] {
    let mut total = 0u64;
    let fitting = entries
        .iter()
        .take_while(|entry| {
            total = total.saturating_add(entry.payload_bytes());
            total <= budget_bytes
        })
        .count();
    &entries[..fitting.max(1).min(entries.len())]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::{ClientOp, ClientRequest, Command, SessionToken};
    use crate::log::EntryPayload;
    use crate::types::{ClientId, Sequence};

    fn put(index: u64, value_bytes: usize) -> Entry {
        Entry {
            index: LogIndex(index),
            term: Term(1),
            payload: EntryPayload::Client {
                op: ClientOp::Request(ClientRequest {
                    client: ClientId(1),
                    token: SessionToken::default(),
                    may_skip_earlier: false,
                    sequence: Sequence(index),
                    command: Command::set(*b"k", vec![0; value_bytes]),
                }),
                time_ms: 0,
            },
        }
    }

    #[test]
    fn appends_stop_at_the_byte_budget_but_carry_at_least_one_entry() {
        let entries: Vec<Entry> = (1..=10).map(|i| put(i, 99)).collect();
        assert_eq!(within_byte_budget(&entries, 1_000).len(), 10);
        assert_eq!(within_byte_budget(&entries, 450).len(), 4);
        assert_eq!(within_byte_budget(&entries, 10).len(), 1);
        assert!(within_byte_budget(&[], 10).is_empty());
    }
}
