//! A digest of replica state, the same on every platform, for comparing replicas (the
//! simulator checks that replicas that applied the same prefix agree).

use super::client::Reply;
use super::frame::Frame;
use super::store::mix;

/// A 64-bit FNV-1a digest, the same on every platform: what [`crate::kv::StateMachine::digest`]
/// folds a replica's state into.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Digest(u64);

impl Default for Digest {
    fn default() -> Digest {
        Digest(0xcbf2_9ce4_8422_2325)
    }
}

impl Digest {
    /// Folds in `bytes` as they are (FNV-1a's own step).
    pub fn raw(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// Folds in `bytes`, preceded by their length (so boundaries count).
    pub fn bytes(&mut self, bytes: &[u8]) {
        self.number(bytes.len() as u64);
        self.raw(bytes);
    }

    /// Folds in `n`.
    pub fn number(&mut self, n: u64) {
        self.raw(&n.to_le_bytes());
    }

    /// Folds in a state-machine reply, its kind and its content.
    pub fn reply(&mut self, reply: &Reply) {
        match reply {
            Reply::Executed(frame) => {
                self.number(1);
                self.frame(frame);
            }
            Reply::SessionOpened { client } => {
                self.number(2);
                self.number(client.0);
            }
            Reply::Resumed { highest } => {
                self.number(3);
                self.number(highest.0);
            }
            Reply::Rejected(error) => {
                self.number(4);
                self.bytes(error.to_string().as_bytes());
            }
        }
    }

    /// Folds in a reply frame, structure and all.
    pub fn frame(&mut self, frame: &Frame) {
        match frame {
            Frame::Simple(text) => {
                self.number(1);
                self.bytes(text.as_bytes());
            }
            Frame::Error(text) => {
                self.number(2);
                self.bytes(text.as_bytes());
            }
            Frame::Integer(n) => {
                self.number(3);
                self.number(n.cast_unsigned());
            }
            Frame::Bulk(bytes) => {
                self.number(4);
                self.bytes(bytes);
            }
            Frame::Null => self.number(5),
            Frame::NullArray => self.number(6),
            Frame::Array(items) => {
                self.number(7);
                self.number(items.len() as u64);
                for item in items {
                    self.frame(item);
                }
            }
        }
    }

    /// The digest so far.
    #[must_use]
    pub fn finish(self) -> u64 {
        mix(self.0)
    }
}
