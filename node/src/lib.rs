//! # verity-node: the production Verity node
//!
//! A tokio driver around the sans-IO [`verity_core::Node`]: one task owns the core and feeds
//! it ticks, peer messages and client requests; a writer thread group-commits the WAL; the
//! [`verity_net`] transport carries messages between nodes; a Redis-protocol (RESP2) server
//! answers clients. The `verity` binary (`src/main.rs`) runs nodes, local clusters and the
//! benchmark.
//!
//! - [`storage`]: data directory, WAL segments, recovery, the group-commit writer.
//! - [`settings`]: every knob of a node, from flags or a TOML file.
//! - [`driver`]: the task that owns the core and carries out its `Ready`s.
//! - [`server`]: client sockets around [`verity_engine::Connection`], which decides everything
//!   about a client (commands, sessions, ordering, retries, replies).
//! - [`metrics`]: Prometheus text and the status JSON from a node's figures ([`histogram`]);
//!   [`http`]: the listener that serves them and the live status page.
//! - [`run`]: starting and stopping a node; [`cluster`]: a local cluster of processes;
//!   [`mod@bench`]: the load generator; [`logging`]: log formats.

pub mod bench;
pub mod cluster;
pub mod driver;
pub mod histogram;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod run;
pub mod server;
pub mod settings;
pub mod storage;
pub mod tls;
