//! # verity-tests
//!
//! End-to-end tests that span several Verity crates, in this package's `tests/` folder:
//!
//! - `bug_catalogue.rs`: every catalogued bug is caught by the simulator (needs `verity-sim`
//!   built with `bug-catalogue`, enabled here as a dev-dependency so no production build
//!   contains the bugs);
//! - `fuzz_corpora.rs`: every committed fuzz input passes its target on stable Rust;
//! - `node_cluster.rs`, `node_hostile_input.rs`, `redis_tools.rs`: real `verity node`
//!   processes on loopback ports, driven by the `redis` client crate, `redis-cli` and
//!   `redis-benchmark`.
//!
//! The library is what those tests share: the process harness [`ProcessCluster`], and
//! [`certificates`] for TLS.

pub mod certificates;
pub mod process_cluster;

pub use process_cluster::{ProcessCluster, verity_binary};
