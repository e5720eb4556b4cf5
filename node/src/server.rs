//! The Redis-protocol client server.
//!
//! One task accepts connections (at most `max_clients`; the next one is told
//! `-ERR max number of clients reached` and closed). Each connection task reads commands,
//! runs up to `pipeline_depth` of them concurrently and writes the replies **in order**; when
//! that many are in flight it stops reading, so a client that pipelines without reading
//! replies is throttled by TCP rather than by this node's memory. A request larger than the
//! limits allow is answered with a protocol error and the connection closed.
//!
//! # Sessions and retries
//!
//! Each connection is an exactly-once session of the store: at its first data command it
//! opens one (a log entry; the id is that entry's index) and numbers its commands. A command
//! that gets no answer (leader change, timeout, overload) is retried under the same number
//! until `request_timeout_ms`, so it takes effect at most once. `SESSION` shows the
//! connection's session id and next sequence number; `SESSION id seq` resumes a session on a
//! new connection, so a client that lost its connection mid-write can retry that write and
//! learn its original outcome instead of executing it twice.
//!
//! Pipelined commands are concurrent operations: each is linearizable and answers arrive in
//! order, but a command retried after a leader change may take effect after a later command
//! of the same pipeline. A client that needs one write ordered before another waits for the
//! first reply.
//!
//! `INCR`, `APPEND` and `SET … XX` are read-compare-and-swap loops over the store's versioned
//! compare-and-swap (each attempt linearizable; the swap only succeeds on the version read).

use crate::command::{ClientCommand, SetCondition};
use crate::driver::{DriverHandle, NodeStatus, SubmitError};
use crate::resp::{self, Limits, Value};
use crate::storage::FsyncPolicy;
use bytes::{Buf, BytesMut};
use futures::FutureExt;
use futures::stream::{FuturesOrdered, StreamExt};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use verity_core::raft::Outcome;
use verity_core::{
    ClientId, ClientOp, ClientRequest, Command, Expect, Reply, Sequence, SessionError, Versioned,
};

/// Settings of the client server.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Most connections at once.
    pub max_clients: usize,
    /// Argument count and size limits.
    pub limits: Limits,
    /// Commands in flight per connection.
    pub pipeline_depth: usize,
    /// How long one command may keep retrying.
    pub request_timeout: Duration,
    /// The WAL's sync policy, reported by `CONFIG GET appendfsync` and `INFO`.
    pub fsync: FsyncPolicy,
}

/// Most compare-and-swap attempts of one `INCR`/`APPEND`/`SET XX` before it gives up.
const MAX_SWAP_ATTEMPTS: usize = 64;

/// Serves clients on `listener` until `shutdown` becomes true.
pub async fn serve(
    listener: TcpListener,
    driver: DriverHandle,
    config: ServerConfig,
    mut shutdown: watch::Receiver<bool>,
) {
    let config = Arc::new(config);
    let slots = Arc::new(Semaphore::new(config.max_clients));
    let mut next_id = 0u64;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
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
        next_id += 1;
        let context = Context {
            driver: driver.clone(),
            config: Arc::clone(&config),
            connection_id: next_id,
            slots: Arc::clone(&slots),
            session: SessionState::default(),
            name: Mutex::new(None),
        };
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(error) = context.serve_connection(socket, shutdown).await {
                tracing::debug!(%remote, %error, "[CLIENT] connection ended");
            }
        });
    }
}

/// The connection's exactly-once session.
#[derive(Default)]
struct SessionState {
    /// The session id, once opened.
    id: Mutex<Option<ClientId>>,
    /// The next sequence number to use.
    next_sequence: AtomicU64,
    /// Held while a session is being opened, so concurrent commands open only one.
    opening: tokio::sync::Mutex<()>,
}

impl SessionState {
    /// The session id, if one is open.
    fn id(&self) -> Option<ClientId> {
        *self.id.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes `id` this connection's session, continuing at sequence `next` (at least 1).
    fn attach(&self, id: ClientId, next: u64) {
        *self.id.lock().unwrap_or_else(PoisonError::into_inner) = Some(id);
        self.next_sequence.store(next.max(1), Ordering::SeqCst);
    }

    /// Takes the next sequence number.
    fn take_sequence(&self) -> Sequence {
        Sequence(self.next_sequence.fetch_add(1, Ordering::SeqCst))
    }
}

/// Everything a connection's commands share.
struct Context {
    driver: DriverHandle,
    config: Arc<ServerConfig>,
    connection_id: u64,
    /// The connection limit's permits; each open connection holds one.
    slots: Arc<Semaphore>,
    session: SessionState,
    name: Mutex<Option<Vec<u8>>>,
}

/// Why a command got no result: the text of its error reply.
type Failure = Value;

impl Context {
    async fn serve_connection(
        &self,
        socket: TcpStream,
        mut shutdown: watch::Receiver<bool>,
    ) -> std::io::Result<()> {
        socket.set_nodelay(true)?;
        let (mut reader, mut writer) = socket.into_split();
        let limits = self.config.limits;
        let max_request_bytes = limits.max_arg_bytes.saturating_mul(2) + resp::MAX_INLINE_BYTES;
        let mut input = BytesMut::with_capacity(16 * 1024);
        let mut output = Vec::new();
        let mut inflight = FuturesOrdered::new();
        let mut closing = false;
        loop {
            while !closing && inflight.len() < self.config.pipeline_depth {
                match resp::parse_command(&input, limits) {
                    Ok(Some(parsed)) => {
                        input.advance(parsed.consumed);
                        if parsed.args.is_empty() {
                            continue;
                        }
                        match ClientCommand::parse(parsed.args) {
                            Ok(command) => {
                                closing = command == ClientCommand::Quit;
                                inflight.push_back(self.execute(command).boxed());
                            }
                            Err(error) => {
                                inflight.push_back(async { Value::Error(error) }.boxed());
                            }
                        }
                    }
                    Ok(None) if input.len() > max_request_bytes => {
                        let error = Value::err(format!(
                            "Protocol error: request larger than {max_request_bytes} bytes"
                        ));
                        inflight.push_back(async { error }.boxed());
                        closing = true;
                    }
                    Ok(None) => break,
                    Err(error) => {
                        let error = Value::err(error);
                        inflight.push_back(async { error }.boxed());
                        closing = true;
                    }
                }
            }
            if closing && inflight.is_empty() {
                return linger(reader, writer).await;
            }
            let can_read = !closing && inflight.len() < self.config.pipeline_depth;
            tokio::select! {
                Some(reply) = inflight.next(), if !inflight.is_empty() => {
                    reply.encode(&mut output);
                    while let Some(Some(reply)) = inflight.next().now_or_never() {
                        reply.encode(&mut output);
                    }
                    writer.write_all(&output).await?;
                    output.clear();
                }
                read = reader.read_buf(&mut input), if can_read => {
                    if read? == 0 {
                        closing = true;
                    }
                }
                _ = shutdown.changed(), if !closing => {
                    closing = true;
                }
            }
        }
    }

    async fn execute(&self, command: ClientCommand) -> Value {
        self.run(command).await.unwrap_or_else(|failure| failure)
    }

    async fn run(&self, command: ClientCommand) -> Result<Value, Failure> {
        Ok(match command {
            ClientCommand::Ping(None) => Value::Simple("PONG".into()),
            ClientCommand::Ping(Some(message)) | ClientCommand::Echo(message) => {
                Value::Bulk(message)
            }
            ClientCommand::Get(key) => match self.get(key).await? {
                Some(versioned) => Value::Bulk(versioned.value),
                None => Value::Null,
            },
            ClientCommand::GetVer(key) => match self.get(key).await? {
                Some(versioned) => Value::Array(vec![
                    Value::Bulk(versioned.value),
                    Value::unsigned(versioned.version.0),
                ]),
                None => Value::Null,
            },
            ClientCommand::MGet(keys) => {
                let mut values = Vec::with_capacity(keys.len());
                for key in keys {
                    values.push(match self.get(key).await? {
                        Some(versioned) => Value::Bulk(versioned.value),
                        None => Value::Null,
                    });
                }
                Value::Array(values)
            }
            ClientCommand::Exists(keys) => {
                let mut count = 0;
                for key in keys {
                    count += i64::from(self.get(key).await?.is_some());
                }
                Value::Integer(count)
            }
            ClientCommand::Set {
                key,
                value,
                condition,
            } => self.set(key, value, condition).await?,
            ClientCommand::Del(keys) => {
                let mut count = 0;
                for key in keys {
                    match self.request(Command::Delete { key }).await? {
                        Reply::Deleted { existed } => count += i64::from(existed),
                        other => return Err(unexpected(&other)),
                    }
                }
                Value::Integer(count)
            }
            ClientCommand::IncrBy { key, delta } => {
                let sum = self
                    .swap(key, |current| {
                        let number = match current {
                            None => 0,
                            Some(bytes) => std::str::from_utf8(bytes)
                                .ok()
                                .and_then(|text| text.parse::<i64>().ok())
                                .ok_or_else(|| {
                                    Value::err("value is not an integer or out of range")
                                })?,
                        };
                        let sum = number
                            .checked_add(delta)
                            .ok_or_else(|| Value::err("increment or decrement would overflow"))?;
                        Ok((sum.to_string().into_bytes(), sum))
                    })
                    .await?;
                Value::Integer(sum)
            }
            ClientCommand::Append { key, value } => {
                let limit = self.config.limits.max_arg_bytes;
                let length = self
                    .swap(key, |current| {
                        let mut new = current.unwrap_or_default().to_vec();
                        new.extend_from_slice(&value);
                        if new.len() > limit {
                            return Err(Value::err(format!(
                                "string would exceed the value limit of {limit} bytes"
                            )));
                        }
                        let length = new.len() as u64;
                        Ok((new, length))
                    })
                    .await?;
                Value::unsigned(length)
            }
            ClientCommand::Cas { key, expected, new } => {
                let command = Command::Cas {
                    key,
                    expect: Expect::Value(expected),
                    new: Some(new),
                };
                match self.request(command).await? {
                    Reply::Cas { swapped, .. } => Value::Integer(i64::from(swapped)),
                    other => return Err(unexpected(&other)),
                }
            }
            ClientCommand::Info => {
                let connected = self.config.max_clients - self.slots.available_permits();
                info(&self.status().await?, connected, &self.config)
            }
            ClientCommand::Leader => {
                let status = self.status().await?;
                match status.leader {
                    Some(leader) => Value::Array(vec![
                        Value::unsigned(leader.0),
                        match status.leader_client_addr {
                            Some(addr) => Value::text(addr),
                            None => Value::Null,
                        },
                    ]),
                    None => Value::Error("CLUSTERDOWN no leader is known right now".into()),
                }
            }
            ClientCommand::Consistency => Value::Simple("linearizable".into()),
            ClientCommand::Quit => Value::ok(),
            ClientCommand::Hello(version) => match version.as_deref() {
                None | Some(b"2") => hello(&self.status().await?, self.connection_id),
                Some(_) => Value::Error("NOPROTO this server speaks RESP2 only".into()),
            },
            ClientCommand::ConfigGet(parameters) => self.config_get(&parameters),
            ClientCommand::Command(sub) => match sub.as_deref() {
                Some("count") => Value::Integer(0),
                _ => Value::Array(Vec::new()),
            },
            ClientCommand::ClientSetName(name) => {
                *self.name.lock().unwrap_or_else(PoisonError::into_inner) = Some(name);
                Value::ok()
            }
            ClientCommand::ClientGetName => {
                match self
                    .name
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone()
                {
                    Some(name) => Value::Bulk(name),
                    None => Value::Null,
                }
            }
            ClientCommand::ClientId => Value::unsigned(self.connection_id),
            ClientCommand::ClientSetInfo => Value::ok(),
            ClientCommand::Select(0) => Value::ok(),
            ClientCommand::Select(_) => {
                Value::err("DB index is out of range (Verity has only database 0)")
            }
            ClientCommand::Session(None) => Value::Array(vec![
                self.session
                    .id()
                    .map_or(Value::Null, |id| Value::unsigned(id.0)),
                Value::unsigned(self.session.next_sequence.load(Ordering::SeqCst).max(1)),
            ]),
            ClientCommand::Session(Some((id, sequence))) => {
                self.session.attach(ClientId(id), sequence);
                Value::ok()
            }
        })
    }

    async fn status(&self) -> Result<NodeStatus, Failure> {
        self.driver
            .status()
            .await
            .ok_or_else(|| Value::err("the node is shutting down"))
    }

    async fn get(&self, key: Vec<u8>) -> Result<Option<Versioned>, Failure> {
        match self.request(Command::Get { key }).await? {
            Reply::Value(value) => Ok(value),
            other => Err(unexpected(&other)),
        }
    }

    async fn set(
        &self,
        key: Vec<u8>,
        value: Vec<u8>,
        condition: SetCondition,
    ) -> Result<Value, Failure> {
        let expect = match condition {
            SetCondition::Always => {
                return match self.request(Command::Put { key, value }).await? {
                    Reply::Written { .. } => Ok(Value::ok()),
                    other => Err(unexpected(&other)),
                };
            }
            SetCondition::IfAbsent => Expect::Absent,
            SetCondition::IfPresent => {
                let result = self
                    .swap(key, |current| match current {
                        Some(_) => Ok((value.clone(), ())),
                        None => Err(Value::Null),
                    })
                    .await;
                return match result {
                    Ok(_) => Ok(Value::ok()),
                    Err(Value::Null) => Ok(Value::Null),
                    Err(failure) => Err(failure),
                };
            }
        };
        let command = Command::Cas {
            key,
            expect,
            new: Some(value),
        };
        match self.request(command).await? {
            Reply::Cas { swapped: true, .. } => Ok(Value::ok()),
            Reply::Cas { swapped: false, .. } => Ok(Value::Null),
            other => Err(unexpected(&other)),
        }
    }

    /// Read-modify-write of one key: reads it, computes the new value and the command's
    /// result with `update` (which may answer early with an `Err` reply), and writes the value
    /// with a compare-and-swap on the version read; repeats if another write got in between.
    /// Returns the result of the attempt whose write took effect.
    async fn swap<T>(
        &self,
        key: Vec<u8>,
        update: impl Fn(Option<&[u8]>) -> Result<(Vec<u8>, T), Value>,
    ) -> Result<T, Failure> {
        for _ in 0..MAX_SWAP_ATTEMPTS {
            let current = self.get(key.clone()).await?;
            let (new, result) = update(current.as_ref().map(|v| v.value.as_slice()))?;
            let expect = match &current {
                Some(versioned) => Expect::Version(versioned.version),
                None => Expect::Absent,
            };
            let command = Command::Cas {
                key: key.clone(),
                expect,
                new: Some(new),
            };
            match self.request(command).await? {
                Reply::Cas { swapped: true, .. } => return Ok(result),
                Reply::Cas { swapped: false, .. } => continue,
                other => return Err(unexpected(&other)),
            }
        }
        Err(Value::err(format!(
            "key changed under {MAX_SWAP_ATTEMPTS} attempts of this command: too much contention; retry"
        )))
    }

    /// Runs one command in this connection's session, retrying under the same sequence
    /// number until it has an outcome or `request_timeout` passes (see the module docs).
    async fn request(&self, command: Command) -> Result<Reply, Failure> {
        let deadline = Instant::now() + self.config.request_timeout;
        let mut client = self.session(None, deadline).await?;
        loop {
            let sequence = self.session.take_sequence();
            let op = || {
                ClientOp::Request(ClientRequest {
                    client,
                    sequence,
                    command: command.clone(),
                })
            };
            match self.submit_until(op, deadline).await? {
                Reply::Rejected(SessionError::UnknownSession) => {
                    // Nothing was executed: open a fresh session and go again.
                    client = self.session(Some(client), deadline).await?;
                }
                Reply::Rejected(SessionError::SequenceTooOld) => {
                    return Err(Value::err(
                        "sequence number too old for this session: its outcome is no longer known",
                    ));
                }
                reply => return Ok(reply),
            }
        }
    }

    /// Submits `op()` until it is applied or `deadline` passes, backing off between attempts
    /// (each attempt is the same operation, so retrying is safe).
    async fn submit_until(
        &self,
        op: impl Fn() -> ClientOp,
        deadline: Instant,
    ) -> Result<Reply, Failure> {
        let mut backoff = Duration::from_millis(2);
        loop {
            let last = match self.driver.submit(op()).await {
                Ok(Outcome::Applied(reply)) => return Ok(reply),
                Ok(Outcome::Superseded) => SubmitError::NoLeader,
                Err(SubmitError::Stopped) => return Err(Value::err("the node is shutting down")),
                Err(error) => error,
            };
            if Instant::now() + backoff >= deadline {
                return Err(self.gave_up(last));
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(100));
        }
    }

    fn gave_up(&self, last: SubmitError) -> Failure {
        let waited_ms = self.config.request_timeout.as_millis();
        let unknown = "if it was a write, it may or may not have taken effect; retrying it in the same SESSION is safe";
        match last {
            SubmitError::NoLeader => Value::Error(format!(
                "CLUSTERDOWN no leader within {waited_ms} ms; {unknown}"
            )),
            SubmitError::Overloaded => Value::Error(format!(
                "TRYAGAIN the leader stayed overloaded for {waited_ms} ms; {unknown}"
            )),
            SubmitError::Timeout | SubmitError::Stopped => Value::Error(format!(
                "TIMEOUT no answer within {waited_ms} ms; {unknown}"
            )),
        }
    }

    /// The connection's session id, opening one if there is none or if `stale` is the
    /// current one (it was found unknown).
    async fn session(
        &self,
        stale: Option<ClientId>,
        deadline: Instant,
    ) -> Result<ClientId, Failure> {
        let current = || self.session.id();
        if let Some(id) = current()
            && Some(id) != stale
        {
            return Ok(id);
        }
        let _opening = self.session.opening.lock().await;
        if let Some(id) = current()
            && Some(id) != stale
        {
            return Ok(id);
        }
        match self
            .submit_until(|| ClientOp::OpenSession, deadline)
            .await?
        {
            Reply::SessionOpened { client } => {
                self.session.attach(client, 1);
                tracing::debug!(
                    connection = self.connection_id,
                    session = client.0,
                    "[CLIENT] session opened"
                );
                Ok(client)
            }
            other => Err(unexpected(&other)),
        }
    }

    fn config_get(&self, patterns: &[String]) -> Value {
        let settings = [
            ("appendonly", "yes".to_string()),
            ("appendfsync", self.config.fsync.appendfsync().to_string()),
            ("save", String::new()),
            ("databases", "1".to_string()),
            ("maxclients", self.config.max_clients.to_string()),
            (
                "proto-max-bulk-len",
                self.config.limits.max_arg_bytes.to_string(),
            ),
        ];
        let mut pairs = Vec::new();
        for (name, value) in settings {
            if patterns
                .iter()
                .any(|pattern| pattern == "*" || pattern == name)
            {
                pairs.push(Value::text(name));
                pairs.push(Value::text(value));
            }
        }
        Value::Array(pairs)
    }
}

/// The most a closing connection reads and discards, and for how long (see [`linger`]).
const LINGER_BYTES: usize = 8 << 20;
const LINGER: Duration = Duration::from_millis(500);

/// Closes a connection whose last replies are written: shuts the write side, then reads and
/// discards what the client still sends (bounded by [`LINGER_BYTES`] and [`LINGER`]) until it
/// closes too. Dropping a socket with unread input resets it, and a reset can destroy the
/// final reply (a protocol error, `QUIT`'s `+OK`) before the client reads it.
async fn linger(
    mut reader: tokio::net::tcp::OwnedReadHalf,
    mut writer: tokio::net::tcp::OwnedWriteHalf,
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

fn unexpected(reply: &Reply) -> Failure {
    debug_assert!(false, "the store answered a command with {reply:?}");
    Value::err(format!("internal error: unexpected reply {reply:?}"))
}

fn hello(status: &NodeStatus, connection_id: u64) -> Value {
    let pairs = [
        ("server", Value::text("verity")),
        ("version", Value::text(env!("CARGO_PKG_VERSION"))),
        ("proto", Value::Integer(2)),
        ("id", Value::unsigned(connection_id)),
        ("mode", Value::text("cluster")),
        ("role", Value::text(role_name(status))),
        ("modules", Value::Array(Vec::new())),
    ];
    Value::Array(
        pairs
            .into_iter()
            .flat_map(|(name, value)| [Value::text(name), value])
            .collect(),
    )
}

fn role_name(status: &NodeStatus) -> &'static str {
    match status.role {
        verity_core::Role::Leader => "leader",
        verity_core::Role::Follower => "follower",
        verity_core::Role::Candidate => "candidate",
    }
}

/// `INFO` in Redis's layout: `# Section` headers and `field:value` lines.
fn info(status: &NodeStatus, connected_clients: usize, config: &ServerConfig) -> Value {
    let mut text = String::new();
    let crate::storage::WalFigures {
        records,
        bytes,
        syncs,
        sync_micros,
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
        "# Clients\r\nconnected_clients:{connected_clients}\r\nmaxclients:{}\r\nwaiting_requests:{}\r\n\r\n",
        config.max_clients, status.waiting
    );
    let _ = write!(
        text,
        "# Raft\r\nrole:{}\r\nterm:{}\r\nleader_id:{}\r\nleader_client_addr:{}\r\ncommit_index:{}\r\napplied_index:{}\r\nlast_log_index:{}\r\nconsistency:linearizable\r\n",
        role_name(status),
        status.term.0,
        status.leader.map_or(String::new(), |l| l.0.to_string()),
        status.leader_client_addr.clone().unwrap_or_default(),
        status.commit.0,
        status.applied.0,
        status.last_index.0,
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
    Value::Bulk(text.into_bytes())
}
