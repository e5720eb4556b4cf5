//! The frames peers exchange after the handshake.
//!
//! Besides Raft's own messages, a follower forwards the client operations it receives to the
//! leader and relays the answer, so a client need not know the topology. A forwarded operation
//! carries an id chosen by the forwarding node; the answer echoes it.

use serde::{Deserialize, Serialize};
use verity_core::raft::Outcome;
use verity_core::{ClientOp, LogIndex, Message, NodeId};

/// One frame on a peer connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerFrame {
    /// A Raft message; its `from` must be the connection's authenticated peer.
    Raft(Message),
    /// A client operation forwarded to the node the sender believes leads.
    Forward {
        /// The forwarding node's id for this request, echoed in the reply.
        id: u64,
        /// The operation to propose.
        op: ClientOp,
    },
    /// The fate of a forwarded operation.
    ForwardReply {
        /// The id from the [`PeerFrame::Forward`].
        id: u64,
        /// What became of it.
        result: ForwardResult,
    },
}

/// What became of a forwarded operation on the node it was forwarded to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ForwardResult {
    /// It was proposed and reached this fate.
    Outcome {
        /// The log index of its entry (0 if it was superseded).
        index: LogIndex,
        /// Its fate.
        outcome: Outcome,
    },
    /// The receiver does not lead; `leader` is whom it follows, if known. Nothing was proposed.
    NotLeader {
        /// The leader the receiver knows of.
        leader: Option<NodeId>,
    },
    /// The leader refused it for now (too much uncommitted work). Nothing was proposed.
    Overloaded,
}
/// Fuzz body of `peer_frame`: any bytes as a frame off a peer connection. Promises: no panic;
/// whatever decodes as a [`PeerFrame`] (what peers really send) or as a bare Raft message
/// (checked by [`verity_core::fuzzing::peer_frame`]) re-encodes to exactly its own bytes.
#[cfg(feature = "fuzzing")]
pub fn fuzz_peer_frame(data: &[u8]) {
    verity_core::fuzzing::peer_frame(data);
    if let Ok(decoded) = verity_core::codec::decode::<PeerFrame>(data) {
        let again = verity_core::codec::encode(&decoded.value).expect("a decoded frame re-encodes");
        assert_eq!(
            again,
            data[..decoded.frame_bytes],
            "decode then encode must give the same bytes"
        );
    }
}
