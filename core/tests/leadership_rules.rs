//! One test per rule that keeps a healthy leader in office and hands office over on purpose,
//! from Ongaro's dissertation: pre-vote (§9.6), leader stickiness (§4.2.3), check-quorum
//! (§6.2) and leadership transfer (§3.10).

mod support;

use support::*;
use verity_core::testing::Cluster;
use verity_core::*;

const N1: NodeId = NodeId(1);
const N2: NodeId = NodeId(2);
const N3: NodeId = NodeId(3);

/// A heartbeat from leader `from` of `term` to node 1, with an empty log.
fn heartbeat(from: NodeId, term: u64) -> Message {
    msg(
        from,
        N1,
        Term(term),
        MessageBody::AppendEntries {
            prev_log_index: LogIndex(0),
            prev_log_term: Term(0),
            entries: vec![],
            leader_commit: LogIndex(0),
        },
    )
}

/// A (pre-)vote request to node 1 from `from` for `term`, with an empty log.
fn asks(from: NodeId, term: u64, body: fn(LogIndex, Term) -> MessageBody) -> Message {
    msg(from, N1, Term(term), body(LogIndex(0), Term(0)))
}

fn pre_vote(last_log_index: LogIndex, last_log_term: Term) -> MessageBody {
    MessageBody::PreVote {
        last_log_index,
        last_log_term,
    }
}

fn vote(last_log_index: LogIndex, last_log_term: Term) -> MessageBody {
    MessageBody::RequestVote {
        last_log_index,
        last_log_term,
    }
}

fn transfer_vote(last_log_index: LogIndex, last_log_term: Term) -> MessageBody {
    MessageBody::TransferVote {
        last_log_index,
        last_log_term,
    }
}

/// The answers in `ready` to node `to`, as `(term, body)`.
fn answers(ready: &Ready, to: NodeId) -> Vec<(Term, MessageBody)> {
    ready
        .messages
        .iter()
        .filter(|m| m.to == to)
        .map(|m| (m.term, m.body.clone()))
        .collect()
}

#[test]
fn a_node_whose_timer_fires_asks_for_a_pre_vote_without_raising_its_term_or_voting() {
    let mut n = node(1, 3);
    while n.role() != Role::PreCandidate {
        n.tick();
    }
    assert_eq!(
        n.term(),
        Term(0),
        "the term is raised only after the pre-vote"
    );
    assert_eq!(n.hard_state().vote, None);
    let ready = drain(&mut n);
    assert_eq!(ready.hard_state, None, "nothing to persist");
    for peer in [N2, N3] {
        assert_eq!(
            answers(&ready, peer),
            [(Term(1), pre_vote(LogIndex(0), Term(0)))],
            "asks about the next term"
        );
    }
    n.step(msg(
        N2,
        N1,
        Term(1),
        MessageBody::PreVoteResponse { granted: true },
    ));
    assert_eq!(n.role(), Role::Candidate, "a majority said yes: campaign");
    assert_eq!(n.term(), Term(1));
}

#[test]
fn a_pre_candidate_refused_by_a_majority_returns_to_following_in_its_own_term() {
    let mut n = node(1, 3);
    while n.role() != Role::PreCandidate {
        n.tick();
    }
    for peer in [N2, N3] {
        n.step(msg(
            peer,
            N1,
            Term(0),
            MessageBody::PreVoteResponse { granted: false },
        ));
    }
    assert_eq!(n.role(), Role::Follower);
    assert_eq!(n.term(), Term(0));
}

#[test]
fn a_node_that_hears_a_live_leader_refuses_pre_votes_and_ignores_vote_requests() {
    let mut n = node(1, 3);
    n.step(heartbeat(N2, 1));
    let _ = drain(&mut n);
    n.step(asks(N3, 2, pre_vote));
    assert_eq!(
        answers(&drain(&mut n), N3),
        [(Term(1), MessageBody::PreVoteResponse { granted: false })]
    );
    n.step(asks(N3, 2, vote));
    assert_eq!(
        n.term(),
        Term(1),
        "a vote request cannot depose a live leader"
    );
    assert_eq!(n.leader(), Some(N2));
    assert!(
        answers(&drain(&mut n), N3).is_empty(),
        "ignored, not answered"
    );
    assert!(n.in_lease());
}

#[test]
fn once_the_leader_is_silent_for_an_election_timeout_pre_votes_and_votes_are_granted() {
    let mut n = node(1, 3);
    n.step(heartbeat(N2, 1));
    for _ in 0..n.config().election_timeout_ticks {
        n.tick();
    }
    assert!(!n.in_lease());
    let _ = drain(&mut n);
    n.step(asks(N3, 2, pre_vote));
    assert_eq!(
        answers(&drain(&mut n), N3),
        [(Term(2), MessageBody::PreVoteResponse { granted: true })],
        "granted in the asked term"
    );
    assert_eq!(n.term(), Term(1), "a pre-vote changes nothing here");
    n.step(asks(N3, 2, vote));
    assert_eq!(n.term(), Term(2));
    assert_eq!(
        answers(&drain(&mut n), N3),
        [(Term(2), MessageBody::RequestVoteResponse { granted: true })]
    );
}

#[test]
fn a_pre_vote_for_a_less_up_to_date_log_is_refused() {
    let mut n = node(1, 3);
    n.step(msg(
        N2,
        N1,
        Term(1),
        MessageBody::AppendEntries {
            prev_log_index: LogIndex(0),
            prev_log_term: Term(0),
            entries: vec![put_entry(1, 1, "k")],
            leader_commit: LogIndex(0),
        },
    ));
    for _ in 0..n.config().election_timeout_ticks {
        n.tick();
    }
    let _ = drain(&mut n);
    n.step(asks(N3, 2, pre_vote));
    assert_eq!(
        answers(&drain(&mut n), N3),
        [(Term(1), MessageBody::PreVoteResponse { granted: false })]
    );
}

#[test]
fn a_leader_steps_down_as_soon_as_a_majority_was_silent_for_one_election_timeout() {
    let mut n = node(1, 3);
    elect(&mut n);
    let timeout = n.config().election_timeout_ticks;
    let mut ticks = 0;
    while n.role() == Role::Leader {
        n.tick();
        settle(&mut n);
        ticks += 1;
        // A heartbeat answer from node 2 halfway keeps the quorum for another timeout.
        if ticks == timeout / 2 {
            n.step(accepted(N2, n.term(), LogIndex(0)));
        }
    }
    assert_eq!(
        ticks,
        timeout / 2 + timeout,
        "steps down one election timeout after the last answer of a majority"
    );
}

#[test]
fn a_transfer_stops_proposals_catches_the_target_up_then_tells_it_to_campaign() {
    let mut n = node(1, 3);
    elect(&mut n);
    let term = n.term();
    settle(&mut n);
    n.step(accepted(N2, term, LogIndex(1)));
    n.propose(RequestTag(1), put_op("k", "v")).unwrap();
    settle(&mut n);
    for not_a_peer in [N1, NodeId(9)] {
        assert_eq!(
            n.transfer_leadership(not_a_peer),
            Err(TransferError::NotAPeer { to: not_a_peer })
        );
    }
    n.transfer_leadership(N2).unwrap();
    assert_eq!(n.transferring_to(), Some(N2));
    assert_eq!(
        n.propose(RequestTag(2), put_op("k", "w")),
        Err(ProposeError::Transferring { to: N2 })
    );
    let ready = drain(&mut n);
    assert!(
        !answers(&ready, N2)
            .iter()
            .any(|(_, b)| *b == MessageBody::TimeoutNow),
        "node 2 lacks entry 2: it is caught up first"
    );
    n.step(accepted(N2, term, LogIndex(2)));
    assert_eq!(
        answers(&drain(&mut n), N2),
        [(term, MessageBody::TimeoutNow)]
    );
    n.step(accepted(N2, term, LogIndex(2)));
    assert_eq!(
        answers(&drain(&mut n), N2),
        [(term, MessageBody::TimeoutNow)],
        "sent again at the next acknowledgement: a lost TimeoutNow does not waste the transfer"
    );
}

#[test]
fn a_stopping_leader_hands_over_to_its_most_up_to_date_live_peer() {
    let mut n = node(1, 3);
    assert_eq!(n.handover_target(), None, "only a leader hands over");
    elect(&mut n);
    let term = n.term();
    settle(&mut n);
    assert_eq!(n.handover_target(), Some(N2), "equals: the lowest id");
    n.step(accepted(N3, term, LogIndex(1)));
    assert_eq!(n.handover_target(), Some(N3), "node 3 matched more");
    for _ in 0..n.config().election_timeout_ticks {
        n.step(accepted(N2, term, LogIndex(0)));
        n.tick();
        settle(&mut n);
    }
    assert_eq!(
        n.handover_target(),
        Some(N2),
        "node 3 went silent for an election timeout"
    );
}

#[test]
fn a_transfer_not_finished_within_an_election_timeout_is_abandoned() {
    let mut n = node(1, 3);
    elect(&mut n);
    n.transfer_leadership(N2).unwrap();
    for _ in 0..n.config().election_timeout_ticks {
        // Node 3 answers heartbeats, so the leader keeps its quorum.
        n.step(accepted(N3, n.term(), LogIndex(0)));
        n.tick();
        settle(&mut n);
    }
    assert_eq!(n.role(), Role::Leader);
    assert_eq!(n.transferring_to(), None);
    assert!(n.propose(RequestTag(1), put_op("k", "v")).is_ok());
}

#[test]
fn timeout_now_from_the_leader_starts_a_campaign_that_voters_answer_despite_their_lease() {
    let mut n = node(1, 3);
    n.step(heartbeat(N2, 1));
    n.step(msg(N3, N1, Term(1), MessageBody::TimeoutNow));
    assert_eq!(n.role(), Role::Follower, "only the leader may hand over");
    n.step(msg(N2, N1, Term(1), MessageBody::TimeoutNow));
    assert_eq!(n.role(), Role::Candidate, "no pre-vote: the leader asked");
    assert_eq!(n.term(), Term(2));
    let ready = drain(&mut n);
    assert_eq!(
        answers(&ready, N3),
        [(Term(2), transfer_vote(LogIndex(0), Term(0)))]
    );

    let mut voter = node(1, 3);
    voter.step(heartbeat(N2, 1));
    assert!(voter.in_lease());
    voter.step(asks(N3, 2, transfer_vote));
    assert_eq!(voter.term(), Term(2));
    assert_eq!(
        answers(&drain(&mut voter), N3),
        [(Term(2), MessageBody::RequestVoteResponse { granted: true })]
    );
}

#[test]
fn a_cluster_hands_leadership_to_the_chosen_node_without_an_election_timeout() {
    let mut cluster = Cluster::with_config(3, 7, |c| {
        c.election_timeout_ticks = 10;
        c.heartbeat_interval_ticks = 2;
    });
    assert!(cluster.run_until(500, |c| c.leader().is_some()).unwrap());
    let old = cluster.leader().unwrap();
    let target = cluster.ids().find(|&id| id != old).unwrap();
    let term = cluster.node(old).unwrap().term();
    cluster
        .with_node(old, |n| n.transfer_leadership(target))
        .unwrap()
        .unwrap()
        .unwrap();
    // Deliver messages only, no ticks: the handover needs no timer.
    cluster.deliver_all(1_000).unwrap();
    assert_eq!(cluster.leader(), Some(target));
    let new_term = cluster.node(target).unwrap().term();
    assert_eq!(new_term, term.next(), "one election");
    assert_eq!(cluster.node(old).unwrap().role(), Role::Follower);
}
