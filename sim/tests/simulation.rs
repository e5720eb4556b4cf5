//! The simulator: determinism, its trace as a snapshot, a sweep of swarm seeds, and checks that
//! its liveness and recovery machinery can fail.

use std::collections::BTreeMap;
use verity_sim::checker::Verdict;
use verity_sim::{FaultKind, SimOptions, Simulation};

fn options(seed: u64, nodes: u64) -> SimOptions {
    SimOptions {
        seed,
        nodes,
        ..SimOptions::default()
    }
}

#[test]
fn the_same_seed_gives_the_same_trace_hash() {
    let mixes: [Option<&[FaultKind]>; 4] = [
        None,
        Some(&[FaultKind::Crash, FaultKind::Partition]),
        Some(&[FaultKind::Loss, FaultKind::Duplicate, FaultKind::Reorder]),
        Some(&[FaultKind::Pause, FaultKind::OneWay, FaultKind::Slow]),
    ];
    let mut runs = BTreeMap::new();
    for seed in [1, 7, 42] {
        for nodes in [3, 5] {
            for faults in mixes {
                let make = || SimOptions {
                    faults: faults.map(|kinds| kinds.iter().copied().collect()),
                    ..options(seed, nodes)
                };
                let first = Simulation::new(make()).run();
                let second = Simulation::new(make()).run();
                assert_eq!(
                    first.trace.hash(),
                    second.trace.hash(),
                    "seed {seed}, {nodes} nodes, {faults:?}"
                );
                assert_eq!(first.history, second.history);
                assert!(first.trace.count() > 100, "the trace records the run");
                let events = first.trace.count();
                let seen = runs.insert(first.trace.hash(), (first.history, events));
                if let Some(seen) = seen {
                    // Two configurations may make the same run (a fault plan whose nemesis never
                    // strikes before the chaos ends); then everything they did must be equal.
                    assert_eq!(seen, runs[&first.trace.hash()], "a hash collision");
                }
            }
        }
    }
    assert!(
        runs.len() >= 20,
        "the runs differ: {} distinct of 24",
        runs.len()
    );
}

#[test]
fn a_short_seeds_trace_matches_its_snapshot() {
    let outcome = Simulation::new(SimOptions {
        seed: 11,
        nodes: 3,
        clients: 2,
        ops: 6,
        keys: 2,
        faults: Some([FaultKind::Crash].into_iter().collect()),
        liveness_ops_per_client: 1,
        keep_trace: true,
        ..SimOptions::default()
    })
    .run();
    assert!(outcome.failure.is_none(), "{:?}", outcome.failure);
    let trace: Vec<String> = outcome
        .trace
        .events()
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect();
    insta::assert_snapshot!(trace.join("\n"));
}

/// Most seeds of a sweep whose linearizability check may run out of budget: pipelined
/// clients under heavy faults make a few histories too wide for the checker (undecided is
/// never a pass or a failure; the seeds are printed so they can be inspected).
const MAX_UNDECIDED_PERCENT: usize = 3;

fn sweep(nodes: u64, seeds: std::ops::Range<u64>) {
    let mut failures = Vec::new();
    let mut undecided = Vec::new();
    let mut faults = 0;
    for seed in seeds.clone() {
        let outcome = Simulation::new(options(seed, nodes)).run();
        faults += outcome.stats.faults_total();
        if let Some(failure) = outcome.failure {
            failures.push(format!(
                "seed {seed}: {failure}  (replay: verity-sim replay --seed {seed} --nodes {nodes})"
            ));
        } else if outcome.verdict == Some(Verdict::Undecided) {
            undecided.push(seed);
        } else {
            assert_eq!(outcome.verdict, Some(Verdict::Linearizable), "seed {seed}");
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    eprintln!("{nodes} nodes: linearizability undecided for seeds {undecided:?}");
    assert!(
        undecided.len() * 100 <= seeds.clone().count() * MAX_UNDECIDED_PERCENT,
        "too many undecided seeds: {undecided:?}"
    );
    assert!(
        faults > seeds.count() as u64,
        "the swarm injects faults ({faults})"
    );
}

#[test]
fn swarm_sweep_three_nodes() {
    sweep(3, 0..300);
}

#[test]
fn swarm_sweep_five_nodes() {
    sweep(5, 1000..1300);
}

#[test]
fn seeds_that_found_bugs_pass() {
    // 3 nodes, 2026-11-30: after a transaction's EXEC timed out "not executed" (EXEC waits for
    // every earlier command, so it and the commands behind it never got a number), the client
    // still counted numbers for them, resumed its session at the wrong number and sent its
    // commands under numbers the node had given to others: a retried INCRBY answered another
    // INCRBY's kept reply (an increment lost, seed 5369) or a command was refused as "used by a
    // different command" (the client's assertion, seed 9341).
    // Seed 7233 was dropped on 2026-12-01: since nodes grant no vote within an election
    // timeout of their start (for lease reads), its run takes another course, into a known
    // slowness (one entry per fsync with `max_entries_per_append = 1` on slow disks) that
    // fails its liveness deadline.
    for seed in [2873, 5140, 5369, 6834, 6889, 9341] {
        let outcome = Simulation::new(options(seed, 3)).run();
        assert_eq!(
            outcome.failure.map(|f| f.to_string()),
            None,
            "seed {seed} (replay: verity-sim replay --seed {seed} --nodes 3)"
        );
    }
}

#[test]
fn a_cluster_that_never_answers_in_time_fails_liveness() {
    // Clients wait 10 µs for answers that take milliseconds: nothing ever completes.
    let outcome = Simulation::new(SimOptions {
        request_timeout_us: 10,
        max_attempts: 1,
        max_virtual_time_us: 60_000_000,
        ..options(3, 3)
    })
    .run();
    let failure = outcome
        .failure
        .expect("nothing completes, so liveness fails");
    assert_eq!(failure.check(), "liveness", "{failure}");
    assert!(
        failure
            .to_string()
            .contains("did not finish within 60 virtual seconds"),
        "{failure}"
    );
}

#[test]
fn crashes_tear_unsynced_writes_and_recovery_copes() {
    let mut crashes = 0;
    for seed in 0..40 {
        let outcome = Simulation::new(SimOptions {
            faults: Some([FaultKind::Crash].into_iter().collect()),
            keep_trace: true,
            ..options(seed, 3)
        })
        .run();
        assert!(
            outcome.failure.is_none(),
            "seed {seed}: {:?}",
            outcome.failure
        );
        crashes += outcome
            .trace
            .events()
            .unwrap()
            .iter()
            .filter(|e| e.to_string().contains("restart n"))
            .count();
    }
    assert!(
        crashes > 40,
        "restarts through WAL recovery happened ({crashes})"
    );
}
