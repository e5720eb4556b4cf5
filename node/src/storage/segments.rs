//! The write-ahead log as numbered segment files: `wal/00000000000000000001.wal`, `…2.wal`, ….
//!
//! Each segment is a sequence of [`verity_core::wal`] records, numbered on from the segment
//! before (checksummed header, crc32, bincode). Opening syncs every segment and the directory
//! before anything read is trusted, then replays them in order. Appends
//! go to the last segment; once it reaches `segment_bytes` the next append syncs it and starts a
//! new one (and syncs the directory). A snapshot also starts a new segment
//! ([`SegmentedWal::roll`]), whose first record is its marker; once that record is durable the
//! segments before it are deleted ([`SegmentedWal::remove_before`]). Segments are numbered
//! without gaps, from 1 or from a segment the snapshot file names or precedes; a gap or a
//! missing first segment is reported, never papered over. See the durability model in
//! [`super`].

use super::data_dir::sync_dir;
use super::{IoError, io};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use verity_core::Recovered;
use verity_core::wal::{self, Damage, Tail, WalError};

const SUFFIX: &str = ".wal";

/// Why the WAL cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A filesystem operation failed.
    #[error(transparent)]
    Io(#[from] IoError),
    /// A segment holds damage that a crash cannot explain.
    #[error("{path}: {error}")]
    Corrupt {
        /// The damaged segment.
        path: PathBuf,
        /// What recovery found, with the byte offset in that file.
        error: WalError,
    },
    /// An earlier segment ends in a torn record: only the last one may.
    #[error(
        "{path}: torn record at byte offset {offset}, but later segments follow, so this is corruption, not a crash. Restore this node's data from a backup"
    )]
    TornBeforeEnd {
        /// The damaged segment.
        path: PathBuf,
        /// Where the torn record starts.
        offset: u64,
    },
    /// Segments are missing.
    #[error(
        "WAL segment {missing} is missing from {dir}: the log has a hole and committed entries may be lost. Restore this node's data from a backup (starting empty could undo its votes)"
    )]
    MissingSegment {
        /// The WAL directory.
        dir: PathBuf,
        /// The missing segment's path.
        missing: PathBuf,
    },
}

/// A segment of the log and the number of its first record: where recovery starts once the
/// segments before it are deleted (recorded in the snapshot file).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WalAnchor {
    /// The segment.
    pub segment: u64,
    /// The number of its first record.
    pub sequence: u64,
}

/// The open log, positioned to append at the end of the last segment.
#[derive(Debug)]
pub struct SegmentedWal {
    dir: PathBuf,
    first: WalAnchor,
    active: File,
    active_number: u64,
    active_bytes: u64,
    segment_bytes: u64,
}

/// What opening the WAL found.
#[derive(Debug)]
pub struct WalOpened {
    /// The log, ready for appends.
    pub wal: SegmentedWal,
    /// The durable state, for [`verity_core::Node::restore`].
    pub recovered: Recovered,
    /// How many segment files there are.
    pub segments: u64,
    /// How many records were replayed.
    pub records: u64,
    /// The number of the next record (for [`verity_engine::PersistQueue::new`]).
    pub next_sequence: u64,
    /// A torn tail that was truncated.
    pub truncated: Option<Truncated>,
}

/// A torn tail recovery cut off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Truncated {
    /// The segment.
    pub path: PathBuf,
    /// Where the tail started (the segment's new length).
    pub offset: u64,
    /// How many bytes it held.
    pub discarded_bytes: u64,
    /// What its first bytes looked like.
    pub damage: Damage,
}

fn segment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:020}{SUFFIX}"))
}

impl SegmentedWal {
    /// Opens the log in `dir` and recovers it. `fresh` says the node has never run, so an
    /// empty or absent directory is expected; otherwise it means lost data and is refused.
    /// `anchors` are where the node's snapshot file says the log may start (none without a
    /// snapshot; see [`super::snapshot_file`]): its first segment is segment 1 or one of them.
    pub fn open(
        dir: &Path,
        fresh: bool,
        segment_bytes: u64,
        anchors: &[WalAnchor],
    ) -> Result<WalOpened, StorageError> {
        if fresh && !dir.exists() {
            fs::create_dir_all(dir).map_err(io("create directory", dir))?;
            if let Some(parent) = dir.parent() {
                sync_dir(parent).map_err(io("sync directory", parent))?;
            }
        }
        let mut numbers = Vec::new();
        for entry in fs::read_dir(dir).map_err(io("list", dir))? {
            let entry = entry.map_err(io("list", dir))?;
            let name = entry.file_name();
            let Some(number) = name
                .to_str()
                .and_then(|name| name.strip_suffix(SUFFIX))
                .and_then(|stem| stem.parse::<u64>().ok())
            else {
                continue;
            };
            numbers.push(number);
        }
        numbers.sort_unstable();
        if numbers.is_empty() {
            if !fresh {
                return Err(StorageError::MissingSegment {
                    dir: dir.into(),
                    missing: segment_path(dir, 1),
                });
            }
            numbers.push(1);
            create_segment(dir, 1)?;
        }
        let first = numbers[0];
        let last = *numbers.last().expect("at least one segment");
        // Segments before an anchor may be gone; none of the others.
        let head = if first == 1 {
            Some(WalAnchor {
                segment: 1,
                sequence: 0,
            })
        } else {
            anchors.iter().copied().find(|a| a.segment == first)
        };
        let newest = anchors.iter().map(|a| a.segment).max().unwrap_or(1);
        let missing = match head {
            None => Some(first - 1),
            Some(_) => (first..)
                .zip(&numbers)
                .find(|&(expected, &number)| number != expected)
                .map(|(expected, _)| expected)
                .or_else(|| (last < newest).then_some(newest)),
        };
        if let Some(missing) = missing {
            return Err(StorageError::MissingSegment {
                dir: dir.into(),
                missing: segment_path(dir, missing),
            });
        }
        let head = head.expect("a log without a head is refused above");
        let mut recovered = Recovered::default();
        let mut records = 0;
        let mut next_sequence = head.sequence;
        let mut truncated = None;
        let mut active_bytes = 0;
        for &number in &numbers {
            let path = segment_path(dir, number);
            // What a crashed process left in the page cache reads back like synced data but
            // is not durable until synced: sync it before trusting it (acknowledging, voting).
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .map_err(io("open", &path))?;
            file.sync_all().map_err(io("sync", &path))?;
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes).map_err(io("read", &path))?;
            let recovery =
                wal::recover_continuing(recovered, next_sequence, &bytes).map_err(|error| {
                    StorageError::Corrupt {
                        path: path.clone(),
                        error,
                    }
                })?;
            recovered = recovery.recovered;
            records += recovery.records;
            next_sequence = recovery.next_sequence;
            if let Tail::Torn {
                offset,
                discarded_bytes,
                damage,
            } = recovery.tail
            {
                if number != last {
                    return Err(StorageError::TornBeforeEnd { path, offset });
                }
                file.set_len(offset).map_err(io("truncate", &path))?;
                file.sync_all().map_err(io("sync", &path))?;
                truncated = Some(Truncated {
                    path,
                    offset,
                    discarded_bytes,
                    damage,
                });
            }
            active_bytes = recovery.valid_bytes;
        }
        sync_dir(dir).map_err(io("sync directory", dir))?;
        let active_path = segment_path(dir, last);
        let active = OpenOptions::new()
            .append(true)
            .open(&active_path)
            .map_err(io("open", &active_path))?;
        Ok(WalOpened {
            wal: SegmentedWal {
                dir: dir.into(),
                first: head,
                active,
                active_number: last,
                active_bytes,
                segment_bytes,
            },
            recovered,
            segments: last - first + 1,
            records,
            next_sequence,
            truncated,
        })
    }

    /// Appends encoded records to the log (not yet durable: see [`SegmentedWal::sync`]).
    /// Starts a new segment first when the current one is full, syncing the full one.
    pub fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if self.active_bytes >= self.segment_bytes {
            self.active.sync_data()?;
            let number = self.active_number + 1;
            self.active = create_segment(&self.dir, number).map_err(std::io::Error::other)?;
            self.active_number = number;
            self.active_bytes = 0;
            tracing::info!(segment = number, "[DISK] started a new WAL segment");
        }
        self.active.write_all(bytes)?;
        self.active_bytes += bytes.len() as u64;
        Ok(())
    }

    /// Syncs the current segment and starts a new one, whose number it returns: the records
    /// appended next (a snapshot's marker first) begin it.
    pub fn roll(&mut self) -> std::io::Result<u64> {
        self.active.sync_data()?;
        let number = self.active_number + 1;
        self.active = create_segment(&self.dir, number).map_err(std::io::Error::other)?;
        self.active_number = number;
        self.active_bytes = 0;
        Ok(number)
    }

    /// Deletes every segment before `anchor`'s (one [`SegmentedWal::roll`] started for a
    /// snapshot that is now durable, with its marker), and syncs the directory.
    pub fn remove_before(&mut self, anchor: WalAnchor) -> std::io::Result<()> {
        assert!(
            anchor.segment <= self.active_number,
            "only segments before the active one go"
        );
        for old in self.first.segment..anchor.segment {
            let path = segment_path(&self.dir, old);
            fs::remove_file(&path)?;
        }
        if self.first.segment < anchor.segment {
            self.first = anchor;
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// The log's first segment and the number of its first record.
    #[must_use]
    pub fn first(&self) -> WalAnchor {
        self.first
    }

    /// How many segment files the log has.
    #[must_use]
    pub fn segments(&self) -> u64 {
        self.active_number - self.first.segment + 1
    }

    /// Makes everything appended so far durable (`fdatasync` of the current segment; full
    /// segments were synced when the next one started).
    pub fn sync(&mut self) -> std::io::Result<()> {
        self.active.sync_data()
    }

    /// The number of the segment appends go to.
    #[must_use]
    pub fn active_segment(&self) -> u64 {
        self.active_number
    }
}

fn create_segment(dir: &Path, number: u64) -> Result<File, StorageError> {
    let path = segment_path(dir, number);
    let file = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(&path)
        .map_err(io("create", &path))?;
    file.sync_all().map_err(io("sync", &path))?;
    sync_dir(dir).map_err(io("sync directory", dir))?;
    Ok(file)
}
