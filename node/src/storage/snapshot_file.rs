//! The snapshot file: `DIR/snapshot`, the node's latest snapshot, replaced atomically.
//!
//! # Format
//!
//! ```text
//! +--------+---------+--------+--------+--------------+--------------+------------+----------+-------+
//! | "VSNP" | version | index  | term   | kept anchor  | own anchor   | data bytes | data crc | data  |
//! | 4      | u32 LE  | u64 LE | u64 LE | 2 x u64 LE   | 2 x u64 LE   | u64 LE     | u32 LE   |       |
//! +--------+---------+--------+--------+--------------+--------------+------------+----------+-------+
//! ```
//!
//! and a crc32 of the 68 header bytes before it (u32 LE) before the data. An anchor is a WAL
//! segment and the number of its first record ([`WalAnchor`]). The *own* anchor is the segment
//! the snapshot's marker record starts; the *kept* anchor is the first segment the log held
//! when the snapshot was written. The segments before the own anchor are deleted once the
//! marker is durable, so the log's first segment is one of the two (or segment 1, if nothing
//! was ever deleted), and recovery numbers its records from the anchor's number; a log starting
//! anywhere else has lost records.
//!
//! # Atomic replacement
//!
//! A new snapshot is written to `snapshot.tmp`, synced, renamed over `snapshot`, and the
//! directory synced: a crash at any point leaves the old file or the new one, whole. A
//! leftover `snapshot.tmp` is ignored and overwritten.

use super::data_dir::sync_dir;
use super::segments::WalAnchor;
use super::{IoError, io};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use verity_core::{LogIndex, Snapshot, SnapshotMeta, Term};

const MAGIC: [u8; 4] = *b"VSNP";
const VERSION: u32 = 1;
const HEADER_BYTES: usize = 72;
const FILE: &str = "snapshot";
const TEMPORARY: &str = "snapshot.tmp";

/// A snapshot read back, with where the WAL may start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredSnapshot {
    /// The snapshot.
    pub snapshot: Snapshot,
    /// The first segment the log held when the snapshot was written.
    pub kept: WalAnchor,
    /// The segment the snapshot's marker record starts.
    pub own: WalAnchor,
}

/// Why the snapshot file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotFileError {
    /// A filesystem operation failed.
    #[error(transparent)]
    Io(#[from] IoError),
    /// The file is damaged or not a snapshot.
    #[error(
        "snapshot file {path} is damaged: {reason}. It was synced before the log relied on it, \
         so this is damage to durable data: keep the node down and restore the directory from a \
         copy taken while it was stopped (starting it empty could undo committed writes)"
    )]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// Writes `snapshot` as the node's snapshot in `dir`, atomically and durably, with the WAL's
/// `kept` first segment and the snapshot's `own` (see the module documentation).
pub fn write(
    dir: &Path,
    snapshot: &Snapshot,
    kept: WalAnchor,
    own: WalAnchor,
) -> Result<(), IoError> {
    let temporary = dir.join(TEMPORARY);
    let path = dir.join(FILE);
    let mut header = Vec::with_capacity(HEADER_BYTES);
    header.extend_from_slice(&MAGIC);
    header.extend_from_slice(&VERSION.to_le_bytes());
    header.extend_from_slice(&snapshot.meta.index.0.to_le_bytes());
    header.extend_from_slice(&snapshot.meta.term.0.to_le_bytes());
    for anchor in [kept, own] {
        header.extend_from_slice(&anchor.segment.to_le_bytes());
        header.extend_from_slice(&anchor.sequence.to_le_bytes());
    }
    header.extend_from_slice(&(snapshot.data.len() as u64).to_le_bytes());
    header.extend_from_slice(&crc32fast::hash(&snapshot.data).to_le_bytes());
    let header_crc = crc32fast::hash(&header);
    header.extend_from_slice(&header_crc.to_le_bytes());
    debug_assert_eq!(header.len(), HEADER_BYTES);
    let mut file = File::create(&temporary).map_err(io("create", &temporary))?;
    file.write_all(&header).map_err(io("write", &temporary))?;
    file.write_all(&snapshot.data)
        .map_err(io("write", &temporary))?;
    file.sync_all().map_err(io("sync", &temporary))?;
    fs::rename(&temporary, &path).map_err(io("rename", &temporary))?;
    sync_dir(dir).map_err(io("sync directory", dir))
}

/// Reads the node's snapshot in `dir`, if it has one.
pub fn read(dir: &Path) -> Result<Option<StoredSnapshot>, SnapshotFileError> {
    let path = dir.join(FILE);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(io("read", &path)(error).into()),
    };
    decode(&bytes)
        .map(Some)
        .map_err(|reason| SnapshotFileError::Damaged { path, reason })
}

fn decode(bytes: &[u8]) -> Result<StoredSnapshot, String> {
    let header = bytes
        .get(..HEADER_BYTES)
        .ok_or_else(|| format!("{} bytes, shorter than its header", bytes.len()))?;
    let u32_at = |at: usize| u32::from_le_bytes(header[at..at + 4].try_into().expect("4 bytes"));
    let u64_at = |at: usize| u64::from_le_bytes(header[at..at + 8].try_into().expect("8 bytes"));
    if header[..4] != MAGIC || crc32fast::hash(&header[..68]) != u32_at(68) {
        return Err("its header does not match its checksum".into());
    }
    if u32_at(4) != VERSION {
        return Err(format!(
            "format version {}, this build reads {VERSION}",
            u32_at(4)
        ));
    }
    let data = &bytes[HEADER_BYTES..];
    if data.len() as u64 != u64_at(56) {
        return Err(format!(
            "the header announces {} bytes of image, the file holds {}",
            u64_at(56),
            data.len()
        ));
    }
    if crc32fast::hash(data) != u32_at(64) {
        return Err("its image does not match its checksum".into());
    }
    Ok(StoredSnapshot {
        snapshot: Snapshot {
            meta: SnapshotMeta {
                index: LogIndex(u64_at(8)),
                term: Term(u64_at(16)),
            },
            data: Arc::new(data.to_vec()),
        },
        kept: WalAnchor {
            segment: u64_at(24),
            sequence: u64_at(32),
        },
        own: WalAnchor {
            segment: u64_at(40),
            sequence: u64_at(48),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn anchor(segment: u64, sequence: u64) -> WalAnchor {
        WalAnchor { segment, sequence }
    }

    fn snapshot() -> Snapshot {
        Snapshot {
            meta: SnapshotMeta {
                index: LogIndex(42),
                term: Term(3),
            },
            data: Arc::new(b"image bytes".to_vec()),
        }
    }

    #[test]
    fn a_written_snapshot_reads_back_and_replaces_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(dir.path()).unwrap().is_none());
        write(dir.path(), &snapshot(), anchor(1, 0), anchor(7, 70)).unwrap();
        let mut newer = snapshot();
        newer.meta.index = LogIndex(50);
        write(dir.path(), &newer, anchor(7, 70), anchor(9, 90)).unwrap();
        let stored = read(dir.path()).unwrap().unwrap();
        assert_eq!(
            (stored.snapshot, stored.kept, stored.own),
            (newer, anchor(7, 70), anchor(9, 90))
        );
        assert!(!dir.path().join(TEMPORARY).exists());
    }

    #[test]
    fn every_damaged_byte_is_refused_with_the_file_named() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &snapshot(), anchor(1, 0), anchor(7, 70)).unwrap();
        let path = dir.path().join(FILE);
        let good = fs::read(&path).unwrap();
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0x10;
            fs::write(&path, &bad).unwrap();
            let error = read(dir.path()).unwrap_err().to_string();
            assert!(
                error.contains("snapshot file") && error.contains("damaged"),
                "{error}"
            );
        }
        fs::write(&path, &good[..good.len() - 1]).unwrap();
        assert!(read(dir.path()).is_err(), "a short file is refused");
    }
}
