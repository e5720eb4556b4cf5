//! String commands: `GET`, `SET` and its variants, ranges, `APPEND`, `MGET`, `MSET`.

use super::{Access, Args, CommandError, Context, Spec};
use crate::kv::frame::Frame;
use crate::kv::store::Deadline;
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
        group: "string",
        summary,
    }
}

/// The string family's commands.
pub(super) const SPECS: &[Spec] = &[
    spec(
        "get",
        2,
        Access::Read,
        (1, 1, 1),
        "Returns the string value of a key.",
    ),
    spec(
        "set",
        -3,
        Access::Write,
        (1, 1, 1),
        "Sets the string value of a key, ignoring its type. The key is created if it doesn't exist.",
    ),
    spec(
        "setnx",
        3,
        Access::Write,
        (1, 1, 1),
        "Set the string value of a key only when the key doesn't exist.",
    ),
    spec(
        "setex",
        4,
        Access::Write,
        (1, 1, 1),
        "Sets the string value and expiration time of a key. Creates the key if it doesn't exist.",
    ),
    spec(
        "psetex",
        4,
        Access::Write,
        (1, 1, 1),
        "Sets both string value and expiration time in milliseconds of a key. The key is created if it doesn't exist.",
    ),
    spec(
        "getset",
        3,
        Access::Write,
        (1, 1, 1),
        "Returns the previous string value of a key after setting it to a new value.",
    ),
    spec(
        "getdel",
        2,
        Access::Write,
        (1, 1, 1),
        "Returns the string value of a key after deleting the key.",
    ),
    spec(
        "getex",
        -2,
        Access::Write,
        (1, 1, 1),
        "Returns the string value of a key after setting its expiration time.",
    ),
    spec(
        "strlen",
        2,
        Access::Read,
        (1, 1, 1),
        "Returns the length of a string value.",
    ),
    spec(
        "getrange",
        4,
        Access::Read,
        (1, 1, 1),
        "Returns a substring of the string stored at a key.",
    ),
    spec(
        "substr",
        4,
        Access::Read,
        (1, 1, 1),
        "Returns a substring from a string value.",
    ),
    spec(
        "setrange",
        4,
        Access::Write,
        (1, 1, 1),
        "Overwrites a part of a string value with another by an offset. Creates the key if it doesn't exist.",
    ),
    spec(
        "append",
        3,
        Access::Write,
        (1, 1, 1),
        "Appends a string to the value of a key. Creates the key if it doesn't exist.",
    ),
    spec(
        "mget",
        -2,
        Access::Read,
        (1, -1, 1),
        "Atomically returns the string values of one or more keys.",
    ),
    spec(
        "mset",
        -3,
        Access::Write,
        (1, -1, 2),
        "Atomically creates or modifies the string values of one or more keys.",
    ),
    spec(
        "msetnx",
        -3,
        Access::Write,
        (1, -1, 2),
        "Atomically modifies the string values of one or more keys only when all keys don't exist.",
    ),
];

/// Which state of the key a `SET` requires.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SetCondition {
    /// Always write.
    Always,
    /// `NX`: only if the key is absent.
    IfAbsent,
    /// `XX`: only if the key exists.
    IfPresent,
}

/// The deadline a write asks for, before it is resolved against the entry's time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SetExpiry {
    /// No option: the key persists.
    Persist,
    /// `KEEPTTL`: keep the current deadline.
    Keep,
    /// `EX`/`PX`: this many milliseconds after the entry's time (positive).
    AfterMs(u64),
    /// `EXAT`/`PXAT`: at this Unix time in milliseconds (positive).
    AtMs(u64),
}

impl SetExpiry {
    /// Reads the value of an `EX`/`PX`/`EXAT`/`PXAT` option for command `name`.
    pub(super) fn parse(
        option: &str,
        args: &mut Args,
        name: &str,
    ) -> Result<SetExpiry, CommandError> {
        let amount = args.next_integer()?;
        let invalid = || CommandError::InvalidExpire(name.to_string());
        let (seconds, absolute) = match option {
            "ex" => (true, false),
            "px" => (false, false),
            "exat" => (true, true),
            "pxat" => (false, true),
            _ => return Err(CommandError::Syntax),
        };
        if amount <= 0 {
            return Err(invalid());
        }
        let ms = if seconds {
            amount.checked_mul(1000).ok_or_else(invalid)?
        } else {
            amount
        };
        let ms = ms.unsigned_abs();
        Ok(if absolute {
            SetExpiry::AtMs(ms)
        } else {
            SetExpiry::AfterMs(ms)
        })
    }

    /// The deadline at time `now_ms`, or the error for command `name` if it overflows.
    pub(super) fn resolve(self, now_ms: u64, name: &str) -> Result<Deadline, CommandError> {
        Ok(match self {
            SetExpiry::Persist => Deadline::Clear,
            SetExpiry::Keep => Deadline::Keep,
            SetExpiry::AtMs(at) => Deadline::At(at),
            SetExpiry::AfterMs(ms) => Deadline::At(
                now_ms
                    .checked_add(ms)
                    .filter(|&at| at <= i64::MAX as u64)
                    .ok_or_else(|| CommandError::InvalidExpire(name.to_string()))?,
            ),
        })
    }
}

/// A string command with its arguments.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StringCommand {
    /// `GET key`
    Get {
        /// The key.
        key: Vec<u8>,
    },
    /// `SET key value [NX|XX] [GET] [EX|PX|EXAT|PXAT n|KEEPTTL]`, and `SETNX`, `SETEX`,
    /// `PSETEX`, `GETSET` (which reply as their own names say: see `reply`).
    Set {
        /// The key.
        key: Vec<u8>,
        /// The new value.
        #[serde(with = "serde_bytes")]
        value: Vec<u8>,
        /// When to write.
        condition: SetCondition,
        /// The new deadline.
        expiry: SetExpiry,
        /// How to answer.
        reply: SetReply,
    },
    /// `GETDEL key`
    GetDel {
        /// The key.
        key: Vec<u8>,
    },
    /// `GETEX key [EX|PX|EXAT|PXAT n|PERSIST]`; `None` leaves the deadline alone.
    GetEx {
        /// The key.
        key: Vec<u8>,
        /// The new deadline, if any option was given.
        expiry: Option<SetExpiry>,
    },
    /// `STRLEN key`
    StrLen {
        /// The key.
        key: Vec<u8>,
    },
    /// `GETRANGE key start end` (inclusive, negative counts from the end).
    GetRange {
        /// The key.
        key: Vec<u8>,
        /// First byte.
        start: i64,
        /// Last byte.
        end: i64,
    },
    /// `SETRANGE key offset value`
    SetRange {
        /// The key.
        key: Vec<u8>,
        /// Where to write (zero-padding the gap).
        offset: u64,
        /// The bytes.
        #[serde(with = "serde_bytes")]
        value: Vec<u8>,
    },
    /// `APPEND key value`: replies with the new length.
    Append {
        /// The key.
        key: Vec<u8>,
        /// The bytes to append.
        #[serde(with = "serde_bytes")]
        value: Vec<u8>,
    },
    /// `MGET key [key ...]`
    MGet {
        /// The keys.
        keys: Vec<Vec<u8>>,
    },
    /// `MSET k v [k v ...]`, or `MSETNX` (only if no key exists) when `only_if_none_exist`.
    MSet {
        /// Key/value pairs, applied in order.
        pairs: Vec<(Vec<u8>, Vec<u8>)>,
        /// `MSETNX`.
        only_if_none_exist: bool,
    },
}

/// How a `SET`-like command answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SetReply {
    /// `SET`: `OK`, or nil when the condition did not hold.
    Status,
    /// `SET … GET`, `GETSET`: the old value (nil when absent).
    OldValue,
    /// `SETNX`: 1 if written, 0 if not.
    Written,
}

pub(super) fn parse(name: &str, args: &mut Args) -> Option<Result<super::Command, CommandError>> {
    let parsed = match name {
        "get" => args.word().map(|key| StringCommand::Get { key }),
        "set" => parse_set(args),
        "setnx" | "getset" => (|| {
            let (key, value) = (args.word()?, args.word()?);
            let (condition, reply) = if name == "setnx" {
                (SetCondition::IfAbsent, SetReply::Written)
            } else {
                (SetCondition::Always, SetReply::OldValue)
            };
            Ok(StringCommand::Set {
                key,
                value,
                condition,
                expiry: SetExpiry::Persist,
                reply,
            })
        })(),
        "setex" | "psetex" => (|| {
            let key = args.word()?;
            let expiry = SetExpiry::parse(if name == "setex" { "ex" } else { "px" }, args, name)?;
            let value = args.word()?;
            Ok(StringCommand::Set {
                key,
                value,
                condition: SetCondition::Always,
                expiry,
                reply: SetReply::Status,
            })
        })(),
        "getdel" => args.word().map(|key| StringCommand::GetDel { key }),
        "getex" => (|| {
            let key = args.word()?;
            let expiry = match args.remaining() {
                0 => None,
                _ => match args.next_keyword()?.as_str() {
                    "persist" => Some(SetExpiry::Persist),
                    option @ ("ex" | "px" | "exat" | "pxat") => {
                        Some(SetExpiry::parse(option, args, name)?)
                    }
                    _ => return Err(CommandError::Syntax),
                },
            };
            Ok(StringCommand::GetEx { key, expiry })
        })(),
        "strlen" => args.word().map(|key| StringCommand::StrLen { key }),
        "getrange" | "substr" => (|| {
            let key = args.word()?;
            Ok(StringCommand::GetRange {
                key,
                start: args.next_integer()?,
                end: args.next_integer()?,
            })
        })(),
        "setrange" => (|| {
            let key = args.word()?;
            let offset = args.next_integer()?;
            let offset = u64::try_from(offset).map_err(|_| CommandError::OffsetOutOfRange)?;
            Ok(StringCommand::SetRange {
                key,
                offset,
                value: args.word()?,
            })
        })(),
        "append" => (|| {
            Ok(StringCommand::Append {
                key: args.word()?,
                value: args.word()?,
            })
        })(),
        "mget" => Ok(StringCommand::MGet { keys: args.drain() }),
        "mset" | "msetnx" => (|| {
            if !args.remaining().is_multiple_of(2) {
                return Err(CommandError::WrongArity(name.to_string()));
            }
            let mut words = args.drain().into_iter();
            let mut pairs = Vec::new();
            while let (Some(key), Some(value)) = (words.next(), words.next()) {
                pairs.push((key, value));
            }
            Ok(StringCommand::MSet {
                pairs,
                only_if_none_exist: name == "msetnx",
            })
        })(),
        _ => return None,
    };
    Some(parsed.map(super::Command::Strings))
}

fn parse_set(args: &mut Args) -> Result<StringCommand, CommandError> {
    let (key, value) = (args.word()?, args.word()?);
    let mut condition = SetCondition::Always;
    let mut expiry = SetExpiry::Persist;
    let mut reply = SetReply::Status;
    let (mut has_condition, mut has_expiry) = (false, false);
    while args.remaining() > 0 {
        let option = args.next_keyword()?;
        match option.as_str() {
            "nx" | "xx" if !has_condition => {
                has_condition = true;
                condition = if option == "nx" {
                    SetCondition::IfAbsent
                } else {
                    SetCondition::IfPresent
                };
            }
            "get" if reply == SetReply::Status => reply = SetReply::OldValue,
            "keepttl" if !has_expiry => {
                has_expiry = true;
                expiry = SetExpiry::Keep;
            }
            "ex" | "px" | "exat" | "pxat" if !has_expiry => {
                has_expiry = true;
                expiry = SetExpiry::parse(&option, args, "set")?;
            }
            _ => return Err(CommandError::Syntax),
        }
    }
    Ok(StringCommand::Set {
        key,
        value,
        condition,
        expiry,
        reply,
    })
}

fn too_large(length: u64, context: &Context<'_>) -> Result<(), CommandError> {
    if length > context.max_value_bytes {
        Err(CommandError::TooLarge)
    } else {
        Ok(())
    }
}

impl StringCommand {
    pub(super) fn apply(&self, context: &mut Context<'_>) -> Frame {
        self.run(context).unwrap_or_else(Frame::from)
    }

    fn run(&self, context: &mut Context<'_>) -> Result<Frame, CommandError> {
        let (index, max_value_bytes) = (context.index, context.max_value_bytes);
        let now_ms = context.store.now_ms();
        let store = &mut *context.store;
        let value_of = |key: &[u8]| store.get(key).map(|v| v.value.clone());
        Ok(match self {
            StringCommand::Get { key } => Frame::optional(value_of(key)),
            StringCommand::Set {
                key,
                value,
                condition,
                expiry,
                reply,
            } => {
                let old = value_of(key);
                let holds = match condition {
                    SetCondition::Always => true,
                    SetCondition::IfAbsent => old.is_none(),
                    SetCondition::IfPresent => old.is_some(),
                };
                let name = match (reply, expiry) {
                    (SetReply::Written, _) => "setnx",
                    _ => "set",
                };
                let deadline = expiry.resolve(now_ms, name)?;
                if holds {
                    too_large(value.len() as u64, context)?;
                    context.store.set(key, value.clone(), index, deadline);
                }
                match reply {
                    SetReply::Status if holds => Frame::ok(),
                    SetReply::Status => Frame::Null,
                    SetReply::OldValue => Frame::optional(old),
                    SetReply::Written => Frame::Integer(i64::from(holds)),
                }
            }
            StringCommand::GetDel { key } => Frame::optional(store.remove(key).map(|v| v.value)),
            StringCommand::GetEx { key, expiry } => {
                let value = value_of(key);
                if let (Some(_), Some(expiry)) = (&value, expiry) {
                    let deadline = expiry.resolve(now_ms, "getex")?;
                    context.store.set_deadline(key, index, deadline);
                }
                Frame::optional(value)
            }
            StringCommand::StrLen { key } => {
                Frame::count(store.get(key).map_or(0, |v| v.value.len()))
            }
            StringCommand::GetRange { key, start, end } => {
                let value = value_of(key).unwrap_or_default();
                Frame::Bulk(substring(&value, *start, *end).to_vec())
            }
            StringCommand::SetRange { key, offset, value } => {
                let current = value_of(key);
                if value.is_empty() {
                    return Ok(Frame::count(current.map_or(0, |v| v.len())));
                }
                let end = offset
                    .checked_add(value.len() as u64)
                    .ok_or(CommandError::TooLarge)?;
                too_large(end, context)?;
                let mut bytes = current.unwrap_or_default();
                let (offset, end) = (*offset as usize, end as usize);
                if bytes.len() < end {
                    bytes.resize(end, 0);
                }
                bytes[offset..end].copy_from_slice(value);
                let length = bytes.len();
                context.store.set(key, bytes, index, Deadline::Keep);
                Frame::count(length)
            }
            StringCommand::Append { key, value } => {
                let mut bytes = value_of(key).unwrap_or_default();
                too_large(bytes.len() as u64 + value.len() as u64, context)?;
                bytes.extend_from_slice(value);
                let length = bytes.len();
                context.store.set(key, bytes, index, Deadline::Keep);
                Frame::count(length)
            }
            StringCommand::MGet { keys } => {
                let bytes = keys
                    .iter()
                    .filter_map(|key| store.get(key))
                    .map(|entry| entry.value.len() as u64)
                    .sum();
                super::reply_fits(bytes, max_value_bytes)?;
                Frame::Array(
                    keys.iter()
                        .map(|key| Frame::optional(value_of(key)))
                        .collect(),
                )
            }
            StringCommand::MSet {
                pairs,
                only_if_none_exist,
            } => {
                if *only_if_none_exist && pairs.iter().any(|(key, _)| store.get(key).is_some()) {
                    return Ok(Frame::Integer(0));
                }
                for (_, value) in pairs {
                    too_large(value.len() as u64, context)?;
                }
                for (key, value) in pairs {
                    context
                        .store
                        .set(key, value.clone(), index, Deadline::Clear);
                }
                if *only_if_none_exist {
                    Frame::Integer(1)
                } else {
                    Frame::ok()
                }
            }
        })
    }

    pub(super) fn is_write(&self) -> bool {
        !matches!(
            self,
            StringCommand::Get { .. }
                | StringCommand::StrLen { .. }
                | StringCommand::GetRange { .. }
                | StringCommand::MGet { .. }
        )
    }

    /// The keys a read touches; `None` for a write.
    pub(super) fn read_keys(&self) -> Option<Vec<&[u8]>> {
        match self {
            StringCommand::Get { key }
            | StringCommand::StrLen { key }
            | StringCommand::GetRange { key, .. } => Some(vec![key]),
            StringCommand::MGet { keys } => Some(keys.iter().map(Vec::as_slice).collect()),
            _ => None,
        }
    }

    pub(super) fn payload_bytes(&self) -> u64 {
        let n = |bytes: &[u8]| bytes.len() as u64;
        match self {
            StringCommand::Get { key }
            | StringCommand::GetDel { key }
            | StringCommand::GetEx { key, .. }
            | StringCommand::StrLen { key }
            | StringCommand::GetRange { key, .. } => n(key),
            StringCommand::Set { key, value, .. }
            | StringCommand::SetRange { key, value, .. }
            | StringCommand::Append { key, value } => n(key) + n(value),
            StringCommand::MGet { keys } => keys.iter().map(|k| n(k)).sum(),
            StringCommand::MSet { pairs, .. } => pairs.iter().map(|(k, v)| n(k) + n(v)).sum(),
        }
    }
}

/// `GETRANGE`'s slice: inclusive `start..=end`, negative positions counting from the end,
/// clamped to the value; empty when the range is empty.
fn substring(value: &[u8], start: i64, end: i64) -> &[u8] {
    let length = value.len() as i64;
    if length == 0 {
        return &[];
    }
    let resolve = |position: i64| {
        if position < 0 {
            (length + position).max(0)
        } else {
            position
        }
    };
    let (start, end) = (resolve(start), resolve(end).min(length - 1));
    if start > end {
        return &[];
    }
    &value[start as usize..=end as usize]
}

#[cfg(test)]
mod tests {
    use super::substring;

    #[test]
    fn getrange_follows_redis_examples() {
        let value = b"This is a string";
        assert_eq!(substring(value, 0, 3), b"This");
        assert_eq!(substring(value, -3, -1), b"ing");
        assert_eq!(substring(value, 0, -1), value);
        assert_eq!(substring(value, 10, 100), b"string");
        assert_eq!(substring(value, 5, 3), b"");
        assert_eq!(substring(b"", 0, -1), b"");
    }
}
