//! An in-memory cluster harness and a safety checker, for tests, property tests and fuzzers.
//!
//! [`Cluster`] wires real [`Node`]s through an in-memory network the caller controls message
//! by message: deliver, drop or duplicate any message in flight, in any order. Its "disk" is
//! synchronous: a [`Ready`](crate::Ready) is durable as soon as it is processed, so a crash
//! loses nothing that was acknowledged. (The fault-injecting disk lives in the simulator.)
//!
//! [`SafetyChecker`] watches nodes after every step and reports the first violation of Raft's
//! safety properties (Figure 3 of the paper).

use crate::config::Config;
use crate::kv::{ClientOp, StateMachine};
use crate::log::Entry;
use crate::message::Message;
use crate::raft::{ClientReply, Node, ProposeError, Recovered, RequestTag, Role};
use crate::types::{LogIndex, NodeId, Term};
use std::collections::{BTreeMap, BTreeSet};

/// A broken safety property, with the evidence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SafetyViolation {
    /// Election safety: two leaders in one term.
    #[error("election safety: {first} and {second} both led term {term}")]
    TwoLeaders {
        /// The term.
        term: Term,
        /// The leader seen first.
        first: NodeId,
        /// The other.
        second: NodeId,
    },
    /// Log matching: two logs hold an entry with the same index and term but differ there
    /// (in content, or in the term of the entry before it).
    #[error(
        "log matching: {node} holds a different entry at index {index} term {term} than another node"
    )]
    LogMismatch {
        /// The node whose log disagrees with an earlier observation.
        node: NodeId,
        /// The index.
        index: LogIndex,
        /// The term.
        term: Term,
    },
    /// State machine safety: a node's committed entry differs from one committed earlier at the
    /// same index (or is missing).
    #[error("state machine safety: {node} has committed index {index} with a different entry")]
    CommittedEntryChanged {
        /// The node.
        node: NodeId,
        /// The index.
        index: LogIndex,
    },
    /// Leader completeness: a leader lacks an entry committed before it.
    #[error("leader completeness: leader {node} of term {term} lacks committed index {index}")]
    LeaderMissesCommitted {
        /// The leader.
        node: NodeId,
        /// Its term.
        term: Term,
        /// The committed index it lacks (or holds differently).
        index: LogIndex,
    },
    /// Two nodes that applied the same prefix hold different states: their digests of
    /// everything applied ([`crate::kv::StateMachine::trail`]) differ at the same index (a
    /// snapshot taken or installed wrongly shows here first).
    #[error(
        "state machine safety: {node} applied up to index {index} into a different state than {first}"
    )]
    StateDiverged {
        /// The node.
        node: NodeId,
        /// Its applied index.
        index: LogIndex,
        /// The node first seen at that index.
        first: NodeId,
    },
    /// A node applied past its commit index.
    #[error("{node} applied index {applied} beyond its commit index {commit}")]
    AppliedUncommitted {
        /// The node.
        node: NodeId,
        /// Its applied index.
        applied: LogIndex,
        /// Its commit index.
        commit: LogIndex,
    },
}

/// Remembers what every node has claimed and reports the first contradiction.
///
/// Call [`SafetyChecker::observe`] after every `Ready` a node produces, passing the entries the
/// `Ready` asked to persist: every change to a node's log passes through there, so log matching
/// is checked on exactly the entries that changed. Each call costs O(entries written + entries
/// newly committed), except the first observation of each leader, which checks leader
/// completeness against every entry committed in an earlier term.
///
/// What is checked: election safety (one leader per term); log matching (an `(index, term)`
/// pair always denotes the same entry with the same predecessor term); state machine safety (a
/// node never holds, at an index it considers committed, an entry other than the one committed
/// there, and nodes that applied up to the same index hold the same state); leader
/// completeness (for entries not compacted into a snapshot); and that no node applies past its
/// commit index. A stale node may
/// hold anything at an index committed elsewhere until it learns the commit index.
#[derive(Clone, Debug, Default)]
pub struct SafetyChecker {
    leaders: BTreeMap<Term, NodeId>,
    /// Every `(index, term)` seen in any log, with the entry and the term before it.
    seen: BTreeMap<(LogIndex, Term), (Entry, Term)>,
    /// Every committed entry, with the term of the first node seen to commit it: an upper
    /// bound on the term in which it was committed.
    committed: BTreeMap<LogIndex, (Entry, Term)>,
    /// Per node, the commit index up to which its log was checked against `committed`.
    checked_commit: BTreeMap<NodeId, LogIndex>,
    completeness_checked: BTreeSet<(Term, NodeId)>,
    /// The digest of the applied state at every applied index seen, and the node first seen
    /// there.
    trails: BTreeMap<LogIndex, (NodeId, u64)>,
}

impl SafetyChecker {
    /// A checker that has seen nothing.
    #[must_use]
    pub fn new() -> SafetyChecker {
        SafetyChecker::default()
    }

    /// Checks `node`'s current state, and the entries it just `written` to its log, against
    /// everything observed before, then remembers them.
    pub fn observe(&mut self, node: &Node, written: &[Entry]) -> Result<(), SafetyViolation> {
        let id = node.id();
        let log = node.log();
        for entry in written {
            let prev_term = log.term_at(entry.index.prev()).unwrap_or_default();
            let mismatch = match self.seen.get(&(entry.index, entry.term)) {
                Some((seen_entry, seen_prev)) => *seen_entry != *entry || *seen_prev != prev_term,
                None => {
                    self.seen
                        .insert((entry.index, entry.term), (entry.clone(), prev_term));
                    false
                }
            };
            if mismatch {
                return Err(SafetyViolation::LogMismatch {
                    node: id,
                    index: entry.index,
                    term: entry.term,
                });
            }
            // A stale node may hold anything at an index committed elsewhere, as long as it
            // does not itself consider that index committed.
            let committed_here = entry.index <= node.commit_index();
            if committed_here
                && self
                    .committed
                    .get(&entry.index)
                    .is_some_and(|(c, _)| c != entry)
            {
                return Err(SafetyViolation::CommittedEntryChanged {
                    node: id,
                    index: entry.index,
                });
            }
        }

        let commit = node.commit_index();
        let checked = self.checked_commit.entry(id).or_default();
        *checked = (*checked).min(commit);
        // Entries compacted into a snapshot are checked through the applied state's digest.
        let compacted = log.prefix().0;
        for index in (checked.0.max(compacted.0) + 1..=commit.0).map(LogIndex) {
            let Some(entry) = log.entry(index) else {
                return Err(SafetyViolation::CommittedEntryChanged { node: id, index });
            };
            match self.committed.get(&index) {
                Some((committed, _)) if committed != entry => {
                    return Err(SafetyViolation::CommittedEntryChanged { node: id, index });
                }
                Some(_) => {}
                None => {
                    self.committed.insert(index, (entry.clone(), node.term()));
                }
            }
        }
        *checked = commit;

        let applied = node.state_machine().applied_index();
        let trail = node.state_machine().trail();
        let (first, expected) = *self.trails.entry(applied).or_insert((id, trail));
        if expected != trail {
            return Err(SafetyViolation::StateDiverged {
                node: id,
                index: applied,
                first,
            });
        }
        if applied > commit {
            return Err(SafetyViolation::AppliedUncommitted {
                node: id,
                applied,
                commit,
            });
        }

        if node.role() == Role::Leader {
            let term = node.term();
            let first = *self.leaders.entry(term).or_insert(id);
            if first != id {
                return Err(SafetyViolation::TwoLeaders {
                    term,
                    first,
                    second: id,
                });
            }
            if self.completeness_checked.insert((term, id)) {
                // Leader completeness: entries committed in earlier terms are in this log.
                let earlier = self
                    .committed
                    .iter()
                    .filter(|&(&index, (_, commit_term))| *commit_term < term && index > compacted);
                for (&index, (committed, _)) in earlier {
                    if log.entry(index) != Some(committed) {
                        return Err(SafetyViolation::LeaderMissesCommitted {
                            node: id,
                            term,
                            index,
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// The highest index any node has been seen to commit.
    #[must_use]
    pub fn max_committed(&self) -> LogIndex {
        self.committed
            .keys()
            .next_back()
            .copied()
            .unwrap_or_default()
    }

    /// The entry committed at `index`, if any node has been seen to commit it.
    #[must_use]
    pub fn committed(&self, index: LogIndex) -> Option<&Entry> {
        self.committed.get(&index).map(|(entry, _)| entry)
    }

    /// The digest trail ([`StateMachine::trail`]) of the replicas' state applied up to
    /// `index`, if a node was seen there.
    #[must_use]
    pub fn applied_trail(&self, index: LogIndex) -> Option<u64> {
        self.trails.get(&index).map(|&(_, trail)| trail)
    }
}

/// An empty state machine as a node with `config` builds one (its catalogued bug armed):
/// applying the committed log to it gives every replica's state.
#[must_use]
pub fn replica_state_machine(config: &Config) -> StateMachine {
    let mut machine = StateMachine::new(config.sessions, config.max_value_bytes);
    crate::raft::arm_state_machine_bugs(config, &mut machine);
    machine
}

/// A cluster of real nodes on an in-memory network whose every delivery the caller chooses.
#[derive(Debug)]
pub struct Cluster {
    configs: BTreeMap<NodeId, Config>,
    /// `None` while a node is crashed.
    nodes: BTreeMap<NodeId, Option<Node>>,
    /// What each node has made durable.
    disks: BTreeMap<NodeId, Recovered>,
    /// Messages in flight, in the order they were sent.
    network: Vec<Message>,
    /// Nodes whose incoming and outgoing messages are dropped at delivery.
    disconnected: BTreeSet<NodeId>,
    replies: Vec<(NodeId, ClientReply)>,
    checker: SafetyChecker,
}

impl Cluster {
    /// A cluster of nodes `1..=size`, each with the default configuration and a seed derived
    /// from `seed` and its id.
    #[must_use]
    pub fn new(size: u64, seed: u64) -> Cluster {
        Cluster::with_config(size, seed, |_| {})
    }

    /// Like [`Cluster::new`], letting `adjust` change each node's configuration.
    #[must_use]
    pub fn with_config(size: u64, seed: u64, adjust: impl Fn(&mut Config)) -> Cluster {
        assert!(size >= 1);
        let voters: Vec<NodeId> = (1..=size).map(NodeId).collect();
        let configs: BTreeMap<NodeId, Config> = voters
            .iter()
            .map(|&id| {
                let node_seed = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15).wrapping_add(id.0);
                let mut config = Config::new(id, voters.iter().copied(), node_seed);
                adjust(&mut config);
                (id, config)
            })
            .collect();
        let nodes = configs
            .iter()
            .map(|(&id, config)| {
                (
                    id,
                    Some(Node::new(config.clone()).expect("valid test config")),
                )
            })
            .collect();
        let disks = voters
            .iter()
            .map(|&id| (id, Recovered::default()))
            .collect();
        Cluster {
            configs,
            nodes,
            disks,
            network: Vec::new(),
            disconnected: BTreeSet::new(),
            replies: Vec::new(),
            checker: SafetyChecker::new(),
        }
    }

    /// Every node id.
    pub fn ids(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.configs.keys().copied()
    }

    /// The node `id`, unless it is crashed.
    #[must_use]
    pub fn node(&self, id: NodeId) -> Option<&Node> {
        self.nodes.get(&id).and_then(Option::as_ref)
    }

    /// The live leader with the highest term, if any.
    #[must_use]
    pub fn leader(&self) -> Option<NodeId> {
        self.nodes
            .values()
            .flatten()
            .filter(|node| node.role() == Role::Leader)
            .max_by_key(|node| node.term())
            .map(Node::id)
    }

    /// Messages in flight, oldest first.
    #[must_use]
    pub fn in_flight(&self) -> &[Message] {
        &self.network
    }

    /// Replies produced so far, with the node that produced each; drains them.
    pub fn take_replies(&mut self) -> Vec<(NodeId, ClientReply)> {
        std::mem::take(&mut self.replies)
    }

    /// The safety checker that has watched every step.
    #[must_use]
    pub fn checker(&self) -> &SafetyChecker {
        &self.checker
    }

    /// Ticks node `id` once (nothing if crashed).
    pub fn tick(&mut self, id: NodeId) -> Result<(), SafetyViolation> {
        let Some(node) = self.node_mut(id) else {
            return Ok(());
        };
        node.tick();
        self.process(id)
    }

    /// Proposes `op` on node `id`.
    pub fn propose(
        &mut self,
        id: NodeId,
        tag: RequestTag,
        op: ClientOp,
    ) -> Result<Result<LogIndex, ProposeError>, SafetyViolation> {
        let Some(node) = self.node_mut(id) else {
            return Ok(Err(ProposeError::NotLeader { leader: None }));
        };
        let result = node.propose(tag, op);
        self.process(id)?;
        Ok(result)
    }

    /// Delivers the in-flight message at `position` (dropped if either end is disconnected or
    /// the receiver is crashed). Returns the message.
    pub fn deliver(&mut self, position: usize) -> Result<Message, SafetyViolation> {
        let message = self.network.remove(position);
        let to = message.to;
        let cut = self.disconnected.contains(&message.from) || self.disconnected.contains(&to);
        if !cut && let Some(node) = self.node_mut(to) {
            node.step(message.clone());
            self.process(to)?;
        }
        Ok(message)
    }

    /// Puts a message into the network as if a peer had sent it (for fuzzing forged input).
    /// It is delivered like any other; its sender need not exist.
    pub fn inject(&mut self, message: Message) {
        self.network.push(message);
    }

    /// Removes the in-flight message at `position` without delivering it.
    pub fn drop_message(&mut self, position: usize) -> Message {
        self.network.remove(position)
    }

    /// Puts a second copy of the in-flight message at `position` at the end of the network.
    pub fn duplicate(&mut self, position: usize) {
        let copy = self.network[position].clone();
        self.network.push(copy);
    }

    /// Cuts node `id` off from every other node (its messages are dropped at delivery).
    pub fn disconnect(&mut self, id: NodeId) {
        self.disconnected.insert(id);
    }

    /// Reconnects node `id`.
    pub fn reconnect(&mut self, id: NodeId) {
        self.disconnected.remove(&id);
    }

    /// Crashes node `id`: its volatile state is lost, its disk kept.
    pub fn crash(&mut self, id: NodeId) {
        if let Some(slot) = self.nodes.get_mut(&id) {
            *slot = None;
        }
    }

    /// Restarts a crashed node `id` from its disk.
    pub fn restart(&mut self, id: NodeId) -> Result<(), SafetyViolation> {
        if self.node(id).is_some() {
            return Ok(());
        }
        let node = Node::restore(self.configs[&id].clone(), self.disks[&id].clone())
            .expect("a disk written by the node itself restores");
        self.nodes.insert(id, Some(node));
        self.process(id)
    }

    /// Delivers messages oldest first until none are in flight or `max_messages` were
    /// delivered.
    pub fn deliver_all(&mut self, max_messages: usize) -> Result<(), SafetyViolation> {
        for _ in 0..max_messages {
            if self.network.is_empty() {
                break;
            }
            self.deliver(0)?;
        }
        Ok(())
    }

    /// Runs `rounds` rounds of: tick every live node once, then deliver everything in flight.
    pub fn run(&mut self, rounds: usize) -> Result<(), SafetyViolation> {
        for _ in 0..rounds {
            let ids: Vec<NodeId> = self.ids().collect();
            for id in ids {
                self.tick(id)?;
            }
            self.deliver_all(100_000)?;
        }
        Ok(())
    }

    /// Runs rounds until `done` holds, at most `max_rounds`; returns whether it held.
    pub fn run_until(
        &mut self,
        max_rounds: usize,
        mut done: impl FnMut(&Cluster) -> bool,
    ) -> Result<bool, SafetyViolation> {
        for _ in 0..max_rounds {
            if done(self) {
                return Ok(true);
            }
            self.run(1)?;
        }
        Ok(done(self))
    }

    /// Lets `drive` act on live node `id` directly (as a driver layer above the core would),
    /// then carries out its `Ready`s as [`Cluster::propose`] does. `None` if it is crashed.
    pub fn with_node<R>(
        &mut self,
        id: NodeId,
        drive: impl FnOnce(&mut Node) -> R,
    ) -> Result<Option<R>, SafetyViolation> {
        let Some(node) = self.node_mut(id) else {
            return Ok(None);
        };
        let result = drive(node);
        self.process(id)?;
        Ok(Some(result))
    }

    fn node_mut(&mut self, id: NodeId) -> Option<&mut Node> {
        self.nodes.get_mut(&id).and_then(Option::as_mut)
    }

    /// Carries out every `Ready` of node `id` as the contract says: persist, acknowledge,
    /// send, answer. Then lets the checker look.
    fn process(&mut self, id: NodeId) -> Result<(), SafetyViolation> {
        let node = self
            .nodes
            .get_mut(&id)
            .and_then(Option::as_mut)
            .expect("processing a live node");
        let disk = self.disks.get_mut(&id).expect("every node has a disk");
        while let Some(ready) = node.ready() {
            self.checker.observe(node, &ready.entries)?;
            if let Some(snapshot) = ready.snapshot {
                disk.log_start = snapshot.meta;
                disk.snapshot = Some(snapshot);
                disk.entries.clear();
            }
            if let Some(hard_state) = ready.hard_state {
                disk.hard_state = hard_state;
            }
            if let Some(first) = ready.entries.first() {
                disk.entries.retain(|entry| entry.index < first.index);
                disk.entries.extend(ready.entries.iter().cloned());
            }
            if let Some(ack) = ready.ack {
                node.on_persisted(ack);
            }
            self.network.extend(ready.early_messages);
            self.network.extend(ready.messages);
            self.replies
                .extend(ready.replies.into_iter().map(|reply| (id, reply)));
        }
        self.checker.observe(node, &[])
    }
}
