//! Property: no sequence of inputs — ticks, deliveries in any order, drops, duplicates,
//! proposals, crashes and restarts — breaks election safety, log matching, leader completeness
//! or state-machine safety. The harness's safety checker runs after every single step.

mod support;

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use verity_core::testing::Cluster;
use verity_core::*;

#[derive(Clone, Debug)]
enum Action {
    Tick(u64),
    Deliver(usize),
    Drop(usize),
    Duplicate(usize),
    Propose(u64, u8),
    OpenSession(u64),
    Crash(u64),
    Restart(u64),
}

fn action(size: u64) -> impl Strategy<Value = Action> {
    let node = 1..=size;
    prop_oneof![
        30 => node.clone().prop_map(Action::Tick),
        40 => any::<usize>().prop_map(Action::Deliver),
        4 => any::<usize>().prop_map(Action::Drop),
        4 => any::<usize>().prop_map(Action::Duplicate),
        8 => (node.clone(), any::<u8>()).prop_map(|(n, k)| Action::Propose(n, k)),
        2 => node.clone().prop_map(Action::OpenSession),
        1 => node.clone().prop_map(Action::Crash),
        3 => node.prop_map(Action::Restart),
    ]
}

fn scenario() -> impl Strategy<Value = (u64, u64, Vec<Action>)> {
    (prop_oneof![Just(3u64), Just(5u64)], any::<u64>()).prop_flat_map(|(size, seed)| {
        (
            Just(size),
            Just(seed),
            prop::collection::vec(action(size), 1..400),
        )
    })
}

fn run(size: u64, seed: u64, actions: &[Action]) -> Result<Cluster, String> {
    let mut c = Cluster::with_config(size, seed, |config| {
        config.election_timeout_ticks = 4;
        config.heartbeat_interval_ticks = 1;
        config.max_entries_per_append = 3;
        config.max_inflight_appends = 2;
    });
    for (step, action) in actions.iter().enumerate() {
        let in_flight = c.in_flight().len();
        let result = match *action {
            Action::Tick(n) => c.tick(NodeId(n)),
            Action::Deliver(p) if in_flight > 0 => c.deliver(p % in_flight).map(drop),
            Action::Drop(p) if in_flight > 0 => {
                c.drop_message(p % in_flight);
                Ok(())
            }
            Action::Duplicate(p) if in_flight > 0 => {
                c.duplicate(p % in_flight);
                Ok(())
            }
            Action::Deliver(_) | Action::Drop(_) | Action::Duplicate(_) => Ok(()),
            Action::Propose(n, key) => c
                .propose(
                    NodeId(n),
                    RequestTag(step as u64),
                    support::put_op(&key.to_string(), &step.to_string()),
                )
                .map(drop),
            Action::OpenSession(n) => c
                .propose(NodeId(n), RequestTag(step as u64), support::open_op())
                .map(drop),
            Action::Crash(n) => {
                c.crash(NodeId(n));
                Ok(())
            }
            Action::Restart(n) => c.restart(NodeId(n)),
        };
        result.map_err(|violation| format!("step {step} ({action:?}): {violation}"))?;
    }
    Ok(c)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_inputs_never_break_raft_safety((size, seed, actions) in scenario()) {
        if let Err(violation) = run(size, seed, &actions) {
            prop_assert!(false, "{}", violation);
        }
    }
}

#[test]
fn the_random_schedules_do_reach_leaders_and_commits() {
    // Guards the property above against vacuity: the same generator elects leaders and commits
    // entries, so the checker has something to check.
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let (mut with_commit, mut total) = (0, 0);
    for _ in 0..64 {
        let (size, seed, actions) = scenario().new_tree(&mut runner).unwrap().current();
        let cluster = run(size, seed, &actions).unwrap();
        total += 1;
        if cluster.checker().max_committed() > LogIndex(1) {
            with_commit += 1;
        }
    }
    assert!(
        with_commit * 4 >= total,
        "only {with_commit} of {total} schedules committed entries"
    );
}
