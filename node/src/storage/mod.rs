//! Durable storage of one node: the data directory, the write-ahead log and the snapshot file
//! in it.
//!
//! # Durability model
//!
//! - `fdatasync` is the only promise: bytes written and synced survive power loss; bytes
//!   written but not synced may vanish or survive partly (a torn tail, maybe zero-filled).
//! - Nothing that depends on a record leaves the node before the record is synced: the driver
//!   sends Raft messages and acknowledges entries only after the writer reports the sync.
//! - Creating a segment or the metadata file is followed by a sync of the directory, so the
//!   file's existence is as durable as its contents.
//! - Opening syncs every segment and the WAL directory first: what a killed process left in
//!   the page cache is read back like synced data, but it is durable only once synced.
//! - Recovery keeps every intact record and truncates only damage a crash can leave: bytes of
//!   the *last* segment that no later record proves synced (see [`verity_core::wal`]).
//!   Anything else, damage that a later record proves synced, a record standing where
//!   another belongs, damage in an earlier segment, or a missing segment, refuses to start
//!   with the file and byte offset: a silent truncation could lose votes and committed
//!   entries.

pub mod data_dir;
pub mod segments;
pub mod snapshot_file;
pub mod writer;

use std::path::{Path, PathBuf};

pub use data_dir::{DataDir, DataDirError, InitialClusterState, Metadata, holds_node_data};
pub use segments::{SegmentedWal, StorageError, Truncated, WalAnchor, WalOpened};
pub use snapshot_file::{SnapshotFileError, StoredSnapshot};
pub use writer::{Durable, FsyncPolicy, Job, WalFigures, WalStats, WalWriter};

/// A filesystem operation that failed, with what was being done to which path.
#[derive(Debug, thiserror::Error)]
#[error("cannot {action} {}: {source}", path.display())]
pub struct IoError {
    /// What was being done ("read", "sync directory", ...).
    pub action: &'static str,
    /// To which path.
    pub path: PathBuf,
    /// The OS error.
    pub source: std::io::Error,
}

/// `map_err` adapter: `file.sync_all().map_err(io("sync", &path))?`.
fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> IoError {
    let path = path.to_path_buf();
    move |source| IoError {
        action,
        path,
        source,
    }
}
