//! The WAL writer: a dedicated thread that group-commits.
//!
//! The driver hands it the WAL records of each [`verity_core::Ready`] that has any, in order.
//! The thread takes every job that is queued, up to [`MAX_BATCH_JOBS`], writes them with one
//! `write`, makes them durable with one `fdatasync`, and only then reports how far the stream
//! of records it was handed is durable (bytes since it started). Under load many client writes
//! therefore share one sync (group commit); when idle a single job is synced at once. What
//! waits for the sync (messages, acks) is the driver's [`verity_engine::PersistQueue`]'s
//! business, the same code the simulator runs.
//!
//! A job with a snapshot is a barrier: the thread syncs what it holds before it, writes the
//! snapshot file ([`super::snapshot_file`]), starts a new segment for the job's records (the
//! snapshot's marker and the log after it), syncs them, and only then deletes the segments
//! before, since the snapshot and those records now hold everything they held.
//!
//! A failed write or sync is fatal: the thread reports it and stops, and the node must stop
//! too, because it can no longer promise anything.

use super::segments::{SegmentedWal, WalAnchor};
use super::snapshot_file;
use crate::histogram::{Histogram, HistogramFigures};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use verity_core::Snapshot;

/// Most jobs written by one sync.
pub const MAX_BATCH_JOBS: usize = 4096;

/// A sync slower than this is logged.
const SLOW_SYNC: Duration = Duration::from_millis(100);

/// When records become durable.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum FsyncPolicy {
    /// `fdatasync` every batch before anything depending on it happens (the safe default).
    Always,
    /// Never sync: a power loss or kernel crash can lose acknowledged writes and votes. For
    /// benchmarks that want to measure everything but the disk.
    Never,
}

impl FsyncPolicy {
    /// The equivalent Redis `appendfsync` setting, as `CONFIG GET` and `INFO` report it.
    #[must_use]
    pub fn appendfsync(self) -> &'static str {
        match self {
            FsyncPolicy::Always => "always",
            FsyncPolicy::Never => "no",
        }
    }
}

/// What the writer reports after each batch: the stream of records it was handed is durable
/// up to this many bytes (or the error that stopped it).
pub type Durable = std::io::Result<u64>;

/// Upper bounds of the fsync latency buckets, microseconds (50 µs to 1 s).
const SYNC_MICROS_BOUNDS: &[u64] = &[
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000,
];

/// Upper bounds of the buckets of records per sync.
const RECORDS_PER_SYNC_BOUNDS: &[u64] = &[1, 2, 4, 8, 16, 32, 64, 128, 256, 512];

/// Counters of the writer, for `INFO`, metrics and benchmarks.
#[derive(Debug)]
pub struct WalStats {
    /// Records written.
    pub records: AtomicU64,
    /// Bytes written.
    pub bytes: AtomicU64,
    /// Syncs made (one per batch with records).
    pub syncs: AtomicU64,
    /// Total time spent in sync, in microseconds.
    pub sync_micros: AtomicU64,
    /// How long each sync took, microseconds.
    pub sync_latency: Histogram,
    /// Records (one per `Ready`) made durable by each sync: group commit at work.
    pub records_per_sync: Histogram,
}

impl Default for WalStats {
    fn default() -> WalStats {
        WalStats {
            records: AtomicU64::default(),
            bytes: AtomicU64::default(),
            syncs: AtomicU64::default(),
            sync_micros: AtomicU64::default(),
            sync_latency: Histogram::new(SYNC_MICROS_BOUNDS),
            records_per_sync: Histogram::new(RECORDS_PER_SYNC_BOUNDS),
        }
    }
}

/// The WAL writer's counters at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalFigures {
    /// Records written.
    pub records: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Syncs made.
    pub syncs: u64,
    /// Total time in sync, microseconds.
    pub sync_micros: u64,
    /// How long each sync took, microseconds.
    pub sync_latency: HistogramFigures,
    /// Records made durable by each sync.
    pub records_per_sync: HistogramFigures,
}

impl WalStats {
    /// The counters now.
    #[must_use]
    pub fn figures(&self) -> WalFigures {
        WalFigures {
            records: self.records.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            syncs: self.syncs.load(Ordering::Relaxed),
            sync_micros: self.sync_micros.load(Ordering::Relaxed),
            sync_latency: self.sync_latency.figures(),
            records_per_sync: self.records_per_sync.figures(),
        }
    }
}

/// One `Ready`'s write: its WAL records, after its snapshot if it has one.
#[derive(Debug)]
pub struct Job {
    /// A snapshot to write first; `records` then start with its marker.
    pub snapshot: Option<Snapshot>,
    /// WAL records.
    pub records: Vec<u8>,
    /// The number of the first of `records`.
    pub first_sequence: u64,
}

/// Handle to the writer thread. Dropping the job sender (see [`WalWriter::finish`]) lets the
/// thread complete what is queued and exit.
#[derive(Debug)]
pub struct WalWriter {
    jobs: mpsc::Sender<Job>,
    thread: JoinHandle<()>,
}

impl WalWriter {
    /// Starts the thread, writing snapshots into `snapshot_dir`. Durable positions (or the
    /// error that stopped the writer) arrive on `done`; the queue of jobs holds at most
    /// `queue_jobs`.
    pub fn start(
        wal: SegmentedWal,
        snapshot_dir: PathBuf,
        policy: FsyncPolicy,
        queue_jobs: usize,
        done: mpsc::UnboundedSender<Durable>,
    ) -> std::io::Result<(WalWriter, Arc<WalStats>)> {
        let (jobs, receiver) = mpsc::channel(queue_jobs.max(1));
        let stats = Arc::new(WalStats::default());
        let thread_stats = Arc::clone(&stats);
        let thread = std::thread::Builder::new()
            .name("verity-wal".into())
            .spawn(move || {
                run(wal, &snapshot_dir, policy, receiver, &done, &thread_stats);
            })?;
        Ok((WalWriter { jobs, thread }, stats))
    }

    /// Queues a write after those queued before, waiting while the queue is full (the disk
    /// sets the pace).
    pub async fn submit(&self, job: Job) -> Result<(), WriterStopped> {
        debug_assert!(!job.records.is_empty(), "only records are worth a job");
        self.jobs.send(job).await.map_err(|_| WriterStopped)
    }

    /// Stops accepting jobs and waits until every queued one is durable.
    pub fn finish(self) {
        drop(self.jobs);
        let _ = self.thread.join();
    }
}

/// The writer thread has stopped (after an IO error); nothing more can be made durable.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the WAL writer has stopped after a disk error")]
pub struct WriterStopped;

fn run(
    mut wal: SegmentedWal,
    snapshot_dir: &std::path::Path,
    policy: FsyncPolicy,
    mut jobs: mpsc::Receiver<Job>,
    done: &mpsc::UnboundedSender<Durable>,
    stats: &WalStats,
) {
    let mut buffer = Vec::new();
    let mut durable: u64 = 0;
    let mut next = None;
    while let Some(first) = next.take().or_else(|| jobs.blocking_recv()) {
        let (snapshot, first_sequence) = (first.snapshot, first.first_sequence);
        buffer.clear();
        buffer.extend_from_slice(&first.records);
        let mut records = 1;
        while records < MAX_BATCH_JOBS && snapshot.is_none() {
            let Ok(job) = jobs.try_recv() else { break };
            if job.snapshot.is_some() {
                next = Some(job);
                break;
            }
            buffer.extend_from_slice(&job.records);
            records += 1;
        }
        let written = match &snapshot {
            Some(snapshot) => write_snapshot(
                &mut wal,
                snapshot_dir,
                snapshot,
                (&buffer, first_sequence),
                stats,
            ),
            None => write_batch(&mut wal, policy, &buffer, stats),
        };
        if let Err(error) = written {
            tracing::error!(%error, "[DISK] WAL write failed; the node must stop");
            let _ = done.send(Err(error));
            return;
        }
        stats.records.fetch_add(records as u64, Ordering::Relaxed);
        if snapshot.is_some() || policy == FsyncPolicy::Always {
            stats.records_per_sync.observe(records as u64);
        }
        durable += buffer.len() as u64;
        if done.send(Ok(durable)).is_err() {
            return;
        }
    }
}

/// Writes `snapshot`, then `records` (its marker and the log after it, numbered from
/// `first_sequence`) in a new segment, then deletes the segments before it. Everything before
/// was synced by [`SegmentedWal::roll`]. The records are synced whatever the policy: the
/// deletion relies on them.
fn write_snapshot(
    wal: &mut SegmentedWal,
    dir: &std::path::Path,
    snapshot: &Snapshot,
    (records, first_sequence): (&[u8], u64),
    stats: &WalStats,
) -> std::io::Result<()> {
    let started = Instant::now();
    let kept = wal.first();
    let segment = wal.roll()?;
    let own = WalAnchor {
        segment,
        sequence: first_sequence,
    };
    snapshot_file::write(dir, snapshot, kept, own).map_err(std::io::Error::other)?;
    write_batch(wal, FsyncPolicy::Always, records, stats)?;
    let before = wal.segments();
    wal.remove_before(own)?;
    tracing::info!(
        index = snapshot.meta.index.0,
        bytes = snapshot.data.len(),
        segment,
        removed_segments = before - wal.segments(),
        took_ms = started.elapsed().as_millis() as u64,
        "[DISK] wrote a snapshot and removed the WAL before it"
    );
    Ok(())
}

fn write_batch(
    wal: &mut SegmentedWal,
    policy: FsyncPolicy,
    buffer: &[u8],
    stats: &WalStats,
) -> std::io::Result<()> {
    wal.append(buffer)?;
    stats
        .bytes
        .fetch_add(buffer.len() as u64, Ordering::Relaxed);
    if policy == FsyncPolicy::Always {
        let started = Instant::now();
        wal.sync()?;
        let took = started.elapsed();
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        stats.syncs.fetch_add(1, Ordering::Relaxed);
        stats.sync_micros.fetch_add(micros, Ordering::Relaxed);
        stats.sync_latency.observe(micros);
        if took > SLOW_SYNC {
            tracing::warn!(
                took_ms = took.as_millis() as u64,
                bytes = buffer.len(),
                segment = wal.active_segment(),
                "[DISK] slow fsync"
            );
        }
    }
    Ok(())
}
