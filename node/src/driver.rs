//! The driver: one task that owns the core [`Node`] and carries out what it asks.
//!
//! Inputs arrive on channels (peer frames from the transport, client submissions from the
//! server, completed WAL batches from the writer) and as ticks of a timer. After each burst of
//! inputs the driver takes the node's [`verity_core::Ready`] and carries out what the engine's
//! [`PersistQueue`] (the `Ready` contract, the same code the simulator runs) makes of it:
//!
//! 1. `early_messages` go to the transport at once (a leader replicates while it syncs);
//! 2. the WAL records go to the group-commit writer;
//! 3. `replies` are delivered to their waiting clients, local or forwarded, at once;
//! 4. when the writer reports the WAL durable up to a position, the work the queue frees is
//!    carried out in order: messages sent, then the ack given to [`Node::on_persisted`].
//!
//! Where each client operation goes (proposed here, or forwarded to the leader) and how its
//! answer returns is decided by the engine's [`Router`]; the driver carries out what it
//! says. The router stamps entries with this node's wall clock (entries carry their leader's
//! time, which decides expiry). The driver publishes a [`NodeStatus`] snapshot for `INFO` at
//! every tick and change of role.

use crate::storage::{Durable, Job, WalFigures, WalStats, WalWriter};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};
use verity_core::{LogIndex, Message, Node, NodeId, Role, Term};
use verity_engine::{AttemptResult, Operation, PeerFrame, PersistQueue, Release, Routed, Router};
use verity_net::{Inbound, PeerState, Transport};

/// How long a forwarded operation waits for the leader's answer before it is answered
/// [`AttemptResult::Unknown`] (and retried by its connection). A safety net only: a forward
/// whose leader's connection drops, or whose leader changes, is answered at once. A proposal
/// made on this node never times out (see [`Router`]): a slow answer is not an error.
pub const FORWARD_TIMEOUT_MS: u64 = 10_000;

/// Most inputs handled before the driver drains the node's `Ready` (bounds latency while
/// still batching a burst into one WAL record).
const MAX_INPUTS_PER_READY: usize = 512;

/// The answer to a submission.
pub type Submitted = AttemptResult;

/// A snapshot of the node for `INFO` and `LEADER`.
#[derive(Clone, Debug)]
pub struct NodeStatus {
    /// This node.
    pub id: NodeId,
    /// Its role.
    pub role: Role,
    /// Its term.
    pub term: Term,
    /// The leader it knows of.
    pub leader: Option<NodeId>,
    /// The leader's client address, if known.
    pub leader_client_addr: Option<String>,
    /// Commit index.
    pub commit: LogIndex,
    /// Applied index.
    pub applied: LogIndex,
    /// Last log index.
    pub last_index: LogIndex,
    /// Index of the latest snapshot (0 without one).
    pub snapshot_index: LogIndex,
    /// Snapshots installed from a leader since the node started.
    pub snapshots_installed: u64,
    /// Transport state and (on a leader) the match index of each peer.
    pub peers: BTreeMap<NodeId, (PeerState, Option<LogIndex>)>,
    /// The WAL writer's counters so far.
    pub wal: WalFigures,
    /// Submissions waiting for an answer here.
    pub waiting: usize,
    /// Open exactly-once sessions (the same on every replica at the same applied index).
    pub sessions: usize,
    /// Bytes of write replies the sessions keep for retries (reads' replies are never kept).
    pub reply_cache_bytes: u64,
    /// Elections this node started (it became a candidate) since it started.
    pub elections_started: u64,
    /// Elections this node won (it became the leader) since it started.
    pub elections_won: u64,
}

/// Where the answer to one submission goes: the submitter's results channel, tagged with
/// the submitter's attempt number.
#[derive(Debug)]
pub struct Answer {
    results: mpsc::UnboundedSender<(u64, Submitted)>,
    attempt: u64,
}

impl Answer {
    fn send(self, result: Submitted) {
        // The submitter may be gone (its client disconnected): nobody is waiting then.
        let _ = self.results.send((self.attempt, result));
    }
}

#[derive(Debug)]
enum Request {
    /// Operations to propose, each answered on the results channel under its attempt number.
    Submit(Vec<(Operation, Answer)>),
    Status {
        reply: oneshot::Sender<NodeStatus>,
    },
    /// Hand leadership to `to` (the best live peer if `None`), if this node leads; answered
    /// with the peer it hands over to, if asked.
    HandOver {
        to: Option<NodeId>,
        reply: Option<oneshot::Sender<Option<NodeId>>>,
    },
}

/// A cloneable handle for submitting to the driver.
#[derive(Clone, Debug)]
pub struct DriverHandle {
    requests: mpsc::Sender<Request>,
    status: watch::Receiver<NodeStatus>,
}

impl DriverHandle {
    /// Proposes each `(attempt, op)` (on the leader, via forwarding if need be), in order, in
    /// one message to the driver; the fate of each arrives on `results` as `(attempt,
    /// result)`. If the driver has stopped, every op is answered [`AttemptResult::Stopped`].
    pub async fn submit(
        &self,
        ops: Vec<(u64, Operation)>,
        results: &mpsc::UnboundedSender<(u64, Submitted)>,
    ) {
        let attempts: Vec<u64> = ops.iter().map(|(attempt, _)| *attempt).collect();
        let batch = ops
            .into_iter()
            .map(|(attempt, op)| {
                let results = results.clone();
                (op, Answer { results, attempt })
            })
            .collect();
        if self.requests.send(Request::Submit(batch)).await.is_err() {
            for attempt in attempts {
                let _ = results.send((attempt, AttemptResult::Stopped));
            }
        }
    }

    /// The node's current status, or `None` if the driver has stopped.
    pub async fn status(&self) -> Option<NodeStatus> {
        let (reply, answer) = oneshot::channel();
        self.requests.send(Request::Status { reply }).await.ok()?;
        answer.await.ok()
    }

    /// If this node leads, starts handing its leadership to the peer the core chooses
    /// ([`Node::handover_target`]) and returns that peer; `None` if it does not lead, no peer
    /// is live, or the driver has stopped. Proposals are refused until the transfer ends
    /// (the new leader takes over, or an election timeout passes).
    pub async fn hand_over(&self) -> Option<NodeId> {
        let (reply, answer) = oneshot::channel();
        let request = Request::HandOver {
            to: None,
            reply: Some(reply),
        };
        self.requests.send(request).await.ok()?;
        answer.await.ok().flatten()
    }

    /// `FAILOVER`: asks the driver, without waiting, to hand leadership to `to` (the best live
    /// peer if `None`). `Err` if this node does not lead (as of its last published status),
    /// `to` is not another voter, or the driver cannot take the request now.
    pub fn request_hand_over(&self, to: Option<NodeId>) -> Result<(), String> {
        let status = self.latest_status();
        if status.role != Role::Leader {
            return Err(match status.leader {
                Some(leader) => format!(
                    "FAILOVER is for the leader: send it to node {leader} (LEADER names its address)"
                ),
                None => "FAILOVER is for the leader, and no leader is known right now".into(),
            });
        }
        if let Some(to) = to
            && !status.peers.contains_key(&to)
        {
            return Err(format!("node {to} is not another voter of this cluster"));
        }
        self.requests
            .try_send(Request::HandOver { to, reply: None })
            .map_err(|_| "the node is busy or stopping; try again".to_string())
    }

    /// Waits until this node no longer leads, or `within` passes; returns whether it
    /// stopped leading.
    pub async fn wait_until_not_leader(&self, within: Duration) -> bool {
        let mut status = self.status.clone();
        tokio::time::timeout(
            within,
            status.wait_for(|status| status.role != Role::Leader),
        )
        .await
        .is_ok_and(|changed| changed.is_ok())
    }

    /// The status the driver published last (at most a tick old).
    #[must_use]
    pub fn latest_status(&self) -> NodeStatus {
        self.status.borrow().clone()
    }
}

/// The task that owns the node; see the module docs and [`Driver::run`].
pub struct Driver {
    node: Node,
    transport: Transport,
    writer: WalWriter,
    wal_stats: Arc<WalStats>,
    requests: mpsc::Receiver<Request>,
    tick: Duration,
    router: Router<Answer>,
    /// What [`Driver::routed`] is to carry out (kept to reuse its allocation).
    routed: Vec<Routed<Answer>>,
    /// The `Ready` contract over the WAL writer's stream of records (positions: bytes handed
    /// to this writer since it started).
    persist: PersistQueue,
    last_role: Role,
    last_leader: Option<NodeId>,
    /// Elections started and won since the node started.
    elections: Elections,
    published: watch::Sender<NodeStatus>,
    /// The origin of the node's monotonic clock (leases are measured on it).
    started: Instant,
}

/// The other channels the driver reads.
pub struct DriverInputs {
    /// Peer frames from the transport.
    pub inbound: mpsc::Receiver<Inbound>,
    /// How far the WAL is durable after each batch (or the writer's fatal error).
    pub persisted: mpsc::UnboundedReceiver<Durable>,
    /// Becomes `true` when the node should stop.
    pub shutdown: watch::Receiver<bool>,
}

/// One input of the driver loop.
enum Input {
    Tick,
    Peer(Inbound),
    Request(Request),
    Persisted(Durable),
    Shutdown,
}

impl Driver {
    /// Wraps a started node, transport and writer, with `persist` over the recovered log
    /// (position 0 of the writer's stream, everything before it synced); `tick` is the length of a Raft tick and
    /// `queue` bounds the submissions waiting to enter the driver. Returns the driver and a
    /// handle for clients.
    #[must_use]
    pub fn new(
        node: Node,
        transport: Transport,
        (writer, wal_stats): (WalWriter, Arc<WalStats>),
        persist: PersistQueue,
        tick: Duration,
        queue: usize,
    ) -> (Driver, DriverHandle) {
        let (handle, requests) = mpsc::channel(queue.max(1));
        let (last_role, last_leader) = (node.role(), node.leader());
        // Forward ids start at the node's seed, drawn from the OS at every start, so a
        // restarted node does not reuse its previous incarnation's ids.
        let first_forward_id = node.config().seed;
        let router = Router::new(&node, FORWARD_TIMEOUT_MS, first_forward_id);
        let (published, status) = watch::channel(status_of(
            &node,
            &transport,
            &router,
            &wal_stats,
            Elections::default(),
        ));
        let driver = Driver {
            node,
            transport,
            writer,
            wal_stats,
            requests,
            tick,
            router,
            routed: Vec::new(),
            persist,
            last_role,
            elections: Elections::default(),
            last_leader,
            published,
            started: Instant::now(),
        };
        (
            driver,
            DriverHandle {
                requests: handle,
                status,
            },
        )
    }

    /// Runs until shutdown is signalled (then waits for in-flight WAL syncs) or the WAL
    /// writer fails (an error: the node can no longer make promises and must stop).
    pub async fn run(mut self, mut inputs: DriverInputs) -> Result<(), std::io::Error> {
        let mut ticker = tokio::time::interval(self.tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut ticks: u64 = 0;
        loop {
            let input = tokio::select! {
                biased;
                changed = inputs.shutdown.changed() => {
                    if changed.is_err() || *inputs.shutdown.borrow() { Input::Shutdown } else { continue }
                }
                Some(done) = inputs.persisted.recv() => Input::Persisted(done),
                Some(inbound) = inputs.inbound.recv() => Input::Peer(inbound),
                Some(request) = self.requests.recv() => Input::Request(request),
                _ = ticker.tick() => Input::Tick,
            };
            let mut next = Some(input);
            let mut handled = 0;
            while let Some(input) = next.take() {
                // Before every input, not only ticks: a leader resumed from a stop (SIGSTOP, a
                // long pause) handles the peer messages queued meanwhile first, and must judge
                // its lease by the time now, not the time it stopped at.
                self.node.set_monotonic_ms(self.monotonic_ms());
                match input {
                    Input::Shutdown => {
                        self.stop();
                        return Ok(());
                    }
                    Input::Tick => {
                        self.node.tick();
                        ticks += 1;
                        if ticks.is_multiple_of(10) {
                            self.expire();
                        }
                        self.published.send_replace(self.status());
                    }
                    Input::Peer(inbound) => self.on_peer(inbound),
                    Input::Request(request) => self.on_request(request),
                    Input::Persisted(done) => self.on_persisted(done?),
                }
                handled += 1;
                if handled < MAX_INPUTS_PER_READY {
                    next = inputs
                        .persisted
                        .try_recv()
                        .ok()
                        .map(Input::Persisted)
                        .or_else(|| inputs.inbound.try_recv().ok().map(Input::Peer))
                        .or_else(|| self.requests.try_recv().ok().map(Input::Request));
                }
            }
            self.drain_ready().await?;
            self.router.after_step(&self.node, &mut self.routed);
            self.carry_out_routed();
            self.on_role_change();
        }
    }

    fn stop(mut self) {
        tracing::info!(
            node = self.node.id().0,
            "[SHUTDOWN] driver stopping; finishing WAL syncs"
        );
        self.router.shut_down(&mut self.routed);
        self.carry_out_routed();
        let writer = self.writer;
        tokio::task::block_in_place(|| writer.finish());
    }

    fn on_peer(&mut self, inbound: Inbound) {
        match inbound.frame {
            PeerFrame::Raft(message) => self.node.step(message),
            frame => {
                let clock_ms = unix_time_ms();
                self.router.on_frame(
                    &mut self.node,
                    inbound.from,
                    frame,
                    clock_ms,
                    &mut self.routed,
                );
                self.carry_out_routed();
            }
        }
    }

    fn on_request(&mut self, request: Request) {
        match request {
            Request::Status { reply } => {
                let _ = reply.send(self.status());
            }
            Request::HandOver { to, reply } => {
                let target = to.or_else(|| self.node.handover_target());
                let started = match target {
                    Some(to) => match self.node.transfer_leadership(to) {
                        Ok(()) => Some(to),
                        Err(error) => {
                            tracing::warn!(%error, "[ELECTION] leadership transfer not started");
                            None
                        }
                    },
                    None => None,
                };
                if let Some(reply) = reply {
                    let _ = reply.send(started);
                }
            }
            Request::Submit(batch) => {
                let clock_ms = unix_time_ms();
                for (op, answer) in batch {
                    self.router
                        .submit(&mut self.node, op, answer, clock_ms, &mut self.routed);
                }
                self.carry_out_routed();
            }
        }
    }

    /// Milliseconds since the driver started, on the monotonic clock (which runs on while
    /// the process is stopped).
    fn monotonic_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Carries out what the router decided: answers to submitters, frames to peers.
    fn carry_out_routed(&mut self) {
        for routed in std::mem::take(&mut self.routed) {
            match routed {
                Routed::Answer(answer, result) => answer.send(result),
                Routed::Send(to, frame) => self.send(to, frame),
            }
        }
    }

    fn on_persisted(&mut self, durable: u64) {
        for release in self.persist.on_durable(durable) {
            self.release(release);
        }
    }

    /// Carries out work the `Ready` contract freed: send, then acknowledge.
    fn release(&mut self, release: Release) {
        for message in release.messages {
            self.send_raft(message);
        }
        if let Some(ack) = release.ack {
            self.node.on_persisted(ack);
        }
    }

    /// Carries out the node's `Ready` (see the module docs).
    async fn drain_ready(&mut self) -> Result<(), std::io::Error> {
        let Some(ready) = self.node.ready() else {
            return Ok(());
        };
        let accepted = self.persist.accept(ready).map_err(|error| {
            std::io::Error::other(format!(
                "a single log entry cannot be written to the WAL: {error}"
            ))
        })?;
        for message in accepted.early_messages {
            self.send_raft(message);
        }
        self.router.on_replies(accepted.replies, &mut self.routed);
        self.carry_out_routed();
        for release in accepted.released {
            self.release(release);
        }
        if accepted.records.is_empty() {
            return Ok(());
        }
        self.writer
            .submit(Job {
                snapshot: accepted.snapshot,
                records: accepted.records,
                first_sequence: accepted.first_sequence,
            })
            .await
            .map_err(|stopped| std::io::Error::other(stopped.to_string()))
    }

    /// Logs a change of role or leader and publishes the status.
    fn on_role_change(&mut self) {
        let (role, leader) = (self.node.role(), self.node.leader());
        if role == self.last_role && leader == self.last_leader {
            return;
        }
        tracing::info!(
            node = self.node.id().0,
            term = self.node.term().0,
            ?role,
            leader = leader.map(|l| l.0),
            "[ELECTION] {}",
            match role {
                Role::Leader => "became leader".to_string(),
                Role::PreCandidate =>
                    "asking whether it could win an election (pre-vote)".to_string(),
                Role::Candidate => "campaigning".to_string(),
                Role::Follower => match leader {
                    Some(leader) => format!("following leader {leader}"),
                    None => "follower, no leader known".to_string(),
                },
            }
        );
        if role != self.last_role {
            match role {
                Role::Candidate => self.elections.started += 1,
                Role::Leader => self.elections.won += 1,
                Role::Follower | Role::PreCandidate => {}
            }
        }
        self.last_role = role;
        self.last_leader = leader;
        self.published.send_replace(self.status());
    }

    /// Gives up on forwards past their deadline or whose leader's connection is down.
    fn expire(&mut self) {
        let peers = self.transport.peer_states();
        let reachable = |leader: NodeId| peers.get(&leader).is_some_and(|state| state.connected);
        self.router
            .expire(unix_time_ms(), reachable, &mut self.routed);
        self.carry_out_routed();
    }

    fn send_raft(&mut self, message: Message) {
        let to = message.to;
        self.send(to, PeerFrame::Raft(message));
    }

    fn send(&mut self, to: NodeId, frame: PeerFrame) {
        if let Err(error) = self.transport.send(to, frame) {
            tracing::trace!(%error, "frame not queued");
        }
    }

    fn status(&self) -> NodeStatus {
        status_of(
            &self.node,
            &self.transport,
            &self.router,
            &self.wal_stats,
            self.elections,
        )
    }
}

/// Elections a node took part in as a candidate, counted by its driver.
#[derive(Clone, Copy, Debug, Default)]
struct Elections {
    started: u64,
    won: u64,
}

/// What a node's driver publishes about it: the node, its peers' transport state, the
/// operations its router holds, its WAL writer's counters, and its elections.
fn status_of(
    node: &Node,
    transport: &Transport,
    router: &Router<Answer>,
    wal_stats: &WalStats,
    elections: Elections,
) -> NodeStatus {
    let peers = transport.peer_states();
    let leader = node.leader();
    let leader_client_addr = leader.and_then(|leader| {
        peers
            .get(&leader)
            .and_then(|state| state.client_addr.clone())
    });
    NodeStatus {
        id: node.id(),
        role: node.role(),
        term: node.term(),
        leader,
        leader_client_addr,
        commit: node.commit_index(),
        applied: node.state_machine().applied_index(),
        last_index: node.log().last_index(),
        snapshot_index: node.snapshot_meta().map_or(LogIndex(0), |m| m.index),
        snapshots_installed: node.installed_snapshots(),
        peers: peers
            .into_iter()
            .map(|(peer, state)| {
                let matched = node.progress(peer).map(|p| p.match_index);
                (peer, (state, matched))
            })
            .collect(),
        wal: wal_stats.figures(),
        waiting: router.waiting(),
        sessions: node.state_machine().sessions().len(),
        reply_cache_bytes: node.state_machine().sessions().reply_bytes(),
        elections_started: elections.started,
        elections_won: elections.won,
    }
}

/// The wall clock in milliseconds since the Unix epoch (0 if the clock is before it): what
/// this node stamps its entries with when it leads.
fn unix_time_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
