//! The replicated log held in memory by one node.
//!
//! The log holds the entries after a *prefix* `(prefix_index, prefix_term)`: the entries up to
//! the prefix were compacted away, a snapshot of the state machine stands for them (`(0, 0)`
//! before the first compaction). Invariants, checked by assertions:
//!
//! - entries are contiguous: `entries[k].index == prefix_index + 1 + k`;
//! - terms never decrease along the log, and every term is at least `prefix_term`.

use crate::kv::ClientOp;
use crate::types::{LogIndex, Term};
use serde::{Deserialize, Serialize};

/// One log entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The entry's position in the log.
    pub index: LogIndex,
    /// The term of the leader that created it.
    pub term: Term,
    /// What it carries.
    pub payload: EntryPayload,
}

impl Entry {
    /// The bytes of keys and values the entry carries: the size measure that batching limits
    /// use (it excludes the fixed overhead of the encoding).
    #[must_use]
    pub fn payload_bytes(&self) -> u64 {
        match &self.payload {
            EntryPayload::Noop
            | EntryPayload::Client {
                op: ClientOp::OpenSession { .. } | ClientOp::Resume { .. },
                ..
            } => 0,
            EntryPayload::Client {
                op: ClientOp::Request(request),
                ..
            } => request.command.payload_bytes(),
        }
    }
}

/// The content of a log entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryPayload {
    /// Appended by every new leader at the start of its term so that entries of earlier terms
    /// become committed through it (Raft §5.4.2, §8).
    Noop,
    /// A client operation for the key-value state machine, stamped with its leader's clock.
    Client {
        /// The operation.
        op: ClientOp,
        /// The leader's clock when it appended the entry, milliseconds since the Unix epoch:
        /// the time at which the state machine executes it (expiry, `TTL`). Never lower than
        /// the stamp of an earlier entry of the log (a new leader stamps no earlier than the
        /// last stamp it holds), so log time never goes back.
        time_ms: u64,
    },
}

/// An in-memory log: the entries after a (possibly empty) compacted prefix.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RaftLog {
    prefix_index: LogIndex,
    prefix_term: Term,
    entries: Vec<Entry>,
}

/// Recovered entries that do not form a valid log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    /// An entry is not at the index that follows its predecessor.
    #[error(
        "log entry at position {position} has index {found}, expected {expected}: the log has a gap or is out of order"
    )]
    NotContiguous {
        /// Position in the recovered list.
        position: usize,
        /// The index found.
        found: LogIndex,
        /// The index expected.
        expected: LogIndex,
    },
    /// An entry's term is lower than its predecessor's.
    #[error("log entry {index} has term {term}, lower than the term {previous} before it")]
    TermDecreases {
        /// The entry's index.
        index: LogIndex,
        /// Its term.
        term: Term,
        /// The term of the entry (or prefix) before it.
        previous: Term,
    },
}

impl RaftLog {
    /// A log from recovered entries, which must directly follow the prefix `(index, term)`.
    pub fn from_entries(
        (prefix_index, prefix_term): (LogIndex, Term),
        entries: Vec<Entry>,
    ) -> Result<RaftLog, LogError> {
        let log = RaftLog {
            prefix_index,
            prefix_term,
            entries: Vec::new(),
        };
        let mut previous = log.prefix_term;
        for (position, entry) in entries.iter().enumerate() {
            let expected = LogIndex(log.prefix_index.0 + 1 + position as u64);
            if entry.index != expected {
                return Err(LogError::NotContiguous {
                    position,
                    found: entry.index,
                    expected,
                });
            }
            if entry.term < previous {
                return Err(LogError::TermDecreases {
                    index: entry.index,
                    term: entry.term,
                    previous,
                });
            }
            previous = entry.term;
        }
        Ok(RaftLog { entries, ..log })
    }

    /// The index of the first entry held (one past the compacted prefix).
    #[must_use]
    pub fn first_index(&self) -> LogIndex {
        self.prefix_index.next()
    }

    /// The index of the last entry, or the prefix's index when no entry is held.
    #[must_use]
    pub fn last_index(&self) -> LogIndex {
        self.entries
            .last()
            .map_or(self.prefix_index, |entry| entry.index)
    }

    /// The term of the last entry, or the prefix's term when no entry is held.
    #[must_use]
    pub fn last_term(&self) -> Term {
        self.entries
            .last()
            .map_or(self.prefix_term, |entry| entry.term)
    }

    /// The term at `index`: the prefix's term at the prefix index, `None` past the end or
    /// inside the compacted prefix.
    #[must_use]
    pub fn term_at(&self, index: LogIndex) -> Option<Term> {
        if index == self.prefix_index {
            return Some(self.prefix_term);
        }
        self.entry(index).map(|entry| entry.term)
    }

    /// Whether the log holds an entry (or the prefix) at `index` with `term`.
    #[must_use]
    pub fn matches(&self, index: LogIndex, term: Term) -> bool {
        self.term_at(index) == Some(term)
    }

    /// The entry at `index`, if held.
    #[must_use]
    pub fn entry(&self, index: LogIndex) -> Option<&Entry> {
        let offset = index.0.checked_sub(self.first_index().0)?;
        self.entries.get(usize::try_from(offset).ok()?)
    }

    /// Up to `max` entries starting at `from` (empty when `from` is past the end).
    #[must_use]
    pub fn slice(&self, from: LogIndex, max: usize) -> &[Entry] {
        assert!(
            from >= self.first_index(),
            "slice from {from} inside the compacted prefix"
        );
        let start = usize::try_from(from.0 - self.first_index().0).unwrap_or(usize::MAX);
        let start = start.min(self.entries.len());
        let end = start.saturating_add(max).min(self.entries.len());
        &self.entries[start..end]
    }

    /// Appends one entry at the end. Its index must be `last_index + 1` and its term at least
    /// the last term.
    pub fn append(&mut self, entry: Entry) {
        assert_eq!(
            entry.index,
            self.last_index().next(),
            "append must extend the log by one"
        );
        assert!(
            entry.term >= self.last_term(),
            "terms never decrease along the log"
        );
        self.entries.push(entry);
    }

    /// Removes every entry at `index` and after.
    pub fn truncate_from(&mut self, index: LogIndex) {
        assert!(
            index >= self.first_index(),
            "cannot truncate into the compacted prefix"
        );
        let keep = usize::try_from(index.0 - self.first_index().0).unwrap_or(usize::MAX);
        self.entries.truncate(keep);
    }

    /// The last index at or below `index` whose term is at most `term`, with that term: the
    /// point where a log ending at `(index, term)` can at best agree with this one. Used on both
    /// sides of AppendEntries conflict resolution to skip a whole term per round trip.
    #[must_use]
    pub fn find_conflict_by_term(&self, index: LogIndex, term: Term) -> (LogIndex, Term) {
        let mut at = index.min(self.last_index());
        loop {
            match self.term_at(at) {
                Some(found) if found <= term => return (at, found),
                Some(_) if at > self.prefix_index => at = at.prev(),
                _ => return (self.prefix_index, self.prefix_term),
            }
        }
    }

    /// The compacted prefix: the index and term of the last entry a snapshot stands for.
    #[must_use]
    pub fn prefix(&self) -> (LogIndex, Term) {
        (self.prefix_index, self.prefix_term)
    }

    /// Compacts the log up to `index`, which it must hold (or be the prefix): the entries up
    /// to it go, the entries after it stay.
    pub fn compact_to(&mut self, index: LogIndex) {
        let term = self
            .term_at(index)
            .expect("compaction point is within the log");
        let dropped = usize::try_from(index.0 - self.prefix_index.0).unwrap_or(usize::MAX);
        self.entries.drain(..dropped.min(self.entries.len()));
        (self.prefix_index, self.prefix_term) = (index, term);
    }

    /// Replaces the whole log with an empty one after the prefix `(index, term)`: a snapshot
    /// the log does not agree with stands for everything up to `index`.
    pub fn reset_to(&mut self, index: LogIndex, term: Term) {
        assert!(
            index >= self.prefix_index && term >= self.prefix_term,
            "a snapshot never moves the log back"
        );
        self.entries.clear();
        (self.prefix_index, self.prefix_term) = (index, term);
    }

    /// Every entry held, in order.
    #[must_use]
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }
}
