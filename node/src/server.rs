//! The Redis-protocol client server: sockets around [`verity_engine::Connection`].
//!
//! Every decision about a client (parsing, sessions, numbering, ordering, retries, replies)
//! is the engine's; this module only moves bytes and time. One task accepts connections (at
//! most `max_clients`; the next one is told `-ERR max number of clients reached` and closed).
//! Each connection task reads while the connection [`wants_input`](Connection::wants_input)
//! (so a client that pipelines without reading replies is throttled by TCP, not by this
//! node's memory), submits what the connection asks to the driver, feeds back the results and
//! the time, and writes the replies. On shutdown every connection is told
//! [`Connection::shut_down`], which answers each waiting command with what is known of it.
//! Replies are written as the socket accepts them while the connection goes on; the
//! connection decides when unwritten replies pause reading or drop the client
//! ([`verity_engine::OutputLimit`]).
//! With a TLS listener, its connections are served the same way once their TLS handshake
//! (at most 5 s) is done.

use crate::driver::{DriverHandle, NodeStatus};
use crate::storage::FsyncPolicy;
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_rustls::TlsAcceptor;
use verity_core::SessionToken;
use verity_engine::{AttemptId, AttemptResult, Connection, ConnectionConfig, Host, Tally};

/// Settings of the client server.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Most connections at once.
    pub max_clients: usize,
    /// What every connection is configured with.
    pub connection: ConnectionConfig,
    /// The WAL's sync policy, reported by `CONFIG GET appendfsync` and `INFO`.
    pub fsync: FsyncPolicy,
}

/// How long a client has to complete a TLS handshake.
const TLS_HANDSHAKE: Duration = Duration::from_secs(5);

/// Serves clients on `listener` in plain text and on `tls_listener` with TLS (each if given)
/// until `shutdown` becomes true. Both share the connection limit. `stats` gathers the
/// server's figures (for `INFO` and the metrics).
pub async fn serve(
    listener: Option<TcpListener>,
    tls_listener: Option<(TcpListener, TlsAcceptor)>,
    driver: DriverHandle,
    config: ServerConfig,
    stats: Arc<ServerStats>,
    mut shutdown: watch::Receiver<bool>,
) {
    let config = Arc::new(config);
    let slots = Arc::new(Semaphore::new(config.max_clients));
    let started = Instant::now();
    let mut next_id = 0u64;
    loop {
        let (accepted, tls) = tokio::select! {
            accepted = accept(listener.as_ref()) => (accepted, None),
            accepted = accept(tls_listener.as_ref().map(|(listener, _)| listener)) => {
                (accepted, tls_listener.as_ref().map(|(_, acceptor)| acceptor.clone()))
            }
            _ = shutdown.changed() => return,
        };
        let (mut socket, remote) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "[CLIENT] accept failed");
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            tracing::warn!(%remote, limit = config.max_clients, "[CLIENT] refused: too many clients");
            let _ = socket
                .write_all(b"-ERR max number of clients reached\r\n")
                .await;
            continue;
        };
        if let Err(error) = socket.set_nodelay(true) {
            tracing::debug!(%remote, %error, "[CLIENT] cannot set TCP_NODELAY");
        }
        next_id += 1;
        let mut token = [0; 16];
        if let Err(error) = getrandom::fill(&mut token) {
            tracing::error!(%error, "[CLIENT] no randomness for a session token; refusing the connection");
            continue;
        }
        let connection = Connection::new(
            next_id,
            config.connection.clone(),
            SessionToken(token),
            remote.ip().is_loopback(),
        );
        let served = Served {
            driver: driver.clone(),
            config: Arc::clone(&config),
            started,
            stats: Arc::clone(&stats),
        };
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _counted = Connected::count(&served.stats);
            let ended = match tls {
                None => served.run(connection, socket, shutdown).await,
                Some(acceptor) => {
                    match tokio::time::timeout(TLS_HANDSHAKE, acceptor.accept(socket)).await {
                        Ok(Ok(stream)) => served.run(connection, stream, shutdown).await,
                        Ok(Err(error)) => Err(error),
                        Err(_) => Err(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "no TLS handshake within 5 s",
                        )),
                    }
                }
            };
            if let Err(error) = ended {
                tracing::debug!(%remote, %error, "[CLIENT] connection ended");
            }
        });
    }
}

/// What one connection task shares with the node.
struct Served {
    driver: DriverHandle,
    config: Arc<ServerConfig>,
    /// The server's start: connections count time in milliseconds from it.
    started: Instant,
    stats: Arc<ServerStats>,
}

/// Figures of the whole client server, for `INFO` and the metrics.
#[derive(Debug, Default)]
pub struct ServerStats {
    /// Clients disconnected for passing the output buffer limit.
    output_limit_disconnections: AtomicU64,
    /// Client connections open now.
    connected: AtomicU64,
    /// Replies and error replies per command, over every connection so far.
    commands: std::sync::Mutex<Tally>,
}

impl ServerStats {
    /// Clients disconnected for passing the output buffer limit.
    #[must_use]
    pub fn output_limit_disconnections(&self) -> u64 {
        self.output_limit_disconnections.load(Ordering::Relaxed)
    }

    /// Client connections open now.
    #[must_use]
    pub fn connected_clients(&self) -> u64 {
        self.connected.load(Ordering::Relaxed)
    }

    /// Replies and error replies per command so far.
    #[must_use]
    pub fn commands(&self) -> Tally {
        self.commands
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn add_commands(&self, tally: &Tally) {
        self.commands
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .add(tally);
    }
}

/// Counts one open connection for as long as it lives.
struct Connected<'a>(&'a ServerStats);

impl<'a> Connected<'a> {
    fn count(stats: &'a ServerStats) -> Connected<'a> {
        stats.connected.fetch_add(1, Ordering::Relaxed);
        Connected(stats)
    }
}

impl Drop for Connected<'_> {
    fn drop(&mut self) {
        self.0.connected.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Served {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Runs `connection` on `socket` (TCP, or TLS over TCP) until it closes.
    async fn run<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        mut connection: Connection,
        socket: S,
        mut shutdown: watch::Receiver<bool>,
    ) -> std::io::Result<()> {
        let (mut reader, mut writer) = tokio::io::split(socket);
        let mut buffer = vec![0; 16 * 1024];
        let mut outbox = Outbox::default();
        let (results_sender, mut results) = mpsc::unbounded_channel();
        let mut stopping = false;
        loop {
            let host = self.host();
            connection.process(self.now_ms(), &host);
            let mut batch = Vec::new();
            while let Some(submission) = connection.poll_submission(self.now_ms()) {
                batch.push((submission.attempt.0, submission.op));
            }
            if !batch.is_empty() {
                self.driver.submit(batch, &results_sender).await;
            }
            if connection.output_overflowed() {
                self.stats
                    .output_limit_disconnections
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    unwritten = connection.buffered_output() + outbox.unwritten(),
                    limit = ?self.config.connection.output_limit,
                    "[CLIENT] disconnected: its unread replies passed the output buffer limit"
                );
                return Ok(());
            }
            outbox.push(connection.take_output());
            connection.report_unwritten(outbox.unwritten());
            let tally = connection.take_tally();
            if !tally.is_empty() {
                self.stats.add_commands(&tally);
            }
            if connection.is_closed() {
                tokio::time::timeout(CLOSE_WRITE, outbox.write_all(&mut writer))
                    .await
                    .map_err(|_| {
                        std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "the client read none of its last replies within 5 s",
                        )
                    })??;
                return linger(reader, writer).await;
            }
            let wake = connection.next_deadline_ms().map(|at| {
                let wait = at.saturating_sub(self.now_ms());
                tokio::time::Instant::now() + Duration::from_millis(wait)
            });
            tokio::select! {
                written = outbox.write_some(&mut writer), if outbox.has_work() => {
                    outbox.advance(written?);
                }
                Some((attempt, result)) = results.recv() => {
                    self.deliver(&mut connection, AttemptId(attempt), result);
                    while let Ok((attempt, result)) = results.try_recv() {
                        self.deliver(&mut connection, AttemptId(attempt), result);
                    }
                }
                read = reader.read(&mut buffer), if connection.wants_input() => match read? {
                    0 => connection.on_client_closed(),
                    n => connection.receive(&buffer[..n]),
                },
                () = sleep_until(wake), if wake.is_some() => {}
                _ = shutdown.changed(), if !stopping => {
                    stopping = true;
                    connection.shut_down();
                }
            }
        }
    }

    fn deliver(&self, connection: &mut Connection, attempt: AttemptId, result: AttemptResult) {
        connection.on_result(attempt, result, self.now_ms());
    }

    fn host(&self) -> NodeHost<'_> {
        NodeHost { served: self }
    }
}

/// How long a closing connection may take to write its last replies.
const CLOSE_WRITE: Duration = Duration::from_secs(5);

/// Reply bytes a connection took and has not yet written, written as the socket accepts
/// them while the connection goes on reading and receiving results.
#[derive(Default)]
struct Outbox {
    chunks: VecDeque<Vec<u8>>,
    /// Bytes of the front chunk already written.
    written: usize,
    /// Whether bytes were written since the last flush (TLS buffers records).
    unflushed: bool,
}

impl Outbox {
    fn push(&mut self, bytes: Vec<u8>) {
        if !bytes.is_empty() {
            self.chunks.push_back(bytes);
        }
    }

    fn unwritten(&self) -> u64 {
        let total: usize = self.chunks.iter().map(Vec::len).sum();
        (total - self.written) as u64
    }

    /// Whether [`Outbox::write_some`] has something to do.
    fn has_work(&self) -> bool {
        !self.chunks.is_empty() || self.unflushed
    }

    /// Writes some of the front chunk, or flushes once everything is written; returns the
    /// bytes written (0 for a flush).
    async fn write_some<W: AsyncWrite + Unpin>(&self, writer: &mut W) -> std::io::Result<usize> {
        match self.chunks.front() {
            Some(chunk) => match writer.write(&chunk[self.written..]).await? {
                0 => Err(std::io::ErrorKind::WriteZero.into()),
                written => Ok(written),
            },
            None => writer.flush().await.map(|()| 0),
        }
    }

    /// Records what [`Outbox::write_some`] did.
    fn advance(&mut self, written: usize) {
        let Some(front) = self.chunks.front() else {
            self.unflushed = false;
            return;
        };
        self.unflushed = true;
        self.written += written;
        if self.written == front.len() {
            self.chunks.pop_front();
            self.written = 0;
        }
    }

    async fn write_all<W: AsyncWrite + Unpin>(&mut self, writer: &mut W) -> std::io::Result<()> {
        while self.has_work() {
            let written = self.write_some(writer).await?;
            self.advance(written);
        }
        Ok(())
    }
}

/// Accepts on `listener`, if there is one (otherwise never returns).
async fn accept(listener: Option<&TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The node as a connection sees it: the driver's latest status (read only when a command
/// asks for it) and the server settings.
struct NodeHost<'a> {
    served: &'a Served,
}

impl Host for NodeHost<'_> {
    fn info(&self) -> String {
        info(
            &self.served.driver.latest_status(),
            self.served.stats.connected_clients(),
            &self.served.config,
            &self.served.stats,
        )
    }

    fn leader(&self) -> Option<(u64, Option<String>)> {
        let status = self.served.driver.latest_status();
        status
            .leader
            .map(|leader| (leader.0, status.leader_client_addr.clone()))
    }

    fn role(&self) -> &'static str {
        role_name(&self.served.driver.latest_status())
    }

    fn hand_over(&self, to: Option<u64>) -> Result<(), String> {
        self.served
            .driver
            .request_hand_over(to.map(verity_core::NodeId))
    }

    fn settings(&self) -> Vec<(&'static str, String)> {
        let config = &self.served.config;
        vec![
            ("appendonly", "yes".to_string()),
            ("appendfsync", config.fsync.appendfsync().to_string()),
            ("save", String::new()),
            ("databases", "1".to_string()),
            ("maxclients", config.max_clients.to_string()),
            (
                "protected-mode",
                if config.connection.users.denies_remote() {
                    "yes"
                } else {
                    "no"
                }
                .to_string(),
            ),
            ("client-output-buffer-limit", {
                let limit = config.connection.output_limit;
                format!(
                    "normal {} {} {}",
                    limit.hard_bytes,
                    limit.soft_bytes,
                    limit.soft_ms / 1000
                )
            }),
            (
                "proto-max-bulk-len",
                config.connection.limits.max_arg_bytes.to_string(),
            ),
            (
                "consistency",
                config.connection.consistency.name().to_string(),
            ),
        ]
    }
}

/// The most a closing connection reads and discards, and for how long (see [`linger`]).
const LINGER_BYTES: usize = 8 << 20;
const LINGER: Duration = Duration::from_millis(500);

/// Closes a connection whose last replies are written: shuts the write side, then reads and
/// discards what the client still sends (bounded by [`LINGER_BYTES`] and [`LINGER`]) until it
/// closes too. Dropping a socket with unread input resets it, and a reset can destroy the
/// final reply (a protocol error, `QUIT`'s `+OK`) before the client reads it.
async fn linger<S: AsyncRead + AsyncWrite>(
    mut reader: ReadHalf<S>,
    mut writer: WriteHalf<S>,
) -> std::io::Result<()> {
    writer.shutdown().await?;
    let drain = async {
        let mut discarded = 0;
        let mut scratch = vec![0; 64 * 1024];
        while discarded < LINGER_BYTES {
            match reader.read(&mut scratch).await {
                Ok(0) | Err(_) => break,
                Ok(read) => discarded += read,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
    Ok(())
}

fn role_name(status: &NodeStatus) -> &'static str {
    crate::metrics::role_name(status.role)
}

/// `INFO` in Redis's layout: `# Section` headers and `field:value` lines.
fn info(
    status: &NodeStatus,
    connected_clients: u64,
    config: &ServerConfig,
    stats: &ServerStats,
) -> String {
    let mut text = String::new();
    let crate::storage::WalFigures {
        records,
        bytes,
        syncs,
        sync_micros,
        ..
    } = status.wal;
    let _ = write!(
        text,
        "# Server\r\nverity_version:{}\r\nnode_id:{}\r\nprocess_id:{}\r\n\r\n",
        env!("CARGO_PKG_VERSION"),
        status.id.0,
        std::process::id()
    );
    let _ = write!(
        text,
        "# Clients\r\nconnected_clients:{connected_clients}\r\nmaxclients:{}\r\nwaiting_requests:{}\r\nsessions:{}\r\nreply_cache_bytes:{}\r\n\r\n",
        config.max_clients, status.waiting, status.sessions, status.reply_cache_bytes
    );
    let _ = write!(
        text,
        "# Stats\r\nclient_output_buffer_limit_disconnections:{}\r\n\r\n",
        stats.output_limit_disconnections.load(Ordering::Relaxed)
    );
    let _ = write!(
        text,
        "# Raft\r\nrole:{}\r\nterm:{}\r\nleader_id:{}\r\nleader_client_addr:{}\r\ncommit_index:{}\r\napplied_index:{}\r\nlast_log_index:{}\r\nsnapshot_index:{}\r\nsnapshots_installed:{}\r\nconsistency:{}\r\n",
        role_name(status),
        status.term.0,
        status.leader.map_or(String::new(), |l| l.0.to_string()),
        status.leader_client_addr.clone().unwrap_or_default(),
        status.commit.0,
        status.applied.0,
        status.last_index.0,
        status.snapshot_index.0,
        status.snapshots_installed,
        config.connection.consistency.name(),
    );
    let _ = write!(text, "peers:{}\r\n", status.peers.len());
    for (peer, (state, matched)) in &status.peers {
        let _ = write!(
            text,
            "peer_{}:state={},client_addr={},match_index={},sent_frames={},dropped_frames={}\r\n",
            peer.0,
            if state.connected {
                "connected"
            } else {
                "disconnected"
            },
            state.client_addr.clone().unwrap_or_default(),
            matched.map_or(String::new(), |m| m.0.to_string()),
            state.sent_frames,
            state.dropped_frames,
        );
    }
    let _ = write!(
        text,
        "\r\n# Persistence\r\nappendfsync:{}\r\nwal_records:{records}\r\nwal_bytes:{bytes}\r\nwal_syncs:{syncs}\r\nwal_sync_avg_us:{}\r\nwal_records_per_sync:{:.2}\r\n",
        config.fsync.appendfsync(),
        sync_micros.checked_div(syncs).unwrap_or(0),
        if syncs == 0 {
            0.0
        } else {
            records as f64 / syncs as f64
        },
    );
    text
}
