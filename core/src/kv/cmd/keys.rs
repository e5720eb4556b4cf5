//! Commands on keys as such: `DEL`/`UNLINK`, `EXISTS`, `TYPE`, `DBSIZE`, `KEYS`, `SCAN`,
//! `RANDOMKEY`, `FLUSHDB`/`FLUSHALL`. Multi-key commands are one entry, so atomic.

use super::glob;
use super::{Access, Args, CommandError, Context, Spec};
use crate::kv::frame::Frame;
use crate::kv::store::mix;
use serde::{Deserialize, Serialize};

const fn spec(
    name: &'static str,
    arity: i64,
    access: Access,
    keys: (i64, i64, i64),
    summary: &'static str,
) -> Spec {
    Spec {
        name,
        arity,
        access,
        keys,
        group: "generic",
        summary,
    }
}

/// The key family's commands.
pub(super) const SPECS: &[Spec] = &[
    spec(
        "del",
        -2,
        Access::Write,
        (1, -1, 1),
        "Deletes one or more keys.",
    ),
    spec(
        "unlink",
        -2,
        Access::Write,
        (1, -1, 1),
        "Asynchronously deletes one or more keys.",
    ),
    spec(
        "exists",
        -2,
        Access::Read,
        (1, -1, 1),
        "Determines whether one or more keys exist.",
    ),
    spec(
        "type",
        2,
        Access::Read,
        (1, 1, 1),
        "Determines the type of value stored at a key.",
    ),
    spec(
        "dbsize",
        1,
        Access::Read,
        (0, 0, 0),
        "Returns the number of keys in the database.",
    ),
    spec(
        "keys",
        2,
        Access::Read,
        (0, 0, 0),
        "Returns all key names that match a pattern.",
    ),
    spec(
        "scan",
        -2,
        Access::Read,
        (0, 0, 0),
        "Iterates over the key names in the database.",
    ),
    spec(
        "randomkey",
        1,
        Access::Read,
        (0, 0, 0),
        "Returns a random key name from the database.",
    ),
    spec(
        "flushdb",
        -1,
        Access::Write,
        (0, 0, 0),
        "Remove all keys from the current database.",
    ),
    spec(
        "flushall",
        -1,
        Access::Write,
        (0, 0, 0),
        "Removes all keys from all databases.",
    ),
];

/// Most keys one `SCAN` step may be asked to visit (`COUNT` is clamped to it), so one step is
/// bounded work.
pub const MAX_SCAN_COUNT: u64 = 100_000;

/// A key command with its arguments.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KeyCommand {
    /// `DEL`/`UNLINK key [key ...]`: replies with how many existed.
    Del {
        /// The keys.
        keys: Vec<Vec<u8>>,
    },
    /// `EXISTS key [key ...]`: a key named twice counts twice, as in Redis.
    Exists {
        /// The keys.
        keys: Vec<Vec<u8>>,
    },
    /// `TYPE key`: `string` or `none` (Verity stores strings only).
    Type {
        /// The key.
        key: Vec<u8>,
    },
    /// `DBSIZE`
    DbSize,
    /// `KEYS pattern`
    Keys {
        /// The glob pattern.
        pattern: Vec<u8>,
    },
    /// `SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]`
    Scan {
        /// Where to continue (0 starts).
        cursor: u64,
        /// Only keys matching this glob.
        pattern: Option<Vec<u8>>,
        /// How many keys to visit, at least.
        count: u64,
        /// Only keys of this type (`string`: all; anything else: none).
        only_strings: Option<bool>,
    },
    /// `RANDOMKEY`: a key picked by the entry's index, so every replica picks the same.
    RandomKey,
    /// `FLUSHDB`/`FLUSHALL [ASYNC|SYNC]`
    FlushAll,
}

pub(super) fn parse(name: &str, args: &mut Args) -> Option<Result<super::Command, CommandError>> {
    let parsed = match name {
        "del" | "unlink" => Ok(KeyCommand::Del { keys: args.drain() }),
        "exists" => Ok(KeyCommand::Exists { keys: args.drain() }),
        "type" => args.word().map(|key| KeyCommand::Type { key }),
        "dbsize" => Ok(KeyCommand::DbSize),
        "keys" => args.word().map(|pattern| KeyCommand::Keys { pattern }),
        "scan" => parse_scan(args),
        "randomkey" => Ok(KeyCommand::RandomKey),
        "flushdb" | "flushall" => (|| {
            if args.remaining() > 0 && !matches!(args.next_keyword()?.as_str(), "async" | "sync") {
                return Err(CommandError::Syntax);
            }
            Ok(KeyCommand::FlushAll)
        })(),
        _ => return None,
    };
    Some(parsed.map(super::Command::Keys))
}

fn parse_scan(args: &mut Args) -> Result<KeyCommand, CommandError> {
    let cursor = std::str::from_utf8(&args.word()?)
        .ok()
        .and_then(|text| text.parse::<u64>().ok())
        .ok_or(CommandError::InvalidCursor)?;
    let (mut pattern, mut count, mut only_strings) = (None, 10, None);
    while args.remaining() > 0 {
        match args.next_keyword()?.as_str() {
            "match" => pattern = Some(args.word()?),
            "count" => {
                count = u64::try_from(args.next_integer()?)
                    .ok()
                    .filter(|&c| c >= 1)
                    .ok_or(CommandError::Syntax)?
                    .min(MAX_SCAN_COUNT);
            }
            "type" => only_strings = Some(args.next_keyword()? == "string"),
            _ => return Err(CommandError::Syntax),
        }
    }
    Ok(KeyCommand::Scan {
        cursor,
        pattern,
        count,
        only_strings,
    })
}

impl KeyCommand {
    pub(super) fn apply(&self, context: &mut Context<'_>) -> Frame {
        let max_value_bytes = context.max_value_bytes;
        let store = &mut *context.store;
        match self {
            KeyCommand::Del { keys } => Frame::count(
                keys.iter()
                    .filter(|key| store.remove(key).is_some())
                    .count(),
            ),
            KeyCommand::Exists { keys } => {
                Frame::count(keys.iter().filter(|key| store.get(key).is_some()).count())
            }
            KeyCommand::Type { key } => Frame::Simple(
                if store.get(key).is_some() {
                    "string"
                } else {
                    "none"
                }
                .to_string(),
            ),
            KeyCommand::DbSize => Frame::count(store.len()),
            KeyCommand::Keys { pattern } => {
                let matching = || store.keys().filter(|key| glob::matches(pattern, key));
                let bytes = matching().map(|key| key.len() as u64).sum();
                if let Err(error) = super::reply_fits(bytes, max_value_bytes) {
                    return error.into();
                }
                Frame::Array(matching().map(|key| Frame::Bulk(key.clone())).collect())
            }
            KeyCommand::Scan {
                cursor,
                pattern,
                count,
                only_strings,
            } => {
                let (keys, next) =
                    store.scan(*cursor, usize::try_from(*count).unwrap_or(usize::MAX));
                let keys: Vec<_> = keys
                    .into_iter()
                    .filter(|key| pattern.as_ref().is_none_or(|p| glob::matches(p, key)))
                    .filter(|_| only_strings.unwrap_or(true))
                    .collect();
                let bytes = keys.iter().map(|key| key.len() as u64).sum();
                if let Err(error) = super::reply_fits(bytes, max_value_bytes) {
                    return error.into();
                }
                let keys = keys
                    .into_iter()
                    .map(|key| Frame::Bulk(key.clone()))
                    .collect();
                Frame::Array(vec![Frame::text(next.to_string()), Frame::Array(keys)])
            }
            KeyCommand::RandomKey => Frame::optional(store.key_near(mix(context.index.0)).cloned()),
            KeyCommand::FlushAll => {
                store.clear();
                Frame::ok()
            }
        }
    }

    pub(super) fn is_write(&self) -> bool {
        matches!(self, KeyCommand::Del { .. } | KeyCommand::FlushAll)
    }

    /// The keys a read of named keys touches; `None` for a write and for reads of the whole
    /// keyspace (`KEYS`, `SCAN`, `DBSIZE`, `RANDOMKEY`).
    pub(super) fn read_keys(&self) -> Option<Vec<&[u8]>> {
        match self {
            KeyCommand::Exists { keys } => Some(keys.iter().map(Vec::as_slice).collect()),
            KeyCommand::Type { key } => Some(vec![key]),
            _ => None,
        }
    }

    pub(super) fn payload_bytes(&self) -> u64 {
        match self {
            KeyCommand::Del { keys } | KeyCommand::Exists { keys } => {
                keys.iter().map(|k| k.len() as u64).sum()
            }
            KeyCommand::Type { key } | KeyCommand::Keys { pattern: key } => key.len() as u64,
            KeyCommand::Scan { pattern, .. } => pattern.as_ref().map_or(0, |p| p.len() as u64),
            KeyCommand::DbSize | KeyCommand::RandomKey | KeyCommand::FlushAll => 0,
        }
    }
}
