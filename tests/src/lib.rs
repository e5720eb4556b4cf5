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
//! - `pictures.rs`, `node_status.rs`: the simulator's HTML pictures and the node's status
//!   page, loaded in headless Chromium.
//!
//! The library is what those tests share: the process harness [`ProcessCluster`],
//! [`certificates`] for TLS, and [`browser`] for headless Chromium.

pub mod browser;
pub mod certificates;
pub mod process_cluster;

pub use process_cluster::{ProcessCluster, verity_binary};
