//! Exactly-once client sessions (the Raft dissertation's §6.3), applied from the log.
//!
//! A session is opened by a log entry and named after that entry's index, so ids never repeat;
//! the opening entry also carries the session's secret token, which every request must repeat.
//! Opening again with the token of an open session returns that session, so a retried open
//! never evicts a session in use.
//! Each request carries `(client, token, sequence)` and the fingerprint of its command. Per
//! session, the table remembers which of the last `reply_window` sequence numbers executed,
//! with which command, and (for writes only) their replies:
//!
//! - a sequence that executed with the same command is answered from its kept reply and
//!   **not executed again**; if the reply is not kept (a read, or evicted by the byte bounds),
//!   or the command differs, it is refused, except that a read whose number is the session's
//!   highest runs again (it changes nothing, and nothing of the session ran after it, so the
//!   order holds: a read whose reply was lost is simply read again under its own number);
//! - a sequence below the window is refused: it may or may not have executed before;
//! - a sequence that never executed but is below the session's highest executed one is
//!   refused for good: running it now would break the session's order (its commands take
//!   effect in the order of their numbers);
//! - a sequence beyond the next one is refused for now unless the request says it may skip
//!   the numbers in between (its client gave up on them);
//! - otherwise it executes, once.
//!
//! Refusing never executes anything, so it is always safe; executing twice is not.
//!
//! Memory is bounded: at most `max_sessions` sessions, each remembering at most `reply_window`
//! sequence numbers and `max_reply_bytes_per_session` bytes of replies, and at most
//! `max_reply_bytes_total` bytes of replies in all (the least recently active sessions' oldest
//! replies go first). Sessions idle for `idle_expiry_entries` log entries expire, and opening
//! a session beyond the limit evicts the least recently active one. Every rule depends only on
//! the log, so every replica keeps and forgets exactly the same things.

use super::client::{SessionError, SessionToken};
use super::cmd::Access;
use super::frame::Frame;
use crate::config::SessionLimits;
use crate::types::{ClientId, LogIndex, Sequence};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// One executed sequence number.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Executed {
    fingerprint: u64,
    /// The reply, for writes while the byte bounds allow.
    reply: Option<Frame>,
}

/// One open session, as a snapshot holds it (its indexes are rebuilt from it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Session {
    token: SessionToken,
    last_active: LogIndex,
    highest: Sequence,
    executed: BTreeMap<Sequence, Executed>,
    /// Recomputed from `executed` when a snapshot is loaded.
    #[serde(skip)]
    reply_bytes: u64,
}

impl Session {
    /// Forgets the oldest kept reply; returns its size, or `None` if no reply is kept.
    fn drop_oldest_reply(&mut self) -> Option<u64> {
        let executed = self.executed.values_mut().find(|e| e.reply.is_some())?;
        let size = executed
            .reply
            .take()
            .expect("found a kept reply")
            .size_bytes();
        self.reply_bytes -= size;
        Some(size)
    }
}

/// What the session table decided about one request.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission<'a> {
    /// Execute the command now, then call [`SessionTable::record`].
    Execute,
    /// A read that executed as the session's latest number and whose reply is not kept:
    /// execute it again, and record nothing.
    ReadAgain,
    /// Already executed: answer with this reply.
    Duplicate(&'a Frame),
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
    /// Every session by its token: opening again with a token in use returns that session.
    by_token: BTreeMap<SessionToken, ClientId>,
    /// Bytes of replies kept over all sessions.
    reply_bytes: u64,
    /// A retry is answered with the reply of the first kept number at or after its own
    /// (bug catalogue only).
    #[cfg(feature = "bug-catalogue")]
    answer_newer_replies: bool,
}

impl SessionTable {
    /// The `SessionWindowNewerReply` bug: a request whose number did not execute is answered
    /// with the kept reply of a later number of the same command.
    #[cfg(feature = "bug-catalogue")]
    pub fn answer_retries_with_newer_replies(&mut self) {
        self.answer_newer_replies = true;
    }

    /// Folds every session into `digest`: id, token, activity, highest number, and each
    /// remembered number with its fingerprint and kept reply.
    pub(crate) fn digest_into(&self, digest: &mut super::digest::Digest) {
        for (client, session) in &self.sessions {
            digest.number(client.0);
            digest.bytes(&session.token.0);
            digest.number(session.last_active.0);
            digest.number(session.highest.0);
            for (sequence, executed) in &session.executed {
                digest.number(sequence.0);
                digest.number(executed.fingerprint);
                match &executed.reply {
                    Some(reply) => digest.frame(reply),
                    None => digest.number(0),
                }
            }
        }
    }

    /// An empty table with the given bounds.
    #[must_use]
    pub fn new(limits: SessionLimits) -> SessionTable {
        SessionTable {
            limits,
            sessions: BTreeMap::new(),
            by_activity: BTreeSet::new(),
            by_token: BTreeMap::new(),
            reply_bytes: 0,
            #[cfg(feature = "bug-catalogue")]
            answer_newer_replies: false,
        }
    }

    /// Every open session by id: what a snapshot holds of the table.
    pub(super) fn map(&self) -> &BTreeMap<ClientId, Session> {
        &self.sessions
    }

    /// The table with bounds `limits` holding `sessions`, as [`SessionTable::map`] gave them,
    /// its indexes rebuilt, in a state machine that applied up to `applied`. Fails, naming
    /// the session, on what no table holds (its byte counts are recomputed, never trusted).
    pub(super) fn from_map(
        limits: SessionLimits,
        sessions: BTreeMap<ClientId, Session>,
        applied: LogIndex,
    ) -> Result<SessionTable, String> {
        let mut table = SessionTable::new(limits);
        for (client, mut session) in sessions {
            let problem = if client.0 == 0 || client.0 > applied.0 {
                Some("its id is no applied index")
            } else if session.last_active.0 > applied.0 || session.last_active.0 < client.0 {
                Some("it was last active outside the applied log")
            } else if session
                .executed
                .last_key_value()
                .is_some_and(|(&sequence, _)| sequence > session.highest)
            {
                Some("it remembers a number above its highest")
            } else if table.by_token.insert(session.token, client).is_some() {
                Some("another session has its token")
            } else {
                None
            };
            if let Some(problem) = problem {
                return Err(format!("session {client}: {problem}"));
            }
            session.reply_bytes = session
                .executed
                .values()
                .filter_map(|e| e.reply.as_ref())
                .map(Frame::size_bytes)
                .sum();
            table.reply_bytes += session.reply_bytes;
            table.by_activity.insert((session.last_active, client));
            table.sessions.insert(client, session);
        }
        Ok(table)
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

    /// Opens a session named after `index`, the entry that opens it, guarded by `token`,
    /// evicting the least recently active session if the table is full. If a session with
    /// `token` is open (a retried open whose first answer was lost), returns it instead and
    /// opens nothing.
    pub fn open(&mut self, index: LogIndex, token: SessionToken) -> ClientId {
        if let Some(&existing) = self.by_token.get(&token) {
            // A retried open (its first answer was lost): the same session, marked active;
            // opening another would evict a session still in use.
            let session = self
                .sessions
                .get_mut(&existing)
                .expect("indexed sessions exist");
            self.by_activity.remove(&(session.last_active, existing));
            session.last_active = index;
            self.by_activity.insert((index, existing));
            return existing;
        }
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
                token,
                last_active: index,
                highest: Sequence(0),
                executed: BTreeMap::new(),
                reply_bytes: 0,
            },
        );
        self.by_activity.insert((index, client));
        self.by_token.insert(token, client);
        debug_assert_eq!(self.sessions.len(), self.by_activity.len());
        debug_assert_eq!(self.sessions.len(), self.by_token.len());
        client
    }

    /// Decides what to do with request `(client, token, sequence)` of a command with
    /// `fingerprint` and `access`, applied at `index` (`may_skip_earlier` as in
    /// [`super::ClientRequest`]); a request with the right token marks its session active.
    pub fn admit(
        &mut self,
        client: ClientId,
        token: SessionToken,
        (sequence, may_skip_earlier): (Sequence, bool),
        (fingerprint, access): (u64, Access),
        index: LogIndex,
    ) -> Admission<'_> {
        let Some(session) = self.sessions.get_mut(&client) else {
            return Admission::Refused(SessionError::UnknownSession);
        };
        if session.token != token {
            return Admission::Refused(SessionError::WrongToken);
        }
        self.by_activity.remove(&(session.last_active, client));
        session.last_active = index;
        self.by_activity.insert((index, client));
        #[cfg(feature = "bug-catalogue")]
        let found = if self.answer_newer_replies {
            session.executed.range(sequence..).next().map(|(_, e)| e)
        } else {
            session.executed.get(&sequence)
        };
        #[cfg(not(feature = "bug-catalogue"))]
        let found = session.executed.get(&sequence);
        if let Some(executed) = found {
            return match &executed.reply {
                _ if executed.fingerprint != fingerprint => {
                    Admission::Refused(SessionError::DifferentCommand)
                }
                Some(reply) => Admission::Duplicate(reply),
                None if access == Access::Read && sequence == session.highest => {
                    Admission::ReadAgain
                }
                None => Admission::Refused(SessionError::ReplyNotKept),
            };
        }
        if sequence < window_start(session.highest, self.limits.reply_window) {
            return Admission::Refused(SessionError::SequenceTooOld);
        }
        if sequence < session.highest {
            return Admission::Refused(SessionError::OutOfOrder);
        }
        if sequence.0 > session.highest.0 + 1 && !may_skip_earlier {
            return Admission::Refused(SessionError::Early);
        }
        Admission::Execute
    }

    /// Checks `(client, token)` for a resume at `index` and marks the session active;
    /// returns its highest executed sequence number.
    pub fn resume(
        &mut self,
        client: ClientId,
        token: SessionToken,
        index: LogIndex,
    ) -> Result<Sequence, SessionError> {
        let session = self
            .sessions
            .get_mut(&client)
            .ok_or(SessionError::UnknownSession)?;
        if session.token != token {
            return Err(SessionError::WrongToken);
        }
        self.by_activity.remove(&(session.last_active, client));
        session.last_active = index;
        self.by_activity.insert((index, client));
        Ok(session.highest)
    }

    /// Remembers a request that [`SessionTable::admit`] told to execute: its fingerprint, and
    /// its reply if `keep_reply` (writes) and the byte bounds allow.
    pub fn record(
        &mut self,
        client: ClientId,
        sequence: Sequence,
        fingerprint: u64,
        reply: &Frame,
        keep_reply: bool,
    ) {
        let limits = self.limits;
        let session = self
            .sessions
            .get_mut(&client)
            .expect("record follows a successful admit of the same session");
        assert!(
            sequence > session.highest,
            "a session's sequence numbers execute in increasing order"
        );
        session.highest = sequence;
        let reply = keep_reply.then(|| reply.clone());
        let added = reply.as_ref().map_or(0, Frame::size_bytes);
        session
            .executed
            .insert(sequence, Executed { fingerprint, reply });
        session.reply_bytes += added;
        self.reply_bytes += added;
        let start = window_start(session.highest, limits.reply_window);
        let kept = session.executed.split_off(&start);
        let forgotten: u64 = session
            .executed
            .values()
            .filter_map(|e| e.reply.as_ref())
            .map(Frame::size_bytes)
            .sum();
        session.executed = kept;
        session.reply_bytes -= forgotten;
        self.reply_bytes -= forgotten;
        while session.reply_bytes > limits.max_reply_bytes_per_session {
            let size = session
                .drop_oldest_reply()
                .expect("kept bytes mean a kept reply");
            self.reply_bytes -= size;
        }
        debug_assert!(session.executed.len() as u64 <= limits.reply_window);
        self.enforce_total_bound();
    }

    /// Drops replies, oldest first from the least recently active sessions, until the total
    /// is within `max_reply_bytes_total`.
    fn enforce_total_bound(&mut self) {
        let mut order = self.by_activity.iter();
        while self.reply_bytes > self.limits.max_reply_bytes_total {
            let &(_, client) = order
                .next()
                .expect("kept bytes mean a session keeping them");
            let session = self
                .sessions
                .get_mut(&client)
                .expect("indexed sessions exist");
            while self.reply_bytes > self.limits.max_reply_bytes_total {
                match session.drop_oldest_reply() {
                    Some(size) => self.reply_bytes -= size,
                    None => break,
                }
            }
        }
    }

    /// The token of session `client`, if it is open (for tests and inspection).
    #[must_use]
    pub fn token(&self, client: ClientId) -> Option<SessionToken> {
        self.sessions.get(&client).map(|s| s.token)
    }

    /// The highest executed sequence number of session `client`, if it is open.
    #[must_use]
    pub fn highest(&self, client: ClientId) -> Option<Sequence> {
        self.sessions.get(&client).map(|s| s.highest)
    }

    /// Bytes of replies kept over all sessions.
    #[must_use]
    pub fn reply_bytes(&self) -> u64 {
        self.reply_bytes
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
        self.by_token.remove(&session.token);
        self.reply_bytes -= session.reply_bytes;
    }
}

/// The oldest sequence number a session with `highest` executed still remembers.
fn window_start(highest: Sequence, window: u64) -> Sequence {
    Sequence(highest.0.saturating_sub(window - 1).max(1))
}
