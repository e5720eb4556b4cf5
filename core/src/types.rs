//! Identifier and counter newtypes shared by every module.
//!
//! Raft juggles several kinds of integers (terms, indexes, node ids, client sequence numbers);
//! mixing them up is a classic source of bugs, so each gets its own type. All are plain `u64`
//! underneath, ordered, and cheap to copy.

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(
            Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
        )]
        pub struct $name(pub u64);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }
    };
}

id_type!(
    /// A cluster member's identity. Zero is not a valid node id.
    NodeId,
    "n"
);
id_type!(
    /// A Raft term: a logical clock that only grows. Term 0 precedes every election.
    Term,
    "t"
);
id_type!(
    /// A position in the replicated log. Index 0 is the empty prefix; the first entry is 1.
    LogIndex,
    "i"
);
id_type!(
    /// A client session's identity, assigned by the state machine when the session is opened
    /// (it is the log index of the entry that opened it, so it is unique for ever).
    ClientId,
    "c"
);
id_type!(
    /// A client's per-session request counter. The first request of a session is 1; a retry
    /// reuses the number of the request it retries.
    Sequence,
    "s"
);

impl LogIndex {
    /// The index right after this one.
    #[must_use]
    pub fn next(self) -> LogIndex {
        LogIndex(self.0 + 1)
    }

    /// The index right before this one, saturating at zero.
    #[must_use]
    pub fn prev(self) -> LogIndex {
        LogIndex(self.0.saturating_sub(1))
    }
}

impl Term {
    /// The term after this one.
    #[must_use]
    pub fn next(self) -> Term {
        Term(self.0 + 1)
    }
}
