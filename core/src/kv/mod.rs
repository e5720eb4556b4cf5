//! The replicated key-value state machine: a [`Store`] of Redis strings behind a
//! [`SessionTable`], executing the commands of [`cmd`].
//!
//! Raft hands it committed entries in index order, exactly once per node lifetime, each with
//! its leader's time; it answers each client operation with a [`Reply`]. It is a pure function
//! of the applied log prefix (entries and their times).

mod client;
pub mod cmd;
mod digest;
mod frame;
mod image;
mod session;
mod store;

pub use client::{ClientOp, ClientRequest, Reply, SessionError, SessionToken};
pub use cmd::{Access, Command, CommandError};
pub use frame::Frame;
pub use image::ImageError;
pub use session::{Admission, SessionTable};
pub use store::{Deadline, Store, Versioned};

use crate::config::SessionLimits;
use crate::types::LogIndex;

/// The key-value store with exactly-once sessions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateMachine {
    store: Store,
    sessions: SessionTable,
    applied: LogIndex,
    /// A running digest of every applied entry: its index, the time it ran at and its reply.
    trail: u64,
    max_value_bytes: u64,
    /// Requests up to this index execute without the session table (bug catalogue only).
    #[cfg(feature = "bug-catalogue")]
    sessionless_until: LogIndex,
    /// Transactions' reads see the store as it was before the transaction (bug catalogue
    /// only).
    #[cfg(feature = "bug-catalogue")]
    transaction_reads_before: bool,
    /// A version compare-and-swap also holds when the expected version is newer than the
    /// key's (bug catalogue only).
    #[cfg(feature = "bug-catalogue")]
    cas_version_at_least: bool,
}

impl StateMachine {
    /// An empty state machine that has applied nothing; writes may produce values of at most
    /// `max_value_bytes`.
    #[must_use]
    pub fn new(limits: SessionLimits, max_value_bytes: u64) -> StateMachine {
        StateMachine {
            store: Store::default(),
            sessions: SessionTable::new(limits),
            applied: LogIndex(0),
            trail: 0,
            max_value_bytes,
            #[cfg(feature = "bug-catalogue")]
            sessionless_until: LogIndex(0),
            #[cfg(feature = "bug-catalogue")]
            transaction_reads_before: false,
            #[cfg(feature = "bug-catalogue")]
            cas_version_at_least: false,
        }
    }

    /// The `TransactionReadsBefore` bug: a transaction's reads see the store as it was when
    /// the transaction began, not its own earlier writes.
    #[cfg(feature = "bug-catalogue")]
    pub fn read_transactions_before_their_writes(&mut self) {
        self.transaction_reads_before = true;
    }

    /// The `SessionWindowNewerReply` bug (see [`SessionTable::answer_retries_with_newer_replies`]).
    #[cfg(feature = "bug-catalogue")]
    pub fn answer_retries_with_newer_replies(&mut self) {
        self.sessions.answer_retries_with_newer_replies();
    }

    /// The `CasVersionAtLeast` bug: `CASVER` swaps when the expected version is at least the
    /// key's, not only equal.
    #[cfg(feature = "bug-catalogue")]
    pub fn compare_versions_at_least(&mut self) {
        self.cas_version_at_least = true;
    }

    /// The `ForgetSessions` bug: requests replayed up to `index` rebuild the store but not the
    /// session table, so their retries execute again.
    #[cfg(feature = "bug-catalogue")]
    pub fn forget_sessions_until(&mut self, index: LogIndex) {
        self.sessionless_until = index;
    }

    /// Applies the entry at `index`, which must be the next one. `op` is `None` for entries
    /// that carry no client operation (a leader's no-op); `time_ms` is the leader time the
    /// entry carries, never earlier than an earlier entry's. Returns the reply for a client op.
    pub fn apply(&mut self, index: LogIndex, time_ms: u64, op: Option<&ClientOp>) -> Option<Reply> {
        assert_eq!(
            index,
            self.applied.next(),
            "entries are applied in order, once"
        );
        self.applied = index;
        self.sessions.expire(index);
        let mut trail = digest::Digest::default();
        trail.number(self.trail);
        trail.number(index.0);
        let Some(op) = op else {
            self.trail = trail.finish();
            return None;
        };
        trail.number(time_ms);
        self.store.advance(time_ms);
        let reply = match op {
            ClientOp::OpenSession { token } => Reply::SessionOpened {
                client: self.sessions.open(index, *token),
            },
            ClientOp::Resume { client, token } => {
                match self.sessions.resume(*client, *token, index) {
                    Ok(highest) => Reply::Resumed { highest },
                    Err(error) => Reply::Rejected(error),
                }
            }
            #[cfg(feature = "bug-catalogue")]
            ClientOp::Request(request) if index <= self.sessionless_until => {
                Reply::Executed(self.execute(index, &request.command))
            }
            ClientOp::Request(request) => {
                let fingerprint = request.command.fingerprint();
                let access = request.command.access();
                let number = (request.sequence, request.may_skip_earlier);
                match self.sessions.admit(
                    request.client,
                    request.token,
                    number,
                    (fingerprint, access),
                    index,
                ) {
                    Admission::Duplicate(reply) => Reply::Executed(reply.clone()),
                    Admission::Refused(error) => Reply::Rejected(error),
                    Admission::ReadAgain => Reply::Executed(self.execute(index, &request.command)),
                    Admission::Execute => {
                        let reply = self.execute(index, &request.command);
                        let keep = access == Access::Write;
                        self.sessions.record(
                            request.client,
                            request.sequence,
                            fingerprint,
                            &reply,
                            keep,
                        );
                        Reply::Executed(reply)
                    }
                }
            }
        };
        trail.reply(&reply);
        self.trail = trail.finish();
        Some(reply)
    }

    fn execute(&mut self, index: LogIndex, command: &Command) -> Frame {
        #[cfg(feature = "bug-catalogue")]
        if self.cas_version_at_least
            && let Command::Verity(cmd::VerityCommand::Cas {
                key,
                expect: cmd::Expect::Version(want),
                new,
            }) = command
            && let Some(have) = self.store.get(key)
            && *want >= have.version
        {
            let matching = Command::Verity(cmd::VerityCommand::Cas {
                key: key.clone(),
                expect: cmd::Expect::Version(have.version),
                new: new.clone(),
            });
            return matching.apply(&mut cmd::Context {
                store: &mut self.store,
                index,
                max_value_bytes: self.max_value_bytes,
            });
        }
        #[cfg(feature = "bug-catalogue")]
        if let (true, Command::Exec(transaction)) = (self.transaction_reads_before, command) {
            let before = self.store.clone();
            let replies = transaction.commands.iter().map(|command| {
                let mut snapshot = before.clone();
                let store = match command.access() {
                    Access::Read => &mut snapshot,
                    Access::Write => &mut self.store,
                };
                command.apply(&mut cmd::Context {
                    store,
                    index,
                    max_value_bytes: self.max_value_bytes,
                })
            });
            return Frame::Array(replies.collect());
        }
        command.apply(&mut cmd::Context {
            store: &mut self.store,
            index,
            max_value_bytes: self.max_value_bytes,
        })
    }

    /// Runs read `command` (one with [`Command::read_keys`]) against the applied state as it
    /// stands at leader time `time_ms` (never earlier than the last applied entry's time):
    /// keys whose deadline passed by then read as absent. Changes nothing: the read has no
    /// log entry, so every replica's state stays a function of the applied log alone.
    ///
    /// # Panics
    /// If `command` is not a read of named keys (the caller routes only those here).
    ///
    /// When no key it reads has a deadline, the time cannot change its reply, and it runs on
    /// the store itself (a read of named keys never writes); otherwise on an excerpt of its
    /// keys moved to `time_ms`.
    #[must_use]
    pub fn read(&mut self, command: &Command, time_ms: u64) -> Frame {
        let keys = command
            .read_keys()
            .expect("only reads of named keys are served without the log");
        debug_assert_eq!(command.access(), Access::Read);
        let timeless = keys.iter().all(|key| {
            self.store
                .get(key)
                .is_none_or(|v| v.expires_at_ms.is_none())
        });
        let mut excerpt;
        let store = if timeless {
            &mut self.store
        } else {
            excerpt = self.store.excerpt(&keys);
            excerpt.advance(time_ms.max(self.store.now_ms()));
            &mut excerpt
        };
        command.apply(&mut cmd::Context {
            store,
            index: self.applied,
            max_value_bytes: self.max_value_bytes,
        })
    }

    /// A running digest of every entry applied so far (its index, the time it ran at, its
    /// reply): O(1) to read, and equal on replicas that applied the same prefix the same way.
    #[must_use]
    pub fn trail(&self) -> u64 {
        self.trail
    }

    /// A digest of everything the state machine holds (the store, the sessions, the applied
    /// index and the trail): replicas that applied the same log prefix have the same digest.
    /// It walks the whole state; the simulator compares it at the end of every run.
    #[must_use]
    pub fn digest(&self) -> u64 {
        let mut digest = digest::Digest::default();
        digest.number(self.applied.0);
        digest.number(self.trail);
        self.store.digest_into(&mut digest);
        self.sessions.digest_into(&mut digest);
        digest.finish()
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
