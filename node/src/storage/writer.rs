//! The WAL writer: a dedicated thread that group-commits.
//!
//! The driver hands it one [`PersistJob`] per [`verity_core::Ready`] (the encoded record, if
//! any, plus the messages that must wait for it and the ack to give the core). The thread
//! takes every job that is queued, up to [`MAX_BATCH_JOBS`], writes their records with one
//! `write`, makes them durable with one `fdatasync`, and only then returns the batch in order
//! as [`PersistDone`]s. Under load many client writes therefore share one sync (group commit);
//! when idle a single job is synced at once. Jobs without a record ride along, so their
//! messages still leave only after everything queued before them is durable.
//!
//! A failed write or sync is fatal: the thread reports it and stops, and the node must stop
//! too, because it can no longer promise anything.

use super::segments::SegmentedWal;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use verity_core::{Message, PersistAck};

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

/// One `Ready`'s durable write and what waits on it.
#[derive(Debug, Default)]
pub struct PersistJob {
    /// The encoded WAL record, if the `Ready` had state to persist.
    pub record: Option<Vec<u8>>,
    /// Messages to send once the record (and all before it) is durable.
    pub messages: Vec<Message>,
    /// What to pass to `Node::on_persisted` then.
    pub ack: Option<PersistAck>,
}

/// A job whose record is durable.
#[derive(Debug)]
pub struct PersistDone {
    /// The job's messages, now safe to send.
    pub messages: Vec<Message>,
    /// The job's ack, now true.
    pub ack: Option<PersistAck>,
}

/// Counters of the writer, for `INFO` and benchmarks.
#[derive(Debug, Default)]
pub struct WalStats {
    /// Records written.
    pub records: AtomicU64,
    /// Bytes written.
    pub bytes: AtomicU64,
    /// Syncs made (one per batch with records).
    pub syncs: AtomicU64,
    /// Total time spent in sync, in microseconds.
    pub sync_micros: AtomicU64,
}

/// The WAL writer's counters at one moment .
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WalFigures {
    /// Records written.
    pub records: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Syncs made.
    pub syncs: u64,
    /// Total time in sync, microseconds.
    pub sync_micros: u64,
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
        }
    }
}

/// Handle to the writer thread. Dropping the job sender (see [`WalWriter::finish`]) lets the
/// thread complete what is queued and exit.
#[derive(Debug)]
pub struct WalWriter {
    jobs: mpsc::Sender<PersistJob>,
    thread: JoinHandle<()>,
}

impl WalWriter {
    /// Starts the thread. Completed batches (or the error that stopped the writer) arrive on
    /// `done`; the queue of jobs holds at most `queue_jobs`.
    pub fn start(
        wal: SegmentedWal,
        policy: FsyncPolicy,
        queue_jobs: usize,
        done: mpsc::UnboundedSender<std::io::Result<Vec<PersistDone>>>,
    ) -> std::io::Result<(WalWriter, Arc<WalStats>)> {
        let (jobs, receiver) = mpsc::channel(queue_jobs.max(1));
        let stats = Arc::new(WalStats::default());
        let thread_stats = Arc::clone(&stats);
        let thread = std::thread::Builder::new()
            .name("verity-wal".into())
            .spawn(move || run(wal, policy, receiver, &done, &thread_stats))?;
        Ok((WalWriter { jobs, thread }, stats))
    }

    /// Queues a job, waiting while the queue is full (the disk sets the pace).
    pub async fn submit(&self, job: PersistJob) -> Result<(), WriterStopped> {
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
    policy: FsyncPolicy,
    mut jobs: mpsc::Receiver<PersistJob>,
    done: &mpsc::UnboundedSender<std::io::Result<Vec<PersistDone>>>,
    stats: &WalStats,
) {
    let mut buffer = Vec::new();
    while let Some(first) = jobs.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH_JOBS {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        buffer.clear();
        let mut records = 0;
        for job in &mut batch {
            if let Some(record) = job.record.take() {
                buffer.extend_from_slice(&record);
                records += 1;
            }
        }
        if let Err(error) = write_batch(&mut wal, policy, &buffer, stats) {
            tracing::error!(%error, "[DISK] WAL write failed; the node must stop");
            let _ = done.send(Err(error));
            return;
        }
        stats.records.fetch_add(records, Ordering::Relaxed);
        let completed = batch
            .into_iter()
            .map(|job| PersistDone {
                messages: job.messages,
                ack: job.ack,
            })
            .collect();
        if done.send(Ok(completed)).is_err() {
            return;
        }
    }
}

fn write_batch(
    wal: &mut SegmentedWal,
    policy: FsyncPolicy,
    buffer: &[u8],
    stats: &WalStats,
) -> std::io::Result<()> {
    if buffer.is_empty() {
        return Ok(());
    }
    wal.append(buffer)?;
    stats
        .bytes
        .fetch_add(buffer.len() as u64, Ordering::Relaxed);
    if policy == FsyncPolicy::Always {
        let started = Instant::now();
        wal.sync()?;
        let took = started.elapsed();
        stats.syncs.fetch_add(1, Ordering::Relaxed);
        stats.sync_micros.fetch_add(
            u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
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
