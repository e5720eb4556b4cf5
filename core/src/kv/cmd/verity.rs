//! Verity's own commands: `CAS key expected new` (compare-and-swap on the value), `CASVER key
//! version new` (on the version `GETVER` read), `CAD key expected` (compare-and-delete, a
//! lock's release), `GETVER key` (value and version), and the version read behind `WATCH`.

use super::{Access, Args, CommandError, Context, Spec};
use crate::kv::frame::Frame;
use crate::kv::store::Deadline;
use crate::types::LogIndex;
use serde::{Deserialize, Serialize};

/// The Verity family's commands.
pub(super) const SPECS: &[Spec] = &[
    Spec {
        name: "cas",
        arity: 4,
        access: Access::Write,
        keys: (1, 1, 1),
        group: "verity",
        summary: "Sets a key to a new value only if its value is exactly the expected one; replies 1 if it did, 0 if not.",
    },
    Spec {
        name: "casver",
        arity: 4,
        access: Access::Write,
        keys: (1, 1, 1),
        group: "verity",
        summary: "Sets a key to a new value only if it exists with exactly the expected version (as GETVER returns it); replies 1 if it did, 0 if not.",
    },
    Spec {
        name: "cad",
        arity: 3,
        access: Access::Write,
        keys: (1, 1, 1),
        group: "verity",
        summary: "Deletes a key only if its value is exactly the expected one (a lock's safe release); replies 1 if it did, 0 if not.",
    },
    Spec {
        name: "getver",
        arity: 2,
        access: Access::Read,
        keys: (1, 1, 1),
        group: "verity",
        summary: "Returns a key's value and version (the log index of its last write), or nil.",
    },
];

/// What a compare-and-swap compares the key's current state against.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Expect {
    /// The key must be absent.
    Absent,
    /// The key must hold exactly these bytes.
    Value(#[serde(with = "serde_bytes")] Vec<u8>),
    /// The key must exist with exactly this version.
    Version(LogIndex),
}

/// A Verity command with its arguments.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum VerityCommand {
    /// If the key matches `expect`, set it to `new` (`None` deletes it; the deadline is
    /// cleared); replies 1 if it swapped, 0 if not.
    Cas {
        /// The key.
        key: Vec<u8>,
        /// The condition.
        expect: Expect,
        /// The new value, or `None` to delete.
        #[serde(with = "serde_bytes")]
        new: Option<Vec<u8>>,
    },
    /// `GETVER key`: `[value, version]` or nil.
    GetVer {
        /// The key.
        key: Vec<u8>,
    },
    /// The versions of `keys` (0 for an absent key), as integers: what `WATCH` remembers and
    /// `EXEC` compares. Not a client command.
    Versions {
        /// The keys.
        keys: Vec<Vec<u8>>,
    },
}

pub(super) fn parse(name: &str, args: &mut Args) -> Option<Result<super::Command, CommandError>> {
    let parsed = match name {
        "cas" => (|| {
            let (key, expected, new) = (args.word()?, args.word()?, args.word()?);
            Ok(VerityCommand::Cas {
                key,
                expect: Expect::Value(expected),
                new: Some(new),
            })
        })(),
        "casver" => (|| {
            let key = args.word()?;
            let version =
                u64::try_from(args.next_integer()?).map_err(|_| CommandError::NotInteger)?;
            Ok(VerityCommand::Cas {
                key,
                expect: Expect::Version(LogIndex(version)),
                new: Some(args.word()?),
            })
        })(),
        "cad" => (|| {
            let (key, expected) = (args.word()?, args.word()?);
            Ok(VerityCommand::Cas {
                key,
                expect: Expect::Value(expected),
                new: None,
            })
        })(),
        "getver" => args.word().map(|key| VerityCommand::GetVer { key }),
        _ => return None,
    };
    Some(parsed.map(super::Command::Verity))
}

/// A key's version as `WATCH` records it: 0 when absent.
#[must_use]
pub fn version_of(context: &Context<'_>, key: &[u8]) -> u64 {
    context.store.get(key).map_or(0, |v| v.version.0)
}

impl VerityCommand {
    pub(super) fn apply(&self, context: &mut Context<'_>) -> Frame {
        match self {
            VerityCommand::Cas { key, expect, new } => {
                let current = context.store.get(key);
                let holds = match (expect, current) {
                    (Expect::Absent, None) => true,
                    (Expect::Value(want), Some(have)) => *want == have.value,
                    (Expect::Version(want), Some(have)) => *want == have.version,
                    _ => false,
                };
                if holds {
                    match new {
                        Some(value) if value.len() as u64 > context.max_value_bytes => {
                            return CommandError::TooLarge.into();
                        }
                        Some(value) => {
                            context
                                .store
                                .set(key, value.clone(), context.index, Deadline::Clear);
                        }
                        None => {
                            context.store.remove(key);
                        }
                    }
                }
                Frame::Integer(i64::from(holds))
            }
            VerityCommand::GetVer { key } => match context.store.get(key) {
                Some(v) => Frame::Array(vec![
                    Frame::Bulk(v.value.clone()),
                    Frame::count(v.version.0),
                ]),
                None => Frame::Null,
            },
            VerityCommand::Versions { keys } => Frame::Array(
                keys.iter()
                    .map(|key| Frame::count(version_of(context, key)))
                    .collect(),
            ),
        }
    }

    pub(super) fn is_write(&self) -> bool {
        matches!(self, VerityCommand::Cas { .. })
    }

    /// The keys a read touches; `None` for a write.
    pub(super) fn read_keys(&self) -> Option<Vec<&[u8]>> {
        match self {
            VerityCommand::GetVer { key } => Some(vec![key]),
            VerityCommand::Versions { keys } => Some(keys.iter().map(Vec::as_slice).collect()),
            VerityCommand::Cas { .. } => None,
        }
    }

    pub(super) fn payload_bytes(&self) -> u64 {
        let n = |bytes: &[u8]| bytes.len() as u64;
        match self {
            VerityCommand::Cas { key, expect, new } => {
                let expected = match expect {
                    Expect::Value(value) => n(value),
                    Expect::Absent | Expect::Version(_) => 0,
                };
                n(key) + expected + new.as_deref().map_or(0, n)
            }
            VerityCommand::GetVer { key } => n(key),
            VerityCommand::Versions { keys } => keys.iter().map(|k| n(k)).sum(),
        }
    }
}
