//! The simulator's teeth: with each catalogued bug switched on in the real core, standard
//! swarm seeds find a failing check within a budget that fits CI. Hunts are deterministic
//! (seed counts, not wall time), so a bug that stops being caught fails this test for good.

use std::path::Path;
use verity_core::bugs::Bug;
use verity_sim::minimize::{minimize, to_scenario};
use verity_sim::runner::{capture_panics, hunt, run_catching_panics};
use verity_sim::scenario::Scenario;
use verity_sim::{SimOptions, Simulation};

/// Seeds each hunt may use. The slowest bug needs a few hundred (see the README's scorecard).
const SEED_BUDGET: u64 = 3_000;

#[test]
fn every_catalogued_bug_is_caught_within_the_seed_budget() {
    capture_panics();
    let mut report = Vec::new();
    let mut missed = Vec::new();
    for bug in Bug::ALL {
        match hunt(bug, &SimOptions::default(), 0, SEED_BUDGET, &|| false) {
            Some(catch) => report.push(format!(
                "{:<26} seed {:>5} [{}]",
                bug.name(),
                catch.seed,
                catch.check
            )),
            None => missed.push(bug.name()),
        }
    }
    println!("{}", report.join("\n"));
    assert!(
        missed.is_empty(),
        "not caught within {SEED_BUDGET} seeds: {missed:?}"
    );
}

#[test]
fn the_catalogue_names_round_trip_and_are_unique() {
    let mut names: Vec<&str> = Bug::ALL.iter().map(|bug| bug.name()).collect();
    for bug in Bug::ALL {
        assert_eq!(Bug::from_name(bug.name()), Some(bug));
        assert!(!bug.breaks().is_empty());
    }
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), Bug::ALL.len());
}

#[test]
fn a_minimized_catch_is_a_smaller_scenario_that_reproduces_it() {
    capture_panics();
    let catch = hunt(
        Bug::DoubleVote,
        &SimOptions::default(),
        0,
        SEED_BUDGET,
        &|| false,
    )
    .expect("caught");
    let original = SimOptions {
        seed: catch.seed,
        bug: Some(Bug::DoubleVote),
        ..SimOptions::default()
    };
    let minimized = minimize(original.clone(), 100).expect("the seed fails");
    assert_eq!(minimized.check, catch.check);
    let o = &minimized.options;
    assert!(o.clients <= original.clients && o.ops <= original.ops && o.keys <= original.keys);
    assert!(
        !minimized.steps.is_empty(),
        "a double vote needs no faults, clients or operations to show"
    );

    let path = std::env::temp_dir().join(format!("verity-minimized-{}.toml", std::process::id()));
    std::fs::write(&path, to_scenario(&minimized, "test")).unwrap();
    let scenario = Scenario::load(&path).unwrap();
    assert_eq!(scenario.seed, Some(catch.seed));
    assert!(scenario.options.expect.must_fail);
    let replayed = run_catching_panics(scenario.options(catch.seed)).expect("no panic");
    assert_eq!(
        replayed.failure.map(|f| f.check().to_string()),
        Some(catch.check)
    );
}

#[test]
fn the_minimized_bug_scenarios_in_the_library_still_fail() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/bugs");
    let mut count = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let scenario = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let seed = scenario.seed.expect("a minimized scenario pins its seed");
        let outcome = Simulation::new(scenario.options(seed)).run();
        assert!(
            outcome.failure.is_some(),
            "{} no longer fails",
            path.display()
        );
        count += 1;
    }
    assert!(count >= 2);
}
