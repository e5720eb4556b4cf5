//! Counters: `INCR`, `DECR`, `INCRBY`, `DECRBY`, `INCRBYFLOAT`. Each is one log entry, so
//! concurrent increments never conflict and never fail for contention.

use super::{Access, Args, CommandError, Context, Spec, parse_float, parse_integer};
use crate::kv::frame::Frame;
use crate::kv::store::Deadline;
use serde::{Deserialize, Serialize};

const fn spec(name: &'static str, arity: i64, summary: &'static str) -> Spec {
    Spec {
        name,
        arity,
        access: Access::Write,
        keys: (1, 1, 1),
        group: "string",
        summary,
    }
}

/// The counter family's commands.
pub(super) const SPECS: &[Spec] = &[
    spec(
        "incr",
        2,
        "Increments the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.",
    ),
    spec(
        "decr",
        2,
        "Decrements the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.",
    ),
    spec(
        "incrby",
        3,
        "Increments the integer value of a key by a number. Uses 0 as initial value if the key doesn't exist.",
    ),
    spec(
        "decrby",
        3,
        "Decrements a number from the integer value of a key. Uses 0 as initial value if the key doesn't exist.",
    ),
    spec(
        "incrbyfloat",
        3,
        "Increment the floating point value of a key by a number. Uses 0 as initial value if the key doesn't exist.",
    ),
];

/// A counter command with its arguments.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CounterCommand {
    /// `INCR`, `DECR`, `INCRBY`, `DECRBY`: add `delta`; replies with the new value.
    IncrBy {
        /// The key.
        key: Vec<u8>,
        /// The amount added (negative for the decrements).
        delta: i64,
    },
    /// `INCRBYFLOAT key increment`: replies with the new value as a bulk string.
    IncrByFloat {
        /// The key.
        key: Vec<u8>,
        /// The increment as sent (validated as a float when parsed; kept as text so the log
        /// holds no floating-point value).
        delta: Vec<u8>,
    },
}

pub(super) fn parse(name: &str, args: &mut Args) -> Option<Result<super::Command, CommandError>> {
    let parsed = match name {
        "incr" | "decr" => {
            let delta = if name == "incr" { 1 } else { -1 };
            args.word().map(|key| CounterCommand::IncrBy { key, delta })
        }
        "incrby" => (|| {
            Ok(CounterCommand::IncrBy {
                key: args.word()?,
                delta: args.next_integer()?,
            })
        })(),
        "decrby" => (|| {
            let key = args.word()?;
            let delta = args
                .next_integer()?
                .checked_neg()
                .ok_or(CommandError::DecrementOverflow)?;
            Ok(CounterCommand::IncrBy { key, delta })
        })(),
        "incrbyfloat" => (|| {
            let (key, delta) = (args.word()?, args.word()?);
            parse_float(&delta).ok_or(CommandError::NotFloat)?;
            Ok(CounterCommand::IncrByFloat { key, delta })
        })(),
        _ => return None,
    };
    Some(parsed.map(super::Command::Counter))
}

impl CounterCommand {
    pub(super) fn apply(&self, context: &mut Context<'_>) -> Frame {
        self.run(context).unwrap_or_else(Frame::from)
    }

    fn run(&self, context: &mut Context<'_>) -> Result<Frame, CommandError> {
        let (key, reply, new) = match self {
            CounterCommand::IncrBy { key, delta } => {
                let current = match context.store.get(key) {
                    None => 0,
                    Some(v) => parse_integer(&v.value).ok_or(CommandError::NotInteger)?,
                };
                let sum = current.checked_add(*delta).ok_or(CommandError::Overflow)?;
                (key, Frame::Integer(sum), sum.to_string().into_bytes())
            }
            CounterCommand::IncrByFloat { key, delta } => {
                let current = match context.store.get(key) {
                    None => 0.0,
                    Some(v) => parse_float(&v.value).ok_or(CommandError::NotFloat)?,
                };
                let delta = parse_float(delta).ok_or(CommandError::NotFloat)?;
                let sum = current + delta;
                if !sum.is_finite() {
                    return Err(CommandError::NotFinite);
                }
                let text = format_float(sum).into_bytes();
                (key, Frame::Bulk(text.clone()), text)
            }
        };
        context.store.set(key, new, context.index, Deadline::Keep);
        Ok(reply)
    }

    pub(super) fn payload_bytes(&self) -> u64 {
        match self {
            CounterCommand::IncrBy { key, .. } => key.len() as u64 + 8,
            CounterCommand::IncrByFloat { key, delta } => (key.len() + delta.len()) as u64,
        }
    }
}

/// A float as `INCRBYFLOAT` stores it: the shortest decimal that reads back as the same
/// double, with no exponent and no trailing zeros (`3`, `10.6`, `-0.5`).
fn format_float(value: f64) -> String {
    let value = if value == 0.0 { 0.0 } else { value };
    format!("{value}")
}

#[cfg(test)]
mod tests {
    use super::format_float;

    #[test]
    fn floats_print_as_redis_prints_them() {
        assert_eq!(format_float(10.5 + 0.1), "10.6");
        assert_eq!(format_float(3.0), "3");
        assert_eq!(format_float(-0.0), "0");
        assert_eq!(format_float(5.0e3), "5000");
    }
}
