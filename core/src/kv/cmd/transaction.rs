//! `MULTI`/`EXEC` as one log entry. The server layer queues a connection's commands between
//! `MULTI` and `EXEC` and remembers the versions `WATCH` read; `EXEC` becomes one
//! [`Transaction`] that the state machine runs all at once: if any watched key's version
//! changed it runs nothing and answers the null array, as Redis does; otherwise it runs every
//! command in order and answers the array of their replies. A command that fails at run time
//! (`INCR` on a non-number) answers its error in the array while the others take effect (Redis
//! has no rollback either). The replies together carry at most the reply limit of one command
//! ([`MAX_REPLY_VALUES`] of the largest values): each command past it still takes effect, but
//! its reply is replaced by an error, so a transaction of a thousand large reads cannot build
//! gigabytes on every replica.

use super::verity::version_of;
use super::{Command, CommandError, Context, MAX_REPLY_VALUES};
use crate::kv::frame::Frame;
use serde::{Deserialize, Serialize};

/// A queued transaction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transaction {
    /// `(key, version read by WATCH)`, version 0 for a key that was absent.
    pub watched: Vec<(Vec<u8>, u64)>,
    /// The commands, in the order they were queued. None is itself a transaction.
    pub commands: Vec<Command>,
}

impl Transaction {
    pub(super) fn apply(&self, context: &mut Context<'_>) -> Frame {
        let changed = self
            .watched
            .iter()
            .any(|(key, version)| version_of(context, key) != *version);
        if changed {
            return Frame::NullArray;
        }
        let limit = context.max_value_bytes.saturating_mul(MAX_REPLY_VALUES);
        let mut carried = 0u64;
        Frame::Array(
            self.commands
                .iter()
                .map(|command| {
                    debug_assert!(
                        !matches!(command, Command::Exec(_)),
                        "transactions do not nest"
                    );
                    let reply = command.apply(context);
                    carried = carried.saturating_add(carried_bytes(&reply));
                    if carried > limit {
                        CommandError::TransactionReplyTooLarge { limit }.into()
                    } else {
                        reply
                    }
                })
                .collect(),
        )
    }

    pub(super) fn payload_bytes(&self) -> u64 {
        let watched: u64 = self
            .watched
            .iter()
            .map(|(key, _)| key.len() as u64 + 8)
            .sum();
        watched
            + self
                .commands
                .iter()
                .map(Command::payload_bytes)
                .sum::<u64>()
    }
}

/// Bytes of keys and values (bulk strings) a reply carries.
fn carried_bytes(reply: &Frame) -> u64 {
    match reply {
        Frame::Bulk(bytes) => bytes.len() as u64,
        Frame::Array(items) => items.iter().map(carried_bytes).sum(),
        Frame::Simple(_) | Frame::Error(_) | Frame::Integer(_) | Frame::Null | Frame::NullArray => {
            0
        }
    }
}
