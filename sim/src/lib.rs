//! # verity-sim
//!
//! A deterministic simulator for Verity clusters, and the linearizability checker that judges
//! what their clients saw.

pub mod checker;
pub mod generate;
pub mod history;
