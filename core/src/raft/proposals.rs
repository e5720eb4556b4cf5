//! Proposals made on this node that wait for their entry's fate.
//!
//! Each waiting entry carries the tags to answer when it is applied (or overwritten). A retry
//! of a request that is already waiting here — same session, same sequence number — joins the
//! existing entry instead of appending a duplicate: under load, retries then add no work to the
//! log, which keeps a slow cluster from collapsing under its clients' timeouts. At most
//! [`MAX_TAGS_PER_ENTRY`] attempts wait on one entry.

use super::RequestTag;
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
    /// The session request the entry carries, if any.
    request: Option<(ClientId, Sequence)>,
}

/// The waiting proposals, by index and by session request.
#[derive(Clone, Debug, Default)]
pub(super) struct Proposals {
    by_index: BTreeMap<LogIndex, Waiting>,
    by_request: BTreeMap<(ClientId, Sequence), LogIndex>,
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
    /// Lets attempt `tag` of request `(client, sequence)` wait on the entry already carrying it.
    pub fn join(&mut self, request: (ClientId, Sequence), tag: RequestTag) -> Join {
        let Some(&index) = self.by_request.get(&request) else {
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
    pub fn insert(
        &mut self,
        index: LogIndex,
        term: Term,
        tag: RequestTag,
        request: Option<(ClientId, Sequence)>,
    ) {
        if let Some(request) = request {
            self.by_request.insert(request, index);
        }
        let previous = self.by_index.insert(
            index,
            Waiting {
                term,
                tags: vec![tag],
                request,
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
        if let Some(request) = waiting.request {
            self.by_request.remove(&request);
        }
        Some(waiting)
    }

    /// Removes and returns everything waiting at `from` or later.
    pub fn take_from(&mut self, from: LogIndex) -> Vec<(LogIndex, Waiting)> {
        let taken = self.by_index.split_off(&from);
        for waiting in taken.values() {
            if let Some(request) = waiting.request {
                self.by_request.remove(&request);
            }
        }
        taken.into_iter().collect()
    }
}
