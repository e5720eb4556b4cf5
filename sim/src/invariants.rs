//! Raft's protocol invariants, checked where they can be seen rather than through their
//! consequences.
//!
//! The core's [`verity_core::testing::SafetyChecker`] and the client history catch a bug once it
//! has done damage: two leaders, a lost write. Most protocol bugs need a rare schedule to do
//! damage (a vote sent before its fsync needs a crash in the window between the two), but they
//! break a promise on every run that reaches the code. The simulator knows every node's synced
//! disk state and sees every message, so it checks the promises themselves, TigerBeetle style:
//!
//! - **Durable promises** (`check_promises`): a message leaves only once everything it
//!   promises is on the sender's disk: its term; the sender's vote (a vote request or a grant);
//!   the entries an acknowledgement covers.
//! - **Terms** (`Watch::after_step`): a node never holds a lower term than a message it has
//!   processed.
//! - **Commitment** (`Watch::after_step`): a follower's commit index never passes the last
//!   index it has matched with the leader of its current term (or the commit it entered the term
//!   with): entries beyond it may differ from the leader's.
//! - **Leader commitment** (`Watch::after_ready`): a leader's commit index only ever advances
//!   onto an entry of its own term (Raft §5.4.2; counting replicas of an older term's entry is
//!   Figure 8's lost commit, which needs a rare schedule to show as a lost write).
//! - **One vote per term** (`Watch::after_ready`): once a node has voted in a term, its vote
//!   in that term never changes (nor is it cleared).
//! - **Check-quorum** (`Watch::after_tick`): a leader that has not heard from a majority
//!   (itself included) within one election timeout of its own ticks has stepped down, so it
//!   never believes it leads for longer than a follower waits before campaigning (and pre-vote
//!   with leader stickiness cannot hold the cluster leaderless). Conversely, a leader steps
//!   down in a tick only if fewer than a majority were heard within that timeout: a leader that
//!   gives up a working quorum leaves the cluster leaderless for an election, while a minority
//!   is down or forever.
//! - **Reads** (checked by the simulation where a read's answer comes back): a linearizable or
//!   lease read is served on a state applied at least to the highest index any node had
//!   committed when it was asked. A leader's commit index covers every index committed before
//!   it confirms the read (once an entry of its own term committed); a follower's read waits
//!   for its leader's index. A read below it may miss an acknowledged write, whether or not a
//!   client happened to write that key.

use std::collections::BTreeMap;
use std::fmt;
use verity_core::{
    AppendOutcome, HardState, LogIndex, Message, MessageBody, Node, NodeId, Role, SnapshotMeta,
    Term, quorum,
};

/// What a node has made durable: its synced hard state, its snapshot file, and the terms of
/// its synced log after the log's start (the WAL's last snapshot marker).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Durable {
    pub(crate) hard_state: HardState,
    pub(crate) snapshot: Option<SnapshotMeta>,
    pub(crate) log_start: SnapshotMeta,
    pub(crate) terms: Vec<Term>,
}

impl Durable {
    /// Whether a restart finds the entry `(index, term)`, as [`Node::restore`] reads the
    /// disk: the snapshot stands for every entry up to its own (the committed ones below it,
    /// whatever their terms); the log after it counts only if it agrees with its last entry.
    pub(crate) fn holds(&self, index: LogIndex, term: Term) -> bool {
        if let Some(snapshot) = self.snapshot {
            if index < snapshot.index {
                return true;
            }
            if index == snapshot.index {
                return term == snapshot.term;
            }
            if snapshot.index > self.log_start.index
                && self.log_term(snapshot.index) != Some(snapshot.term)
            {
                return false;
            }
        }
        self.log_term(index) == Some(term)
    }

    /// The term of the log entry at `index` in the WAL, if it holds one there.
    fn log_term(&self, index: LogIndex) -> Option<Term> {
        let offset = index.0.checked_sub(self.log_start.index.0 + 1)?;
        self.terms.get(usize::try_from(offset).ok()?).copied()
    }

    /// The last index the WAL's log holds.
    pub(crate) fn last_index(&self) -> LogIndex {
        LogIndex(self.log_start.index.0 + self.terms.len() as u64)
    }
}

/// A broken protocol invariant, with the evidence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Broken {
    /// A message left before something it promises was durable.
    UndurablePromise {
        /// The message, as sent.
        message: String,
        /// What was not durable.
        missing: String,
    },
    /// A node holds a lower term than a message it processed.
    TermBehindMessage {
        /// The node.
        node: NodeId,
        /// Its term after the step.
        term: Term,
        /// The message's term.
        message_term: Term,
    },
    /// A follower committed past what it matched with its leader.
    CommitPastMatch {
        /// The node.
        node: NodeId,
        /// Its term.
        term: Term,
        /// Its commit index.
        commit: LogIndex,
        /// The commit index it entered the term with.
        floor: LogIndex,
        /// The last index it matched with the term's leader.
        matched: LogIndex,
    },
    /// A leader advanced its commit index onto an entry of an older term.
    CommitOlderTerm {
        /// The leader.
        node: NodeId,
        /// Its term.
        term: Term,
        /// The new commit index.
        commit: LogIndex,
        /// The term of the entry there.
        entry_term: Term,
    },
    /// A node changed or cleared its vote in a term it had voted in.
    VoteChanged {
        /// The node.
        node: NodeId,
        /// The term.
        term: Term,
        /// The vote it had cast.
        was: NodeId,
        /// Its vote now.
        now: Option<NodeId>,
    },
    /// A leader stepped down at a quorum check although a majority had answered.
    SpuriousStepDown {
        /// The node.
        node: NodeId,
        /// Its term.
        term: Term,
        /// Voters (itself included) heard since the previous check.
        heard: usize,
    },
    /// A leader kept leading without hearing from a majority.
    LeaderWithoutQuorum {
        /// The leader.
        node: NodeId,
        /// Its term.
        term: Term,
        /// Ticks since a majority (itself included) was last heard from.
        ticks: u64,
        /// Ticks within which it must step down.
        bound: u64,
    },
    /// A linearizable or lease read was served on a state older than an index committed
    /// when it was asked.
    ReadBelowCommit {
        /// The node that served it.
        node: NodeId,
        /// The applied index of the state it read.
        index: LogIndex,
        /// The highest index some node had committed when the read was asked.
        committed: LogIndex,
    },
}

impl Broken {
    /// The invariant's short name.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Broken::UndurablePromise { .. } => "durable-promise",
            Broken::TermBehindMessage { .. } => "term-behind-message",
            Broken::CommitPastMatch { .. } => "commit-past-match",
            Broken::CommitOlderTerm { .. } => "commit-older-term",
            Broken::VoteChanged { .. } => "one-vote-per-term",
            Broken::SpuriousStepDown { .. } => "spurious-step-down",
            Broken::LeaderWithoutQuorum { .. } => "leader-without-quorum",
            Broken::ReadBelowCommit { .. } => "read-sees-committed",
        }
    }
}

impl fmt::Display for Broken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Broken::UndurablePromise { message, missing } => {
                write!(f, "{message} left before {missing} was durable")
            }
            Broken::TermBehindMessage {
                node,
                term,
                message_term,
            } => write!(
                f,
                "{node} stayed in term {term} after processing a message of term {message_term}"
            ),
            Broken::CommitPastMatch {
                node,
                term,
                commit,
                floor,
                matched,
            } => write!(
                f,
                "{node} committed up to {commit} in term {term}, past the index {matched} it \
                 matched with the leader (it entered the term with commit {floor})"
            ),
            Broken::CommitOlderTerm {
                node,
                term,
                commit,
                entry_term,
            } => write!(
                f,
                "{node}, leader of term {term}, advanced its commit index to {commit}, an entry \
                 of the older term {entry_term}"
            ),
            Broken::VoteChanged {
                node,
                term,
                was,
                now,
            } => write!(
                f,
                "{node} voted for {was} in term {term}, then its vote became {now:?}"
            ),
            Broken::SpuriousStepDown { node, term, heard } => write!(
                f,
                "{node} stepped down as leader of term {term} at a quorum check, though {heard} \
                 voters (itself included, a majority) answered since the previous check"
            ),
            Broken::LeaderWithoutQuorum {
                node,
                term,
                ticks,
                bound,
            } => write!(
                f,
                "{node} still leads term {term} {ticks} ticks after it last heard from a \
                 majority (it must step down within {bound})"
            ),
            Broken::ReadBelowCommit {
                node,
                index,
                committed,
            } => write!(
                f,
                "{node} served a linearizable read on its state at index {index}, but index \
                 {committed} was committed when the read was asked"
            ),
        }
    }
}

/// Checks that everything `message` promises is already in its sender's `durable` state.
/// `node` is the sender as it is now, at the moment the message leaves.
pub(crate) fn check_promises(
    message: &Message,
    durable: &Durable,
    node: &Node,
) -> Result<(), Broken> {
    let broken = |missing: String| Broken::UndurablePromise {
        message: describe(message),
        missing,
    };
    let stored = durable.hard_state;
    // A pre-vote, and a yes to one, name the term the asker would campaign in: they promise
    // nothing, and nobody has entered that term.
    let promises_term = !matches!(
        message.body,
        MessageBody::PreVote { .. } | MessageBody::PreVoteResponse { granted: true }
    );
    if promises_term && message.term > stored.term {
        return Err(broken(format!(
            "its term (the disk holds term {})",
            stored.term
        )));
    }
    let vote_for = match message.body {
        MessageBody::RequestVote { .. } | MessageBody::TransferVote { .. } => Some(message.from),
        MessageBody::RequestVoteResponse { granted: true } => Some(message.to),
        _ => None,
    };
    // A later durable term also keeps the promise: the sender can never vote in the
    // message's term again.
    if let Some(candidate) = vote_for
        && stored.term == message.term
        && stored.vote != Some(candidate)
    {
        return Err(broken(format!(
            "the vote for {candidate} (the disk holds term {}, vote {:?})",
            stored.term, stored.vote
        )));
    }
    if let MessageBody::AppendEntriesResponse(AppendOutcome::Accepted { match_index }) =
        message.body
        && node.term() == message.term
        && match_index > LogIndex(0)
    {
        // In the message's term the sender's log up to `match_index` has not changed since it
        // answered, so the disk must hold exactly that prefix's last entry (or a snapshot past
        // it, if the sender compacted it away).
        let held = match node.log().term_at(match_index) {
            Some(term) => durable.holds(match_index, term),
            None => durable.snapshot.is_some_and(|s| match_index <= s.index),
        };
        if !held {
            return Err(broken(format!(
                "the entries up to index {match_index} (the disk holds a snapshot at {:?} and \
                 entries up to {})",
                durable.snapshot.map(|s| s.index),
                durable.last_index()
            )));
        }
    }
    Ok(())
}

fn describe(message: &Message) -> String {
    let kind = match &message.body {
        MessageBody::RequestVote { .. } => "RequestVote".to_string(),
        MessageBody::RequestVoteResponse { granted } => {
            format!("vote response (granted {granted})")
        }
        MessageBody::AppendEntries { entries, .. } => {
            format!("AppendEntries ({} entries)", entries.len())
        }
        MessageBody::AppendEntriesResponse(outcome) => format!("append response {outcome:?}"),
        MessageBody::PreVote { .. } => "PreVote".to_string(),
        MessageBody::PreVoteResponse { granted } => {
            format!("pre-vote response (granted {granted})")
        }
        MessageBody::TimeoutNow => "TimeoutNow".to_string(),
        MessageBody::TransferVote { .. } => "TransferVote".to_string(),
        MessageBody::ReadRound { round } => format!("ReadRound {round}"),
        MessageBody::ReadRoundAck { round } => format!("ReadRoundAck {round}"),
        MessageBody::ReadIndexRequest { id, .. } => format!("ReadIndexRequest {id}"),
        MessageBody::ReadIndexResponse { id, index, .. } => {
            format!("ReadIndexResponse {id} (index {index})")
        }
        MessageBody::InstallSnapshot { meta, offset, .. } => {
            format!("InstallSnapshot (index {}, offset {offset})", meta.index)
        }
        MessageBody::SnapshotChunkAck { index, received } => {
            format!("SnapshotChunkAck (index {index}, received {received})")
        }
    };
    format!(
        "{kind} of term {} from {} to {}",
        message.term, message.from, message.to
    )
}

/// A leader's term as the invariants follow it.
#[derive(Clone, Debug)]
struct Leading {
    term: Term,
    since_tick: u64,
    /// The tick at which each peer last answered, for those that have.
    heard_at: BTreeMap<NodeId, u64>,
}

impl Leading {
    /// The tick each peer of `node` was last heard at; a peer not heard from yet counts as
    /// heard when the term's leadership began.
    fn last_heard<'a>(&'a self, node: &'a Node) -> impl Iterator<Item = u64> + 'a {
        node.config()
            .voters
            .iter()
            .filter(move |&&v| v != node.id())
            .map(|peer| self.heard_at.get(peer).copied().unwrap_or(self.since_tick))
    }
}

/// What the invariants need of a peer message, taken before the node's step consumes it:
/// positions and terms only, never the entries' payloads.
#[derive(Clone, Debug)]
pub(crate) struct Stepped {
    from: NodeId,
    to: NodeId,
    term: Term,
    kind: SteppedKind,
    /// The receiver's commit index before the step.
    commit_before: LogIndex,
    /// Whether the receiver may stay in its term after the step: the message is a pre-vote
    /// or a yes to one (they name a term nobody entered), or a vote request the receiver
    /// ignores because it hears from a live leader (leader stickiness).
    may_stay_behind: bool,
}

#[derive(Clone, Debug)]
enum SteppedKind {
    /// AppendEntries: the previous entry's index and term, and each entry's.
    Append {
        prev: (LogIndex, Term),
        entries: Vec<(LogIndex, Term)>,
    },
    /// InstallSnapshot: the snapshot's position.
    Install {
        meta: SnapshotMeta,
    },
    /// An answer a leader counts as hearing from the peer (check-quorum).
    PeerAnswer,
    Other,
}

impl Stepped {
    /// Describes `message` as `receiver` is about to step it.
    pub(crate) fn of(message: &Message, receiver: &Node) -> Stepped {
        let kind = match &message.body {
            MessageBody::AppendEntries {
                prev_log_index,
                prev_log_term,
                entries,
                ..
            } => SteppedKind::Append {
                prev: (*prev_log_index, *prev_log_term),
                entries: entries.iter().map(|e| (e.index, e.term)).collect(),
            },
            MessageBody::AppendEntriesResponse(_)
            | MessageBody::ReadRoundAck { .. }
            | MessageBody::SnapshotChunkAck { .. } => SteppedKind::PeerAnswer,
            MessageBody::InstallSnapshot { meta, .. } => SteppedKind::Install { meta: *meta },
            MessageBody::RequestVote { .. }
            | MessageBody::RequestVoteResponse { .. }
            | MessageBody::PreVote { .. }
            | MessageBody::PreVoteResponse { .. }
            | MessageBody::TimeoutNow
            | MessageBody::TransferVote { .. }
            | MessageBody::ReadRound { .. }
            | MessageBody::ReadIndexRequest { .. }
            | MessageBody::ReadIndexResponse { .. } => SteppedKind::Other,
        };
        let may_stay_behind = match message.body {
            MessageBody::PreVote { .. } | MessageBody::PreVoteResponse { granted: true } => true,
            MessageBody::RequestVote { .. } => receiver.in_lease(),
            _ => false,
        };
        Stepped {
            from: message.from,
            to: message.to,
            term: message.term,
            kind,
            commit_before: receiver.commit_index(),
            may_stay_behind,
        }
    }
}

/// What the invariants remember of one live node. Rebuilt at every restart.
#[derive(Clone, Debug)]
pub(crate) struct Watch {
    /// Ticks the node has taken in this incarnation.
    ticks: u64,
    /// The term the fields below belong to.
    term: Term,
    /// The commit index the node entered `term` with (or held as leader).
    commit_floor: LogIndex,
    /// The last index the node matched with the leader of `term`.
    matched: LogIndex,
    /// While the node leads: its term, the tick it became leader at, and the tick at which
    /// each peer last answered in that term.
    leading: Option<Leading>,
    /// The vote the node cast in a term, once it has.
    voted: Option<(Term, NodeId)>,
    /// The commit index at the last [`Watch::after_ready`].
    commit_seen: LogIndex,
}

impl Watch {
    /// Starts watching `node`, freshly started or restarted.
    pub(crate) fn new(node: &Node) -> Watch {
        Watch {
            ticks: 0,
            term: node.term(),
            commit_floor: node.commit_index(),
            matched: LogIndex(0),
            leading: None,
            voted: None,
            commit_seen: node.commit_index(),
        }
    }

    /// Checks `node` after it processed the message `stepped` describes.
    pub(crate) fn after_step(&mut self, stepped: &Stepped, node: &Node) -> Result<(), Broken> {
        let for_this_node = stepped.to == node.id() && node.config().voters.contains(&stepped.from);
        if for_this_node && node.term() < stepped.term && !stepped.may_stay_behind {
            return Err(Broken::TermBehindMessage {
                node: node.id(),
                term: node.term(),
                message_term: stepped.term,
            });
        }
        if node.term() != self.term {
            self.enter_term(node.term(), stepped.commit_before);
        }
        self.follow_role(node);
        match &stepped.kind {
            SteppedKind::Append { prev, entries }
                if stepped.term == node.term()
                    && node.log().matches(prev.0, prev.1)
                    && entries
                        .iter()
                        .all(|&(index, term)| node.log().matches(index, term)) =>
            {
                let matched = LogIndex(prev.0.0 + entries.len() as u64);
                self.matched = self.matched.max(matched);
            }
            // An installed snapshot matches the leader's log up to its index.
            SteppedKind::Install { meta }
                if stepped.term == node.term() && node.log().matches(meta.index, meta.term) =>
            {
                self.matched = self.matched.max(meta.index);
            }
            SteppedKind::PeerAnswer if stepped.term == node.term() => {
                if let Some(leading) = &mut self.leading {
                    leading.heard_at.insert(stepped.from, self.ticks);
                }
            }
            _ => {}
        }
        let bound = self.commit_floor.max(self.matched);
        if node.role() != Role::Leader && node.commit_index() > bound {
            return Err(Broken::CommitPastMatch {
                node: node.id(),
                term: node.term(),
                commit: node.commit_index(),
                floor: self.commit_floor,
                matched: self.matched,
            });
        }
        Ok(())
    }

    /// Checks `node` after it took a tick.
    pub(crate) fn after_tick(&mut self, node: &Node) -> Result<(), Broken> {
        self.ticks += 1;
        if node.term() != self.term {
            self.enter_term(node.term(), node.commit_index());
        }
        let timeout = node.config().election_timeout_ticks;
        let majority = quorum::majority(node.config().voters.len());
        if let Some(leading) = &self.leading
            && node.role() != Role::Leader
        {
            // In a tick, a leader steps down only for want of a quorum heard within the
            // election timeout.
            let heard = 1 + leading
                .last_heard(node)
                .filter(|&at| self.ticks - at < timeout)
                .count();
            if heard >= majority {
                return Err(Broken::SpuriousStepDown {
                    node: node.id(),
                    term: leading.term,
                    heard,
                });
            }
        }
        self.follow_role(node);
        let Some(leading) = &self.leading else {
            return Ok(());
        };
        let mut last_heard: Vec<u64> = leading.last_heard(node).collect();
        last_heard.push(self.ticks);
        last_heard.sort_unstable_by(|a, b| b.cmp(a));
        let majority_heard = last_heard[majority - 1];
        let silent = self.ticks - majority_heard;
        if silent >= timeout {
            return Err(Broken::LeaderWithoutQuorum {
                node: node.id(),
                term: leading.term,
                ticks: silent,
                bound: timeout,
            });
        }
        Ok(())
    }

    /// Checks `node` after it drained its `Ready`s (whatever the input was).
    pub(crate) fn after_ready(&mut self, node: &Node) -> Result<(), Broken> {
        let vote = node.hard_state().vote;
        match self.voted {
            Some((term, was)) if term == node.term() && vote != Some(was) => {
                return Err(Broken::VoteChanged {
                    node: node.id(),
                    term,
                    was,
                    now: vote,
                });
            }
            _ => self.voted = vote.map(|v| (node.term(), v)),
        }
        let commit = node.commit_index();
        if node.role() == Role::Leader && commit > self.commit_seen {
            let entry_term = node
                .log()
                .term_at(commit)
                .expect("commit is within the log");
            if entry_term != node.term() {
                return Err(Broken::CommitOlderTerm {
                    node: node.id(),
                    term: node.term(),
                    commit,
                    entry_term,
                });
            }
        }
        self.commit_seen = commit;
        Ok(())
    }

    fn enter_term(&mut self, term: Term, commit: LogIndex) {
        self.term = term;
        self.commit_floor = commit;
        self.matched = LogIndex(0);
        self.leading = None;
    }

    /// Starts or ends the leader's bookkeeping as the node's role changes. A leader's commit
    /// index is its own to decide, so it is the floor the node steps down with.
    fn follow_role(&mut self, node: &Node) {
        if node.role() == Role::Leader || self.leading.is_some() {
            self.commit_floor = self.commit_floor.max(node.commit_index());
        }
        if node.role() != Role::Leader {
            self.leading = None;
            return;
        }
        if self.leading.as_ref().is_none_or(|l| l.term != node.term()) {
            self.leading = Some(Leading {
                term: node.term(),
                since_tick: self.ticks,
                heard_at: BTreeMap::new(),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use verity_core::Config;

    fn node(id: u64) -> Node {
        Node::new(Config::new(
            NodeId(id),
            [NodeId(1), NodeId(2), NodeId(3)],
            7,
        ))
        .expect("valid")
    }

    fn message(from: u64, to: u64, term: u64, body: MessageBody) -> Message {
        Message {
            from: NodeId(from),
            to: NodeId(to),
            term: Term(term),
            body,
        }
    }

    fn durable(term: u64, vote: Option<u64>, terms: &[u64]) -> Durable {
        Durable {
            hard_state: HardState {
                term: Term(term),
                vote: vote.map(NodeId),
                commit: LogIndex(0),
            },
            terms: terms.iter().copied().map(Term).collect(),
            ..Durable::default()
        }
    }

    #[test]
    fn a_vote_grant_needs_the_vote_on_disk_or_a_later_term() {
        let grant = message(2, 1, 3, MessageBody::RequestVoteResponse { granted: true });
        let sender = node(2);
        let missing = check_promises(&grant, &durable(3, None, &[]), &sender);
        assert!(
            matches!(missing, Err(Broken::UndurablePromise { .. })),
            "{missing:?}"
        );
        let other = check_promises(&grant, &durable(3, Some(3), &[]), &sender);
        assert!(other.is_err(), "a vote for another candidate on disk");
        assert!(check_promises(&grant, &durable(2, None, &[]), &sender).is_err());
        assert_eq!(
            check_promises(&grant, &durable(3, Some(1), &[]), &sender),
            Ok(())
        );
        assert_eq!(
            check_promises(&grant, &durable(4, None, &[]), &sender),
            Ok(())
        );
        let refusal = message(2, 1, 3, MessageBody::RequestVoteResponse { granted: false });
        assert_eq!(
            check_promises(&refusal, &durable(3, None, &[]), &sender),
            Ok(())
        );
    }

    #[test]
    fn an_acknowledgement_needs_its_entries_on_disk() {
        let sender = node(2);
        let ack = |index| {
            message(
                2,
                1,
                0,
                MessageBody::AppendEntriesResponse(AppendOutcome::Accepted {
                    match_index: LogIndex(index),
                }),
            )
        };
        assert_eq!(
            check_promises(&ack(0), &durable(0, None, &[]), &sender),
            Ok(())
        );
        let missing = check_promises(&ack(1), &durable(0, None, &[]), &sender);
        assert!(
            matches!(missing, Err(Broken::UndurablePromise { .. })),
            "{missing:?}"
        );
    }

    fn append(prev: u64, entries: u64, commit: u64) -> Message {
        let entries = (prev + 1..=prev + entries)
            .map(|index| verity_core::Entry {
                index: LogIndex(index),
                term: Term(1),
                payload: verity_core::EntryPayload::Noop,
            })
            .collect();
        message(
            1,
            2,
            1,
            MessageBody::AppendEntries {
                prev_log_index: LogIndex(prev),
                prev_log_term: Term(u64::from(prev > 0)),
                entries,
                leader_commit: LogIndex(commit),
            },
        )
    }

    #[test]
    fn a_follower_may_commit_only_what_it_matched() {
        let mut follower = node(2);
        let mut watch = Watch::new(&follower);
        let two = append(0, 2, 2);
        let stepped = Stepped::of(&two, &follower);
        follower.step(two);
        assert_eq!(watch.after_step(&stepped, &follower), Ok(()));
        assert_eq!(
            (watch.matched, follower.commit_index()),
            (LogIndex(2), LogIndex(2))
        );

        // Told only of a heartbeat that matched index 1, the watch sees commit 2 as unearned.
        let mut fresh = Watch::new(&node(2));
        let heartbeat = Stepped::of(&append(1, 0, 2), &node(2));
        let broken = fresh.after_step(&heartbeat, &follower);
        assert!(
            matches!(broken, Err(Broken::CommitPastMatch { .. })),
            "{broken:?}"
        );
    }

    #[test]
    fn a_cut_off_leader_steps_down_within_one_election_timeout() {
        let mut leader = node(1);
        let mut watch = Watch::new(&leader);
        while leader.role() != Role::PreCandidate {
            leader.tick();
            assert_eq!(watch.after_tick(&leader), Ok(()));
        }
        let pre_vote = message(
            2,
            1,
            leader.term().next().0,
            MessageBody::PreVoteResponse { granted: true },
        );
        let stepped = Stepped::of(&pre_vote, &leader);
        leader.step(pre_vote);
        assert_eq!(watch.after_step(&stepped, &leader), Ok(()));
        assert_eq!(leader.role(), Role::Candidate);
        let vote = message(
            2,
            1,
            leader.term().0,
            MessageBody::RequestVoteResponse { granted: true },
        );
        let stepped = Stepped::of(&vote, &leader);
        leader.step(vote);
        assert_eq!(watch.after_step(&stepped, &leader), Ok(()));
        assert_eq!(leader.role(), Role::Leader);
        let timeout = leader.config().election_timeout_ticks;
        let mut ticks = 0;
        while leader.role() == Role::Leader {
            leader.tick();
            ticks += 1;
            assert_eq!(watch.after_tick(&leader), Ok(()));
        }
        assert!(ticks <= timeout, "stepped down after {ticks} ticks");
    }

    #[test]
    fn a_single_node_leader_is_its_own_majority() {
        let mut single = Node::new(Config::new(NodeId(1), [NodeId(1)], 7)).expect("valid");
        let mut watch = Watch::new(&single);
        for _ in 0..1_000 {
            single.tick();
            assert_eq!(watch.after_tick(&single), Ok(()));
        }
        assert_eq!(single.role(), Role::Leader);
    }
}
