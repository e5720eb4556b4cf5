//! The sequential specification of a group of keys: what each operation does to the keys'
//! state and which results it may return. Porcupine calls this the model's `Step`.
//!
//! Operations on one key form a group of one key. An atomic operation over several keys (a
//! transaction, `MSET`, `MGET`) joins its keys into one group, which is then checked as one
//! object whose state is every key's value.

use crate::history::{OpKind, OpOutcome, Operation};
use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::BuildHasherDefault;
use std::rc::Rc;
use verity_core::kv::cmd::parse_integer;

/// A fixed-key hasher: hashing is deterministic across runs (only used for lookups, never for
/// iteration order).
pub type FixedState = BuildHasherDefault<DefaultHasher>;

/// A group's state: each key's value in the group's key order (`None` = absent). Shared
/// between the id table and the lookup map, so each state's strings are stored once.
type Values = Rc<[Option<String>]>;

/// Interned group states, so the search handles small integer ids.
#[derive(Debug)]
pub struct States {
    keys: Vec<String>,
    values: Vec<Values>,
    ids: HashMap<Values, u32, FixedState>,
}

/// The id of an interned state.
pub type StateId = u32;

impl States {
    /// The states of the group of `keys` (sorted, distinct), and the id of the state where
    /// every key is absent, interned first.
    pub fn new(keys: Vec<String>) -> (States, StateId) {
        debug_assert!(
            keys.windows(2).all(|w| w[0] < w[1]),
            "sorted, distinct keys"
        );
        let absent: Values = vec![None; keys.len()].into();
        let mut states = States {
            keys,
            values: Vec::new(),
            ids: HashMap::default(),
        };
        let absent = states.intern(absent);
        (states, absent)
    }

    /// The value of the group's only key in `state`.
    ///
    /// # Panics
    /// If the group has more than one key.
    pub fn only(&self, state: StateId) -> Option<&str> {
        let values = &self.values[state as usize];
        assert_eq!(values.len(), 1, "a group of one key");
        values[0].as_deref()
    }

    fn intern(&mut self, values: Values) -> StateId {
        if let Some(&id) = self.ids.get(&values) {
            return id;
        }
        let id = u32::try_from(self.values.len()).expect("fewer than 2^32 distinct states");
        self.values.push(Rc::clone(&values));
        self.ids.insert(values, id);
        id
    }

    fn index(&self, key: &str) -> usize {
        self.keys
            .binary_search_by(|k| k.as_str().cmp(key))
            .unwrap_or_else(|_| panic!("key {key:?} is outside its group {:?}", self.keys))
    }

    /// Applies `op` in state `state`: the state after it, or `None` if `op` cannot have
    /// returned what it returned in that state.
    pub fn step(&mut self, state: StateId, op: &Operation) -> Option<StateId> {
        let current = &self.values[state as usize];
        let after = match (&op.kind, &op.outcome) {
            (OpKind::Atomic(_), OpOutcome::Fail) => return Some(state),
            (OpKind::Atomic(parts), outcome) => {
                let mut values = current.to_vec();
                for (i, part) in parts.iter().enumerate() {
                    let part_outcome = match outcome {
                        OpOutcome::Each(each) => each.get(i)?,
                        _ => &OpOutcome::Info,
                    };
                    let at = self.index(&part.key);
                    values[at] = step_one(values[at].as_deref(), &part.kind, part_outcome)?;
                }
                values.into()
            }
            (kind, outcome) => {
                let at = self.index(&op.key);
                let value = step_one(current[at].as_deref(), kind, outcome)?;
                if value.as_deref() == current[at].as_deref() {
                    return Some(state);
                }
                let mut values = current.to_vec();
                values[at] = value;
                values.into()
            }
        };
        Some(self.intern(after))
    }
}

/// What a single-key operation does to the key's value `current`: the value after it, or
/// `None` if it cannot have ended with `outcome` from there. An `Info` outcome may be any
/// result: the operation took effect with whatever it found.
fn step_one(current: Option<&str>, kind: &OpKind, outcome: &OpOutcome) -> Option<Option<String>> {
    let unchanged = || Some(current.map(str::to_string));
    match (kind, outcome) {
        (OpKind::Get, OpOutcome::Ok(read)) => (current == read.as_deref()).then(unchanged)?,
        (OpKind::Get, _) => unchanged(),
        (OpKind::Put(value), _) => Some(Some(value.clone())),
        (OpKind::Delete, _) => Some(None),
        (OpKind::Cas { expected, new }, outcome) => {
            let holds = current == expected.as_deref();
            match outcome {
                OpOutcome::Fail => (!holds).then(unchanged)?,
                OpOutcome::Info if !holds => unchanged(),
                _ => holds.then(|| new.clone()),
            }
        }
        (OpKind::Append(suffix), _) => Some(Some(format!("{}{suffix}", current.unwrap_or("")))),
        (OpKind::Incr(by), outcome) => {
            let sum = integer(current).and_then(|n| n.checked_add(*by));
            match (sum, outcome) {
                (None, OpOutcome::Fail | OpOutcome::Info) => unchanged(),
                (Some(sum), OpOutcome::Ok(result)) => {
                    let sum = sum.to_string();
                    (result.as_deref() == Some(sum.as_str())).then_some(Some(sum))
                }
                (Some(sum), OpOutcome::Info) => Some(Some(sum.to_string())),
                _ => None,
            }
        }
        (OpKind::Atomic(_), _) => unreachable!("a part is never atomic itself"),
    }
}

/// The value as Redis's `INCR` reads it: absent is 0, otherwise Redis's strict integer syntax.
/// `None`: not an integer.
fn integer(value: Option<&str>) -> Option<i64> {
    value.map_or(Some(0), |text| parse_integer(text.as_bytes()))
}
