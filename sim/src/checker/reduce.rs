//! Shrinking a refuted key's history to a witness a person can read, in a budget of its own:
//! running out of it shortens the shrinking, never the verdict, which is already known.
//!
//! Two steps, each keeping only candidates that a search proves not linearizable:
//!
//! 1. **The shortest failing prefix.** Cut the history at a point in real time: operations
//!    invoked after it are left out, writes still running at it become `info` (they may take
//!    effect later, or never), and reads still running are left out. Every linearization of
//!    the whole history, cut there, is one of the prefix (everything that returned before
//!    the cut is ordered before everything invoked after it), so a prefix that cannot be
//!    ordered proves the same of the whole. The failing cuts form a suffix of the timeline,
//!    so a binary search finds the earliest.
//! 2. **Dropping observations.** Reads and failed compare-and-swaps only constrain; dropping
//!    them, in halving chunks and then one at a time, keeps a genuine sub-history that no
//!    order explains. Writes are never dropped, since dropping one could create a violation.

use super::search::{Budget, Search, search};
use crate::history::{OpKind, OpOutcome, Operation};

/// One operation of a witness: the operation as the search saw it, and whether its
/// completion was cut off by the prefix.
#[derive(Clone)]
struct Kept {
    op: Operation,
    original: usize,
    cut: bool,
}

/// Whether `op` only observes the state (so dropping it only removes constraints).
pub(super) fn is_observation(op: &Operation) -> bool {
    op.kind.is_read_only()
        || matches!(
            (&op.kind, &op.outcome),
            (OpKind::Cas { .. } | OpKind::Incr(_), OpOutcome::Fail)
        )
}

/// Shrinks the operations of a group that a search refuted into a witness: the operations
/// that cannot be ordered, in invocation order, one line each, and where each was invoked.
pub(super) fn witness(ops: &[&Operation], budget: &mut Budget<'_>) -> (Vec<String>, Vec<usize>) {
    let kept = drop_observations(shortest_failing_prefix(ops, budget), budget);
    let lines = kept
        .iter()
        .map(|k| {
            let line = ops[k.original].to_string();
            if k.cut {
                format!("{line}  (returned after the others; taken as of unknown outcome)")
            } else {
                line
            }
        })
        .collect();
    let positions = kept.iter().map(|k| k.op.invoke_position).collect();
    (lines, positions)
}

fn refuted(kept: &[Kept], budget: &mut Budget<'_>) -> bool {
    let ops: Vec<&Operation> = kept.iter().map(|k| &k.op).collect();
    matches!(search(&ops, budget), Search::NotLinearizable { .. })
}

/// The history cut at position `end` (see the module documentation).
fn prefix(ops: &[&Operation], end: usize) -> Vec<Kept> {
    let mut kept = Vec::new();
    for (original, op) in ops.iter().enumerate() {
        if op.invoke_position >= end {
            continue;
        }
        if op.complete_position.is_some_and(|at| at < end) {
            kept.push(Kept {
                op: (*op).clone(),
                original,
                cut: false,
            });
        } else if !is_observation(op) {
            let mut running = (*op).clone();
            let cut = running.complete_position.is_some();
            running.complete_position = None;
            running.outcome = OpOutcome::Info;
            kept.push(Kept {
                op: running,
                original,
                cut,
            });
        }
    }
    kept
}

/// The earliest cut that still cannot be ordered (the whole history if none is proven). The
/// search gallops up from the shortest prefixes, which are cheap to decide, before bisecting:
/// refuting a long prefix can cost as much as refuting the whole history did.
fn shortest_failing_prefix(ops: &[&Operation], budget: &mut Budget<'_>) -> Vec<Kept> {
    let mut cuts: Vec<usize> = ops.iter().filter_map(|op| op.complete_position).collect();
    cuts.sort_unstable();
    cuts.dedup();
    // Cutting just after a completion keeps it; `at(hi)` (at first everything) fails.
    let at = |i: usize| {
        if i == cuts.len() {
            usize::MAX
        } else {
            cuts[i] + 1
        }
    };
    let (mut lo, mut hi) = (0, cuts.len());
    let mut probe = 0;
    while probe < hi && !budget.is_spent() {
        if refuted(&prefix(ops, at(probe)), budget) {
            hi = probe;
        } else {
            lo = probe + 1;
            probe = 2 * probe + 1;
        }
    }
    while lo < hi && !budget.is_spent() {
        let mid = lo + (hi - lo) / 2;
        if refuted(&prefix(ops, at(mid)), budget) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    prefix(ops, at(hi))
}

/// Drops observations while what remains still cannot be ordered.
fn drop_observations(mut kept: Vec<Kept>, budget: &mut Budget<'_>) -> Vec<Kept> {
    let mut chunk = kept.len().div_ceil(2).max(1);
    loop {
        let mut start = 0;
        while start < kept.len() {
            if budget.is_spent() {
                return kept;
            }
            let end = (start + chunk).min(kept.len());
            if kept[start..end].iter().any(|k| is_observation(&k.op)) {
                let candidate: Vec<Kept> = kept
                    .iter()
                    .enumerate()
                    .filter(|&(i, k)| !(start..end).contains(&i) || !is_observation(&k.op))
                    .map(|(_, k)| k.clone())
                    .collect();
                if refuted(&candidate, budget) {
                    kept = candidate;
                    continue;
                }
            }
            start = end;
        }
        if chunk == 1 {
            return kept;
        }
        chunk = chunk.div_ceil(2);
    }
}
