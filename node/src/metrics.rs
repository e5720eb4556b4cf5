//! A node's figures as Prometheus text (exposition format 0.0.4) and as the JSON the status
//! page polls. Pure functions of a [`Figures`] snapshot: the HTTP listener ([`crate::http`])
//! only serves what they return.
//!
//! Every metric is prefixed `verity_`. Gauges: role (one series per role, 1 for the current
//! one), term, commit/applied/last log/snapshot index, per-peer connection, match index and
//! lag (the last two on the leader only), connected clients, waiting requests, sessions.
//! Counters: elections started and won, replies and error replies per command, WAL records,
//! bytes and syncs, frames sent and dropped per peer, snapshots installed. Histograms: WAL
//! fsync latency (seconds) and records made durable per sync.

use crate::driver::NodeStatus;
use crate::histogram::HistogramFigures;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use verity_core::{NodeId, Role};
use verity_engine::Tally;

/// What the metrics describe: the driver's latest status and the client server's figures.
#[derive(Clone, Debug)]
pub struct Figures {
    /// The node's status.
    pub status: NodeStatus,
    /// Client connections open now.
    pub connected_clients: u64,
    /// Clients disconnected for passing the output buffer limit.
    pub output_limit_disconnections: u64,
    /// Replies and error replies per command.
    pub commands: Tally,
    /// Seconds since the node started.
    pub uptime_seconds: f64,
}

/// The roles, as exported.
const ROLES: [(Role, &str); 4] = [
    (Role::Follower, "follower"),
    (Role::PreCandidate, "pre-candidate"),
    (Role::Candidate, "candidate"),
    (Role::Leader, "leader"),
];

/// The name of `role` as exported.
#[must_use]
pub fn role_name(role: Role) -> &'static str {
    ROLES
        .iter()
        .find(|(r, _)| *r == role)
        .map(|(_, name)| *name)
        .expect("every role is listed")
}

/// Prometheus text writer: one `# HELP` and `# TYPE` per family, then its samples.
struct Text {
    out: String,
}

impl Text {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP verity_{name} {help}");
        let _ = writeln!(self.out, "# TYPE verity_{name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        let _ = write!(self.out, "verity_{name}");
        if !labels.is_empty() {
            let labels: Vec<String> = labels
                .iter()
                .map(|(key, value)| format!("{key}=\"{}\"", escape(value)))
                .collect();
            let _ = write!(self.out, "{{{}}}", labels.join(","));
        }
        let _ = writeln!(self.out, " {value}");
    }

    /// A family with one sample per value of label `label`.
    fn labelled<L: std::fmt::Display>(
        &mut self,
        (name, kind, help): (&str, &str, &str),
        label: &str,
        samples: impl IntoIterator<Item = (L, u64)>,
    ) {
        self.family(name, kind, help);
        for (value_of_label, value) in samples {
            self.sample(name, &[(label, &value_of_label.to_string())], value);
        }
    }

    fn single(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    /// A histogram of observations in `unit`.
    fn histogram(&mut self, name: &str, help: &str, figures: &HistogramFigures, unit: Unit) {
        self.family(name, "histogram", help);
        for (bound, count) in figures.bounds.iter().zip(&figures.cumulative) {
            self.sample(
                &format!("{name}_bucket"),
                &[("le", &unit.show(*bound))],
                count,
            );
        }
        self.sample(&format!("{name}_bucket"), &[("le", "+Inf")], figures.count);
        self.sample(&format!("{name}_sum"), &[], unit.show(figures.sum));
        self.sample(&format!("{name}_count"), &[], figures.count);
    }
}

/// What a histogram's whole-number observations count.
#[derive(Clone, Copy)]
enum Unit {
    /// Microseconds, exported as seconds.
    Micros,
    /// Plain counts.
    Count,
}

impl Unit {
    /// `value` as exported, exactly (no binary floating point on the way).
    fn show(self, value: u64) -> String {
        match self {
            Unit::Count => value.to_string(),
            Unit::Micros => {
                let fraction = format!("{:06}", value % 1_000_000);
                let fraction = fraction.trim_end_matches('0');
                if fraction.is_empty() {
                    (value / 1_000_000).to_string()
                } else {
                    format!("{}.{fraction}", value / 1_000_000)
                }
            }
        }
    }
}

/// A label value with `\`, `"` and newlines escaped, as the format requires.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Each peer's lag behind this node's last log index, on a leader (where match indexes are
/// known).
fn lags(status: &NodeStatus) -> BTreeMap<NodeId, u64> {
    status
        .peers
        .iter()
        .filter_map(|(peer, (_, matched))| {
            matched.map(|m| (*peer, status.last_index.0.saturating_sub(m.0)))
        })
        .collect()
}

/// The figures as Prometheus text.
#[must_use]
pub fn prometheus(figures: &Figures) -> String {
    let status = &figures.status;
    let node = status.id.0.to_string();
    let mut text = Text { out: String::new() };
    text.family(
        "node_info",
        "gauge",
        "This node: its id and version (always 1).",
    );
    text.sample(
        "node_info",
        &[("node", &node), ("version", env!("CARGO_PKG_VERSION"))],
        1,
    );
    text.single(
        "uptime_seconds",
        "gauge",
        "Seconds since the node started.",
        format!("{:.3}", figures.uptime_seconds),
    );
    text.labelled(
        (
            "role",
            "gauge",
            "1 for the role this node has now, 0 for the others.",
        ),
        "role",
        ROLES.map(|(role, name)| (name, u64::from(status.role == role))),
    );
    text.single("term", "gauge", "The node's current term.", status.term.0);
    text.single(
        "leader_id",
        "gauge",
        "The leader this node knows of (0: none).",
        status.leader.map_or(0, |l| l.0),
    );
    text.single(
        "commit_index",
        "gauge",
        "Highest log index known committed.",
        status.commit.0,
    );
    text.single(
        "applied_index",
        "gauge",
        "Highest log index applied to the store.",
        status.applied.0,
    );
    text.single(
        "last_log_index",
        "gauge",
        "Index of the last entry in the log.",
        status.last_index.0,
    );
    text.single(
        "snapshot_index",
        "gauge",
        "Index of the latest snapshot (0: none).",
        status.snapshot_index.0,
    );
    text.single(
        "snapshots_installed_total",
        "counter",
        "Snapshots installed from a leader since the node started.",
        status.snapshots_installed,
    );
    text.single(
        "elections_started_total",
        "counter",
        "Elections this node started (it became a candidate) since it started.",
        status.elections_started,
    );
    text.single(
        "elections_won_total",
        "counter",
        "Elections this node won (it became the leader) since it started.",
        status.elections_won,
    );
    let peers = &status.peers;
    text.labelled(
        (
            "peer_connected",
            "gauge",
            "1 if the transport to the peer is connected.",
        ),
        "peer",
        peers
            .iter()
            .map(|(peer, (state, _))| (peer.0, u64::from(state.connected))),
    );
    text.labelled(
        (
            "peer_match_index",
            "gauge",
            "Highest index the peer is known to store (leader only).",
        ),
        "peer",
        peers
            .iter()
            .filter_map(|(peer, (_, matched))| matched.map(|m| (peer.0, m.0))),
    );
    text.labelled(
        (
            "peer_lag_entries",
            "gauge",
            "Entries the peer is behind the leader's last log index (leader only).",
        ),
        "peer",
        lags(status).into_iter().map(|(peer, lag)| (peer.0, lag)),
    );
    text.labelled(
        (
            "peer_sent_frames_total",
            "counter",
            "Frames sent to the peer.",
        ),
        "peer",
        peers
            .iter()
            .map(|(peer, (state, _))| (peer.0, state.sent_frames)),
    );
    text.labelled(
        (
            "peer_dropped_frames_total",
            "counter",
            "Frames to the peer dropped (its queue was full or it was unreachable).",
        ),
        "peer",
        peers
            .iter()
            .map(|(peer, (state, _))| (peer.0, state.dropped_frames)),
    );
    text.single(
        "connected_clients",
        "gauge",
        "Client connections open now.",
        figures.connected_clients,
    );
    text.single(
        "client_output_limit_disconnections_total",
        "counter",
        "Clients disconnected for passing the output buffer limit.",
        figures.output_limit_disconnections,
    );
    text.single(
        "waiting_requests",
        "gauge",
        "Client operations waiting for an answer on this node.",
        status.waiting,
    );
    text.single(
        "sessions",
        "gauge",
        "Open exactly-once client sessions.",
        status.sessions,
    );
    text.labelled(
        (
            "commands_total",
            "counter",
            "Replies written per command (unknown commands count as `unknown`).",
        ),
        "command",
        figures.commands.iter().map(|(name, c)| (name, c.replies)),
    );
    text.labelled(
        (
            "command_errors_total",
            "counter",
            "Error replies written per command.",
        ),
        "command",
        figures.commands.iter().map(|(name, c)| (name, c.errors)),
    );
    let wal = &status.wal;
    text.single(
        "wal_records_total",
        "counter",
        "WAL records written (one per batch of Raft state).",
        wal.records,
    );
    text.single(
        "wal_bytes_total",
        "counter",
        "WAL bytes written.",
        wal.bytes,
    );
    text.single("wal_syncs_total", "counter", "WAL fsyncs.", wal.syncs);
    text.histogram(
        "wal_fsync_seconds",
        "How long each WAL fsync took.",
        &wal.sync_latency,
        Unit::Micros,
    );
    text.histogram(
        "wal_records_per_sync",
        "WAL records made durable by each fsync (group commit).",
        &wal.records_per_sync,
        Unit::Count,
    );
    text.out
}

/// One node as the status page shows it.
#[derive(Serialize)]
struct StatusJson<'a> {
    id: u64,
    role: &'static str,
    term: u64,
    leader: Option<u64>,
    commit: u64,
    applied: u64,
    last_index: u64,
    connected_clients: u64,
    replies: u64,
    errors: u64,
    elections_started: u64,
    elections_won: u64,
    wal_syncs: u64,
    uptime_seconds: f64,
    peers: Vec<PeerJson>,
    /// The other nodes' metrics addresses, for the page to poll.
    cluster: &'a BTreeMap<u64, String>,
}

#[derive(Serialize)]
struct PeerJson {
    id: u64,
    connected: bool,
    match_index: Option<u64>,
    lag: Option<u64>,
}

/// The figures as the JSON the status page polls; `cluster` maps the other nodes' ids to
/// their metrics addresses.
#[must_use]
pub fn status_json(figures: &Figures, cluster: &BTreeMap<u64, String>) -> String {
    let status = &figures.status;
    let lags = lags(status);
    let (replies, errors) = figures
        .commands
        .iter()
        .fold((0, 0), |(r, e), (_, c)| (r + c.replies, e + c.errors));
    let json = StatusJson {
        id: status.id.0,
        role: role_name(status.role),
        term: status.term.0,
        leader: status.leader.map(|l| l.0),
        commit: status.commit.0,
        applied: status.applied.0,
        last_index: status.last_index.0,
        connected_clients: figures.connected_clients,
        replies,
        errors,
        elections_started: status.elections_started,
        elections_won: status.elections_won,
        wal_syncs: status.wal.syncs,
        uptime_seconds: figures.uptime_seconds,
        peers: status
            .peers
            .iter()
            .map(|(peer, (state, matched))| PeerJson {
                id: peer.0,
                connected: state.connected,
                match_index: matched.map(|m| m.0),
                lag: lags.get(peer).copied(),
            })
            .collect(),
        cluster,
    };
    serde_json::to_string(&json).expect("plain data")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn microseconds_are_shown_as_exact_seconds() {
        assert_eq!(Unit::Micros.show(50), "0.00005");
        assert_eq!(Unit::Micros.show(2_500), "0.0025");
        assert_eq!(Unit::Micros.show(1_000_000), "1");
        assert_eq!(Unit::Micros.show(1_234_500), "1.2345");
        assert_eq!(Unit::Count.show(512), "512");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
