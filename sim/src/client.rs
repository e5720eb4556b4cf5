//! Simulated clients: one operation at a time, retries with the same session and sequence
//! number (so exactly-once applies), and a record of every operation in the history.
//!
//! A client first opens a session. Each operation then goes to the node the client believes
//! leads. A redirect sends it to the named leader; a timeout (with exponential backoff), a
//! superseded proposal or an overloaded leader makes it retry elsewhere; after `max_attempts`
//! it gives up and records the operation as `info`, and continues as a new process (Jepsen's
//! rule). The workload is a small hot key set and a mix of get, put, delete, cas and append
//! with values unique to the client and operation.

use crate::history::{OpKind, OpOutcome, completion_event, invoke_event};
use crate::simulation::{Event, Failure, Phase, Simulation};
use crate::trace::What;
use verity_core::kv::cmd::Expect;
use verity_core::{
    ClientId, ClientOp, ClientRequest, Command, Frame, NodeId, Reply, Sequence, SessionError,
    SessionToken,
};

/// What a node (or the network) answered to one attempt.
#[derive(Clone, Debug)]
pub enum Response {
    /// The proposal was applied with this reply.
    Applied(Reply),
    /// The node is not the leader; it names the leader if it knows one.
    NotLeader(Option<NodeId>),
    /// The leader refused for now (too many uncommitted entries).
    Busy,
    /// The proposal was overwritten before it committed.
    Superseded,
}

/// The operation a client is working on.
#[derive(Clone, Debug)]
struct InFlight {
    /// The request sent on every attempt.
    op: ClientOp,
    /// `(key, kind)` for history operations; `None` while opening a session.
    recorded: Option<(String, OpKind)>,
    attempts: u32,
    /// Whether it was invoked in the liveness phase (so it must complete).
    must_complete: bool,
}

/// One simulated client.
#[derive(Clone, Debug)]
pub struct Client {
    index: usize,
    process: u64,
    session: Option<(ClientId, SessionToken)>,
    sequence: u64,
    current: Option<InFlight>,
    attempt: u64,
    target: NodeId,
    liveness_left: u64,
    written: u64,
}

impl Client {
    /// Client `index`, first talking to `target`.
    #[must_use]
    pub fn new(index: usize, target: NodeId, liveness_ops: u64) -> Client {
        Client {
            index,
            process: index as u64,
            session: None,
            sequence: 0,
            current: None,
            attempt: 0,
            target,
            liveness_left: liveness_ops,
            written: 0,
        }
    }

    /// Whether the client has nothing in flight.
    #[must_use]
    pub fn is_idle(&self) -> bool {
        self.current.is_none()
    }

    /// Whether it has completed all its liveness operations.
    #[must_use]
    pub fn finished(&self) -> bool {
        self.liveness_left == 0 && self.current.is_none()
    }
}

impl Simulation {
    pub(crate) fn on_client_start(&mut self, index: usize) {
        if self.clients[index].current.is_some() || self.failure.is_some() {
            return;
        }
        if self.clients[index].session.is_none() {
            let token = SessionToken(
                (u128::from(self.rng.next_u64()) << 64 | u128::from(self.rng.next_u64()))
                    .to_le_bytes(),
            );
            self.clients[index].current = Some(InFlight {
                op: ClientOp::OpenSession { token },
                recorded: None,
                attempts: 0,
                must_complete: false,
            });
            self.send_attempt(index, 0);
            return;
        }
        let must_complete = match self.phase {
            Phase::Chaos if self.ops_invoked < self.options.ops => false,
            Phase::Liveness if self.clients[index].liveness_left > 0 => true,
            _ => return,
        };
        self.ops_invoked += 1;
        let (key, kind, command) = self.next_operation(index);
        let client = &mut self.clients[index];
        client.sequence += 1;
        let (session, token) = client.session.expect("checked above");
        let request = ClientOp::Request(ClientRequest {
            client: session,
            token,
            may_skip_earlier: true,
            sequence: Sequence(client.sequence),
            command,
        });
        let process = client.process;
        client.current = Some(InFlight {
            op: request,
            recorded: Some((key.clone(), kind.clone())),
            attempts: 0,
            must_complete,
        });
        self.history
            .events
            .push(invoke_event(process, &key, &kind, self.now_us * 1000));
        self.record(What::Invoke {
            process,
            op: format!("{kind:?} {key}"),
        });
        if self.phase == Phase::Chaos
            && self.ops_invoked >= self.options.ops
            && self.timeline_done()
        {
            self.end_chaos();
        }
        self.send_attempt(index, 0);
    }

    /// Draws the next operation of client `index` from the workload mix.
    fn next_operation(&mut self, index: usize) -> (String, OpKind, Command) {
        let key = format!("k{}", self.rng.below(self.options.keys));
        let client = &mut self.clients[index];
        client.written += 1;
        let unique = format!("c{}.{}", client.index, client.written);
        let bytes = |s: &str| s.as_bytes().to_vec();
        let k = bytes(&key);
        let mix = self.options.mix;
        let draw = self.rng.below(mix.total());
        let (put_from, delete_from) = (mix.get, mix.get + mix.put);
        let (cas_from, append_from) =
            (delete_from + mix.delete, delete_from + mix.delete + mix.cas);
        match draw {
            d if d < put_from => (key, OpKind::Get, Command::get(k)),
            d if d < delete_from => (
                key,
                OpKind::Put(unique.clone()),
                Command::set(k, bytes(&unique)),
            ),
            d if d < cas_from => (key, OpKind::Delete, Command::del(k)),
            d if d < append_from => {
                // Expect either absence or a value some client may have written.
                let expected = if self.rng.chance(300) {
                    None
                } else {
                    let writer = self.rng.below(self.options.clients);
                    let n = self
                        .rng
                        .between(1, self.clients[writer as usize].written.max(1));
                    Some(format!("c{writer}.{n}"))
                };
                let expect = expected
                    .as_deref()
                    .map_or(Expect::Absent, |v| Expect::Value(bytes(v)));
                (
                    key,
                    OpKind::Cas {
                        expected,
                        new: Some(unique.clone()),
                    },
                    Command::cas(k, expect, Some(bytes(&unique))),
                )
            }
            _ => (
                key,
                OpKind::Append(unique.clone()),
                Command::append(k, bytes(&unique)),
            ),
        }
    }

    /// Sends the current operation's next attempt after `backoff_us`, with a timeout that
    /// retries it elsewhere if no answer comes. A new attempt number makes every answer to or
    /// timeout of an older attempt stale.
    fn send_attempt(&mut self, index: usize, backoff_us: u64) {
        let client = &mut self.clients[index];
        let Some(current) = client.current.as_mut() else {
            return;
        };
        current.attempts += 1;
        client.attempt += 1;
        let (attempt, target, op) = (client.attempt, client.target, current.op.clone());
        let delay = backoff_us + self.network.latency(&mut self.rng, target, target);
        self.schedule(
            delay,
            Event::ToNode {
                node: target,
                client: index,
                attempt,
                op: Box::new(op),
            },
        );
        let timeout = backoff_us + self.options.request_timeout_us;
        self.schedule(
            timeout,
            Event::ClientTimeout {
                client: index,
                attempt,
            },
        );
    }

    pub(crate) fn on_client_response(&mut self, index: usize, attempt: u64, response: Response) {
        if self.clients[index].attempt != attempt || self.clients[index].current.is_none() {
            return;
        }
        match response {
            Response::Applied(reply) => self.complete(index, reply),
            Response::NotLeader(Some(leader)) if leader != self.clients[index].target => {
                self.clients[index].target = leader;
                self.retry(index, 0);
            }
            Response::NotLeader(_) => {
                self.retarget(index);
                let backoff = self.rng.between(10_000, 50_000);
                self.retry(index, backoff);
            }
            Response::Busy | Response::Superseded => {
                let backoff = self.rng.between(5_000, 20_000);
                self.retry(index, backoff);
            }
        }
    }

    pub(crate) fn on_client_timeout(&mut self, index: usize, attempt: u64) {
        if self.clients[index].attempt != attempt || self.clients[index].current.is_none() {
            return;
        }
        self.retarget(index);
        // Exponential backoff with jitter: retrying faster than a slow cluster answers only
        // adds load.
        let attempts = self.clients[index]
            .current
            .as_ref()
            .map_or(1, |c| c.attempts);
        let ceiling_us = (10_000u64 << attempts.min(7)).min(1_000_000);
        let backoff = self.rng.between(ceiling_us / 2, ceiling_us);
        self.retry(index, backoff);
    }

    fn retarget(&mut self, index: usize) {
        let current = self.clients[index].target.0;
        let others = self.options.nodes - 1;
        if others > 0 {
            let step = 1 + self.rng.below(others);
            self.clients[index].target = NodeId((current - 1 + step) % self.options.nodes + 1);
        }
    }

    /// Retries after `backoff_us`, or gives up after `max_attempts`.
    fn retry(&mut self, index: usize, backoff_us: u64) {
        let attempts = self.clients[index]
            .current
            .as_ref()
            .map_or(0, |c| c.attempts);
        if attempts >= self.options.max_attempts {
            self.give_up(index);
        } else {
            self.send_attempt(index, backoff_us);
        }
    }

    fn give_up(&mut self, index: usize) {
        let current = self.clients[index]
            .current
            .take()
            .expect("giving up an operation in flight");
        let Some((key, kind)) = current.recorded else {
            // Opening a session has no visible effect: start over after a pause.
            let backoff = self.rng.between(20_000, 100_000);
            self.schedule(backoff, Event::ClientStart { client: index });
            return;
        };
        if current.must_complete {
            self.fail(Failure::Liveness {
                reason: format!(
                    "client {index} gave up on {kind:?} {key} after {} attempts, although all faults had healed",
                    current.attempts
                ),
            });
        }
        self.finish_operation(index, &key, &kind, OpOutcome::Info, current.must_complete);
    }

    fn complete(&mut self, index: usize, reply: Reply) {
        let current = self.clients[index]
            .current
            .take()
            .expect("completing an operation in flight");
        let Some((key, kind)) = current.recorded.clone() else {
            match reply {
                Reply::SessionOpened { client } => {
                    let ClientOp::OpenSession { token } = current.op else {
                        unreachable!("only session opening has nothing recorded")
                    };
                    self.clients[index].session = Some((client, token));
                }
                other => unreachable!("opening a session answers SessionOpened, not {other:?}"),
            }
            self.schedule(0, Event::ClientStart { client: index });
            return;
        };
        let text = |bytes: Vec<u8>| String::from_utf8(bytes).expect("the workload writes UTF-8");
        let outcome = match (&kind, reply) {
            (OpKind::Get, Reply::Executed(Frame::Bulk(value))) => OpOutcome::Ok(Some(text(value))),
            (OpKind::Get, Reply::Executed(Frame::Null)) => OpOutcome::Ok(None),
            (OpKind::Put(_), Reply::Executed(Frame::Simple(_)))
            | (OpKind::Append(_) | OpKind::Delete, Reply::Executed(Frame::Integer(_)))
            | (OpKind::Cas { .. }, Reply::Executed(Frame::Integer(1))) => OpOutcome::Ok(None),
            (OpKind::Cas { .. }, Reply::Executed(Frame::Integer(0))) => OpOutcome::Fail,
            (OpKind::Get, Reply::Rejected(SessionError::ReplyNotKept)) => {
                // An earlier attempt of this read executed but its answer was lost, and
                // reads' replies are not kept: read again under a new number. The new read
                // takes effect within the operation's interval, so the history stays true.
                self.reread(index, current);
                return;
            }
            (_, Reply::Rejected(SessionError::UnknownSession)) => {
                self.clients[index].session = None;
                if current.attempts == 1 {
                    OpOutcome::Fail
                } else {
                    OpOutcome::Info
                }
            }
            (_, Reply::Rejected(SessionError::SequenceTooOld | SessionError::ReplyNotKept)) => {
                OpOutcome::Info
            }
            (kind, reply) => unreachable!("reply {reply:?} does not answer {kind:?}"),
        };
        if current.must_complete && outcome == OpOutcome::Info {
            self.fail(Failure::Liveness {
                reason: format!(
                    "client {index}'s {kind:?} {key} ended with an unknown outcome after the heal"
                ),
            });
        }
        self.finish_operation(index, &key, &kind, outcome, current.must_complete);
    }

    /// Sends read `current` again under the session's next sequence number.
    fn reread(&mut self, index: usize, mut current: InFlight) {
        let client = &mut self.clients[index];
        client.sequence += 1;
        if let ClientOp::Request(request) = &mut current.op {
            request.sequence = Sequence(client.sequence);
        }
        client.current = Some(current);
        self.retry(index, 0);
    }

    fn finish_operation(
        &mut self,
        index: usize,
        key: &str,
        kind: &OpKind,
        outcome: OpOutcome,
        liveness: bool,
    ) {
        let process = self.clients[index].process;
        self.history.events.push(completion_event(
            process,
            key,
            kind,
            &outcome,
            self.now_us * 1000,
        ));
        self.record(What::Complete {
            process,
            outcome: format!("{outcome:?}"),
        });
        match outcome {
            OpOutcome::Ok(_) => self.stats.ops_ok += 1,
            OpOutcome::Fail => self.stats.ops_fail += 1,
            OpOutcome::Info => {
                self.stats.ops_info += 1;
                self.clients[index].process = self.next_process;
                self.next_process += 1;
            }
        }
        if liveness {
            self.clients[index].liveness_left -= 1;
            self.maybe_finish();
        }
        let think = self.rng.between(0, 5_000);
        self.schedule(think, Event::ClientStart { client: index });
    }
}
