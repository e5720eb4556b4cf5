//! Simulated clients: Redis clients that pipeline, over connections served by the nodes' real
//! [`verity_engine::Connection`]s.
//!
//! A client connects to a node (any node: followers forward), writes a pipeline of 1 to
//! `max_pipeline` commands (drawn per pipeline; the bound is drawn per seed) as RESP in one
//! write, and reads the replies in order. Every command is its own history operation, under a
//! process of its own, so pipelined commands are concurrent operations. Everything between the
//! bytes is the node's business: sessions, numbering, ordering, retries and the errors that
//! say what became of a command. The client maps each reply to the history:
//!
//! - a value or status is the operation's result (`ok`; a compare-and-swap that did not swap
//!   is `fail`);
//! - an error that says "not executed" is `fail` (a compare-and-swap then becomes `info`: a
//!   `fail` would claim the comparison was made);
//! - any other error ("outcome unknown", a lost read) is `info`.
//!
//! The client learns its connection's exactly-once session as a careful Redis user would: on
//! a fresh connection it first sends `SESSION`, which opens the session and names it, its
//! token and the number of the next command, and it sends commands only once that is
//! answered; they are numbered one by one. A connection that is lost (its node crashed) or
//! stuck (its node paused, for longer than the connection's own retry budget) is replaced by
//! one to a random node, which resumes the session at the first unanswered number
//! (`SESSION id token n`) and, once that is acknowledged, sends the unanswered commands
//! again: each runs at most once, and a write that already ran answers its kept reply.
//! Operations whose session cannot be resumed become `info`. A refused connection (its node
//! is down) reached nothing, so what was written on it is written again on another.
//!
//! A client is a state machine of its own: the simulation hands it the events that reach it
//! (a reply's bytes, a lost, refused or stuck connection, time to start) with an `Env` (the
//! run's random stream, its options, id allocators), and carries out the `Action`s it
//! returns: connect, write, disconnect, wake later, record an operation. Latency and the order
//! of a connection's bytes are the simulated network's business, not the client's.
//!
//! The workload is a small hot key set and a mix of GET, SET, DEL, CAS (or `SET NX` when
//! expecting absence) and APPEND with values unique to the client on keys `k0`, `k1`, …;
//! INCRBY or DECRBY, mostly on counters `n0`, `n1`, … and sometimes on those keys (which may
//! hold a string: "not an integer"); GETSET, GETDEL (a read and a write of one key at one
//! instant) and SETNX on those keys; and commands over a pair of keys `m0`+`m1`, `m2`+`m3`, … (MSET,
//! MGET, DEL of both) and `MULTI` … `EXEC` transactions of two or three commands over such a
//! pair. A command over several keys is one history operation (`txn`), so the checker checks
//! the pair as one object. A transaction's `MULTI` and `QUEUED` replies are the client's own business; its
//! `EXEC` is the operation (and the one command of the transaction that gets a number in the
//! session).

use crate::history::{OpKind, OpOutcome, Part};
use crate::options::SimOptions;
use crate::rng::SimRng;
use std::collections::{BTreeMap, VecDeque};
use verity_core::kv::cmd::parse_integer;
use verity_core::{Command, Frame, NodeId};
use verity_engine::Consistency;
use verity_engine::resp::{self, Limits};

/// How much longer than the connection's own retry budget a client waits for a reply before
/// it gives up on the connection.
const STUCK_MARGIN_US: u64 = 1_000_000;

/// Reply limits of the simulated clients (the workload's values are small).
const REPLY_LIMITS: Limits = Limits {
    max_args: 1_024,
    max_arg_bytes: 1 << 20,
};

/// What a client's step may use of the run.
pub(crate) struct Env<'a> {
    /// The run's random stream.
    pub(crate) rng: &'a mut SimRng,
    /// The run's options (cluster size, keys, mix, timeouts).
    pub(crate) options: &'a SimOptions,
    /// The most commands a pipeline holds (drawn per seed).
    pub(crate) max_pipeline: u64,
    /// The next history process number (unique in the run).
    pub(crate) next_process: &'a mut u64,
    /// The last connection id handed out (unique in the run).
    pub(crate) last_connection: &'a mut u64,
}

/// What the run lets a client invoke when it is asked to start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Allowance {
    /// Nothing now.
    Nothing,
    /// Chaos phase: up to this many operations, which may end unknown.
    Chaos(u64),
    /// Liveness phase: the client's remaining operations, which must complete.
    Liveness,
}

/// Whether an operation counted for the liveness phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Liveness {
    /// Not a liveness operation, or one whose unknown outcome is excused.
    NotCounted,
    /// A liveness operation that completed.
    Completed,
    /// A liveness operation that ended unknown after the heal: the cluster failed to serve.
    Missed,
}

/// What a client asks the simulation to do, in order.
#[derive(Debug)]
pub(crate) enum Action {
    /// Open connection `connection` to `node`; what is written on it follows the connect.
    Connect { node: NodeId, connection: u64 },
    /// Write `bytes` on `connection` to `node`, behind everything written on it before.
    Write {
        node: NodeId,
        connection: u64,
        bytes: Vec<u8>,
    },
    /// Close `connection` at `node`.
    Disconnect { node: NodeId, connection: u64 },
    /// Ask the client to start again after `delay_us`.
    Wake { delay_us: u64 },
    /// Tell the client after `delay_us` whether `connection` has answered more than `replies`
    /// replies by then ([`Client::on_stuck`]).
    WatchStuck {
        delay_us: u64,
        connection: u64,
        replies: u64,
    },
    /// An operation was invoked on `connection`; `stale` says it is a stale read, which
    /// the linearizability checker does not judge (the session checker does).
    Invoke {
        process: u64,
        key: String,
        kind: OpKind,
        connection: u64,
        stale: bool,
    },
    /// An operation ended; `error` is what the node answered, if an error. `place` is where
    /// it stood in its client's session.
    Complete {
        process: u64,
        key: String,
        kind: OpKind,
        outcome: OpOutcome,
        error: Option<String>,
        liveness: Liveness,
        place: Place,
    },
    /// Something the trace should say.
    Note(String),
}

/// Where an operation stands in its client's session, for the session checker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Place {
    /// A command of the log, number `number` of session `session`.
    Numbered { session: u64, number: u64 },
    /// A stale read: served without the log, and without a number.
    StaleRead,
    /// A linearizable or lease read, or a command whose session is unknown.
    Other,
}

/// One operation of a pipeline, waiting for its reply.
#[derive(Clone, Debug)]
struct InFlight {
    process: u64,
    key: String,
    kind: OpKind,
    /// The command's RESP bytes (a transaction's: `MULTI` to `EXEC`), to send again after a
    /// resume.
    bytes: Vec<u8>,
    /// Its number in the client's session; `None` for a read served without the log,
    /// which takes none.
    number: Option<u64>,
    /// How its reply reads.
    form: Form,
    /// Replies that come before the operation's own: a transaction's `MULTI` and `QUEUED`s.
    preamble: usize,
    /// How many of those have arrived on the current connection.
    preamble_seen: usize,
    /// Whether it was invoked in the liveness phase (so it must complete).
    must_complete: bool,
}

/// What the next reply on the connection answers.
#[derive(Clone, Debug)]
enum Awaiting {
    /// A workload operation.
    Op(InFlight),
    /// `SESSION`: `[id, token, next number]`.
    SessionShown,
    /// `SESSION id token n`: `OK`, then the unanswered operations are sent again.
    Resumed,
}

/// What the client knows of its session.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Session {
    /// Nothing: the next pipeline asks.
    Unknown,
    /// `SESSION` was sent; the client waits for its reply.
    Asked,
    /// Known: the id, the token and the next command's number.
    Known { id: u64, token: String, next: u64 },
}

/// One simulated client.
#[derive(Clone, Debug)]
pub struct Client {
    index: usize,
    /// How its connections serve its reads.
    reads: Consistency,
    /// Whether it only reads (`GET` of one key).
    reader: bool,
    /// The node and the connection id it is connected through.
    connection: Option<(NodeId, u64)>,
    pending: VecDeque<Awaiting>,
    session: Session,
    /// Whether its connection was lost with operations it can resume.
    resuming: bool,
    /// Reply bytes not parsed yet.
    input: Vec<u8>,
    liveness_left: u64,
    written: u64,
    /// Replies received so far: a connection making progress is not stuck.
    replies: u64,
    /// What it wrote on its connection before the first reply: written again on a new
    /// connection if this one is refused.
    unconfirmed: Option<Vec<u8>>,
    /// The value and version it last read of each key with `GETVER`.
    versions: BTreeMap<String, (String, u64)>,
    /// Its stream for draws added since the first seeds were published, so that adding them
    /// left every earlier draw of the run's stream as it was.
    later: SimRng,
}

impl Client {
    /// Client `index` of the run of `seed`; it must complete `liveness_ops` operations after
    /// the heal.
    #[must_use]
    pub fn new(
        index: usize,
        liveness_ops: u64,
        seed: u64,
        reads: Consistency,
        reader: bool,
    ) -> Client {
        Client {
            index,
            reads,
            reader,
            connection: None,
            pending: VecDeque::new(),
            session: Session::Unknown,
            resuming: false,
            input: Vec::new(),
            liveness_left: liveness_ops,
            written: 0,
            replies: 0,
            unconfirmed: None,
            versions: BTreeMap::new(),
            later: SimRng::new(seed ^ CLIENT_DRAWS_SALT ^ index as u64),
        }
    }

    /// How its connections serve its reads (the connection's default, which it never
    /// changes).
    #[must_use]
    pub fn reads(&self) -> Consistency {
        self.reads
    }

    /// Whether the client has nothing in flight.
    #[must_use]
    pub fn is_idle(&self) -> bool {
        self.pending.is_empty()
    }

    /// Whether it has completed all its liveness operations.
    #[must_use]
    pub fn finished(&self) -> bool {
        self.liveness_left == 0 && self.pending.is_empty()
    }

    /// How many distinct values it has written (`c{index}.1` to `c{index}.{written}`).
    #[must_use]
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Time to send: resume a lost session, or invoke a pipeline of what `allowance` allows.
    /// `written` is every client's [`Client::written`] (a CAS expects a value one wrote).
    pub(crate) fn start(
        &mut self,
        env: &mut Env<'_>,
        allowance: Allowance,
        written: &[u64],
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        if self.resuming {
            self.resume_session(env, &mut actions);
            return actions;
        }
        if !self.pending.is_empty() {
            return actions;
        }
        let (must_complete, left) = match allowance {
            Allowance::Chaos(left) => (false, left),
            Allowance::Liveness if self.liveness_left > 0 => (true, self.liveness_left),
            Allowance::Liveness | Allowance::Nothing => return actions,
        };
        let (node, connection) = match self.connection {
            Some(connected) => connected,
            None => self.connect(env, &mut actions),
        };
        if self.session == Session::Unknown {
            // Learn the session first: commands sent before it is known could not be resumed.
            self.pending.push_back(Awaiting::SessionShown);
            self.session = Session::Asked;
            self.write(env, &mut actions, command_bytes(&["SESSION"]));
            return actions;
        }
        let size = env.rng.between(1, env.max_pipeline).min(left);
        let mut bytes = Vec::new();
        for _ in 0..size {
            let Drawn {
                key,
                kind,
                bytes: command,
                form,
                preamble,
            } = self.next_operation(env, written);
            let process = *env.next_process;
            *env.next_process += 1;
            let number = self
                .takes_number(&command, preamble)
                .then(|| self.number_next());
            actions.push(Action::Invoke {
                process,
                key: key.clone(),
                kind: kind.clone(),
                connection,
                stale: number.is_none() && self.reads == Consistency::Stale,
            });
            bytes.extend_from_slice(&command);
            self.pending.push_back(Awaiting::Op(InFlight {
                process,
                key,
                kind,
                bytes: command,
                number,
                form,
                preamble,
                preamble_seen: 0,
                must_complete,
            }));
        }
        debug_assert_eq!(Some((node, connection)), self.connection);
        self.write(env, &mut actions, bytes);
        actions
    }

    /// Bytes from the node arrive on `connection`.
    pub(crate) fn on_bytes(
        &mut self,
        env: &mut Env<'_>,
        connection: u64,
        bytes: &[u8],
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        if self.connection.map(|(_, c)| c) != Some(connection) {
            return actions;
        }
        self.input.extend_from_slice(bytes);
        loop {
            let (reply, used) = match resp::parse_reply(&self.input, REPLY_LIMITS) {
                Ok(Some(parsed)) => parsed,
                Ok(None) => break,
                Err(error) => unreachable!("a node sent a malformed reply: {error}"),
            };
            self.input.drain(..used);
            self.replies += 1;
            self.unconfirmed = None;
            let awaiting = self
                .pending
                .pop_front()
                .unwrap_or_else(|| unreachable!("a reply with no command waiting: {reply:?}"));
            match awaiting {
                Awaiting::Op(mut op) if op.preamble_seen < op.preamble => {
                    assert!(
                        reply == Frame::ok() || reply == Frame::Simple("QUEUED".into()),
                        "a transaction's MULTI or queued command answered {reply:?}"
                    );
                    op.preamble_seen += 1;
                    self.pending.push_front(Awaiting::Op(op));
                }
                Awaiting::Op(op) => {
                    let error = match &reply {
                        Frame::Error(error) => Some(error.clone()),
                        _ => None,
                    };
                    if let Some(number) = op.number
                        && error.as_deref().is_some_and(|e| e.contains(NEVER_NUMBERED))
                    {
                        self.took_no_number(number);
                    }
                    if let (Form::GetVer, Frame::Array(read)) = (op.form, &reply)
                        && let [Frame::Bulk(value), Frame::Integer(version)] = &read[..]
                    {
                        let value = String::from_utf8_lossy(value).into_owned();
                        let version = u64::try_from(*version).expect("versions are positive");
                        self.versions.insert(op.key.clone(), (value, version));
                    }
                    let outcome = outcome(&op, reply);
                    self.finish_operation(op, outcome, error, &mut actions);
                }
                Awaiting::SessionShown => self.learn_session(reply),
                Awaiting::Resumed => self.on_resumed(env, reply, &mut actions),
            }
        }
        if self.pending.is_empty() && !self.resuming {
            let delay_us = env.rng.between(0, 5_000);
            actions.push(Action::Wake { delay_us });
        }
        actions
    }

    /// `connection` is gone (its node crashed, or the client gave up on it). The client
    /// reconnects; it resumes its session there if it knows the numbers of everything
    /// unanswered, and otherwise what was in flight has an unknown outcome.
    pub(crate) fn on_connection_lost(&mut self, env: &mut Env<'_>, connection: u64) -> Vec<Action> {
        let mut actions = Vec::new();
        if self.connection.map(|(_, c)| c) == Some(connection) {
            self.lose_connection(env, connection, &mut actions);
        }
        actions
    }

    /// `connection` was refused, so nothing written on it reached a node: the client writes
    /// it all again on a connection to another node.
    pub(crate) fn on_connection_refused(
        &mut self,
        env: &mut Env<'_>,
        connection: u64,
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        if self.connection.map(|(_, c)| c) != Some(connection) {
            return actions;
        }
        let unconfirmed = self
            .unconfirmed
            .take()
            .expect("no reply comes before the connection is accepted");
        actions.push(Action::Note(format!(
            "client {}: connection {connection} refused",
            self.index
        )));
        self.connect(env, &mut actions);
        if !unconfirmed.is_empty() {
            self.write(env, &mut actions, unconfirmed);
        }
        actions
    }

    /// The watch on `connection` set when `replies` replies had arrived is due: if none came
    /// since and something waits, the connection is stuck (its node paused or cut off for
    /// longer than its whole retry budget) and the client gives up on it.
    pub(crate) fn on_stuck(
        &mut self,
        env: &mut Env<'_>,
        connection: u64,
        replies: u64,
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        let Some((node, current)) = self.connection else {
            return actions;
        };
        if current != connection || self.pending.is_empty() {
            return actions;
        }
        if self.replies != replies {
            self.watch_for_stuck(env, &mut actions);
            return actions;
        }
        actions.push(Action::Note(format!(
            "client {} gives up on stuck connection {connection} to {node}",
            self.index
        )));
        actions.push(Action::Disconnect { node, connection });
        self.lose_connection(env, connection, &mut actions);
        actions
    }

    /// Whether the command `bytes` (with `preamble` replies before its own: a transaction)
    /// takes a number in the session: every command but a read of named keys that the
    /// connection serves without the log.
    fn takes_number(&self, bytes: &[u8], preamble: usize) -> bool {
        if preamble > 0 || self.reads.without_log().is_none() {
            return true;
        }
        let words = match resp::parse_reply(bytes, REPLY_LIMITS) {
            Ok(Some((Frame::Array(items), _))) => items
                .into_iter()
                .map(|item| match item {
                    Frame::Bulk(word) => word,
                    other => unreachable!("a command word is a bulk string: {other:?}"),
                })
                .collect(),
            other => unreachable!("a client's command is an array: {other:?}"),
        };
        let command = Command::parse(words)
            .unwrap_or_else(|error| unreachable!("the workload sent a bad command: {error}"));
        command.read_keys().is_none()
    }

    /// The number the next data command sent gets.
    fn number_next(&mut self) -> u64 {
        let Session::Known { next, .. } = &mut self.session else {
            unreachable!("commands are sent only in a known session")
        };
        *next += 1;
        *next - 1
    }

    /// The command the client counted as `number` failed before the node numbered it, so
    /// it took no number: the node numbers the commands behind it (none of which it has
    /// numbered yet, as it numbers in arrival order) from `number` on.
    fn took_no_number(&mut self, number: u64) {
        for op in self.operations() {
            if let Some(behind) = &mut op.number {
                assert!(
                    *behind > number,
                    "commands behind an unnumbered one are unnumbered"
                );
                *behind -= 1;
            }
        }
        let Session::Known { next, .. } = &mut self.session else {
            unreachable!("commands are sent only in a known session")
        };
        *next -= 1;
    }

    fn operations(&mut self) -> impl Iterator<Item = &mut InFlight> {
        self.pending
            .iter_mut()
            .filter_map(|awaiting| match awaiting {
                Awaiting::Op(op) => Some(op),
                Awaiting::SessionShown | Awaiting::Resumed => None,
            })
    }

    /// `SESSION`'s reply arrived: the session is known (or none could be opened).
    fn learn_session(&mut self, reply: Frame) {
        let Session::Asked = self.session else {
            unreachable!(
                "a SESSION reply the client did not ask for: {:?}",
                self.session
            )
        };
        let shown = match reply {
            Frame::Array(fields) => match <[Frame; 3]>::try_from(fields) {
                Ok([Frame::Integer(id), Frame::Bulk(token), Frame::Integer(next)]) => Some((
                    u64::try_from(id).expect("session ids are positive"),
                    String::from_utf8(token).expect("tokens are hex"),
                    u64::try_from(next).expect("numbers are positive"),
                )),
                other => unreachable!("SESSION answered {other:?}"),
            },
            // No session could be opened (no leader within the connection's budget).
            Frame::Error(_) => None,
            other => unreachable!("SESSION answered {other:?}"),
        };
        self.session = match shown {
            Some((id, token, next)) => Session::Known { id, token, next },
            None => Session::Unknown,
        };
    }

    /// Whether operations wait for replies in a known session, so a new connection can resume
    /// it and send them again.
    fn can_resume(&mut self) -> bool {
        matches!(self.session, Session::Known { .. }) && self.operations().next().is_some()
    }

    /// Opens a connection to a random node.
    fn connect(&mut self, env: &mut Env<'_>, actions: &mut Vec<Action>) -> (NodeId, u64) {
        let node = NodeId(1 + env.rng.below(env.options.nodes));
        *env.last_connection += 1;
        let connection = *env.last_connection;
        self.connection = Some((node, connection));
        self.input.clear();
        self.unconfirmed = Some(Vec::new());
        actions.push(Action::Connect { node, connection });
        (node, connection)
    }

    /// Writes `bytes` on the connection, behind what it wrote before, and watches it.
    fn write(&mut self, env: &Env<'_>, actions: &mut Vec<Action>, bytes: Vec<u8>) {
        let (node, connection) = self.connection.expect("the client is connected");
        if let Some(unconfirmed) = &mut self.unconfirmed {
            unconfirmed.extend_from_slice(&bytes);
        }
        actions.push(Action::Write {
            node,
            connection,
            bytes,
        });
        self.watch_for_stuck(env, actions);
    }

    /// Asks to be told, after the connection's retry budget (and a margin), whether it was
    /// answered meanwhile.
    fn watch_for_stuck(&self, env: &Env<'_>, actions: &mut Vec<Action>) {
        let (_, connection) = self.connection.expect("the client is connected");
        actions.push(Action::WatchStuck {
            delay_us: env.options.connection_budget_us() + STUCK_MARGIN_US,
            connection,
            replies: self.replies,
        });
    }

    /// Asks for the session on its connection (a new one if it has none), at the number of
    /// its first unanswered operation.
    fn resume_session(&mut self, env: &mut Env<'_>, actions: &mut Vec<Action>) {
        self.resuming = false;
        if self.connection.is_none() {
            self.connect(env, actions);
        }
        assert!(self.operations().next().is_some(), "something to resume");
        let first_numbered = self.operations().find_map(|op| op.number);
        let Session::Known { id, token, next } = &self.session else {
            unreachable!("resuming an unknown session")
        };
        let first = first_numbered.unwrap_or(*next);
        let bytes = command_bytes(&[
            "SESSION".to_string(),
            id.to_string(),
            token.clone(),
            first.to_string(),
        ]);
        self.pending.push_front(Awaiting::Resumed);
        self.write(env, actions, bytes);
    }

    /// The answer to `SESSION id token n`: send the unanswered operations again, or give
    /// them up.
    fn on_resumed(&mut self, env: &mut Env<'_>, reply: Frame, actions: &mut Vec<Action>) {
        match reply {
            Frame::Simple(_) => {
                let bytes: Vec<u8> = self
                    .operations()
                    .flat_map(|op| {
                        op.preamble_seen = 0;
                        op.bytes.clone()
                    })
                    .collect();
                self.write(env, actions, bytes);
            }
            Frame::Error(error) if error.contains("cannot be resumed") => {
                actions.push(Action::Note(format!("client {}: {error}", self.index)));
                self.session = Session::Unknown;
                self.give_up_pending(Some(error), actions);
            }
            Frame::Error(_) => {
                // Not resumed, nothing changed (no leader yet): ask again after a while.
                self.resuming = true;
                let delay_us = env.rng.between(10_000, 50_000);
                actions.push(Action::Wake { delay_us });
            }
            other => unreachable!("SESSION id token n answered {other:?}"),
        }
    }

    /// The connection is gone: resume on a new one if possible, else give up what waits.
    fn lose_connection(&mut self, env: &mut Env<'_>, connection: u64, actions: &mut Vec<Action>) {
        self.connection = None;
        self.pending.retain(|a| !matches!(a, Awaiting::Resumed));
        let in_flight = self.operations().count();
        let resume = self.can_resume();
        actions.push(Action::Note(format!(
            "client {} lost connection {connection} with {in_flight} operations in flight{}",
            self.index,
            if resume {
                "; it resumes its session"
            } else {
                ""
            }
        )));
        if resume {
            self.resuming = true;
        } else {
            self.give_up_pending(None, actions);
            self.session = Session::Unknown;
        }
        let delay_us = env.rng.between(10_000, 50_000);
        actions.push(Action::Wake { delay_us });
    }

    /// Every unanswered operation gets an unknown outcome (`error` says why, if a node said).
    fn give_up_pending(&mut self, error: Option<String>, actions: &mut Vec<Action>) {
        while let Some(awaiting) = self.pending.pop_front() {
            if let Awaiting::Op(op) = awaiting {
                self.finish_operation(op, OpOutcome::Info, error.clone(), actions);
            }
        }
    }

    /// Ends `op` with `outcome`; `error` is the error the node answered, if any (it goes into
    /// the trace, which then says why an operation failed or is unknown).
    fn finish_operation(
        &mut self,
        op: InFlight,
        outcome: OpOutcome,
        error: Option<String>,
        actions: &mut Vec<Action>,
    ) {
        let InFlight {
            process,
            key,
            kind,
            must_complete,
            number,
            ..
        } = op;
        let place = match (number, &self.session) {
            (Some(number), Session::Known { id, .. }) => Place::Numbered {
                session: *id,
                number,
            },
            (None, _) if self.reads == Consistency::Stale => Place::StaleRead,
            _ => Place::Other,
        };
        // A read that ran but whose reply was lost (reads' replies are not kept) changes
        // nothing: after the heal it is simply not counted, and the client reads again. Nor is
        // an operation whose session the node no longer holds (seeds with tight session limits
        // evict sessions that are still in use): its unknown outcome is the truth, not a
        // cluster that failed to serve.
        let session_gone = error.as_deref().is_some_and(|error| {
            error.contains("its session is gone") || error.contains("cannot be resumed")
        });
        let excused = (kind.is_read_only() || session_gone) && outcome == OpOutcome::Info;
        let liveness = if !must_complete || excused {
            Liveness::NotCounted
        } else {
            self.liveness_left -= 1;
            if outcome == OpOutcome::Info {
                Liveness::Missed
            } else {
                Liveness::Completed
            }
        };
        actions.push(Action::Complete {
            process,
            key,
            kind,
            outcome,
            error,
            liveness,
            place,
        });
    }

    /// A compare-and-set of `key` from `expected` to `unique`, in one of Verity's three forms
    /// (drawn from the client's second stream): `CAS` on the value; `CAD`, which deletes;
    /// or `CASVER` on a version. `CASVER` uses the version the client last read of the key
    /// with `GETVER` when the value it read is a string: such values are unique to one write
    /// (an integer may be written again by increments), so the version matches exactly when
    /// the value does, and the history records the value. Otherwise it sends a version
    /// beyond any log index, which can never match, and records an expected value no client
    /// ever writes.
    fn compare_and_set(&mut self, key: String, expected: String, unique: String) -> Drawn {
        match self.later.below(10) {
            0 => {
                let kind = OpKind::Cas {
                    expected: Some(expected.clone()),
                    new: None,
                };
                Drawn::single(key, kind, &["CAD"], &[&expected])
            }
            1 | 2 => {
                let (expected, version) = match self.versions.get(&key) {
                    Some((value, version)) if parse_integer(value.as_bytes()).is_none() => {
                        (value.clone(), *version)
                    }
                    _ => (
                        format!("never.{unique}"),
                        FUTURE_VERSION + self.later.below(1 << 20),
                    ),
                };
                let kind = OpKind::Cas {
                    expected: Some(expected),
                    new: Some(unique.clone()),
                };
                Drawn::single(key, kind, &["CASVER"], &[&version.to_string(), &unique])
            }
            _ => {
                let kind = OpKind::Cas {
                    expected: Some(expected.clone()),
                    new: Some(unique.clone()),
                };
                Drawn::single(key, kind, &["CAS"], &[&expected, &unique])
            }
        }
    }

    /// Draws the next operation from the workload mix; `written` is every client's count of
    /// values written.
    fn next_operation(&mut self, env: &mut Env<'_>, written: &[u64]) -> Drawn {
        let number = env.rng.below(env.options.keys);
        let key = format!("k{number}");
        self.written += 1;
        let unique = format!("c{}.{}", self.index, self.written);
        let mix = env.options.mix;
        let draw = env.rng.below(mix.total());
        let weights = [
            mix.get, mix.put, mix.delete, mix.cas, mix.append, mix.incr, mix.multi, mix.txn,
            mix.swap,
        ];
        let mut chosen = 0;
        let mut below = draw;
        while below >= weights[chosen] {
            below -= weights[chosen];
            chosen += 1;
        }
        if self.reader {
            chosen = 0;
        }
        match chosen {
            0 if self.later.chance(250) => Drawn {
                form: Form::GetVer,
                ..Drawn::single(key, OpKind::Get, &["GETVER"], &[])
            },
            0 => Drawn::single(key, OpKind::Get, &["GET"], &[]),
            1 => Drawn::single(key, OpKind::Put(unique.clone()), &["SET"], &[&unique]),
            2 => Drawn::single(key, OpKind::Delete, &["DEL"], &[]),
            3 => {
                // Expect either absence or a value some client may have written.
                let expected = if env.rng.chance(300) {
                    None
                } else {
                    let writer = env.rng.below(env.options.clients);
                    let writes = if writer as usize == self.index {
                        self.written
                    } else {
                        written[writer as usize]
                    };
                    let n = env.rng.between(1, writes.max(1));
                    Some(format!("c{writer}.{n}"))
                };
                match expected {
                    Some(expected) => self.compare_and_set(key, expected, unique),
                    None => Drawn {
                        form: Form::SetNx,
                        ..Drawn::single(
                            key,
                            OpKind::Cas {
                                expected: None,
                                new: Some(unique.clone()),
                            },
                            &["SET"],
                            &[&unique, "NX"],
                        )
                    },
                }
            }
            4 => Drawn::single(key, OpKind::Append(unique.clone()), &["APPEND"], &[&unique]),
            5 => {
                // Mostly on a counter, sometimes on a key that may hold a string.
                let key = if env.rng.chance(600) {
                    format!("n{number}")
                } else {
                    key
                };
                let by = i64::try_from(env.rng.between(1, 3)).expect("small");
                if env.rng.chance(300) {
                    Drawn::single(key, OpKind::Incr(-by), &["DECRBY"], &[&by.to_string()])
                } else {
                    Drawn::single(key, OpKind::Incr(by), &["INCRBY"], &[&by.to_string()])
                }
            }
            6 => {
                let keys = key_pair(env);
                match env.rng.below(3) {
                    0 => {
                        let parts = keys
                            .iter()
                            .enumerate()
                            .map(|(i, key)| (key, OpKind::Put(format!("{unique}.{i}"))))
                            .collect();
                        Drawn::multi("MSET", parts)
                    }
                    1 => Drawn::multi("MGET", keys.iter().map(|k| (k, OpKind::Get)).collect()),
                    _ => Drawn::multi("DEL", keys.iter().map(|k| (k, OpKind::Delete)).collect()),
                }
            }
            7 => {
                let pair = key_pair(env);
                let size = env.rng.between(2, 3);
                let mut parts = Vec::new();
                for i in 0..size {
                    let key = &pair[usize::from(env.rng.chance(500))];
                    let kind = match env.rng.below(4) {
                        0 => OpKind::Get,
                        1 => OpKind::Put(format!("{unique}.{i}")),
                        2 => OpKind::Append(format!("{unique}.{i}")),
                        _ => OpKind::Incr(1),
                    };
                    parts.push(Part {
                        key: key.clone(),
                        kind,
                    });
                }
                Drawn::transaction(parts)
            }
            _ => {
                let read_then = |kind| {
                    OpKind::Atomic(vec![
                        Part {
                            key: key.clone(),
                            kind: OpKind::Get,
                        },
                        Part {
                            key: key.clone(),
                            kind,
                        },
                    ])
                };
                match env.rng.below(3) {
                    0 => {
                        let kind = read_then(OpKind::Put(unique.clone()));
                        Drawn::single(key, kind, &["GETSET"], &[&unique])
                    }
                    1 => {
                        let kind = read_then(OpKind::Delete);
                        Drawn::single(key, kind, &["GETDEL"], &[])
                    }
                    _ => {
                        let kind = OpKind::Cas {
                            expected: None,
                            new: Some(unique.clone()),
                        };
                        Drawn::single(key, kind, &["SETNX"], &[&unique])
                    }
                }
            }
        }
    }
}

/// RESP bytes of a command.
fn command_bytes<W: AsRef<[u8]>>(words: &[W]) -> Vec<u8> {
    let mut bytes = Vec::new();
    Frame::Array(
        words
            .iter()
            .map(|w| Frame::Bulk(w.as_ref().to_vec()))
            .collect(),
    )
    .encode(&mut bytes);
    bytes
}

/// A pair of keys for a command over several keys: `m0`+`m1`, `m2`+`m3`, … (half as many
/// pairs as single keys, at least one). Only such commands touch them, so each pair is a
/// small group for the checker: a pair's operations are searched together, and the
/// search's work grows with the product of its keys' concurrent writes.
fn key_pair(env: &mut Env<'_>) -> [String; 2] {
    let pair = env.rng.below((env.options.keys / 2).max(1));
    [format!("m{}", 2 * pair), format!("m{}", 2 * pair + 1)]
}

/// An operation drawn from the workload, ready to send.
struct Drawn {
    /// Its history key (a multi-key operation's first key).
    key: String,
    kind: OpKind,
    /// Its RESP bytes.
    bytes: Vec<u8>,
    form: Form,
    /// Replies before its own (a transaction's `MULTI` and `QUEUED`s).
    preamble: usize,
}

/// How an operation's reply reads, where the command is not the obvious one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Form {
    /// As its operation kind says.
    Plain,
    /// `CAS` expecting absence, sent as `SET key new NX`: `OK` or nil.
    SetNx,
    /// A read sent as `GETVER key`: `[value, version]` or nil.
    GetVer,
}

impl Drawn {
    /// A single-key command: `name key arguments…`.
    fn single(key: String, kind: OpKind, name: &[&str], arguments: &[&str]) -> Drawn {
        let words: Vec<&str> = name
            .iter()
            .copied()
            .chain([key.as_str()])
            .chain(arguments.iter().copied())
            .collect();
        Drawn {
            bytes: command_bytes(&words),
            key,
            kind,
            form: Form::Plain,
            preamble: 0,
        }
    }

    /// One command over several keys (`MSET k v k v`, `MGET k k`, `DEL k k`).
    fn multi(name: &str, parts: Vec<(&String, OpKind)>) -> Drawn {
        let mut words = vec![name.to_string()];
        for (key, kind) in &parts {
            words.push((*key).clone());
            if let OpKind::Put(value) = kind {
                words.push(value.clone());
            }
        }
        let parts: Vec<Part> = parts
            .into_iter()
            .map(|(key, kind)| Part {
                key: key.clone(),
                kind,
            })
            .collect();
        Drawn {
            key: parts[0].key.clone(),
            bytes: command_bytes(&words),
            kind: OpKind::Atomic(parts),
            form: Form::Plain,
            preamble: 0,
        }
    }

    /// `MULTI`, one command per part, `EXEC`.
    fn transaction(parts: Vec<Part>) -> Drawn {
        let mut bytes = command_bytes(&["MULTI"]);
        for part in &parts {
            let key = part.key.as_str();
            let command = match &part.kind {
                OpKind::Get => command_bytes(&["GET", key]),
                OpKind::Put(value) => command_bytes(&["SET", key, value]),
                OpKind::Append(value) => command_bytes(&["APPEND", key, value]),
                OpKind::Incr(by) => command_bytes(&["INCRBY", key, &by.to_string()]),
                other => unreachable!("the workload's transactions hold no {other:?}"),
            };
            bytes.extend_from_slice(&command);
        }
        bytes.extend_from_slice(&command_bytes(&["EXEC"]));
        Drawn {
            key: parts[0].key.clone(),
            preamble: 1 + parts.len(),
            kind: OpKind::Atomic(parts),
            bytes,
            form: Form::Plain,
        }
    }
}

/// What a reply says about an operation (see the module documentation).
fn outcome(op: &InFlight, reply: Frame) -> OpOutcome {
    match (&op.kind, reply) {
        (_, Frame::Error(error)) if error.contains("used by a different command") => {
            unreachable!("the client numbered p{} wrongly: {error}", op.process)
        }
        // A `fail` of these would claim the comparison (or the parse) was made.
        (OpKind::Cas { .. } | OpKind::Incr(_), Frame::Error(error))
            if error.contains("not executed") =>
        {
            OpOutcome::Info
        }
        (_, Frame::Error(error)) if error.contains("not executed") => OpOutcome::Fail,
        (OpKind::Incr(_), Frame::Error(error)) if error.contains(NOT_AN_INTEGER) => OpOutcome::Fail,
        (_, Frame::Error(_)) => OpOutcome::Info,
        (OpKind::Cas { .. }, Frame::Simple(_)) if op.form == Form::SetNx => OpOutcome::Ok(None),
        (OpKind::Cas { .. }, Frame::Null) if op.form == Form::SetNx => OpOutcome::Fail,
        (OpKind::Get, Frame::Array(mut read)) if op.form == Form::GetVer && read.len() == 2 => {
            single_outcome(&OpKind::Get, read.swap_remove(0))
        }
        (OpKind::Atomic(parts), Frame::Array(replies)) if replies.len() == parts.len() => {
            OpOutcome::Each(
                parts
                    .iter()
                    .zip(replies)
                    .map(|(part, reply)| single_outcome(&part.kind, reply))
                    .collect(),
            )
        }
        (OpKind::Atomic(parts), Frame::Simple(_) | Frame::Integer(_)) => {
            OpOutcome::Each(vec![OpOutcome::Ok(None); parts.len()])
        }
        // GETSET and GETDEL answer the value they read first.
        (OpKind::Atomic(parts), reply @ (Frame::Bulk(_) | Frame::Null))
            if parts[0].kind == OpKind::Get =>
        {
            let mut each = vec![single_outcome(&OpKind::Get, reply)];
            each.resize(parts.len(), OpOutcome::Ok(None));
            OpOutcome::Each(each)
        }
        (kind, reply) => single_outcome(kind, reply),
    }
}

/// A `CASVER` version beyond any log index a run reaches: it can never match.
const FUTURE_VERSION: u64 = 1 << 62;

/// Mixed into the seed (and the client's index) for each client's second stream.
const CLIENT_DRAWS_SALT: u64 = 0x51d3_c1e7_0b5e_ed02;

/// What a node's error says of a command it failed before giving it a number in the session
/// (a command behind a transaction's `EXEC`, which waits for every earlier command).
const NEVER_NUMBERED: &str = "(not yet numbered in a session)";

/// The error a node gives an increment of a value that is not an integer.
const NOT_AN_INTEGER: &str = "not an integer";

/// What one command's reply says of a single-key operation that ran (a whole command's reply,
/// or one element of `EXEC`'s).
fn single_outcome(kind: &OpKind, reply: Frame) -> OpOutcome {
    let text = |bytes: Vec<u8>| String::from_utf8(bytes).expect("the workload writes UTF-8");
    match (kind, reply) {
        (OpKind::Get, Frame::Bulk(value)) => OpOutcome::Ok(Some(text(value))),
        (OpKind::Get, Frame::Null) => OpOutcome::Ok(None),
        (OpKind::Put(_), Frame::Simple(_))
        | (OpKind::Append(_) | OpKind::Delete, Frame::Integer(_)) => OpOutcome::Ok(None),
        (OpKind::Cas { .. }, Frame::Integer(1)) => OpOutcome::Ok(None),
        (OpKind::Cas { .. }, Frame::Integer(0)) => OpOutcome::Fail,
        (OpKind::Incr(_), Frame::Integer(n)) => OpOutcome::Ok(Some(n.to_string())),
        (OpKind::Incr(_), Frame::Error(error)) if error.contains(NOT_AN_INTEGER) => OpOutcome::Fail,
        (kind, reply) => unreachable!("reply {reply:?} does not answer {kind:?}"),
    }
}
