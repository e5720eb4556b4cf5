//! `MULTI`/`EXEC` as one log entry. The server layer queues a connection's commands between
//! `MULTI` and `EXEC` and remembers the versions `WATCH` read; `EXEC` becomes one
//! [`Transaction`] that the state machine runs all at once: if any watched key's version
//! changed it runs nothing and answers the null array, as Redis does; otherwise it runs every
//! command in order and answers the array of their replies. A command that fails at run time
//! (`INCR` on a non-number) answers its error in the array while the others take effect (Redis
//! has no rollback either).

use super::verity::version_of;
use super::{Command, Context};
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
        Frame::Array(
            self.commands
                .iter()
                .map(|command| {
                    debug_assert!(
                        !matches!(command, Command::Exec(_)),
                        "transactions do not nest"
                    );
                    command.apply(context)
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
