//! # verity-tests
//!
//! End-to-end tests that span several Verity crates, in this package's `tests/` folder. Today:
//! the bug catalogue (`tests/bug_catalogue.rs`), which needs `verity-sim` built with its
//! `bug-catalogue` feature; this package enables it as a dev-dependency so that no production
//! build ever contains the bugs. The library itself is empty.
