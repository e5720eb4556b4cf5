//! Random concurrent histories that are linearizable by construction, for checker tests and
//! benchmarks.
//!
//! Processes invoke operations on random keys; each operation takes effect on a reference
//! key-value map at a random moment between its invocation and its completion, and completes
//! with the result it had then. Some operations end as `info` (they may or may not have taken
//! effect), after which their process retires and a new process number takes its place.
//!
//! Besides the five single-key operations there are increments and two-key transactions; a
//! transaction touches a key and its pair partner (`k0`+`k1`, `k2`+`k3`, …), so key groups stay
//! small.

use crate::history::{History, OpKind, OpOutcome, Part, completion_event, invoke_event};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use std::collections::BTreeMap;
use verity_core::kv::cmd::parse_integer;

/// Shape of a generated history.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    /// Concurrent processes.
    pub processes: u64,
    /// Distinct keys.
    pub keys: u64,
    /// Operations in total.
    pub operations: u64,
    /// Out of 1000 operations, how many end as `info`.
    pub info_per_mille: u64,
}

#[derive(Clone)]
struct Pending {
    process: u64,
    key: String,
    kind: OpKind,
    outcome: Option<OpOutcome>,
}

/// Generates a linearizable history of `shape` from `seed`.
#[must_use]
pub fn linearizable_history(shape: Shape, seed: u64) -> History {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut below = |n: u64| rng.next_u64() % n.max(1);
    let mut state: BTreeMap<String, String> = BTreeMap::new();
    let mut history = History::default();
    let mut slots: Vec<Option<Pending>> = vec![None; shape.processes as usize];
    let mut process_of_slot: Vec<u64> = (0..shape.processes).collect();
    let mut next_process = shape.processes;
    let (mut invoked, mut time, mut unique) = (0u64, 0u64, 0u64);
    while invoked < shape.operations || slots.iter().any(Option::is_some) {
        time += 1 + below(1000);
        let slot = below(shape.processes) as usize;
        match &mut slots[slot] {
            None if invoked < shape.operations => {
                invoked += 1;
                unique += 1;
                let index = below(shape.keys);
                let key = format!("k{index}");
                let current = state.get(&key).cloned();
                let kind = match below(12) {
                    0..=3 => OpKind::Get,
                    4..=5 => OpKind::Put(format!("v{unique}")),
                    6 => OpKind::Delete,
                    7..=8 => OpKind::Cas {
                        expected: if below(2) == 0 {
                            current
                        } else {
                            Some(format!("v{}", below(unique)))
                        },
                        new: Some(format!("v{unique}")),
                    },
                    9 => OpKind::Append(format!("a{unique}")),
                    10 => OpKind::Incr(1 + below(3) as i64),
                    _ => OpKind::Atomic(vec![
                        Part {
                            key: key.clone(),
                            kind: OpKind::Put(format!("v{unique}")),
                        },
                        Part {
                            key: format!("k{}", (index ^ 1).min(shape.keys.max(1) - 1)),
                            kind: if below(2) == 0 {
                                OpKind::Get
                            } else {
                                OpKind::Incr(1)
                            },
                        },
                    ]),
                };
                history
                    .events
                    .push(invoke_event(process_of_slot[slot], &key, &kind, time));
                slots[slot] = Some(Pending {
                    process: process_of_slot[slot],
                    key,
                    kind,
                    outcome: None,
                });
            }
            None => {}
            Some(pending) if pending.outcome.is_none() => {
                pending.outcome = Some(apply(&mut state, &pending.key, &pending.kind));
            }
            Some(pending) => {
                let info = below(1000) < shape.info_per_mille;
                let outcome = if info {
                    OpOutcome::Info
                } else {
                    pending.outcome.clone().expect("took effect")
                };
                history.events.push(completion_event(
                    pending.process,
                    &pending.key,
                    &pending.kind,
                    &outcome,
                    time,
                ));
                if info {
                    process_of_slot[slot] = next_process;
                    next_process += 1;
                }
                slots[slot] = None;
            }
        }
    }
    history
}

/// Applies `kind` to `key` in `state`: its outcome.
fn apply(state: &mut BTreeMap<String, String>, key: &str, kind: &OpKind) -> OpOutcome {
    match kind {
        OpKind::Get => OpOutcome::Ok(state.get(key).cloned()),
        OpKind::Put(value) => {
            state.insert(key.to_string(), value.clone());
            OpOutcome::Ok(None)
        }
        OpKind::Delete => {
            state.remove(key);
            OpOutcome::Ok(None)
        }
        OpKind::Cas { expected, new } => {
            if state.get(key) != expected.as_ref() {
                return OpOutcome::Fail;
            }
            match new {
                Some(value) => state.insert(key.to_string(), value.clone()),
                None => state.remove(key),
            };
            OpOutcome::Ok(None)
        }
        OpKind::Append(suffix) => {
            state.entry(key.to_string()).or_default().push_str(suffix);
            OpOutcome::Ok(None)
        }
        OpKind::Incr(by) => {
            let current = state
                .get(key)
                .map_or(Some(0), |v| parse_integer(v.as_bytes()));
            match current.and_then(|n| n.checked_add(*by)) {
                Some(sum) => {
                    state.insert(key.to_string(), sum.to_string());
                    OpOutcome::Ok(Some(sum.to_string()))
                }
                None => OpOutcome::Fail,
            }
        }
        OpKind::Atomic(parts) => OpOutcome::Each(
            parts
                .iter()
                .map(|part| apply(state, &part.key, &part.kind))
                .collect(),
        ),
    }
}
