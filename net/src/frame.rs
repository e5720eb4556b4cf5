//! Codec frames on async byte streams.
//!
//! A frame is [`verity_core::codec`]'s `[length u32][crc32 u32][bincode payload]`. Reading
//! checks the length against a caller-chosen limit, then reads the payload into a reused
//! buffer that grows only as bytes arrive, so a forged or stalled length costs nothing.

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use verity_core::codec::{self, DecodeError, EncodeError, HEADER_BYTES};

/// Why a frame could not be read or written. Any of these ends the connection.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The socket failed.
    #[error("connection error: {0}")]
    Io(#[from] std::io::Error),
    /// The peer closed the connection in the middle of a frame.
    #[error("connection closed in the middle of a frame ({received_bytes} bytes of it received)")]
    Truncated {
        /// Bytes of the frame that did arrive.
        received_bytes: usize,
    },
    /// The length field is above this connection's limit.
    #[error("frame of {length_bytes} bytes exceeds the limit of {limit_bytes} bytes")]
    TooLarge {
        /// The declared payload length.
        length_bytes: u32,
        /// The limit.
        limit_bytes: u32,
    },
    /// The frame's checksum or payload is bad.
    #[error("bad frame: {0}")]
    Decode(#[from] DecodeError),
    /// The value to send cannot be framed.
    #[error("cannot encode frame: {0}")]
    Encode(#[from] EncodeError),
}

/// Reads one frame and decodes it. Returns `Ok(None)` when the stream ends cleanly between
/// frames. `buffer` is scratch space reused across calls.
pub async fn read_frame<T, R>(
    reader: &mut R,
    limit_bytes: u32,
    buffer: &mut Vec<u8>,
) -> Result<Option<T>, FrameError>
where
    T: DeserializeOwned,
    R: AsyncRead + Unpin,
{
    buffer.clear();
    buffer.resize(HEADER_BYTES, 0);
    let mut filled = 0;
    while filled < HEADER_BYTES {
        let read = reader.read(&mut buffer[filled..]).await?;
        if read == 0 {
            return if filled == 0 {
                Ok(None)
            } else {
                Err(FrameError::Truncated {
                    received_bytes: filled,
                })
            };
        }
        filled += read;
    }
    let length_bytes = u32::from_le_bytes([buffer[0], buffer[1], buffer[2], buffer[3]]);
    if length_bytes > limit_bytes.min(codec::MAX_FRAME_BYTES) {
        return Err(FrameError::TooLarge {
            length_bytes,
            limit_bytes,
        });
    }
    // Grow with the bytes that arrive, not with what the header announces: a peer that
    // announces a large frame and stalls costs only what it sent.
    let payload = (&mut *reader)
        .take(u64::from(length_bytes))
        .read_to_end(buffer)
        .await?;
    if payload < length_bytes as usize {
        return Err(FrameError::Truncated {
            received_bytes: HEADER_BYTES + payload,
        });
    }
    let decoded = codec::decode::<T>(buffer)?;
    debug_assert_eq!(decoded.frame_bytes, buffer.len());
    Ok(Some(decoded.value))
}

/// Encodes `value` as one frame and writes it (without flushing).
pub async fn write_frame<T, W>(writer: &mut W, value: &T) -> Result<(), FrameError>
where
    T: Serialize,
    W: AsyncWrite + Unpin,
{
    let bytes = codec::encode(value)?;
    writer.write_all(&bytes).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_clean_end_is_none() {
        let mut wire = Vec::new();
        write_frame(&mut wire, &"hello".to_string()).await.unwrap();
        write_frame(&mut wire, &42u64).await.unwrap();
        let mut reader = wire.as_slice();
        let mut buffer = Vec::new();
        let first: Option<String> = read_frame(&mut reader, 1024, &mut buffer).await.unwrap();
        assert_eq!(first.as_deref(), Some("hello"));
        let second: Option<u64> = read_frame(&mut reader, 1024, &mut buffer).await.unwrap();
        assert_eq!(second, Some(42));
        let end: Option<u64> = read_frame(&mut reader, 1024, &mut buffer).await.unwrap();
        assert_eq!(end, None);
    }

    #[tokio::test]
    async fn a_forged_length_is_refused_before_allocation() {
        let mut wire = vec![0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0];
        wire.extend_from_slice(b"tiny");
        let mut buffer = Vec::new();
        let error = read_frame::<u64, _>(&mut wire.as_slice(), 1 << 20, &mut buffer)
            .await
            .unwrap_err();
        assert!(matches!(error, FrameError::TooLarge { .. }), "{error}");
        assert!(buffer.capacity() < 1024);
    }

    #[tokio::test]
    async fn a_stalled_frame_holds_only_the_bytes_that_arrived() {
        // Issue 11, failure 5: a header announcing 64 MiB made the reader allocate all of it
        // before any payload arrived; four stalled connections cost 256 MiB.
        let (mut sender, mut receiver) = tokio::io::duplex(1 << 16);
        let mut wire = (64u32 << 20).to_le_bytes().to_vec();
        wire.extend_from_slice(&[0; 4]);
        wire.extend_from_slice(&[7; 1000]);
        sender.write_all(&wire).await.unwrap();
        let mut buffer = Vec::new();
        let read = read_frame::<Vec<u8>, _>(&mut receiver, u32::MAX, &mut buffer);
        let stalled = tokio::time::timeout(std::time::Duration::from_millis(50), read).await;
        assert!(stalled.is_err(), "the rest of the frame never comes");
        assert!(
            buffer.capacity() < 64 << 10,
            "{} bytes reserved for 1,008 received",
            buffer.capacity()
        );
    }

    #[tokio::test]
    async fn half_frames_and_flipped_bits_are_errors() {
        let mut wire = Vec::new();
        write_frame(&mut wire, &"payload".to_string())
            .await
            .unwrap();
        let mut buffer = Vec::new();
        for cut in 1..wire.len() {
            let error = read_frame::<String, _>(&mut &wire[..cut], 1024, &mut buffer)
                .await
                .unwrap_err();
            assert!(matches!(error, FrameError::Truncated { .. }), "{error}");
        }
        let mut flipped = wire.clone();
        *flipped.last_mut().unwrap() ^= 1;
        let error = read_frame::<String, _>(&mut flipped.as_slice(), 1024, &mut buffer)
            .await
            .unwrap_err();
        assert!(matches!(error, FrameError::Decode(_)), "{error}");
    }
}
