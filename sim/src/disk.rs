//! The simulated disk: one append-only WAL file per node, and the ways real disks fail it.
//!
//! # Fault model
//!
//! - `write` appends bytes; they are *unsynced* until `sync`, which makes everything written
//!   so far durable.
//! - At a crash the unsynced tail suffers one seeded [`CrashFate`]: lost entirely, kept
//!   entirely, torn (a prefix kept), torn with the rest of its length zero-filled (the file was
//!   extended but the data never landed), or scattered: each 512-byte sector landed or not,
//!   in any order, the lost ones reading as zeros (writeback does not keep write order).
//! - Synced bytes survive a crash, unless the seed damages them ([`SimDisk::damage`]) with one
//!   [`DiskDamage`]: a flipped bit anywhere in a record (most often in a header, its length
//!   field above all, the bytes recovery must read most carefully), a
//!   sector read back as zeros, a write the disk acknowledged but never stored (its bytes
//!   read as zeros), or a write stored at the place of an earlier one (its own place reads as
//!   zeros). Damage lands only where a later intact record proves the bytes were synced
//!   ([`wal::proven_durable_bytes`]); damage to the last sync before a crash cannot be told
//!   from a torn write by any single-sync log (see `verity_core::wal`), so it is not drawn.
//!
//! Recovery (the real `verity_core::wal::recover`) must then either refuse to start, naming
//! the damage, or recover exactly the durable records; it must never drop records silently.

use crate::rng::SimRng;
use serde::Serialize;
use verity_core::{Snapshot, wal};

/// The unit of a disk write that lands whole or not at all.
pub const SECTOR_BYTES: usize = 512;

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
    /// Each of its sectors survived or reads as zeros, whatever their order.
    Scattered,
}

/// Damage to synced bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DiskDamage {
    /// One bit flipped at `offset`.
    BitFlip {
        /// The damaged byte.
        offset: usize,
    },
    /// The sector at `offset` reads as zeros.
    ZeroedSector {
        /// Its first byte.
        offset: usize,
    },
    /// The write at `offset` never landed: its bytes read as zeros.
    LostWrite {
        /// Its first byte.
        offset: usize,
    },
    /// The write at `offset` landed at `landed_at`, over earlier data; its own place reads as
    /// zeros.
    MisdirectedWrite {
        /// Where it belonged.
        offset: usize,
        /// Where it landed.
        landed_at: usize,
    },
}

/// One node's WAL file, and its snapshot file.
#[derive(Clone, Debug, Default)]
pub struct SimDisk {
    /// The snapshot file, replaced atomically and durably (written to a temporary file,
    /// synced, renamed over the old one, the directory synced: a crash leaves one or the
    /// other, whole, and the driver waits for it before writing the WAL records after it).
    snapshot: Option<Snapshot>,
    /// Where `bytes` start in the stream of everything ever written: the length of the
    /// prefix deleted after a snapshot ([`SimDisk::trim_before`]).
    base: usize,
    /// The number of the first record in `bytes`, as the node records it beside its snapshot.
    first_sequence: u64,
    bytes: Vec<u8>,
    synced_bytes: usize,
    /// Where each write started in `bytes`, in order.
    writes: Vec<usize>,
}

impl SimDisk {
    /// Replaces the snapshot file (at once durable, see [`SimDisk`]).
    pub fn replace_snapshot(&mut self, snapshot: Snapshot) {
        self.snapshot = Some(snapshot);
    }

    /// The snapshot file's contents, if any.
    #[must_use]
    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref()
    }

    /// Appends bytes (unsynced).
    pub fn write(&mut self, bytes: &[u8]) {
        self.writes.push(self.bytes.len());
        self.bytes.extend_from_slice(bytes);
    }

    /// Makes the stream durable up to position `upto_bytes` (everything written, at most).
    pub fn sync(&mut self, upto_bytes: usize) {
        let upto = upto_bytes.saturating_sub(self.base).min(self.bytes.len());
        self.synced_bytes = self.synced_bytes.max(upto);
    }

    /// The stream position after everything written so far, synced or not.
    #[must_use]
    pub fn written_bytes(&self) -> usize {
        self.base + self.bytes.len()
    }

    /// The stream position up to which everything is durable.
    #[must_use]
    pub fn synced_bytes(&self) -> usize {
        self.base + self.synced_bytes
    }

    /// The log's current contents (from the first record kept).
    #[must_use]
    pub fn contents(&self) -> &[u8] {
        &self.bytes
    }

    /// The number of the first record of the contents (0 until records are deleted).
    #[must_use]
    pub fn first_sequence(&self) -> u64 {
        self.first_sequence
    }

    /// Deletes everything before stream position `position`, which must be durable and start
    /// record `sequence`: the node's deletion of the WAL segments before a snapshot's marker
    /// record once it is synced (the node records the marker's number beside the snapshot).
    pub fn trim_before(&mut self, position: usize, sequence: u64) {
        let cut = position - self.base;
        assert!(
            cut <= self.synced_bytes,
            "only what is durable before a marker goes"
        );
        self.bytes.drain(..cut);
        self.synced_bytes -= cut;
        self.writes.retain(|&start| start >= cut);
        for start in &mut self.writes {
            *start -= cut;
        }
        self.base = position;
        self.first_sequence = sequence;
    }

    /// Shortens the file to `length` bytes (recovery drops a torn tail).
    pub fn truncate(&mut self, length: usize) {
        self.bytes.truncate(length);
        self.synced_bytes = self.synced_bytes.min(length);
        self.writes.retain(|&start| start < length);
    }

    /// Applies a crash to the unsynced tail and returns what happened to it, and the stream
    /// position up to which the bytes survived intact. Afterwards the whole file counts as
    /// synced: it is what the next process will find.
    pub fn crash(&mut self, rng: &mut SimRng) -> (CrashFate, usize) {
        let unsynced = self.bytes.len() - self.synced_bytes;
        let fate = if unsynced == 0 {
            CrashFate::Clean
        } else {
            match rng.below(5) {
                0 => CrashFate::Lost,
                1 => CrashFate::Kept,
                2 => CrashFate::Torn,
                3 => CrashFate::TornZeroed,
                _ => CrashFate::Scattered,
            }
        };
        let before = self.bytes.clone();
        let torn_at = self.synced_bytes + rng.below(unsynced as u64 + 1) as usize;
        match fate {
            CrashFate::Clean | CrashFate::Kept => {}
            CrashFate::Lost => self.bytes.truncate(self.synced_bytes),
            CrashFate::Torn => self.bytes.truncate(torn_at),
            CrashFate::TornZeroed => self.bytes[torn_at..].fill(0),
            CrashFate::Scattered => {
                let mut sector = self.synced_bytes / SECTOR_BYTES * SECTOR_BYTES;
                while sector < self.bytes.len() {
                    let end = (sector + SECTOR_BYTES).min(self.bytes.len());
                    if rng.chance(500) {
                        self.bytes[sector.max(self.synced_bytes)..end].fill(0);
                    }
                    sector = end;
                }
            }
        }
        // Bytes that read back as they were written (zeroing a zero changes nothing).
        let intact = before
            .iter()
            .zip(&self.bytes)
            .take_while(|(was, is)| was == is)
            .count();
        self.synced_bytes = self.bytes.len();
        self.writes.retain(|&start| start < self.bytes.len());
        (fate, self.base + intact)
    }

    /// Damages synced bytes where a later intact record proves them synced, as drawn from
    /// `rng`; returns the damage, or `None` if no byte is proven synced (or no earlier write
    /// exists for a misdirected one to land on).
    pub fn damage(&mut self, rng: &mut SimRng) -> Option<DiskDamage> {
        let proven = usize::try_from(wal::proven_durable_bytes(&self.bytes)).expect("fits");
        if proven == 0 {
            return None;
        }
        // Writes that lie wholly in the proven part: (start, end).
        let writes: Vec<(usize, usize)> = self
            .writes
            .iter()
            .zip(self.writes.iter().skip(1).chain([&self.bytes.len()]))
            .map(|(&start, &end)| (start, end))
            .filter(|&(_, end)| end <= proven)
            .collect();
        let damage = match rng.below(4) {
            // Most bytes are payload, but a damaged header is what recovery must read most
            // carefully, its length above all: a third of flips land in a length field, a
            // third elsewhere in a header, a third anywhere.
            0 if !writes.is_empty() && rng.chance(667) => {
                let start = rng.pick(&writes).0;
                let within = if rng.chance(500) {
                    rng.between(4, 7)
                } else {
                    rng.below(wal::RECORD_HEADER_BYTES as u64)
                };
                DiskDamage::BitFlip {
                    offset: start + within as usize,
                }
            }
            0 => DiskDamage::BitFlip {
                offset: rng.below(proven as u64) as usize,
            },
            1 => DiskDamage::ZeroedSector {
                offset: rng.below(proven.div_ceil(SECTOR_BYTES) as u64) as usize * SECTOR_BYTES,
            },
            2 if !writes.is_empty() => DiskDamage::LostWrite {
                offset: rng.pick(&writes).0,
            },
            _ if writes.len() >= 2 => {
                let index = rng.between(1, writes.len() as u64 - 1) as usize;
                DiskDamage::MisdirectedWrite {
                    offset: writes[index].0,
                    landed_at: writes[rng.below(index as u64) as usize].0,
                }
            }
            _ => return None,
        };
        let end_of = |start: usize| {
            writes
                .iter()
                .find(|&&(s, _)| s == start)
                .map_or(start, |&(_, end)| end)
        };
        match damage {
            DiskDamage::BitFlip { offset } => self.bytes[offset] ^= 1 << rng.below(8),
            DiskDamage::ZeroedSector { offset } => {
                self.bytes[offset..(offset + SECTOR_BYTES).min(proven)].fill(0);
            }
            DiskDamage::LostWrite { offset } => self.bytes[offset..end_of(offset)].fill(0),
            DiskDamage::MisdirectedWrite { offset, landed_at } => {
                let written = self.bytes[offset..end_of(offset)].to_vec();
                self.bytes[offset..end_of(offset)].fill(0);
                let room = written.len().min(offset - landed_at);
                self.bytes[landed_at..landed_at + room].copy_from_slice(&written[..room]);
            }
        }
        Some(damage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use verity_core::raft::HardState;
    use verity_core::wal::{self, Encoder, Tail, WalError};
    use verity_core::{NodeId, Term};

    /// A disk holding `writes` writes of one record each, each synced before the next, and
    /// the encoder that wrote them.
    fn disk(writes: u64) -> (SimDisk, Encoder) {
        let mut disk = SimDisk::default();
        let mut encoder = Encoder::default();
        for term in 1..=writes {
            write(&mut disk, &mut encoder, term);
            disk.sync(disk.written_bytes());
            encoder.mark_durable(encoder.next_sequence());
        }
        (disk, encoder)
    }

    fn write(disk: &mut SimDisk, encoder: &mut Encoder, term: u64) {
        let hard_state = HardState {
            term: Term(term),
            vote: Some(NodeId(1)),
            ..HardState::default()
        };
        let mut bytes = Vec::new();
        encoder
            .encode_ready(None, Some(hard_state), Vec::new(), &mut bytes)
            .expect("fits");
        disk.write(&bytes);
    }

    #[test]
    fn damage_to_proven_synced_bytes_is_always_refused() {
        let mut kinds = std::collections::BTreeSet::new();
        for seed in 0..400 {
            let (mut disk, _) = disk(40);
            let before = disk.contents().to_vec();
            let Some(damage) = disk.damage(&mut SimRng::new(seed)) else {
                continue;
            };
            kinds.insert(format!("{damage:?}").split(' ').next().unwrap().to_string());
            match wal::recover(disk.contents()) {
                Err(WalError::Corrupt { .. } | WalError::Misplaced { .. }) => {}
                Ok(recovery) => assert_eq!(
                    (recovery.records, disk.contents()),
                    (40, &before[..]),
                    "seed {seed}: {damage:?} may only change nothing"
                ),
                Err(other) => panic!("seed {seed}: {damage:?}: {other}"),
            }
        }
        assert_eq!(kinds.len(), 4, "every kind of damage is drawn");
    }

    #[test]
    fn nothing_is_damaged_where_no_later_record_proves_a_sync() {
        let (mut disk, _) = disk(1);
        assert_eq!(disk.damage(&mut SimRng::new(1)), None);
    }

    #[test]
    fn every_crash_fate_recovers_exactly_the_writes_that_survived_whole() {
        let mut fates = std::collections::BTreeSet::new();
        for seed in 0..400 {
            let (mut disk, mut encoder) = disk(3);
            let synced = disk.synced_bytes();
            let mut ends = Vec::new();
            for term in 4..=30 {
                write(&mut disk, &mut encoder, term);
                ends.push(disk.written_bytes());
            }
            let (fate, intact) = disk.crash(&mut SimRng::new(seed));
            fates.insert(format!("{fate:?}"));
            let recovery = wal::recover(disk.contents()).expect("a crash is never corruption");
            let whole = ends.iter().filter(|&&end| end <= intact).count() as u64;
            assert!(intact >= synced);
            assert_eq!(recovery.records, 3 + whole, "seed {seed}: {fate:?}");
            if recovery.valid_bytes < disk.written_bytes() as u64 {
                assert!(matches!(recovery.tail, Tail::Torn { .. }));
            }
        }
        assert_eq!(fates.len(), 5, "{fates:?}");
    }

    #[test]
    fn a_trimmed_log_recovers_headless_and_its_damage_is_still_refused() {
        let mut refused = 0;
        for seed in 0..200 {
            let (mut disk, _) = disk(40);
            let start_of_tenth = {
                let (whole, _) = self::disk(10);
                whole.written_bytes()
            };
            disk.trim_before(start_of_tenth, 10);
            let recover = |disk: &SimDisk| {
                wal::recover_continuing(
                    verity_core::Recovered::default(),
                    disk.first_sequence(),
                    disk.contents(),
                )
            };
            assert_eq!(recover(&disk).unwrap().records, 30);
            let Some(damage) = disk.damage(&mut SimRng::new(seed)) else {
                continue;
            };
            match recover(&disk) {
                Ok(recovery) => assert_eq!(recovery.records, 30, "seed {seed}: {damage:?}"),
                Err(_) => refused += 1,
            }
        }
        assert!(
            refused > 100,
            "damage lands where a headless log proves it synced"
        );
    }

    #[test]
    fn zeroing_bytes_that_were_zero_leaves_them_intact() {
        for seed in 0..200 {
            let mut disk = SimDisk::default();
            disk.write(&[7, 7, 0, 0, 5, 0, 0]);
            disk.sync(2);
            let before = disk.contents().to_vec();
            let (fate, intact) = disk.crash(&mut SimRng::new(seed));
            assert_eq!(disk.contents()[..intact], before[..intact], "{fate:?}");
            if fate == CrashFate::TornZeroed {
                assert!(intact == 4 || intact == 7, "{intact}");
            }
        }
    }
}
