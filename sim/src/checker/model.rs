//! The sequential specification of one key: what each operation does to the key's state and
//! which results it may return. Porcupine calls this the model's `Step`.

use crate::history::{OpKind, OpOutcome, Operation};
use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::BuildHasherDefault;

/// A fixed-key hasher: hashing is deterministic across runs (only used for lookups, never for
/// iteration order).
pub type FixedState = BuildHasherDefault<DefaultHasher>;

/// Interned key states (`None` = absent), so the search handles small integer ids.
#[derive(Debug, Default)]
pub struct States {
    values: Vec<Option<String>>,
    ids: HashMap<Option<String>, u32, FixedState>,
}

/// The id of an interned state.
pub type StateId = u32;

impl States {
    /// The id of the absent state, interned first.
    pub fn new() -> (States, StateId) {
        let mut states = States::default();
        let absent = states.intern(None);
        (states, absent)
    }

    fn intern(&mut self, value: Option<String>) -> StateId {
        if let Some(&id) = self.ids.get(&value) {
            return id;
        }
        let id = u32::try_from(self.values.len()).expect("fewer than 2^32 distinct states");
        self.values.push(value.clone());
        self.ids.insert(value, id);
        id
    }

    /// The value of state `id`.
    pub fn value(&self, id: StateId) -> Option<&str> {
        self.values[id as usize].as_deref()
    }

    /// Applies `op` in state `state`: the state after it, or `None` if `op` cannot have
    /// returned what it returned in that state.
    pub fn step(&mut self, state: StateId, op: &Operation) -> Option<StateId> {
        let current = self.value(state);
        match (&op.kind, &op.outcome) {
            (OpKind::Get, OpOutcome::Ok(read)) => (current == read.as_deref()).then_some(state),
            (OpKind::Get, _) => Some(state),
            (OpKind::Put(value), _) => Some(self.intern(Some(value.clone()))),
            (OpKind::Delete, _) => Some(self.intern(None)),
            (OpKind::Cas { expected, new }, outcome) => {
                let holds = current == expected.as_deref();
                match outcome {
                    OpOutcome::Ok(_) => holds.then(|| self.intern(new.clone())),
                    OpOutcome::Fail => (!holds).then_some(state),
                    OpOutcome::Info if holds => Some(self.intern(new.clone())),
                    OpOutcome::Info => Some(state),
                }
            }
            (OpKind::Append(suffix), _) => {
                let joined = format!("{}{suffix}", current.unwrap_or(""));
                Some(self.intern(Some(joined)))
            }
        }
    }
}
