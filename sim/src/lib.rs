//! # verity-sim (not yet built)
//!
//! The deterministic cluster simulator: real `verity-core` nodes on virtual time, a
//! fault-injecting network and disk, client histories and a linearizability checker. It is the
//! subject of the simulator issue; this crate holds nothing yet.
