//! The data directory: a metadata file naming the cluster and node, and a lock.
//!
//! Layout: `DIR/verity.toml` (metadata), `DIR/LOCK` (held with an exclusive OS file lock for
//! the life of the process), `DIR/wal/` (segments, see [`super::segments`]).

use super::{IoError, io};
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use verity_core::NodeId;

/// The on-disk format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

const METADATA_FILE: &str = "verity.toml";
const LOCK_FILE: &str = "LOCK";

/// What the metadata file records; checked on every start.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// Version of the on-disk format.
    pub format_version: u32,
    /// The cluster the data belongs to.
    pub cluster_id: String,
    /// The node the data belongs to.
    pub node_id: u64,
}

impl std::fmt::Display for Metadata {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "node {} of cluster {:?} (format {})",
            self.node_id, self.cluster_id, self.format_version
        )
    }
}

/// Why a data directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// A filesystem operation failed.
    #[error(transparent)]
    Io(#[from] IoError),
    /// Another process holds the lock.
    #[error(
        "data directory {0} is in use by another process (its LOCK is held): stop that node first"
    )]
    Locked(PathBuf),
    /// The metadata file cannot be parsed.
    #[error("metadata file {path} is unreadable: {reason}")]
    BadMetadata {
        /// The file.
        path: PathBuf,
        /// The parse error.
        reason: String,
    },
    /// The directory belongs to another node, cluster or format.
    #[error(
        "data directory {} holds {found}, but this is {expected}: point --data-dir at this node's own directory",
        path.display()
    )]
    Mismatch {
        /// The directory.
        path: PathBuf,
        /// What it holds.
        found: Metadata,
        /// What was expected.
        expected: Metadata,
    },
}

/// An open, locked data directory. The lock is released when this is dropped.
#[derive(Debug)]
pub struct DataDir {
    path: PathBuf,
    fresh: bool,
    _lock: File,
}

/// Syncs a directory so that entries created or renamed in it are durable.
pub fn sync_dir(path: &Path) -> std::io::Result<()> {
    File::open(path)?.sync_all()
}

impl DataDir {
    /// Opens (creating if needed) the directory for `cluster_id`/`node`, takes its lock and
    /// checks its metadata. A new directory gets its metadata written and synced.
    pub fn open(path: &Path, cluster_id: &str, node: NodeId) -> Result<DataDir, DataDirError> {
        fs::create_dir_all(path).map_err(io("create directory", path))?;
        let lock_path = path.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io("open lock file", &lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => return Err(DataDirError::Locked(path.into())),
            Err(fs::TryLockError::Error(error)) => return Err(io("lock", &lock_path)(error).into()),
        }
        let expected = Metadata {
            format_version: FORMAT_VERSION,
            cluster_id: cluster_id.to_string(),
            node_id: node.0,
        };
        let meta_path = path.join(METADATA_FILE);
        let fresh = !meta_path.exists();
        if fresh {
            write_metadata(path, &expected)?;
        } else {
            let text = fs::read_to_string(&meta_path).map_err(io("read", &meta_path))?;
            let found: Metadata =
                toml::from_str(&text).map_err(|error| DataDirError::BadMetadata {
                    path: meta_path.clone(),
                    reason: error.to_string(),
                })?;
            if found != expected {
                return Err(DataDirError::Mismatch {
                    path: path.into(),
                    found,
                    expected,
                });
            }
        }
        Ok(DataDir {
            path: path.into(),
            fresh,
            _lock: lock,
        })
    }

    /// The directory.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this start created the directory's metadata (a brand-new node).
    #[must_use]
    pub fn is_fresh(&self) -> bool {
        self.fresh
    }

    /// Where the WAL segments live.
    #[must_use]
    pub fn wal_dir(&self) -> PathBuf {
        self.path.join("wal")
    }
}

fn write_metadata(dir: &Path, metadata: &Metadata) -> Result<(), DataDirError> {
    let text = toml::to_string(metadata).expect("metadata always serializes");
    let tmp = dir.join(format!("{METADATA_FILE}.tmp"));
    let mut file = File::create(&tmp).map_err(io("create", &tmp))?;
    file.write_all(text.as_bytes()).map_err(io("write", &tmp))?;
    file.sync_all().map_err(io("sync", &tmp))?;
    let target = dir.join(METADATA_FILE);
    fs::rename(&tmp, &target).map_err(io("rename into", &target))?;
    sync_dir(dir).map_err(io("sync directory", dir))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_open_is_refused_while_the_first_holds_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataDir::open(dir.path(), "c", NodeId(1)).unwrap();
        assert!(first.is_fresh());
        let error = DataDir::open(dir.path(), "c", NodeId(1)).unwrap_err();
        assert!(matches!(error, DataDirError::Locked(_)), "{error}");
        drop(first);
        let again = DataDir::open(dir.path(), "c", NodeId(1)).unwrap();
        assert!(!again.is_fresh());
    }

    #[test]
    fn another_nodes_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(DataDir::open(dir.path(), "c", NodeId(1)).unwrap());
        let error = DataDir::open(dir.path(), "c", NodeId(2)).unwrap_err();
        assert!(error.to_string().contains("point --data-dir"), "{error}");
        let error = DataDir::open(dir.path(), "other", NodeId(1)).unwrap_err();
        assert!(matches!(error, DataDirError::Mismatch { .. }), "{error}");
    }
}
