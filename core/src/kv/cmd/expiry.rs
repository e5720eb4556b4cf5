//! Time to live: `EXPIRE`, `PEXPIRE`, `EXPIREAT`, `PEXPIREAT`, `TTL`, `PTTL`, `PERSIST`,
//! `EXPIRETIME`, `PEXPIRETIME`. Every deadline is judged against the entry's leader time
//! (see [`crate::kv::Store`]), never a replica's own clock.

use super::{Access, Args, CommandError, Context, Spec};
use crate::kv::frame::Frame;
use crate::kv::store::Deadline;
use serde::{Deserialize, Serialize};

const fn spec(name: &'static str, arity: i64, access: Access, summary: &'static str) -> Spec {
    Spec {
        name,
        arity,
        access,
        keys: (1, 1, 1),
        group: "generic",
        summary,
    }
}

/// The expiry family's commands.
pub(super) const SPECS: &[Spec] = &[
    spec(
        "expire",
        -3,
        Access::Write,
        "Sets the expiration time of a key in seconds.",
    ),
    spec(
        "pexpire",
        -3,
        Access::Write,
        "Sets the expiration time of a key in milliseconds.",
    ),
    spec(
        "expireat",
        -3,
        Access::Write,
        "Sets the expiration time of a key to a Unix timestamp.",
    ),
    spec(
        "pexpireat",
        -3,
        Access::Write,
        "Sets the expiration time of a key to a Unix milliseconds timestamp.",
    ),
    spec(
        "ttl",
        2,
        Access::Read,
        "Returns the expiration time in seconds of a key.",
    ),
    spec(
        "pttl",
        2,
        Access::Read,
        "Returns the expiration time in milliseconds of a key.",
    ),
    spec(
        "expiretime",
        2,
        Access::Read,
        "Returns the expiration time of a key as a Unix timestamp.",
    ),
    spec(
        "pexpiretime",
        2,
        Access::Read,
        "Returns the expiration time of a key as a Unix milliseconds timestamp.",
    ),
    spec(
        "persist",
        2,
        Access::Write,
        "Removes the expiration time of a key.",
    ),
];

/// Seconds or milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TimeUnit {
    /// Seconds.
    Seconds,
    /// Milliseconds.
    Milliseconds,
}

/// `EXPIRE`'s `NX|XX|GT|LT` option.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExpireCondition {
    /// No option.
    Always,
    /// Only if the key has no deadline.
    NoDeadline,
    /// Only if the key has a deadline.
    HasDeadline,
    /// Only if the new deadline is later (no deadline counts as infinitely late, so `XX GT`
    /// is `GT`).
    Later,
    /// Only if the new deadline is earlier (no deadline counts as infinitely late).
    Earlier,
    /// `XX LT`: only if the key has a deadline and the new one is earlier.
    EarlierWithDeadline,
}

/// An expiry command with its arguments.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExpiryCommand {
    /// `EXPIRE`, `PEXPIRE` (relative) and `EXPIREAT`, `PEXPIREAT` (absolute).
    Expire {
        /// The key.
        key: Vec<u8>,
        /// The amount as given (may be negative: the key is then deleted).
        amount: i64,
        /// The amount's unit.
        unit: TimeUnit,
        /// Whether `amount` is a Unix time rather than a span from now.
        absolute: bool,
        /// The option.
        condition: ExpireCondition,
    },
    /// `TTL`/`PTTL`: -2 if absent, -1 without deadline, else the time left.
    Ttl {
        /// The key.
        key: Vec<u8>,
        /// The reply's unit.
        unit: TimeUnit,
    },
    /// `EXPIRETIME`/`PEXPIRETIME`: -2, -1, or the deadline as a Unix time.
    ExpireTime {
        /// The key.
        key: Vec<u8>,
        /// The reply's unit.
        unit: TimeUnit,
    },
    /// `PERSIST`: 1 if a deadline was removed.
    Persist {
        /// The key.
        key: Vec<u8>,
    },
}

fn unit_of(name: &str) -> TimeUnit {
    if name.starts_with('p') {
        TimeUnit::Milliseconds
    } else {
        TimeUnit::Seconds
    }
}

pub(super) fn parse(name: &str, args: &mut Args) -> Option<Result<super::Command, CommandError>> {
    let unit = unit_of(name);
    let parsed = match name {
        "expire" | "pexpire" | "expireat" | "pexpireat" => (|| {
            let (key, amount) = (args.word()?, args.next_integer()?);
            let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
            while args.remaining() > 0 {
                match args.next_keyword()?.as_str() {
                    "nx" => nx = true,
                    "xx" => xx = true,
                    "gt" => gt = true,
                    "lt" => lt = true,
                    other => {
                        return Err(CommandError::Incompatible(format!(
                            "Unsupported option {other}"
                        )));
                    }
                }
            }
            if nx && (xx || gt || lt) {
                return Err(CommandError::Incompatible(
                    "NX and XX, GT or LT options at the same time are not compatible".into(),
                ));
            }
            if gt && lt {
                return Err(CommandError::Incompatible(
                    "GT and LT options at the same time are not compatible".into(),
                ));
            }
            let condition = match (nx, xx, gt, lt) {
                (true, ..) => ExpireCondition::NoDeadline,
                (_, _, true, _) => ExpireCondition::Later,
                (_, true, _, true) => ExpireCondition::EarlierWithDeadline,
                (_, _, _, true) => ExpireCondition::Earlier,
                (_, true, ..) => ExpireCondition::HasDeadline,
                _ => ExpireCondition::Always,
            };
            Ok(ExpiryCommand::Expire {
                key,
                amount,
                unit,
                absolute: name.ends_with("at"),
                condition,
            })
        })(),
        "ttl" | "pttl" => args.word().map(|key| ExpiryCommand::Ttl { key, unit }),
        "expiretime" | "pexpiretime" => args
            .word()
            .map(|key| ExpiryCommand::ExpireTime { key, unit }),
        "persist" => args.word().map(|key| ExpiryCommand::Persist { key }),
        _ => return None,
    };
    Some(parsed.map(super::Command::Expiry))
}

impl ExpiryCommand {
    pub(super) fn apply(&self, context: &mut Context<'_>) -> Frame {
        self.run(context).unwrap_or_else(Frame::from)
    }

    fn run(&self, context: &mut Context<'_>) -> Result<Frame, CommandError> {
        let now_ms = context.store.now_ms();
        let in_unit = |ms: u64, unit: TimeUnit| match unit {
            TimeUnit::Seconds => ms / 1000,
            TimeUnit::Milliseconds => ms,
        };
        Ok(match self {
            ExpiryCommand::Expire {
                key,
                amount,
                unit,
                absolute,
                condition,
            } => {
                let name = match (unit, absolute) {
                    (TimeUnit::Seconds, false) => "expire",
                    (TimeUnit::Milliseconds, false) => "pexpire",
                    (TimeUnit::Seconds, true) => "expireat",
                    (TimeUnit::Milliseconds, true) => "pexpireat",
                };
                let invalid = || CommandError::InvalidExpire(name.to_string());
                let ms = match unit {
                    TimeUnit::Seconds => amount.checked_mul(1000).ok_or_else(invalid)?,
                    TimeUnit::Milliseconds => *amount,
                };
                let at = if *absolute {
                    ms
                } else {
                    ms.checked_add(i64::try_from(now_ms).map_err(|_| invalid())?)
                        .ok_or_else(invalid)?
                };
                let Some(current) = context.store.get(key) else {
                    return Ok(Frame::Integer(0));
                };
                let current = current.expires_at_ms;
                let at_ms = u64::try_from(at).unwrap_or(0);
                let allowed = match condition {
                    ExpireCondition::Always => true,
                    ExpireCondition::NoDeadline => current.is_none(),
                    ExpireCondition::HasDeadline => current.is_some(),
                    ExpireCondition::Later => current.is_some_and(|c| at_ms > c),
                    ExpireCondition::Earlier => current.is_none_or(|c| at_ms < c),
                    ExpireCondition::EarlierWithDeadline => current.is_some_and(|c| at_ms < c),
                };
                if !allowed {
                    return Ok(Frame::Integer(0));
                }
                if at_ms <= now_ms {
                    context.store.remove(key);
                } else {
                    context
                        .store
                        .set_deadline(key, context.index, Deadline::At(at_ms));
                }
                Frame::Integer(1)
            }
            ExpiryCommand::Ttl { key, unit } => match context.store.get(key) {
                None => Frame::Integer(-2),
                Some(v) => match v.expires_at_ms {
                    None => Frame::Integer(-1),
                    Some(at) => {
                        let left = at.saturating_sub(now_ms);
                        let left = if *unit == TimeUnit::Seconds {
                            (left + 500) / 1000
                        } else {
                            left
                        };
                        Frame::count(left)
                    }
                },
            },
            ExpiryCommand::ExpireTime { key, unit } => match context.store.get(key) {
                None => Frame::Integer(-2),
                Some(v) => v
                    .expires_at_ms
                    .map_or(Frame::Integer(-1), |at| Frame::count(in_unit(at, *unit))),
            },
            ExpiryCommand::Persist { key } => {
                let had = context
                    .store
                    .get(key)
                    .is_some_and(|v| v.expires_at_ms.is_some());
                if had {
                    context
                        .store
                        .set_deadline(key, context.index, Deadline::Clear);
                }
                Frame::Integer(i64::from(had))
            }
        })
    }

    pub(super) fn is_write(&self) -> bool {
        matches!(
            self,
            ExpiryCommand::Expire { .. } | ExpiryCommand::Persist { .. }
        )
    }

    /// The keys a read touches; `None` for a write.
    pub(super) fn read_keys(&self) -> Option<Vec<&[u8]>> {
        match self {
            ExpiryCommand::Ttl { key, .. } | ExpiryCommand::ExpireTime { key, .. } => {
                Some(vec![key])
            }
            ExpiryCommand::Expire { .. } | ExpiryCommand::Persist { .. } => None,
        }
    }

    pub(super) fn payload_bytes(&self) -> u64 {
        match self {
            ExpiryCommand::Expire { key, .. }
            | ExpiryCommand::Ttl { key, .. }
            | ExpiryCommand::ExpireTime { key, .. }
            | ExpiryCommand::Persist { key } => key.len() as u64,
        }
    }
}
