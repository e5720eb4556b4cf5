//! Scenario files: a cluster, a workload and a timeline of faults, in TOML.
//!
//! ```toml
//! [cluster]
//! nodes = 5
//!
//! [workload]
//! clients = 4
//! ops = 100
//!
//! [[timeline]]
//! at = "1s"                      # or: after_leader_elected = true / after_ops_completed = 20
//! action = "isolate"
//! target = "leader"              # a node id, "leader", "follower" or "random"
//!
//! [[timeline]]
//! at = "4s"
//! action = "heal"
//!
//! [expect]
//! progress_within = "5s"
//! ```
//!
//! Timeline entries fire in order: each waits for its trigger, counted from when the entry
//! before it fired (`at` is absolute virtual time; `after_leader_elected` waits for a leader of a
//! newer term; `after_ops_completed` for that many more completed operations), then for its
//! optional `delay`. Every problem is reported with the file, line and column before anything
//! runs.

use crate::duration::Micros;
use crate::network::NetworkOptions;
use crate::options::{FaultKind, OpMix, SimOptions, SnapshotSettings};
use crate::script::{Action, Expectations, Step, Target, Trigger};
use serde::Deserialize;
use std::collections::BTreeSet;
use std::path::Path;
use toml::Spanned;
use verity_core::NodeId;
use verity_engine::Consistency;

/// A scenario file that cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct ScenarioError {
    /// The file.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// What is wrong and what was expected.
    pub message: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    /// The one seed this scenario reproduces (written by `minimize`), if any.
    seed: Option<u64>,
    /// A catalogued bug to switch on (needs a `bug-catalogue` build).
    bug: Option<String>,
    #[serde(default)]
    cluster: Cluster,
    network: Option<Network>,
    #[serde(default)]
    workload: Workload,
    #[serde(default)]
    faults: Faults,
    #[serde(default)]
    timeline: Vec<Spanned<Entry>>,
    #[serde(default)]
    expect: Expect,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Cluster {
    nodes: u64,
    election_timeout_ticks: u64,
    heartbeat_interval_ticks: u64,
    tick: Micros,
    max_entries_per_append: Option<usize>,
    max_inflight_appends: Option<usize>,
    /// Snapshot settings; a file without any keeps the nodes' defaults (as before nodes took
    /// snapshots, so older files replay as they did).
    snapshot_entries: Option<u64>,
    snapshot_trailing_entries: Option<u64>,
    snapshot_chunk_bytes: Option<u64>,
}

impl Default for Cluster {
    fn default() -> Cluster {
        let o = SimOptions::default();
        Cluster {
            nodes: o.nodes,
            election_timeout_ticks: o.election_timeout_ticks,
            heartbeat_interval_ticks: o.heartbeat_interval_ticks,
            tick: Micros(o.tick_us),
            max_entries_per_append: None,
            max_inflight_appends: None,
            snapshot_entries: None,
            snapshot_trailing_entries: None,
            snapshot_chunk_bytes: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Network {
    latency: [Micros; 2],
    #[serde(default)]
    drop_per_mille: u64,
    #[serde(default)]
    duplicate_per_mille: u64,
    #[serde(default)]
    reorder_per_mille: u64,
    #[serde(default = "default_reorder_delay")]
    reorder_delay_max: Micros,
    fsync: Option<[Micros; 2]>,
}

fn default_reorder_delay() -> Micros {
    Micros(20_000)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct Workload {
    clients: u64,
    keys: u64,
    ops: u64,
    duration: Micros,
    request_timeout: Micros,
    max_attempts: u32,
    /// How clients' reads are served, client `i` by `reads[i % len]`; through the log if not
    /// given (as before reads could skip it, so older files replay as they did).
    reads: Vec<Consistency>,
    /// Clients `0..readers` only read (none if not given).
    readers: Option<u64>,
    mix: OpMix,
}

impl Default for Workload {
    fn default() -> Workload {
        let o = SimOptions::default();
        Workload {
            clients: o.clients,
            keys: o.keys,
            ops: o.ops,
            duration: Micros(o.chaos_max_us),
            request_timeout: Micros(o.request_timeout_us),
            max_attempts: o.max_attempts,
            reads: vec![Consistency::Log],
            readers: None,
            mix: o.mix,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Faults {
    #[serde(default)]
    random: RandomFaults,
    /// Out of 1000 random fault events, how many also ask for a leadership transfer (drawn
    /// from the seed if not given).
    transfer_per_mille: Option<u64>,
    /// Whether a leader stops hearing every other node as it hands over (no if not given).
    deafen_after_transfer: Option<bool>,
}

/// `random = false` (none), `true` (swarm: each seed draws its own kinds) or a list of kinds.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RandomFaults {
    Swarm(bool),
    Kinds(Vec<FaultKind>),
}

impl Default for RandomFaults {
    fn default() -> RandomFaults {
        RandomFaults::Swarm(false)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    at: Option<Micros>,
    after_leader_elected: Option<bool>,
    after_ops_completed: Option<u64>,
    delay: Option<Micros>,
    action: ActionName,
    target: Option<TargetName>,
    from: Option<TargetName>,
    to: Option<TargetName>,
    groups: Option<Groups>,
    latency: Option<Micros>,
    every: Option<Micros>,
    #[serde(rename = "for")]
    lasting: Option<Micros>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum ActionName {
    Crash,
    Restart,
    Pause,
    Resume,
    Isolate,
    Split,
    Cut,
    Slow,
    Heal,
    PartitionLeaderMinority,
    Flap,
    Transfer,
}

/// Split groups: a list (`[[1, 2], [3, 4, 5]]`) or named (`{ east = [1, 2], west = [3, 4, 5] }`).
#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
enum Groups {
    Listed(Vec<Vec<u64>>),
    Named(std::collections::BTreeMap<String, Vec<u64>>),
}

impl Groups {
    fn members(&self) -> Vec<Vec<u64>> {
        match self {
            Groups::Listed(groups) => groups.clone(),
            Groups::Named(groups) => groups.values().cloned().collect(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(untagged)]
enum TargetName {
    Id(u64),
    Name(String),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    #[serde(default = "yes")]
    linearizable: bool,
    progress_within: Option<Micros>,
    max_elections: Option<u64>,
    #[serde(default)]
    must_fail: bool,
}

fn yes() -> bool {
    true
}

impl Default for Expect {
    fn default() -> Expect {
        Expect {
            linearizable: true,
            progress_within: None,
            max_elections: None,
            must_fail: false,
        }
    }
}

/// A parsed and validated scenario.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scenario {
    /// Where it came from.
    pub file: String,
    /// The seed it pins, if any: `verity-sim scenario` then runs that seed by default.
    pub seed: Option<u64>,
    /// Options of its runs (the seed is set per run).
    pub options: SimOptions,
}

impl Scenario {
    /// Reads and validates a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|error| ScenarioError {
            file: file.clone(),
            line: 1,
            column: 1,
            message: format!("cannot read the file: {error}"),
        })?;
        Scenario::parse(&file, &text)
    }

    /// Parses and validates scenario `text`, naming it `file` in errors.
    pub fn parse(file: &str, text: &str) -> Result<Scenario, ScenarioError> {
        let error_at = |offset: usize, message: String| {
            let before = &text[..offset.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            ScenarioError {
                file: file.to_string(),
                line,
                column,
                message,
            }
        };
        let parsed: File = toml::from_str(text).map_err(|error| {
            let offset = error.span().map_or(0, |span| span.start);
            error_at(offset, error.message().to_string())
        })?;
        let c = &parsed.cluster;
        if !(1..=9).contains(&c.nodes) {
            return Err(error_at(
                0,
                format!("[cluster] nodes = {}: use 1 to 9", c.nodes),
            ));
        }
        if c.heartbeat_interval_ticks == 0 || c.heartbeat_interval_ticks >= c.election_timeout_ticks
        {
            return Err(error_at(0, "[cluster] heartbeat_interval_ticks must be at least 1 and below election_timeout_ticks".into()));
        }
        let w = &parsed.workload;
        if w.clients == 0
            || w.keys == 0
            || w.max_attempts == 0
            || c.tick.0 == 0
            || w.mix.total() == 0
        {
            return Err(error_at(
                0,
                "[workload] clients, keys, max_attempts and the mix's total, and [cluster] tick, must be positive".into(),
            ));
        }
        let mut options = SimOptions {
            nodes: c.nodes,
            clients: w.clients,
            ops: w.ops,
            keys: w.keys,
            mix: w.mix,
            tick_us: c.tick.0,
            election_timeout_ticks: c.election_timeout_ticks,
            heartbeat_interval_ticks: c.heartbeat_interval_ticks,
            request_timeout_us: w.request_timeout.0,
            max_attempts: w.max_attempts,
            chaos_max_us: w.duration.0,
            faults: match &parsed.faults.random {
                RandomFaults::Swarm(true) => None,
                RandomFaults::Swarm(false) => Some(BTreeSet::new()),
                RandomFaults::Kinds(kinds) => Some(kinds.iter().copied().collect()),
            },
            ..SimOptions::default()
        };
        options.overrides.max_entries_per_append = c.max_entries_per_append;
        options.overrides.max_inflight_appends = c.max_inflight_appends;
        let defaults = SnapshotSettings::default();
        let snapshots = SnapshotSettings {
            entries: c.snapshot_entries.unwrap_or(defaults.entries),
            trailing_entries: c
                .snapshot_trailing_entries
                .unwrap_or(defaults.trailing_entries),
            chunk_bytes: c.snapshot_chunk_bytes.unwrap_or(defaults.chunk_bytes),
        };
        if snapshots.entries == 0 || snapshots.chunk_bytes == 0 {
            return Err(error_at(
                0,
                "[cluster] snapshot_entries and snapshot_chunk_bytes must be at least 1".into(),
            ));
        }
        options.overrides.snapshots = Some(snapshots);
        if w.reads.is_empty() {
            return Err(error_at(
                0,
                "[workload] reads must list at least one of \"linearizable\", \"lease\", \"stale\", \"log\"".into(),
            ));
        }
        options.overrides.reads = Some(w.reads.clone());
        options.overrides.readers = w.readers;
        options.overrides.transfer_per_mille = parsed.faults.transfer_per_mille;
        options.overrides.deafen_after_transfer = parsed.faults.deafen_after_transfer;
        if let Some(readers) = w.readers.filter(|&r| r > w.clients) {
            return Err(error_at(
                0,
                format!(
                    "[workload] readers must not exceed clients: {readers} readers, {} clients",
                    w.clients
                ),
            ));
        }
        if let Some(rate) = parsed.faults.transfer_per_mille.filter(|&t| t > 1000) {
            return Err(error_at(
                0,
                format!("[faults] transfer_per_mille is {rate}: it must be at most 1000"),
            ));
        }
        if let Some(n) = &parsed.network {
            let [low, high] = n.latency;
            if low > high
                || n.drop_per_mille > 1000
                || n.duplicate_per_mille > 1000
                || n.reorder_per_mille > 1000
            {
                return Err(error_at(
                    0,
                    "[network] latency must be [low, high] and rates at most 1000 per mille".into(),
                ));
            }
            options.overrides.network = Some(NetworkOptions {
                latency_min_us: low.0,
                latency_max_us: high.0,
                drop_per_mille: n.drop_per_mille,
                duplicate_per_mille: n.duplicate_per_mille,
                reorder_per_mille: n.reorder_per_mille,
                reorder_delay_max_us: n.reorder_delay_max.0,
            });
            options.overrides.fsync_us = n.fsync.map(|[a, b]| (a.0.min(b.0), a.0.max(b.0)));
        }
        let nodes = c.nodes;
        let target = |name: &Option<TargetName>,
                      what: &str,
                      offset: usize|
         -> Result<Target, ScenarioError> {
            match name {
                None => Err(error_at(
                    offset,
                    format!(
                        "this action needs `{what}` (a node id, \"leader\", \"follower\" or \"random\")"
                    ),
                )),
                Some(TargetName::Id(id)) if (1..=nodes).contains(id) => {
                    Ok(Target::Node(NodeId(*id)))
                }
                Some(TargetName::Id(id)) => Err(error_at(
                    offset,
                    format!("`{what}` = {id} is not a node: the cluster has nodes 1 to {nodes}"),
                )),
                Some(TargetName::Name(name)) => match name.as_str() {
                    "leader" => Ok(Target::Leader),
                    "follower" => Ok(Target::Follower),
                    "random" => Ok(Target::Random),
                    other => Err(error_at(
                        offset,
                        format!(
                            "`{what}` = {other:?}: expected a node id, \"leader\", \"follower\" or \"random\""
                        ),
                    )),
                },
            }
        };
        let mut steps = Vec::new();
        let mut last_at = 0;
        for spanned in &parsed.timeline {
            let offset = spanned.span().start;
            let entry = spanned.get_ref();
            let (line, _) = {
                let e = error_at(offset, String::new());
                (e.line, e.column)
            };
            let trigger = match (entry.at, entry.after_leader_elected, entry.after_ops_completed) {
                (Some(at), None, None) => {
                    if at.0 < last_at {
                        return Err(error_at(offset, "`at` times must not go back: timeline entries fire in order".into()));
                    }
                    if at.0 > options.chaos_max_us {
                        return Err(error_at(offset, format!(
                            "`at` = {} s is past the end of the chaos phase ([workload] duration = {} s)",
                            at.0 as f64 / 1e6,
                            options.chaos_max_us as f64 / 1e6
                        )));
                    }
                    last_at = at.0;
                    Trigger::At(at.0)
                }
                (None, Some(true), None) => Trigger::LeaderElected,
                (None, None, Some(n)) => Trigger::OpsCompleted(n),
                _ => return Err(error_at(offset, "give exactly one trigger: `at`, `after_leader_elected = true` or `after_ops_completed`".into())),
            };
            let action = match entry.action {
                ActionName::Crash => Action::Crash(target(&entry.target, "target", offset)?),
                ActionName::Restart => Action::Restart(target(&entry.target, "target", offset)?),
                ActionName::Pause => Action::Pause(target(&entry.target, "target", offset)?),
                ActionName::Resume => Action::Resume(target(&entry.target, "target", offset)?),
                ActionName::Isolate => Action::Isolate(target(&entry.target, "target", offset)?),
                ActionName::Cut => Action::Cut(
                    target(&entry.from, "from", offset)?,
                    target(&entry.to, "to", offset)?,
                ),
                ActionName::Slow => {
                    let latency = entry.latency.ok_or_else(|| {
                        error_at(offset, "`slow` needs `latency`, such as \"200ms\"".into())
                    })?;
                    Action::Slow(
                        target(&entry.from, "from", offset)?,
                        target(&entry.to, "to", offset)?,
                        latency.0,
                    )
                }
                ActionName::Split => {
                    let groups = entry.groups.as_ref().ok_or_else(|| {
                        error_at(
                            offset,
                            "`split` needs `groups`, such as [[1, 2], [3, 4, 5]]".into(),
                        )
                    })?;
                    let groups = groups.members();
                    let mut seen = BTreeSet::new();
                    for id in groups.iter().flatten() {
                        if !(1..=nodes).contains(id) || !seen.insert(*id) {
                            return Err(error_at(
                                offset,
                                format!(
                                    "`groups`: node {id} is unknown or in two groups (nodes are 1 to {nodes})"
                                ),
                            ));
                        }
                    }
                    Action::Split(
                        groups
                            .iter()
                            .map(|g| g.iter().map(|&id| NodeId(id)).collect())
                            .collect(),
                    )
                }
                ActionName::Heal => Action::Heal,
                ActionName::PartitionLeaderMinority => Action::PartitionLeaderMinority,
                ActionName::Transfer => Action::Transfer(target(&entry.target, "target", offset)?),
                ActionName::Flap => {
                    let (Some(every), Some(lasting)) = (entry.every, entry.lasting) else {
                        return Err(error_at(offset, "`flap` needs `every` and `for`, such as every = \"200ms\", for = \"3s\"".into()));
                    };
                    if every.0 == 0 {
                        return Err(error_at(offset, "`every` must be positive".into()));
                    }
                    Action::Flap {
                        target: target(&entry.target, "target", offset)?,
                        every_us: every.0,
                        lasting_us: lasting.0,
                    }
                }
            };
            steps.push(Step {
                trigger,
                delay_us: entry.delay.map_or(0, |d| d.0),
                action,
                origin: format!("{file}:{line}"),
            });
        }
        options.timeline = steps;
        if let Some(name) = &parsed.bug {
            #[cfg(feature = "bug-catalogue")]
            {
                options.bug = Some(verity_core::bugs::Bug::from_name(name).ok_or_else(|| {
                    error_at(
                        0,
                        format!(
                            "bug = {name:?} is not in the catalogue (`verity-sim hunt --list`)"
                        ),
                    )
                })?);
            }
            #[cfg(not(feature = "bug-catalogue"))]
            return Err(error_at(
                0,
                format!(
                    "this scenario switches on the catalogued bug {name:?}: run it from a build with --features bug-catalogue"
                ),
            ));
        }
        options.expect = Expectations {
            linearizable: parsed.expect.linearizable,
            progress_within_us: parsed.expect.progress_within.map(|d| d.0),
            max_elections: parsed.expect.max_elections,
            must_fail: parsed.expect.must_fail,
        };
        Ok(Scenario {
            file: file.to_string(),
            seed: parsed.seed,
            options,
        })
    }

    /// The options of the run with `seed`.
    #[must_use]
    pub fn options(&self, seed: u64) -> SimOptions {
        SimOptions {
            seed,
            ..self.options.clone()
        }
    }
}
