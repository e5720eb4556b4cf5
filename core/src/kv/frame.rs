//! [`Frame`]: a command's reply as Redis (RESP2) shapes it.
//!
//! The state machine answers every command with a `Frame`, errors included (`WRONGTYPE`,
//! `ERR value is not an integer or out of range`), so a reply kept for a retry is exactly the
//! bytes the first attempt would have written. [`Frame::encode`] writes RESP2.

use serde::{Deserialize, Serialize};

/// One RESP2 value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Frame {
    /// `+text`: a status such as `OK`. Never contains `\r` or `\n`.
    Simple(String),
    /// `-CODE text`: an error; the text starts with its code (`ERR`, `WRONGTYPE`, …).
    Error(String),
    /// `:n`.
    Integer(i64),
    /// `$len` and the bytes.
    Bulk(#[serde(with = "serde_bytes")] Vec<u8>),
    /// `$-1`: the null bulk string (a missing value).
    Null,
    /// `*-1`: the null array (an aborted `EXEC`, a `BLPOP` timeout).
    NullArray,
    /// `*n` and the elements.
    Array(Vec<Frame>),
}

impl Frame {
    /// `+OK`.
    #[must_use]
    pub fn ok() -> Frame {
        Frame::Simple("OK".to_string())
    }

    /// An error frame; `text` must start with the error code (`ERR …`).
    #[must_use]
    pub fn error(text: impl Into<String>) -> Frame {
        Frame::Error(text.into())
    }

    /// A bulk string of `text`.
    #[must_use]
    pub fn text(text: impl Into<String>) -> Frame {
        Frame::Bulk(text.into().into_bytes())
    }

    /// An integer from a count or length (saturating at `i64::MAX`, which no count reaches).
    #[must_use]
    pub fn count(n: impl TryInto<i64>) -> Frame {
        Frame::Integer(n.try_into().unwrap_or(i64::MAX))
    }

    /// `Bulk(value)` or `Null`.
    #[must_use]
    pub fn optional(value: Option<Vec<u8>>) -> Frame {
        value.map_or(Frame::Null, Frame::Bulk)
    }

    /// Whether this is an error reply.
    #[must_use]
    pub fn is_error(&self) -> bool {
        matches!(self, Frame::Error(_))
    }

    /// Approximate memory held by the frame, in bytes (what reply caches count).
    #[must_use]
    pub fn size_bytes(&self) -> u64 {
        const OVERHEAD: u64 = 16;
        OVERHEAD
            + match self {
                Frame::Simple(text) | Frame::Error(text) => text.len() as u64,
                Frame::Bulk(bytes) => bytes.len() as u64,
                Frame::Integer(_) | Frame::Null | Frame::NullArray => 0,
                Frame::Array(items) => items.iter().map(Frame::size_bytes).sum(),
            }
    }

    /// Appends the RESP2 encoding to `out`. Line breaks in simple strings and errors (which
    /// would break the framing) are written as spaces.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let line = |out: &mut Vec<u8>, marker: u8, text: &str| {
            out.push(marker);
            out.extend(
                text.bytes()
                    .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
            );
        };
        match self {
            Frame::Simple(text) => line(out, b'+', text),
            Frame::Error(text) => line(out, b'-', text),
            Frame::Integer(n) => {
                out.push(b':');
                out.extend_from_slice(n.to_string().as_bytes());
            }
            Frame::Bulk(bytes) => {
                out.push(b'$');
                out.extend_from_slice(bytes.len().to_string().as_bytes());
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(bytes);
            }
            Frame::Null => out.extend_from_slice(b"$-1"),
            Frame::NullArray => out.extend_from_slice(b"*-1"),
            Frame::Array(items) => {
                out.push(b'*');
                out.extend_from_slice(items.len().to_string().as_bytes());
                out.extend_from_slice(b"\r\n");
                for item in items {
                    item.encode(out);
                }
                return;
            }
        }
        out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::Frame;

    fn encoded(frame: &Frame) -> String {
        let mut out = Vec::new();
        frame.encode(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn frames_encode_as_resp2() {
        assert_eq!(encoded(&Frame::ok()), "+OK\r\n");
        assert_eq!(encoded(&Frame::error("ERR x")), "-ERR x\r\n");
        assert_eq!(encoded(&Frame::error("ERR a\r\nb")), "-ERR a  b\r\n");
        assert_eq!(encoded(&Frame::Integer(-3)), ":-3\r\n");
        assert_eq!(encoded(&Frame::text("ab")), "$2\r\nab\r\n");
        assert_eq!(encoded(&Frame::Null), "$-1\r\n");
        assert_eq!(encoded(&Frame::NullArray), "*-1\r\n");
        assert_eq!(
            encoded(&Frame::Array(vec![Frame::Integer(1), Frame::Null])),
            "*2\r\n:1\r\n$-1\r\n"
        );
        assert_eq!(encoded(&Frame::Array(vec![])), "*0\r\n");
    }
}
