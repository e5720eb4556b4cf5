//! The data directory: a metadata file naming the cluster and node, and a lock.
//!
//! Layout: `DIR/verity.toml` (metadata), `DIR/LOCK` (held with an exclusive OS file lock for
//! the life of the process), `DIR/wal/` (segments, see [`super::segments`]).
//!
//! A directory without metadata is a node that has never run: it is created only when the
//! node is told it is new (`--initial-cluster-state new`), because an empty or mistyped
//! directory under an existing node's id would start a node that remembers no vote and no
//! entry, which could vote twice and undo committed writes. The metadata is written last
//! ([`DataDir::commit`], after the WAL exists and is synced), so a crash during creation
//! leaves a directory that the next `new` start completes, never one that cannot start.

use super::{IoError, io};
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use verity_core::NodeId;

/// The on-disk format this build writes and reads (3: WAL records with checksummed headers,
/// numbered, each saying which records before it were synced, and snapshot markers; a
/// snapshot file beside the WAL).
pub const FORMAT_VERSION: u32 = 3;

/// Whether a node may create its data: `--initial-cluster-state` (named after etcd's flag).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Serialize, Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum InitialClusterState {
    /// The node has never run in this cluster: create its data directory if it has none.
    New,
    /// The node has run before: its data must be there (the default).
    #[default]
    Existing,
}

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
    /// No data, and the node was not told it is new.
    #[error(
        "no Verity data in {} for node {node} of cluster {cluster_id:?}. If this node has never \
         run in that cluster, start it with --initial-cluster-state new. If it has, this is the \
         wrong directory or its data is lost: starting it empty could let it vote twice and undo \
         committed writes, so point --data-dir at its own directory or restore it from a copy",
        path.display()
    )]
    NoData {
        /// The directory.
        path: PathBuf,
        /// The cluster.
        cluster_id: String,
        /// The node.
        node: u64,
    },
    /// The directory was written by a build with another on-disk format.
    #[error(
        "data directory {} is in on-disk format {found}, but this build reads format \
         {FORMAT_VERSION} only: run the Verity version that wrote it",
        path.display()
    )]
    OtherFormat {
        /// The directory.
        path: PathBuf,
        /// Its format.
        found: u32,
    },
    /// The directory belongs to another node or cluster.
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
    metadata: Metadata,
    _lock: File,
}

/// Whether `path` holds a node's data (its metadata file): a node started on it is not new.
#[must_use]
pub fn holds_node_data(path: &Path) -> bool {
    path.join(METADATA_FILE).exists()
}

/// Syncs a directory so that entries created or renamed in it are durable.
pub fn sync_dir(path: &Path) -> std::io::Result<()> {
    File::open(path)?.sync_all()
}

impl DataDir {
    /// Opens the directory for `cluster_id`/`node`, takes its lock and checks its metadata.
    /// Without metadata, the node is new: that is refused unless `initial` is
    /// [`InitialClusterState::New`], and then the directory is created (its metadata waits
    /// for [`DataDir::commit`]).
    pub fn open(
        path: &Path,
        cluster_id: &str,
        node: NodeId,
        initial: InitialClusterState,
    ) -> Result<DataDir, DataDirError> {
        if !holds_node_data(path) && initial == InitialClusterState::Existing {
            return Err(DataDirError::NoData {
                path: path.into(),
                cluster_id: cluster_id.to_string(),
                node: node.0,
            });
        }
        fs::create_dir_all(path).map_err(io("create directory", path))?;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent).map_err(io("sync directory", parent))?;
        }
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
        // Checked again under the lock: the check above only keeps a refusal from creating.
        let fresh = !holds_node_data(path);
        if !fresh {
            let meta_path = path.join(METADATA_FILE);
            let text = fs::read_to_string(&meta_path).map_err(io("read", &meta_path))?;
            let found: Metadata =
                toml::from_str(&text).map_err(|error| DataDirError::BadMetadata {
                    path: meta_path.clone(),
                    reason: error.to_string(),
                })?;
            if found.format_version != FORMAT_VERSION {
                return Err(DataDirError::OtherFormat {
                    path: path.into(),
                    found: found.format_version,
                });
            }
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
            metadata: expected,
            _lock: lock,
        })
    }

    /// Makes a new directory's creation durable by writing its metadata (synced, with the
    /// directory); call once its WAL exists and is synced. Does nothing for a directory that
    /// had metadata.
    pub fn commit(&self) -> Result<(), DataDirError> {
        if self.fresh {
            write_metadata(&self.path, &self.metadata)?;
        }
        Ok(())
    }

    /// The directory.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the directory had no metadata when opened (a brand-new node).
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

    const NEW: InitialClusterState = InitialClusterState::New;

    fn create(path: &Path, node: u64) {
        DataDir::open(path, "c", NodeId(node), NEW)
            .unwrap()
            .commit()
            .unwrap();
    }

    #[test]
    fn a_second_open_is_refused_while_the_first_holds_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataDir::open(dir.path(), "c", NodeId(1), NEW).unwrap();
        assert!(first.is_fresh());
        first.commit().unwrap();
        let error = DataDir::open(dir.path(), "c", NodeId(1), NEW).unwrap_err();
        assert!(matches!(error, DataDirError::Locked(_)), "{error}");
        drop(first);
        let again =
            DataDir::open(dir.path(), "c", NodeId(1), InitialClusterState::Existing).unwrap();
        assert!(!again.is_fresh());
    }

    #[test]
    fn another_nodes_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        create(dir.path(), 1);
        let error = DataDir::open(dir.path(), "c", NodeId(2), NEW).unwrap_err();
        assert!(error.to_string().contains("point --data-dir"), "{error}");
        let error = DataDir::open(dir.path(), "other", NodeId(1), NEW).unwrap_err();
        assert!(matches!(error, DataDirError::Mismatch { .. }), "{error}");
    }

    #[test]
    fn a_missing_or_empty_directory_is_refused_unless_the_node_is_new() {
        let root = tempfile::tempdir().unwrap();
        let existing = InitialClusterState::Existing;
        let mistyped = root.path().join("nod-1");
        let error = DataDir::open(&mistyped, "c", NodeId(1), existing).unwrap_err();
        assert!(matches!(error, DataDirError::NoData { .. }), "{error}");
        assert!(
            error.to_string().contains("--initial-cluster-state new"),
            "{error}"
        );
        assert!(!mistyped.exists(), "a refused start creates nothing");
        fs::create_dir(&mistyped).unwrap();
        let error = DataDir::open(&mistyped, "c", NodeId(1), existing).unwrap_err();
        assert!(matches!(error, DataDirError::NoData { .. }), "{error}");
    }

    #[test]
    fn a_creation_cut_short_before_its_metadata_is_completed_by_the_next_new_start() {
        let dir = tempfile::tempdir().unwrap();
        drop(DataDir::open(dir.path(), "c", NodeId(1), NEW).unwrap());
        let error =
            DataDir::open(dir.path(), "c", NodeId(1), InitialClusterState::Existing).unwrap_err();
        assert!(matches!(error, DataDirError::NoData { .. }), "{error}");
        let again = DataDir::open(dir.path(), "c", NodeId(1), NEW).unwrap();
        assert!(again.is_fresh());
        again.commit().unwrap();
    }

    #[test]
    fn a_directory_in_another_format_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join(METADATA_FILE),
            "format_version = 1\ncluster_id = \"c\"\nnode_id = 1\n",
        )
        .unwrap();
        let error = DataDir::open(dir.path(), "c", NodeId(1), NEW).unwrap_err();
        assert!(
            matches!(error, DataDirError::OtherFormat { found: 1, .. }),
            "{error}"
        );
    }
}
