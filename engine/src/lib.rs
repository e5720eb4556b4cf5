//! # verity-engine: everything a node decides above Raft, without IO
//!
//! The tokio node is a thin shell that moves bytes, time and files; this crate is where it
//! decides what to do with a client, as `quinn-proto` is to `quinn`. The simulator runs the
//! same code, so every decision here is tested under crashes, partitions and reordering.
//!
//! - [`resp`]: the RESP2/inline wire format, parsed incrementally with hard limits.
//! - [`command`]: what a client may send, parsed with Redis's error texts; data commands are
//!   [`verity_core::Command`]s (one log entry each, except reads of named keys, which the
//!   core serves without one: see [`Consistency`]).
//! - [`connection`]: one client connection as a state machine: sessions, numbering,
//!   pipelining, transactions, retries, and replies that tell the truth.
//! - [`router`]: where each operation goes (proposed here, or forwarded to the leader) and
//!   how its answer comes back; [`envelope`]: what peers send each other.
//! - [`introspection`]: `HELLO`, `CONFIG GET`, `COMMAND`; [`auth`]: who may use a
//!   connection (passwords, users, protected mode).
//! - [`tally`]: replies and error replies per command, for the node's metrics.
//! - [`persist`]: the `Ready` contract (write, then send and acknowledge; group commit),
//!   carried out one way for the node's WAL writer and the simulator's disk.
//!
//! Determinism: no clock (time is an input), no threads, no randomness (session tokens are
//! handed in), ordered maps only.

/// Whether catalogued bug `$bug` is switched on (`$bug_in` is an `Option<Bug>`); the
/// constant `false`, without evaluating `$bug_in`, unless built with `bug-catalogue`.
macro_rules! injected {
    ($bug_in:expr, $bug:ident) => {{
        #[cfg(feature = "bug-catalogue")]
        {
            $bug_in == Some(verity_core::bugs::Bug::$bug)
        }
        #[cfg(not(feature = "bug-catalogue"))]
        {
            false
        }
    }};
}
pub(crate) use injected;

pub mod auth;
pub mod command;
pub mod connection;
pub mod envelope;
pub mod introspection;
pub mod persist;
pub mod resp;
pub mod router;
pub mod tally;

pub use command::Consistency;
pub use connection::{
    AttemptId, AttemptResult, Connection, ConnectionConfig, Host, Operation, OutputLimit, Refusal,
    Submission,
};
pub use envelope::{ForwardResult, PeerFrame};
pub use persist::{Accepted, PersistQueue, Release};
pub use router::{Routed, Router};
pub use tally::Tally;
