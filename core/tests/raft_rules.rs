//! One test per rule of the Raft paper (§5) that the core implements, named after the rule.

mod support;

use support::request;
use support::*;
use verity_core::*;

const N1: NodeId = NodeId(1);
const N2: NodeId = NodeId(2);
const N3: NodeId = NodeId(3);

#[test]
fn a_follower_that_hears_nothing_campaigns_within_one_to_two_election_timeouts() {
    for id in 1..=3 {
        let mut n = node(id, 3);
        let ticks = ticks_until_candidate(&mut n, 100).unwrap();
        assert!(
            (10..20).contains(&ticks),
            "node {id} campaigned after {ticks} ticks"
        );
        assert_eq!(n.term(), Term(1));
        let ready = drain(&mut n);
        assert_eq!(
            ready.hard_state.unwrap().vote,
            Some(NodeId(id)),
            "votes for itself"
        );
        assert_eq!(ready.messages.len(), 2, "asks every peer");
    }
}

#[test]
fn election_timeouts_are_random_per_seed_and_reproducible() {
    let timeouts = |seed: u64| {
        let mut config = config(1, 3);
        config.seed = seed;
        let mut n = Node::new(config).unwrap();
        (0..8)
            .map(|_| {
                let ticks = ticks_until_candidate(&mut n, 100).unwrap();
                settle(&mut n);
                ticks
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(timeouts(7), timeouts(7), "same seed, same timeouts");
    assert_ne!(timeouts(7), timeouts(8), "another seed, other timeouts");
    let draws = timeouts(7);
    assert!(
        draws.iter().any(|&t| t != draws[0]),
        "timeouts vary: {draws:?}"
    );
}

#[test]
fn a_candidate_with_a_majority_of_votes_becomes_leader_and_appends_a_noop() {
    let mut n = node(1, 3);
    ticks_until_candidate(&mut n, 100).unwrap();
    settle(&mut n);
    n.step(msg(
        N2,
        N1,
        Term(1),
        MessageBody::RequestVoteResponse { granted: true },
    ));
    assert_eq!(n.role(), Role::Leader);
    assert_eq!(n.leader(), Some(N1));
    let ready = drain(&mut n);
    assert_eq!(ready.entries.len(), 1);
    assert_eq!(ready.entries[0].payload, EntryPayload::Noop);
    assert_eq!(ready.entries[0].term, Term(1));
    assert_eq!(appends_to(&ready.messages, 2).len(), 1);
    assert_eq!(appends_to(&ready.messages, 3).len(), 1);
}

#[test]
fn a_candidate_refused_by_a_majority_steps_down() {
    let mut n = node(1, 3);
    ticks_until_candidate(&mut n, 100).unwrap();
    n.step(msg(
        N2,
        N1,
        Term(1),
        MessageBody::RequestVoteResponse { granted: false },
    ));
    assert_eq!(n.role(), Role::Candidate);
    n.step(msg(
        N3,
        N1,
        Term(1),
        MessageBody::RequestVoteResponse { granted: false },
    ));
    assert_eq!(n.role(), Role::Follower);
}

fn vote_request(from: NodeId, term: u64, last_index: u64, last_term: u64) -> Message {
    msg(
        from,
        N1,
        Term(term),
        MessageBody::RequestVote {
            last_log_index: LogIndex(last_index),
            last_log_term: Term(last_term),
        },
    )
}

fn granted(ready: &Ready, to: NodeId) -> bool {
    ready
        .messages
        .iter()
        .any(|m| m.to == to && m.body == MessageBody::RequestVoteResponse { granted: true })
}

/// Ticks `n` through the minimum election timeout after its start, during which it grants no
/// vote (it may have acknowledged a leader's lease just before it restarted), without letting
/// it campaign.
fn past_start(n: &mut Node) {
    for _ in 0..n.config().election_timeout_ticks {
        n.tick();
    }
    settle(n);
    assert_eq!(n.role(), Role::Follower, "this seed's timeout is longer");
}

#[test]
fn a_node_grants_no_vote_within_an_election_timeout_of_its_start() {
    let mut n = node(1, 3);
    n.step(vote_request(N2, 1, 0, 0));
    assert!(!granted(&drain(&mut n), N2), "just started");
    assert_eq!(n.term(), Term(0), "the request's term is ignored too");
    past_start(&mut n);
    n.step(vote_request(N2, 1, 0, 0));
    assert!(granted(&drain(&mut n), N2));
}

#[test]
fn a_node_grants_at_most_one_vote_per_term() {
    let mut n = node(1, 3);
    past_start(&mut n);
    n.step(vote_request(N2, 1, 0, 0));
    let ready = drain(&mut n);
    assert!(granted(&ready, N2));
    assert_eq!(
        ready.hard_state.unwrap().vote,
        Some(N2),
        "the vote is persisted with the reply"
    );
    n.step(vote_request(N3, 1, 0, 0));
    assert!(!granted(&drain(&mut n), N3), "second candidate, same term");
    n.step(vote_request(N2, 1, 0, 0));
    assert!(
        granted(&drain(&mut n), N2),
        "a repeated request from the same candidate"
    );
    n.step(vote_request(N3, 2, 0, 0));
    assert!(granted(&drain(&mut n), N3), "a new term frees the vote");
}

fn with_log(entries: Vec<Entry>, term: u64) -> Node {
    Node::restore(
        config(1, 3),
        Recovered {
            hard_state: HardState {
                term: Term(term),
                vote: None,
                commit: LogIndex(0),
            },
            entries,
            ..Recovered::default()
        },
    )
    .unwrap()
}

#[test]
fn a_node_refuses_its_vote_to_a_candidate_whose_log_is_less_up_to_date() {
    // Our log: (1,t1) (2,t2) (3,t2).
    let log = vec![
        put_entry(1, 1, "a"),
        put_entry(2, 2, "b"),
        put_entry(3, 2, "c"),
    ];
    let cases = [
        (3, 1, false, "lower last term, even if as long"),
        (9, 1, false, "lower last term, even if longer"),
        (2, 2, false, "same last term, shorter"),
        (3, 2, true, "same last term, same length"),
        (4, 2, true, "same last term, longer"),
        (1, 3, true, "higher last term, even if shorter"),
    ];
    for (last_index, last_term, want, why) in cases {
        let mut n = with_log(log.clone(), 2);
        past_start(&mut n);
        n.step(vote_request(N2, 3, last_index, last_term));
        assert_eq!(granted(&drain(&mut n), N2), want, "{why}");
    }
}

#[test]
fn a_leader_steps_down_on_seeing_a_higher_term() {
    let mut n = node(1, 3);
    elect(&mut n);
    settle(&mut n);
    n.step(accepted(N2, Term(5), LogIndex(0)));
    assert_eq!(n.role(), Role::Follower);
    assert_eq!(n.term(), Term(5));
    assert_eq!(
        drain(&mut n).hard_state.unwrap().term,
        Term(5),
        "the new term is persisted"
    );
}

#[test]
fn a_stale_append_entries_is_rejected_with_the_current_term() {
    let mut n = with_log(vec![], 4);
    n.step(msg(
        N2,
        N1,
        Term(3),
        MessageBody::AppendEntries {
            prev_log_index: LogIndex(0),
            prev_log_term: Term(0),
            entries: vec![put_entry(1, 3, "x")],
            leader_commit: LogIndex(1),
        },
    ));
    let ready = drain(&mut n);
    assert!(
        ready.entries.is_empty(),
        "nothing from a stale leader is stored"
    );
    assert_eq!(ready.messages.len(), 1);
    assert_eq!(
        ready.messages[0].term,
        Term(4),
        "tells the stale leader the term"
    );
    assert!(matches!(
        ready.messages[0].body,
        MessageBody::AppendEntriesResponse(AppendOutcome::Rejected { .. })
    ));
}

fn append(prev_index: u64, prev_term: u64, entries: Vec<Entry>, commit: u64) -> Message {
    msg(
        N2,
        N1,
        Term(3),
        MessageBody::AppendEntries {
            prev_log_index: LogIndex(prev_index),
            prev_log_term: Term(prev_term),
            entries,
            leader_commit: LogIndex(commit),
        },
    )
}

fn outcome(ready: &Ready) -> AppendOutcome {
    match ready.messages.as_slice() {
        [
            Message {
                body: MessageBody::AppendEntriesResponse(outcome),
                ..
            },
        ] => *outcome,
        other => panic!("expected one append response, got {other:?}"),
    }
}

#[test]
fn append_entries_failing_the_log_matching_check_is_rejected_with_a_term_hint() {
    // Our log: terms 1 1 2 2 2; the leader probes at (5, t3).
    let log = (1..=5)
        .map(|i| put_entry(i, if i <= 2 { 1 } else { 2 }, "k"))
        .collect();
    let mut n = with_log(log, 2);
    n.step(append(5, 3, vec![], 0));
    assert_eq!(
        outcome(&drain(&mut n)),
        AppendOutcome::Rejected {
            rejected_index: LogIndex(5),
            hint_index: LogIndex(5),
            hint_term: Term(2),
        },
        "our term 2 at 5 is below the leader's 3: the leader can skip its term-3 entries"
    );
    n.step(append(9, 3, vec![], 0));
    assert_eq!(
        outcome(&drain(&mut n)),
        AppendOutcome::Rejected {
            rejected_index: LogIndex(9),
            hint_index: LogIndex(5),
            hint_term: Term(2),
        },
        "a prev index past our end hints our last entry"
    );
}

#[test]
fn a_conflicting_uncommitted_suffix_is_truncated_and_replaced() {
    let log = vec![
        put_entry(1, 1, "a"),
        put_entry(2, 1, "b"),
        put_entry(3, 1, "c"),
    ];
    let mut n = with_log(log, 1);
    n.step(append(1, 1, vec![put_entry(2, 3, "B")], 1));
    let ready = drain(&mut n);
    assert_eq!(
        outcome(&ready),
        AppendOutcome::Accepted {
            match_index: LogIndex(2)
        }
    );
    assert_eq!(
        ready.entries,
        vec![put_entry(2, 3, "B")],
        "the driver must overwrite from index 2"
    );
    assert_eq!(
        n.log().last_index(),
        LogIndex(2),
        "index 3 of the old term is gone"
    );
    assert_eq!(n.commit_index(), LogIndex(1));
}

#[test]
fn matching_entries_already_present_are_not_truncated_by_a_stale_append() {
    let log = vec![
        put_entry(1, 3, "a"),
        put_entry(2, 3, "b"),
        put_entry(3, 3, "c"),
    ];
    let mut n = with_log(log, 3);
    n.step(append(0, 0, vec![put_entry(1, 3, "a")], 0));
    assert_eq!(
        outcome(&drain(&mut n)),
        AppendOutcome::Accepted {
            match_index: LogIndex(1)
        },
        "acknowledges only what the message covered"
    );
    assert_eq!(
        n.log().last_index(),
        LogIndex(3),
        "a delayed duplicate must not cut the log"
    );
}

#[test]
fn a_heartbeat_advances_the_follower_commit_only_up_to_what_it_matched() {
    let log = vec![
        put_entry(1, 1, "a"),
        put_entry(2, 1, "b"),
        put_entry(3, 2, "stale"),
    ];
    let mut n = with_log(log, 2);
    n.step(append(2, 1, vec![], 9));
    settle(&mut n);
    assert_eq!(
        n.commit_index(),
        LogIndex(2),
        "index 3 is not known to match the leader"
    );
}

#[test]
fn fast_backtracking_skips_a_whole_term_per_round_trip() {
    // Leader 1 (term 5) has 1..=3 of term 1 and 4..=30 of term 4. Follower 2 has 1..=3 of term
    // 1 and 4..=40 of term 2 (a deposed leader's uncommitted entries).
    let mut leader_log: Vec<Entry> = (1..=3).map(|i| put_entry(i, 1, "k")).collect();
    leader_log.extend((4..=30).map(|i| put_entry(i, 4, "k")));
    let mut follower_log: Vec<Entry> = (1..=3).map(|i| put_entry(i, 1, "k")).collect();
    follower_log.extend((4..=40).map(|i| put_entry(i, 2, "k")));
    let mut leader = Node::restore(
        config(1, 2),
        Recovered {
            hard_state: HardState {
                term: Term(4),
                vote: None,
                commit: LogIndex(3),
            },
            entries: leader_log,
            ..Recovered::default()
        },
    )
    .unwrap();
    let mut follower = Node::restore(
        config(2, 2),
        Recovered {
            hard_state: HardState {
                term: Term(4),
                vote: None,
                commit: LogIndex(3),
            },
            entries: follower_log,
            ..Recovered::default()
        },
    )
    .unwrap();
    ticks_until_candidate(&mut leader, 100).unwrap();
    settle(&mut leader);
    leader.step(msg(
        N2,
        N1,
        leader.term(),
        MessageBody::RequestVoteResponse { granted: true },
    ));
    assert_eq!(leader.role(), Role::Leader);

    let mut rejections = 0;
    let mut to_follower = drain(&mut leader).messages;
    for _round in 0..10 {
        let mut to_leader = Vec::new();
        for m in to_follower.drain(..) {
            follower.step(m);
            to_leader.extend(drain(&mut follower).messages);
        }
        for m in to_leader {
            if matches!(
                m.body,
                MessageBody::AppendEntriesResponse(AppendOutcome::Rejected { .. })
            ) {
                rejections += 1;
            }
            leader.step(m);
        }
        to_follower = drain(&mut leader).messages;
        if follower.log().last_index() == leader.log().last_index()
            && follower.log().last_term() == leader.log().last_term()
        {
            break;
        }
    }
    assert_eq!(
        follower.log().entries(),
        leader.log().entries(),
        "logs converge"
    );
    assert!(
        rejections <= 2,
        "37 conflicting entries resolved in {rejections} rejections"
    );
}

#[test]
fn a_leader_never_commits_an_older_term_entry_by_counting_replicas() {
    // Figure 8: the leader of term 4 holds an entry of term 2 at index 2 and finds it on a
    // majority; it must not commit it until an entry of term 4 is also on a majority.
    let log = vec![put_entry(1, 1, "a"), put_entry(2, 2, "b")];
    let mut n = Node::restore(
        config(1, 3),
        Recovered {
            hard_state: HardState {
                term: Term(3),
                vote: None,
                commit: LogIndex(1),
            },
            entries: log,
            ..Recovered::default()
        },
    )
    .unwrap();
    elect(&mut n);
    assert_eq!(n.term(), Term(4));
    settle(&mut n);
    let accepted = |match_index| {
        msg(
            N2,
            N1,
            Term(4),
            MessageBody::AppendEntriesResponse(AppendOutcome::Accepted {
                match_index: LogIndex(match_index),
            }),
        )
    };
    n.step(accepted(2));
    settle(&mut n);
    assert_eq!(
        n.commit_index(),
        LogIndex(1),
        "index 2 (term 2) is on a majority but not committed"
    );
    n.step(accepted(3));
    settle(&mut n);
    assert_eq!(
        n.commit_index(),
        LogIndex(3),
        "the term-4 no-op commits, and index 2 with it"
    );
}

#[test]
fn a_leader_counts_its_own_log_only_once_the_driver_has_persisted_it() {
    let mut n = Node::new(config(1, 1)).unwrap();
    ticks_until_candidate(&mut n, 100);
    assert_eq!(n.role(), Role::Leader, "a single node wins on its own vote");
    let ready = n.ready().unwrap();
    assert_eq!(
        n.commit_index(),
        LogIndex(0),
        "the no-op is not durable yet"
    );
    n.on_persisted(ready.ack.unwrap());
    assert_eq!(n.commit_index(), LogIndex(1));
}

#[test]
fn a_leader_batches_many_proposals_into_one_append_entries() {
    let mut n = node(1, 3);
    elect(&mut n);
    let first = drain(&mut n);
    n.step(accepted(N2, Term(1), LogIndex(1)));
    assert!(!first.messages.is_empty());
    for i in 0..100 {
        n.propose(RequestTag(i), put_op("k", "v")).unwrap();
    }
    let ready = drain(&mut n);
    let to_two = appends_to(&ready.messages, 2);
    assert_eq!(to_two.len(), 1, "one message carries the 100 proposals");
    let MessageBody::AppendEntries { entries, .. } = to_two[0] else {
        unreachable!()
    };
    assert_eq!(entries.len(), 100);
}

#[test]
fn a_leader_pipelines_at_most_max_inflight_appends_to_a_follower() {
    let mut config = config(1, 3);
    config.max_entries_per_append = 4;
    config.max_inflight_appends = 3;
    let mut n = Node::new(config).unwrap();
    elect(&mut n);
    settle(&mut n);
    n.step(accepted(N2, Term(1), LogIndex(1)));
    for i in 0..100 {
        n.propose(RequestTag(i), put_op("k", "v")).unwrap();
    }
    let ready = drain(&mut n);
    assert_eq!(
        appends_to(&ready.messages, 2).len(),
        3,
        "three batches of four in flight"
    );
    assert_eq!(
        appends_to(&ready.messages, 3).len(),
        0,
        "node 3 is still being probed"
    );
    n.step(accepted(N2, Term(1), LogIndex(5)));
    assert_eq!(
        appends_to(&drain(&mut n).messages, 2).len(),
        1,
        "one acknowledgement frees one slot"
    );
}

#[test]
fn a_leader_sends_heartbeats_every_interval() {
    let mut n = node(1, 3);
    elect(&mut n);
    settle(&mut n);
    for peer in [N2, N3] {
        n.step(accepted(peer, Term(1), LogIndex(1)));
    }
    settle(&mut n);
    n.tick();
    assert!(drain(&mut n).messages.is_empty());
    n.tick();
    let ready = drain(&mut n);
    assert_eq!(
        ready.messages.len(),
        2,
        "one heartbeat per follower after 2 ticks"
    );
    for m in &ready.messages {
        let MessageBody::AppendEntries {
            entries,
            leader_commit,
            ..
        } = &m.body
        else {
            panic!()
        };
        assert!(entries.is_empty());
        assert_eq!(*leader_commit, LogIndex(1));
    }
}

#[test]
fn a_leader_that_hears_from_no_majority_for_an_election_timeout_steps_down() {
    let mut n = node(1, 3);
    elect(&mut n);
    for _ in 0..25 {
        n.tick();
        settle(&mut n);
    }
    assert_eq!(
        n.role(),
        Role::Follower,
        "check-quorum deposes an isolated leader"
    );
    assert_eq!(n.leader(), None);
}

#[test]
fn a_proposal_to_a_follower_is_refused_naming_the_leader() {
    let mut n = node(1, 3);
    n.step(append_from_leader_2());
    assert_eq!(
        n.propose(RequestTag(1), put_op("k", "v")),
        Err(ProposeError::NotLeader { leader: Some(N2) })
    );
    let mut lonely = node(1, 3);
    assert_eq!(
        lonely.propose(RequestTag(1), put_op("k", "v")),
        Err(ProposeError::NotLeader { leader: None })
    );
}

fn append_from_leader_2() -> Message {
    msg(
        N2,
        N1,
        Term(1),
        MessageBody::AppendEntries {
            prev_log_index: LogIndex(0),
            prev_log_term: Term(0),
            entries: vec![],
            leader_commit: LogIndex(0),
        },
    )
}

#[test]
fn a_leader_refuses_proposals_beyond_the_uncommitted_bound() {
    let mut config = config(1, 3);
    config.max_uncommitted_entries = 5;
    let mut n = Node::new(config).unwrap();
    elect(&mut n);
    for i in 0..4 {
        n.propose(RequestTag(i), put_op("k", "v")).unwrap();
    }
    assert_eq!(
        n.propose(RequestTag(9), put_op("k", "v")),
        Err(ProposeError::Overloaded { uncommitted: 5 })
    );
}

#[test]
fn a_proposal_whose_entry_is_overwritten_is_answered_as_superseded() {
    let mut n = node(1, 3);
    elect(&mut n);
    let index = n.propose(RequestTag(7), put_op("k", "v")).unwrap();
    settle(&mut n);
    // Node 2 wins term 2 without our entry and overwrites index 2.
    n.step(msg(
        N2,
        N1,
        Term(2),
        MessageBody::AppendEntries {
            prev_log_index: LogIndex(1),
            prev_log_term: Term(1),
            entries: vec![put_entry(2, 2, "other")],
            leader_commit: LogIndex(2),
        },
    ));
    let ready = drain(&mut n);
    assert_eq!(
        ready.replies,
        vec![ClientReply {
            tag: RequestTag(7),
            index,
            outcome: Outcome::Superseded
        }]
    );
}

#[test]
fn a_restarted_node_reapplies_its_committed_prefix_once_it_learns_the_commit_index() {
    let mut n = Node::new(config(1, 1)).unwrap();
    ticks_until_candidate(&mut n, 100);
    let mut persisted = Recovered::default();
    let persist = |n: &mut Node, persisted: &mut Recovered| {
        while let Some(ready) = n.ready() {
            persisted.hard_state = ready.hard_state.unwrap_or(persisted.hard_state);
            persisted.entries.extend(ready.entries);
            if let Some(ack) = ready.ack {
                n.on_persisted(ack);
            }
        }
    };
    persist(&mut n, &mut persisted);
    n.propose(RequestTag(1), support::open_op()).unwrap();
    persist(&mut n, &mut persisted);
    let client = ClientId(2);
    n.propose(RequestTag(2), request(client, 1, put("k", "v")))
        .unwrap();
    persist(&mut n, &mut persisted);
    assert!(n.state_machine().store().get(b"k").is_some());

    let mut restarted = Node::restore(config(1, 1), persisted).unwrap();
    assert_eq!(restarted.role(), Role::Follower);
    assert!(
        restarted.state_machine().store().get(b"k").is_none(),
        "nothing applied yet"
    );
    settle(&mut restarted);
    assert!(
        restarted.state_machine().store().get(b"k").is_none(),
        "the commit index that covers the put was never written on its own"
    );
    // It learns its commit index again as leader (a follower: from its leader).
    ticks_until_candidate(&mut restarted, 100);
    settle(&mut restarted);
    assert_eq!(restarted.role(), Role::Leader);
    assert_eq!(
        restarted.state_machine().store().get(b"k").unwrap().value,
        b"v"
    );
    assert_eq!(restarted.state_machine().store(), n.state_machine().store());
}

#[test]
fn restore_rejects_durable_state_that_contradicts_itself() {
    let bad = [
        (
            HardState {
                term: Term(1),
                vote: None,
                commit: LogIndex(5),
            },
            vec![put_entry(1, 1, "a")],
        ),
        (
            HardState {
                term: Term(1),
                vote: None,
                commit: LogIndex(0),
            },
            vec![put_entry(1, 2, "a")],
        ),
        (
            HardState {
                term: Term(1),
                vote: Some(NodeId(9)),
                commit: LogIndex(0),
            },
            vec![],
        ),
    ];
    for (hard_state, entries) in bad {
        let result = Node::restore(
            config(1, 3),
            Recovered {
                hard_state,
                entries,
                ..Recovered::default()
            },
        );
        assert!(
            matches!(result, Err(RestoreError::HardState { .. })),
            "{hard_state:?}"
        );
    }
    let gap = vec![put_entry(1, 1, "a"), put_entry(3, 1, "c")];
    let result = Node::restore(
        config(1, 3),
        Recovered {
            hard_state: HardState {
                term: Term(1),
                ..HardState::default()
            },
            entries: gap,
            ..Recovered::default()
        },
    );
    assert!(matches!(result, Err(RestoreError::Log(_))));
}

#[test]
fn messages_from_strangers_or_to_someone_else_are_dropped() {
    let mut n = node(1, 3);
    n.step(msg(
        NodeId(9),
        N1,
        Term(7),
        MessageBody::RequestVote {
            last_log_index: LogIndex(0),
            last_log_term: Term(0),
        },
    ));
    n.step(msg(
        N2,
        N3,
        Term(7),
        MessageBody::RequestVote {
            last_log_index: LogIndex(0),
            last_log_term: Term(0),
        },
    ));
    assert_eq!(n.term(), Term(0));
    assert!(n.ready().is_none());
}

#[test]
fn a_malformed_append_entries_is_dropped_without_changing_the_log() {
    let mut n = node(1, 3);
    n.step(append(
        0,
        0,
        vec![put_entry(1, 1, "a"), put_entry(3, 1, "gap")],
        0,
    ));
    assert_eq!(n.log().last_index(), LogIndex(0));
    n.step(append(0, 0, vec![put_entry(1, 9, "future term")], 0));
    assert_eq!(n.log().last_index(), LogIndex(0));
}

#[test]
fn invalid_configurations_are_refused_with_the_reason() {
    let mut c = config(4, 3);
    assert!(matches!(
        Node::new(c.clone()),
        Err(ConfigError::NotAVoter { .. })
    ));
    c = config(1, 3);
    c.heartbeat_interval_ticks = c.election_timeout_ticks;
    assert!(matches!(
        Node::new(c.clone()),
        Err(ConfigError::Timeouts { .. })
    ));
    c = config(1, 3);
    c.max_inflight_appends = 0;
    assert_eq!(
        Node::new(c).unwrap_err(),
        ConfigError::ZeroBound {
            name: "max_inflight_appends"
        }
    );
}

#[test]
fn a_retry_of_a_request_still_waiting_joins_its_entry_instead_of_appending() {
    let mut n = node(1, 3);
    elect(&mut n);
    let retried = request(ClientId(5), 1, support::put("k", "v"));
    let first = n.propose(RequestTag(1), retried.clone()).unwrap();
    let second = n.propose(RequestTag(2), retried.clone()).unwrap();
    assert_eq!(first, second, "the retry waits on the same entry");
    assert_eq!(
        n.log().last_index(),
        first,
        "nothing was appended for the retry"
    );
    // Both attempts are answered when the entry commits.
    settle(&mut n);
    for peer in [N2, N3] {
        n.step(msg(
            peer,
            N1,
            Term(1),
            MessageBody::AppendEntriesResponse(AppendOutcome::Accepted { match_index: first }),
        ));
    }
    let tags: Vec<RequestTag> = drain(&mut n).replies.into_iter().map(|r| r.tag).collect();
    assert_eq!(tags, vec![RequestTag(1), RequestTag(2)]);
    // Attempts waiting on one entry are bounded.
    let other = request(ClientId(5), 2, support::put("k", "w"));
    for tag in 0..16 {
        n.propose(RequestTag(100 + tag), other.clone()).unwrap();
    }
    assert!(matches!(
        n.propose(RequestTag(999), other),
        Err(ProposeError::Overloaded { .. })
    ));
}

#[test]
fn retries_of_session_opens_and_resumes_join_their_entry_and_others_do_not() {
    let mut n = node(1, 3);
    elect(&mut n);
    let (token, other_token) = (SessionToken([1; 16]), SessionToken([2; 16]));
    let resume = ClientOp::Resume {
        client: ClientId(5),
        token,
    };
    let first = n.propose(RequestTag(1), resume.clone()).unwrap();
    assert_eq!(n.propose(RequestTag(2), resume).unwrap(), first);
    let open = ClientOp::OpenSession { token };
    let opened = n.propose(RequestTag(3), open.clone()).unwrap();
    assert_eq!(n.propose(RequestTag(4), open).unwrap(), opened);
    assert_eq!(n.log().last_index(), opened, "no entry for either retry");
    // Another token, or another command under the same number, is another operation.
    let forged = ClientOp::Resume {
        client: ClientId(5),
        token: other_token,
    };
    assert_ne!(n.propose(RequestTag(5), forged).unwrap(), first);
    let set_v = request(ClientId(5), 1, support::put("k", "v"));
    let set_w = request(ClientId(5), 1, support::put("k", "w"));
    let set_at = n.propose(RequestTag(6), set_v).unwrap();
    assert_ne!(n.propose(RequestTag(7), set_w).unwrap(), set_at);
}

#[test]
fn only_a_leaders_append_entries_may_leave_before_the_local_persist() {
    let mut n = node(1, 3);
    ticks_until_candidate(&mut n, 100).unwrap();
    let campaign = n.ready().unwrap();
    assert!(
        campaign.early_messages.is_empty(),
        "vote requests promise a durable term and vote"
    );
    assert_eq!(campaign.messages.len(), 2);
    if let Some(ack) = campaign.ack {
        n.on_persisted(ack);
    }
    n.step(msg(
        N2,
        N1,
        Term(1),
        MessageBody::RequestVoteResponse { granted: true },
    ));
    let leading = n.ready().unwrap();
    assert_eq!(leading.entries.len(), 1, "the no-op, not yet durable");
    assert_eq!(
        appends_to(&leading.early_messages, 2).len(),
        1,
        "replication starts at once"
    );
    assert!(leading.messages.is_empty());
    assert_eq!(n.commit_index(), LogIndex(0));
    for peer in [N2, N3] {
        n.step(accepted(peer, Term(1), LogIndex(1)));
    }
    assert_eq!(
        n.commit_index(),
        LogIndex(1),
        "a majority of followers stored it durably"
    );
}

#[test]
fn a_change_of_the_commit_index_alone_is_not_written_on_its_own() {
    let mut n = node(1, 3);
    let append = |prev: u64, entries: Vec<Entry>, commit: u64| {
        msg(
            N2,
            N1,
            Term(1),
            MessageBody::AppendEntries {
                prev_log_index: LogIndex(prev),
                prev_log_term: Term(prev.min(1)),
                entries,
                leader_commit: LogIndex(commit),
            },
        )
    };
    n.step(append(0, vec![put_entry(1, 1, "a")], 0));
    let ready = drain(&mut n);
    assert_eq!(ready.hard_state.map(|h| h.term), Some(Term(1)));
    n.step(append(1, vec![], 1));
    let ready = drain(&mut n);
    assert_eq!(n.commit_index(), LogIndex(1));
    assert_eq!(
        n.state_machine().applied_index(),
        LogIndex(1),
        "applied all the same"
    );
    assert_eq!(
        (ready.hard_state, ready.entries.len()),
        (None, 0),
        "nothing to write, so no fsync, for a commit index no promise depends on"
    );
    n.step(append(1, vec![put_entry(2, 1, "b")], 1));
    let ready = drain(&mut n);
    assert_eq!(
        ready.hard_state.map(|h| h.commit),
        Some(LogIndex(1)),
        "it rides along with the next write"
    );
}
