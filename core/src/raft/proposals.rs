//! Proposals made on this node that wait for their entry's fate.
//!
//! Each waiting entry carries the tags to answer when it is applied (or overwritten). A retry
//! of an operation that is already waiting here joins the existing entry instead of appending
//! a duplicate: under load, retries then add no work to the log, which keeps a slow cluster
//! from collapsing under its clients' timeouts. A retry is the same operation ([`Retry`]): the
//! same command under the same session, token and number; the resumption of the same session
//! with the same token; the opening of a session with the same token. At most
//! [`MAX_TAGS_PER_ENTRY`] attempts wait on one entry.

use super::RequestTag;
use crate::kv::{ClientOp, SessionToken};
use crate::types::{ClientId, LogIndex, Sequence, Term};
use std::collections::BTreeMap;

/// Most attempts (tags) that may wait on one entry.
pub const MAX_TAGS_PER_ENTRY: usize = 16;

/// One entry's waiting proposals.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Waiting {
    /// The term the entry was proposed in.
    pub term: Term,
    /// Every attempt to answer, oldest first.
    pub tags: Vec<RequestTag>,
    /// The operation the entry carries.
    retry: Retry,
}

/// What makes two proposals the same operation, whose answer either may take.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Retry {
    /// A command: its session, token, number and the command's fingerprint.
    Request(ClientId, SessionToken, Sequence, u64),
    /// Resuming a session with a token.
    Resume(ClientId, SessionToken),
    /// Opening a session with a token (an open session's token returns that session).
    Open(SessionToken),
}

impl Retry {
    /// What `op` is the same operation as.
    pub fn of(op: &ClientOp) -> Retry {
        match op {
            ClientOp::Request(request) => Retry::Request(
                request.client,
                request.token,
                request.sequence,
                request.command.fingerprint(),
            ),
            ClientOp::Resume { client, token } => Retry::Resume(*client, *token),
            ClientOp::OpenSession { token } => Retry::Open(*token),
        }
    }
}

/// The waiting proposals, by index and by operation.
#[derive(Clone, Debug, Default)]
pub(super) struct Proposals {
    by_index: BTreeMap<LogIndex, Waiting>,
    by_retry: BTreeMap<Retry, LogIndex>,
}

/// What to do with a retry.
pub(super) enum Join {
    /// It joined the entry at this index.
    Joined(LogIndex),
    /// That entry already has [`MAX_TAGS_PER_ENTRY`] attempts waiting.
    Full,
    /// No entry carries this request: append a new one.
    New,
}

impl Proposals {
    /// Lets attempt `tag` of operation `retry` wait on the entry already carrying it.
    pub fn join(&mut self, retry: Retry, tag: RequestTag) -> Join {
        let Some(&index) = self.by_retry.get(&retry) else {
            return Join::New;
        };
        let waiting = self
            .by_index
            .get_mut(&index)
            .expect("both maps hold the same entries");
        if waiting.tags.len() >= MAX_TAGS_PER_ENTRY {
            return Join::Full;
        }
        waiting.tags.push(tag);
        Join::Joined(index)
    }

    /// Records a new entry at `index` waiting for `tag`.
    pub fn insert(&mut self, index: LogIndex, term: Term, tag: RequestTag, retry: Retry) {
        self.by_retry.insert(retry, index);
        let previous = self.by_index.insert(
            index,
            Waiting {
                term,
                tags: vec![tag],
                retry,
            },
        );
        assert!(
            previous.is_none(),
            "an overwritten proposal was answered when overwritten"
        );
    }

    /// Removes and returns what waits on `index`.
    pub fn take(&mut self, index: LogIndex) -> Option<Waiting> {
        let waiting = self.by_index.remove(&index)?;
        self.by_retry.remove(&waiting.retry);
        Some(waiting)
    }

    /// Removes and returns everything waiting at `from` or later.
    pub fn take_from(&mut self, from: LogIndex) -> Vec<(LogIndex, Waiting)> {
        let taken = self.by_index.split_off(&from);
        for waiting in taken.values() {
            self.by_retry.remove(&waiting.retry);
        }
        taken.into_iter().collect()
    }
}
