//! The short sweep that `scripts/mutants.sh` runs against every mutant of `core/`: standard
//! swarm seeds on three and five nodes, with every check of the simulator and nothing else (no
//! unit test of the core), so the mutation score it yields measures the simulator alone.
//!
//! Ignored in the ordinary suite: the same seeds pass there through the larger sweeps and the
//! scenario tests, and against the unmutated code this test only spends time.

use verity_sim::SimOptions;
use verity_sim::runner::{capture_panics, run_catching_panics};

/// Seeds per cluster size.
const SEEDS: u64 = 120;

#[test]
#[ignore = "run by scripts/mutants.sh against each mutant of core/"]
fn a_short_swarm_sweep_finds_nothing_wrong() {
    capture_panics();
    for nodes in [3, 5] {
        for seed in 0..SEEDS {
            let options = SimOptions {
                seed,
                nodes,
                ..SimOptions::default()
            };
            match run_catching_panics(options) {
                Ok(outcome) => assert!(
                    outcome.failure.is_none(),
                    "{nodes} nodes, seed {seed}: {}",
                    outcome.failure.expect("checked")
                ),
                Err(panic) => panic!("{nodes} nodes, seed {seed}: {panic}"),
            }
        }
    }
}
