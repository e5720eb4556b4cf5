//! Write-ahead log records and recovery, sans-IO: bytes in, bytes out.
//!
//! The driver appends one record per [`crate::Ready`] that has something to persist, then
//! syncs. A record is one [`crate::codec`] frame holding the `Ready`'s hard state and entries
//! together, so a crash can never keep one without the other.
//!
//! # Durability model
//!
//! - Bytes the driver has synced survive a crash intact.
//! - Bytes written but not synced may, at a crash, vanish, survive, or survive partly: a prefix
//!   of them kept (a torn write), possibly followed by zeros where the file had been extended.
//! - Recovery therefore keeps every complete, checksummed record up to the first damaged one,
//!   and accepts damage only in a shape a crash can produce: a record that runs past the end of
//!   the file, or a bad record followed by nothing but zeros. That tail is reported and
//!   truncated; the state it held was never acknowledged, because messages wait for the sync.
//! - Damage of any other shape (a bad record with data after it) is corruption of synced bytes,
//!   which no crash explains: recovery refuses with the byte offset rather than silently
//!   dropping what may be committed entries.

use crate::codec::{self, DecodeError, EncodeError, HEADER_BYTES};
use crate::log::Entry;
use crate::raft::{HardState, Recovered};
use serde::{Deserialize, Serialize};

/// One durable write: what a `Ready` asked to persist.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalRecord {
    /// New hard state, if it changed.
    pub hard_state: Option<HardState>,
    /// New entries; on replay they replace any entry at or after the first one's index.
    pub entries: Vec<Entry>,
}

impl WalRecord {
    /// Encodes the record as one frame.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        codec::encode(self)
    }
}

/// Appends to `out` the records that persist a `Ready`'s `hard_state` and `entries`: one
/// record, unless the entries are too large for one frame; then they are split in halves until
/// each piece fits, and the hard state rides in the last piece, so a replay never sees a
/// commit index beyond the entries before it. Every driver (the node and the simulator)
/// persists through this one path. Fails only if a single entry cannot fit in a frame.
pub fn encode_ready(
    hard_state: Option<HardState>,
    entries: Vec<Entry>,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let record = WalRecord {
        hard_state,
        entries,
    };
    match record.encode() {
        Ok(bytes) => {
            out.extend_from_slice(&bytes);
            Ok(())
        }
        Err(_) if record.entries.len() > 1 => {
            let mut entries = record.entries;
            let tail = entries.split_off(entries.len() / 2);
            encode_ready(None, entries, out)?;
            encode_ready(record.hard_state, tail, out)
        }
        Err(error) => Err(error),
    }
}

/// How the end of the log looked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Tail {
    /// The last record ends exactly at the end of the bytes.
    Clean,
    /// A crash left a partial or damaged record at `offset`; `discarded_bytes` from there on
    /// are not part of the log and should be truncated.
    Torn {
        /// Where the discarded tail starts.
        offset: u64,
        /// How many bytes it spans.
        discarded_bytes: u64,
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
    /// How the log ended.
    pub tail: Tail,
}

/// Bytes that cannot be recovered without risking the loss of acknowledged state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WalError {
    /// A damaged record is followed by more data: not a crash, but corruption.
    #[error(
        "WAL corrupt at byte offset {offset}: {reason}; data follows it, so this is not a torn \
         write. Restore this node's data from a replica (or remove it to rejoin empty)"
    )]
    Corrupt {
        /// Offset of the damaged record.
        offset: u64,
        /// What was wrong with it.
        reason: String,
    },
    /// A valid record does not continue the log before it.
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
    recover_continuing(Recovered::default(), bytes)
}

/// Replays the bytes of one WAL segment on top of the state `start` recovered from the segments
/// before it (a log split over several files). Offsets in results and errors are relative to
/// `bytes`. Never panics, whatever the bytes.
pub fn recover_continuing(start: Recovered, bytes: &[u8]) -> Result<WalRecovery, WalError> {
    replay_segment(start, bytes, false)
}

/// [`recover`] with catalogued bug `bug` switched on, if it is a recovery bug.
#[cfg(feature = "bug-catalogue")]
pub fn recover_with_bug(
    bytes: &[u8],
    bug: Option<crate::bugs::Bug>,
) -> Result<WalRecovery, WalError> {
    let checksum_is_torn = bug == Some(crate::bugs::Bug::ChecksumMismatchIsTorn);
    replay_segment(Recovered::default(), bytes, checksum_is_torn)
}

/// Replays `bytes` on top of `start`; `checksum_is_torn` is the `ChecksumMismatchIsTorn` bug.
fn replay_segment(
    start: Recovered,
    bytes: &[u8],
    checksum_is_torn: bool,
) -> Result<WalRecovery, WalError> {
    let mut recovered = start;
    let mut offset = 0usize;
    let mut records = 0u64;
    while offset < bytes.len() {
        let rest = &bytes[offset..];
        let record = match codec::decode::<WalRecord>(rest) {
            Ok(decoded) => decoded,
            Err(error) => {
                let torn = is_torn_tail(rest, &error)
                    || checksum_is_torn && matches!(error, DecodeError::Checksum { .. });
                if !torn {
                    return Err(WalError::Corrupt {
                        offset: offset as u64,
                        reason: error.to_string(),
                    });
                }
                return Ok(WalRecovery {
                    recovered,
                    valid_bytes: offset as u64,
                    records,
                    tail: Tail::Torn {
                        offset: offset as u64,
                        discarded_bytes: rest.len() as u64,
                    },
                });
            }
        };
        replay(&mut recovered, record.value).map_err(|reason| WalError::Inconsistent {
            offset: offset as u64,
            reason,
        })?;
        offset += record.frame_bytes;
        records += 1;
    }
    Ok(WalRecovery {
        recovered,
        valid_bytes: offset as u64,
        records,
        tail: Tail::Clean,
    })
}

/// Whether the damage `error` at the start of `rest` has a shape a crash can leave (see the
/// durability model); otherwise it is corruption.
fn is_torn_tail(rest: &[u8], error: &DecodeError) -> bool {
    let all_zero = |bytes: &[u8]| bytes.iter().all(|&b| b == 0);
    match error {
        DecodeError::Incomplete { .. } => true,
        DecodeError::TooLarge { .. } => all_zero(&rest[HEADER_BYTES..]),
        DecodeError::Checksum { .. } | DecodeError::Malformed { .. } => {
            let length = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            let end = HEADER_BYTES.saturating_add(length).min(rest.len());
            all_zero(&rest[end..])
        }
    }
}

fn replay(recovered: &mut Recovered, record: WalRecord) -> Result<(), String> {
    if let Some(first) = record.entries.first() {
        let next = recovered.entries.len() as u64 + 1;
        if first.index.0 == 0 || first.index.0 > next {
            return Err(format!(
                "entries start at index {}, but the log so far ends at {}",
                first.index,
                next - 1
            ));
        }
        recovered.entries.truncate((first.index.0 - 1) as usize);
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

    fn record(term: u64, entries: Vec<Entry>) -> Vec<u8> {
        WalRecord {
            hard_state: Some(HardState {
                term: Term(term),
                vote: Some(NodeId(1)),
                commit: LogIndex(0),
            }),
            entries,
        }
        .encode()
        .unwrap()
    }

    fn log() -> (Vec<u8>, Vec<usize>) {
        let records = [
            record(1, vec![entry(1, 1), entry(2, 1)]),
            record(2, vec![entry(3, 2)]),
            record(3, vec![entry(3, 3), entry(4, 3)]),
        ];
        let mut bytes = Vec::new();
        let mut ends = Vec::new();
        for r in records {
            bytes.extend(r);
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
        assert_eq!(
            recovery.recovered.entries,
            vec![entry(1, 1), entry(2, 1), entry(3, 3), entry(4, 3)]
        );
        assert_eq!(recovery.recovered.hard_state.term, Term(3));
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
                discarded_bytes: (bytes.len() - ends[1]) as u64
            }
        );
    }

    #[test]
    fn a_damaged_record_with_data_after_it_is_corruption_naming_the_offset() {
        let (mut bytes, ends) = log();
        bytes[ends[0] + 10] ^= 0x40;
        assert!(matches!(
            recover(&bytes),
            Err(WalError::Corrupt { offset, .. }) if offset == ends[0] as u64
        ));
    }

    #[test]
    fn a_record_that_skips_indexes_is_inconsistent() {
        let mut bytes = record(1, vec![entry(1, 1)]);
        bytes.extend(record(1, vec![entry(5, 1)]));
        assert!(matches!(
            recover(&bytes),
            Err(WalError::Inconsistent { .. })
        ));
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
        encode_ready(Some(hard_state), entries.clone(), &mut bytes).unwrap();
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
        assert!(encode_ready(None, vec![alone], &mut Vec::new()).is_err());
    }
}
