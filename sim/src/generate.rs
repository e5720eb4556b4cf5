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
                invoke(
                    &mut history,
                    &mut slots[slot],
                    process_of_slot[slot],
                    key,
                    kind,
                    time,
                );
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

/// Records that `process` invoked `kind` on `key` at `time`; its `slot` then waits for it.
fn invoke(
    history: &mut History,
    slot: &mut Option<Pending>,
    process: u64,
    key: String,
    kind: OpKind,
    time: u64,
) {
    history
        .events
        .push(invoke_event(process, &key, &kind, time));
    *slot = Some(Pending {
        process,
        key,
        kind,
        outcome: None,
    });
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

/// Shape of a wide history: many processes appending to and reading a few keys, the workload
/// of a Jepsen or Porcupine key-value test.
#[derive(Clone, Copy, Debug)]
pub struct Wide {
    /// Concurrent processes (a process whose operation ends as `info` retires, and a new
    /// process number takes its slot).
    pub processes: u64,
    /// Distinct keys, `k0` to `k{keys-1}`.
    pub keys: u64,
    /// Operations in total.
    pub operations: u64,
    /// Out of 1000 writes, how many end as `info`. Each such write takes effect at a random
    /// later moment, possibly long after its process retired, or never. The last key never
    /// gets one when a stale read is planted on it.
    pub info_per_mille: u64,
    /// Plant one stale read on the last key, `k{keys-1}` (the last a key-by-key search
    /// would reach): a read that starts after another read of that key ended, yet returns an
    /// older value. That key then only sees appends and reads, so its values only grow, and
    /// the history is not linearizable by construction.
    pub stale_read: bool,
    /// Open with a burst on key `k0` that is linearizable but hard to search: appends, then
    /// a put invoked last, all concurrent, and after them a compare-and-swap that expected
    /// the put's value followed by every append. A search that tries operations in
    /// invocation order tries the appends before the put in every order and subset first
    /// (billions of configurations).
    pub hard_key: bool,
}

/// Appends in the hard burst of [`Wide::hard_key`].
const HARD_APPENDS: u64 = 14;

/// One millisecond in a history's nanosecond times.
const MS: u64 = 1_000_000;

impl Wide {
    /// The shape of the benchmark's and the tests' wide histories, after the public 50-client
    /// key-value histories: 50 processes, 10 keys, 2,000 operations, 3% of writes `info`.
    #[must_use]
    pub fn fifty_clients(stale_read: bool, hard_key: bool) -> Wide {
        Wide {
            processes: 50,
            keys: 10,
            operations: 2000,
            info_per_mille: 30,
            stale_read,
            hard_key,
        }
    }
}

/// An info write that has not taken effect yet.
struct Lingering {
    key: String,
    kind: OpKind,
    /// The generator step at which it takes effect.
    due: u64,
}

/// Generates a wide history of `shape` from `seed`: appends (60%), reads (30%) and puts (10%)
/// on random keys. Linearizable by construction unless `shape.stale_read`, in which case
/// exactly the last key is not. Event times are milliseconds of a virtual clock.
#[must_use]
pub fn wide_history(shape: Wide, seed: u64) -> History {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut below = |n: u64| rng.next_u64() % n.max(1);
    let keys = shape.keys.max(1);
    // Each key's value as the appended (or put) tokens, so a stale read can return a prefix.
    let mut state: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut history = History::default();
    let mut slots: Vec<Option<Pending>> = vec![None; shape.processes as usize];
    let mut process_of_slot: Vec<u64> = (0..shape.processes).collect();
    let mut next_process = shape.processes;
    let mut lingering: Vec<Lingering> = Vec::new();
    // The planted stale read: tokens the last completed read of the stale key saw, then the
    // read that returns one fewer.
    let stale_key = format!("k{}", keys - 1);
    let mut seen_on_stale_key = 0usize;
    let mut stale_slot: Option<(usize, usize)> = None;
    let mut planted = !shape.stale_read;
    let (mut invoked, mut step) = (0u64, 0u64);
    if shape.hard_key {
        let burst = hard_burst(&mut next_process);
        for (kind, process) in &burst {
            step += 1;
            history
                .events
                .push(invoke_event(*process, "k0", kind, step * MS));
        }
        for (kind, process) in burst.iter().rev() {
            step += 1;
            apply_tokens(&mut state, "k0", kind);
            history.events.push(completion_event(
                *process,
                "k0",
                kind,
                &OpOutcome::Ok(None),
                step * MS,
            ));
        }
        // A compare-and-swap observes the burst's result as a read would, and its presence
        // keeps the checker from merging the states the appends pass through.
        let swap = OpKind::Cas {
            expected: Some(state["k0"].concat()),
            new: Some("swapped.".to_string()),
        };
        let swapper = next_process;
        next_process += 1;
        history
            .events
            .push(invoke_event(swapper, "k0", &swap, (step + 1) * MS));
        history.events.push(completion_event(
            swapper,
            "k0",
            &swap,
            &OpOutcome::Ok(None),
            (step + 2) * MS,
        ));
        state.insert("k0".to_string(), vec!["swapped.".to_string()]);
        step += 2;
    }
    // An absent key reads as null, not as the empty string.
    let value = |tokens: &[String]| (!tokens.is_empty()).then(|| tokens.concat());
    while invoked < shape.operations || slots.iter().any(Option::is_some) {
        step += 1;
        let (due, later): (Vec<Lingering>, Vec<Lingering>) =
            lingering.drain(..).partition(|l| l.due <= step);
        lingering = later;
        for write in due {
            apply_tokens(&mut state, &write.key, &write.kind);
        }
        let slot = below(shape.processes) as usize;
        match &mut slots[slot] {
            None if invoked < shape.operations => {
                invoked += 1;
                let key = format!("k{}", below(keys));
                let token = format!("x {} {invoked} y", process_of_slot[slot]);
                let kind = match below(10) {
                    0..=5 => OpKind::Append(token),
                    6..=8 => OpKind::Get,
                    _ if shape.stale_read && key == stale_key => OpKind::Get,
                    _ => OpKind::Put(token),
                };
                if !planted && key == stale_key && kind == OpKind::Get && seen_on_stale_key > 0 {
                    planted = true;
                    stale_slot = Some((slot, seen_on_stale_key - 1));
                }
                let process = process_of_slot[slot];
                invoke(
                    &mut history,
                    &mut slots[slot],
                    process,
                    key,
                    kind,
                    step * MS,
                );
            }
            None => {}
            Some(pending) => {
                let clean = shape.stale_read && pending.key == stale_key;
                let info =
                    !clean && !pending.kind.is_read_only() && below(1000) < shape.info_per_mille;
                let outcome = if info {
                    if below(2) == 0 {
                        lingering.push(Lingering {
                            key: pending.key.clone(),
                            kind: pending.kind.clone(),
                            due: step + below(20 * shape.processes),
                        });
                    }
                    OpOutcome::Info
                } else {
                    let tokens = state.get(&pending.key).cloned().unwrap_or_default();
                    apply_tokens(&mut state, &pending.key, &pending.kind);
                    match stale_slot {
                        Some((stale, shown)) if stale == slot => {
                            stale_slot = None;
                            OpOutcome::Ok(value(&tokens[..shown]))
                        }
                        _ if pending.kind == OpKind::Get => {
                            if pending.key == stale_key {
                                seen_on_stale_key = tokens.len();
                            }
                            OpOutcome::Ok(value(&tokens))
                        }
                        _ => OpOutcome::Ok(None),
                    }
                };
                history.events.push(completion_event(
                    pending.process,
                    &pending.key,
                    &pending.kind,
                    &outcome,
                    step * MS,
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

/// The operations of the hard burst with their processes, in invocation order: the appends,
/// then the put. The put takes effect first, then the appends in reverse invocation order.
fn hard_burst(next_process: &mut u64) -> Vec<(OpKind, u64)> {
    let mut burst: Vec<(OpKind, u64)> = (0..HARD_APPENDS)
        .map(|i| (OpKind::Append(format!("h{i}.")), *next_process + i))
        .collect();
    burst.push((
        OpKind::Put("hard.".to_string()),
        *next_process + HARD_APPENDS,
    ));
    *next_process += HARD_APPENDS + 1;
    burst
}

/// Applies an append, put or read to a key held as tokens.
fn apply_tokens(state: &mut BTreeMap<String, Vec<String>>, key: &str, kind: &OpKind) {
    match kind {
        OpKind::Append(token) => state
            .entry(key.to_string())
            .or_default()
            .push(token.clone()),
        OpKind::Put(token) => {
            state.insert(key.to_string(), vec![token.clone()]);
        }
        _ => {}
    }
}
