//! # verity-core
//!
//! A sans-IO Raft node with a replicated key-value state machine. The node takes inputs —
//! peer [`Message`]s, logical ticks, client proposals and persistence acknowledgements — and
//! returns [`Ready`] batches saying what to persist, what to send and what to answer. It does no
//! IO, reads no clock, starts no thread and draws randomness only from [`Config::seed`], so the
//! same inputs always give the same outputs: the simulator and the production driver run
//! exactly this code.
//!
//! Start at [`Node`] and the contract on [`Ready`].

/// Whether catalogued bug `$bug` is switched on in `$config`: the constant `false` unless the
/// `bug-catalogue` feature is enabled. Marks the one place each bug changes.
macro_rules! injected {
    ($config:expr, $bug:ident) => {{
        #[cfg(feature = "bug-catalogue")]
        {
            $config.bug == Some($crate::bugs::Bug::$bug)
        }
        #[cfg(not(feature = "bug-catalogue"))]
        {
            false
        }
    }};
}
pub(crate) use injected;

#[cfg(feature = "bug-catalogue")]
pub mod bugs;
pub mod codec;
pub mod config;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod kv;
pub mod log;
pub mod message;
pub mod progress;
pub mod quorum;
pub mod raft;
pub mod snapshot;
pub mod testing;
pub mod types;
pub mod wal;

pub use config::{Config, ConfigError, SessionLimits};
pub use kv::{
    Access, ClientOp, ClientRequest, Command, CommandError, Frame, Reply, SessionError,
    SessionToken, Versioned,
};
pub use log::{Entry, EntryPayload};
pub use message::{AppendOutcome, Message, MessageBody};
pub use raft::{
    ClientReply, HardState, Node, Outcome, PersistAck, ProposeError, ReadConsistency, ReadError,
    Ready, Recovered, RequestTag, RestoreError, Role, TransferError,
};
pub use snapshot::{Snapshot, SnapshotMeta};
pub use types::{ClientId, LogIndex, NodeId, Sequence, Term};
