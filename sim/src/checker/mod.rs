//! The linearizability checker.
//!
//! Linearizability is compositional, so each key is checked on its own (a [`Search`]), which is
//! what makes checking fast. Operations that touch several keys at once (transactions, `MSET`,
//! `MGET`) join their keys into one group, checked as one object; a report then names the
//! group's keys joined by `+`. A key that fails is reported with a reduced witness: the search
//! drops read-only observations (gets and failed compare-and-swaps) for as long as the rest
//! still cannot be ordered. Dropping an observation can only remove constraints, so whatever
//! remains is a genuine sub-history that no order explains; writes are never dropped, since
//! dropping one could create a violation that was not there.
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
mod search;

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

/// Checks `ops` for linearizability against the key-value model, key by key (or group by
/// group), within `budget`.
pub fn check(ops: &[Operation], budget: &mut Budget<'_>) -> Report {
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
    };
    for (key, key_ops) in groups(ops) {
        match search::search(&key_ops, budget) {
            Search::Linearizable => {}
            Search::Undecided => report.undecided_keys.push(key),
            Search::NotLinearizable { longest } => {
                let witness = reduce(key_ops.clone(), budget);
                report.violations.push(Violation {
                    key,
                    operations: witness.iter().map(ToString::to_string).collect(),
                    longest_linearizable_prefix: longest
                        .iter()
                        .map(|&i| key_ops[i].to_string())
                        .collect(),
                });
            }
        }
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

/// Whether `op` only observes the state (so dropping it only removes constraints).
fn is_observation(op: &Operation) -> bool {
    op.kind.is_read_only()
        || matches!(
            (&op.kind, &op.outcome),
            (OpKind::Cas { .. } | OpKind::Incr(_), OpOutcome::Fail)
        )
}

/// Drops observations from a non-linearizable key history while it stays non-linearizable,
/// in halving chunks and then one at a time. Stops early, keeping what it has, when the budget
/// runs low.
fn reduce<'a>(mut ops: Vec<&'a Operation>, budget: &mut Budget<'_>) -> Vec<&'a Operation> {
    let mut chunk = ops.len().div_ceil(2).max(1);
    loop {
        let mut start = 0;
        while start < ops.len() {
            let end = (start + chunk).min(ops.len());
            if ops[start..end].iter().any(|op| is_observation(op)) {
                let candidate: Vec<&Operation> = ops
                    .iter()
                    .enumerate()
                    .filter(|&(i, op)| !(start..end).contains(&i) || !is_observation(op))
                    .map(|(_, op)| *op)
                    .collect();
                match search::search(&candidate, budget) {
                    Search::NotLinearizable { .. } => {
                        ops = candidate;
                        continue;
                    }
                    Search::Undecided => return ops,
                    Search::Linearizable => {}
                }
            }
            start = end;
        }
        if chunk == 1 {
            return ops;
        }
        chunk = chunk.div_ceil(2);
    }
}
