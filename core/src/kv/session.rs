//! Exactly-once client sessions (the Raft dissertation's §6.3), applied from the log.
//!
//! A session is opened by a log entry and named after that entry's index, so ids never repeat.
//! Each request carries `(client, sequence)`. The table remembers, per session, the replies of
//! the last `reply_window` sequence numbers:
//!
//! - a sequence whose reply is remembered is answered from memory and **not executed again**;
//! - a new sequence inside the window is executed once and its reply remembered;
//! - a sequence below the window, or a request for a session the table does not know, is
//!   refused with a [`SessionError`] and executed **never**: refusing is always safe, executing
//!   twice is not.
//!
//! Memory is bounded: at most `max_sessions` sessions of `reply_window` replies each. Sessions
//! idle for `idle_expiry_entries` log entries expire, and opening a session beyond the limit
//! evicts the least recently active one. Both rules depend only on log indexes, so every replica
//! evicts the same sessions at the same point of the log.

use super::command::{Reply, SessionError};
use crate::config::SessionLimits;
use crate::types::{ClientId, LogIndex, Sequence};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Clone, Debug, PartialEq, Eq)]
struct Session {
    last_active: LogIndex,
    highest: Sequence,
    replies: BTreeMap<Sequence, Reply>,
}

/// What the session table decided about one request.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission<'a> {
    /// Execute the command now, then call [`SessionTable::record`].
    Execute,
    /// Already executed: answer with this reply.
    Duplicate(&'a Reply),
    /// Refused: answer with this error, execute nothing.
    Refused(SessionError),
}

/// The set of open sessions. See the module documentation for the rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionTable {
    limits: SessionLimits,
    sessions: BTreeMap<ClientId, Session>,
    /// `(last_active, client)` for every session: the eviction and expiry order.
    by_activity: BTreeSet<(LogIndex, ClientId)>,
}

impl SessionTable {
    /// An empty table with the given bounds.
    #[must_use]
    pub fn new(limits: SessionLimits) -> SessionTable {
        SessionTable {
            limits,
            sessions: BTreeMap::new(),
            by_activity: BTreeSet::new(),
        }
    }

    /// Drops every session idle for more than `idle_expiry_entries` as of `index`. Called for
    /// every applied entry, before the entry itself.
    pub fn expire(&mut self, index: LogIndex) {
        while let Some(&(last_active, client)) = self.by_activity.first() {
            if last_active
                .0
                .saturating_add(self.limits.idle_expiry_entries)
                >= index.0
            {
                break;
            }
            self.remove(client);
            tracing::debug!(
                client = client.0,
                last_active = last_active.0,
                index = index.0,
                "session expired"
            );
        }
    }

    /// Opens a session named after `index`, the entry that opens it, evicting the least
    /// recently active session if the table is full.
    pub fn open(&mut self, index: LogIndex) -> ClientId {
        let client = ClientId(index.0);
        assert!(
            !self.sessions.contains_key(&client),
            "session ids are unique log indexes"
        );
        if self.sessions.len() >= self.limits.max_sessions {
            let &(_, evicted) = self.by_activity.first().expect("a full table has sessions");
            self.remove(evicted);
            tracing::debug!(
                client = evicted.0,
                index = index.0,
                "session evicted, table full"
            );
        }
        self.sessions.insert(
            client,
            Session {
                last_active: index,
                highest: Sequence(0),
                replies: BTreeMap::new(),
            },
        );
        self.by_activity.insert((index, client));
        debug_assert_eq!(self.sessions.len(), self.by_activity.len());
        client
    }

    /// Decides what to do with request `(client, sequence)` applied at `index`, marking the
    /// session active.
    pub fn admit(
        &mut self,
        client: ClientId,
        sequence: Sequence,
        index: LogIndex,
    ) -> Admission<'_> {
        let Some(session) = self.sessions.get_mut(&client) else {
            return Admission::Refused(SessionError::UnknownSession);
        };
        self.by_activity.remove(&(session.last_active, client));
        session.last_active = index;
        self.by_activity.insert((index, client));
        if let Some(reply) = session.replies.get(&sequence) {
            return Admission::Duplicate(reply);
        }
        let window_start = session
            .highest
            .0
            .saturating_sub(self.limits.reply_window - 1)
            .max(1);
        if sequence.0 < window_start {
            return Admission::Refused(SessionError::SequenceTooOld);
        }
        Admission::Execute
    }

    /// Remembers the reply of a request that [`SessionTable::admit`] told to execute.
    pub fn record(&mut self, client: ClientId, sequence: Sequence, reply: Reply) {
        let window = self.limits.reply_window;
        let session = self
            .sessions
            .get_mut(&client)
            .expect("record follows a successful admit of the same session");
        session.highest = session.highest.max(sequence);
        let previous = session.replies.insert(sequence, reply);
        assert!(
            previous.is_none(),
            "a sequence number executes at most once"
        );
        let window_start = Sequence(session.highest.0.saturating_sub(window - 1));
        session.replies = session.replies.split_off(&window_start);
        debug_assert!(session.replies.len() as u64 <= window);
    }

    /// Number of open sessions.
    #[must_use]
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Whether no session is open.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    fn remove(&mut self, client: ClientId) {
        let session = self
            .sessions
            .remove(&client)
            .expect("removing a known session");
        self.by_activity.remove(&(session.last_active, client));
    }
}
