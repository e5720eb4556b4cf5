//! The simulator's teeth: with each catalogued bug switched on in the real core, standard
//! swarm seeds find a failing check within a budget that fits CI. Hunts are deterministic
//! (seed counts, not wall time), so a bug that stops being caught fails this test for good.

use verity_core::bugs::Bug;
use verity_sim::SimOptions;
use verity_sim::runner::{capture_panics, hunt};

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
