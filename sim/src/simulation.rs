//! The discrete-event simulation of one seed: real `verity-core` nodes driven exactly as the
//! `Ready` contract says, on virtual time, over the simulated network and disks.
//!
//! A run has three phases, as TigerBeetle's VOPR does:
//!
//! 1. **Chaos**: clients invoke `ops` operations (or the phase reaches `chaos_max_us`) while
//!    the nemesis injects faults.
//! 2. **Settle**: every fault heals (crashed nodes restart, partitions close, the network
//!    calms); the cluster gets a few election timeouts to recover.
//! 3. **Liveness**: every client must complete `liveness_ops_per_client` more operations
//!    before a deadline. A cluster that stays leaderless or stuck fails here.
//! 4. **Convergence**: every running node must then apply everything its cluster committed
//!    before a deadline. A follower that cannot catch up (a leader that no longer holds the
//!    entries it needs and does not send its snapshot) fails here.
//!
//! Safety is checked continuously: the core's [`SafetyChecker`] after every `Ready`; the
//! protocol invariants of [`crate::invariants`] on every message sent, step and tick; every
//! committed entry must be durable (synced) on a majority of disks when it commits and again
//! after every crash; every reply must answer such an entry; every restart must recover its
//! WAL; replicas at the same applied index must agree on the running trail after every step
//! (the safety checker compares it) and on the whole state before every crash and at the end.
//! Afterwards the client history is checked for linearizability.

use crate::checker::{self, Budget, Report, Verdict};
use crate::client::{Action, Allowance, Client, Env, Liveness, Place};
use crate::disk::SimDisk;
use crate::history::{History, OpKind, OpOutcome, completion_event, invoke_event};
use crate::invariants::{self, Durable, Stepped, Watch};
use crate::network::Network;
use crate::options::{FaultPlan, SimOptions};
use crate::rng::SimRng;
use crate::sessions::{self, SessionLog, StaleReads};
use crate::trace::{self, Trace, What};
use serde::Serialize;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};
use std::fmt;
use verity_core::testing::{SafetyChecker, SafetyViolation};
use verity_core::wal;
use verity_core::{
    Config, LogIndex, Message, MessageBody, Node, NodeId, Outcome, ReadConsistency, Role,
    SessionToken, Term, codec, quorum,
};
use verity_engine::resp::Limits;
use verity_engine::{
    AttemptId, AttemptResult, Connection, ConnectionConfig, Host, Operation, PeerFrame,
    PersistQueue, Release, Routed, Router,
};

/// The simulated wall clocks start near this Unix time (2026-01-01), in milliseconds.
const CLOCK_EPOCH_MS: u64 = 1_767_225_600_000;
/// Most events a paused node buffers; beyond it, deliveries to it are dropped.
const PAUSED_INBOX_LIMIT: usize = 10_000;
/// How long after the heal the cluster gets to settle, in election timeouts.
const SETTLE_ELECTION_TIMEOUTS: u64 = 5;
/// Most events that may be pending at once. A correct cluster stays orders of magnitude below
/// (a few per node, message and client); beyond it the run is a message storm and fails.
const MAX_PENDING_EVENTS: usize = 1_000_000;
/// How long the liveness phase may last, in election timeouts.
const LIVENESS_ELECTION_TIMEOUTS: u64 = 200;

/// Why a run failed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "check", rename_all = "snake_case")]
pub enum Failure {
    /// A Raft safety property broke.
    Safety {
        /// The violation.
        violation: String,
    },
    /// A protocol invariant broke (see [`crate::invariants`]).
    Invariant(InvariantBroken),
    /// A committed entry was not durable on a majority of disks.
    Durability {
        /// The entry's index.
        index: u64,
        /// Nodes that had it durably.
        durable_on: u64,
    },
    /// A client was answered for an entry not durable on a majority.
    ReplyNotCommitted {
        /// The node that replied.
        node: u64,
        /// The entry's index.
        index: u64,
    },
    /// A node could not recover from its own disk.
    Recovery {
        /// The node.
        node: u64,
        /// The error.
        error: String,
    },
    /// Two replicas that applied the same log prefix hold different state.
    Divergence {
        /// The applied index.
        index: u64,
        /// The node first seen there and the one that differs.
        nodes: (u64, u64),
    },
    /// A stale read broke its client's session guarantees (see [`crate::sessions`]).
    Session {
        /// The read and the state it should have seen.
        violation: String,
    },
    /// The client history is not linearizable.
    Linearizability {
        /// Keys that failed, with their witnesses.
        report: Box<Report>,
    },
    /// The cluster did not serve clients after the faults healed.
    Liveness {
        /// What was still missing.
        reason: String,
    },
    /// A scenario's own expectation was not met.
    Expectation {
        /// Which, and by how much.
        reason: String,
    },
}

impl Failure {
    /// A short name of the check that failed.
    #[must_use]
    pub fn check(&self) -> &'static str {
        match self {
            Failure::Safety { .. } => "safety",
            Failure::Invariant(_) => "invariant",
            Failure::Durability { .. } => "durability",
            Failure::ReplyNotCommitted { .. } => "reply-not-committed",
            Failure::Recovery { .. } => "recovery",
            Failure::Divergence { .. } => "divergence",
            Failure::Session { .. } => "session",
            Failure::Linearizability { .. } => "linearizability",
            Failure::Liveness { .. } => "liveness",
            Failure::Expectation { .. } => "expectation",
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Safety { violation } => write!(f, "safety: {violation}"),
            Failure::Invariant(broken) => {
                write!(f, "invariant {}: {}", broken.invariant, broken.violation)
            }
            Failure::Durability { index, durable_on } => write!(
                f,
                "durability: index {index} was committed but is durable on only {durable_on} disks"
            ),
            Failure::ReplyNotCommitted { node, index } => write!(
                f,
                "n{node} answered a client for index {index}, which is not durable on a majority"
            ),
            Failure::Recovery { node, error } => write!(f, "n{node} cannot recover: {error}"),
            Failure::Divergence { index, nodes } => write!(
                f,
                "divergence: n{} and n{} applied the log up to index {index} but hold different state",
                nodes.0, nodes.1
            ),
            Failure::Session { violation } => write!(f, "session: {violation}"),
            Failure::Linearizability { report } => {
                let keys: Vec<&str> = report.violations.iter().map(|v| v.key.as_str()).collect();
                write!(f, "linearizability: keys {keys:?} have no linearization")
            }
            Failure::Liveness { reason } => write!(f, "liveness: {reason}"),
            Failure::Expectation { reason } => write!(f, "expectation: {reason}"),
        }
    }
}

/// A broken protocol invariant, as reported.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct InvariantBroken {
    /// The invariant's name.
    pub invariant: &'static str,
    /// What broke, with the evidence.
    pub violation: String,
}

impl From<invariants::Broken> for InvariantBroken {
    fn from(broken: invariants::Broken) -> InvariantBroken {
        InvariantBroken {
            invariant: broken.name(),
            violation: broken.to_string(),
        }
    }
}

/// A write handed to the disk and not yet durable.
#[derive(Debug)]
struct UnsyncedWrite {
    /// The disk position that makes it durable.
    upto: u64,
    /// The snapshot marker it starts with, if any.
    marker: Option<verity_core::SnapshotMeta>,
    /// The hard state it carries, if any.
    hard_state: Option<verity_core::HardState>,
    /// The index of its first entry, if any.
    first_index: Option<LogIndex>,
    /// The terms of its entries.
    terms: Vec<Term>,
}

impl UnsyncedWrite {
    /// Applies the write to what the disk durably holds, as recovery will read it.
    fn land_on(self, durable: &mut Durable) {
        if let Some(meta) = self.marker {
            durable.log_start = meta;
            durable.terms.clear();
        }
        if let Some(hard_state) = self.hard_state {
            durable.hard_state = hard_state;
        }
        if let Some(first) = self.first_index {
            let keep = first.0 - durable.log_start.index.0 - 1;
            durable.terms.truncate(usize::try_from(keep).expect("fits"));
            durable.terms.extend(self.terms);
        }
    }
}

/// Counters of one run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Events processed.
    pub events: u64,
    /// Peer messages sent.
    pub messages_sent: u64,
    /// Peer messages delivered.
    pub messages_delivered: u64,
    /// Faults injected, by kind.
    pub faults: BTreeMap<String, u64>,
    /// Terms in which some node became leader.
    pub elections: u64,
    /// Client operations that completed `ok`.
    pub ops_ok: u64,
    /// Client operations that completed `fail`.
    pub ops_fail: u64,
    /// Client operations that completed `info`.
    pub ops_info: u64,
    /// Virtual time at the end, microseconds.
    pub virtual_time_us: u64,
}

impl Stats {
    /// Faults injected in total.
    #[must_use]
    pub fn faults_total(&self) -> u64 {
        self.faults.values().sum()
    }
}

/// Everything a run produced.
#[derive(Debug)]
pub struct RunOutcome {
    /// The options it ran with.
    pub options: SimOptions,
    /// The fault plan drawn from the seed.
    pub plan: FaultPlan,
    /// The first check that failed, if any.
    pub failure: Option<Failure>,
    /// Linearizability verdict (`Undecided` is reported, not a failure).
    pub verdict: Option<Verdict>,
    /// How stale the stale reads were, if the run had any and they kept their session
    /// guarantees.
    pub stale_reads: Option<StaleReads>,
    /// Counters.
    pub stats: Stats,
    /// The trace (hash, and events if kept).
    pub trace: Trace,
    /// The client history.
    pub history: History,
}

/// Things that happen at a virtual time.
#[derive(Debug)]
pub(crate) enum Event {
    Tick {
        node: NodeId,
        incarnation: u64,
    },
    Deliver {
        from: NodeId,
        to: NodeId,
        frame: Vec<u8>,
    },
    SyncDone {
        node: NodeId,
        incarnation: u64,
        upto_bytes: usize,
    },
    /// Client `client` opens connection `connection` to `node`.
    Connect {
        node: NodeId,
        client: usize,
        connection: u64,
    },
    /// Bytes from a client on `connection` reach `node`.
    ToConnection {
        node: NodeId,
        connection: u64,
        bytes: Vec<u8>,
    },
    /// The client closes `connection` on `node`.
    Disconnect {
        node: NodeId,
        connection: u64,
    },
    /// Bytes from a node reach client `client` on `connection`.
    ToClient {
        client: usize,
        connection: u64,
        bytes: Vec<u8>,
    },
    /// The nemesis crashes leader `node` just after it answered clients.
    CrashAfterAck {
        node: NodeId,
        incarnation: u64,
    },
    /// `connection` of client `client` broke (its node crashed).
    ConnectionLost {
        client: usize,
        connection: u64,
    },
    /// `connection` of client `client` was refused (its node is down): nothing written on
    /// it reached a node.
    ConnectionRefused {
        client: usize,
        connection: u64,
    },
    /// Client `client` may have waited too long on `connection`: stuck unless it has
    /// received more than `replies` replies meanwhile.
    ClientStuck {
        client: usize,
        connection: u64,
        replies: u64,
    },
    ClientStart {
        client: usize,
    },
    Nemesis,
    HealFault {
        id: u64,
    },
    EndChaos,
    TimelineCheck,
    TimelineFire,
    Flap {
        node: NodeId,
        every_us: u64,
        until_us: u64,
        cut: bool,
    },
    StartLiveness,
    LivenessDeadline,
    ConvergenceDeadline,
}

impl Event {
    /// The node an event is delivered to, for the events a paused node must hold back.
    fn receiver(&self) -> Option<NodeId> {
        match self {
            Event::Deliver { to, .. } => Some(*to),
            Event::SyncDone { node, .. }
            | Event::Connect { node, .. }
            | Event::ToConnection { node, .. }
            | Event::Disconnect { node, .. } => Some(*node),
            _ => None,
        }
    }
}

struct Scheduled {
    at_us: u64,
    sequence: u64,
    event: Event,
}

impl PartialEq for Scheduled {
    fn eq(&self, other: &Self) -> bool {
        (self.at_us, self.sequence) == (other.at_us, other.sequence)
    }
}
impl Eq for Scheduled {}
impl PartialOrd for Scheduled {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Scheduled {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at_us, self.sequence).cmp(&(other.at_us, other.sequence))
    }
}

/// A node and its driver state.
pub(crate) struct SimNode {
    pub(crate) config: Config,
    pub(crate) node: Option<Node>,
    pub(crate) paused: bool,
    pub(crate) incarnation: u64,
    pub(crate) tick_us: u64,
    /// The node's wall clock at virtual time 0, milliseconds: clocks disagree by up to a few
    /// seconds, and each runs as fast as the node's ticks (up to 2% off).
    clock_origin_ms: u64,
    disk: SimDisk,
    sync_in_flight: bool,
    /// The last snapshot's records (its marker first) while not yet durable: where they start,
    /// the number of the first, and where they end. Once they are durable the log before them
    /// is deleted.
    trim_at: Option<(usize, u64, u64)>,
    /// The `Ready` contract over the disk (the node's own, from `verity-engine`): positions
    /// are the disk's byte offsets.
    persist: PersistQueue,
    /// Writes not yet durable, oldest first, for the durability checks.
    unsynced: VecDeque<UnsyncedWrite>,
    /// What the disk durably holds: the hard state and the log's terms.
    durable: Durable,
    /// The protocol invariants' memory of the live node.
    watch: Watch,
    /// Whether a bit of its synced WAL was flipped: the node may then refuse to start.
    damaged: bool,
    /// Whether it refused to start from its damaged disk; it stays down for good.
    refused: bool,
    pub(crate) deferred: Vec<Event>,
    /// Where the node sends its clients' operations (volatile: rebuilt at restart).
    router: Router<Origin>,
    /// Client connections served by this node, by connection id (lost at a crash).
    connections: BTreeMap<u64, SimConnection>,
    last_state: (Role, Term, LogIndex),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    Chaos,
    Settle,
    Liveness,
    Converge,
    Done,
}

/// One simulated run. Create with [`Simulation::new`], consume with [`Simulation::run`].
pub struct Simulation {
    pub(crate) options: SimOptions,
    pub(crate) plan: FaultPlan,
    pub(crate) rng: SimRng,
    pub(crate) now_us: u64,
    queue: BinaryHeap<Reverse<Scheduled>>,
    sequence: u64,
    pub(crate) network: Network,
    pub(crate) nodes: BTreeMap<NodeId, SimNode>,
    pub(crate) clients: Vec<Client>,
    pub(crate) history: History,
    checker: SafetyChecker,
    durability_checked: LogIndex,
    pub(crate) trace: Trace,
    pub(crate) phase: Phase,
    pub(crate) ops_invoked: u64,
    pub(crate) next_process: u64,
    /// The last connection id handed out.
    pub(crate) last_connection: u64,
    /// Per client: when the last bytes it wrote on its connection reach the node (a stream
    /// keeps its order, and the first bytes follow the connect).
    client_stream_at_us: Vec<u64>,
    /// The connection each history process's operation was sent on.
    pub(crate) process_connections: BTreeMap<u64, u64>,
    /// When each stale read in flight was sent, by process.
    stale_invoked_us: BTreeMap<u64, u64>,
    /// Per linearizable or lease read submitted on a node: the highest index committed when
    /// it was (its answer must read a state at least that new).
    read_floors: BTreeMap<(NodeId, Origin), LogIndex>,
    /// What the session checker judges: stale reads, commands that ran, commit progress.
    sessions: SessionLog,
    pub(crate) stats: Stats,
    pub(crate) failure: Option<Failure>,
    pub(crate) active_faults: BTreeMap<u64, crate::nemesis::ActiveFault>,
    pub(crate) next_fault_id: u64,
    pub(crate) leader_terms: BTreeMap<Term, NodeId>,
    /// The term of the leader of the healed cluster, once the liveness phase has one: no
    /// later election may depose it, since nothing fails any more.
    healed_leader_term: Option<Term>,
    /// The whole state machine's digest at each applied index where one was taken, and the
    /// first node seen there.
    state_digests: BTreeMap<LogIndex, (NodeId, u64)>,
    pub(crate) timeline: crate::timeline::Progress,
    /// Each node's condition as last noted in the trace (runs that keep their trace only).
    pub(crate) conditions: BTreeMap<NodeId, crate::conditions::Condition>,
}

impl Simulation {
    /// Sets up a run: draws the fault plan, builds the nodes and clients.
    #[must_use]
    pub fn new(options: SimOptions) -> Simulation {
        assert!(options.nodes >= 1 && options.clients >= 1 && options.keys >= 1);
        let mut rng = SimRng::new(options.seed);
        let plan = FaultPlan::draw(&options, &mut rng);
        let voters: Vec<NodeId> = (1..=options.nodes).map(NodeId).collect();
        let mut nodes = BTreeMap::new();
        for &id in &voters {
            let mut config = Config::new(id, voters.iter().copied(), rng.next_u64());
            config.election_timeout_ticks = options.election_timeout_ticks;
            config.heartbeat_interval_ticks = options.heartbeat_interval_ticks;
            config.max_entries_per_append = plan.max_entries_per_append;
            config.max_inflight_appends = plan.max_inflight_appends;
            config.snapshot_entries = plan.snapshots.entries;
            config.snapshot_trailing_entries = plan.snapshots.trailing_entries;
            config.snapshot_chunk_bytes = plan.snapshots.chunk_bytes;
            config.lease_read_ms = config.safe_lease_ms(options.tick_us, CLOCK_DRIFT_PER_MILLE);
            (
                config.sessions.max_sessions,
                config.sessions.idle_expiry_entries,
            ) = plan.sessions;
            if let Some(window) = plan.reply_window {
                config.sessions.reply_window = window;
            }
            if let Some(limit) = plan.max_uncommitted_entries {
                config.max_uncommitted_entries = limit;
            }
            #[cfg(feature = "bug-catalogue")]
            {
                config.bug = options.bug;
            }
            // Clocks drift: each node's tick is up to 2% off.
            let tick_us = options.tick_us
                * rng.between(1000 - CLOCK_DRIFT_PER_MILLE, 1000 + CLOCK_DRIFT_PER_MILLE)
                / 1000;
            let clock_origin_ms = CLOCK_EPOCH_MS + rng.between(0, 4_000);
            let node = Node::new(config.clone()).expect("simulator configurations are valid");
            let last_state = (node.role(), node.term(), node.commit_index());
            let watch = Watch::new(&node);
            let router = Router::new(&node, options.forward_timeout_ms(), rng.next_u64());
            nodes.insert(
                id,
                SimNode {
                    config,
                    node: Some(node),
                    paused: false,
                    incarnation: 0,
                    tick_us,
                    clock_origin_ms,
                    disk: SimDisk::default(),
                    sync_in_flight: false,
                    trim_at: None,
                    persist: PersistQueue::new(0, 0),
                    unsynced: VecDeque::new(),
                    durable: Durable::default(),
                    watch,
                    damaged: false,
                    refused: false,
                    deferred: Vec::new(),
                    router,
                    connections: BTreeMap::new(),
                    last_state,
                },
            );
        }
        let clients = (0..options.clients as usize)
            .map(|index| {
                let reads = plan.reads[index % plan.reads.len()];
                let reader = (index as u64) < plan.readers;
                Client::new(
                    index,
                    options.liveness_ops_per_client,
                    options.seed,
                    reads,
                    reader,
                )
            })
            .collect();
        let network = Network::new(options.nodes, plan.network);
        Simulation {
            next_process: 0,
            last_connection: 0,
            client_stream_at_us: vec![0; options.clients as usize],
            process_connections: BTreeMap::new(),
            stale_invoked_us: BTreeMap::new(),
            read_floors: BTreeMap::new(),
            sessions: SessionLog::default(),
            trace: Trace::new(options.keep_trace),
            options,
            plan,
            rng,
            now_us: 0,
            queue: BinaryHeap::new(),
            sequence: 0,
            network,
            nodes,
            clients,
            history: History::default(),
            checker: SafetyChecker::new(),
            durability_checked: LogIndex(0),
            phase: Phase::Chaos,
            ops_invoked: 0,
            stats: Stats::default(),
            failure: None,
            active_faults: BTreeMap::new(),
            next_fault_id: 0,
            leader_terms: BTreeMap::new(),
            healed_leader_term: None,
            state_digests: BTreeMap::new(),
            timeline: crate::timeline::Progress::default(),
            conditions: BTreeMap::new(),
        }
    }

    /// Runs to the end (or the first failure) and checks the history.
    #[must_use]
    pub fn run(mut self) -> RunOutcome {
        trace::set_virtual_now_us(0);
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            let tick_us = self.nodes[&id].tick_us;
            let first = self.rng.between(1, tick_us);
            self.schedule(
                first,
                Event::Tick {
                    node: id,
                    incarnation: 0,
                },
            );
        }
        for client in 0..self.clients.len() {
            let start = self.rng.between(0, self.options.election_timeout_us());
            self.schedule(start, Event::ClientStart { client });
        }
        self.schedule(self.options.chaos_max_us, Event::EndChaos);
        self.start_timeline();
        if !self.plan.enabled.is_empty() {
            let first = self
                .rng
                .between(self.plan.nemesis_min_us, self.plan.nemesis_max_us);
            self.schedule(first, Event::Nemesis);
        }
        while self.failure.is_none() && self.phase != Phase::Done {
            let Some(Reverse(next)) = self.queue.pop() else {
                self.fail(Failure::Liveness {
                    reason: "the simulation ran out of events".to_string(),
                });
                break;
            };
            debug_assert!(next.at_us >= self.now_us, "time never goes back");
            if next.at_us > self.options.max_virtual_time_us {
                self.fail(Failure::Liveness {
                    reason: format!(
                        "the run did not finish within {} virtual seconds ({:?} phase, {} of {} operations invoked)",
                        self.options.max_virtual_time_us / 1_000_000,
                        self.phase,
                        self.ops_invoked,
                        self.options.ops
                    ),
                });
                break;
            }
            self.now_us = next.at_us;
            trace::set_virtual_now_us(self.now_us);
            self.stats.events += 1;
            if self.queue.len() > MAX_PENDING_EVENTS {
                self.fail(Failure::Liveness {
                    reason: format!(
                        "message storm: more than {MAX_PENDING_EVENTS} events pending at {} ms",
                        self.now_us / 1000
                    ),
                });
                break;
            }
            self.handle(next.event);
            if self.options.keep_trace {
                self.note_conditions();
            }
            self.check_timeline();
            if self.phase == Phase::Converge && self.lagging().is_none() {
                self.phase = Phase::Done;
            }
        }
        self.stats.virtual_time_us = self.now_us;
        let mut verdict = None;
        if let Some(max) = self.options.expect.max_elections
            && self.stats.elections > max
        {
            let elections = self.stats.elections;
            self.fail(Failure::Expectation {
                reason: format!(
                    "{elections} terms had a leader; the scenario allows at most {max}"
                ),
            });
        }
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            self.compare_state(id);
        }
        let stale_reads = self.check_sessions();
        if self.failure.is_none() {
            let mut ops = self
                .history
                .operations()
                .expect("the simulator records well-formed histories");
            for op in &mut ops {
                op.connection = self.process_connections.get(&op.process).copied();
            }
            let report = checker::check(&ops, &mut Budget::steps(self.options.check_steps));
            verdict = Some(report.verdict);
            if report.verdict == Verdict::NotLinearizable && self.options.expect.linearizable {
                self.failure = Some(Failure::Linearizability {
                    report: Box::new(report),
                });
            }
        }
        RunOutcome {
            options: self.options,
            plan: self.plan,
            failure: self.failure,
            verdict,
            stale_reads,
            stats: self.stats,
            trace: self.trace,
            history: self.history,
        }
    }

    /// Checks the stale reads' session guarantees against the committed log, if the run had
    /// stale reads and no failure yet; returns how stale they were.
    fn check_sessions(&mut self) -> Option<StaleReads> {
        if self.failure.is_some() || !self.sessions.has_stale_reads() {
            return None;
        }
        let config = &self
            .nodes
            .values()
            .next()
            .expect("a cluster has nodes")
            .config;
        let machine = verity_core::testing::replica_state_machine(config);
        let checker = &self.checker;
        let checked = sessions::check(
            &self.sessions,
            machine,
            checker.max_committed(),
            |index| checker.committed(index),
            |index| checker.applied_trail(index),
        );
        match checked {
            Ok(Ok(report)) => return Some(report),
            Ok(Err(violation)) => self.fail(Failure::Session {
                violation: violation.to_string(),
            }),
            Err(error) => self.fail(Failure::Safety {
                violation: error.to_string(),
            }),
        }
        None
    }

    pub(crate) fn schedule(&mut self, delay_us: u64, event: Event) {
        self.sequence += 1;
        self.queue.push(Reverse(Scheduled {
            at_us: self.now_us + delay_us,
            sequence: self.sequence,
            event,
        }));
    }

    pub(crate) fn fail(&mut self, failure: Failure) {
        if self.failure.is_none() {
            tracing::error!(time_us = self.now_us, %failure, "check failed");
            self.failure = Some(failure);
        }
    }

    pub(crate) fn record(&mut self, what: What) {
        if self.options.keep_trace {
            tracing::info!(target: "verity_sim", "{what}");
        }
        self.trace.record(self.now_us, what);
    }

    fn handle(&mut self, event: Event) {
        if let Some(node) = event.receiver() {
            let sim_node = self.nodes.get_mut(&node).expect("known node");
            if sim_node.paused {
                // A paused process still has its socket buffers and its disk: deliveries queue
                // (bounded), syncs always complete.
                if sim_node.deferred.len() < PAUSED_INBOX_LIMIT
                    || matches!(event, Event::SyncDone { .. })
                {
                    sim_node.deferred.push(event);
                }
                return;
            }
        }
        match event {
            Event::Tick { node, incarnation } => self.on_tick(node, incarnation),
            Event::Deliver { from, to, frame } => self.on_deliver(from, to, &frame),
            Event::SyncDone {
                node,
                incarnation,
                upto_bytes,
            } => self.on_sync_done(node, incarnation, upto_bytes),
            Event::Connect {
                node,
                client,
                connection,
            } => self.on_connect(node, client, connection),
            Event::ToConnection {
                node,
                connection,
                bytes,
            } => self.on_connection_bytes(node, connection, &bytes),
            Event::Disconnect { node, connection } => {
                let sim_node = self.nodes.get_mut(&node).expect("known node");
                sim_node.connections.remove(&connection);
            }
            Event::ToClient {
                client,
                connection,
                bytes,
            } => self.client_step(client, |c, env| c.on_bytes(env, connection, &bytes)),
            Event::ConnectionLost { client, connection } => {
                self.client_step(client, |c, env| c.on_connection_lost(env, connection));
            }
            Event::ConnectionRefused { client, connection } => {
                self.client_step(client, |c, env| c.on_connection_refused(env, connection));
            }
            Event::ClientStuck {
                client,
                connection,
                replies,
            } => self.client_step(client, |c, env| c.on_stuck(env, connection, replies)),
            Event::ClientStart { client } => self.on_client_start(client),
            Event::Nemesis => self.on_nemesis(),
            Event::HealFault { id } => self.heal_fault(id),
            Event::CrashAfterAck { node, incarnation } => self.crash_after_ack(node, incarnation),
            Event::EndChaos => self.end_chaos(),
            Event::TimelineCheck => {}
            Event::TimelineFire => self.fire_timeline_step(),
            Event::Flap {
                node,
                every_us,
                until_us,
                cut,
            } => self.flap(node, every_us, until_us, cut),
            Event::StartLiveness => self.start_liveness(),
            Event::LivenessDeadline => self.on_liveness_deadline(),
            Event::ConvergenceDeadline => self.on_convergence_deadline(),
        }
    }

    /// Replays what a node missed while paused, now that it runs again.
    pub(crate) fn replay_deferred(&mut self, id: NodeId) {
        let deferred = std::mem::take(&mut self.nodes.get_mut(&id).expect("known node").deferred);
        for event in deferred {
            self.handle(event);
        }
    }

    fn on_tick(&mut self, id: NodeId, incarnation: u64) {
        let sim_node = self.nodes.get_mut(&id).expect("known node");
        if sim_node.incarnation != incarnation || sim_node.node.is_none() {
            return;
        }
        let clock_ms = self.clock_ms(id);
        let monotonic_ms = self.monotonic_ms(id);
        let sim_node = self.nodes.get_mut(&id).expect("known node");
        if !sim_node.paused {
            let node = sim_node.node.as_mut().expect("live");
            node.set_clock_ms(clock_ms);
            node.set_monotonic_ms(monotonic_ms);
            node.tick();
            if let Err(broken) = sim_node.watch.after_tick(node) {
                self.fail(Failure::Invariant(broken.into()));
                return;
            }
        }
        self.schedule_tick(id);
        self.process(id);
        let network = &self.network;
        let sim_node = self.nodes.get_mut(&id).expect("known node");
        let mut routed = Vec::new();
        sim_node
            .router
            .expire(clock_ms, |peer| network.connected(id, peer), &mut routed);
        self.route(id, routed);
        let connections: Vec<u64> = self.nodes[&id].connections.keys().copied().collect();
        for connection in connections {
            self.serve(id, connection);
        }
    }

    /// Node `id`'s monotonic clock: its wall clock from its origin (it runs on while the node
    /// is paused, as a real process's does while stopped).
    fn monotonic_ms(&self, id: NodeId) -> u64 {
        self.clock_ms(id) - self.nodes[&id].clock_origin_ms
    }

    /// Node `id`'s wall clock: its origin, advancing as fast as its ticks (so clocks drift).
    fn clock_ms(&self, id: NodeId) -> u64 {
        let sim_node = &self.nodes[&id];
        let elapsed_ms = u128::from(self.now_us) * u128::from(self.options.tick_us)
            / u128::from(sim_node.tick_us)
            / 1000;
        sim_node.clock_origin_ms + u64::try_from(elapsed_ms).expect("virtual time fits")
    }

    /// Schedules node `id`'s next tick, for its current incarnation, one tick from now.
    fn schedule_tick(&mut self, id: NodeId) {
        let sim_node = &self.nodes[&id];
        let (tick_us, incarnation) = (sim_node.tick_us, sim_node.incarnation);
        self.schedule(
            tick_us,
            Event::Tick {
                node: id,
                incarnation,
            },
        );
    }

    fn on_deliver(&mut self, from: NodeId, to: NodeId, frame: &[u8]) {
        if !self.network.connected(from, to) {
            return;
        }
        let monotonic_ms = self.monotonic_ms(to);
        let Some(node) = self.nodes.get_mut(&to).and_then(|n| n.node.as_mut()) else {
            return;
        };
        let frame_value = match codec::decode::<PeerFrame>(frame) {
            Ok(decoded) => decoded.value,
            Err(error) => unreachable!("the simulated network does not corrupt frames: {error}"),
        };
        // As the node's driver does before every input: a leader resumed from a pause must
        // not judge its lease by the time it was stopped at.
        node.set_monotonic_ms(monotonic_ms);
        self.stats.messages_delivered += 1;
        let crc = u32::from_le_bytes(frame[4..8].try_into().expect("frame header"));
        let kind = kind_of(&frame_value);
        let mut routed = Vec::new();
        match frame_value {
            PeerFrame::Raft(message) => {
                let stepped = Stepped::of(&message, node);
                node.step(message);
                let sim_node = self.nodes.get_mut(&to).expect("known node");
                let node = sim_node.node.as_ref().expect("checked live");
                if let Err(broken) = sim_node.watch.after_step(&stepped, node) {
                    self.fail(Failure::Invariant(broken.into()));
                    return;
                }
            }
            other => {
                let clock_ms = self.clock_ms(to);
                let sim_node = self.nodes.get_mut(&to).expect("known node");
                let node = sim_node.node.as_mut().expect("checked live");
                sim_node
                    .router
                    .on_frame(node, from, other, clock_ms, &mut routed);
            }
        }
        self.record(What::Deliver {
            from: from.0,
            to: to.0,
            kind,
            crc,
        });
        self.process(to);
        self.route(to, routed);
    }

    /// Replicas that applied the same prefix must hold the same state: compares the whole
    /// state machine of node `id` (by digest) with the first one seen at the same applied
    /// index. Run on every node just before it crashes and on every live node at the end;
    /// after every step only the cheap running trail is compared.
    fn compare_state(&mut self, id: NodeId) {
        let Some(node) = self.nodes[&id].node.as_ref() else {
            return;
        };
        let machine = node.state_machine();
        let (applied, digest) = (machine.applied_index(), machine.digest());
        if let Some(failure) = agree(&mut self.state_digests, id, applied, digest) {
            self.fail(failure);
        }
    }

    /// Time for client `index` to send (see [`Client::start`]).
    fn on_client_start(&mut self, index: usize) {
        if self.failure.is_some() {
            return;
        }
        let allowance = match self.phase {
            Phase::Chaos if self.ops_invoked < self.options.ops => {
                Allowance::Chaos(self.options.ops - self.ops_invoked)
            }
            Phase::Liveness => Allowance::Liveness,
            _ => Allowance::Nothing,
        };
        let written: Vec<u64> = self.clients.iter().map(Client::written).collect();
        self.client_step(index, |client, env| client.start(env, allowance, &written));
    }

    /// Runs one step of client `index` with what it may use of the run, and carries out the
    /// actions it returns.
    fn client_step(
        &mut self,
        index: usize,
        step: impl FnOnce(&mut Client, &mut Env<'_>) -> Vec<Action>,
    ) {
        let mut env = Env {
            rng: &mut self.rng,
            options: &self.options,
            max_pipeline: self.plan.max_pipeline,
            next_process: &mut self.next_process,
            last_connection: &mut self.last_connection,
        };
        let actions = step(&mut self.clients[index], &mut env);
        self.carry_out(index, actions);
    }

    /// Carries out what client `index` asked, in order: the network decides latencies and
    /// keeps each connection's bytes in order; the history and trace record operations.
    fn carry_out(&mut self, index: usize, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Connect { node, connection } => {
                    let delay = self.network.latency(&mut self.rng, node, node);
                    self.client_stream_at_us[index] = self.now_us + delay;
                    self.schedule(
                        delay,
                        Event::Connect {
                            node,
                            client: index,
                            connection,
                        },
                    );
                }
                Action::Write {
                    node,
                    connection,
                    bytes,
                } => {
                    let latency = self.network.latency(&mut self.rng, node, node);
                    let arrival = (self.now_us + latency).max(self.client_stream_at_us[index]);
                    self.client_stream_at_us[index] = arrival;
                    self.schedule(
                        arrival - self.now_us,
                        Event::ToConnection {
                            node,
                            connection,
                            bytes,
                        },
                    );
                }
                Action::Disconnect { node, connection } => {
                    self.schedule(0, Event::Disconnect { node, connection });
                }
                Action::Wake { delay_us } => {
                    self.schedule(delay_us, Event::ClientStart { client: index });
                }
                Action::WatchStuck {
                    delay_us,
                    connection,
                    replies,
                } => self.schedule(
                    delay_us,
                    Event::ClientStuck {
                        client: index,
                        connection,
                        replies,
                    },
                ),
                Action::Invoke {
                    process,
                    key,
                    kind,
                    connection,
                    stale,
                } => {
                    self.ops_invoked += 1;
                    self.process_connections.insert(process, connection);
                    if stale {
                        self.stale_invoked_us.insert(process, self.now_us);
                    } else {
                        self.history.events.push(invoke_event(
                            process,
                            &key,
                            &kind,
                            self.now_us * 1000,
                        ));
                    }
                    self.record(What::Invoke {
                        process,
                        op: format!("{kind:?} {key}"),
                    });
                    self.end_chaos_when_done();
                }
                Action::Complete {
                    process,
                    key,
                    kind,
                    outcome,
                    error,
                    liveness,
                    place,
                } => {
                    if liveness == Liveness::Missed {
                        self.fail(Failure::Liveness {
                            reason: format!(
                                "client {index}'s {kind:?} {key} ended with an unknown outcome after the heal"
                            ),
                        });
                    }
                    self.note_session(index, process, (&key, &kind), &outcome, place);
                    if place != Place::StaleRead {
                        self.history.events.push(completion_event(
                            process,
                            &key,
                            &kind,
                            &outcome,
                            self.now_us * 1000,
                        ));
                    }
                    self.record(What::Complete {
                        process,
                        outcome: match error {
                            Some(error) => format!("{outcome:?} ({error})"),
                            None => format!("{outcome:?}"),
                        },
                    });
                    match outcome {
                        OpOutcome::Ok(_) | OpOutcome::Each(_) => self.stats.ops_ok += 1,
                        OpOutcome::Fail => self.stats.ops_fail += 1,
                        OpOutcome::Info => self.stats.ops_info += 1,
                    }
                    if liveness != Liveness::NotCounted {
                        self.maybe_finish();
                    }
                }
                Action::Note(description) => self.record(What::Fault { description }),
            }
        }
    }

    /// Notes what client `client`'s operation `process` tells the session checker: a
    /// command of the log that ran, or a stale read's values.
    fn note_session(
        &mut self,
        client: usize,
        process: u64,
        (key, kind): (&str, &OpKind),
        outcome: &OpOutcome,
        place: Place,
    ) {
        match (place, outcome) {
            (Place::Numbered { session, number }, OpOutcome::Ok(_) | OpOutcome::Each(_)) => {
                self.sessions.ran(process, client, session, number);
            }
            (Place::StaleRead, _) => {
                let invoked_us = self
                    .stale_invoked_us
                    .remove(&process)
                    .expect("a stale read was invoked");
                let read = match (kind, outcome) {
                    (OpKind::Get, OpOutcome::Ok(value)) => {
                        Some((vec![key.to_string()], vec![value.clone()]))
                    }
                    (OpKind::Atomic(parts), OpOutcome::Each(each)) => parts
                        .iter()
                        .zip(each)
                        .map(|(part, outcome)| match (&part.kind, outcome) {
                            (OpKind::Get, OpOutcome::Ok(value)) => {
                                Some((part.key.clone(), value.clone()))
                            }
                            _ => None,
                        })
                        .collect::<Option<Vec<_>>>()
                        .map(|pairs| pairs.into_iter().unzip()),
                    _ => None,
                };
                if let Some((keys, values)) = read {
                    let times = (invoked_us, self.now_us);
                    self.sessions
                        .stale_read(process, client, keys, values, times);
                }
            }
            _ => {}
        }
    }

    /// A client connects to node `id`: the node serves it with a real engine connection.
    fn on_connect(&mut self, id: NodeId, client: usize, connection: u64) {
        let token = SessionToken(
            (u128::from(self.rng.next_u64()) << 64 | u128::from(self.rng.next_u64())).to_le_bytes(),
        );
        let config = ConnectionConfig {
            limits: Limits {
                max_args: 1_024,
                max_arg_bytes: 1 << 20,
            },
            pipeline_depth: MAX_PIPELINE as usize,
            request_timeout_ms: self.options.connection_budget_us() / 1000,
            max_transaction_bytes: 1 << 20,
            users: std::sync::Arc::new(verity_engine::auth::Users::open()),
            output_limit: verity_engine::OutputLimit::default(),
            consistency: self.clients[client].reads(),
        };
        let sim_node = self.nodes.get_mut(&id).expect("known node");
        if sim_node.node.is_none() {
            self.schedule(0, Event::ConnectionRefused { client, connection });
            return;
        }
        let served = Connection::new(connection, config, token, true);
        #[cfg(feature = "bug-catalogue")]
        let served = served.with_bug(self.options.bug);
        sim_node.connections.insert(
            connection,
            SimConnection {
                client,
                delivered_at_us: 0,
                connection: served,
            },
        );
    }

    /// Client bytes arrive on `connection` of node `id`.
    fn on_connection_bytes(&mut self, id: NodeId, connection: u64, bytes: &[u8]) {
        let sim_node = self.nodes.get_mut(&id).expect("known node");
        let Some(served) = sim_node.connections.get_mut(&connection) else {
            return;
        };
        served.connection.receive(bytes);
        self.serve(id, connection);
    }

    /// Lets connection `connection` of node `id` do what it can now: parse, submit through
    /// the router, and send its replies to its client.
    fn serve(&mut self, id: NodeId, connection: u64) {
        let clock_ms = self.clock_ms(id);
        let monotonic_ms = self.monotonic_ms(id);
        let sim_node = self.nodes.get_mut(&id).expect("known node");
        let (Some(node), false) = (sim_node.node.as_mut(), sim_node.paused) else {
            return;
        };
        let Some(served) = sim_node.connections.get_mut(&connection) else {
            return;
        };
        let host = SimHost {
            role: node.role(),
            leader: node.leader(),
            hand_over: std::cell::Cell::new(None),
        };
        served.connection.process(clock_ms, &host);
        node.set_monotonic_ms(monotonic_ms);
        let mut routed = Vec::new();
        let committed = self.checker.max_committed();
        while let Some(submission) = served.connection.poll_submission(clock_ms) {
            let origin = (connection, submission.attempt);
            if let Operation::Read { consistency, .. } = &submission.op
                && *consistency != ReadConsistency::Stale
            {
                self.read_floors.insert((id, origin), committed);
            }
            sim_node
                .router
                .submit(node, submission.op, origin, clock_ms, &mut routed);
        }
        let output = served.connection.take_output();
        let client = served.client;
        let mut delay = 0;
        if !output.is_empty() {
            let latency = self.network.latency(&mut self.rng, id, id);
            let arrival = (self.now_us + latency).max(served.delivered_at_us);
            served.delivered_at_us = arrival;
            delay = arrival - self.now_us;
        }
        if served.connection.is_closed() {
            sim_node.connections.remove(&connection);
            self.schedule(delay, Event::ConnectionLost { client, connection });
        }
        if !output.is_empty() {
            self.schedule(
                delay,
                Event::ToClient {
                    client,
                    connection,
                    bytes: output,
                },
            );
        }
        self.process(id);
        self.route(id, routed);
        if let Some(to) = host.hand_over.take() {
            self.transfer_leadership(to);
        }
    }

    /// Node `id` just answered clients: if it leads, the nemesis may crash it at once (see
    /// [`FaultPlan::crash_after_ack_per_mille`]).
    fn maybe_crash_after_ack(&mut self, id: NodeId) {
        let sim_node = &self.nodes[&id];
        let leads = sim_node
            .node
            .as_ref()
            .is_some_and(|node| node.role() == Role::Leader);
        let incarnation = sim_node.incarnation;
        if leads
            && self.phase == Phase::Chaos
            && self.plan.crash_after_ack_per_mille > 0
            && self.rng.chance(self.plan.crash_after_ack_per_mille)
        {
            self.schedule(
                0,
                Event::CrashAfterAck {
                    node: id,
                    incarnation,
                },
            );
        }
    }

    /// Carries out what node `id`'s router decided.
    fn route(&mut self, id: NodeId, routed: Vec<Routed<Origin>>) {
        let mut touched = Vec::new();
        for routed in routed {
            match routed {
                Routed::Answer((connection, attempt), result) => {
                    if let Some(committed) = self.read_floors.remove(&(id, (connection, attempt)))
                        && let AttemptResult::Applied { index, .. } = result
                        && index < committed
                    {
                        let broken = invariants::Broken::ReadBelowCommit {
                            node: id,
                            index,
                            committed,
                        };
                        self.fail(Failure::Invariant(broken.into()));
                    }
                    let clock_ms = self.clock_ms(id);
                    let sim_node = self.nodes.get_mut(&id).expect("known node");
                    if let Some(served) = sim_node.connections.get_mut(&connection) {
                        served.connection.on_result(attempt, result, clock_ms);
                        touched.push(connection);
                    }
                }
                Routed::Send(to, frame) => self.send_frame(id, to, &frame),
            }
        }
        touched.dedup();
        for connection in touched {
            self.serve(id, connection);
        }
    }

    fn on_sync_done(&mut self, id: NodeId, incarnation: u64, upto_bytes: usize) {
        let sim_node = self.nodes.get_mut(&id).expect("known node");
        if sim_node.incarnation != incarnation || sim_node.node.is_none() {
            return;
        }
        sim_node.sync_in_flight = false;
        sim_node.disk.sync(upto_bytes);
        let synced = sim_node.disk.synced_bytes() as u64;
        // The snapshot's marker record is durable: the log before it goes, as the node
        // deletes its WAL segments.
        if let Some((start, sequence, end)) = sim_node.trim_at
            && end <= synced
        {
            sim_node.disk.trim_before(start, sequence);
            sim_node.trim_at = None;
        }
        while sim_node
            .unsynced
            .front()
            .is_some_and(|write| write.upto <= synced)
        {
            let write = sim_node.unsynced.pop_front().expect("checked");
            write.land_on(&mut sim_node.durable);
        }
        let released = sim_node.persist.on_durable(synced);
        for release in released {
            self.release(id, release);
        }
        self.start_sync_if_needed(id);
        self.process(id);
    }

    fn start_sync_if_needed(&mut self, id: NodeId) {
        let sim_node = self.nodes.get_mut(&id).expect("known node");
        if sim_node.sync_in_flight || sim_node.disk.synced_bytes() >= sim_node.disk.written_bytes()
        {
            return;
        }
        sim_node.sync_in_flight = true;
        let (incarnation, upto_bytes) = (sim_node.incarnation, sim_node.disk.written_bytes());
        let (fastest, slowest) = self.plan.fsync_us;
        let latency = self.rng.between(fastest, slowest);
        self.schedule(
            latency,
            Event::SyncDone {
                node: id,
                incarnation,
                upto_bytes,
            },
        );
    }

    /// Carries out work the `Ready` contract freed: send, then acknowledge.
    fn release(&mut self, id: NodeId, release: Release) {
        for message in release.messages {
            self.send(message);
        }
        let sim_node = self.nodes.get_mut(&id).expect("known node");
        if let (Some(ack), Some(node)) = (release.ack, sim_node.node.as_mut()) {
            node.on_persisted(ack);
        }
    }

    /// Sends a Raft message, once its promises are checked durable.
    fn send(&mut self, message: Message) {
        let (from, to) = (message.from, message.to);
        let sim_node = &self.nodes[&from];
        let node = sim_node.node.as_ref().expect("only live nodes send");
        if let Err(broken) = invariants::check_promises(&message, &sim_node.durable, node) {
            self.fail(Failure::Invariant(broken.into()));
            return;
        }
        let hands_over = matches!(message.body, MessageBody::TimeoutNow);
        self.send_frame(from, to, &PeerFrame::Raft(message));
        if hands_over && self.plan.deafen_after_transfer {
            self.deafen(from);
        }
    }

    /// Sends `frame` from `from` to `to` over the simulated network (with its faults).
    fn send_frame(&mut self, from: NodeId, to: NodeId, frame: &PeerFrame) {
        self.stats.messages_sent += 1;
        let frame = codec::encode(frame).expect("simulated frames fit in a frame");
        let delays = self.network.route(&mut self.rng, from, to);
        let mut frame = Some(frame);
        let copies = delays.len();
        for (i, delay) in delays.into_iter().enumerate() {
            let bytes = if i + 1 == copies {
                frame.take().expect("last copy")
            } else {
                frame.clone().expect("copy")
            };
            self.schedule(
                delay,
                Event::Deliver {
                    from,
                    to,
                    frame: bytes,
                },
            );
        }
    }

    /// Drains a node's `Ready`s as the contract says, checking safety on each.
    pub(crate) fn process(&mut self, id: NodeId) {
        let mut routed = Vec::new();
        let mut answered = false;
        loop {
            let sim_node = self.nodes.get_mut(&id).expect("known node");
            let Some(node) = sim_node.node.as_mut() else {
                return;
            };
            let Some(ready) = node.ready() else {
                break;
            };
            if let Err(violation) = self.checker.observe(node, &ready.entries) {
                self.fail_safety(violation);
                return;
            }
            self.sessions
                .committed(self.now_us, self.checker.max_committed());
            let mut write = UnsyncedWrite {
                upto: 0,
                marker: ready.snapshot.as_ref().map(|s| s.meta),
                hard_state: ready.hard_state,
                first_index: ready.entries.first().map(|e| e.index),
                terms: ready.entries.iter().map(|e| e.term).collect(),
            };
            let accepted = sim_node
                .persist
                .accept(ready)
                .expect("the simulator's entries fit in a frame");
            let snapshot_written = accepted.snapshot.is_some();
            if let Some(snapshot) = accepted.snapshot {
                sim_node.durable.snapshot = Some(snapshot.meta);
                sim_node.disk.replace_snapshot(snapshot);
            }
            if !accepted.records.is_empty() {
                let start = sim_node.disk.written_bytes();
                sim_node.disk.write(&accepted.records);
                write.upto = sim_node.persist.written();
                if snapshot_written {
                    sim_node.trim_at = Some((start, accepted.first_sequence, write.upto));
                }
                sim_node.unsynced.push_back(write);
            }
            debug_assert_eq!(
                sim_node.persist.written(),
                sim_node.disk.written_bytes() as u64
            );
            for message in accepted.early_messages {
                self.send(message);
            }
            answered |= !accepted.replies.is_empty();
            for reply in accepted.replies {
                self.deliver_reply(id, reply, &mut routed);
            }
            for release in accepted.released {
                self.release(id, release);
            }
            self.start_sync_if_needed(id);
        }
        if answered {
            self.maybe_crash_after_ack(id);
        }
        let sim_node = self.nodes.get_mut(&id).expect("known node");
        let node = sim_node.node.as_ref().expect("checked above");
        if let Err(broken) = sim_node.watch.after_ready(node) {
            self.fail(Failure::Invariant(broken.into()));
            return;
        }
        if let Err(violation) = self.checker.observe(node, &[]) {
            self.fail_safety(violation);
            return;
        }
        self.sessions
            .committed(self.now_us, self.checker.max_committed());
        let state = (node.role(), node.term(), node.commit_index());
        if state != sim_node.last_state {
            self.nodes.get_mut(&id).expect("known node").last_state = state;
            if state.0 == Role::Leader && self.leader_terms.insert(state.1, id).is_none() {
                self.stats.elections += 1;
                if self.phase == Phase::Liveness {
                    if let Some(term) = self.healed_leader_term {
                        self.fail(Failure::Liveness {
                            reason: format!(
                                "{id} won term {} after the heal, deposing the leader of term {term} in a healthy cluster",
                                state.1
                            ),
                        });
                        return;
                    }
                    self.healed_leader_term = Some(state.1);
                }
            }
            self.record(What::NodeState {
                node: id.0,
                role: role_name(state.0),
                term: state.1.0,
                commit: state.2.0,
            });
        }
        self.check_durability();
        let sim_node = self.nodes.get_mut(&id).expect("known node");
        let node = sim_node.node.as_ref().expect("checked above");
        sim_node.router.after_step(node, &mut routed);
        self.route(id, routed);
    }

    fn fail_safety(&mut self, violation: SafetyViolation) {
        self.fail(Failure::Safety {
            violation: violation.to_string(),
        });
    }

    /// Nodes whose disks durably hold `term` at `index` (every node holds the empty prefix).
    fn durable_copies(&self, index: LogIndex, term: Term) -> u64 {
        if index == LogIndex(0) {
            return self.nodes.len() as u64;
        }
        self.nodes
            .values()
            .filter(|n| n.durable.holds(index, term))
            .count() as u64
    }

    fn majority(&self) -> u64 {
        quorum::majority(self.nodes.len()) as u64
    }

    /// Every newly committed entry must be durable on a majority of disks.
    fn check_durability(&mut self) {
        let committed = self.checker.max_committed();
        while self.durability_checked < committed {
            let index = self.durability_checked.next();
            if !self.durable_on_majority(index) {
                return;
            }
            self.durability_checked = index;
        }
    }

    /// Every committed entry must still be durable on a majority after a crash settled what
    /// each disk holds (the unsynced writes that survived it land on the durable state).
    fn recheck_durability(&mut self) {
        let mut index = LogIndex(1);
        while index <= self.durability_checked && self.durable_on_majority(index) {
            index = index.next();
        }
    }

    /// Whether committed `index` is durable on a majority; fails the run if not.
    fn durable_on_majority(&mut self, index: LogIndex) -> bool {
        let term = self
            .checker
            .committed(index)
            .expect("committed prefix is contiguous")
            .term;
        let durable_on = self.durable_copies(index, term);
        if durable_on < self.majority() {
            self.fail(Failure::Durability {
                index: index.0,
                durable_on,
            });
            return false;
        }
        true
    }

    /// Checks that a reply answers an entry durable on a majority, then hands it to the
    /// node's router.
    fn deliver_reply(
        &mut self,
        id: NodeId,
        reply: verity_core::ClientReply,
        routed: &mut Vec<Routed<Origin>>,
    ) {
        let sim_node = &self.nodes[&id];
        if let Outcome::Applied(_) = &reply.outcome {
            let node = sim_node
                .node
                .as_ref()
                .expect("replies come from live nodes");
            // An entry compacted away is below a snapshot, so committed: the durability checks
            // of committed entries cover it.
            let term = node.log().term_at(reply.index);
            if term.is_some_and(|term| self.durable_copies(reply.index, term) < self.majority()) {
                self.fail(Failure::ReplyNotCommitted {
                    node: id.0,
                    index: reply.index.0,
                });
                return;
            }
        }
        let sim_node = self.nodes.get_mut(&id).expect("known node");
        sim_node.router.on_replies(vec![reply], routed);
    }

    /// Crashes node `id`: volatile state lost, unsynced writes to their seeded fate.
    pub(crate) fn crash(&mut self, id: NodeId) {
        self.compare_state(id);
        let sim_node = self.nodes.get_mut(&id).expect("known node");
        if sim_node.node.is_none() {
            return;
        }
        sim_node.node = None;
        sim_node.paused = false;
        sim_node.incarnation += 1;
        sim_node.sync_in_flight = false;
        sim_node.trim_at = None;
        sim_node.deferred.clear();
        let lost: Vec<(usize, u64)> = std::mem::take(&mut sim_node.connections)
            .into_iter()
            .map(|(connection, served)| (served.client, connection))
            .collect();
        let (fate, intact) = sim_node.disk.crash(&mut self.rng);
        // What the next process must find: every write that survived whole.
        for write in std::mem::take(&mut sim_node.unsynced) {
            if write.upto <= intact as u64 {
                write.land_on(&mut sim_node.durable);
            }
        }
        for (client, connection) in lost {
            self.schedule(0, Event::ConnectionLost { client, connection });
        }
        self.record(What::Fault {
            description: format!("crash n{} (unsynced tail {fate:?})", id.0),
        });
        self.recheck_durability();
        self.maybe_damage(id);
    }

    /// Damages the crashed node's synced WAL, as often as the plan says, while fewer than a
    /// minority of nodes are damaged.
    fn maybe_damage(&mut self, id: NodeId) {
        let damaged = self.nodes.values().filter(|n| n.damaged).count() as u64;
        if self.plan.damage_per_mille == 0
            || damaged + 1 > (self.options.nodes - 1) / 2
            || !self.rng.chance(self.plan.damage_per_mille)
        {
            return;
        }
        let sim_node = self.nodes.get_mut(&id).expect("known node");
        let Some(damage) = sim_node.disk.damage(&mut self.rng) else {
            return;
        };
        sim_node.damaged = true;
        self.count_fault("disk-damage");
        self.record(What::Fault {
            description: format!("damage n{}'s synced WAL: {damage:?}", id.0),
        });
    }

    /// Restarts a crashed node through the real WAL recovery.
    pub(crate) fn restart(&mut self, id: NodeId) {
        let sim_node = self.nodes.get_mut(&id).expect("known node");
        if sim_node.node.is_some() || sim_node.refused {
            return;
        }
        let (bytes, first) = (sim_node.disk.contents(), sim_node.disk.first_sequence());
        #[cfg(feature = "bug-catalogue")]
        let recovery = wal::recover_with_bug(bytes, first, self.options.bug);
        #[cfg(not(feature = "bug-catalogue"))]
        let recovery = wal::recover_continuing(verity_core::Recovered::default(), first, bytes);
        let recovery = match recovery {
            Ok(recovery) => recovery,
            Err(error) if sim_node.damaged => {
                sim_node.refused = true;
                self.count_fault("disk-damage-refused");
                self.record(What::Fault {
                    description: format!(
                        "n{} refuses to start from its damaged WAL: {error}",
                        id.0
                    ),
                });
                return;
            }
            Err(error) => {
                let error = error.to_string();
                self.fail(Failure::Recovery { node: id.0, error });
                return;
            }
        };
        let mut recovered = recovery.recovered;
        recovered.snapshot = sim_node.disk.snapshot().cloned();
        let found = Durable {
            hard_state: recovered.hard_state,
            snapshot: recovered.snapshot.as_ref().map(|s| s.meta),
            log_start: recovered.log_start,
            terms: recovered.entries.iter().map(|e| e.term).collect(),
        };
        if found != sim_node.durable {
            let error = format!(
                "recovery read {found:?}, but the disk durably held {:?}: durable records were \
                 lost without an error",
                sim_node.durable
            );
            self.fail(Failure::Recovery { node: id.0, error });
            return;
        }
        sim_node.disk.truncate(recovery.valid_bytes as usize);
        debug_assert_eq!(sim_node.disk.synced_bytes(), sim_node.disk.written_bytes());
        sim_node.persist =
            PersistQueue::new(sim_node.disk.written_bytes() as u64, recovery.next_sequence);
        let mut config = sim_node.config.clone();
        config.seed = config
            .seed
            .wrapping_add(sim_node.incarnation.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        match Node::restore(config, recovered) {
            Ok(node) => {
                sim_node.watch = Watch::new(&node);
                sim_node.router = Router::new(
                    &node,
                    self.options.forward_timeout_ms(),
                    self.rng.next_u64(),
                );
                sim_node.node = Some(node);
            }
            Err(error) => {
                let error = error.to_string();
                self.fail(Failure::Recovery { node: id.0, error });
                return;
            }
        }
        self.record(What::Fault {
            description: format!(
                "restart n{} ({} records recovered, tail {:?})",
                id.0, recovery.records, recovery.tail
            ),
        });
        self.schedule_tick(id);
        self.process(id);
    }

    /// Ends the chaos phase once every chaos operation is invoked and every timeline step
    /// has fired.
    pub(crate) fn end_chaos_when_done(&mut self) {
        if self.ops_invoked >= self.options.ops && self.timeline_done() {
            self.end_chaos();
        }
    }

    /// Ends the chaos phase: heal everything and let the cluster settle.
    pub(crate) fn end_chaos(&mut self) {
        if self.phase != Phase::Chaos {
            return;
        }
        self.phase = Phase::Settle;
        self.heal_all();
        let settle = SETTLE_ELECTION_TIMEOUTS * 2 * self.options.election_timeout_us();
        self.schedule(settle, Event::StartLiveness);
    }

    fn start_liveness(&mut self) {
        self.phase = Phase::Liveness;
        self.healed_leader_term = self
            .nodes
            .values()
            .filter_map(|n| n.node.as_ref())
            .filter(|node| node.role() == Role::Leader)
            .map(Node::term)
            .max();
        let deadline = self.liveness_deadline_us();
        self.schedule(deadline, Event::LivenessDeadline);
        for client in 0..self.clients.len() {
            if self.clients[client].is_idle() {
                self.schedule(0, Event::ClientStart { client });
            }
        }
    }

    /// How long after the settle period clients have to finish: a scenario's
    /// `progress_within`, unless the forwarding-stress profile starves the cluster on purpose
    /// (then, as without one, a bound that only a stuck cluster misses).
    fn liveness_deadline_us(&self) -> u64 {
        let stuck = LIVENESS_ELECTION_TIMEOUTS * self.options.election_timeout_us();
        match self.options.expect.progress_within_us {
            Some(within) if !self.plan.forwarding_stress => within,
            _ => stuck,
        }
    }

    /// Pauses node `id`: it stops taking steps and its inputs wait (see [`Simulation::resume`]).
    pub(crate) fn pause(&mut self, id: NodeId) {
        self.nodes.get_mut(&id).expect("known node").paused = true;
    }

    /// Cuts (or, with `cut` false, restores) every link between a node of `left` and one of
    /// `right`, both ways.
    pub(crate) fn cut_between(&mut self, left: &[NodeId], right: &[NodeId], cut: bool) {
        for &a in left {
            for &b in right {
                self.network.set_cut(a, b, cut);
                self.network.set_cut(b, a, cut);
            }
        }
    }

    /// Adds `extra_us` of latency both ways between `slow` and each node of `others` (0
    /// removes it).
    pub(crate) fn slow_between(&mut self, slow: NodeId, others: &[NodeId], extra_us: u64) {
        for &other in others {
            self.network.set_extra_latency(slow, other, extra_us);
            self.network.set_extra_latency(other, slow, extra_us);
        }
    }

    /// Lets a paused node run again, replaying what it missed.
    pub(crate) fn resume(&mut self, id: NodeId) {
        let sim_node = self.nodes.get_mut(&id).expect("known node");
        if !sim_node.paused {
            return;
        }
        sim_node.paused = false;
        self.record(What::Fault {
            description: format!("resume {id}"),
        });
        self.replay_deferred(id);
        self.process(id);
    }

    fn on_liveness_deadline(&mut self) {
        if self.phase != Phase::Liveness {
            return;
        }
        let waiting = self.clients.iter().filter(|c| !c.finished()).count();
        let leader = self
            .nodes
            .values()
            .filter_map(|n| n.node.as_ref())
            .find(|n| n.role() == Role::Leader)
            .map(|n| n.id().to_string());
        self.fail(Failure::Liveness {
            reason: format!(
                "{waiting} clients still had operations pending {} ms after the heal (leader: {})",
                (self.liveness_deadline_us()
                    + 2 * SETTLE_ELECTION_TIMEOUTS * self.options.election_timeout_us())
                    / 1000,
                leader.unwrap_or_else(|| "none".to_string())
            ),
        });
    }

    /// Called when a client finishes its work; once all have, every running node must catch
    /// up with what its cluster committed, within [`LIVENESS_ELECTION_TIMEOUTS`].
    pub(crate) fn maybe_finish(&mut self) {
        if self.phase == Phase::Liveness && self.clients.iter().all(Client::finished) {
            self.phase = Phase::Converge;
            let deadline = LIVENESS_ELECTION_TIMEOUTS * self.options.election_timeout_us();
            self.schedule(deadline, Event::ConvergenceDeadline);
        }
    }

    /// The first running node that has not applied everything committed on any running node:
    /// its id, what it applied, and that commit index.
    fn lagging(&self) -> Option<(NodeId, LogIndex, LogIndex)> {
        let running = || self.nodes.values().filter_map(|n| n.node.as_ref());
        let committed = running().map(Node::commit_index).max()?;
        running()
            .map(|node| (node.id(), node.state_machine().applied_index()))
            .find(|&(_, applied)| applied < committed)
            .map(|(id, applied)| (id, applied, committed))
    }

    fn on_convergence_deadline(&mut self) {
        if self.phase != Phase::Converge {
            return;
        }
        if let Some((id, applied, committed)) = self.lagging() {
            self.fail(Failure::Liveness {
                reason: format!(
                    "{id} applied only up to index {applied} of the {committed} committed, {} ms \
                     after every client finished",
                    LIVENESS_ELECTION_TIMEOUTS * self.options.election_timeout_us() / 1000
                ),
            });
        }
    }

    /// Counts one fault of `kind` (a [`crate::options::FaultKind`]'s name, or a disk fault) in the stats.
    pub(crate) fn count_fault(&mut self, kind: &str) {
        *self.stats.faults.entry(kind.to_string()).or_default() += 1;
    }
}

fn kind_of(frame: &PeerFrame) -> &'static str {
    match frame {
        PeerFrame::Raft(message) => match message.body {
            MessageBody::RequestVote { .. } => "RequestVote",
            MessageBody::RequestVoteResponse { .. } => "RequestVoteResponse",
            MessageBody::AppendEntries { .. } => "AppendEntries",
            MessageBody::AppendEntriesResponse(_) => "AppendEntriesResponse",
            MessageBody::PreVote { .. } => "PreVote",
            MessageBody::PreVoteResponse { .. } => "PreVoteResponse",
            MessageBody::TimeoutNow => "TimeoutNow",
            MessageBody::TransferVote { .. } => "TransferVote",
            MessageBody::ReadRound { .. } => "ReadRound",
            MessageBody::ReadRoundAck { .. } => "ReadRoundAck",
            MessageBody::ReadIndexRequest { .. } => "ReadIndexRequest",
            MessageBody::ReadIndexResponse { .. } => "ReadIndexResponse",
            MessageBody::InstallSnapshot { .. } => "InstallSnapshot",
            MessageBody::SnapshotChunkAck { .. } => "SnapshotChunkAck",
        },
        PeerFrame::Forward { .. } => "Forward",
        PeerFrame::ForwardReply { .. } => "ForwardReply",
    }
}

/// Who waits for a routed operation on a simulated node: a connection and its attempt.
type Origin = (u64, AttemptId);

/// How far a node's clock may run fast or slow, in thousandths: each node's tick is drawn
/// within it, and leases are shortened by it.
const CLOCK_DRIFT_PER_MILLE: u64 = 20;

/// The most commands a simulated client pipelines (the bound itself is drawn per seed).
pub const MAX_PIPELINE: u64 = 16;

/// A client connection served by a simulated node.
pub(crate) struct SimConnection {
    /// The client on the other end.
    client: usize,
    /// When the last bytes sent to the client arrive: a connection is a stream, so later
    /// bytes never overtake earlier ones.
    delivered_at_us: u64,
    /// The engine's connection: the same code that serves clients in production.
    connection: Connection,
}

/// What a simulated connection may ask of its node (the workload never sends INFO or
/// FAILOVER). A `FAILOVER` is noted here and carried out once the connection is served.
struct SimHost {
    role: Role,
    leader: Option<NodeId>,
    hand_over: std::cell::Cell<Option<Option<NodeId>>>,
}

impl Host for SimHost {
    fn info(&self) -> String {
        format!("# Raft\r\nrole:{}\r\n", role_name(self.role))
    }

    fn leader(&self) -> Option<(u64, Option<String>)> {
        self.leader.map(|leader| (leader.0, None))
    }

    fn role(&self) -> &'static str {
        role_name(self.role)
    }

    fn settings(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }

    fn hand_over(&self, to: Option<u64>) -> Result<(), String> {
        if self.role != Role::Leader {
            return Err("FAILOVER is for the leader".into());
        }
        self.hand_over.set(Some(to.map(NodeId)));
        Ok(())
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Follower => "follower",
        Role::PreCandidate => "pre-candidate",
        Role::Candidate => "candidate",
        Role::Leader => "leader",
    }
}

/// Records that node `id` holds `digest` at `applied`, the first time any node is seen there;
/// a divergence if an earlier node held another digest at the same index.
fn agree(
    seen: &mut BTreeMap<LogIndex, (NodeId, u64)>,
    id: NodeId,
    applied: LogIndex,
    digest: u64,
) -> Option<Failure> {
    let &mut (first, expected) = seen.entry(applied).or_insert((id, digest));
    (expected != digest).then_some(Failure::Divergence {
        index: applied.0,
        nodes: (first.0, id.0),
    })
}
