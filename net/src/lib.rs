//! # verity-net: the peer transport of production nodes
//!
//! Nodes talk to each other over TCP, one connection per direction: node A dials node B and
//! only ever *sends* on that connection; B's frames to A travel on the connection B dialed. So
//! every inbound connection carries frames from exactly one authenticated peer. What the
//! frames say ([`PeerFrame`]) is the engine's business: this crate only carries them.
//!
//! - [`frame`]: reading and writing [`verity_core::codec`] frames (length, crc32, bincode) on
//!   async streams, with a size limit checked before anything is allocated.
//! - [`handshake`]: the first exchange on every connection: protocol version, cluster id, node
//!   ids and, when a shared secret is configured, an HMAC-SHA256 challenge-response.
//! - [`transport`]: the tasks that dial peers (reconnecting with jittered exponential
//!   backoff), accept their connections, and bound every queue.

pub mod frame;
pub mod handshake;
pub mod transport;

pub use frame::FrameError;
pub use handshake::{HandshakeConfig, HandshakeError, PROTOCOL_VERSION};
pub use transport::{Inbound, PeerState, PeerTls, SendError, Transport, TransportConfig};
pub use verity_engine::envelope::{ForwardResult, PeerFrame};
