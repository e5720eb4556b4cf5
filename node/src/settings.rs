//! Every setting of a node, from command-line flags or a TOML file (`--config`), with defaults.
//!
//! [`NodeArgs`] is both the clap flags and the TOML file's schema: each field is optional, a
//! flag overrides the file, and [`NodeArgs::resolve`] fills the rest with defaults and checks
//! the result, naming the setting that is wrong.

use crate::storage::{FsyncPolicy, InitialClusterState};
use anyhow::{Context, bail};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use verity_core::{Config, NodeId};
use verity_engine::auth::Users;
use verity_engine::{Consistency, OutputLimit};

/// Flags of `verity node` (each may instead come from the `--config` file, same name with
/// underscores).
#[derive(Clone, Debug, Default, clap::Args, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeArgs {
    /// TOML file with any of the settings below (flags given on the command line win).
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// This node's id (a positive integer, one of --peers).
    #[arg(long)]
    pub id: Option<u64>,
    /// Name of the cluster; peers must agree on it, and the data directory records it.
    /// [default: verity]
    #[arg(long)]
    pub cluster_id: Option<String>,
    /// Directory for the WAL and metadata (created if missing; locked while the node runs).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// `new` for a node that has never run in this cluster (its data directory is created);
    /// `existing` refuses to start without data, so an empty or mistyped --data-dir cannot
    /// start a node that forgot its votes. Ignored once the directory has data.
    /// [default: existing]
    #[arg(long, value_enum)]
    pub initial_cluster_state: Option<InitialClusterState>,
    /// Address to accept peer connections on.
    #[arg(long, value_name = "ADDR")]
    pub peer_addr: Option<SocketAddr>,
    /// Address to accept Redis-protocol clients on in plain text. Leave it out with
    /// --tls-client-addr to serve clients over TLS only (Redis's `port 0`).
    #[arg(long, value_name = "ADDR")]
    pub client_addr: Option<SocketAddr>,
    /// Address to accept Redis-protocol clients over TLS on (beside --client-addr, like
    /// Redis's tls-port); needs --tls-cert-file and --tls-key-file.
    #[arg(long, value_name = "ADDR")]
    pub tls_client_addr: Option<SocketAddr>,
    /// PEM certificate chain (leaf first) the TLS client port presents.
    #[arg(long, value_name = "FILE")]
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of --tls-cert-file.
    #[arg(long, value_name = "FILE")]
    pub tls_key_file: Option<PathBuf>,
    /// PEM certificates of the CA that issues client certificates: with it, a TLS client
    /// must present a certificate chain leading to one of them (Redis's `tls-ca-cert-file`
    /// with `tls-auth-clients yes`); without it, TLS clients present none.
    #[arg(long, value_name = "FILE")]
    pub tls_ca_cert_file: Option<PathBuf>,
    /// Address to serve metrics on over HTTP: Prometheus text at `/metrics`, this node's
    /// status as JSON at `/status.json`, and a live status page of the cluster at `/`.
    /// Unauthenticated and read-only: bind it to loopback or a trusted network.
    #[arg(long, value_name = "ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// The other nodes' --metrics-addr, for the status page to show the whole cluster:
    /// `2=127.0.0.1:9002,3=127.0.0.1:9003` (`verity cluster` passes it).
    #[arg(long, value_name = "ID=ADDR,...", value_parser = parse_peers)]
    #[serde(default, deserialize_with = "peers_from_text")]
    pub cluster_metrics_addrs: Option<BTreeMap<u64, SocketAddr>>,
    /// Every voter of the cluster with its peer address, this node included:
    /// `1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003`.
    #[arg(long, value_name = "ID=ADDR,...", value_parser = parse_peers)]
    #[serde(default, deserialize_with = "peers_from_text")]
    pub peers: Option<BTreeMap<u64, SocketAddr>>,
    /// File holding the cluster's shared secret (16 bytes or more, the same on every node):
    /// peers must prove they know it (HMAC-SHA256) before the node reads a frame from them.
    /// Required, unless --insecure-peers.
    #[arg(long, value_name = "FILE")]
    pub peer_secret_file: Option<PathBuf>,
    /// PEM certificate chain this node presents to its peers (mutual TLS on the peer port,
    /// with --peer-tls-key-file and --peer-tls-ca-file); issued for the IP address of this
    /// node's --peer-addr.
    #[arg(long, value_name = "FILE")]
    pub peer_tls_cert_file: Option<PathBuf>,
    /// PEM private key of --peer-tls-cert-file.
    #[arg(long, value_name = "FILE")]
    pub peer_tls_key_file: Option<PathBuf>,
    /// PEM certificates of the cluster's CA: a peer's chain must lead to one of them.
    #[arg(long, value_name = "FILE")]
    pub peer_tls_ca_file: Option<PathBuf>,
    /// Accept peer connections without a secret: anyone who can reach the peer port can
    /// pose as a peer and, with one forged message, depose the leader. Trusted networks only.
    #[arg(long)]
    #[serde(default)]
    pub insecure_peers: bool,
    /// Length of one Raft tick in milliseconds. [default: 10]
    #[arg(long)]
    pub tick_ms: Option<u64>,
    /// Ticks of leader silence before a follower campaigns (randomized up to twice this).
    /// [default: 15]
    #[arg(long)]
    pub election_timeout_ticks: Option<u64>,
    /// Ticks between a leader's heartbeats; below the election timeout. [default: 3]
    #[arg(long)]
    pub heartbeat_ticks: Option<u64>,
    /// When the WAL is synced: `always` (before anything depending on it) or `never`
    /// (unsafe: for benchmarks only). [default: always]
    #[arg(long, value_enum)]
    pub fsync: Option<FsyncPolicy>,
    /// Size at which a WAL segment is closed and a new one started. [default: 67108864]
    #[arg(long)]
    pub segment_bytes: Option<u64>,
    /// Take a snapshot (and delete the WAL segments before it) after this many log entries.
    /// [default: 10000]
    #[arg(long)]
    pub snapshot_entries: Option<u64>,
    /// Or after log entries carrying this many bytes of keys and values. [default: 67108864]
    #[arg(long)]
    pub snapshot_bytes: Option<u64>,
    /// Most client connections at once; more are refused with an error. [default: 1024]
    #[arg(long)]
    pub max_clients: Option<usize>,
    /// Largest key or value a client may send, in bytes. [default: 1048576]
    #[arg(long)]
    pub max_value_bytes: Option<usize>,
    /// Most arguments in one client command. [default: 1024]
    #[arg(long)]
    pub max_args: Option<usize>,
    /// Commands of one connection in flight at once; reading pauses beyond it (at most 64,
    /// the exactly-once reply window). [default: 64]
    #[arg(long)]
    pub pipeline_depth: Option<usize>,
    /// How long a command may wait for a leader and a commit before it fails. [default: 5000]
    #[arg(long)]
    pub request_timeout_ms: Option<u64>,
    /// The `default` user's password: clients must `AUTH password` (or `HELLO 2 AUTH default
    /// password`) first. Visible to local users in the process list: prefer --config or
    /// --acl-file on shared machines.
    #[arg(long, value_name = "PASSWORD")]
    pub requirepass: Option<String>,
    /// File of users with passwords, one per line as in a Redis ACL file:
    /// `user NAME on >PASSWORD` (every user has full access); clients must `AUTH NAME
    /// PASSWORD` first.
    #[arg(long, value_name = "FILE")]
    pub acl_file: Option<PathBuf>,
    /// With no password set, serve only clients on the loopback interface (`yes`, the
    /// default), or anyone who reaches the client port (`no`: trusted networks only).
    #[arg(long, value_name = "yes|no", value_parser = parse_yes_no)]
    #[serde(default, deserialize_with = "yes_no_from_text")]
    pub protected_mode: Option<bool>,
    /// When a client that does not read its replies is disconnected, as Redis's
    /// `client-output-buffer-limit normal`: `HARD SOFT SECONDS` (bytes, with Redis's units:
    /// `kb`, `mb`, `gb`, or `k`, `m`, `g` for powers of 1000): at once with more than HARD
    /// bytes of replies unwritten, or after SECONDS in a row over SOFT; 0 switches a rule
    /// off. [default: "256mb 0 0", four of the largest replies]
    #[arg(long, value_name = "HARD SOFT SECONDS", value_parser = parse_output_limit)]
    #[serde(default, deserialize_with = "output_limit_from_text")]
    pub client_output_buffer_limit: Option<OutputLimit>,
    /// How client reads of named keys (`GET`, `MGET`, `EXISTS`, `TTL`, …) are served until a
    /// connection says otherwise with `CONSISTENCY`: `linearizable` (ReadIndex: a round of
    /// heartbeats, no log entry), `lease` (at once while the leader holds a lease: linearizable
    /// while clocks drift less than --max-clock-drift-per-mille), `stale` (the serving node's
    /// state: may miss recent writes) or `log` (a log entry, like a write). [default:
    /// linearizable]
    #[arg(long, value_name = "linearizable|lease|stale|log", value_parser = parse_consistency)]
    pub consistency: Option<Consistency>,
    /// How far, in thousandths, any node's clock may run fast or slow against another's over
    /// an election timeout: lease reads end that much before a follower could vote for
    /// another leader. [default: 50]
    #[arg(long)]
    pub max_clock_drift_per_mille: Option<u64>,
    /// Most exactly-once client sessions the cluster keeps (one per connection that wrote or
    /// read); opening one more evicts the least recently active. Must be the same on every
    /// node. [default: 4096]
    #[arg(long)]
    pub max_sessions: Option<usize>,
}

/// A node's complete, checked settings.
#[derive(Clone, Debug)]
pub struct NodeSettings {
    /// This node.
    pub id: NodeId,
    /// The cluster's name.
    pub cluster_id: String,
    /// The data directory.
    pub data_dir: PathBuf,
    /// Whether the node may create its data directory.
    pub initial_cluster_state: InitialClusterState,
    /// Peer listen address.
    pub peer_addr: SocketAddr,
    /// Plain-text client listen address, if clients are served in plain text.
    pub client_addr: Option<SocketAddr>,
    /// Voters and their peer addresses (this node included).
    pub peers: BTreeMap<NodeId, SocketAddr>,
    /// Where to serve metrics and the status page, if anywhere.
    pub metrics_addr: Option<SocketAddr>,
    /// The other nodes' metrics addresses, for the status page.
    pub cluster_metrics_addrs: BTreeMap<NodeId, SocketAddr>,
    /// Shared peer secret, if any.
    pub peer_secret: Option<Vec<u8>>,
    /// Tick length.
    pub tick_ms: u64,
    /// Base election timeout.
    pub election_timeout_ticks: u64,
    /// Heartbeat interval.
    pub heartbeat_ticks: u64,
    /// WAL sync policy.
    pub fsync: FsyncPolicy,
    /// WAL segment size.
    pub segment_bytes: u64,
    /// Entries between snapshots.
    pub snapshot_entries: u64,
    /// Payload bytes between snapshots.
    pub snapshot_bytes: u64,
    /// Client connection limit.
    pub max_clients: usize,
    /// Key/value size limit.
    pub max_value_bytes: usize,
    /// Argument count limit.
    pub max_args: usize,
    /// Commands in flight per connection.
    pub pipeline_depth: usize,
    /// Wait limit for one command.
    pub request_timeout_ms: u64,
    /// Session table size.
    pub max_sessions: usize,
    /// How reads are served by default.
    pub consistency: Consistency,
    /// Clock drift allowed for leases, in thousandths.
    pub max_clock_drift_per_mille: u64,
    /// Who may use the client port.
    pub users: Arc<Users>,
    /// When a client that does not read its replies is disconnected.
    pub output_limit: OutputLimit,
    /// The TLS client port, if any.
    pub tls_clients: Option<TlsClients>,
    /// Mutual TLS between peers: certificate chain, key and CA files.
    pub peer_tls: Option<(PathBuf, PathBuf, PathBuf)>,
}

/// The TLS client port's settings.
#[derive(Clone, Debug)]
pub struct TlsClients {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The certificate chain it presents (PEM, leaf first).
    pub cert_file: PathBuf,
    /// The chain's private key (PEM).
    pub key_file: PathBuf,
    /// The CA whose certificates clients must present, if clients must present one.
    pub ca_file: Option<PathBuf>,
}

/// Three settings that go together: all given, or none; `message` says which otherwise.
fn all_or_none<A, B, C>(
    settings: (Option<A>, Option<B>, Option<C>),
    message: &str,
) -> anyhow::Result<Option<(A, B, C)>> {
    match settings {
        (None, None, None) => Ok(None),
        (Some(a), Some(b), Some(c)) => Ok(Some((a, b, c))),
        _ => bail!("{message}"),
    }
}

/// Parses `yes` or `no` (Redis's spelling of booleans).
fn parse_yes_no(text: &str) -> Result<bool, String> {
    match text {
        "yes" => Ok(true),
        "no" => Ok(false),
        other => Err(format!("{other:?} is neither yes nor no")),
    }
}

/// Reads `protected_mode = "yes"` (or a TOML boolean) in a config file.
fn yes_no_from_text<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<bool>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum YesNo {
        Bool(bool),
        Text(String),
    }
    match YesNo::deserialize(deserializer)? {
        YesNo::Bool(value) => Ok(Some(value)),
        YesNo::Text(text) => parse_yes_no(&text)
            .map(Some)
            .map_err(serde::de::Error::custom),
    }
}

/// The default output limit: four replies of the largest size (64 values of 1 MiB).
const DEFAULT_OUTPUT_LIMIT: OutputLimit = OutputLimit {
    hard_bytes: 256 << 20,
    soft_bytes: 0,
    soft_ms: 0,
};

/// Parses an output limit as Redis writes one: `HARD SOFT SECONDS`, optionally after the
/// client class `normal` (the only class here).
pub fn parse_output_limit(text: &str) -> Result<OutputLimit, String> {
    let mut words: Vec<&str> = text.split_whitespace().collect();
    if words
        .first()
        .is_some_and(|w| w.eq_ignore_ascii_case("normal"))
    {
        words.remove(0);
    }
    let [hard, soft, seconds] = words[..] else {
        return Err(format!(
            "{text:?} is not HARD SOFT SECONDS (for example \"256mb 64mb 60\")"
        ));
    };
    let seconds: u64 = seconds
        .parse()
        .map_err(|_| format!("{seconds:?} in {text:?} is not a number of seconds"))?;
    Ok(OutputLimit {
        hard_bytes: parse_memory(hard)?,
        soft_bytes: parse_memory(soft)?,
        soft_ms: seconds.saturating_mul(1000),
    })
}

/// Parses a byte count with Redis's units: `b`, `k`/`kb`, `m`/`mb`, `g`/`gb` (the `b` forms
/// are powers of 1024, the others of 1000), in any case.
fn parse_memory(text: &str) -> Result<u64, String> {
    let lower = text.to_ascii_lowercase();
    let digits = lower.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit: u64 = match &lower[digits.len()..] {
        "" | "b" => 1,
        "k" => 1_000,
        "kb" => 1 << 10,
        "m" => 1_000_000,
        "mb" => 1 << 20,
        "g" => 1_000_000_000,
        "gb" => 1 << 30,
        other => {
            return Err(format!(
                "{other:?} in {text:?} is not a unit (kb, mb, gb, k, m, g)"
            ));
        }
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .ok_or_else(|| format!("{text:?} is not a byte count"))
}

/// Reads `client_output_buffer_limit = "256mb 64mb 60"` in a config file.
fn output_limit_from_text<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<OutputLimit>, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse_output_limit(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// Parses `--consistency`: the names `CONSISTENCY` takes ([`Consistency::parse`]).
fn parse_consistency(text: &str) -> Result<Consistency, String> {
    Consistency::parse(text.as_bytes()).ok_or_else(|| {
        format!("{text:?} is not linearizable (or strong), lease, stale (or eventual), or log")
    })
}

/// Parses `1=127.0.0.1:7001,2=127.0.0.1:7002`.
pub fn parse_peers(text: &str) -> Result<BTreeMap<u64, SocketAddr>, String> {
    let mut peers = BTreeMap::new();
    for item in text
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
    {
        let (id, addr) = item
            .split_once('=')
            .ok_or_else(|| format!("{item:?} is not ID=ADDR"))?;
        let id: u64 = id
            .trim()
            .parse()
            .map_err(|_| format!("{id:?} in {item:?} is not a node id"))?;
        let addr: SocketAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("{addr:?} in {item:?} is not an IP:PORT address"))?;
        if peers.insert(id, addr).is_some() {
            return Err(format!("node {id} is listed twice"));
        }
    }
    Ok(peers)
}

/// Reads `peers` in a config file, written as the flag is: `peers = "1=127.0.0.1:7001,..."`.
fn peers_from_text<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<BTreeMap<u64, SocketAddr>>, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse_peers(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

impl NodeArgs {
    /// Merges the flags over the `--config` file (if any), fills defaults, and checks.
    pub fn resolve(self) -> anyhow::Result<NodeSettings> {
        let file = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read config file {}", path.display()))?;
                toml::from_str::<NodeArgs>(&text)
                    .with_context(|| format!("invalid config file {}", path.display()))?
            }
            None => NodeArgs::default(),
        };
        macro_rules! pick {
            ($field:ident) => {
                self.$field.or(file.$field)
            };
        }
        let required = |name: &str| format!("--{name} is required (as a flag or in --config)");
        let id = pick!(id).with_context(|| required("id"))?;
        let peers: BTreeMap<NodeId, SocketAddr> = pick!(peers)
            .with_context(|| required("peers"))?
            .into_iter()
            .map(|(id, addr)| (NodeId(id), addr))
            .collect();
        let peer_secret = match pick!(peer_secret_file) {
            Some(path) => {
                let secret = std::fs::read(&path).with_context(|| {
                    format!("cannot read --peer-secret-file {}", path.display())
                })?;
                let secret = secret.trim_ascii().to_vec();
                if secret.len() < 16 {
                    bail!(
                        "the peer secret in {} is {} bytes; use at least 16 random bytes",
                        path.display(),
                        secret.len()
                    );
                }
                Some(secret)
            }
            None if self.insecure_peers || file.insecure_peers => None,
            None => bail!(
                "the peer port needs the cluster's shared secret: --peer-secret-file FILE (16 or \
                 more random bytes, the same on every node; `verity cluster` makes one), or \
                 --insecure-peers to let anyone who reaches the peer port pose as a peer"
            ),
        };
        let acl = match pick!(acl_file) {
            Some(path) => Some(
                std::fs::read_to_string(&path)
                    .with_context(|| format!("cannot read --acl-file {}", path.display()))
                    .map(|text| (path, text))?,
            ),
            None => None,
        };
        let requirepass = pick!(requirepass);
        if requirepass.as_deref() == Some("") {
            bail!("--requirepass is empty: give a password, or leave it out for none");
        }
        let users = Users::new(
            requirepass.as_deref().map(str::as_bytes),
            acl.as_ref().map(|(_, text)| text.as_str()),
            pick!(protected_mode).unwrap_or(true),
        )
        .map_err(|error| match &acl {
            Some((path, _)) => anyhow::anyhow!("{}: {error}", path.display()),
            None => anyhow::anyhow!("{error}"),
        })?;
        let tls_ca_file = pick!(tls_ca_cert_file);
        let tls_clients = all_or_none(
            (
                pick!(tls_client_addr),
                pick!(tls_cert_file),
                pick!(tls_key_file),
            ),
            "a TLS client port needs all of --tls-client-addr, --tls-cert-file and \
             --tls-key-file",
        )?
        .map(|(addr, cert_file, key_file)| TlsClients {
            addr,
            cert_file,
            key_file,
            ca_file: tls_ca_file.clone(),
        });
        if tls_clients.is_none() && tls_ca_file.is_some() {
            bail!(
                "--tls-ca-cert-file asks TLS clients for certificates: it needs --tls-client-addr"
            );
        }
        if tls_clients.is_none() && pick!(client_addr).is_none() {
            bail!(
                "{}, or --tls-client-addr to serve clients over TLS only",
                required("client-addr")
            );
        }
        let peer_tls = all_or_none(
            (
                pick!(peer_tls_cert_file),
                pick!(peer_tls_key_file),
                pick!(peer_tls_ca_file),
            ),
            "mutual TLS between peers needs all of --peer-tls-cert-file, --peer-tls-key-file \
             and --peer-tls-ca-file",
        )?;
        let settings = NodeSettings {
            id: NodeId(id),
            cluster_id: pick!(cluster_id).unwrap_or_else(|| "verity".into()),
            data_dir: pick!(data_dir).with_context(|| required("data-dir"))?,
            initial_cluster_state: pick!(initial_cluster_state).unwrap_or_default(),
            peer_addr: pick!(peer_addr).with_context(|| required("peer-addr"))?,
            client_addr: pick!(client_addr),
            peers,
            metrics_addr: pick!(metrics_addr),
            cluster_metrics_addrs: pick!(cluster_metrics_addrs)
                .unwrap_or_default()
                .into_iter()
                .map(|(id, addr)| (NodeId(id), addr))
                .collect(),
            peer_secret,
            tick_ms: pick!(tick_ms).unwrap_or(10),
            election_timeout_ticks: pick!(election_timeout_ticks).unwrap_or(15),
            heartbeat_ticks: pick!(heartbeat_ticks).unwrap_or(3),
            fsync: pick!(fsync).unwrap_or(FsyncPolicy::Always),
            segment_bytes: pick!(segment_bytes).unwrap_or(64 << 20),
            snapshot_entries: pick!(snapshot_entries).unwrap_or(10_000),
            snapshot_bytes: pick!(snapshot_bytes).unwrap_or(64 << 20),
            max_clients: pick!(max_clients).unwrap_or(1024),
            max_value_bytes: pick!(max_value_bytes).unwrap_or(1 << 20),
            max_args: pick!(max_args).unwrap_or(1024),
            pipeline_depth: pick!(pipeline_depth).unwrap_or(64),
            request_timeout_ms: pick!(request_timeout_ms).unwrap_or(5000),
            max_sessions: pick!(max_sessions).unwrap_or(4096),
            consistency: pick!(consistency).unwrap_or_default(),
            max_clock_drift_per_mille: pick!(max_clock_drift_per_mille).unwrap_or(50),
            users: Arc::new(users),
            output_limit: pick!(client_output_buffer_limit).unwrap_or(DEFAULT_OUTPUT_LIMIT),
            tls_clients,
            peer_tls,
        };
        settings.check()?;
        Ok(settings)
    }
}

impl NodeSettings {
    fn check(&self) -> anyhow::Result<()> {
        if !self.peers.contains_key(&self.id) {
            bail!(
                "--id {} is not in --peers ({}): list every voter, this node included",
                self.id.0,
                self.peers
                    .keys()
                    .map(|id| id.0.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            );
        }
        if self.tick_ms == 0 {
            bail!("--tick-ms must be at least 1");
        }
        if self.max_clock_drift_per_mille >= 500 {
            bail!(
                "--max-clock-drift-per-mille must be below 500 (clocks that drift by half leave no lease)"
            );
        }
        let window = self.core_config(0).sessions.reply_window;
        if self.pipeline_depth == 0 || self.pipeline_depth as u64 > window {
            bail!(
                "--pipeline-depth must be between 1 and {window} (the exactly-once reply window)"
            );
        }
        if self.max_args < 2 || self.max_clients == 0 || self.segment_bytes == 0 {
            bail!("--max-args must be at least 2, --max-clients and --segment-bytes at least 1");
        }
        if self.snapshot_entries == 0 || self.snapshot_bytes == 0 {
            bail!("--snapshot-entries and --snapshot-bytes must be at least 1");
        }
        // An AppendEntries holds up to `max_append_bytes` plus one entry of a key and a value
        // (a CAS carries two values): it must fit in a peer frame.
        let largest_entry = 3 * self.max_value_bytes as u64;
        let frame_budget = u64::from(verity_core::codec::MAX_FRAME_BYTES) / 2;
        if largest_entry + self.core_config(0).max_append_bytes > frame_budget {
            bail!(
                "--max-value-bytes {} is too large: three values plus a replication batch must fit in {frame_budget} bytes",
                self.max_value_bytes
            );
        }
        self.core_config(0)
            .validate()
            .context("invalid Raft timing settings")?;
        Ok(())
    }

    /// The core's configuration; `seed` drives its election jitter.
    #[must_use]
    pub fn core_config(&self, seed: u64) -> Config {
        let mut config = Config::new(self.id, self.voters(), seed);
        config.election_timeout_ticks = self.election_timeout_ticks;
        config.heartbeat_interval_ticks = self.heartbeat_ticks;
        config.max_value_bytes = self.max_value_bytes as u64;
        config.sessions.max_sessions = self.max_sessions;
        config.snapshot_entries = self.snapshot_entries;
        config.snapshot_bytes = self.snapshot_bytes;
        config.lease_read_ms =
            config.safe_lease_ms(self.tick_ms * 1000, self.max_clock_drift_per_mille);
        config
    }

    /// The largest log entry a client may cause: three values' worth (what the frame budget
    /// check in [`NodeArgs::resolve`] reserves).
    #[must_use]
    pub fn max_entry_bytes(&self) -> u64 {
        3 * self.max_value_bytes as u64
    }

    /// The client address this node tells its peers (for clients they redirect): the plain
    /// port if it has one, else the TLS port.
    #[must_use]
    pub fn advertised_client_addr(&self) -> SocketAddr {
        match (&self.client_addr, &self.tls_clients) {
            (Some(addr), _) => *addr,
            (None, Some(tls)) => tls.addr,
            (None, None) => unreachable!("resolve requires a client port"),
        }
    }

    /// Every voter.
    #[must_use]
    pub fn voters(&self) -> BTreeSet<NodeId> {
        self.peers.keys().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_parse_and_bad_items_are_named() {
        let peers = parse_peers("1=127.0.0.1:7001, 2=127.0.0.1:7002").unwrap();
        assert_eq!(peers.len(), 2);
        assert!(
            parse_peers("1=localhost")
                .unwrap_err()
                .contains("\"localhost\"")
        );
        assert!(
            parse_peers("x=127.0.0.1:1")
                .unwrap_err()
                .contains("not a node id")
        );
        assert!(
            parse_peers("1=127.0.0.1:1,1=127.0.0.1:2")
                .unwrap_err()
                .contains("twice")
        );
    }

    #[test]
    fn flags_override_the_file_and_defaults_fill_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.toml");
        std::fs::write(
            &path,
            "id = 2\ndata_dir = \"d\"\npeer_addr = \"127.0.0.1:7002\"\nclient_addr = \"127.0.0.1:6002\"\ntick_ms = 20\npeers = \"1=127.0.0.1:7001,2=127.0.0.1:7002\"\ninsecure_peers = true\n",
        )
        .unwrap();
        let args = NodeArgs {
            config: Some(path.clone()),
            tick_ms: Some(5),
            ..NodeArgs::default()
        };
        let settings = args.resolve().unwrap();
        assert_eq!(settings.id, NodeId(2));
        assert_eq!(settings.tick_ms, 5);
        assert_eq!(settings.fsync, FsyncPolicy::Always);
        assert_eq!(settings.peers.len(), 2);
        std::fs::write(&path, "id = 2\nbogus = 1\n").unwrap();
        let error = NodeArgs {
            config: Some(path),
            ..NodeArgs::default()
        }
        .resolve()
        .unwrap_err();
        assert!(format!("{error:#}").contains("bogus"), "{error:#}");
    }

    #[test]
    fn output_limits_read_as_redis_writes_them() {
        assert_eq!(
            parse_output_limit("normal 256mb 64MB 60").unwrap(),
            OutputLimit {
                hard_bytes: 256 << 20,
                soft_bytes: 64 << 20,
                soft_ms: 60_000,
            }
        );
        assert_eq!(parse_output_limit("0 0 0").unwrap(), OutputLimit::default());
        assert_eq!(parse_output_limit("2k 1kb 1").unwrap().hard_bytes, 2_000);
        for (bad, says) in [
            ("256mb 64mb", "HARD SOFT SECONDS"),
            ("256xb 0 0", "not a unit"),
            ("mb 0 0", "not a byte count"),
            ("99999999999gb 0 0", "not a byte count"),
            ("1 1 soon", "seconds"),
        ] {
            let error = parse_output_limit(bad).unwrap_err();
            assert!(error.contains(says), "{bad}: {error}");
        }
    }

    #[test]
    fn clients_need_a_plain_or_a_tls_port_and_a_client_ca_needs_the_tls_port() {
        let tls_only = NodeArgs {
            id: Some(1),
            data_dir: Some("d".into()),
            peer_addr: Some("127.0.0.1:7001".parse().unwrap()),
            peers: Some(parse_peers("1=127.0.0.1:7001").unwrap()),
            insecure_peers: true,
            tls_client_addr: Some("127.0.0.1:6379".parse().unwrap()),
            tls_cert_file: Some("cert.pem".into()),
            tls_key_file: Some("key.pem".into()),
            ..NodeArgs::default()
        };
        let settings = tls_only.clone().resolve().unwrap();
        assert_eq!(settings.client_addr, None);
        assert_eq!(
            settings.advertised_client_addr(),
            "127.0.0.1:6379".parse().unwrap()
        );
        let no_port = NodeArgs {
            tls_client_addr: None,
            tls_cert_file: None,
            tls_key_file: None,
            ..tls_only.clone()
        };
        let error = no_port.clone().resolve().unwrap_err().to_string();
        assert!(error.contains("--client-addr is required"), "{error}");
        let stray_ca = NodeArgs {
            client_addr: Some("127.0.0.1:6001".parse().unwrap()),
            tls_ca_cert_file: Some("ca.pem".into()),
            ..no_port
        };
        let error = stray_ca.resolve().unwrap_err().to_string();
        assert!(error.contains("needs --tls-client-addr"), "{error}");
    }

    #[test]
    fn a_node_missing_from_its_peers_is_refused() {
        let args = NodeArgs {
            id: Some(4),
            data_dir: Some("d".into()),
            peer_addr: Some("127.0.0.1:7004".parse().unwrap()),
            client_addr: Some("127.0.0.1:6004".parse().unwrap()),
            peers: Some(parse_peers("1=127.0.0.1:7001").unwrap()),
            insecure_peers: true,
            ..NodeArgs::default()
        };
        assert!(
            args.resolve()
                .unwrap_err()
                .to_string()
                .contains("not in --peers")
        );
    }

    #[test]
    fn a_node_without_a_peer_secret_is_refused_unless_told_it_is_insecure() {
        let args = NodeArgs {
            id: Some(1),
            data_dir: Some("d".into()),
            peer_addr: Some("127.0.0.1:7001".parse().unwrap()),
            client_addr: Some("127.0.0.1:6001".parse().unwrap()),
            peers: Some(parse_peers("1=127.0.0.1:7001").unwrap()),
            ..NodeArgs::default()
        };
        let error = args.clone().resolve().unwrap_err().to_string();
        assert!(error.contains("--peer-secret-file FILE"), "{error}");
        assert!(error.contains("--insecure-peers"), "{error}");
        let insecure = NodeArgs {
            insecure_peers: true,
            ..args
        };
        assert_eq!(insecure.resolve().unwrap().peer_secret, None);
    }
}
