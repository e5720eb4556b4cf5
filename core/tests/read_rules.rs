//! One test per rule of reads served without a log entry (dissertation §6.4): ReadIndex,
//! leases, a follower's reads through its leader's index, stale reads, and their order.

mod support;

use support::*;
use verity_core::*;

const N1: NodeId = NodeId(1);
const N2: NodeId = NodeId(2);
const N3: NodeId = NodeId(3);

/// A 3-node leader (node 1) whose no-op of its term is committed, with leases of `lease_ms`.
fn leader_with_lease(lease_ms: u64) -> Node {
    let mut config = config(1, 3);
    config.lease_read_ms = lease_ms;
    let mut n = Node::new(config).unwrap();
    elect(&mut n);
    settle(&mut n);
    let (term, last) = (n.term(), n.log().last_index());
    n.step(accepted(N2, term, last));
    settle(&mut n);
    assert_eq!(n.commit_index(), last);
    n
}

fn read(n: &mut Node, tag: u64, key: &str, consistency: ReadConsistency) {
    n.read(RequestTag(tag), get(key), consistency, LogIndex(0))
        .unwrap();
}

/// The rounds `ready` starts (their ids), to anyone.
fn rounds(ready: &Ready) -> Vec<u64> {
    let mut ids: Vec<u64> = ready
        .messages
        .iter()
        .filter_map(|m| match m.body {
            MessageBody::ReadRound { round } => Some(round),
            _ => None,
        })
        .collect();
    ids.dedup();
    ids
}

/// Leader 2's AppendEntries of term 1 to node 1.
fn append(prev: (u64, u64), entries: Vec<Entry>, commit: u64) -> Message {
    msg(
        N2,
        N1,
        Term(1),
        MessageBody::AppendEntries {
            prev_log_index: LogIndex(prev.0),
            prev_log_term: Term(prev.1),
            entries,
            leader_commit: LogIndex(commit),
        },
    )
}

fn ack(from: NodeId, term: Term, round: u64) -> Message {
    msg(from, N1, term, MessageBody::ReadRoundAck { round })
}

/// The tags `ready` answers with a value (in order) and those it answers not served.
fn answered(ready: &Ready) -> (Vec<u64>, Vec<u64>) {
    let mut served = Vec::new();
    let mut not_served = Vec::new();
    for reply in &ready.replies {
        match reply.outcome {
            Outcome::Applied(Reply::Executed(_)) => served.push(reply.tag.0),
            Outcome::NotServed => not_served.push(reply.tag.0),
            ref other => panic!("a read answered {other:?}"),
        }
    }
    (served, not_served)
}

#[test]
fn a_new_leader_confirms_no_read_before_an_entry_of_its_term_commits() {
    let mut n = node(1, 3);
    elect(&mut n);
    settle(&mut n);
    read(&mut n, 7, "k", ReadConsistency::Linearizable);
    let ready = drain(&mut n);
    assert!(
        rounds(&ready).is_empty(),
        "its commit index may lag: no round yet"
    );
    assert!(ready.replies.is_empty());
    let (term, last) = (n.term(), n.log().last_index());
    n.step(accepted(N2, term, last));
    let ready = drain(&mut n);
    let [round] = rounds(&ready)[..] else {
        panic!("one round once the no-op commits: {ready:?}")
    };
    assert!(ready.replies.is_empty(), "the round is not confirmed yet");
    n.step(ack(N2, term, round));
    assert_eq!(answered(&drain(&mut n)), (vec![7], vec![]));
}

#[test]
fn a_new_leader_serves_no_stale_read_before_an_entry_of_its_term_commits() {
    let mut n = node(1, 3);
    elect(&mut n);
    settle(&mut n);
    assert_eq!(
        n.read(RequestTag(1), get("k"), ReadConsistency::Stale, LogIndex(0)),
        Err(ReadError::NoLeader),
        "its state may be as old as the election: retry once its no-op commits"
    );
    let (term, last) = (n.term(), n.log().last_index());
    n.step(accepted(N2, term, last));
    settle(&mut n);
    read(&mut n, 2, "k", ReadConsistency::Stale);
    assert_eq!(answered(&drain(&mut n)), (vec![2], vec![]));
}

#[test]
fn reads_that_arrive_during_a_round_wait_for_the_next_one_and_share_it() {
    let mut n = leader_with_lease(0);
    let term = n.term();
    read(&mut n, 1, "a", ReadConsistency::Linearizable);
    let [first] = rounds(&drain(&mut n))[..] else {
        panic!("a round")
    };
    read(&mut n, 2, "b", ReadConsistency::Linearizable);
    read(&mut n, 3, "c", ReadConsistency::Lease);
    assert!(rounds(&drain(&mut n)).is_empty(), "one round at a time");
    n.step(ack(N3, term, first));
    n.step(ack(N3, term, first));
    let ready = drain(&mut n);
    assert_eq!(answered(&ready), (vec![1], vec![]));
    let [second] = rounds(&ready)[..] else {
        panic!("the waiting reads start the next round: {ready:?}")
    };
    n.step(ack(N2, term, second));
    assert_eq!(
        answered(&drain(&mut n)),
        (vec![2, 3], vec![]),
        "without a lease, a lease read is a linearizable read"
    );
}

#[test]
fn a_leader_that_learns_of_a_newer_term_serves_no_read_it_had_not_confirmed() {
    let mut n = leader_with_lease(0);
    read(&mut n, 1, "a", ReadConsistency::Linearizable);
    let [round] = rounds(&drain(&mut n))[..] else {
        panic!("a round")
    };
    n.step(ack(N2, n.term().next(), round));
    assert_eq!(n.role(), Role::Follower);
    assert_eq!(answered(&drain(&mut n)), (vec![], vec![1]));
}

#[test]
fn an_unanswered_round_is_sent_again_at_the_next_heartbeat() {
    let mut n = leader_with_lease(0);
    read(&mut n, 1, "a", ReadConsistency::Linearizable);
    let [round] = rounds(&drain(&mut n))[..] else {
        panic!("a round")
    };
    let mut resent = Vec::new();
    for _ in 0..n.config().heartbeat_interval_ticks {
        n.tick();
        resent.extend(drain(&mut n).messages);
    }
    let again: Vec<&Message> = resent
        .iter()
        .filter(|m| m.body == MessageBody::ReadRound { round })
        .collect();
    let to: Vec<NodeId> = again.iter().map(|m| m.to).collect();
    assert_eq!(to, [N2, N3]);
}

#[test]
fn a_lease_serves_at_once_until_it_runs_out_and_a_handover_forfeits_it() {
    let mut n = leader_with_lease(100);
    let term = n.term();
    n.set_monotonic_ms(1_000);
    read(&mut n, 1, "a", ReadConsistency::Linearizable);
    let [round] = rounds(&drain(&mut n))[..] else {
        panic!("a round")
    };
    n.set_monotonic_ms(1_050);
    n.step(ack(N2, term, round));
    assert_eq!(answered(&drain(&mut n)), (vec![1], vec![]));

    n.set_monotonic_ms(1_099);
    read(&mut n, 2, "a", ReadConsistency::Lease);
    let ready = drain(&mut n);
    assert_eq!(
        answered(&ready),
        (vec![2], vec![]),
        "within 100 ms of the round's start"
    );
    assert!(rounds(&ready).is_empty());

    n.set_monotonic_ms(1_100);
    read(&mut n, 3, "a", ReadConsistency::Lease);
    let ready = drain(&mut n);
    assert!(
        ready.replies.is_empty(),
        "the lease ran out with the round's start + 100 ms"
    );
    let [renewal] = rounds(&ready)[..] else {
        panic!("a round renews it")
    };
    n.step(ack(N3, term, renewal));
    assert_eq!(answered(&drain(&mut n)), (vec![3], vec![]));

    n.transfer_leadership(N2).unwrap();
    settle(&mut n);
    read(&mut n, 4, "a", ReadConsistency::Lease);
    let ready = drain(&mut n);
    assert!(
        ready.replies.is_empty() && rounds(&ready).len() == 1,
        "a leader handing over holds no lease: its successor's votes ignore stickiness"
    );
}

#[test]
fn a_follower_serves_a_read_at_its_leaders_index_in_the_order_reads_were_asked() {
    let mut n = node(1, 3);
    n.step(append((0, 0), vec![put_entry(1, 1, "a")], 0));
    settle(&mut n);
    read(&mut n, 1, "a", ReadConsistency::Linearizable);
    read(&mut n, 2, "a", ReadConsistency::Lease);
    let asked: Vec<(u64, bool)> = drain(&mut n)
        .messages
        .iter()
        .filter_map(|m| match m.body {
            MessageBody::ReadIndexRequest { id, lease } if m.to == N2 => Some((id, lease)),
            _ => None,
        })
        .collect();
    let [(first, false), (second, true)] = asked[..] else {
        panic!("both asked of the leader: {asked:?}")
    };
    let answer = |id| {
        msg(
            N2,
            N1,
            Term(1),
            MessageBody::ReadIndexResponse {
                id,
                index: LogIndex(1),
                time_ms: 0,
            },
        )
    };
    n.step(answer(second));
    n.step(answer(first));
    assert!(
        drain(&mut n).replies.is_empty(),
        "index 1 is not applied here yet"
    );
    n.step(append((1, 1), vec![], 1));
    let ready = drain(&mut n);
    assert_eq!(answered(&ready), (vec![1, 2], vec![]), "in the order asked");
    assert_eq!(
        ready.replies[0].outcome,
        Outcome::Applied(Reply::Executed(Frame::Null)),
        "the entry (of an unknown session) wrote nothing"
    );
}

#[test]
fn a_follower_gives_up_on_a_read_its_leader_does_not_answer_within_an_election_timeout() {
    let mut n = node(1, 3);
    n.step(append((0, 0), vec![], 0));
    settle(&mut n);
    read(&mut n, 1, "a", ReadConsistency::Linearizable);
    settle(&mut n);
    let mut answers = Vec::new();
    for _ in 0..n.config().election_timeout_ticks {
        n.tick();
        answers.extend(drain(&mut n).replies);
    }
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].outcome, Outcome::NotServed);
}

#[test]
fn a_stale_read_needs_a_live_leader_whose_term_committed_and_reads_the_applied_state_at_once() {
    let mut n = node(1, 3);
    assert_eq!(
        n.read(RequestTag(1), get("a"), ReadConsistency::Stale, LogIndex(0)),
        Err(ReadError::NoLeader)
    );
    assert_eq!(
        n.read(
            RequestTag(2),
            get("a"),
            ReadConsistency::Linearizable,
            LogIndex(0)
        ),
        Err(ReadError::NoLeader)
    );
    n.step(append((0, 0), vec![], 0));
    settle(&mut n);
    assert_eq!(
        n.read(RequestTag(3), get("a"), ReadConsistency::Stale, LogIndex(0)),
        Err(ReadError::NoLeader),
        "no entry of the leader's term committed yet: its commit index may lag"
    );
    n.step(append((0, 0), vec![put_entry(1, 1, "a")], 1));
    settle(&mut n);
    read(&mut n, 4, "a", ReadConsistency::Stale);
    let ready = drain(&mut n);
    assert!(ready.messages.is_empty(), "asks no one");
    assert_eq!(answered(&ready), (vec![4], vec![]));
}

#[test]
fn a_stale_read_waits_for_its_floor_and_answers_the_index_it_read() {
    let mut n = node(1, 3);
    n.step(append((0, 0), vec![put_entry(1, 1, "a")], 1));
    settle(&mut n);
    assert_eq!(n.state_machine().applied_index(), LogIndex(1));
    n.read(RequestTag(1), get("a"), ReadConsistency::Stale, LogIndex(2))
        .unwrap();
    read(&mut n, 2, "a", ReadConsistency::Stale);
    let ready = drain(&mut n);
    assert_eq!(
        answered(&ready),
        (vec![], vec![]),
        "the client saw index 2, which is not applied here; the read after it waits too"
    );
    n.step(append((1, 1), vec![put_entry(2, 1, "b")], 2));
    let ready = drain(&mut n);
    assert_eq!(answered(&ready), (vec![1, 2], vec![]));
    assert!(
        ready.replies.iter().all(|r| r.index == LogIndex(2)),
        "each reply names the applied index it read: {:?}",
        ready.replies
    );
}

#[test]
fn a_follower_behind_what_its_leader_committed_serves_stale_reads_once_caught_up() {
    let mut n = node(1, 3);
    n.step(append((0, 0), vec![put_entry(1, 1, "a")], 2));
    settle(&mut n);
    assert_eq!(n.state_machine().applied_index(), LogIndex(1));
    read(&mut n, 1, "a", ReadConsistency::Stale);
    assert_eq!(
        answered(&drain(&mut n)),
        (vec![], vec![]),
        "the leader said 2 is committed: a read of state 1 would be staler than promised"
    );
    n.step(append((1, 1), vec![put_entry(2, 1, "b")], 2));
    let ready = drain(&mut n);
    assert_eq!(answered(&ready), (vec![1], vec![]));
    assert_eq!(ready.replies[0].index, LogIndex(2));
}
