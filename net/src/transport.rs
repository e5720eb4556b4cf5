//! The peer transport: one dialer task per peer, one acceptor task, bounded everywhere.
//!
//! - **Sending**: [`Transport::send`] puts a frame on the peer's queue (bounded at
//!   `send_queue_frames` frames and `send_queue_bytes` encoded bytes, counted until the dialer
//!   takes the frame to write it) without waiting. A full queue drops the frame: Raft tolerates lost
//!   messages, and a slow or dead peer must never grow this node's memory. While a peer is
//!   unreachable its queue is drained and dropped as well, so a reconnection does not start by
//!   replaying seconds of stale heartbeats.
//! - **Dialing**: each dialer connects, runs the [`handshake`], then writes frames, flushing
//!   when its queue is momentarily empty (so bursts share a syscall). On any failure it waits
//!   with exponential backoff (`backoff_min_ms` doubling to `backoff_max_ms`, each wait drawn
//!   uniformly from its upper half) and dials again.
//! - **Accepting**: every connection is accepted at once, then admitted as a *handshaking* one
//!   only while fewer than `max_handshaking` are, and fewer than `max_handshaking_per_address`
//!   from its IP address; otherwise it is closed at once. A handshaking connection must finish
//!   the handshake within `handshake_timeout_ms`, so strangers that connect and stay silent
//!   hold a slot for that long at most and cannot keep a real peer out: they are never queued
//!   ahead of it. An authenticated connection takes one of `max_inbound_connections` slots. A
//!   frame that fails its checksum or decode, exceeds `max_frame_bytes`, or claims a sender
//!   other than the authenticated peer closes that connection (logged); nothing reaches the
//!   node from it afterwards.

use crate::frame::{self, FrameError};
use crate::handshake::{self, HandshakeConfig};
use rustls::pki_types::ServerName;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use verity_core::NodeId;
use verity_core::codec;
use verity_engine::envelope::PeerFrame;

/// Settings of the transport.
#[derive(Clone, Debug)]
pub struct TransportConfig {
    /// Identity and authentication, shared with the handshake.
    pub handshake: HandshakeConfig,
    /// Where each peer (not this node) accepts connections.
    pub peer_addrs: BTreeMap<NodeId, SocketAddr>,
    /// Frames queued per peer before new ones are dropped.
    pub send_queue_frames: usize,
    /// Encoded bytes queued per peer (not yet written to its socket) before new frames are
    /// dropped.
    pub send_queue_bytes: u64,
    /// The largest frame accepted from a peer.
    pub max_frame_bytes: u32,
    /// Authenticated inbound connections served at once; further ones are closed.
    pub max_inbound_connections: usize,
    /// Inbound connections still in their handshake at once; further ones are closed.
    pub max_handshaking: usize,
    /// Inbound connections from one IP address in their handshake at once.
    pub max_handshaking_per_address: usize,
    /// How long a connection has to complete the handshake (both ways).
    pub handshake_timeout_ms: u64,
    /// Mutual TLS between peers, if configured: every connection is TLS, both sides present
    /// a certificate, and each checks the other's against the cluster's CA.
    pub tls: Option<PeerTls>,
    /// First reconnection delay.
    pub backoff_min_ms: u64,
    /// Largest reconnection delay.
    pub backoff_max_ms: u64,
}

/// Both sides of mutual TLS between peers.
#[derive(Clone)]
pub struct PeerTls {
    /// Accepts peers' connections, asking for their certificate.
    pub acceptor: TlsAcceptor,
    /// Dials peers, presenting this node's certificate and checking theirs (issued for the
    /// IP address dialed).
    pub connector: TlsConnector,
}

impl std::fmt::Debug for PeerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PeerTls")
    }
}

/// A peer connection: TCP, or TLS over TCP.
trait PeerIo: AsyncRead + AsyncWrite + Unpin + Send {}
impl<S: AsyncRead + AsyncWrite + Unpin + Send> PeerIo for S {}
type PeerStream = Box<dyn PeerIo>;

/// A frame that arrived from an authenticated peer.
#[derive(Debug)]
pub struct Inbound {
    /// The peer it came from (authenticated by the handshake).
    pub from: NodeId,
    /// The frame.
    pub frame: PeerFrame,
}

/// Why [`Transport::send`] did not queue a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The node is not a configured peer.
    #[error("node {0} is not a peer")]
    UnknownPeer(NodeId),
    /// The peer's queue is full (or the peer is unreachable): the frame was dropped.
    #[error("queue to node {0} is full: frame dropped")]
    Dropped(NodeId),
}

/// What the transport knows about one peer, for `INFO`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerState {
    /// Whether the outgoing connection is established.
    pub connected: bool,
    /// The client address the peer advertised in its last handshake.
    pub client_addr: Option<String>,
    /// Frames written to the peer's connection.
    pub sent_frames: u64,
    /// Frames dropped because the queue was full or the peer unreachable.
    pub dropped_frames: u64,
}

#[derive(Default)]
struct PeerCounters {
    connected: AtomicBool,
    client_addr: Mutex<Option<String>>,
    sent_frames: AtomicU64,
    dropped_frames: AtomicU64,
    /// Encoded bytes of the frames queued and not yet written.
    queued_bytes: AtomicU64,
}

impl PeerCounters {
    /// A queued frame of `bytes` was written or dropped.
    fn dequeued(&self, bytes: u64) {
        self.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// A queued frame of `bytes` was dropped.
    fn dropped(&self, bytes: u64) {
        self.dequeued(bytes);
        self.dropped_frames.fetch_add(1, Ordering::Relaxed);
    }
}

/// A frame on a peer's queue, with its encoded size.
type Queued = (PeerFrame, u64);

struct PeerLink {
    queue: mpsc::Sender<Queued>,
    counters: Arc<PeerCounters>,
    limit_bytes: u64,
}

/// A running transport. Dropping it stops every task it started.
pub struct Transport {
    links: BTreeMap<NodeId, PeerLink>,
    tasks: Vec<JoinHandle<()>>,
}

impl Transport {
    /// Starts accepting on `listener` (already bound to this node's peer address) and dialing
    /// every peer. Inbound frames go to `inbound`; when it is full, reading from peers pauses.
    #[must_use]
    pub fn start(
        config: TransportConfig,
        listener: TcpListener,
        inbound: mpsc::Sender<Inbound>,
    ) -> Transport {
        let config = Arc::new(config);
        let mut links = BTreeMap::new();
        let mut tasks = Vec::new();
        for (&peer, &addr) in &config.peer_addrs {
            let (queue, receiver) = mpsc::channel(config.send_queue_frames.max(1));
            let counters = Arc::new(PeerCounters::default());
            tasks.push(tokio::spawn(dial_loop(
                Arc::clone(&config),
                peer,
                addr,
                receiver,
                Arc::clone(&counters),
            )));
            links.insert(
                peer,
                PeerLink {
                    queue,
                    counters,
                    limit_bytes: config.send_queue_bytes,
                },
            );
        }
        tasks.push(tokio::spawn(accept_loop(config, listener, inbound)));
        Transport { links, tasks }
    }

    /// Queues `frame` for `to` without waiting; see the module docs for when it is dropped.
    pub fn send(&self, to: NodeId, frame: PeerFrame) -> Result<(), SendError> {
        let link = self.links.get(&to).ok_or(SendError::UnknownPeer(to))?;
        let bytes = codec::encoded_bytes(&frame);
        let counters = &link.counters;
        let queued = counters.queued_bytes.fetch_add(bytes, Ordering::Relaxed);
        if queued + bytes > link.limit_bytes {
            counters.dropped(bytes);
            return Err(SendError::Dropped(to));
        }
        link.queue.try_send((frame, bytes)).map_err(|_| {
            counters.dropped(bytes);
            SendError::Dropped(to)
        })
    }

    /// The state of every peer, by id.
    #[must_use]
    pub fn peer_states(&self) -> BTreeMap<NodeId, PeerState> {
        self.links
            .iter()
            .map(|(&peer, link)| {
                let counters = &link.counters;
                let state = PeerState {
                    connected: counters.connected.load(Ordering::Relaxed),
                    client_addr: counters
                        .client_addr
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .clone(),
                    sent_frames: counters.sent_frames.load(Ordering::Relaxed),
                    dropped_frames: counters.dropped_frames.load(Ordering::Relaxed),
                };
                (peer, state)
            })
            .collect()
    }
}

impl Drop for Transport {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// A delay drawn uniformly from the upper half of `ceiling_ms`.
fn jittered(ceiling_ms: u64) -> Duration {
    let mut bytes = [0u8; 8];
    // Without OS randomness the jitter degrades to a fixed delay, which is still correct.
    let _ = getrandom::fill(&mut bytes);
    let half = ceiling_ms / 2;
    Duration::from_millis(half + u64::from_le_bytes(bytes) % (ceiling_ms - half + 1))
}

async fn dial_loop(
    config: Arc<TransportConfig>,
    peer: NodeId,
    addr: SocketAddr,
    mut queue: mpsc::Receiver<Queued>,
    counters: Arc<PeerCounters>,
) {
    let mut ceiling_ms = config.backoff_min_ms;
    let mut last_error = String::new();
    loop {
        match connect(&config, peer, addr).await {
            Ok((stream, client_addr)) => {
                counters.connected.store(true, Ordering::Relaxed);
                *counters
                    .client_addr
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(client_addr);
                tracing::info!(peer = peer.0, %addr, "[PEER] connected");
                ceiling_ms = config.backoff_min_ms;
                last_error.clear();
                let outcome = pump(stream, &mut queue, &counters).await;
                counters.connected.store(false, Ordering::Relaxed);
                match outcome {
                    Ok(()) => return,
                    Err(error) => {
                        tracing::warn!(peer = peer.0, %addr, %error, "[PEER] connection lost")
                    }
                }
            }
            Err(error) => {
                // Log a refusal once per distinct reason, not on every retry.
                if error != last_error {
                    tracing::warn!(peer = peer.0, %addr, %error, "[PEER] cannot connect; retrying with backoff");
                    last_error = error;
                }
            }
        }
        let wait = tokio::time::sleep(jittered(ceiling_ms));
        tokio::pin!(wait);
        // Drop what queues up meanwhile: it would be stale by the time we reconnect.
        loop {
            tokio::select! {
                () = &mut wait => break,
                frame = queue.recv() => match frame {
                    Some((_, bytes)) => counters.dropped(bytes),
                    None => return,
                },
            }
        }
        ceiling_ms = (ceiling_ms * 2).min(config.backoff_max_ms);
    }
}

/// Dials and handshakes; returns the stream and the peer's advertised client address.
async fn connect(
    config: &TransportConfig,
    peer: NodeId,
    addr: SocketAddr,
) -> Result<(PeerStream, String), String> {
    let timeout = Duration::from_millis(config.handshake_timeout_ms);
    let attempt = async {
        let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let mut stream: PeerStream = match &config.tls {
            Some(tls) => Box::new(
                tls.connector
                    .connect(ServerName::IpAddress(addr.ip().into()), stream)
                    .await
                    .map_err(|e| format!("TLS: {e}"))?,
            ),
            None => Box::new(stream),
        };
        let client_addr = handshake::dial(&mut stream, &config.handshake, peer)
            .await
            .map_err(|e| e.to_string())?;
        Ok((stream, client_addr))
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "no handshake within {} ms",
                config.handshake_timeout_ms
            ))
        })
}

/// Writes queued frames until the queue closes (`Ok`) or the connection fails.
async fn pump(
    stream: PeerStream,
    queue: &mut mpsc::Receiver<Queued>,
    counters: &PeerCounters,
) -> Result<(), FrameError> {
    let (mut reader, writer) = tokio::io::split(stream);
    let mut writer = BufWriter::new(writer);
    let mut probe = [0u8; 1];
    loop {
        let frame = tokio::select! {
            frame = queue.recv() => frame,
            // The acceptor never writes after the handshake: a readable socket means it closed.
            _ = tokio::io::AsyncReadExt::read(&mut reader, &mut probe) => {
                return Err(FrameError::Io(std::io::ErrorKind::ConnectionReset.into()));
            }
        };
        let Some(queued) = frame else { return Ok(()) };
        write_one(&mut writer, queued, counters).await?;
        while let Ok(queued) = queue.try_recv() {
            write_one(&mut writer, queued, counters).await?;
        }
        writer.flush().await?;
    }
}

/// Writes one frame taken off the queue; a frame too large to encode is dropped (and
/// logged), not the connection.
async fn write_one<W: tokio::io::AsyncWrite + Unpin>(
    writer: &mut W,
    (frame, bytes): Queued,
    counters: &PeerCounters,
) -> Result<(), FrameError> {
    counters.dequeued(bytes);
    match frame::write_frame(writer, &frame).await {
        Ok(()) => {
            counters.sent_frames.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
        Err(FrameError::Encode(error)) => {
            counters.dropped_frames.fetch_add(1, Ordering::Relaxed);
            tracing::error!(%error, "[PEER] dropped a frame that cannot be encoded");
            Ok(())
        }
        Err(error) => Err(error),
    }
}

/// Inbound connections in their handshake, in all and by address.
#[derive(Default)]
struct Handshaking {
    total: usize,
    by_address: BTreeMap<IpAddr, usize>,
}

/// A handshaking slot, given back when dropped.
struct HandshakeSlot {
    table: Arc<Mutex<Handshaking>>,
    address: IpAddr,
}

impl HandshakeSlot {
    /// Takes a slot for `address`, if the limits allow.
    fn take(
        table: &Arc<Mutex<Handshaking>>,
        config: &TransportConfig,
        address: IpAddr,
    ) -> Option<HandshakeSlot> {
        let mut handshaking = table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let from_address = handshaking.by_address.get(&address).copied().unwrap_or(0);
        if handshaking.total >= config.max_handshaking
            || from_address >= config.max_handshaking_per_address
        {
            return None;
        }
        handshaking.total += 1;
        handshaking.by_address.insert(address, from_address + 1);
        Some(HandshakeSlot {
            table: Arc::clone(table),
            address,
        })
    }
}

impl Drop for HandshakeSlot {
    fn drop(&mut self) {
        let mut handshaking = self
            .table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        handshaking.total -= 1;
        let count = handshaking
            .by_address
            .get_mut(&self.address)
            .expect("a slot counts its address");
        *count -= 1;
        if *count == 0 {
            handshaking.by_address.remove(&self.address);
        }
    }
}

async fn accept_loop(
    config: Arc<TransportConfig>,
    listener: TcpListener,
    inbound: mpsc::Sender<Inbound>,
) {
    let served = Arc::new(Semaphore::new(config.max_inbound_connections.max(1)));
    let handshaking = Arc::new(Mutex::new(Handshaking::default()));
    let mut refused: u64 = 0;
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "[PEER] accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Some(slot) = HandshakeSlot::take(&handshaking, &config, remote.ip()) else {
            // Closed at once; logged once per power of two so a flood cannot fill the log.
            refused += 1;
            if refused.is_power_of_two() {
                tracing::warn!(%remote, refused, "[PEER] too many connections in their handshake; closed");
            }
            continue;
        };
        let config = Arc::clone(&config);
        let inbound = inbound.clone();
        let served = Arc::clone(&served);
        tokio::spawn(async move {
            if let Err(error) = serve_inbound(&config, stream, slot, &served, &inbound).await {
                tracing::warn!(%remote, %error, "[PEER] inbound connection closed");
            }
        });
    }
}

async fn serve_inbound(
    config: &TransportConfig,
    stream: TcpStream,
    slot: HandshakeSlot,
    served: &Arc<Semaphore>,
    inbound: &mpsc::Sender<Inbound>,
) -> Result<(), String> {
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let timeout = Duration::from_millis(config.handshake_timeout_ms);
    let handshake = async {
        let mut stream: PeerStream = match &config.tls {
            Some(tls) => Box::new(
                tls.acceptor
                    .accept(stream)
                    .await
                    .map_err(|e| format!("TLS: {e}"))?,
            ),
            None => Box::new(stream),
        };
        let from = handshake::accept(&mut stream, &config.handshake)
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>((stream, from))
    };
    let (stream, from) = tokio::time::timeout(timeout, handshake)
        .await
        .map_err(|_| format!("no handshake within {} ms", config.handshake_timeout_ms))??;
    drop(slot);
    let Ok(_permit) = Arc::clone(served).try_acquire_owned() else {
        return Err(format!(
            "node {from} authenticated, but {} peer connections are served already",
            config.max_inbound_connections
        ));
    };
    tracing::debug!(peer = from.0, "[PEER] accepted connection");
    let mut reader = tokio::io::BufReader::new(stream);
    let mut buffer = Vec::new();
    loop {
        let frame: PeerFrame =
            match frame::read_frame(&mut reader, config.max_frame_bytes, &mut buffer).await {
                Ok(Some(frame)) => frame,
                Ok(None) => return Ok(()),
                Err(error) => return Err(format!("from node {from}: {error}")),
            };
        if let PeerFrame::Raft(message) = &frame
            && message.from != from
        {
            return Err(format!(
                "node {from} sent a message claiming to be from node {}",
                message.from
            ));
        }
        if inbound.send(Inbound { from, frame }).await.is_err() {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use verity_core::kv::{ClientOp, ClientRequest, Command, SessionToken};
    use verity_core::{ClientId, Sequence};

    #[tokio::test]
    async fn a_peer_queue_is_bounded_in_bytes_not_only_in_frames() {
        // Issue 11, failure 7: 4,096 frames of up to 8 MiB could queue for one slow peer.
        // This peer accepts the TCP connection and never answers the handshake, so nothing
        // leaves the queue.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = NodeId(2);
        let config = TransportConfig {
            handshake: HandshakeConfig {
                cluster_id: "c".into(),
                node: NodeId(1),
                peers: [peer].into(),
                secret: None,
                client_addr: "127.0.0.1:1".into(),
            },
            peer_addrs: [(peer, silent.local_addr().unwrap())].into(),
            send_queue_frames: 4_096,
            send_queue_bytes: 64 * 1024,
            max_frame_bytes: codec::MAX_FRAME_BYTES,
            max_inbound_connections: 1,
            max_handshaking: 1,
            max_handshaking_per_address: 1,
            handshake_timeout_ms: 60_000,
            tls: None,
            backoff_min_ms: 10,
            backoff_max_ms: 10,
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (inbound, _received) = mpsc::channel(1);
        let transport = Transport::start(config, listener, inbound);
        let forward = |id: u64| PeerFrame::Forward {
            id,
            op: ClientOp::Request(ClientRequest {
                client: ClientId(1),
                token: SessionToken::default(),
                sequence: Sequence(id),
                may_skip_earlier: false,
                command: Command::set(*b"k", vec![b'v'; 10 * 1024]),
            }),
        };
        let sent: Vec<bool> = (0..20)
            .map(|id| transport.send(peer, forward(id)).is_ok())
            .collect();
        let queued = sent.iter().filter(|&&ok| ok).count();
        assert!(
            (5..=6).contains(&queued),
            "64 KiB holds six 10 KiB frames: {sent:?}"
        );
        assert!(!sent[19], "the rest are dropped");
        assert_eq!(
            transport.peer_states()[&peer].dropped_frames,
            (20 - queued) as u64
        );
    }
}
