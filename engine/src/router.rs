//! Where each client operation goes, and how its answer finds the way back.
//!
//! A [`Router`] sits beside a node's [`Node`]: an operation submitted on this node is
//! proposed here when the node leads, forwarded to the leader it follows otherwise, and
//! refused ([`AttemptResult::NotProposed`]) when it knows no leader. A leader proposes the
//! operations forwarded to it and sends each fate back. Every answer is an
//! [`AttemptResult`] for the submitter's origin `O` (the host's handle: a results channel in
//! production, a client and attempt in the simulator).
//!
//! No submission waits forever, and none is answered with a guess:
//!
//! - a proposal made here is answered when its entry applies; when this node stops leading
//!   ([`AttemptResult::Unknown`]: another leader may still commit the entry); at shutdown
//!   ([`AttemptResult::Stopped`]);
//! - a forward is answered by the leader's reply; [`AttemptResult::Unknown`] when the leader
//!   this node follows changes, the leader becomes unreachable, or `forward_timeout_ms` passes
//!   (the operation may have been proposed); [`AttemptResult::NotProposed`] when the leader
//!   says it proposed nothing, marked `copies_may_run`: the leader refused the copy it got,
//!   but a network that duplicates frames may deliver another copy that it proposes.
//!
//! The host calls [`Router::after_step`] after every input it gives the node, so a change of
//! leadership is seen at once.

use crate::connection::{AttemptResult, Operation, Refusal};
use crate::envelope::{ForwardResult, PeerFrame};
use std::collections::BTreeMap;
use verity_core::raft::{ClientReply, Outcome};
use verity_core::{ClientOp, LogIndex, Node, NodeId, ProposeError, ReadError, RequestTag, Role};

/// Something the host must do for the router.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Routed<O> {
    /// Give `result` to the submitter `origin`.
    Answer(O, AttemptResult),
    /// Send a frame to a peer.
    Send(NodeId, PeerFrame),
}

/// Who waits for a proposal made on this node.
#[derive(Clone, Debug)]
enum Waiter<O> {
    /// A submitter on this node.
    Local(O),
    /// A peer that forwarded it, under its id.
    Remote { from: NodeId, id: u64 },
}

/// An operation forwarded to a leader.
#[derive(Clone, Debug)]
struct Forwarded<O> {
    origin: O,
    leader: NodeId,
    deadline_ms: u64,
}

/// See the module documentation.
#[derive(Clone, Debug)]
pub struct Router<O> {
    forward_timeout_ms: u64,
    next_tag: u64,
    next_forward: u64,
    proposals: BTreeMap<RequestTag, Waiter<O>>,
    forwards: BTreeMap<u64, Forwarded<O>>,
    /// Reads served here without the log, by tag.
    reads: BTreeMap<RequestTag, O>,
    /// The role and leader seen at the last [`Router::after_step`].
    leadership: (Role, Option<NodeId>),
}

impl<O> Router<O> {
    /// A router for `node`; forwards give up after `forward_timeout_ms`. Forward ids start
    /// at `first_forward_id`, which must be random: a restarted node's router must not reuse
    /// the ids of its previous incarnation, whose late replies may still arrive (a reply is
    /// matched to its forward by id alone).
    #[must_use]
    pub fn new(node: &Node, forward_timeout_ms: u64, first_forward_id: u64) -> Router<O> {
        Router {
            forward_timeout_ms,
            next_tag: 0,
            next_forward: first_forward_id,
            proposals: BTreeMap::new(),
            forwards: BTreeMap::new(),
            reads: BTreeMap::new(),
            leadership: (node.role(), node.leader()),
        }
    }

    /// Submissions waiting for an answer here (proposals, forwards and reads).
    #[must_use]
    pub fn waiting(&self) -> usize {
        self.proposals.len() + self.forwards.len() + self.reads.len()
    }

    /// Routes `op` from `origin`. A proposal is proposed when `node` leads (stamping entries
    /// with `clock_ms`, the node's wall clock) and forwarded to the leader otherwise; a read
    /// is handed to `node` (which asks its leader for an index if it must), and answered from
    /// its replies. Set the node's monotonic clock before (leases are measured on it).
    pub fn submit(
        &mut self,
        node: &mut Node,
        op: Operation,
        origin: O,
        clock_ms: u64,
        out: &mut Vec<Routed<O>>,
    ) {
        let op = match op {
            Operation::Propose(op) => op,
            Operation::Read {
                command,
                consistency,
                floor,
            } => {
                let tag = self.new_tag();
                node.set_clock_ms(clock_ms);
                match node.read(tag, command, consistency, floor) {
                    Ok(()) => {
                        self.reads.insert(tag, origin);
                    }
                    Err(ReadError::NoLeader) => {
                        out.push(Routed::Answer(origin, refused(Refusal::NoLeader, false)));
                    }
                }
                return;
            }
        };
        match node.leader() {
            Some(leader) if leader == node.id() => {
                if let Err(error) = self.propose(node, op, Waiter::Local(origin), clock_ms, out) {
                    tracing::debug!(%error, "proposal refused");
                }
            }
            Some(leader) => {
                let id = self.next_forward;
                self.next_forward = self.next_forward.wrapping_add(1);
                let deadline_ms = clock_ms.saturating_add(self.forward_timeout_ms);
                self.forwards.insert(
                    id,
                    Forwarded {
                        origin,
                        leader,
                        deadline_ms,
                    },
                );
                out.push(Routed::Send(leader, PeerFrame::Forward { id, op }));
            }
            None => out.push(Routed::Answer(origin, refused(Refusal::NoLeader, false))),
        }
    }

    /// Handles a forwarding frame from peer `from` (a Raft message is the host's to step).
    pub fn on_frame(
        &mut self,
        node: &mut Node,
        from: NodeId,
        frame: PeerFrame,
        clock_ms: u64,
        out: &mut Vec<Routed<O>>,
    ) {
        match frame {
            PeerFrame::Raft(message) => {
                debug_assert!(false, "the host steps Raft messages itself: {message:?}");
            }
            PeerFrame::Forward { id, op } => {
                let waiter = Waiter::Remote { from, id };
                #[cfg(feature = "bug-catalogue")]
                if crate::injected!(node.config().bug, ForwardBeforeCommit) && answers_ok(&op) {
                    // The bug: a plain `SET` always answers OK, so answer as soon as it is
                    // proposed (and forget the proposal, the newest one) instead of when it
                    // commits.
                    if let Ok(index) = self.propose(node, op, waiter, clock_ms, out) {
                        let result = ForwardResult::Outcome {
                            index,
                            outcome: Outcome::Applied(verity_core::Reply::Executed(
                                verity_core::Frame::ok(),
                            )),
                        };
                        self.proposals.pop_last();
                        out.push(Routed::Send(from, PeerFrame::ForwardReply { id, result }));
                    }
                    return;
                }
                if let Err(error) = self.propose(node, op, waiter, clock_ms, out) {
                    let result = match error {
                        ProposeError::NotLeader { leader } => ForwardResult::NotLeader { leader },
                        // Handing over: the next leader is not known yet.
                        ProposeError::Transferring { .. } => {
                            ForwardResult::NotLeader { leader: None }
                        }
                        ProposeError::Overloaded { .. } => ForwardResult::Overloaded,
                    };
                    out.push(Routed::Send(from, PeerFrame::ForwardReply { id, result }));
                }
            }
            PeerFrame::ForwardReply { id, result } => {
                let Some(forwarded) = self.forwards.remove(&id) else {
                    return;
                };
                if forwarded.leader != from {
                    tracing::warn!(
                        from = from.0,
                        id,
                        "forward reply from a node it was not sent to; ignored"
                    );
                    self.forwards.insert(id, forwarded);
                    return;
                }
                let result = match result {
                    ForwardResult::Outcome { index, outcome } => of_outcome(outcome, index),
                    // The leader refused this copy; the network may have duplicated the
                    // forward, and another copy may be proposed.
                    ForwardResult::NotLeader { .. } => refused(Refusal::NoLeader, true),
                    ForwardResult::Overloaded => refused(Refusal::Overloaded, true),
                };
                out.push(Routed::Answer(forwarded.origin, result));
            }
        }
    }

    /// Answers the proposals a `Ready`'s `replies` settle.
    pub fn on_replies(&mut self, replies: Vec<ClientReply>, out: &mut Vec<Routed<O>>) {
        for reply in replies {
            let Some(waiter) = self.proposals.remove(&reply.tag) else {
                if let Some(origin) = self.reads.remove(&reply.tag) {
                    out.push(Routed::Answer(
                        origin,
                        of_outcome(reply.outcome, reply.index),
                    ));
                }
                continue;
            };
            match waiter {
                Waiter::Local(origin) => out.push(Routed::Answer(
                    origin,
                    of_outcome(reply.outcome, reply.index),
                )),
                Waiter::Remote { from, id } => {
                    let result = ForwardResult::Outcome {
                        index: reply.index,
                        outcome: reply.outcome,
                    };
                    out.push(Routed::Send(from, PeerFrame::ForwardReply { id, result }));
                }
            }
        }
    }

    /// Reacts to a change of role or leader since the last call: proposals this node can no
    /// longer see through, and forwards to a leader it no longer follows, are answered
    /// unknown (their entries may still commit elsewhere).
    pub fn after_step(&mut self, node: &Node, out: &mut Vec<Routed<O>>) {
        let now = (node.role(), node.leader());
        if now == self.leadership {
            return;
        }
        if self.leadership.0 == Role::Leader && now.0 != Role::Leader {
            for (_, waiter) in std::mem::take(&mut self.proposals) {
                match waiter {
                    Waiter::Local(origin) => {
                        out.push(Routed::Answer(origin, AttemptResult::Unknown))
                    }
                    Waiter::Remote { from, id } => {
                        let result = ForwardResult::Outcome {
                            index: LogIndex(0),
                            outcome: Outcome::Superseded,
                        };
                        out.push(Routed::Send(from, PeerFrame::ForwardReply { id, result }));
                    }
                }
            }
        }
        self.fail_forwards(|forwarded| Some(forwarded.leader) != now.1, out);
        self.leadership = now;
    }

    /// Gives up, as unknown, on forwards past their deadline or whose leader `reachable`
    /// says is cut off (their answers may never come).
    pub fn expire(
        &mut self,
        clock_ms: u64,
        reachable: impl Fn(NodeId) -> bool,
        out: &mut Vec<Routed<O>>,
    ) {
        self.fail_forwards(
            |forwarded| forwarded.deadline_ms <= clock_ms || !reachable(forwarded.leader),
            out,
        );
    }

    /// The node stops: every local submitter is told so.
    pub fn shut_down(&mut self, out: &mut Vec<Routed<O>>) {
        for (_, waiter) in std::mem::take(&mut self.proposals) {
            if let Waiter::Local(origin) = waiter {
                out.push(Routed::Answer(origin, AttemptResult::Stopped));
            }
        }
        for (_, forwarded) in std::mem::take(&mut self.forwards) {
            out.push(Routed::Answer(forwarded.origin, AttemptResult::Stopped));
        }
        for (_, origin) in std::mem::take(&mut self.reads) {
            out.push(Routed::Answer(origin, AttemptResult::Stopped));
        }
    }

    /// Proposes `op` for `waiter`, returning its entry's index; a refusal is answered to a local
    /// waiter here.
    fn propose(
        &mut self,
        node: &mut Node,
        op: ClientOp,
        waiter: Waiter<O>,
        clock_ms: u64,
        out: &mut Vec<Routed<O>>,
    ) -> Result<LogIndex, ProposeError> {
        let tag = self.new_tag();
        node.set_clock_ms(clock_ms);
        match node.propose(tag, op) {
            Ok(index) => {
                self.proposals.insert(tag, waiter);
                Ok(index)
            }
            Err(error) => {
                if let Waiter::Local(origin) = waiter {
                    let result = match error {
                        ProposeError::NotLeader { .. } | ProposeError::Transferring { .. } => {
                            refused(Refusal::NoLeader, false)
                        }
                        ProposeError::Overloaded { .. } => refused(Refusal::Overloaded, false),
                    };
                    out.push(Routed::Answer(origin, result));
                }
                Err(error)
            }
        }
    }

    fn new_tag(&mut self) -> RequestTag {
        self.next_tag += 1;
        RequestTag(self.next_tag - 1)
    }

    fn fail_forwards(&mut self, doomed: impl Fn(&Forwarded<O>) -> bool, out: &mut Vec<Routed<O>>) {
        let ids: Vec<u64> = self
            .forwards
            .iter()
            .filter(|(_, f)| doomed(f))
            .map(|(&id, _)| id)
            .collect();
        for id in ids {
            let forwarded = self.forwards.remove(&id).expect("listed above");
            out.push(Routed::Answer(forwarded.origin, AttemptResult::Unknown));
        }
    }
}

/// Whether `op` is a plain `SET`, whose reply is `OK` whatever the state (the
/// `ForwardBeforeCommit` bug answers those early).
#[cfg(feature = "bug-catalogue")]
fn answers_ok(op: &ClientOp) -> bool {
    use verity_core::kv::cmd::{SetCondition, SetExpiry, SetReply, StringCommand};
    matches!(
        op,
        ClientOp::Request(verity_core::ClientRequest {
            command: verity_core::Command::Strings(StringCommand::Set {
                condition: SetCondition::Always,
                reply: SetReply::Status,
                expiry: SetExpiry::Persist,
                ..
            }),
            ..
        })
    )
}

/// What a proposal's fate means to its submitter.
fn refused(reason: Refusal, copies_may_run: bool) -> AttemptResult {
    AttemptResult::NotProposed {
        reason,
        copies_may_run,
    }
}

/// What `outcome`, reached at log `index`, means to the submitter.
fn of_outcome(outcome: Outcome, index: LogIndex) -> AttemptResult {
    match outcome {
        Outcome::Applied(reply) => AttemptResult::Applied { reply, index },
        Outcome::Superseded => AttemptResult::Unknown,
        Outcome::NotServed => refused(Refusal::NoLeader, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use verity_core::testing::Cluster;
    use verity_core::{ClientOp, SessionToken};

    fn open() -> Operation {
        Operation::Propose(ClientOp::OpenSession {
            token: SessionToken([1; 16]),
        })
    }

    fn led_cluster() -> (Cluster, NodeId, NodeId) {
        let mut cluster = Cluster::new(3, 7);
        assert!(cluster.run_until(10_000, |c| c.leader().is_some()).unwrap());
        let leader = cluster.leader().unwrap();
        let follower = cluster.ids().find(|&id| id != leader).unwrap();
        assert!(
            cluster
                .run_until(10_000, |c| c.node(follower).unwrap().leader()
                    == Some(leader))
                .unwrap()
        );
        (cluster, leader, follower)
    }

    /// Runs `drive` on node `id` of the cluster and returns what it routed.
    fn on<O>(
        cluster: &mut Cluster,
        id: NodeId,
        drive: impl FnOnce(&mut Node, &mut Vec<Routed<O>>),
    ) -> Vec<Routed<O>> {
        let mut out = Vec::new();
        cluster
            .with_node(id, |node| drive(node, &mut out))
            .unwrap()
            .expect("a live node");
        out
    }

    #[test]
    fn a_follower_forwards_and_the_leader_answers_the_forward() {
        let (mut cluster, leader, follower) = led_cluster();
        let mut at_follower: Router<&str> = Router::new(cluster.node(follower).unwrap(), 1_000, 0);
        let mut at_leader: Router<&str> = Router::new(cluster.node(leader).unwrap(), 1_000, 0);
        let out = on(&mut cluster, follower, |node, out| {
            at_follower.submit(node, open(), "client", 0, out)
        });
        let [Routed::Send(to, frame)] = &out[..] else {
            panic!("{out:?}")
        };
        assert_eq!(*to, leader);
        let back = on(&mut cluster, leader, |node, out| {
            at_leader.on_frame(node, follower, frame.clone(), 0, out)
        });
        assert!(back.is_empty(), "proposed; answered when applied");
        cluster.run(20).unwrap();
        let replies = cluster
            .take_replies()
            .into_iter()
            .filter(|(id, _)| *id == leader)
            .map(|(_, r)| r)
            .collect();
        let mut back = Vec::new();
        at_leader.on_replies(replies, &mut back);
        let [Routed::Send(to, reply)] = &back[..] else {
            panic!("{back:?}")
        };
        assert_eq!(*to, follower);
        let answered = on(&mut cluster, follower, |node, out| {
            at_follower.on_frame(node, leader, reply.clone(), 0, out)
        });
        assert!(
            matches!(
                &answered[..],
                [Routed::Answer("client", AttemptResult::Applied { .. })]
            ),
            "{answered:?}"
        );
        assert_eq!(at_follower.waiting() + at_leader.waiting(), 0);
    }

    #[test]
    fn a_forward_is_unknown_when_its_leader_is_cut_off_or_slow_and_refused_when_it_says_so() {
        let (mut cluster, leader, follower) = led_cluster();
        let mut router: Router<u32> = Router::new(cluster.node(follower).unwrap(), 1_000, 0);
        for origin in 0..3 {
            on(&mut cluster, follower, |node, out| {
                router.submit(node, open(), origin, 0, out)
            });
        }
        let refusal = PeerFrame::ForwardReply {
            id: 0,
            result: ForwardResult::NotLeader { leader: None },
        };
        let out = on(&mut cluster, follower, |node, out| {
            router.on_frame(node, leader, refusal, 0, out)
        });
        assert_eq!(
            out,
            vec![Routed::Answer(0, refused(Refusal::NoLeader, true))],
            "the leader proposed nothing, but a duplicated copy of the forward may reach it"
        );
        let mut out = Vec::new();
        router.expire(500, |_| false, &mut out);
        assert_eq!(
            out,
            vec![
                Routed::Answer(1, AttemptResult::Unknown),
                Routed::Answer(2, AttemptResult::Unknown)
            ]
        );
        on(&mut cluster, follower, |node, out| {
            router.submit(node, open(), 9, 600, out)
        });
        let mut out = Vec::new();
        router.expire(1_599, |_| true, &mut out);
        assert!(out.is_empty());
        router.expire(1_600, |_| true, &mut out);
        assert_eq!(out, vec![Routed::Answer(9, AttemptResult::Unknown)]);
    }

    #[test]
    fn a_leader_that_steps_down_answers_its_proposals_unknown() {
        let (mut cluster, leader, _) = led_cluster();
        let mut router: Router<u32> = Router::new(cluster.node(leader).unwrap(), 1_000, 0);
        let out = on(&mut cluster, leader, |node, out| {
            router.submit(node, open(), 1, 0, out)
        });
        assert!(out.is_empty());
        cluster.disconnect(leader);
        assert!(
            cluster
                .run_until(100_000, |c| c.node(leader).unwrap().role() != Role::Leader)
                .unwrap()
        );
        let mut out = Vec::new();
        router.after_step(cluster.node(leader).unwrap(), &mut out);
        assert_eq!(out, vec![Routed::Answer(1, AttemptResult::Unknown)]);
        out.clear();
        router.shut_down(&mut out);
        assert!(out.is_empty());
    }
}
