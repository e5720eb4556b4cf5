//! Whole clusters of real nodes on the in-memory harness: lossless and ordered unless a test
//! cuts a node off or crashes it.

mod support;

use support::{append, get, open_op, put, request};
use verity_core::testing::Cluster;
use verity_core::*;

const ROUNDS: usize = 500;

fn cluster(size: u64, seed: u64) -> Cluster {
    Cluster::with_config(size, seed, |c| {
        c.election_timeout_ticks = 10;
        c.heartbeat_interval_ticks = 2;
    })
}

fn elect(cluster: &mut Cluster) -> NodeId {
    assert!(
        cluster.run_until(ROUNDS, |c| c.leader().is_some()).unwrap(),
        "no leader elected"
    );
    cluster.leader().unwrap()
}

/// Proposes `op` on the leader and runs until it is answered; returns the reply.
fn execute(cluster: &mut Cluster, tag: u64, op: ClientOp) -> Reply {
    let leader = elect(cluster);
    cluster
        .propose(leader, RequestTag(tag), op)
        .unwrap()
        .unwrap();
    for _ in 0..ROUNDS {
        let replies = cluster.take_replies();
        if let Some((_, reply)) = replies.into_iter().find(|(_, r)| r.tag == RequestTag(tag)) {
            match reply.outcome {
                Outcome::Applied(reply) => return reply,
                other => panic!("proposal {tag}: {other:?}"),
            }
        }
        cluster.run(1).unwrap();
    }
    panic!("proposal {tag} never answered");
}

fn open_session(cluster: &mut Cluster) -> ClientId {
    match execute(cluster, 0, open_op()) {
        Reply::SessionOpened { client } => client,
        other => panic!("{other:?}"),
    }
}

fn all_applied_equal(cluster: &Cluster) -> bool {
    let nodes: Vec<&Node> = cluster.ids().filter_map(|id| cluster.node(id)).collect();
    nodes.windows(2).all(|pair| {
        pair[0].state_machine().applied_index() == pair[1].state_machine().applied_index()
            && pair[0].state_machine().store() == pair[1].state_machine().store()
    })
}

#[test]
fn three_and_five_node_clusters_elect_one_leader_and_apply_writes_on_every_node() {
    for size in [3, 5] {
        for seed in 0..5 {
            let mut c = cluster(size, seed);
            let client = open_session(&mut c);
            for seq in 1..=20 {
                let reply = execute(
                    &mut c,
                    seq,
                    request(client, seq, put(&format!("k{seq}"), "v")),
                );
                assert_eq!(reply, Reply::Executed(Frame::ok()));
            }
            assert!(
                c.run_until(ROUNDS, all_applied_equal).unwrap(),
                "size {size} seed {seed}"
            );
            let leader = c.node(c.leader().unwrap()).unwrap();
            assert_eq!(leader.state_machine().store().len(), 20);
            assert!(
                leader.state_machine().applied_index() >= LogIndex(22),
                "no-op, session, 20 puts"
            );
        }
    }
}

#[test]
fn a_follower_that_was_away_catches_up() {
    let mut c = cluster(3, 1);
    let client = open_session(&mut c);
    let leader = c.leader().unwrap();
    let away = c.ids().find(|&id| id != leader).unwrap();
    c.disconnect(away);
    for seq in 1..=50 {
        execute(&mut c, seq, request(client, seq, append("k", "x")));
    }
    assert!(c.node(away).unwrap().log().last_index() < LogIndex(10));
    c.reconnect(away);
    assert!(c.run_until(ROUNDS, all_applied_equal).unwrap());
    assert_eq!(
        c.node(away)
            .unwrap()
            .state_machine()
            .store()
            .get(b"k")
            .unwrap()
            .value
            .len(),
        50
    );
}

#[test]
fn a_deposed_leaders_uncommitted_entries_are_replaced_through_backtracking() {
    let mut c = cluster(3, 2);
    let client = open_session(&mut c);
    let old = c.leader().unwrap();
    c.disconnect(old);
    // Proposals the isolated leader can never commit.
    for seq in 1..=30 {
        c.propose(
            old,
            RequestTag(100 + seq),
            request(client, seq, append("lost", "x")),
        )
        .unwrap()
        .unwrap();
    }
    let new = {
        let found = c
            .run_until(ROUNDS, |c| c.leader().is_some_and(|l| l != old))
            .unwrap();
        assert!(found, "the majority elects a new leader");
        c.leader().unwrap()
    };
    for seq in 31..=40 {
        execute(&mut c, seq, request(client, seq, append("kept", "y")));
    }
    c.reconnect(old);
    assert!(c.run_until(ROUNDS, all_applied_equal).unwrap());
    let old_node = c.node(old).unwrap();
    assert_eq!(
        old_node.log().entries(),
        c.node(new).unwrap().log().entries()
    );
    assert!(old_node.state_machine().store().get(b"lost").is_none());
    let superseded = c
        .take_replies()
        .into_iter()
        .filter(|(node, r)| *node == old && r.outcome == Outcome::Superseded)
        .count();
    assert_eq!(superseded, 30, "every overwritten proposal is answered");
}

#[test]
fn a_node_with_a_stale_log_cannot_win_an_election() {
    let mut c = cluster(3, 3);
    let client = open_session(&mut c);
    let leader = c.leader().unwrap();
    let stale = c.ids().find(|&id| id != leader).unwrap();
    let current = c.ids().find(|&id| id != leader && id != stale).unwrap();
    c.disconnect(stale);
    for seq in 1..=10 {
        execute(
            &mut c,
            seq,
            request(client, seq, put("k", &seq.to_string())),
        );
    }
    c.crash(leader);
    c.reconnect(stale);
    assert!(c.run_until(ROUNDS, |c| c.leader().is_some()).unwrap());
    assert_eq!(
        c.leader(),
        Some(current),
        "only the up-to-date node can be elected"
    );
    assert_eq!(
        execute(&mut c, 99, request(client, 11, get("k"))),
        Reply::Executed(Frame::text("10")),
        "no committed write was lost"
    );
}

#[test]
fn a_retry_after_the_leader_crashes_is_applied_exactly_once() {
    let mut c = cluster(3, 4);
    let client = open_session(&mut c);
    let leader = c.leader().unwrap();
    c.propose(leader, RequestTag(1), request(client, 1, append("k", "x")))
        .unwrap()
        .unwrap();
    // The followers store the entry; the leader crashes before it hears back.
    while c.in_flight().iter().any(|m| m.from == leader) {
        let position = c.in_flight().iter().position(|m| m.from == leader).unwrap();
        c.deliver(position).unwrap();
    }
    c.crash(leader);
    c.take_replies();
    // The client times out and retries the same request at the new leader.
    let reply = execute(&mut c, 2, request(client, 1, append("k", "x")));
    assert_eq!(
        reply,
        Reply::Executed(Frame::Integer(1)),
        "APPEND answers the new length"
    );
    c.restart(leader).unwrap();
    assert!(c.run_until(ROUNDS, all_applied_equal).unwrap());
    let node = c.node(leader).unwrap();
    assert_eq!(
        node.state_machine().store().get(b"k").unwrap().value,
        b"x",
        "applied once"
    );
}
