//! Starting a node from its settings, and stopping it on a signal.
//!
//! Start: lock and check the data directory, recover the WAL (truncating only a torn tail),
//! restore the core, bind both listeners, then start the transport, the WAL writer, the
//! driver and the client server. Stop (SIGTERM or SIGINT): stop accepting clients, let the
//! driver finish, wait for in-flight WAL syncs, exit 0. A second signal exits at once.
//!
//! # Threads
//!
//! The consensus side (the driver and the peer transport) runs on a runtime of its own, on
//! its own threads; the client server runs on the main multi-threaded runtime; the WAL writer
//! has its own thread. However hard clients push (a burst of 1 MiB reads is hundreds of MiB
//! of copying), the OS schedules the consensus threads fairly, so heartbeats and votes are not
//! starved behind client work and followers do not depose a healthy leader.

use crate::driver::{Driver, DriverHandle, DriverInputs};
use crate::server::{self, ServerConfig};
use crate::settings::NodeSettings;
use crate::storage::{DataDir, FsyncPolicy, SegmentedWal, WalWriter, snapshot_file};
use anyhow::Context;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, oneshot, watch};
use verity_core::Node;
use verity_engine::PersistQueue;
use verity_net::{HandshakeConfig, Transport, TransportConfig};

/// Peer frames waiting for the driver before the transport stops reading.
const INBOUND_QUEUE_FRAMES: usize = 4096;
/// Frames queued per peer before new ones are dropped.
const PEER_QUEUE_FRAMES: usize = 4096;
/// Encoded bytes queued per peer before new frames are dropped: four of the largest frames.
/// Forwarded replies travel on these queues and are not sent again when dropped (the client
/// waits out its forward timeout), so the bound must hold a burst of large replies.
const PEER_QUEUE_BYTES: u64 = 4 * verity_core::codec::MAX_FRAME_BYTES as u64;
/// WAL jobs queued before the driver waits for the disk.
const WAL_QUEUE_JOBS: usize = 4096;
/// Worker threads of the consensus runtime (the driver and the peer connections' tasks).
const CONSENSUS_THREADS: usize = 2;
/// Client submissions waiting to enter the driver.
const SUBMIT_QUEUE: usize = 8192;

/// A stopping leader hands its leadership to its most up-to-date live peer and waits (at
/// most the core's transfer deadline, one election timeout) until it no longer leads, so the
/// cluster need not wait out an election timeout without a leader.
async fn hand_over_leadership(handle: &DriverHandle, settings: &NodeSettings) {
    let Some(to) = handle.hand_over().await else {
        return;
    };
    let within = Duration::from_millis(settings.tick_ms * settings.election_timeout_ticks);
    let started = std::time::Instant::now();
    tracing::info!(to = to.0, "[SHUTDOWN] handing leadership to node {}", to.0);
    if handle.wait_until_not_leader(within).await {
        tracing::info!(
            to = to.0,
            took_ms = started.elapsed().as_millis() as u64,
            "[SHUTDOWN] leadership handed over"
        );
    } else {
        tracing::warn!(
            to = to.0,
            "[SHUTDOWN] node {} did not take over within an election timeout; stopping anyway",
            to.0
        );
    }
}

/// Runs a node until a signal stops it (`Ok`) or it fails (a disk error, a port in use, a
/// damaged WAL: the error says which and what to do).
pub async fn run_node(settings: NodeSettings) -> anyhow::Result<()> {
    let data_dir = DataDir::open(
        &settings.data_dir,
        &settings.cluster_id,
        settings.id,
        settings.initial_cluster_state,
    )?;
    let stored_snapshot =
        snapshot_file::read(data_dir.path()).context("cannot read the snapshot")?;
    let mut opened = SegmentedWal::open(
        &data_dir.wal_dir(),
        data_dir.is_fresh(),
        settings.segment_bytes,
        &stored_snapshot
            .as_ref()
            .map_or(Vec::new(), |s| vec![s.kept, s.own]),
    )
    .context("cannot recover the write-ahead log")?;
    opened.recovered.snapshot = stored_snapshot.map(|s| s.snapshot);
    anyhow::ensure!(
        !data_dir.is_fresh() || opened.records == 0,
        "{} holds WAL records but no metadata file: it is not a directory this node created; \
         restore its verity.toml or point --data-dir at this node's own directory",
        data_dir.path().display()
    );
    data_dir.commit()?;
    if let Some(torn) = &opened.truncated {
        tracing::warn!(
            file = %torn.path.display(),
            offset = torn.offset,
            discarded_bytes = torn.discarded_bytes,
            damage = %torn.damage,
            "[DISK] truncated a WAL tail no record proves synced (left by a crash)"
        );
    }
    tracing::info!(
        dir = %data_dir.path().display(),
        segments = opened.segments,
        records = opened.records,
        snapshot = opened.recovered.snapshot.as_ref().map_or(0, |s| s.meta.index.0),
        entries = opened.recovered.entries.len(),
        term = opened.recovered.hard_state.term.0,
        commit = opened.recovered.hard_state.commit.0,
        "[START] recovered the write-ahead log"
    );
    if settings.fsync == FsyncPolicy::Never {
        tracing::warn!("[DISK] --fsync never: a power loss can lose acknowledged writes and votes");
    }
    let mut seed = [0u8; 8];
    getrandom::fill(&mut seed)
        .map_err(|error| anyhow::anyhow!("no OS randomness for the election jitter: {error}"))?;
    let node = Node::restore(
        settings.core_config(u64::from_le_bytes(seed)),
        opened.recovered,
    )
    .context("the recovered WAL does not form a valid Raft state")?;

    let client_listener = match settings.client_addr {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen for clients on {addr}"))?,
        ),
        None => None,
    };
    let tls_listener = match &settings.tls_clients {
        Some(tls) => {
            let acceptor = crate::tls::acceptor(tls)?;
            let listener = TcpListener::bind(tls.addr)
                .await
                .with_context(|| format!("cannot listen for TLS clients on {}", tls.addr))?;
            Some((listener, acceptor))
        }
        None => None,
    };
    let metrics_listener = match settings.metrics_addr {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen for metrics on {addr}"))?,
        ),
        None => None,
    };
    let started_at = std::time::Instant::now();
    let (stop, stopping) = watch::channel(false);
    let persist = PersistQueue::new(0, opened.next_sequence);
    let (started, mut consensus) =
        start_consensus(&settings, node, (opened.wal, persist), stopping.clone())?;
    let handle = started
        .await
        .context("the consensus thread stopped while starting")??;
    let server_config = ServerConfig {
        max_clients: settings.max_clients,
        connection: verity_engine::ConnectionConfig {
            limits: verity_engine::resp::Limits {
                max_args: settings.max_args,
                max_arg_bytes: settings.max_value_bytes,
            },
            pipeline_depth: settings.pipeline_depth,
            request_timeout_ms: settings.request_timeout_ms,
            max_transaction_bytes: settings.max_entry_bytes(),
            users: Arc::clone(&settings.users),
            output_limit: settings.output_limit,
            consistency: settings.consistency,
        },
        fsync: settings.fsync,
    };
    let stats = Arc::new(server::ServerStats::default());
    if let Some(listener) = metrics_listener {
        let sources = crate::http::Sources {
            driver: handle.clone(),
            stats: Arc::clone(&stats),
            cluster: settings
                .cluster_metrics_addrs
                .iter()
                .filter(|(id, _)| **id != settings.id)
                .map(|(id, addr)| (id.0, addr.to_string()))
                .collect(),
            started: started_at,
        };
        let addr = listener
            .local_addr()
            .context("the metrics listener's address")?;
        tracing::info!(
            metrics = %addr,
            "[START] metrics at http://{addr}/metrics, status page at http://{addr}/"
        );
        tokio::spawn(crate::http::serve(listener, sources, stopping.clone()));
    }
    let server = tokio::spawn(server::serve(
        client_listener,
        tls_listener,
        handle.clone(),
        server_config,
        stats,
        stopping,
    ));
    if let Some(addr) = settings.client_addr {
        tracing::info!(
            clients = %addr,
            peers = %settings.peer_addr,
            voters = settings.peers.len(),
            "[START] node {} of cluster {:?} is up: redis-cli -h {} -p {}",
            settings.id.0,
            settings.cluster_id,
            addr.ip(),
            addr.port()
        );
    }
    if let Some(tls) = &settings.tls_clients {
        let client_certificate = if tls.ca_file.is_some() {
            " --cert CLIENT.pem --key CLIENT.key"
        } else {
            ""
        };
        tracing::info!(
            peers = %settings.peer_addr,
            voters = settings.peers.len(),
            "[START] node {} of cluster {:?} serves TLS clients on {}: redis-cli --tls --cacert CA.pem{client_certificate} -h {} -p {}",
            settings.id.0,
            settings.cluster_id,
            tls.addr,
            tls.addr.ip(),
            tls.addr.port()
        );
    }
    let mut terminate = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
        finished = &mut consensus => {
            return finished.context("the consensus thread failed")?.context("the WAL writer failed; the node stopped to keep its promises");
        }
    }
    tracing::info!("[SHUTDOWN] signal received: closing (a second signal exits at once)");
    hand_over_leadership(&handle, &settings).await;
    let _ = stop.send(true);
    tokio::select! {
        finished = &mut consensus => finished.context("the consensus thread failed")??,
        _ = terminate.recv() => std::process::exit(130),
        _ = interrupt.recv() => std::process::exit(130),
    }
    let _ = server.await;
    tracing::info!("[SHUTDOWN] stopped cleanly");
    Ok(())
}

/// The driver's result when its thread ends.
type Finished = oneshot::Receiver<Result<(), std::io::Error>>;

/// Starts the consensus threads: their own runtime running the peer transport
/// and the driver (see "Threads" above). Returns a receiver for the client handle (or the
/// start-up error: the peer port in use, the WAL writer) and one for the driver's end.
fn start_consensus(
    settings: &NodeSettings,
    node: Node,
    (wal, persist): (SegmentedWal, PersistQueue),
    stopping: watch::Receiver<bool>,
) -> anyhow::Result<(oneshot::Receiver<anyhow::Result<DriverHandle>>, Finished)> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(CONSENSUS_THREADS)
        .thread_name("verity-consensus")
        .enable_all()
        .build()
        .context("cannot build the consensus runtime")?;
    let (started_sender, started) = oneshot::channel();
    let (finished_sender, finished) = oneshot::channel();
    let settings = settings.clone();
    std::thread::Builder::new()
        .name("verity-consensus".into())
        .spawn(move || {
            runtime.block_on(async move {
                let (driver, inputs, handle) =
                    match wire_consensus(&settings, node, (wal, persist), stopping).await {
                        Ok(wired) => wired,
                        Err(error) => {
                            let _ = started_sender.send(Err(error));
                            return;
                        }
                    };
                let _ = started_sender.send(Ok(handle));
                let _ = finished_sender.send(driver.run(inputs).await);
            });
        })
        .context("cannot start the consensus thread")?;
    Ok((started, finished))
}

/// Binds the peer port and starts the transport, the WAL writer and the driver, on the
/// consensus runtime.
async fn wire_consensus(
    settings: &NodeSettings,
    node: Node,
    (wal, persist): (SegmentedWal, PersistQueue),
    stopping: watch::Receiver<bool>,
) -> anyhow::Result<(Driver, DriverInputs, DriverHandle)> {
    let peer_listener = TcpListener::bind(settings.peer_addr)
        .await
        .with_context(|| format!("cannot listen for peers on {}", settings.peer_addr))?;
    let tls = match &settings.peer_tls {
        Some((cert, key, ca)) => Some(crate::tls::peer_tls(cert, key, ca)?),
        None => None,
    };
    let (inbound_sender, inbound) = mpsc::channel(INBOUND_QUEUE_FRAMES);
    let transport = Transport::start(
        TransportConfig {
            handshake: HandshakeConfig {
                cluster_id: settings.cluster_id.clone(),
                node: settings.id,
                peers: settings
                    .voters()
                    .into_iter()
                    .filter(|&peer| peer != settings.id)
                    .collect(),
                secret: settings.peer_secret.clone().map(Arc::new),
                client_addr: settings.advertised_client_addr().to_string(),
            },
            peer_addrs: settings
                .peers
                .iter()
                .filter(|&(&peer, _)| peer != settings.id)
                .map(|(&peer, &addr)| (peer, addr))
                .collect(),
            send_queue_frames: PEER_QUEUE_FRAMES,
            send_queue_bytes: PEER_QUEUE_BYTES,
            max_frame_bytes: verity_core::codec::MAX_FRAME_BYTES,
            max_inbound_connections: 64,
            max_handshaking: 64,
            max_handshaking_per_address: 8,
            tls,
            handshake_timeout_ms: 1_000,
            backoff_min_ms: 20,
            backoff_max_ms: 1_000,
        },
        peer_listener,
        inbound_sender,
    );
    let (persisted_sender, persisted) = mpsc::unbounded_channel();
    let writer = WalWriter::start(
        wal,
        settings.data_dir.clone(),
        settings.fsync,
        WAL_QUEUE_JOBS,
        persisted_sender,
    )
    .context("cannot start the WAL writer thread")?;
    let (driver, handle) = Driver::new(
        node,
        transport,
        writer,
        persist,
        Duration::from_millis(settings.tick_ms),
        SUBMIT_QUEUE,
    );
    let inputs = DriverInputs {
        inbound,
        persisted,
        shutdown: stopping,
    };
    Ok((driver, inputs, handle))
}
