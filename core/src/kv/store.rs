//! The key-value map itself: deterministic, ordered, versioned.

use super::command::{Command, Expect, Reply, Versioned};
use crate::types::LogIndex;
use std::collections::BTreeMap;

/// An ordered map from keys to versioned values. Applying the same commands at the same indexes
/// always yields the same map and the same replies.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Store {
    entries: BTreeMap<Vec<u8>, Versioned>,
}

impl Store {
    /// Applies `command` as the entry at `index` and returns its reply. Writes set the key's
    /// version to `index`.
    pub fn apply(&mut self, index: LogIndex, command: &Command) -> Reply {
        match command {
            Command::Get { key } => Reply::Value(self.entries.get(key).cloned()),
            Command::Put { key, value } => {
                self.write(key, value.clone(), index);
                Reply::Written { version: index }
            }
            Command::Delete { key } => Reply::Deleted {
                existed: self.entries.remove(key).is_some(),
            },
            Command::Cas { key, expect, new } => {
                let current = self.entries.get(key);
                let holds = match (expect, current) {
                    (Expect::Absent, None) => true,
                    (Expect::Value(want), Some(have)) => *want == have.value,
                    (Expect::Version(want), Some(have)) => *want == have.version,
                    _ => false,
                };
                if holds {
                    match new {
                        Some(value) => self.write(key, value.clone(), index),
                        None => {
                            self.entries.remove(key);
                        }
                    }
                }
                Reply::Cas {
                    swapped: holds,
                    current: self.entries.get(key).cloned(),
                }
            }
            Command::Append { key, value } => {
                let mut joined = self
                    .entries
                    .remove(key)
                    .map(|old| old.value)
                    .unwrap_or_default();
                joined.extend_from_slice(value);
                self.write(key, joined, index);
                Reply::Written { version: index }
            }
        }
    }

    /// The current value of `key`, if any.
    #[must_use]
    pub fn get(&self, key: &[u8]) -> Option<&Versioned> {
        self.entries.get(key)
    }

    /// Number of keys present.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no key is present.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn write(&mut self, key: &[u8], value: Vec<u8>, version: LogIndex) {
        let previous = self
            .entries
            .insert(key.to_vec(), Versioned { value, version });
        if let Some(previous) = previous {
            assert!(
                previous.version < version,
                "versions must grow: {} then {}",
                previous.version,
                version
            );
        }
    }
}
