//! Write-ahead log records and recovery, sans-IO: bytes in, bytes out.
//!
//! The driver appends the records of each [`crate::Ready`] that has something to persist, then
//! syncs. A record holds a `Ready`'s hard state and entries together (split over several only
//! when too large for one), so a crash can never keep one without the other.
//!
//! # Record format
//!
//! ```text
//! +---------+-----------+----------+-------------+-------------+------------+---------+
//! | "VWAL"  | length    | sequence | durable     | payload crc | header crc | payload |
//! | 4 bytes | u32 LE    | u64 LE   | u64 LE      | u32 LE      | u32 LE     | bincode |
//! +---------+-----------+----------+-------------+-------------+------------+---------+
//! ```
//!
//! `sequence` numbers the log's records from 0 without gaps. `durable` says that every record
//! numbered below it was synced before this one was written: the writer learns it from its
//! syncs ([`Encoder::mark_durable`]). The header crc32 covers the 28 bytes before it, the
//! payload crc32 the payload, so a damaged length is seen as damage, never trusted.
//!
//! # Durability model
//!
//! - Bytes the driver has synced survive a crash, unless the disk damages them (bit rot, a
//!   zeroed sector, a lost or misdirected write).
//! - Bytes written but not synced may, at a crash, vanish, survive, or survive in part: any of
//!   their pages (writeback is not in order), the rest reading as zeros.
//! - Recovery keeps every intact record up to the first damaged one, then decides what that
//!   damage is. If an intact record after it says the damaged record was synced (its
//!   `durable` is past the damaged record's number), the damage is to durable data: recovery
//!   refuses, naming the byte offset and what is wrong, rather than drop what may be
//!   acknowledged votes and committed entries. Otherwise the damaged record and everything
//!   after it were never known durable, so nothing depending on them left the node: it is a
//!   torn tail, reported and truncated.
//! - What this cannot tell: damage to the records of the **last** sync before a crash, when no
//!   record was written after that sync, reads exactly like a torn write, because one sync
//!   cannot record its own completion. Such damage is taken for a torn tail.

use crate::codec::{self, EncodeError};
use crate::log::Entry;
use crate::raft::{HardState, Recovered};
use crate::snapshot::SnapshotMeta;
use serde::{Deserialize, Serialize};

/// The first bytes of every record.
pub const MAGIC: [u8; 4] = *b"VWAL";

/// Size of a record header.
pub const RECORD_HEADER_BYTES: usize = 32;

/// One durable write: what a `Ready` asked to persist.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalRecord {
    /// Set on the first record written after a snapshot was: the log restarts after it, every
    /// entry recorded before is replaced (by the snapshot up to its index, and by the entries
    /// after this marker beyond it).
    pub snapshot: Option<SnapshotMeta>,
    /// New hard state, if it changed.
    pub hard_state: Option<HardState>,
    /// New entries; on replay they replace any entry at or after the first one's index.
    pub entries: Vec<Entry>,
}

/// Numbers records as they are encoded and stamps each with what is known durable. One per
/// log: a driver that restarts continues from [`WalRecovery::next_sequence`], everything
/// recovered counting as durable once the driver has synced it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Encoder {
    next_sequence: u64,
    durable: u64,
}

impl Encoder {
    /// An encoder whose next record is number `next_sequence`, with every record before
    /// `durable` (at most `next_sequence`) known synced.
    #[must_use]
    pub fn new(next_sequence: u64, durable: u64) -> Encoder {
        assert!(
            durable <= next_sequence,
            "durable {durable} past next record {next_sequence}"
        );
        Encoder {
            next_sequence,
            durable,
        }
    }

    /// The number the next record will get.
    #[must_use]
    pub fn next_sequence(&self) -> u64 {
        self.next_sequence
    }

    /// Every record numbered below `durable` is synced (reports may lag or repeat).
    pub fn mark_durable(&mut self, durable: u64) {
        assert!(
            durable <= self.next_sequence,
            "durable {durable} past next record {}",
            self.next_sequence
        );
        self.durable = self.durable.max(durable);
    }

    /// Appends `record` to `out` as the next record.
    pub fn encode(&mut self, record: &WalRecord, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let start = out.len();
        out.extend_from_slice(&[0; RECORD_HEADER_BYTES]);
        let length = match codec::encode_payload(record, out) {
            Ok(length) => length,
            Err(error) => {
                out.truncate(start);
                return Err(error);
            }
        };
        let payload_crc = crc32fast::hash(&out[start + RECORD_HEADER_BYTES..]);
        let header = &mut out[start..start + RECORD_HEADER_BYTES];
        header[..4].copy_from_slice(&MAGIC);
        header[4..8].copy_from_slice(&length.to_le_bytes());
        header[8..16].copy_from_slice(&self.next_sequence.to_le_bytes());
        header[16..24].copy_from_slice(&self.durable.to_le_bytes());
        header[24..28].copy_from_slice(&payload_crc.to_le_bytes());
        let header_crc = crc32fast::hash(&header[..28]);
        header[28..32].copy_from_slice(&header_crc.to_le_bytes());
        self.next_sequence += 1;
        Ok(())
    }

    /// Appends to `out` the records that persist a `Ready`'s `hard_state` and `entries`, after
    /// the marker of the `snapshot` it wrote first, if any: one record, unless the entries are
    /// too large for one; then they are split in halves until each piece fits, the marker
    /// rides in the first piece and the hard state in the last, so a replay never sees a
    /// commit index beyond the entries before it. Every driver (the node and the simulator)
    /// persists through this one path. Fails only if a single entry cannot fit in a record,
    /// and then appends nothing.
    pub fn encode_ready(
        &mut self,
        snapshot: Option<SnapshotMeta>,
        hard_state: Option<HardState>,
        entries: Vec<Entry>,
        out: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        let (start, before) = (out.len(), *self);
        let result = self.encode_pieces(snapshot, hard_state, entries, out);
        if result.is_err() {
            out.truncate(start);
            *self = before;
        }
        result
    }

    fn encode_pieces(
        &mut self,
        snapshot: Option<SnapshotMeta>,
        hard_state: Option<HardState>,
        entries: Vec<Entry>,
        out: &mut Vec<u8>,
    ) -> Result<(), EncodeError> {
        let record = WalRecord {
            snapshot,
            hard_state,
            entries,
        };
        match self.encode(&record, out) {
            Err(_) if record.entries.len() > 1 => {
                let mut entries = record.entries;
                let tail = entries.split_off(entries.len() / 2);
                self.encode_pieces(record.snapshot, None, entries, out)?;
                self.encode_pieces(None, record.hard_state, tail, out)
            }
            result => result,
        }
    }
}

/// What is wrong with the bytes where a record should be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Damage {
    /// Fewer bytes than a header remain.
    PartialHeader,
    /// The header does not match its checksum (zeros and foreign bytes included).
    HeaderChecksum,
    /// The header is intact, but the payload it announces runs past the end of the bytes.
    PartialPayload,
    /// The payload does not match the header's checksum.
    PayloadChecksum,
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Damage::PartialHeader => write!(f, "the bytes end inside a record header"),
            Damage::HeaderChecksum => write!(f, "the record header does not match its checksum"),
            Damage::PartialPayload => write!(f, "the record runs past the end of the bytes"),
            Damage::PayloadChecksum => write!(f, "the record payload does not match its checksum"),
        }
    }
}

/// How the end of the log looked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Tail {
    /// The last record ends exactly at the end of the bytes.
    Clean,
    /// A crash left bytes never known durable at `offset`; `discarded_bytes` from there on are
    /// not part of the log and should be truncated.
    Torn {
        /// Where the discarded tail starts.
        offset: u64,
        /// How many bytes it spans.
        discarded_bytes: u64,
        /// What the first discarded bytes looked like.
        damage: Damage,
    },
}

/// The result of a successful recovery.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalRecovery {
    /// The durable state, ready for [`crate::Node::restore`].
    pub recovered: Recovered,
    /// Length of the valid prefix; the driver truncates the file to it before appending.
    pub valid_bytes: u64,
    /// Number of records replayed.
    pub records: u64,
    /// The number the next record must get (see [`Encoder::new`]).
    pub next_sequence: u64,
    /// How the log ended.
    pub tail: Tail,
}

/// Bytes that cannot be recovered without risking the loss of acknowledged state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WalError {
    /// A record that was synced is damaged.
    #[error(
        "WAL damaged at byte offset {offset}: {damage}, and the intact record at byte offset \
         {attested_at} shows it had been synced, so this is damage to durable data, not a torn \
         write. The node's votes and acknowledged entries cannot be trusted: keep it down, and \
         do not start it with an empty data directory (it could vote twice and undo committed \
         writes); restore this directory from a copy taken while the node was stopped"
    )]
    Corrupt {
        /// Offset of the damaged record.
        offset: u64,
        /// What is wrong with it.
        damage: Damage,
        /// Offset of the later record whose `durable` covers it.
        attested_at: u64,
    },
    /// An intact record stands where another belongs: no crash leaves that.
    #[error(
        "WAL damaged at byte offset {offset}: an intact record numbered {found} stands where \
         record {expected} belongs, which no crash leaves (a misdirected or stale write, or a \
         file from another log). Keep the node down and restore this directory from a copy \
         taken while it was stopped; do not start it empty"
    )]
    Misplaced {
        /// Offset of the record.
        offset: u64,
        /// Its number.
        found: u64,
        /// The number expected there.
        expected: u64,
    },
    /// An intact record does not continue the log before it.
    #[error("WAL record at byte offset {offset} does not continue the log: {reason}")]
    Inconsistent {
        /// Offset of the record.
        offset: u64,
        /// How it fails to fit.
        reason: String,
    },
}

/// Replays a log from its bytes. Never panics, whatever the bytes.
pub fn recover(bytes: &[u8]) -> Result<WalRecovery, WalError> {
    recover_continuing(Recovered::default(), 0, bytes)
}

/// Replays the bytes of one WAL segment on top of the state `start` recovered from the segments
/// before it (a log split over several files), whose next record is `next_sequence`: 0 for a
/// log's first segment; for the first segment kept after the ones before a snapshot were
/// deleted, the number of its first record, which the node recorded beside the snapshot.
/// Offsets in results and errors are relative to `bytes`. Never panics, whatever the bytes.
pub fn recover_continuing(
    start: Recovered,
    next_sequence: u64,
    bytes: &[u8],
) -> Result<WalRecovery, WalError> {
    replay_segment(start, next_sequence, bytes, Quirks::default())
}

/// [`recover_continuing`] from an empty state with catalogued bug `bug` switched on, if it is a
/// recovery bug.
#[cfg(feature = "bug-catalogue")]
pub fn recover_with_bug(
    bytes: &[u8],
    first_sequence: u64,
    bug: Option<crate::bugs::Bug>,
) -> Result<WalRecovery, WalError> {
    let quirks = Quirks {
        damage_is_torn: bug == Some(crate::bugs::Bug::ChecksumMismatchIsTorn),
        trust_length: bug == Some(crate::bugs::Bug::TrustTornLength),
    };
    replay_segment(Recovered::default(), first_sequence, bytes, quirks)
}

/// Catalogued recovery bugs (all off outside the simulator's bug hunts).
#[derive(Clone, Copy, Default)]
struct Quirks {
    /// `ChecksumMismatchIsTorn`: every damaged record is a torn tail, proof or not.
    damage_is_torn: bool,
    /// `TrustTornLength`: the header checksum is not checked (only its first bytes), and a
    /// record whose length runs past the end is a torn tail, proof or not.
    trust_length: bool,
}

/// The length of the prefix of a log (from its first record, whatever its number: a headless
/// log starts after a snapshot) that its own intact records prove was synced: every record
/// before the highest `durable` any intact record carries. Recovery refuses damage there
/// rather than take it for a torn write. Never panics.
#[must_use]
pub fn proven_durable_bytes(bytes: &[u8]) -> u64 {
    let first = read_record(bytes, false).map_or(0, |record| record.sequence);
    let (mut offset, mut sequence, mut durable) = (0usize, first, first);
    let mut starts = Vec::new();
    while let Ok(record) = read_record(&bytes[offset..], false) {
        if record.sequence != sequence {
            break;
        }
        starts.push(offset);
        durable = durable.max(record.durable);
        offset += record.bytes();
        sequence += 1;
    }
    starts.push(offset);
    let proven = usize::try_from(durable - first)
        .map_or(offset, |d| starts.get(d).copied().unwrap_or(offset));
    proven as u64
}

/// An intact record: its header fields and payload.
struct Intact<'a> {
    sequence: u64,
    durable: u64,
    payload: &'a [u8],
}

impl Intact<'_> {
    fn bytes(&self) -> usize {
        RECORD_HEADER_BYTES + self.payload.len()
    }
}

/// Reads the record at the start of `bytes` (`trust_length`: the `TrustTornLength` bug).
fn read_record(bytes: &[u8], trust_length: bool) -> Result<Intact<'_>, Damage> {
    let header = bytes
        .get(..RECORD_HEADER_BYTES)
        .ok_or(Damage::PartialHeader)?;
    let field = |range: std::ops::Range<usize>| &header[range];
    let u32_at = |at: usize| u32::from_le_bytes(field(at..at + 4).try_into().expect("4 bytes"));
    let u64_at = |at: usize| u64::from_le_bytes(field(at..at + 8).try_into().expect("8 bytes"));
    let header_checksum = crc32fast::hash(&header[..28]) == u32_at(28) || trust_length;
    if header[..4] != MAGIC || !header_checksum {
        return Err(Damage::HeaderChecksum);
    }
    let length = u32_at(4);
    let payload = bytes
        .get(RECORD_HEADER_BYTES..RECORD_HEADER_BYTES + length as usize)
        .ok_or(Damage::PartialPayload)?;
    if crc32fast::hash(payload) != u32_at(24) {
        return Err(Damage::PayloadChecksum);
    }
    Ok(Intact {
        sequence: u64_at(8),
        durable: u64_at(16),
        payload,
    })
}

/// The offset (in `bytes`) of an intact record after `from` whose `durable` covers record
/// `sequence`, if any: proof that `sequence` had been synced.
fn attestation(bytes: &[u8], from: usize, sequence: u64) -> Option<usize> {
    (from..bytes.len().saturating_sub(RECORD_HEADER_BYTES - 1))
        .filter(|&at| bytes[at..at + 4] == MAGIC)
        .find(|&at| {
            read_record(&bytes[at..], false)
                .is_ok_and(|record| record.sequence > sequence && record.durable > sequence)
        })
}

/// Replays `bytes` on top of `start`, with `quirks` (catalogued bugs) switched on.
fn replay_segment(
    start: Recovered,
    mut next_sequence: u64,
    bytes: &[u8],
    quirks: Quirks,
) -> Result<WalRecovery, WalError> {
    let mut recovered = start;
    let mut offset = 0usize;
    let first_sequence = next_sequence;
    while offset < bytes.len() {
        let rest = &bytes[offset..];
        let damage = match read_record(rest, quirks.trust_length) {
            Ok(record) if record.sequence != next_sequence => {
                return Err(WalError::Misplaced {
                    offset: offset as u64,
                    found: record.sequence,
                    expected: next_sequence,
                });
            }
            Ok(record) => {
                let inconsistent = |reason: String| WalError::Inconsistent {
                    offset: offset as u64,
                    reason,
                };
                if record.durable > record.sequence {
                    return Err(inconsistent(format!(
                        "record {} says records below {} were durable before it was written",
                        record.sequence, record.durable
                    )));
                }
                let value: WalRecord = codec::decode_payload(record.payload)
                    .map_err(|error| inconsistent(error.to_string()))?;
                replay(&mut recovered, value).map_err(inconsistent)?;
                offset += record.bytes();
                next_sequence += 1;
                continue;
            }
            Err(damage) => damage,
        };
        let proof = attestation(bytes, offset + 1, next_sequence);
        let assumed_torn =
            quirks.damage_is_torn || quirks.trust_length && damage == Damage::PartialPayload;
        if let Some(attested_at) = proof.filter(|_| !assumed_torn) {
            return Err(WalError::Corrupt {
                offset: offset as u64,
                damage,
                attested_at: attested_at as u64,
            });
        }
        return Ok(WalRecovery {
            recovered,
            valid_bytes: offset as u64,
            records: next_sequence - first_sequence,
            next_sequence,
            tail: Tail::Torn {
                offset: offset as u64,
                discarded_bytes: rest.len() as u64,
                damage,
            },
        });
    }
    Ok(WalRecovery {
        recovered,
        valid_bytes: offset as u64,
        records: next_sequence - first_sequence,
        next_sequence,
        tail: Tail::Clean,
    })
}

/// Applies one record: a snapshot marker restarts the log after the snapshot, entries replace
/// the suffix from their first index, which must lie within the log after its start.
fn replay(recovered: &mut Recovered, record: WalRecord) -> Result<(), String> {
    if let Some(meta) = record.snapshot {
        recovered.log_start = meta;
        recovered.entries.clear();
    }
    if let Some(first) = record.entries.first() {
        let start = recovered.log_start.index;
        let end = recovered.entries.last().map_or(start, |e| e.index);
        if first.index <= start || first.index > end.next() {
            return Err(format!(
                "entries start at index {}, but the log holds {}..={} after its start",
                first.index,
                start.next(),
                end
            ));
        }
        let keep = first.index.0 - start.0 - 1;
        recovered
            .entries
            .truncate(usize::try_from(keep).unwrap_or(usize::MAX));
        recovered.entries.extend(record.entries);
    }
    if let Some(hard_state) = record.hard_state {
        recovered.hard_state = hard_state;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::EntryPayload;
    use crate::types::{LogIndex, NodeId, Term};

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index: LogIndex(index),
            term: Term(term),
            payload: EntryPayload::Noop,
        }
    }

    fn record(term: u64, entries: Vec<Entry>) -> WalRecord {
        WalRecord {
            snapshot: None,
            hard_state: Some(HardState {
                term: Term(term),
                vote: Some(NodeId(1)),
                commit: LogIndex(0),
            }),
            entries,
        }
    }

    /// Three records, each synced before the next was written (so each later record proves
    /// the earlier ones durable); the byte offset where each ends.
    fn log() -> (Vec<u8>, Vec<usize>) {
        let records = [
            record(1, vec![entry(1, 1), entry(2, 1)]),
            record(2, vec![entry(3, 2)]),
            record(3, vec![entry(3, 3), entry(4, 3)]),
        ];
        let mut encoder = Encoder::default();
        let mut bytes = Vec::new();
        let mut ends = Vec::new();
        for r in records {
            encoder.encode(&r, &mut bytes).unwrap();
            encoder.mark_durable(encoder.next_sequence());
            ends.push(bytes.len());
        }
        (bytes, ends)
    }

    /// The same records written in one batch with a single sync after it: none proves another
    /// durable.
    fn one_batch() -> (Vec<u8>, Vec<usize>) {
        let mut encoder = Encoder::default();
        let mut bytes = Vec::new();
        let mut ends = Vec::new();
        for term in 1..=3 {
            encoder
                .encode(&record(term, vec![entry(term, term)]), &mut bytes)
                .unwrap();
            ends.push(bytes.len());
        }
        (bytes, ends)
    }

    #[test]
    fn replay_applies_records_in_order_with_suffix_replacement() {
        let (bytes, _) = log();
        let recovery = recover(&bytes).unwrap();
        assert_eq!(recovery.tail, Tail::Clean);
        assert_eq!(recovery.records, 3);
        assert_eq!(recovery.next_sequence, 3);
        assert_eq!(
            recovery.recovered.entries,
            vec![entry(1, 1), entry(2, 1), entry(3, 3), entry(4, 3)]
        );
        assert_eq!(recovery.recovered.hard_state.term, Term(3));
    }

    #[test]
    fn a_snapshot_marker_restarts_the_log_after_the_snapshot() {
        let meta = SnapshotMeta {
            index: LogIndex(5),
            term: Term(2),
        };
        let mut encoder = Encoder::default();
        let mut bytes = Vec::new();
        for record in [
            record(1, vec![entry(1, 1), entry(2, 1), entry(3, 1)]),
            WalRecord {
                snapshot: Some(meta),
                ..record(2, vec![entry(6, 2)])
            },
            record(2, vec![entry(7, 2)]),
        ] {
            encoder.encode(&record, &mut bytes).unwrap();
        }
        let recovered = recover(&bytes).unwrap().recovered;
        assert_eq!(recovered.log_start, meta);
        assert_eq!(recovered.entries, vec![entry(6, 2), entry(7, 2)]);
        encoder
            .encode(&record(2, vec![entry(9, 2)]), &mut bytes)
            .unwrap();
        assert!(
            matches!(recover(&bytes), Err(WalError::Inconsistent { .. })),
            "entries that leave a hole after the log are refused"
        );
    }

    #[test]
    fn every_truncation_recovers_the_complete_records_before_it() {
        let (bytes, ends) = log();
        for cut in 0..bytes.len() {
            let recovery = recover(&bytes[..cut]).unwrap();
            let complete = ends.iter().filter(|&&end| end <= cut).count() as u64;
            assert_eq!(recovery.records, complete, "cut at {cut}");
            assert_eq!(
                recovery.valid_bytes as usize,
                if complete == 0 {
                    0
                } else {
                    ends[complete as usize - 1]
                }
            );
        }
    }

    #[test]
    fn a_torn_record_followed_by_zeros_is_a_torn_tail() {
        let (mut bytes, ends) = log();
        for byte in &mut bytes[ends[1] + 12..] {
            *byte = 0;
        }
        bytes.extend([0; 100]);
        let recovery = recover(&bytes).unwrap();
        assert_eq!(recovery.records, 2);
        assert_eq!(
            recovery.tail,
            Tail::Torn {
                offset: ends[1] as u64,
                discarded_bytes: (bytes.len() - ends[1]) as u64,
                damage: Damage::HeaderChecksum,
            }
        );
    }

    #[test]
    fn damage_to_any_byte_of_a_record_a_later_one_proves_synced_is_refused_naming_both() {
        let (bytes, ends) = log();
        for at in 0..ends[1] {
            for bit in [0x01, 0x80] {
                let mut damaged = bytes.clone();
                damaged[at] ^= bit;
                let record_start = if at < ends[0] { 0 } else { ends[0] };
                match recover(&damaged) {
                    Err(WalError::Corrupt {
                        offset,
                        attested_at,
                        ..
                    }) => {
                        assert_eq!(offset, record_start as u64, "byte {at}");
                        assert!(attested_at > offset);
                    }
                    other => panic!("byte {at} bit {bit:#x}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn a_length_flipped_to_run_past_the_end_is_damage_not_a_torn_write() {
        let (mut bytes, ends) = log();
        bytes[ends[0] + 6] ^= 0x10;
        let error = recover(&bytes).unwrap_err();
        assert!(
            matches!(
                error,
                WalError::Corrupt {
                    damage: Damage::HeaderChecksum,
                    ..
                }
            ),
            "{error:?}"
        );
        let text = error.to_string();
        assert!(text.contains(&format!("byte offset {}", ends[0])), "{text}");
        assert!(
            text.contains("do not start it with an empty data directory"),
            "{text}"
        );
    }

    #[test]
    fn zeroed_or_lost_pages_of_one_unsynced_batch_are_a_torn_tail_in_any_order() {
        let (bytes, ends) = one_batch();
        // Out-of-order writeback: the middle record's bytes never landed, the last one's did.
        for (from, to) in [(ends[0], ends[1]), (ends[0] + 5, ends[0] + 9), (0, 4)] {
            let mut damaged = bytes.clone();
            damaged[from..to].fill(0);
            let recovery = recover(&damaged).unwrap();
            let first_damaged = ends.iter().filter(|&&end| end <= from).count();
            assert_eq!(
                recovery.records, first_damaged as u64,
                "zeros at {from}..{to}"
            );
            assert!(matches!(recovery.tail, Tail::Torn { .. }));
        }
    }

    #[test]
    fn a_record_written_where_another_belongs_is_refused() {
        let (bytes, ends) = log();
        // A misdirected write: the third record lands over the second.
        let mut damaged = bytes[..ends[0]].to_vec();
        damaged.extend_from_slice(&bytes[ends[1]..]);
        damaged.extend_from_slice(&bytes[ends[1]..]);
        assert!(matches!(
            recover(&damaged),
            Err(WalError::Misplaced {
                found: 2,
                expected: 1,
                ..
            })
        ));
    }

    #[test]
    fn a_record_that_skips_indexes_is_inconsistent() {
        let mut encoder = Encoder::default();
        let mut bytes = Vec::new();
        encoder
            .encode(&record(1, vec![entry(1, 1)]), &mut bytes)
            .unwrap();
        encoder
            .encode(&record(1, vec![entry(5, 1)]), &mut bytes)
            .unwrap();
        assert!(matches!(
            recover(&bytes),
            Err(WalError::Inconsistent { .. })
        ));
    }

    #[test]
    fn a_segment_continues_the_numbering_of_the_one_before() {
        let mut encoder = Encoder::new(10, 10);
        let mut bytes = Vec::new();
        encoder
            .encode(&record(1, vec![entry(1, 1)]), &mut bytes)
            .unwrap();
        let recovery = recover_continuing(Recovered::default(), 10, &bytes).unwrap();
        assert_eq!((recovery.records, recovery.next_sequence), (1, 11));
        assert!(
            matches!(
                recover(&bytes),
                Err(WalError::Misplaced {
                    offset: 0,
                    found: 10,
                    expected: 0
                })
            ),
            "record 10 cannot start a log"
        );
    }

    #[test]
    fn a_ready_too_large_for_one_frame_is_split_and_recovers_whole() {
        use crate::kv::{ClientOp, ClientRequest, Command, SessionToken};
        use crate::types::{ClientId, Sequence};
        let value = vec![b'v'; 24 << 20];
        let big = |index: u64| Entry {
            index: LogIndex(index),
            term: Term(1),
            payload: EntryPayload::Client {
                op: ClientOp::Request(ClientRequest {
                    client: ClientId(1),
                    token: SessionToken([0; 16]),
                    sequence: Sequence(index),
                    may_skip_earlier: false,
                    command: Command::parse(vec![b"SET".to_vec(), b"k".to_vec(), value.clone()])
                        .unwrap(),
                }),
                time_ms: 0,
            },
        };
        let entries: Vec<Entry> = (1..=4).map(big).collect();
        let hard_state = HardState {
            term: Term(1),
            vote: Some(NodeId(1)),
            commit: LogIndex(4),
        };
        let mut bytes = Vec::new();
        Encoder::default()
            .encode_ready(None, Some(hard_state), entries.clone(), &mut bytes)
            .unwrap();
        let recovery = recover(&bytes).unwrap();
        assert_eq!(recovery.records, 2, "split into two halves that each fit");
        assert_eq!(recovery.recovered.entries, entries);
        assert_eq!(recovery.recovered.hard_state, hard_state);

        let too_big = vec![b'v'; 65 << 20];
        let alone = Entry {
            payload: EntryPayload::Client {
                op: ClientOp::Request(ClientRequest {
                    client: ClientId(1),
                    token: SessionToken([0; 16]),
                    sequence: Sequence(1),
                    may_skip_earlier: false,
                    command: Command::parse(vec![b"SET".to_vec(), b"k".to_vec(), too_big]).unwrap(),
                }),
                time_ms: 0,
            },
            ..entry(1, 1)
        };
        let mut encoder = Encoder::new(7, 7);
        let mut out = b"kept".to_vec();
        assert!(
            encoder
                .encode_ready(None, None, vec![alone], &mut out)
                .is_err()
        );
        assert_eq!(out, b"kept", "a failed encoding appends nothing");
        assert_eq!(encoder.next_sequence(), 7, "and numbers nothing");
    }
}
