//! The simulated disk: one append-only WAL file per node.
//!
//! # Durability model
//!
//! - `write` appends bytes to the file; they are *unsynced* until `sync`.
//! - `sync` makes everything written so far durable.
//! - At a crash, synced bytes survive intact. The unsynced tail suffers one seeded fate: it is
//!   lost entirely, kept entirely, torn (a random prefix kept), or torn with the rest of its
//!   length zero-filled (the file was extended but the data never landed).
//! - Nothing else is ever damaged: the model promises what real disks promise to a program that
//!   syncs, and no more, so recovery (the real `verity_core::wal::recover`) must cope with
//!   exactly these shapes.

use crate::rng::SimRng;
use serde::Serialize;

/// What a crash did to the unsynced tail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CrashFate {
    /// Nothing was unsynced.
    Clean,
    /// The whole unsynced tail was lost.
    Lost,
    /// The whole unsynced tail survived.
    Kept,
    /// A prefix of it survived.
    Torn,
    /// A prefix survived and the rest of its length reads as zeros.
    TornZeroed,
}

/// One node's WAL file.
#[derive(Clone, Debug, Default)]
pub struct SimDisk {
    bytes: Vec<u8>,
    synced_bytes: usize,
}

impl SimDisk {
    /// Appends bytes (unsynced).
    pub fn write(&mut self, bytes: &[u8]) {
        self.bytes.extend_from_slice(bytes);
    }

    /// Makes the first `upto_bytes` bytes durable (everything written, at most).
    pub fn sync(&mut self, upto_bytes: usize) {
        self.synced_bytes = self.synced_bytes.max(upto_bytes.min(self.bytes.len()));
    }

    /// Bytes written so far, synced or not.
    #[must_use]
    pub fn written_bytes(&self) -> usize {
        self.bytes.len()
    }

    /// Bytes known durable.
    #[must_use]
    pub fn synced_bytes(&self) -> usize {
        self.synced_bytes
    }

    /// The file's current contents.
    #[must_use]
    pub fn contents(&self) -> &[u8] {
        &self.bytes
    }

    /// Shortens the file to `length` bytes (recovery drops a torn tail).
    pub fn truncate(&mut self, length: usize) {
        self.bytes.truncate(length);
        self.synced_bytes = self.synced_bytes.min(length);
    }

    /// Applies a crash to the unsynced tail and returns what happened to it. Afterwards the
    /// whole file counts as synced: it is what the next process will find.
    pub fn crash(&mut self, rng: &mut SimRng) -> CrashFate {
        let unsynced = self.bytes.len() - self.synced_bytes;
        let fate = if unsynced == 0 {
            CrashFate::Clean
        } else {
            match rng.below(4) {
                0 => CrashFate::Lost,
                1 => CrashFate::Kept,
                2 => CrashFate::Torn,
                _ => CrashFate::TornZeroed,
            }
        };
        let keep = rng.below(unsynced as u64 + 1) as usize;
        match fate {
            CrashFate::Clean | CrashFate::Kept => {}
            CrashFate::Lost => self.bytes.truncate(self.synced_bytes),
            CrashFate::Torn => self.bytes.truncate(self.synced_bytes + keep),
            CrashFate::TornZeroed => self.bytes[self.synced_bytes + keep..].fill(0),
        }
        self.synced_bytes = self.bytes.len();
        fate
    }
}
