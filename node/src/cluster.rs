//! `verity cluster`: a local cluster of real node processes, for trying Verity out.
//!
//! Node `i` (from 1) serves clients on `127.0.0.1:(client_port + i - 1)`, peers on
//! `127.0.0.1:(peer_port + i - 1)` and metrics and the status page on
//! `127.0.0.1:(metrics_port + i - 1)`, with its data in `DIR/node-i`. The nodes share the peer
//! secret in `DIR/peer-secret` (made on the first start: 32 random bytes, hex, readable by the
//! owner only), unless the node flags name one or say `--insecure-peers`. Every line a node logs is
//! echoed with its `[nI]` prefix. Ctrl-C (or SIGTERM) sends SIGTERM to every node and waits
//! for them to close; a second signal kills them.

use anyhow::Context;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::signal::unix::{SignalKind, signal};

/// Flags of `verity cluster`.
#[derive(Clone, Debug, clap::Args)]
pub struct ClusterArgs {
    /// Number of nodes (odd numbers tolerate the most failures per node).
    #[arg(long, default_value_t = 3)]
    pub nodes: u64,
    /// Directory holding each node's data directory.
    #[arg(long, default_value = "./verity-data")]
    pub dir: PathBuf,
    /// Client port of node 1; node i uses this plus i-1.
    #[arg(long, default_value_t = 6001)]
    pub client_port: u16,
    /// Peer port of node 1; node i uses this plus i-1.
    #[arg(long, default_value_t = 7001)]
    pub peer_port: u16,
    /// Metrics port of node 1 (Prometheus `/metrics`, the status page `/`); node i uses
    /// this plus i-1. 0 serves no metrics.
    #[arg(long, default_value_t = 9001)]
    pub metrics_port: u16,
    /// Extra flags passed to every `verity node` (e.g. `--fsync never`), after `--`.
    #[arg(last = true)]
    pub node_flags: Vec<String>,
}

/// Runs the cluster until a signal; returns an error if a node cannot be started.
pub async fn run_cluster(args: ClusterArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.nodes >= 1 && args.nodes <= 99,
        "--nodes must be between 1 and 99"
    );
    let exe = std::env::current_exe().context("cannot find the verity executable")?;
    let port = |base: u16, i: u64| -> anyhow::Result<u16> {
        u16::try_from(u64::from(base) + i - 1).context("port out of range")
    };
    let mut peers = Vec::new();
    for i in 1..=args.nodes {
        peers.push(format!("{i}=127.0.0.1:{}", port(args.peer_port, i)?));
    }
    let peers = peers.join(",");
    let mut metrics = Vec::new();
    if args.metrics_port != 0 {
        for i in 1..=args.nodes {
            metrics.push(format!("{i}=127.0.0.1:{}", port(args.metrics_port, i)?));
        }
    }
    let metrics = metrics.join(",");
    let mut secret_flags = Vec::new();
    if !args
        .node_flags
        .iter()
        .any(|flag| flag == "--peer-secret-file" || flag == "--insecure-peers")
    {
        let path = peer_secret(&args.dir)?;
        secret_flags = vec!["--peer-secret-file".into(), path.into_os_string()];
    }
    let mut children: Vec<Child> = Vec::new();
    let mut forwarders = Vec::new();
    for i in 1..=args.nodes {
        let data_dir = args.dir.join(format!("node-{i}"));
        // A node whose directory holds no data yet is new; one with data restarts on it.
        let initial = if crate::storage::holds_node_data(&data_dir) {
            "existing"
        } else {
            "new"
        };
        let mut child = Command::new(&exe)
            .arg("node")
            .args(["--id", &i.to_string()])
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--initial-cluster-state", initial])
            .args([
                "--peer-addr",
                &format!("127.0.0.1:{}", port(args.peer_port, i)?),
            ])
            .args([
                "--client-addr",
                &format!("127.0.0.1:{}", port(args.client_port, i)?),
            ])
            .args(["--peers", &peers])
            .args(if metrics.is_empty() {
                Vec::new()
            } else {
                vec![
                    "--metrics-addr".to_string(),
                    format!("127.0.0.1:{}", port(args.metrics_port, i)?),
                    "--cluster-metrics-addrs".to_string(),
                    metrics.clone(),
                ]
            })
            .args(&secret_flags)
            .args(&args.node_flags)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start node {i}"))?;
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
        ]
        .into_iter()
        .flatten()
        {
            forwarders.push(tokio::spawn(async move {
                let mut lines = BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    println!("[n{i}] {line}");
                }
            }));
        }
        children.push(child);
    }
    println!(
        "verity cluster: {} nodes, data in {}. Connect with: redis-cli -p {} (any node: {}..{}). Ctrl-C stops them all.",
        args.nodes,
        args.dir.display(),
        args.client_port,
        args.client_port,
        port(args.client_port, args.nodes)?
    );
    if args.metrics_port != 0 {
        println!(
            "verity cluster: status page http://127.0.0.1:{}/ (every node's role, term, lag and throughput, live); Prometheus metrics at http://127.0.0.1:{}/metrics ({}..{})",
            args.metrics_port,
            args.metrics_port,
            args.metrics_port,
            port(args.metrics_port, args.nodes)?
        );
    }
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let exited = async {
        for child in &mut children {
            let _ = child.wait().await;
        }
    };
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
        () = exited => {
            anyhow::bail!("every node exited on its own; see their logs above");
        }
    }
    println!("verity cluster: stopping every node (a second Ctrl-C kills them)");
    for child in &children {
        if let Some(pid) = child.id().and_then(|pid| i32::try_from(pid).ok()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
    }
    let all_stopped = async {
        for child in &mut children {
            let _ = child.wait().await;
        }
    };
    tokio::select! {
        () = all_stopped => {}
        _ = interrupt.recv() => {
            for child in &mut children {
                let _ = child.start_kill();
            }
        }
    }
    // Echo the nodes' last lines (their pipes close when they exit).
    for forwarder in forwarders {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), forwarder).await;
    }
    Ok(())
}

/// The cluster's peer secret file in `dir`, made (32 random bytes in hex, mode 0600) if absent.
fn peer_secret(dir: &Path) -> anyhow::Result<PathBuf> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join("peer-secret");
    if path.exists() {
        return Ok(path);
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|error| anyhow::anyhow!("no OS randomness for the peer secret: {error}"))?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot create the peer secret {}", path.display()))?;
    file.write_all(hex.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write the peer secret {}", path.display()))?;
    Ok(path)
}
