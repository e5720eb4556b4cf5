//! The client-visible vocabulary of the key-value store: what a client asks and what it is told.
//!
//! These types travel in log entries and client replies, so they are serde types and must stay
//! backwards compatible once released.

use crate::types::{ClientId, LogIndex, Sequence};
use serde::{Deserialize, Serialize};

/// A value together with its version: the log index of the write that produced it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Versioned {
    /// The stored bytes.
    pub value: Vec<u8>,
    /// Log index of the last write to the key. Strictly grows with every write.
    pub version: LogIndex,
}

/// What a compare-and-swap compares the key's current state against.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Expect {
    /// The key must be absent (never written, or deleted).
    Absent,
    /// The key must hold exactly these bytes.
    Value(Vec<u8>),
    /// The key must exist with exactly this version.
    Version(LogIndex),
}

/// One key-value operation. Keys and values are arbitrary bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Read a key. Goes through the log, so it is linearizable.
    Get {
        /// The key to read.
        key: Vec<u8>,
    },
    /// Overwrite a key.
    Put {
        /// The key to write.
        key: Vec<u8>,
        /// Its new value.
        value: Vec<u8>,
    },
    /// Make a key absent.
    Delete {
        /// The key to delete.
        key: Vec<u8>,
    },
    /// If the key matches `expect`, set it to `new` (`None` deletes it); otherwise change nothing.
    Cas {
        /// The key to compare and swap.
        key: Vec<u8>,
        /// The condition on the current state.
        expect: Expect,
        /// The new value, or `None` to delete.
        new: Option<Vec<u8>>,
    },
    /// Append bytes to the current value (an absent key counts as empty).
    Append {
        /// The key to append to.
        key: Vec<u8>,
        /// The bytes to append.
        value: Vec<u8>,
    },
}

impl Command {
    /// The key this command touches (every command touches exactly one).
    #[must_use]
    pub fn key(&self) -> &[u8] {
        match self {
            Command::Get { key }
            | Command::Put { key, .. }
            | Command::Delete { key }
            | Command::Cas { key, .. }
            | Command::Append { key, .. } => key,
        }
    }

    /// Bytes of keys and values (and compared values) the command carries.
    #[must_use]
    pub fn payload_bytes(&self) -> u64 {
        let length = |bytes: &[u8]| bytes.len() as u64;
        length(self.key())
            + match self {
                Command::Get { .. } | Command::Delete { .. } => 0,
                Command::Put { value, .. } | Command::Append { value, .. } => length(value),
                Command::Cas { expect, new, .. } => {
                    let expected = match expect {
                        Expect::Value(value) => length(value),
                        Expect::Absent | Expect::Version(_) => 0,
                    };
                    expected + new.as_deref().map_or(0, length)
                }
            }
    }
}

/// A command within an exactly-once session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientRequest {
    /// The session, as returned by [`Reply::SessionOpened`].
    pub client: ClientId,
    /// The request's number within the session; a retry reuses it.
    pub sequence: Sequence,
    /// What to do.
    pub command: Command,
}

/// What a client proposes to the replicated state machine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientOp {
    /// Open a new session. It has no other effect, so retrying it is harmless: a duplicate
    /// only opens another session that will expire unused.
    OpenSession,
    /// Execute a command at most once within a session.
    Request(ClientRequest),
}

/// Why a session request was refused without being executed now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SessionError {
    /// The session was never opened, expired or was evicted. Nothing was executed now; the
    /// outcome of earlier requests of that session cannot be learnt any more. Open a new one.
    UnknownSession,
    /// The sequence number is older than the session's reply window: the request may or may
    /// not have been executed before, and its reply is no longer kept. Nothing executed now.
    SequenceTooOld,
}

/// The state machine's answer to one applied [`ClientOp`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// A session was opened with this id.
    SessionOpened {
        /// The new session's id.
        client: ClientId,
    },
    /// The result of a get: the current value, or `None` when absent.
    Value(Option<Versioned>),
    /// A put or append took effect and produced this version.
    Written {
        /// The key's new version.
        version: LogIndex,
    },
    /// A delete took effect.
    Deleted {
        /// Whether the key existed before.
        existed: bool,
    },
    /// A compare-and-swap was evaluated.
    Cas {
        /// Whether the condition held and the new state was written.
        swapped: bool,
        /// The key's state after the operation.
        current: Option<Versioned>,
    },
    /// The request was refused by the session layer; see [`SessionError`].
    Rejected(SessionError),
}
