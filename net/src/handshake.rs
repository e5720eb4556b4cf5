//! The first exchange on every peer connection.
//!
//! ```text
//! acceptor                                  dialer
//!    | --- Challenge { version, nonce } --->   |
//!    | <-- Hello { version, cluster, from,     |
//!    |            to, mac } ------------------ |
//!    | --- Verdict::Welcome | Rejected ----->  |
//!    | <-- PeerFrame ... (dialer → acceptor only)
//! ```
//!
//! The acceptor checks the protocol version, the cluster id, that `to` is itself and `from` is
//! one of its peers, and, when it has a shared secret, that `mac` is HMAC-SHA256 over the fresh
//! nonce and the hello's fields. A stranger without the secret therefore cannot open a
//! connection that the node reads messages from, and a recorded handshake cannot be replayed
//! (the nonce is new each time). Every mismatch is rejected with a reason that both sides log.
//!
//! Out of scope: the bytes after the handshake are not encrypted or authenticated per frame,
//! so an attacker who can rewrite TCP traffic in flight is not stopped (use a private network
//! or a TLS tunnel for that).

use crate::frame::{self, FrameError};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::collections::BTreeSet;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use verity_core::NodeId;

/// The peer protocol version this build speaks. Peers must match exactly. Version 2: snapshot
/// transfer messages, and a forwarded operation's answer carries its log index.
pub const PROTOCOL_VERSION: u32 = 2;

/// The limit on handshake frames: they are tiny.
const HANDSHAKE_FRAME_BYTES: u32 = 4096;

/// Sent by the acceptor as soon as a connection opens.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Challenge {
    version: u32,
    nonce: [u8; 32],
}

/// The dialer's introduction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Hello {
    version: u32,
    cluster_id: String,
    from: NodeId,
    to: NodeId,
    mac: Option<Vec<u8>>,
}

/// The acceptor's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Verdict {
    Welcome { client_addr: String },
    Rejected { reason: String },
}

/// Who this node is, for both sides of the handshake.
#[derive(Clone, Debug)]
pub struct HandshakeConfig {
    /// The cluster this node belongs to; peers must name the same one.
    pub cluster_id: String,
    /// This node.
    pub node: NodeId,
    /// The nodes allowed to connect (this node's peers, not itself).
    pub peers: BTreeSet<NodeId>,
    /// Shared secret for peer authentication, if configured (the same on every node).
    pub secret: Option<Arc<Vec<u8>>>,
    /// The address this node serves clients on, told to peers that dial it (so any node can
    /// tell a client where the leader is).
    pub client_addr: String,
}

/// Why a handshake failed. The connection is closed.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The connection failed or sent a bad frame.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The connection closed before the handshake completed.
    #[error("connection closed during the handshake")]
    Closed,
    /// This side refused the other.
    #[error("refused peer: {0}")]
    Refused(String),
    /// The other side refused this one.
    #[error("rejected by peer: {0}")]
    RejectedByPeer(String),
}

/// HMAC-SHA256 keyed with the secret, fed with the nonce and every field of the hello.
fn keyed_mac(secret: &[u8], nonce: &[u8; 32], hello: &Hello) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(b"verity-peer-handshake");
    mac.update(&hello.version.to_le_bytes());
    mac.update(nonce);
    mac.update(&(hello.cluster_id.len() as u64).to_le_bytes());
    mac.update(hello.cluster_id.as_bytes());
    mac.update(&hello.from.0.to_le_bytes());
    mac.update(&hello.to.0.to_le_bytes());
    mac
}

async fn read<T: serde::de::DeserializeOwned, S: AsyncRead + Unpin>(
    stream: &mut S,
) -> Result<T, HandshakeError> {
    let mut buffer = Vec::new();
    frame::read_frame(stream, HANDSHAKE_FRAME_BYTES, &mut buffer)
        .await?
        .ok_or(HandshakeError::Closed)
}

async fn write<T: Serialize, S: AsyncWrite + Unpin>(
    stream: &mut S,
    value: &T,
) -> Result<(), HandshakeError> {
    frame::write_frame(stream, value).await?;
    stream.flush().await.map_err(FrameError::from)?;
    Ok(())
}

/// Runs the acceptor's side; on success returns the authenticated peer's id.
pub async fn accept<S>(stream: &mut S, config: &HandshakeConfig) -> Result<NodeId, HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut nonce = [0u8; 32];
    getrandom::fill(&mut nonce).map_err(|error| {
        HandshakeError::Refused(format!("no randomness for the handshake nonce: {error}"))
    })?;
    write(
        stream,
        &Challenge {
            version: PROTOCOL_VERSION,
            nonce,
        },
    )
    .await?;
    let hello: Hello = read(stream).await?;
    let refusal = check_hello(config, &nonce, &hello);
    match refusal {
        None => {
            let welcome = Verdict::Welcome {
                client_addr: config.client_addr.clone(),
            };
            write(stream, &welcome).await?;
            Ok(hello.from)
        }
        Some(reason) => {
            // Best effort: the peer learns why, but we refuse whether or not it hears.
            let _ = write(
                stream,
                &Verdict::Rejected {
                    reason: reason.clone(),
                },
            )
            .await;
            Err(HandshakeError::Refused(reason))
        }
    }
}

fn check_hello(config: &HandshakeConfig, nonce: &[u8; 32], hello: &Hello) -> Option<String> {
    if hello.version != PROTOCOL_VERSION {
        return Some(format!(
            "protocol version {} is not this node's {PROTOCOL_VERSION}: run the same Verity release on every node",
            hello.version
        ));
    }
    if hello.cluster_id != config.cluster_id {
        return Some(format!(
            "cluster id {:?} is not this node's {:?}: the peer belongs to another cluster",
            hello.cluster_id, config.cluster_id
        ));
    }
    if hello.to != config.node {
        return Some(format!(
            "the peer dialed node {} but this is node {}: check the --peers addresses",
            hello.to, config.node
        ));
    }
    if !config.peers.contains(&hello.from) {
        return Some(format!(
            "node {} is not a peer of node {}",
            hello.from, config.node
        ));
    }
    match (&config.secret, &hello.mac) {
        (None, None) => None,
        (Some(secret), Some(tag)) if keyed_mac(secret, nonce, hello).verify_slice(tag).is_ok() => {
            None
        }
        (Some(_), Some(_)) => Some(format!(
            "node {} failed peer authentication: its peer secret differs",
            hello.from
        )),
        (Some(_), None) => Some(format!(
            "node {} sent no authentication, but this node requires a peer secret",
            hello.from
        )),
        (None, Some(_)) => Some(format!(
            "node {} authenticates with a peer secret, but this node has none configured",
            hello.from
        )),
    }
}

/// Runs the dialer's side, introducing this node to `to`; returns the client address `to`
/// advertises.
pub async fn dial<S>(
    stream: &mut S,
    config: &HandshakeConfig,
    to: NodeId,
) -> Result<String, HandshakeError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let challenge: Challenge = read(stream).await?;
    if challenge.version != PROTOCOL_VERSION {
        return Err(HandshakeError::Refused(format!(
            "node {to} speaks protocol version {}, this node {PROTOCOL_VERSION}",
            challenge.version
        )));
    }
    let mut hello = Hello {
        version: PROTOCOL_VERSION,
        cluster_id: config.cluster_id.clone(),
        from: config.node,
        to,
        mac: None,
    };
    hello.mac = config.secret.as_ref().map(|secret| {
        keyed_mac(secret, &challenge.nonce, &hello)
            .finalize()
            .into_bytes()
            .to_vec()
    });
    write(stream, &hello).await?;
    match read::<Verdict, _>(stream).await? {
        Verdict::Welcome { client_addr } => Ok(client_addr),
        Verdict::Rejected { reason } => Err(HandshakeError::RejectedByPeer(reason)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(node: u64, cluster: &str, secret: Option<&str>) -> HandshakeConfig {
        HandshakeConfig {
            cluster_id: cluster.into(),
            node: NodeId(node),
            peers: [1, 2, 3]
                .into_iter()
                .filter(|&n| n != node)
                .map(NodeId)
                .collect(),
            secret: secret.map(|s| Arc::new(s.as_bytes().to_vec())),
            client_addr: format!("127.0.0.1:600{node}"),
        }
    }

    async fn run(
        dialer: HandshakeConfig,
        acceptor: HandshakeConfig,
        to: u64,
    ) -> (
        Result<String, HandshakeError>,
        Result<NodeId, HandshakeError>,
    ) {
        let (mut a, mut b) = tokio::io::duplex(8192);
        tokio::join!(dial(&mut a, &dialer, NodeId(to)), accept(&mut b, &acceptor))
    }

    #[tokio::test]
    async fn matching_peers_are_welcome_with_and_without_a_secret() {
        let (dialed, accepted) = run(config(1, "c", None), config(2, "c", None), 2).await;
        assert_eq!(dialed.unwrap(), "127.0.0.1:6002");
        assert_eq!(accepted.unwrap(), NodeId(1));
        let (dialed, accepted) = run(config(3, "c", Some("s")), config(2, "c", Some("s")), 2).await;
        dialed.unwrap();
        assert_eq!(accepted.unwrap(), NodeId(3));
    }

    #[tokio::test]
    async fn every_mismatch_is_refused_with_its_reason() {
        let cases = [
            (
                config(1, "other", None),
                config(2, "c", None),
                2,
                "cluster id",
            ),
            (
                config(1, "c", None),
                config(2, "c", None),
                3,
                "dialed node n3",
            ),
            (config(2, "c", None), config(2, "c", None), 2, "not a peer"),
            (
                config(1, "c", Some("x")),
                config(2, "c", Some("y")),
                2,
                "secret differs",
            ),
            (
                config(1, "c", None),
                config(2, "c", Some("y")),
                2,
                "requires a peer secret",
            ),
            (
                config(1, "c", Some("x")),
                config(2, "c", None),
                2,
                "none configured",
            ),
        ];
        for (dialer, acceptor, to, reason) in cases {
            let (dialed, accepted) = run(dialer, acceptor, to).await;
            let refused = accepted.unwrap_err().to_string();
            assert!(refused.contains(reason), "{refused}");
            let rejected = dialed.unwrap_err().to_string();
            assert!(rejected.contains(reason), "{rejected}");
        }
    }
}
