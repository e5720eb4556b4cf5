//! # verity-node (not yet built)
//!
//! The production node: a tokio driver around `verity-core`, a write-ahead log on disk and a
//! Redis-protocol client server. It is the subject of the production-node issue; this crate
//! holds nothing yet.
