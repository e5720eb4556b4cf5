//! The linearizability checker.
//!
//! Linearizability is compositional, so each key is checked on its own (a [`Search`]), which is
//! what makes checking fast. A key that fails is reported with a reduced witness: the search
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
    /// The key.
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

/// Checks `ops` for linearizability against the key-value model, key by key, within `budget`.
pub fn check(ops: &[Operation], budget: &mut Budget<'_>) -> Report {
    let mut by_key: BTreeMap<&str, Vec<&Operation>> = BTreeMap::new();
    for op in ops.iter().filter(|op| matters(op)) {
        by_key.entry(op.key.as_str()).or_default().push(op);
    }
    let mut report = Report {
        verdict: Verdict::Linearizable,
        operations: by_key.values().map(Vec::len).sum(),
        keys: by_key.len(),
        violations: Vec::new(),
        undecided_keys: Vec::new(),
    };
    for (key, key_ops) in by_key {
        match search::search(&key_ops, budget) {
            Search::Linearizable => {}
            Search::Undecided => report.undecided_keys.push(key.to_string()),
            Search::NotLinearizable { longest } => {
                let witness = reduce(key_ops.clone(), budget);
                report.violations.push(Violation {
                    key: key.to_string(),
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

/// Whether `op` can affect the verdict: failed operations other than compare-and-swap did
/// nothing and observed nothing, and a get of unknown outcome observed nothing.
pub(crate) fn matters(op: &Operation) -> bool {
    match (&op.kind, &op.outcome) {
        (OpKind::Cas { .. }, _) => true,
        (_, OpOutcome::Fail) => false,
        (OpKind::Get, OpOutcome::Info) => false,
        _ => true,
    }
}

/// Whether `op` only observes the state (so dropping it only removes constraints).
fn is_observation(op: &Operation) -> bool {
    matches!(
        (&op.kind, &op.outcome),
        (OpKind::Get, _) | (OpKind::Cas { .. }, OpOutcome::Fail)
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
