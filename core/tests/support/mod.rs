//! Helpers shared by the core's integration tests.
#![allow(dead_code)]

use verity_core::*;

/// A fresh node `id` of a cluster `1..=size`, with short timeouts for tests.
pub fn node(id: u64, size: u64) -> Node {
    Node::new(config(id, size)).unwrap()
}

/// The test configuration of node `id` of `1..=size`.
pub fn config(id: u64, size: u64) -> Config {
    let mut config = Config::new(NodeId(id), (1..=size).map(NodeId), 42 + id);
    config.election_timeout_ticks = 10;
    config.heartbeat_interval_ticks = 2;
    config
}

/// Drains every Ready, persisting instantly, and returns everything it held.
pub fn drain(node: &mut Node) -> Ready {
    let mut all = Ready::default();
    while let Some(ready) = node.ready() {
        if let Some(ack) = ready.ack {
            node.on_persisted(ack);
        }
        all.snapshot = ready.snapshot.or(all.snapshot);
        all.hard_state = ready.hard_state.or(all.hard_state);
        all.entries.extend(ready.entries);
        all.messages.extend(ready.early_messages);
        all.messages.extend(ready.messages);
        all.replies.extend(ready.replies);
    }
    all
}

/// Ticks `node` until it campaigns (at most `limit` ticks) and, if it asks for a pre-vote
/// first, grants it from every peer, so that it is a candidate of the next term; returns the
/// ticks taken.
pub fn ticks_until_candidate(node: &mut Node, limit: u64) -> Option<u64> {
    for tick in 1..=limit {
        node.tick();
        match node.role() {
            Role::Candidate => return Some(tick),
            Role::PreCandidate => {
                let _ = drain(node);
                let asked = node.term().next();
                for peer in node.config().voters.clone() {
                    if peer != node.id() && node.role() == Role::PreCandidate {
                        node.step(msg(
                            peer,
                            node.id(),
                            asked,
                            MessageBody::PreVoteResponse { granted: true },
                        ));
                    }
                }
                assert_eq!(node.role(), Role::Candidate, "a granted pre-vote campaigns");
                return Some(tick);
            }
            Role::Follower | Role::Leader => {}
        }
    }
    None
}

/// Makes `node` (of a 3-node cluster) leader of its next term with the votes of all peers.
pub fn elect(node: &mut Node) {
    ticks_until_candidate(node, 100).expect("campaigns");
    settle(node);
    let term = node.term();
    for peer in node.config().voters.clone() {
        if peer != node.id() {
            node.step(msg(
                peer,
                node.id(),
                term,
                MessageBody::RequestVoteResponse { granted: true },
            ));
        }
    }
    assert_eq!(node.role(), Role::Leader);
}

/// `from`'s acknowledgement, in `term`, that its log matches up to `match_index`.
pub fn accepted(from: NodeId, term: Term, match_index: LogIndex) -> Message {
    msg(
        from,
        NodeId(1),
        term,
        MessageBody::AppendEntriesResponse(AppendOutcome::Accepted { match_index }),
    )
}

/// A message.
pub fn msg(from: NodeId, to: NodeId, term: Term, body: MessageBody) -> Message {
    Message {
        from,
        to,
        term,
        body,
    }
}

/// An entry at `index` of `term` carrying a put of `key`.
pub fn put_entry(index: u64, term: u64, key: &str) -> Entry {
    Entry {
        index: LogIndex(index),
        term: Term(term),
        payload: EntryPayload::Client {
            op: request(ClientId(0), index, put(key, key)),
            time_ms: 0,
        },
    }
}

/// A put of `key` := `value` outside any session (refused by the session layer, but a fine
/// log payload for Raft-level tests). Each call has its own sequence number, so that no two
/// are retries of one request.
pub fn put_op(key: &str, value: &str) -> ClientOp {
    static SEQUENCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    ClientOp::Request(ClientRequest {
        client: ClientId(0),
        token: SessionToken::default(),
        may_skip_earlier: true,
        sequence: Sequence(SEQUENCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed)),
        command: Command::set(key, value),
    })
}

/// A request within session `client`, whose token is the default one (what [`open_op`]
/// opens sessions with).
pub fn request(client: ClientId, sequence: u64, command: Command) -> ClientOp {
    ClientOp::Request(ClientRequest {
        client,
        token: SessionToken::default(),
        may_skip_earlier: true,
        sequence: Sequence(sequence),
        command,
    })
}

/// Opening a session with the default token.
pub fn open_op() -> ClientOp {
    ClientOp::OpenSession {
        token: SessionToken::default(),
    }
}

/// A put command.
pub fn put(key: &str, value: &str) -> Command {
    Command::set(key, value)
}

/// A get command.
pub fn get(key: &str) -> Command {
    Command::get(key)
}

/// An append command.
pub fn append(key: &str, value: &str) -> Command {
    Command::append(key, value)
}

/// The AppendEntries bodies `ready` sends to `to`.
pub fn appends_to(messages: &[Message], to: u64) -> Vec<&MessageBody> {
    messages
        .iter()
        .filter(|m| m.to == NodeId(to) && matches!(m.body, MessageBody::AppendEntries { .. }))
        .map(|m| &m.body)
        .collect()
}

/// Drains every Ready like [`drain`] and discards it.
pub fn settle(node: &mut Node) {
    let _ = drain(node);
}
