//! The replicated key-value state machine: a [`Store`] behind a [`SessionTable`].
//!
//! Raft hands it committed entries in index order, exactly once per node lifetime; it answers
//! each client operation with a [`Reply`]. It is a pure function of the applied log prefix.

mod command;
mod session;
mod store;

pub use command::{ClientOp, ClientRequest, Command, Expect, Reply, SessionError, Versioned};
pub use session::{Admission, SessionTable};
pub use store::Store;

use crate::config::SessionLimits;
use crate::types::LogIndex;

/// The key-value store with exactly-once sessions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateMachine {
    store: Store,
    sessions: SessionTable,
    applied: LogIndex,
    /// Requests up to this index execute without the session table (bug catalogue only).
    #[cfg(feature = "bug-catalogue")]
    sessionless_until: LogIndex,
}

impl StateMachine {
    /// An empty state machine that has applied nothing.
    #[must_use]
    pub fn new(limits: SessionLimits) -> StateMachine {
        StateMachine {
            store: Store::default(),
            sessions: SessionTable::new(limits),
            applied: LogIndex(0),
            #[cfg(feature = "bug-catalogue")]
            sessionless_until: LogIndex(0),
        }
    }

    /// The `ForgetSessions` bug: requests replayed up to `index` rebuild the store but not the
    /// session table, so their retries execute again.
    #[cfg(feature = "bug-catalogue")]
    pub fn forget_sessions_until(&mut self, index: LogIndex) {
        self.sessionless_until = index;
    }

    /// Applies the entry at `index`, which must be the next one. `op` is `None` for entries
    /// that carry no client operation (a leader's no-op). Returns the reply for a client op.
    pub fn apply(&mut self, index: LogIndex, op: Option<&ClientOp>) -> Option<Reply> {
        assert_eq!(
            index,
            self.applied.next(),
            "entries are applied in order, once"
        );
        self.applied = index;
        self.sessions.expire(index);
        let reply = match op? {
            ClientOp::OpenSession => Reply::SessionOpened {
                client: self.sessions.open(index),
            },
            #[cfg(feature = "bug-catalogue")]
            ClientOp::Request(request) if index <= self.sessionless_until => {
                self.store.apply(index, &request.command)
            }
            ClientOp::Request(request) => {
                match self.sessions.admit(request.client, request.sequence, index) {
                    Admission::Duplicate(reply) => reply.clone(),
                    Admission::Refused(error) => Reply::Rejected(error),
                    Admission::Execute => {
                        let reply = self.store.apply(index, &request.command);
                        self.sessions
                            .record(request.client, request.sequence, reply.clone());
                        reply
                    }
                }
            }
        };
        Some(reply)
    }

    /// The index of the last applied entry.
    #[must_use]
    pub fn applied_index(&self) -> LogIndex {
        self.applied
    }

    /// The key-value map (read-only), for inspection and tests.
    #[must_use]
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The session table (read-only), for inspection and tests.
    #[must_use]
    pub fn sessions(&self) -> &SessionTable {
        &self.sessions
    }
}
