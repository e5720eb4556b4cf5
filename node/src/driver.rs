//! The driver: one task that owns the core [`Node`] and carries out what it asks.
//!
//! Inputs arrive on channels (peer frames from the transport, client submissions from the
//! server, completed WAL batches from the writer) and as ticks of a timer. After each burst of
//! inputs the driver takes the node's [`verity_core::Ready`] and follows its contract:
//!
//! 1. `early_messages` go to the transport at once (a leader replicates while it syncs);
//! 2. the hard state and entries become one WAL record, queued to the group-commit writer
//!    together with the `messages` and `ack` that must wait for it;
//! 3. `replies` are delivered to their waiting clients, local or forwarded, at once;
//! 4. when the writer reports a batch durable, its messages are sent and its acks given to
//!    [`Node::on_persisted`], in order.
//!
//! Client operations proposed on a follower are forwarded to the leader it knows; with no
//! leader known the submission fails with [`SubmitError::NoLeader`] and the client side
//! retries. No submission waits forever: a proposal made here is answered when its entry
//! applies, when this node stops leading ([`SubmitError::Unknown`]: the entry may still
//! commit) or at shutdown; a forward fails as unknown when its leader changes, its leader's
//! connection drops, or after [`FORWARD_TIMEOUT`]. The client side retries (safely: a retry
//! reuses its session and sequence number, so it executes at most once).
//!
//! The driver stamps the node's clock before every proposal (entries carry their leader's
//! time, which decides expiry) and publishes a [`NodeStatus`] snapshot for `INFO` at every
//! tick and change of role.

use crate::storage::{PersistDone, PersistJob, WalFigures, WalStats, WalWriter};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};
use verity_core::raft::{ClientReply, Outcome};
use verity_core::wal::WalRecord;
use verity_core::{
    ClientOp, LogIndex, Message, Node, NodeId, ProposeError, RequestTag, Role, Term,
};
use verity_net::{ForwardResult, Inbound, PeerFrame, PeerState, Transport};

/// How long a forwarded operation waits for the leader's answer before it fails as
/// [`SubmitError::Unknown`] (and is retried by the client side). A safety net only: a forward
/// whose leader's connection drops, or whose leader changes, fails at once. A proposal made
/// on this node never times out: it is answered when its entry applies, when this node stops
/// leading, or at shutdown, however slow the cluster is (a slow answer is not an error).
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(10);

/// Most inputs handled before the driver drains the node's `Ready` (bounds latency while
/// still batching a burst into one WAL record).
const MAX_INPUTS_PER_READY: usize = 512;

/// Why a submission got no outcome. All but `Stopped` are worth retrying.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// No leader is known (an election is running, or this node is cut off).
    #[error("no leader is known")]
    NoLeader,
    /// The leader refused new work for now.
    #[error("the leader is overloaded")]
    Overloaded,
    /// It was proposed or forwarded, but no answer came in time or the leader changed before
    /// its entry committed: the operation may or may not take effect.
    #[error("no answer in time, or the leader changed")]
    Unknown,
    /// The node is shutting down.
    #[error("the node is shutting down")]
    Stopped,
}

/// The answer to a submission.
pub type Submitted = Result<Outcome, SubmitError>;

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
    Submit(Vec<(ClientOp, Answer)>),
    Status {
        reply: oneshot::Sender<NodeStatus>,
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
    /// result)`. If the driver has stopped, every op is answered [`SubmitError::Stopped`].
    pub async fn submit(
        &self,
        ops: Vec<(u64, ClientOp)>,
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
                let _ = results.send((attempt, Err(SubmitError::Stopped)));
            }
        }
    }

    /// The node's current status, or `None` if the driver has stopped.
    pub async fn status(&self) -> Option<NodeStatus> {
        let (reply, answer) = oneshot::channel();
        self.requests.send(Request::Status { reply }).await.ok()?;
        answer.await.ok()
    }

    /// The status the driver published last (at most a tick old).
    #[must_use]
    pub fn latest_status(&self) -> NodeStatus {
        self.status.borrow().clone()
    }
}

/// Who waits for a proposal made on this node.
enum Waiter {
    /// A client of this node.
    Local(Answer),
    /// A forwarded request: answer goes back to `from` under `id`.
    Remote { from: NodeId, id: u64 },
}

/// An operation forwarded to a leader, waiting for the answer.
struct Forwarded {
    reply: Answer,
    deadline: Instant,
    /// The leader it was sent to.
    leader: NodeId,
}

/// The task that owns the node; see the module docs and [`Driver::run`].
pub struct Driver {
    node: Node,
    transport: Transport,
    writer: WalWriter,
    wal_stats: Arc<WalStats>,
    requests: mpsc::Receiver<Request>,
    tick: Duration,
    next_tag: u64,
    next_forward: u64,
    /// Proposals made here, by tag.
    proposals: BTreeMap<RequestTag, Waiter>,
    /// Operations forwarded to a leader, by forward id, with the leader they went to.
    forwards: BTreeMap<u64, Forwarded>,
    last_role: Role,
    last_leader: Option<NodeId>,
    published: watch::Sender<NodeStatus>,
}

/// The other channels the driver reads.
pub struct DriverInputs {
    /// Peer frames from the transport.
    pub inbound: mpsc::Receiver<Inbound>,
    /// Durable batches (or the writer's fatal error).
    pub persisted: mpsc::UnboundedReceiver<std::io::Result<Vec<PersistDone>>>,
    /// Becomes `true` when the node should stop.
    pub shutdown: watch::Receiver<bool>,
}

/// One input of the driver loop.
enum Input {
    Tick,
    Peer(Inbound),
    Request(Request),
    Persisted(std::io::Result<Vec<PersistDone>>),
    Shutdown,
}

impl Driver {
    /// Wraps a started node, transport and writer; `tick` is the length of a Raft tick and
    /// `queue` bounds the submissions waiting to enter the driver. Returns the driver and a
    /// handle for clients.
    #[must_use]
    pub fn new(
        node: Node,
        transport: Transport,
        (writer, wal_stats): (WalWriter, Arc<WalStats>),
        tick: Duration,
        queue: usize,
    ) -> (Driver, DriverHandle) {
        let (handle, requests) = mpsc::channel(queue.max(1));
        let (last_role, last_leader) = (node.role(), node.leader());
        let (published, status) = watch::channel(NodeStatus {
            id: node.id(),
            role: last_role,
            term: node.term(),
            leader: last_leader,
            leader_client_addr: None,
            commit: node.commit_index(),
            applied: node.state_machine().applied_index(),
            last_index: node.log().last_index(),
            peers: BTreeMap::new(),
            wal: wal_stats.figures(),
            waiting: 0,
            sessions: 0,
            reply_cache_bytes: 0,
        });
        let driver = Driver {
            node,
            transport,
            writer,
            wal_stats,
            requests,
            tick,
            next_tag: 0,
            next_forward: 0,
            proposals: BTreeMap::new(),
            forwards: BTreeMap::new(),
            last_role,
            last_leader,
            published,
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
                match input {
                    Input::Shutdown => {
                        self.stop();
                        return Ok(());
                    }
                    Input::Tick => {
                        self.node.tick();
                        ticks += 1;
                        if ticks.is_multiple_of(10) {
                            self.expire(Instant::now());
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
            self.on_role_change();
        }
    }

    fn stop(self) {
        tracing::info!(
            node = self.node.id().0,
            "[SHUTDOWN] driver stopping; finishing WAL syncs"
        );
        for (_, waiting) in self.proposals {
            if let Waiter::Local(reply) = waiting {
                reply.send(Err(SubmitError::Stopped));
            }
        }
        for (_, forwarded) in self.forwards {
            forwarded.reply.send(Err(SubmitError::Stopped));
        }
        let writer = self.writer;
        tokio::task::block_in_place(|| writer.finish());
    }

    fn on_peer(&mut self, inbound: Inbound) {
        match inbound.frame {
            PeerFrame::Raft(message) => self.node.step(message),
            PeerFrame::Forward { id, op } => {
                let waiter = Waiter::Remote {
                    from: inbound.from,
                    id,
                };
                if let Err(error) = self.propose(op, waiter) {
                    let result = match error {
                        ProposeError::NotLeader { leader } => ForwardResult::NotLeader { leader },
                        ProposeError::Overloaded { .. } => ForwardResult::Overloaded,
                    };
                    self.send(inbound.from, PeerFrame::ForwardReply { id, result });
                }
            }
            PeerFrame::ForwardReply { id, result } => {
                if let Some(forwarded) = self.forwards.remove(&id) {
                    forwarded.reply.send(match result {
                        ForwardResult::Outcome(outcome) => Ok(outcome),
                        ForwardResult::NotLeader { .. } => Err(SubmitError::NoLeader),
                        ForwardResult::Overloaded => Err(SubmitError::Overloaded),
                    });
                }
            }
        }
    }

    fn on_request(&mut self, request: Request) {
        match request {
            Request::Status { reply } => {
                let _ = reply.send(self.status());
            }
            Request::Submit(batch) => {
                for (op, reply) in batch {
                    self.submit(op, reply);
                }
            }
        }
    }

    /// Proposes `op` here if this node leads, or forwards it to the leader it knows.
    fn submit(&mut self, op: ClientOp, reply: Answer) {
        match self.node.leader() {
            Some(leader) if leader == self.node.id() => {
                if let Err(error) = self.propose(op, Waiter::Local(reply)) {
                    tracing::debug!(%error, "proposal refused");
                }
            }
            Some(leader) => {
                let id = self.next_forward;
                self.next_forward += 1;
                match self.transport.send(leader, PeerFrame::Forward { id, op }) {
                    Ok(()) => {
                        let deadline = Instant::now() + FORWARD_TIMEOUT;
                        let forwarded = Forwarded {
                            reply,
                            deadline,
                            leader,
                        };
                        self.forwards.insert(id, forwarded);
                    }
                    Err(_) => reply.send(Err(SubmitError::NoLeader)),
                }
            }
            None => reply.send(Err(SubmitError::NoLeader)),
        }
    }

    /// Proposes on this node; a refusal is answered to a local waiter here and returned.
    fn propose(&mut self, op: ClientOp, waiter: Waiter) -> Result<(), ProposeError> {
        let tag = RequestTag(self.next_tag);
        self.next_tag += 1;
        self.node.set_clock_ms(unix_time_ms());
        match self.node.propose(tag, op) {
            Ok(_) => {
                self.proposals.insert(tag, waiter);
                Ok(())
            }
            Err(error) => {
                if let Waiter::Local(reply) = waiter {
                    reply.send(Err(match error {
                        ProposeError::NotLeader { .. } => SubmitError::NoLeader,
                        ProposeError::Overloaded { .. } => SubmitError::Overloaded,
                    }));
                }
                Err(error)
            }
        }
    }

    fn on_persisted(&mut self, batch: Vec<PersistDone>) {
        for done in batch {
            for message in done.messages {
                self.send_raft(message);
            }
            if let Some(ack) = done.ack {
                self.node.on_persisted(ack);
            }
        }
    }

    /// Carries out the node's `Ready` (see the module docs).
    async fn drain_ready(&mut self) -> Result<(), std::io::Error> {
        let Some(ready) = self.node.ready() else {
            return Ok(());
        };
        for message in ready.early_messages {
            self.send_raft(message);
        }
        for reply in ready.replies {
            self.deliver(reply);
        }
        let mut records = Vec::new();
        if ready.hard_state.is_some() || !ready.entries.is_empty() {
            encode_records(ready.hard_state, ready.entries, &mut records)?;
        }
        if records.is_empty() && ready.messages.is_empty() && ready.ack.is_none() {
            return Ok(());
        }
        let job = PersistJob {
            record: (!records.is_empty()).then_some(records),
            messages: ready.messages,
            ack: ready.ack,
        };
        self.writer
            .submit(job)
            .await
            .map_err(|stopped| std::io::Error::other(stopped.to_string()))
    }

    fn deliver(&mut self, reply: ClientReply) {
        let Some(waiting) = self.proposals.remove(&reply.tag) else {
            return;
        };
        match waiting {
            Waiter::Local(sender) => {
                sender.send(Ok(reply.outcome));
            }
            Waiter::Remote { from, id } => {
                let result = ForwardResult::Outcome(reply.outcome);
                self.send(from, PeerFrame::ForwardReply { id, result });
            }
        }
    }

    /// Fails the waits a change of leadership leaves unanswerable, so they retry at once.
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
                Role::Candidate => "campaigning".to_string(),
                Role::Follower => match leader {
                    Some(leader) => format!("following leader {leader}"),
                    None => "follower, no leader known".to_string(),
                },
            }
        );
        if self.last_role == Role::Leader && role != Role::Leader {
            let no_longer = std::mem::take(&mut self.proposals);
            for (_, waiting) in no_longer {
                self.fail(waiting);
            }
        }
        self.fail_forwards(
            |forwarded| Some(forwarded.leader) != leader,
            SubmitError::Unknown,
        );
        self.last_role = role;
        self.last_leader = leader;
        self.published.send_replace(self.status());
    }

    /// Answers a proposal whose entry this node can no longer see through (it lost the
    /// leadership): the entry may still commit, so its outcome is unknown.
    fn fail(&mut self, waiter: Waiter) {
        match waiter {
            Waiter::Local(reply) => {
                reply.send(Err(SubmitError::Unknown));
            }
            Waiter::Remote { from, id } => {
                let result = ForwardResult::Outcome(verity_core::Outcome::Superseded);
                self.send(from, PeerFrame::ForwardReply { id, result });
            }
        }
    }

    /// Fails every forward past its deadline or whose leader's connection is down (its
    /// answer may never come).
    fn expire(&mut self, now: Instant) {
        let peers = self.transport.peer_states();
        let unreachable = |leader: NodeId| peers.get(&leader).is_none_or(|state| !state.connected);
        self.fail_forwards(
            |forwarded| forwarded.deadline <= now || unreachable(forwarded.leader),
            SubmitError::Unknown,
        );
    }

    /// Answers `error` to every forwarded operation `doomed` picks, and forgets them.
    fn fail_forwards(&mut self, doomed: impl Fn(&Forwarded) -> bool, error: SubmitError) {
        let (failed, kept): (BTreeMap<_, _>, BTreeMap<_, _>) = std::mem::take(&mut self.forwards)
            .into_iter()
            .partition(|(_, forwarded)| doomed(forwarded));
        self.forwards = kept;
        for forwarded in failed.into_values() {
            forwarded.reply.send(Err(error));
        }
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
        let peers = self.transport.peer_states();
        let leader = self.node.leader();
        let leader_client_addr = leader.and_then(|leader| {
            peers
                .get(&leader)
                .and_then(|state| state.client_addr.clone())
        });
        NodeStatus {
            id: self.node.id(),
            role: self.node.role(),
            term: self.node.term(),
            leader,
            leader_client_addr,
            commit: self.node.commit_index(),
            applied: self.node.state_machine().applied_index(),
            last_index: self.node.log().last_index(),
            peers: peers
                .into_iter()
                .map(|(peer, state)| {
                    let matched = self.node.progress(peer).map(|p| p.match_index);
                    (peer, (state, matched))
                })
                .collect(),
            wal: self.wal_stats.figures(),
            waiting: self.proposals.len() + self.forwards.len(),
            sessions: self.node.state_machine().sessions().len(),
            reply_cache_bytes: self.node.state_machine().sessions().reply_bytes(),
        }
    }
}

/// The wall clock in milliseconds since the Unix epoch (0 if the clock is before it): what
/// this node stamps its entries with when it leads.
fn unix_time_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Encodes a `Ready`'s durable state as WAL records, appended to `out`. One record unless the
/// entries are too large for one frame; then they are split (the hard state rides in the
/// last piece, so replay never sees a commit index beyond the entries before it).
fn encode_records(
    hard_state: Option<verity_core::HardState>,
    entries: Vec<verity_core::Entry>,
    out: &mut Vec<u8>,
) -> Result<(), std::io::Error> {
    let record = WalRecord {
        hard_state,
        entries,
    };
    match record.encode() {
        Ok(bytes) => {
            out.extend_from_slice(&bytes);
            Ok(())
        }
        Err(error) if record.entries.len() > 1 => {
            tracing::debug!(%error, "splitting a WAL record");
            let mut entries = record.entries;
            let tail = entries.split_off(entries.len() / 2);
            encode_records(None, entries, out)?;
            encode_records(record.hard_state, tail, out)
        }
        Err(error) => Err(std::io::Error::other(format!(
            "a single log entry cannot be written to the WAL: {error}"
        ))),
    }
}
