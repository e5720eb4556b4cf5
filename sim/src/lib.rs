//! # verity-sim
//!
//! A deterministic simulator for Verity clusters, and the linearizability checker that judges
//! what their clients saw. One seed drives everything: the fault plan, the network, the disks,
//! the clients and every node's election timers. The nodes run the real `verity-core`, the real
//! codec on every message and the real WAL encoding and recovery on every write and restart.

pub mod checker;
pub mod client;
mod conditions;
pub mod disk;
pub mod duration;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod generate;
pub mod history;
pub mod invariants;
pub mod minimize;
pub mod nemesis;
pub mod network;
pub mod options;
pub mod picture;
pub mod rng;
pub mod runner;
pub mod scenario;
pub mod script;
pub mod sessions;
pub mod simulation;
pub mod timeline;
pub mod trace;

pub use options::{FaultKind, FaultPlan, SimOptions};
pub use simulation::{Failure, InvariantBroken, RunOutcome, Simulation, Stats};
