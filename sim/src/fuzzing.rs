//! Fuzz target bodies (feature `fuzzing`) for the simulator's parsers and checker. Each takes
//! raw bytes, so libFuzzer (`fuzz/`) and the stable corpus test call the same code.

use crate::checker::{Budget, Verdict, check, matters};
use crate::history::{History, OpKind, OpOutcome, Operation};
use crate::scenario::Scenario;

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
/// effect last, or never), keeping real-time order, on each key separately.
#[must_use]
pub fn brute_force(ops: &[Operation]) -> bool {
    let mut keys: Vec<&str> = ops.iter().map(|op| op.key.as_str()).collect();
    keys.sort_unstable();
    keys.dedup();
    keys.into_iter().all(|key| {
        let key_ops: Vec<&Operation> = ops
            .iter()
            .filter(|op| op.key == key && matters(op))
            .collect();
        search(&key_ops, &mut Vec::new(), None)
    })
}

fn search(ops: &[&Operation], placed: &mut Vec<usize>, state: Option<String>) -> bool {
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
        if let Some(next) = step(&state, ops[i]) {
            placed.push(i);
            if search(ops, placed, next) {
                return true;
            }
            placed.pop();
        }
    }
    false
}

/// The key's state after `op`, or `None` if `op` could not have returned what it did.
fn step(state: &Option<String>, op: &Operation) -> Option<Option<String>> {
    match (&op.kind, &op.outcome) {
        (OpKind::Get, OpOutcome::Ok(read)) => (read == state).then(|| state.clone()),
        (OpKind::Get, _) => Some(state.clone()),
        (OpKind::Put(value), _) => Some(Some(value.clone())),
        (OpKind::Delete, _) => Some(None),
        (OpKind::Append(suffix), _) => {
            Some(Some(format!("{}{suffix}", state.as_deref().unwrap_or(""))))
        }
        (OpKind::Cas { expected, new }, outcome) => {
            let holds = state == expected;
            match outcome {
                OpOutcome::Ok(_) => holds.then(|| new.clone()),
                OpOutcome::Fail => (!holds).then(|| state.clone()),
                OpOutcome::Info => Some(if holds { new.clone() } else { state.clone() }),
            }
        }
    }
}
