//! # verity-net (not yet built)
//!
//! The peer transport for production nodes: TCP connections carrying `verity-core` codec
//! frames, with a handshake and reconnection. It is the subject of the production-node issue;
//! this crate holds nothing yet.
