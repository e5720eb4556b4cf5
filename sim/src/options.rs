//! What a simulated run looks like: cluster, workload, faults. Times are virtual microseconds.

use crate::network::NetworkOptions;
use crate::rng::SimRng;
use crate::script::{Expectations, Step};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use verity_engine::Consistency;

/// Mixed into the seed for the second stream of plan draws (see [`FaultPlan::draw`]).
const LATER_DRAWS_SALT: u64 = 0x9e6c_63d0_676a_9a99;

/// A kind of fault the nemesis can inject.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// Crash a node (losing, keeping or tearing its unsynced writes) and restart it later.
    Crash,
    /// Stop a node taking steps for a while; it keeps its state.
    Pause,
    /// Split the cluster into two groups that cannot talk.
    Partition,
    /// Cut one direction of one link (asymmetric partition).
    OneWay,
    /// A burst of packet loss.
    Loss,
    /// A burst of duplicated packets.
    Duplicate,
    /// A burst of heavily reordered packets.
    Reorder,
    /// Slow down every link of one node.
    Slow,
}

impl FaultKind {
    /// The kind's name on the command line and in scenario files.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Crash => "crash",
            FaultKind::Pause => "pause",
            FaultKind::Partition => "partition",
            FaultKind::OneWay => "one-way",
            FaultKind::Loss => "loss",
            FaultKind::Duplicate => "duplicate",
            FaultKind::Reorder => "reorder",
            FaultKind::Slow => "slow",
        }
    }

    /// Every kind.
    pub const ALL: [FaultKind; 8] = [
        FaultKind::Crash,
        FaultKind::Pause,
        FaultKind::Partition,
        FaultKind::OneWay,
        FaultKind::Loss,
        FaultKind::Duplicate,
        FaultKind::Reorder,
        FaultKind::Slow,
    ];
}

/// Relative weights of the operations clients invoke. In a scenario file a weight left out of
/// an explicit `mix` is 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpMix {
    /// Reads (`GET`).
    #[serde(default)]
    pub get: u64,
    /// Overwrites (`SET`).
    #[serde(default)]
    pub put: u64,
    /// Deletes (`DEL`).
    #[serde(default)]
    pub delete: u64,
    /// Compare-and-swaps (`CAS`, or `SET NX` when expecting absence).
    #[serde(default)]
    pub cas: u64,
    /// Appends (`APPEND`).
    #[serde(default)]
    pub append: u64,
    /// Increments (`INCRBY` by 1 to 3).
    #[serde(default)]
    pub incr: u64,
    /// Commands over a key pair: `MSET`, `MGET` or `DEL` of both.
    #[serde(default)]
    pub multi: u64,
    /// `MULTI` … `EXEC` transactions of 2 or 3 commands over a key pair.
    #[serde(default)]
    pub txn: u64,
    /// `GETSET`, `GETDEL` or `SETNX`.
    #[serde(default)]
    pub swap: u64,
}

impl Default for OpMix {
    fn default() -> OpMix {
        OpMix {
            get: 30,
            put: 25,
            delete: 5,
            cas: 20,
            append: 20,
            incr: 15,
            multi: 10,
            txn: 10,
            swap: 10,
        }
    }
}

impl OpMix {
    /// Sum of the weights.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.get
            + self.put
            + self.delete
            + self.cas
            + self.append
            + self.incr
            + self.multi
            + self.txn
            + self.swap
    }
}

/// Settings a scenario pins instead of letting the seed draw them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Overrides {
    /// The network outside fault bursts.
    pub network: Option<NetworkOptions>,
    /// Fastest and slowest fsync.
    pub fsync_us: Option<(u64, u64)>,
    /// Nodes' batching limit.
    pub max_entries_per_append: Option<usize>,
    /// Nodes' pipelining limit.
    pub max_inflight_appends: Option<usize>,
    /// How clients' reads are served.
    pub reads: Option<Vec<Consistency>>,
    /// When nodes snapshot and how they send snapshots.
    pub snapshots: Option<SnapshotSettings>,
    /// How many clients only read.
    pub readers: Option<u64>,
    /// Out of 1000 nemesis events, how many also ask for a leadership transfer.
    pub transfer_per_mille: Option<u64>,
    /// Whether a leader stops hearing anyone as it hands over.
    pub deafen_after_transfer: Option<bool>,
}

/// When nodes take snapshots and how they send them (their `snapshot_entries`,
/// `snapshot_trailing_entries` and `snapshot_chunk_bytes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct SnapshotSettings {
    /// Entries applied between snapshots.
    pub entries: u64,
    /// Entries kept below a snapshot.
    pub trailing_entries: u64,
    /// Bytes of a snapshot per `InstallSnapshot` message.
    pub chunk_bytes: u64,
}

impl Default for SnapshotSettings {
    /// The nodes' own defaults (a run of the simulator's size then never snapshots).
    fn default() -> SnapshotSettings {
        let config = verity_core::Config::new(verity_core::NodeId(1), [verity_core::NodeId(1)], 0);
        SnapshotSettings {
            entries: config.snapshot_entries,
            trailing_entries: config.snapshot_trailing_entries,
            chunk_bytes: config.snapshot_chunk_bytes,
        }
    }
}

/// The options of one run. [`SimOptions::default`] is the standard swarm run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimOptions {
    /// The seed: everything random in the run derives from it.
    pub seed: u64,
    /// Cluster size.
    pub nodes: u64,
    /// Concurrent clients.
    pub clients: u64,
    /// Client operations invoked during the chaos phase.
    pub ops: u64,
    /// Distinct keys (a small hot set finds more bugs).
    pub keys: u64,
    /// Operation mix.
    pub mix: OpMix,
    /// Fault kinds to inject; `None` lets each seed draw its own set (swarm testing).
    pub faults: Option<BTreeSet<FaultKind>>,
    /// Operations each client must complete after the cluster has healed and settled.
    pub liveness_ops_per_client: u64,
    /// Length of a node tick.
    pub tick_us: u64,
    /// Node election timeout, in ticks.
    pub election_timeout_ticks: u64,
    /// Node heartbeat interval, in ticks.
    pub heartbeat_interval_ticks: u64,
    /// How long one attempt of a command waits for an answer (a forward's timeout); a
    /// connection retries a command for `request_timeout_us * max_attempts` in all.
    pub request_timeout_us: u64,
    /// Attempts before a client gives up on an operation (recording it as `info`).
    pub max_attempts: u32,
    /// Linearizability checker budget, in search steps.
    pub check_steps: u64,
    /// Longest chaos phase: the heal comes then even if fewer than `ops` operations were
    /// invoked (a cluster can be too faulty to serve them all).
    pub chaos_max_us: u64,
    /// Virtual time after which an unfinished run fails liveness (every run is bounded).
    pub max_virtual_time_us: u64,
    /// Keep every trace event (for `replay`), not only the hash.
    pub keep_trace: bool,
    /// Settings pinned instead of drawn from the seed.
    pub overrides: Overrides,
    /// Scripted faults (from a scenario file), on top of random ones.
    pub timeline: Vec<Step>,
    /// What every run must satisfy beyond the standard checks.
    pub expect: Expectations,
    /// The catalogued bug to switch on in every node, if any.
    #[cfg(feature = "bug-catalogue")]
    pub bug: Option<verity_core::bugs::Bug>,
}

impl Default for SimOptions {
    fn default() -> SimOptions {
        SimOptions {
            seed: 0,
            nodes: 5,
            clients: 8,
            ops: 200,
            keys: 4,
            mix: OpMix::default(),
            faults: None,
            liveness_ops_per_client: 2,
            tick_us: 10_000,
            election_timeout_ticks: 15,
            heartbeat_interval_ticks: 3,
            request_timeout_us: 400_000,
            max_attempts: 30,
            check_steps: 20_000_000,
            chaos_max_us: 60_000_000,
            max_virtual_time_us: 600_000_000,
            keep_trace: false,
            overrides: Overrides::default(),
            timeline: Vec::new(),
            expect: Expectations::default(),
            #[cfg(feature = "bug-catalogue")]
            bug: None,
        }
    }
}

impl SimOptions {
    /// How long a node's forward waits for its leader's answer, in milliseconds: one
    /// attempt's patience (`request_timeout_us`). The simulated network loses single frames,
    /// which a real TCP connection would not do without breaking.
    #[must_use]
    pub fn forward_timeout_ms(&self) -> u64 {
        (self.request_timeout_us / 1000).max(1)
    }

    /// How long a node's client connection keeps retrying one command, microseconds: every
    /// attempt's patience, times the attempts.
    #[must_use]
    pub fn connection_budget_us(&self) -> u64 {
        self.request_timeout_us * u64::from(self.max_attempts)
    }

    /// One election timeout, in microseconds.
    #[must_use]
    pub fn election_timeout_us(&self) -> u64 {
        self.election_timeout_ticks * self.tick_us
    }
}

/// The faults and network of one run, drawn from its seed before anything else happens.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FaultPlan {
    /// Fault kinds the nemesis may inject.
    pub enabled: BTreeSet<FaultKind>,
    /// The network outside fault bursts.
    pub network: NetworkOptions,
    /// Shortest gap between nemesis actions.
    pub nemesis_min_us: u64,
    /// Longest gap between nemesis actions.
    pub nemesis_max_us: u64,
    /// Longest a fault lasts before it heals by itself.
    pub fault_max_us: u64,
    /// Shortest and longest time an fsync takes on this run's disks: some seeds get fast
    /// disks, some slow ones (stalls longer than a network round trip).
    pub fsync_us: (u64, u64),
    /// Nodes' batching limit (`max_entries_per_append`): small limits split batches and
    /// exercise replication paths that large batches hide.
    pub max_entries_per_append: usize,
    /// Nodes' pipelining limit (`max_inflight_appends`).
    pub max_inflight_appends: usize,
    /// Most commands a client writes in one pipeline (each pipeline draws 1 to this many).
    pub max_pipeline: u64,
    /// Nodes' session limits (`max_sessions`, `idle_expiry_entries`): tight in some seeds, so
    /// sessions are evicted and expire while their clients still use them.
    pub sessions: (usize, u64),
    /// Nodes' `reply_window` (`None`: their default): in some seeds narrower than the
    /// deepest pipeline, so retries fall out of the window and are refused.
    pub reply_window: Option<u64>,
    /// Out of 1000 crashes, how many also damage the crashed node's synced WAL (a bit flip, a
    /// zeroed sector, a lost or misdirected write: see [`crate::disk::SimDisk::damage`]);
    /// never on more than a minority of nodes in one run, since a damaged node stays down.
    pub damage_per_mille: u64,
    /// Out of 1000 crashes, how many pick a leader holding uncommitted entries, when there
    /// is one: its suffix is left behind on some followers and overwritten on others, the
    /// log divergence that Raft's conflict handling and commitment rules exist for.
    pub leader_crash_per_mille: u64,
    /// Nodes' `max_uncommitted_entries` (`None`: their default): small in some seeds, so
    /// leaders refuse proposals as overloaded while followers lag.
    pub max_uncommitted_entries: Option<usize>,
    /// Out of 1000 nemesis events, how many also ask the leader to hand its leadership to a
    /// random live follower (0 in most seeds): transfers race client traffic, crashes and
    /// partitions.
    pub transfer_per_mille: u64,
    /// Whether a leader that tells a node to take over (`TimeoutNow`) stops hearing anyone at
    /// that moment (a one-way cut into it, healed like any fault), in half the seeds that
    /// transfer and enable one-way cuts: the old leader keeps believing it leads while its
    /// successor is elected and commits, the window in which a leader that kept its lease
    /// through the transfer would serve stale lease reads.
    pub deafen_after_transfer: bool,
    /// Clients `0..readers` only read: their reads never wait behind their own writes, so they
    /// reach a node in any window, such as an old leader's last moments. A quarter of swarm
    /// seeds make 1 to half of the clients readers, and one in eight draws the handover-stress
    /// profile: transfers at 30-60% of nemesis
    /// events, every old leader deafened as it hands over, half the clients readers, reads
    /// under leases (clients by turns, with linearizable ones).
    pub readers: u64,
    /// Whether the forwarding-stress profile was drawn (duplicated frames, a leader that
    /// refuses most proposals, sessions that expire while in use): the cluster is starved on
    /// purpose, so a scenario's `progress_within` is not held against it.
    pub forwarding_stress: bool,
    /// How clients' reads of named keys are served: client `i` uses `reads[i % len]`. In a
    /// quarter of the seeds some clients read stale: the session checker judges their reads
    /// ([`crate::sessions`]), the linearizability checker everything else.
    pub reads: Vec<Consistency>,
    /// Out of 1000 times a leader answers a client, how many it crashes at once (when crashes
    /// are enabled): before its followers learn what it committed, so the next leader's commit
    /// index lags what clients were told (0 in most seeds).
    pub crash_after_ack_per_mille: u64,
    /// When nodes snapshot and how they send snapshots: small thresholds, so that every run
    /// compacts its logs and sends snapshots to nodes that were down or cut off, in chunks small
    /// enough that transfers break and resume.
    pub snapshots: SnapshotSettings,
    /// Most nodes crashed or paused at once. Usually a minority, so the cluster can make
    /// progress through the chaos; in some seeds the whole cluster, to exercise the loss and
    /// recovery of a majority.
    pub max_down: u64,
}

impl FaultPlan {
    /// Draws the plan: in swarm mode (`faults == None`) each kind is enabled with probability
    /// one half (at least one), and rates vary from calm to harsh, so that different seeds
    /// explore different corners (TigerBeetle's swarm testing).
    ///
    /// Every draw is made whatever the options pin, and pinned values replace drawn ones only
    /// afterwards: pinning a setting to the value a seed drew reproduces that seed's run exactly
    /// (which is how `minimize` turns a failing seed into a scenario file).
    pub fn draw(options: &SimOptions, rng: &mut SimRng) -> FaultPlan {
        let mut swarm: BTreeSet<FaultKind> = FaultKind::ALL
            .into_iter()
            .filter(|_| rng.chance(500))
            .collect();
        if swarm.is_empty() {
            swarm.insert(*rng.pick(&FaultKind::ALL));
        }
        let enabled = options.faults.clone().unwrap_or(swarm);
        let latency_max_us = rng.between(1_000, 20_000);
        let mut network = NetworkOptions {
            latency_min_us: rng.between(100, latency_max_us / 2),
            latency_max_us,
            drop_per_mille: if rng.chance(500) { rng.below(30) } else { 0 },
            duplicate_per_mille: if rng.chance(500) { rng.below(30) } else { 0 },
            reorder_per_mille: if rng.chance(500) { rng.below(100) } else { 0 },
            reorder_delay_max_us: rng.between(1_000, 30_000),
        };
        let nemesis_min_us = rng.between(20_000, 300_000);
        let max_down = if rng.chance(150) {
            options.nodes
        } else {
            (options.nodes - 1) / 2
        };
        let fsync_us = if rng.chance(700) {
            (100, 2_000)
        } else {
            (1_000, rng.between(5_000, 80_000))
        };
        let max_entries_per_append = *rng.pick(&[1, 2, 4, 64, 256]);
        let max_inflight_appends = *rng.pick(&[1, 2, 8]);
        let max_pipeline = *rng.pick(&[1, 2, 4, 16]);
        let mut sessions = if rng.chance(300) {
            (options.clients as usize + 2, rng.between(20, 200))
        } else {
            (4_096, 1_000_000)
        };
        // Draws added since the first seeds were published come from a second stream, so that
        // every earlier draw (and with it every earlier seed's run, where the new settings
        // keep their old values) stays as it was.
        let mut later = SimRng::new(options.seed ^ LATER_DRAWS_SALT);
        let reply_window = later.chance(250).then(|| *later.pick(&[1, 2, 4]));
        let damage_per_mille = if later.chance(250) {
            later.between(100, 500)
        } else {
            0
        };
        let leader_crash_per_mille = if later.chance(400) {
            later.between(300, 1000)
        } else {
            0
        };
        let mut max_uncommitted_entries = later.chance(200).then(|| *later.pick(&[4, 16, 64]));
        // Forwarding under stress in some seeds: duplicated frames, a leader that refuses
        // proposals, sessions that expire while their commands are refused. A forward whose
        // copies meet different fates (one proposed, one refused) must not fool a follower.
        let forwarding_stress = later.chance(100);
        if forwarding_stress {
            network.duplicate_per_mille = later.between(200, 500);
            max_uncommitted_entries = Some(4);
            sessions = (options.clients as usize + 2, later.between(20, 60));
        }
        let transfer_per_mille = if later.chance(250) {
            later.between(100, 400)
        } else {
            0
        };
        let reads = later
            .pick(&[
                &[Consistency::Log][..],
                &[Consistency::Linearizable],
                &[Consistency::Lease],
                &[
                    Consistency::Linearizable,
                    Consistency::Lease,
                    Consistency::Log,
                ],
            ])
            .to_vec();
        let crash_after_ack_per_mille = if later.chance(250) {
            later.between(5, 50)
        } else {
            0
        };
        let snapshots = SnapshotSettings {
            entries: *later.pick(&[4, 8, 16, 32, 64]),
            trailing_entries: *later.pick(&[0, 1, 4, 16]),
            chunk_bytes: *later.pick(&[256, 1024, 4096, 65_536]),
        };
        let mut reads = reads;
        if later.chance(250) {
            reads.push(Consistency::Stale);
        }
        // A scenario pins its clients' reads, and keeps its workload: the draws below change
        // only swarm runs.
        let swarm = options.overrides.reads.is_none();
        let mut deafen_after_transfer = transfer_per_mille > 0
            && enabled.contains(&FaultKind::OneWay)
            && later.chance(500)
            && swarm;
        let mut readers = if later.chance(250) && swarm {
            later.between(1, options.clients.div_ceil(2))
        } else {
            0
        };
        // The handover-stress profile (one seed in eight): frequent transfers, each old leader
        // deafened as it hands over, half the clients reading under leases and nothing else.
        let mut transfer_per_mille = transfer_per_mille;
        if later.chance(125) && swarm {
            transfer_per_mille = later.between(300, 600);
            deafen_after_transfer = true;
            readers = options.clients.div_ceil(2);
            reads = vec![Consistency::Lease, Consistency::Linearizable];
        }
        let pinned = &options.overrides;
        FaultPlan {
            snapshots: pinned.snapshots.unwrap_or(snapshots),
            crash_after_ack_per_mille,
            reads: pinned.reads.clone().unwrap_or(reads),
            transfer_per_mille: pinned.transfer_per_mille.unwrap_or(transfer_per_mille),
            deafen_after_transfer: pinned
                .deafen_after_transfer
                .unwrap_or(deafen_after_transfer),
            readers: pinned.readers.unwrap_or(readers),
            forwarding_stress,
            max_uncommitted_entries,
            leader_crash_per_mille,
            reply_window,
            damage_per_mille,
            fsync_us: pinned.fsync_us.unwrap_or(fsync_us),
            max_entries_per_append: pinned
                .max_entries_per_append
                .unwrap_or(max_entries_per_append),
            max_inflight_appends: pinned.max_inflight_appends.unwrap_or(max_inflight_appends),
            max_pipeline,
            sessions,
            max_down,
            enabled,
            network: pinned.network.unwrap_or(network),
            nemesis_min_us,
            nemesis_max_us: nemesis_min_us + rng.between(50_000, 1_000_000),
            fault_max_us: rng.between(200_000, 3_000_000),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::FaultKind;
    use clap::ValueEnum;

    #[test]
    fn fault_kind_names_match_the_command_line_and_scenario_spellings() {
        for kind in FaultKind::ALL {
            let clap_name = kind
                .to_possible_value()
                .expect("every kind is a value")
                .get_name()
                .to_string();
            let serde_name = serde_json::to_value(kind).unwrap();
            assert_eq!(kind.name(), clap_name);
            assert_eq!(serde_json::Value::from(kind.name()), serde_name);
        }
    }
}
