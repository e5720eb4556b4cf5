//! Fuzz target bodies (feature `fuzzing`) for the simulator's parsers and checker. Each takes
//! raw bytes, so libFuzzer (`fuzz/`) and the stable corpus test call the same code.

use crate::checker::{Budget, Verdict, check, matters};
use crate::history::{History, OpKind, OpOutcome, Operation};
use crate::scenario::Scenario;
use std::collections::BTreeMap;

/// `scenario_parse`: any text through the scenario parser. Promise: an error value, never a
/// panic, and an error always names a line and column inside the text.
pub fn scenario_parse(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(error) = Scenario::parse("fuzz.toml", text) {
        assert!(error.line >= 1 && error.column >= 1);
        assert!(error.line <= text.lines().count().max(1) + 1, "{error}");
    }
}

/// `history_check`: any bytes as a history through the checker. Promises: no panic, and on
/// histories of up to 8 operations the verdict agrees with a brute-force search over every
/// order.
pub fn history_check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(history) = History::parse(text) else {
        return;
    };
    let ops = history.operations().expect("parse validated the pairing");
    let report = check(&ops, &mut Budget::steps(1_000_000));
    if ops.len() <= 8 && report.verdict != Verdict::Undecided {
        let linearizable = report.verdict == Verdict::Linearizable;
        assert_eq!(
            linearizable,
            brute_force(&ops),
            "checker and brute force disagree on:\n{text}"
        );
    }
}

/// Whether some order of the operations explains every result: tries every permutation of the
/// definite operations and of any subset of the info ones (an info operation left out took
/// effect last, or never), keeping real-time order, over the whole history at once (no
/// per-key split, unlike the checker), with every key's value as the state.
#[must_use]
pub fn brute_force(ops: &[Operation]) -> bool {
    let ops: Vec<&Operation> = ops.iter().filter(|op| matters(op)).collect();
    search(&ops, &mut Vec::new(), &BTreeMap::new())
}

type State = BTreeMap<String, String>;

fn search(ops: &[&Operation], placed: &mut Vec<usize>, state: &State) -> bool {
    let definite_left = ops
        .iter()
        .enumerate()
        .any(|(i, op)| op.complete_position.is_some() && !placed.contains(&i));
    if !definite_left {
        return true;
    }
    for i in 0..ops.len() {
        if placed.contains(&i) {
            continue;
        }
        // Real time: nothing unplaced may have returned before this one was invoked.
        let blocked = ops.iter().enumerate().any(|(j, other)| {
            !placed.contains(&j)
                && other
                    .complete_position
                    .is_some_and(|end| end < ops[i].invoke_position)
        });
        if blocked {
            continue;
        }
        let mut next = state.clone();
        if step(&mut next, &ops[i].key, &ops[i].kind, &ops[i].outcome) {
            placed.push(i);
            if search(ops, placed, &next) {
                return true;
            }
            placed.pop();
        }
    }
    false
}

/// Applies one operation to `state`; false if it could not have returned what it did.
fn step(state: &mut State, key: &str, kind: &OpKind, outcome: &OpOutcome) -> bool {
    let current = state.get(key).cloned();
    let set = |state: &mut State, value: Option<String>| match value {
        Some(value) => state.insert(key.to_string(), value),
        None => state.remove(key),
    };
    match (kind, outcome) {
        (OpKind::Get, OpOutcome::Ok(read)) => *read == current,
        (OpKind::Get, _) => true,
        (OpKind::Put(value), _) => {
            set(state, Some(value.clone()));
            true
        }
        (OpKind::Delete, _) => {
            set(state, None);
            true
        }
        (OpKind::Append(suffix), _) => {
            set(
                state,
                Some(format!("{}{suffix}", current.unwrap_or_default())),
            );
            true
        }
        (OpKind::Cas { expected, new }, outcome) => {
            let holds = current == *expected;
            match outcome {
                OpOutcome::Fail => !holds,
                OpOutcome::Info if !holds => true,
                _ => {
                    set(state, new.clone());
                    holds
                }
            }
        }
        (OpKind::Incr(by), outcome) => {
            let sum = match &current {
                None => Some(*by),
                Some(text) => text
                    .parse::<i64>()
                    .ok()
                    .filter(|n| n.to_string() == *text)
                    .and_then(|n| n.checked_add(*by)),
            };
            match (sum, outcome) {
                (None, OpOutcome::Fail | OpOutcome::Info) => true,
                (Some(sum), OpOutcome::Ok(Some(result))) => {
                    set(state, Some(sum.to_string()));
                    sum.to_string() == *result
                }
                (Some(sum), OpOutcome::Info) => {
                    set(state, Some(sum.to_string()));
                    true
                }
                _ => false,
            }
        }
        (OpKind::Atomic(_), OpOutcome::Fail) => true,
        (OpKind::Atomic(parts), outcome) => parts.iter().enumerate().all(|(i, part)| {
            let part_outcome = match outcome {
                OpOutcome::Each(each) => each.get(i).cloned(),
                _ => Some(OpOutcome::Info),
            };
            part_outcome.is_some_and(|o| step(state, &part.key, &part.kind, &o))
        }),
    }
}
