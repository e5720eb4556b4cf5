//! The linearizability checker.
//!
//! Linearizability is compositional, so each key is checked on its own (a [`Search`]), which is
//! what makes checking fast. Operations that touch several keys at once (transactions, `MSET`,
//! `MGET`) join their keys into one group, checked as one object; a report then names the
//! group's keys joined by `+`.
//!
//! The keys are searched interleaved, a slice of steps each in turn, so one hard key cannot
//! starve the others, and the first key refuted decides the history: the rest are left
//! unfinished. A refuted key is then shrunk to a witness (module `reduce`) in a budget of its own,
//! which can only shorten the shrinking, never turn the verdict into undecided.
//!
//! Before searching, an `info` write that nothing could have observed is dropped (module
//! `prepare`): whether it took effect is invisible. This covers an info write overwritten
//! before anyone read it, and keeps the unfinished appends of a wide history from
//! multiplying the search.
//!
//! An example of what is and is not linearizable, for one key:
//!
//! ```text
//! A: |--put x=1--|
//! B:    |--------get x = 1--------|     fine: the get may take effect after the put
//! C:               |--get x = null--|  not linearizable: C starts after A's put finished,
//!                                      so x is 1 for the whole of C
//! ```

mod model;
mod prepare;
mod reduce;
mod search;

use search::Searcher;
pub use search::{Budget, Search};

use crate::history::{OpKind, OpOutcome, Operation};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

/// The verdict on a whole history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Every key is linearizable.
    Linearizable,
    /// At least one key is not.
    NotLinearizable,
    /// No key failed, but at least one could not be decided within the budget.
    Undecided,
}

/// What was found for one failing key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// The key (a group of keys: joined by `+`).
    pub key: String,
    /// A reduced set of operations that cannot be ordered, in invocation order.
    pub operations: Vec<String>,
    /// Where each of `operations` was invoked: its invoke event's index in the history.
    pub invoked_at: Vec<usize>,
    /// The longest sequence of the key's operations that could be linearized.
    pub longest_linearizable_prefix: Vec<String>,
}

/// The checker's report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Report {
    /// The overall verdict.
    pub verdict: Verdict,
    /// Number of operations considered (after dropping those that cannot matter).
    pub operations: usize,
    /// Number of keys.
    pub keys: usize,
    /// Keys that are not linearizable.
    pub violations: Vec<Violation>,
    /// Keys that could not be decided within the budget.
    pub undecided_keys: Vec<String>,
    /// Keys whose search was still running when another key was refuted, which decided the
    /// history.
    pub unfinished_keys: Vec<String>,
}

impl fmt::Display for Violation {
    /// The human report of one failing key: the witness, then the longest linearizable prefix.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "key {:?} is not linearizable. These operations cannot be ordered:",
            self.key
        )?;
        for op in &self.operations {
            writeln!(f, "  {op}")?;
        }
        writeln!(
            f,
            "longest linearizable prefix ({} operations):",
            self.longest_linearizable_prefix.len()
        )?;
        for op in &self.longest_linearizable_prefix {
            writeln!(f, "  {op}")?;
        }
        Ok(())
    }
}

/// Steps each key searches before the next key's turn.
const SLICE_STEPS: u64 = 1 << 14;

/// Steps [`check`] allows for shrinking a refuted key's witness.
pub const REDUCTION_STEPS: u64 = 2_000_000;

/// Checks `ops` for linearizability against the key-value model, key by key (or group by
/// group), within `budget`; a refuted key's witness is shrunk within [`REDUCTION_STEPS`].
pub fn check(ops: &[Operation], budget: &mut Budget<'_>) -> Report {
    check_with(ops, budget, &mut Budget::steps(REDUCTION_STEPS))
}

/// [`check`] with the witness shrunk within `reduction` instead.
pub fn check_with(
    ops: &[Operation],
    budget: &mut Budget<'_>,
    reduction: &mut Budget<'_>,
) -> Report {
    let ops: Vec<&Operation> = ops.iter().filter(|op| matters(op)).collect();
    let mut keys: Vec<&str> = ops.iter().flat_map(|op| op.keys()).collect();
    keys.sort_unstable();
    keys.dedup();
    let mut report = Report {
        verdict: Verdict::Linearizable,
        operations: ops.len(),
        keys: keys.len(),
        violations: Vec::new(),
        undecided_keys: Vec::new(),
        unfinished_keys: Vec::new(),
    };
    let mut live: Vec<(String, Vec<&Operation>, Searcher<'_>)> = groups(ops)
        .into_iter()
        .map(|(key, key_ops)| {
            let key_ops = prepare::drop_unobserved_info_writes(key_ops);
            let searcher = Searcher::new(&key_ops);
            (key, key_ops, searcher)
        })
        .collect();
    while !live.is_empty() && report.violations.is_empty() && !budget.is_spent() {
        let mut i = 0;
        while i < live.len() {
            let mut slice = budget.take(SLICE_STEPS);
            let verdict = live[i].2.run(&mut slice);
            budget.give_back(slice);
            match verdict {
                None => i += 1,
                Some(Search::Linearizable) => {
                    live.remove(i);
                }
                Some(Search::NotLinearizable { longest }) => {
                    let (key, key_ops, _) = live.remove(i);
                    let (operations, invoked_at) = reduce::witness(&key_ops, reduction);
                    report.violations.push(Violation {
                        operations,
                        invoked_at,
                        longest_linearizable_prefix: longest
                            .iter()
                            .map(|&i| key_ops[i].to_string())
                            .collect(),
                        key,
                    });
                    break;
                }
                Some(Search::Undecided) => unreachable!("a searcher pauses instead"),
            }
            if budget.is_spent() {
                break;
            }
        }
    }
    let left = live.into_iter().map(|(key, _, _)| key);
    if report.violations.is_empty() {
        report.undecided_keys.extend(left);
    } else {
        report.unfinished_keys.extend(left);
    }
    report.verdict = if !report.violations.is_empty() {
        Verdict::NotLinearizable
    } else if !report.undecided_keys.is_empty() {
        Verdict::Undecided
    } else {
        Verdict::Linearizable
    };
    report
}

/// Splits the operations into groups of keys that operations connect (union-find over the
/// keys each touches), keyed by the group's sorted keys joined by `+`, each group's operations
/// in their original order.
fn groups(ops: Vec<&Operation>) -> BTreeMap<String, Vec<&Operation>> {
    let mut parent: BTreeMap<&str, &str> = BTreeMap::new();
    fn root<'k>(parent: &BTreeMap<&'k str, &'k str>, mut key: &'k str) -> &'k str {
        while let Some(&up) = parent.get(key).filter(|&&up| up != key) {
            key = up;
        }
        key
    }
    for op in &ops {
        let keys = op.keys();
        for key in &keys {
            parent.entry(key).or_insert(key);
        }
        for pair in keys.windows(2) {
            let (a, b) = (root(&parent, pair[0]), root(&parent, pair[1]));
            if a != b {
                parent.insert(a.max(b), a.min(b));
            }
        }
    }
    let mut names: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for &key in parent.keys() {
        names.entry(root(&parent, key)).or_default().push(key);
    }
    let mut by_root: BTreeMap<&str, Vec<&Operation>> = BTreeMap::new();
    for op in ops {
        by_root.entry(root(&parent, &op.key)).or_default().push(op);
    }
    by_root
        .into_iter()
        .map(|(root, ops)| (names[root].join("+"), ops))
        .collect()
}

/// Whether `op` can affect the verdict: failed operations other than compare-and-swap and
/// increment (whose failure observed the value) did nothing and observed nothing, and a read
/// of unknown outcome observed nothing.
pub(crate) fn matters(op: &Operation) -> bool {
    match (&op.kind, &op.outcome) {
        (OpKind::Cas { .. } | OpKind::Incr(_), _) => true,
        (_, OpOutcome::Fail) => false,
        (kind, OpOutcome::Info) => !kind.is_read_only(),
        _ => true,
    }
}
