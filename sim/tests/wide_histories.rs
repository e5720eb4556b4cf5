//! The checker on wide histories (50 processes appending to ten keys, with writes of unknown
//! outcome), the shape of Jepsen's and Porcupine's key-value tests: one refuted key decides
//! the history even when another key is too hard to search, the witness is shrunk in a
//! budget of its own, and unobserved `info` writes do not multiply the search.

use verity_sim::checker::{Budget, Verdict, check, check_with};
use verity_sim::generate::{Wide, wide_history};
use verity_sim::history::Operation;

fn wide(seed: u64, stale_read: bool, hard_key: bool) -> Vec<Operation> {
    wide_history(Wide::fifty_clients(stale_read, hard_key), seed)
        .operations()
        .unwrap()
}

/// A budget the stale-read key's refutation fits in many times over on these seeds, even
/// interleaved with nine other keys, and which the hard key exhausts.
const STEPS: u64 = 1_000_000;

#[test]
fn a_hard_key_is_undecided_on_its_own() {
    for seed in 0..2 {
        let report = check(&wide(seed, false, true), &mut Budget::steps(STEPS));
        assert_eq!(report.verdict, Verdict::Undecided, "seed {seed}");
        assert!(
            report.undecided_keys.contains(&"k0".to_string()),
            "seed {seed}: {:?}",
            report.undecided_keys
        );
    }
}

#[test]
fn the_first_refuted_key_decides_even_beside_a_hard_key() {
    for seed in 0..3 {
        let report = check(&wide(seed, true, true), &mut Budget::steps(STEPS));
        assert_eq!(report.verdict, Verdict::NotLinearizable, "seed {seed}");
        assert_eq!(report.violations.len(), 1);
        assert_eq!(report.violations[0].key, "k9", "the stale read's key");
        assert!(report.unfinished_keys.contains(&"k0".to_string()));
        assert!(report.undecided_keys.is_empty());
    }
}

#[test]
fn the_witness_is_shrunk_to_a_few_operations_around_the_stale_read() {
    let report = check(&wide(0, true, false), &mut Budget::steps(STEPS));
    let witness = &report.violations[0].operations;
    let key_ops = wide(0, true, false)
        .iter()
        .filter(|op| op.key == "k9")
        .count();
    assert!(
        witness.len() <= 12 && witness.len() * 10 < key_ops,
        "{} of {key_ops} operations: {witness:#?}",
        witness.len()
    );
    assert!(witness.iter().any(|line| line.contains("get \"k9\"")));
}

#[test]
fn shrinking_out_of_budget_keeps_the_verdict_and_the_whole_key() {
    let ops = wide(1, true, true);
    let report = check_with(&ops, &mut Budget::steps(STEPS), &mut Budget::steps(0));
    assert_eq!(report.verdict, Verdict::NotLinearizable);
    let key_ops = ops.iter().filter(|op| op.key == "k9").count();
    assert_eq!(report.violations[0].operations.len(), key_ops);
}

#[test]
fn wide_linearizable_histories_pass() {
    for seed in 0..4 {
        let shape = Wide {
            processes: 50,
            keys: 10,
            operations: 800,
            info_per_mille: 30,
            stale_read: false,
            hard_key: false,
        };
        let ops = wide_history(shape, seed).operations().unwrap();
        let report = check(&ops, &mut Budget::steps(50_000_000));
        assert_eq!(report.verdict, Verdict::Linearizable, "seed {seed}");
    }
}
