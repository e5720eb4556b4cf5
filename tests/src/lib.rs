//! # verity-tests
//!
//! End-to-end tests that span several Verity crates live in this package's `tests/` folder once
//! there is more than one crate to span; the library itself is empty.
