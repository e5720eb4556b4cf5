//! The one byte format of Verity: length- and checksum-framed bincode.
//!
//! Peer messages on the wire use this frame, and WAL records the same payload encoding under a
//! header of their own ([`crate::wal`]), so production, the simulator and the fuzzers share
//! this code:
//!
//! ```text
//! +----------------+----------------+---------------------------+
//! | length: u32 LE | crc32: u32 LE  | payload: bincode, `length` |
//! +----------------+----------------+---------------------------+
//! ```
//!
//! The crc32 (IEEE, via `crc32fast`) covers the payload. The payload is bincode 1.3.3 with fixed
//! integer encoding, little endian, and no trailing bytes, so every value has exactly one
//! encoding. Decoding never panics and never allocates more than [`MAX_FRAME_BYTES`] however the
//! bytes lie: a bad frame is a [`DecodeError`].

use bincode::Options;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Size of the frame header: length then checksum.
pub const HEADER_BYTES: usize = 8;

/// The largest payload a frame may carry (64 MiB). A length field above it is rejected before
/// anything is allocated.
pub const MAX_FRAME_BYTES: u32 = 64 * 1024 * 1024;

/// A value that cannot be framed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The encoded value is larger than [`MAX_FRAME_BYTES`].
    #[error(
        "encoded size {size_bytes} bytes exceeds the frame limit of {MAX_FRAME_BYTES} bytes: send smaller batches or values"
    )]
    TooLarge {
        /// The encoded size.
        size_bytes: u64,
    },
}

/// Bytes that are not a valid frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The buffer ends before the frame does; read more bytes and try again.
    #[error("incomplete frame: {needed_bytes} more bytes needed")]
    Incomplete {
        /// How many more bytes are needed at least.
        needed_bytes: usize,
    },
    /// The length field exceeds [`MAX_FRAME_BYTES`].
    #[error("frame length {length_bytes} exceeds the limit of {MAX_FRAME_BYTES} bytes")]
    TooLarge {
        /// The declared length.
        length_bytes: u32,
    },
    /// The payload does not match its checksum.
    #[error(
        "frame checksum mismatch: header says {expected:#010x}, payload hashes to {actual:#010x}"
    )]
    Checksum {
        /// The checksum in the header.
        expected: u32,
        /// The checksum of the payload as received.
        actual: u32,
    },
    /// The checksum holds but the payload is not a valid value of the expected type.
    #[error("frame payload is malformed: {reason}")]
    Malformed {
        /// What bincode reported.
        reason: String,
    },
}

/// A decoded value and the number of bytes its frame occupied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded<T> {
    /// The value.
    pub value: T,
    /// Bytes consumed from the start of the buffer: header plus payload.
    pub frame_bytes: usize,
}

fn unlimited_options() -> impl Options + Copy {
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .with_little_endian()
        .reject_trailing_bytes()
}

fn options() -> impl Options + Copy {
    unlimited_options().with_limit(u64::from(MAX_FRAME_BYTES))
}

/// Encodes `value` as a bare payload of any size, in the same encoding as frames: for
/// snapshots of the state machine, which travel in chunks and live in files of their own.
#[must_use]
pub fn encode_image<T: Serialize>(value: &T) -> Vec<u8> {
    unlimited_options()
        .serialize(value)
        .expect("serializing into a Vec cannot fail")
}

/// Decodes a whole payload written by [`encode_image`]. It reads at most `image.len()` bytes
/// whatever lengths the bytes claim, so a forged length fails instead of allocating.
pub fn decode_image<T: DeserializeOwned>(image: &[u8]) -> Result<T, DecodeError> {
    unlimited_options()
        .with_limit(image.len() as u64)
        .deserialize(image)
        .map_err(|error| DecodeError::Malformed {
            reason: error.to_string(),
        })
}

/// Encodes `value` as one frame.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, EncodeError> {
    let mut frame = vec![0; HEADER_BYTES];
    let length = encode_payload(value, &mut frame)?;
    frame[..4].copy_from_slice(&length.to_le_bytes());
    let checksum = crc32fast::hash(&frame[HEADER_BYTES..]);
    frame[4..HEADER_BYTES].copy_from_slice(&checksum.to_le_bytes());
    Ok(frame)
}

/// The size of `value`'s frame (header and payload), computed without encoding it; a value
/// too large to frame counts as one byte over the limit.
pub fn encoded_bytes<T: Serialize>(value: &T) -> u64 {
    let payload = options()
        .serialized_size(value)
        .unwrap_or(u64::from(MAX_FRAME_BYTES) + 1);
    HEADER_BYTES as u64 + payload
}

/// Appends the bincode payload of `value` (no header) to `out` and returns its length, at
/// most [`MAX_FRAME_BYTES`]. For formats that frame payloads their own way (the WAL).
pub fn encode_payload<T: Serialize>(value: &T, out: &mut Vec<u8>) -> Result<u32, EncodeError> {
    let options = options();
    let size_bytes = options
        .serialized_size(value)
        .map_err(|_| EncodeError::TooLarge {
            size_bytes: u64::from(MAX_FRAME_BYTES) + 1,
        })?;
    let length = u32::try_from(size_bytes)
        .ok()
        .filter(|&length| length <= MAX_FRAME_BYTES)
        .ok_or(EncodeError::TooLarge { size_bytes })?;
    out.reserve(length as usize);
    options
        .serialize_into(&mut *out, value)
        .expect("serializing into a Vec cannot fail once the size is known");
    Ok(length)
}

/// Decodes a whole payload written by [`encode_payload`]: no trailing bytes, at most
/// [`MAX_FRAME_BYTES`] allocated whatever the bytes say.
pub fn decode_payload<T: DeserializeOwned>(payload: &[u8]) -> Result<T, DecodeError> {
    options()
        .deserialize(payload)
        .map_err(|error| DecodeError::Malformed {
            reason: error.to_string(),
        })
}

/// Decodes the frame at the start of `bytes`. Bytes after the frame are left alone (the caller
/// advances by [`Decoded::frame_bytes`]), so a stream can be decoded frame by frame.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<Decoded<T>, DecodeError> {
    let Some(header) = bytes.get(..HEADER_BYTES) else {
        return Err(DecodeError::Incomplete {
            needed_bytes: HEADER_BYTES - bytes.len(),
        });
    };
    let length_bytes = u32::from_le_bytes(header[..4].try_into().expect("4 bytes"));
    let expected = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
    if length_bytes > MAX_FRAME_BYTES {
        return Err(DecodeError::TooLarge { length_bytes });
    }
    let frame_bytes = HEADER_BYTES + length_bytes as usize;
    let Some(payload) = bytes.get(HEADER_BYTES..frame_bytes) else {
        return Err(DecodeError::Incomplete {
            needed_bytes: frame_bytes - bytes.len(),
        });
    };
    let actual = crc32fast::hash(payload);
    if actual != expected {
        return Err(DecodeError::Checksum { expected, actual });
    }
    let value = decode_payload(payload)?;
    Ok(Decoded { value, frame_bytes })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::{ClientOp, ClientRequest, Command, SessionToken};
    use crate::log::{Entry, EntryPayload};
    use crate::message::{Message, MessageBody};
    use crate::types::{ClientId, LogIndex, NodeId, Sequence, Term};

    fn sample() -> Message {
        Message {
            from: NodeId(1),
            to: NodeId(2),
            term: Term(3),
            body: MessageBody::AppendEntries {
                prev_log_index: LogIndex(4),
                prev_log_term: Term(2),
                entries: vec![Entry {
                    index: LogIndex(5),
                    term: Term(3),
                    payload: EntryPayload::Client {
                        op: ClientOp::Request(ClientRequest {
                            client: ClientId(9),
                            token: SessionToken::default(),
                            may_skip_earlier: false,
                            sequence: Sequence(1),
                            command: Command::set(*b"k", b"v".to_vec()),
                        }),
                        time_ms: 0,
                    },
                }],
                leader_commit: LogIndex(4),
            },
        }
    }

    #[test]
    fn a_frame_round_trips_and_reports_its_length() {
        let mut bytes = encode(&sample()).unwrap();
        let length = bytes.len();
        bytes.extend_from_slice(b"next frame");
        let decoded: Decoded<Message> = decode(&bytes).unwrap();
        assert_eq!(decoded.value, sample());
        assert_eq!(decoded.frame_bytes, length);
    }

    #[test]
    fn every_truncation_is_incomplete_not_a_panic() {
        let bytes = encode(&sample()).unwrap();
        for cut in 0..bytes.len() {
            let result = decode::<Message>(&bytes[..cut]);
            assert!(
                matches!(result, Err(DecodeError::Incomplete { needed_bytes }) if needed_bytes > 0),
                "cut at {cut}: {result:?}"
            );
        }
    }

    #[test]
    fn every_flipped_payload_bit_fails_the_checksum() {
        let bytes = encode(&sample()).unwrap();
        for bit in (HEADER_BYTES * 8)..(bytes.len() * 8) {
            let mut damaged = bytes.clone();
            damaged[bit / 8] ^= 1 << (bit % 8);
            assert!(
                matches!(
                    decode::<Message>(&damaged),
                    Err(DecodeError::Checksum { .. })
                ),
                "bit {bit}"
            );
        }
    }

    #[test]
    fn a_forged_length_is_rejected_before_allocating() {
        let mut bytes = encode(&sample()).unwrap();
        bytes[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            decode::<Message>(&bytes),
            Err(DecodeError::TooLarge {
                length_bytes: u32::MAX
            })
        );
    }

    #[test]
    fn a_forged_inner_length_with_a_valid_checksum_is_malformed_not_an_allocation() {
        // A Vec length of 2^62 inside the payload, with the checksum recomputed to match.
        let payload = [0xFFu8; 8]
            .iter()
            .chain(&[0x3F])
            .copied()
            .collect::<Vec<u8>>();
        let mut frame = (payload.len() as u32).to_le_bytes().to_vec();
        frame.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        frame.extend_from_slice(&payload);
        assert!(matches!(
            decode::<Vec<u64>>(&frame),
            Err(DecodeError::Malformed { .. })
        ));
    }
}
