//! Reads served without a log entry (Raft dissertation §6.4).
//!
//! - **Linearizable (ReadIndex).** The leader takes its commit index as the read's index, then
//!   confirms that it still leads: a round of [`MessageBody::ReadRound`] acknowledged by a
//!   majority in its term. Once its state machine has applied the index, the read runs. A
//!   leader starts no round before an entry of its own term commits: until then its commit
//!   index may lag what earlier leaders committed. Reads that arrive while a round is in flight
//!   wait for the next one, so one round confirms a whole batch. A follower asks its leader for
//!   an index ([`MessageBody::ReadIndexRequest`]) and serves the read itself once it has
//!   applied that far.
//! - **Lease.** A confirmed round also shows that a majority heard this leader after the round
//!   started, and a node that heard a live leader ignores vote requests for a minimum election
//!   timeout (leader stickiness, [`Node::in_lease`]). So for [`Config::lease_read_ms`] of the
//!   driver's monotonic clock after the round started, a time chosen below that timeout by the
//!   clock drift allowed, no other leader can exist, and the leader serves reads at its commit
//!   index without a round. A leader that starts a leadership transfer forfeits its lease for
//!   the rest of its term: its target's votes are granted despite stickiness. Lease reads
//!   keep the lease warm: a heartbeat after one starts a round.
//! - **Stale.** Served from this node's applied state, without asking anyone, by a leader or
//!   by a follower that heard its leader within the election timeout, once it has applied
//!   what that leader last told it was committed and an entry of the leader's term is among
//!   it (until then a new leader's commit index may lag its predecessor's). So it may miss the writes acknowledged
//!   since the leader sent the last message this node heard (which arrived within the last
//!   election timeout), and no more: a follower that is catching up (after a restart, a
//!   partition, a slow link) serves stale reads only once it has caught up with what it heard.
//!
//! A node runs its reads in the order they were asked, each once its index is applied, so reads
//! asked one after another see the store in that order. A read runs at a leader time no
//! earlier than its state's (see
//! [`crate::kv::StateMachine::read`]); a leader raises its stamp floor to that time, so no later
//! entry runs earlier and a key a read saw expire stays expired. A read that cannot be served
//! (leadership changed, or the leader did not answer within an election timeout) is answered
//! [`Outcome::NotServed`]: it had no effect and may be retried.
//!
//! [`Config::lease_read_ms`]: crate::Config::lease_read_ms

use super::{ClientReply, Node, Outcome, RequestTag, RoleState};
use crate::kv::{Command, Reply};
use crate::message::MessageBody;
use crate::quorum;
use crate::types::{LogIndex, NodeId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// How a read is served. See the module documentation.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub enum ReadConsistency {
    /// Sees every write acknowledged before it was sent (ReadIndex): one round of messages.
    #[default]
    Linearizable,
    /// Linearizable while clocks drift by no more than allowed: served at once under a lease.
    Lease,
    /// This node's applied state, at once: may miss recent writes.
    Stale,
}

/// Why a read cannot start on this node.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// This node neither leads nor follows a live leader; retry once one is elected.
    #[error("this node knows no live leader to serve the read; retry once one is elected")]
    NoLeader,
}

/// A read asked on this node.
#[derive(Clone, Debug)]
struct LocalRead {
    /// Its place in the order reads were asked on this node, which is the order they run in.
    seq: u64,
    tag: RequestTag,
    command: Command,
    /// It runs on a state applied at least this far (see [`Node::read`]).
    floor: LogIndex,
}

/// Who waits for a round's confirmation.
#[derive(Clone, Debug)]
enum Reader {
    Local(LocalRead),
    /// A follower's [`MessageBody::ReadIndexRequest`] `id`.
    Remote {
        from: NodeId,
        id: u64,
    },
}

/// A leader's round confirming that it still leads.
#[derive(Clone, Debug)]
struct Round {
    id: u64,
    started_ms: u64,
    /// The commit index when the round started: the index of every read it confirms.
    index: LogIndex,
    acks: BTreeSet<NodeId>,
    readers: Vec<Reader>,
}

/// A read whose index is known: it runs once that index is applied.
#[derive(Clone, Debug)]
struct Confirmed {
    index: LogIndex,
    /// The leader time it runs at, if another node chose it; this node's leader time if not.
    time_ms: Option<u64>,
    read: LocalRead,
}

/// A follower's read waiting for its leader's index.
#[derive(Clone, Debug)]
struct Asked {
    leader: NodeId,
    asked_tick: u64,
    read: LocalRead,
}

/// Every read in progress on one node.
#[derive(Clone, Debug, Default)]
pub(super) struct Reads {
    next_id: u64,
    /// Ticks since the node started (times out a follower's requests).
    ticks: u64,
    round: Option<Round>,
    /// Readers waiting for the next round.
    queued: Vec<Reader>,
    /// Reads whose index is known, by `seq`.
    confirmed: BTreeMap<u64, Confirmed>,
    asked: BTreeMap<u64, Asked>,
    next_seq: u64,
    /// The `seq` of every read asked here and not yet answered: a read runs only after
    /// every read asked before it, so reads asked in order see the store in that order.
    outstanding: BTreeSet<u64>,
    lease_until_ms: Option<u64>,
    lease_forfeited: bool,
    /// The highest commit index a leader told this node: a stale read waits for it.
    leader_commit: LogIndex,
    /// A lease read was served since the last round started.
    lease_in_use: bool,
}

impl Reads {
    /// No reads yet. Request and round ids start at `first_id`, which must differ between a
    /// node's incarnations (the node's seed does): a late answer to a request of an earlier
    /// incarnation must not match a request of this one.
    pub(super) fn new(first_id: u64) -> Reads {
        Reads {
            next_id: first_id,
            ..Reads::default()
        }
    }
}

impl Node {
    /// Starts read `command` (one with [`Command::read_keys`]) at `consistency`; its reply comes,
    /// tagged with `tag`, in a later [`super::Ready::replies`]: the read's result, with the
    /// applied index of the state it read as the reply's `index`, or [`Outcome::NotServed`].
    /// Nothing is written to the log. Set the clocks first ([`Node::set_clock_ms`],
    /// [`Node::set_monotonic_ms`]).
    ///
    /// The read runs on a state applied at least to `floor`: a client's highest index seen
    /// (its writes' entries, its earlier reads), so that even a stale read sees the client's
    /// own writes and never goes back in time. A linearizable or lease read is past any
    /// committed index already; the floor binds a stale read, which waits for this node to
    /// apply that far.
    ///
    /// # Panics
    /// If `command` is not a read of named keys (the caller routes only those here).
    pub fn read(
        &mut self,
        tag: RequestTag,
        command: Command,
        consistency: ReadConsistency,
        floor: LogIndex,
    ) -> Result<(), ReadError> {
        assert!(
            command.read_keys().is_some(),
            "only reads of named keys are served without the log: {command:?}"
        );
        let leads = matches!(self.role, RoleState::Leader { .. });
        let followed = match self.role {
            RoleState::Follower => self.leader,
            _ => None,
        };
        // A new leader's commit index (and what it tells its followers) may lag its
        // predecessor's until an entry of its own term commits: a state as old as the election.
        let term_committed = self.log.term_at(self.commit) == Some(self.term);
        let servable = match consistency {
            ReadConsistency::Stale => self.leader.is_some() && self.in_lease() && term_committed,
            ReadConsistency::Linearizable | ReadConsistency::Lease => leads || followed.is_some(),
        };
        if !servable {
            return Err(ReadError::NoLeader);
        }
        let seq = self.reads.next_seq;
        self.reads.next_seq += 1;
        self.reads.outstanding.insert(seq);
        let read = LocalRead {
            seq,
            tag,
            command,
            floor,
        };
        match (consistency, followed) {
            (ReadConsistency::Stale, _) => self.confirm(Confirmed {
                index: self.reads.leader_commit,
                time_ms: Some(0),
                read,
            }),
            (_, None) => {
                if consistency == ReadConsistency::Lease {
                    self.reads.lease_in_use = true;
                    if self.holds_lease() {
                        self.confirm(Confirmed {
                            index: self.commit,
                            time_ms: None,
                            read,
                        });
                        return Ok(());
                    }
                }
                self.reads.queued.push(Reader::Local(read));
                self.start_read_round(false);
            }
            (_, Some(leader)) => {
                let id = self.next_read_id();
                let lease = consistency == ReadConsistency::Lease;
                self.send(leader, MessageBody::ReadIndexRequest { id, lease });
                let asked_tick = self.reads.ticks;
                self.reads.asked.insert(
                    id,
                    Asked {
                        leader,
                        asked_tick,
                        read,
                    },
                );
            }
        }
        Ok(())
    }

    /// The read's index is known: it runs once that index and its floor are applied.
    fn confirm(&mut self, mut confirmed: Confirmed) {
        confirmed.index = confirmed.index.max(confirmed.read.floor);
        self.reads.confirmed.insert(confirmed.read.seq, confirmed);
    }

    /// Tells the node the driver's monotonic clock, in milliseconds from any origin: it never
    /// goes back and keeps running while the process is stopped. Leases are measured on it,
    /// by the last time the node was told: set it before every input (message, tick, read),
    /// or a leader resumed from a stop serves lease reads for its followers' queued requests
    /// as if no time had passed (found by the simulator's `read-sees-committed` invariant).
    pub fn set_monotonic_ms(&mut self, now_ms: u64) {
        debug_assert!(now_ms >= self.monotonic_ms, "the monotonic clock went back");
        self.monotonic_ms = self.monotonic_ms.max(now_ms);
    }

    /// Whether a leader may serve a read at its commit index without a round now.
    fn holds_lease(&self) -> bool {
        self.reads
            .lease_until_ms
            .is_some_and(|until| self.monotonic_ms < until)
            && !self.reads.lease_forfeited
    }

    fn next_read_id(&mut self) -> u64 {
        self.reads.next_id = self.reads.next_id.wrapping_add(1);
        self.reads.next_id
    }

    /// A leader starts a round for the queued readers (or, with `renew_lease`, to renew a
    /// lease in use) unless one is in flight or no entry of its term has committed yet.
    pub(super) fn start_read_round(&mut self, renew_lease: bool) {
        let wanted = !self.reads.queued.is_empty() || (renew_lease && self.reads.lease_in_use);
        let own_term_committed = self.log.term_at(self.commit) == Some(self.term)
            || crate::injected!(self.config, ReadIndexBeforeFirstCommit);
        if !matches!(self.role, RoleState::Leader { .. })
            || self.reads.round.is_some()
            || !wanted
            || !own_term_committed
        {
            return;
        }
        let id = self.next_read_id();
        self.reads.lease_in_use = false;
        self.reads.round = Some(Round {
            id,
            started_ms: self.monotonic_ms,
            index: self.commit,
            acks: BTreeSet::new(),
            readers: std::mem::take(&mut self.reads.queued),
        });
        for peer in self.peers() {
            self.send(peer, MessageBody::ReadRound { round: id });
        }
        self.count_read_acks();
    }

    /// A follower hears the leader of its term confirm a round: it answers, and treats the
    /// message as the leader's heartbeat.
    pub(super) fn handle_read_round(&mut self, leader: NodeId, round: u64) {
        if self.hear_leader(leader, "ReadRound") {
            self.send(leader, MessageBody::ReadRoundAck { round });
        }
    }

    /// A leader counts a follower's acknowledgement of round `round`.
    pub(super) fn handle_read_round_ack(&mut self, from: NodeId, round: u64) {
        if !matches!(self.role, RoleState::Leader { .. }) {
            return;
        }
        self.heard_from(from);
        if let Some(current) = self.reads.round.as_mut().filter(|r| r.id == round) {
            current.acks.insert(from);
            self.count_read_acks();
        }
    }

    /// Confirms the round in flight once a majority (this leader included) acknowledged it.
    fn count_read_acks(&mut self) {
        let confirmed = self
            .reads
            .round
            .as_ref()
            .is_some_and(|r| 1 + r.acks.len() >= quorum::majority(self.config.voters.len()));
        if !confirmed {
            return;
        }
        let round = self.reads.round.take().expect("checked above");
        if self.config.lease_read_ms > 0 {
            self.reads.lease_until_ms = Some(round.started_ms + self.config.lease_read_ms);
        }
        for reader in round.readers {
            match reader {
                Reader::Local(read) => self.confirm(Confirmed {
                    index: round.index,
                    time_ms: None,
                    read,
                }),
                Reader::Remote { from, id } => self.answer_read_index(from, id, round.index),
            }
        }
        self.start_read_round(false);
    }

    /// A leader hears a follower ask for a read index.
    pub(super) fn handle_read_index_request(&mut self, from: NodeId, id: u64, lease: bool) {
        if !matches!(self.role, RoleState::Leader { .. }) {
            return;
        }
        if lease {
            self.reads.lease_in_use = true;
            if self.holds_lease() {
                self.answer_read_index(from, id, self.commit);
                return;
            }
        }
        self.reads.queued.push(Reader::Remote { from, id });
        self.start_read_round(false);
    }

    fn answer_read_index(&mut self, to: NodeId, id: u64, index: LogIndex) {
        let time_ms = self.read_time_ms();
        self.send(to, MessageBody::ReadIndexResponse { id, index, time_ms });
    }

    /// A follower learns the index its read may run at.
    pub(super) fn handle_read_index_response(
        &mut self,
        from: NodeId,
        id: u64,
        index: LogIndex,
        time_ms: u64,
    ) {
        let Some(asked) = self.reads.asked.remove(&id) else {
            return;
        };
        if asked.leader != from {
            self.reads.asked.insert(id, asked);
            return;
        }
        self.confirm(Confirmed {
            index,
            time_ms: Some(time_ms),
            read: asked.read,
        });
    }

    /// The leader time a read runs at now: no earlier than anything this node stamped or
    /// applied; later entries are stamped no earlier.
    fn read_time_ms(&mut self) -> u64 {
        let time_ms = self
            .clock_ms
            .max(self.stamp_floor_ms)
            .max(self.state_machine.store().now_ms());
        if matches!(self.role, RoleState::Leader { .. }) {
            self.stamp_floor_ms = time_ms;
        }
        time_ms
    }

    /// Runs confirmed reads whose index is applied, in the order they were asked, up to the
    /// first that cannot run yet.
    pub(super) fn serve_reads(&mut self) {
        let applied = self.state_machine.applied_index();
        while let Some(&first) = self.reads.outstanding.first() {
            let Some(confirmed) = self.reads.confirmed.get(&first) else {
                return;
            };
            if confirmed.index > applied {
                return;
            }
            let Confirmed { time_ms, read, .. } = self
                .reads
                .confirmed
                .remove(&first)
                .expect("looked up above");
            self.reads.outstanding.remove(&first);
            let time_ms = match time_ms {
                Some(time_ms) => time_ms,
                None => self.read_time_ms(),
            };
            let frame = self.state_machine.read(&read.command, time_ms);
            self.replies.push(ClientReply {
                tag: read.tag,
                index: applied,
                outcome: Outcome::Applied(Reply::Executed(frame)),
            });
        }
    }

    /// A tick: a follower gives up on requests its leader left unanswered for an election
    /// timeout; a leader renews a lease in use with each heartbeat.
    pub(super) fn tick_reads(&mut self, heartbeat: bool) {
        self.reads.ticks += 1;
        let (now, timeout) = (self.reads.ticks, self.config.election_timeout_ticks);
        let late: Vec<u64> = self
            .reads
            .asked
            .iter()
            .filter(|(_, a)| now - a.asked_tick >= timeout)
            .map(|(&id, _)| id)
            .collect();
        for id in late {
            let asked = self.reads.asked.remove(&id).expect("listed above");
            self.not_served(asked.read);
        }
        if heartbeat {
            self.resend_read_round();
            self.start_read_round(true);
        }
    }

    /// A leader sends its round in flight again to the peers that have not acknowledged it
    /// (a message may have been lost; acknowledgements count once).
    fn resend_read_round(&mut self) {
        let Some(round) = &self.reads.round else {
            return;
        };
        let (id, silent): (u64, Vec<NodeId>) = (
            round.id,
            self.peers().filter(|p| !round.acks.contains(p)).collect(),
        );
        for peer in silent {
            self.send(peer, MessageBody::ReadRound { round: id });
        }
    }

    /// The node's role or leader changed: reads not yet confirmed are answered not served
    /// (confirmed ones still run: they were linearizable when confirmed), and the lease ends.
    pub(super) fn abandon_reads(&mut self) {
        let round = self
            .reads
            .round
            .take()
            .map(|r| r.readers)
            .unwrap_or_default();
        let queued = std::mem::take(&mut self.reads.queued);
        for reader in round.into_iter().chain(queued) {
            if let Reader::Local(read) = reader {
                self.not_served(read);
            }
        }
        for (_, asked) in std::mem::take(&mut self.reads.asked) {
            self.not_served(asked.read);
        }
        self.reads.lease_until_ms = None;
        self.reads.lease_forfeited = false;
        self.reads.lease_in_use = false;
    }

    /// A follower hears its leader's commit index (stale reads wait for it).
    pub(super) fn hear_leader_commit(&mut self, leader_commit: LogIndex) {
        self.reads.leader_commit = self.reads.leader_commit.max(leader_commit);
    }

    /// A leader that starts handing over forfeits its lease for the rest of its term.
    pub(super) fn forfeit_lease(&mut self) {
        self.reads.lease_forfeited = !crate::injected!(self.config, LeaseAcrossTransfer);
    }

    fn not_served(&mut self, read: LocalRead) {
        self.reads.outstanding.remove(&read.seq);
        self.replies.push(ClientReply {
            tag: read.tag,
            index: LogIndex(0),
            outcome: Outcome::NotServed,
        });
    }
}
