//! The simulated disk: one append-only WAL file per node.
//!
//! # Durability model
//!
//! - `write` appends bytes to the file; they are *unsynced* until `sync`.
//! - `sync` makes everything written so far durable.
//! - At a crash, synced bytes survive intact. The unsynced tail suffers one seeded fate: it is
//!   lost entirely, kept entirely, torn (a random prefix kept), or torn with the rest of its
//!   length zero-filled (the file was extended but the data never landed).
//! - Synced bytes are damaged only when a seed asks for it ([`SimDisk::flip_bit`]): a bit
//!   flipped inside a WAL record that another complete record follows, which models media
//!   corruption (bit rot, a bad sector read back wrong). Recovery must then either refuse to
//!   start, naming the damage, or recover every durable record; it must never drop records
//!   silently. Damage to the last record, or to a record's length field, is not modelled yet:
//!   in the current record format it reads exactly like a torn write (issue 11 changes the
//!   format so that the two can be told apart).
//!
//! The model promises what real disks promise to a program that syncs, plus that one kind of
//! damage, and no more, so recovery (the real `verity_core::wal::recover`) must cope with
//! exactly these shapes.

use crate::rng::SimRng;
use serde::Serialize;
use verity_core::codec::HEADER_BYTES;

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

    /// Applies a crash to the unsynced tail and returns what happened to it, and how many
    /// bytes from the start of the file survived intact. Afterwards the whole file counts as
    /// synced: it is what the next process will find.
    pub fn crash(&mut self, rng: &mut SimRng) -> (CrashFate, usize) {
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
        let torn_at = self.synced_bytes + keep;
        let intact = match fate {
            CrashFate::Clean | CrashFate::Kept => self.bytes.len(),
            CrashFate::Lost => self.synced_bytes,
            CrashFate::Torn => torn_at,
            // Zeroing bytes that were zero changes nothing: they stay intact.
            CrashFate::TornZeroed => {
                torn_at
                    + self.bytes[torn_at..]
                        .iter()
                        .take_while(|&&b| b == 0)
                        .count()
            }
        };
        match fate {
            CrashFate::Clean | CrashFate::Kept => {}
            CrashFate::Lost | CrashFate::Torn => self.bytes.truncate(intact),
            CrashFate::TornZeroed => self.bytes[torn_at..].fill(0),
        }
        self.synced_bytes = self.bytes.len();
        (fate, intact)
    }

    /// Flips one bit, drawn from `rng`, in the checksummed part (checksum and payload) of a
    /// complete WAL record within the first `intact` bytes that another complete record
    /// follows. Returns the flipped byte's offset, or `None` if there are not two complete
    /// records.
    pub fn flip_bit(&mut self, rng: &mut SimRng, intact: usize) -> Option<usize> {
        let mut records = Vec::new();
        let mut start = 0usize;
        while start + HEADER_BYTES <= intact {
            let length =
                u32::from_le_bytes(self.bytes[start..start + 4].try_into().expect("four bytes"))
                    as usize;
            let end = start + HEADER_BYTES + length;
            if end > intact {
                break;
            }
            records.push((start, end));
            start = end;
        }
        if records.len() < 2 {
            return None;
        }
        records.pop();
        let &(start, end) = rng.pick(&records[..]);
        let offset = rng.between(start as u64 + 4, end as u64 - 1) as usize;
        self.bytes[offset] ^= 1 << rng.below(8);
        Some(offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use verity_core::raft::HardState;
    use verity_core::wal::{self, WalError, encode_ready};
    use verity_core::{NodeId, Term};

    fn record(term: u64) -> Vec<u8> {
        let hard_state = HardState {
            term: Term(term),
            vote: Some(NodeId(1)),
            ..HardState::default()
        };
        let mut bytes = Vec::new();
        encode_ready(Some(hard_state), Vec::new(), &mut bytes).expect("fits");
        bytes
    }

    #[test]
    fn a_flipped_bit_lands_before_the_last_record_and_recovery_refuses() {
        for seed in 0..200 {
            let mut disk = SimDisk::default();
            let (first, second) = (record(1), record(2));
            disk.write(&first);
            disk.write(&second);
            disk.sync(disk.written_bytes());
            let mut rng = SimRng::new(seed);
            let offset = disk
                .flip_bit(&mut rng, disk.written_bytes())
                .expect("two records");
            assert!((4..first.len()).contains(&offset), "offset {offset}");
            let refused = wal::recover(disk.contents());
            assert!(
                matches!(refused, Err(WalError::Corrupt { .. })),
                "{refused:?}"
            );
        }
    }

    #[test]
    fn one_record_cannot_be_damaged_in_a_way_recovery_can_tell() {
        let mut disk = SimDisk::default();
        disk.write(&record(1));
        disk.sync(disk.written_bytes());
        assert_eq!(
            disk.flip_bit(&mut SimRng::new(1), disk.written_bytes()),
            None
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
