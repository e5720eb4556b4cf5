//! One client connection as a state machine: bytes in, operations to submit, bytes out.
//!
//! A [`Connection`] owns every decision a node makes for a client: parsing commands
//! ([`crate::resp`]), answering connection commands, queueing `MULTI` transactions and `WATCH`
//! versions, opening or resuming the connection's exactly-once session, numbering its
//! commands, choosing what to (re)submit and when, and turning every outcome into the reply
//! Redis would give, in order. It does no IO and reads no clock: its host (the tokio server in
//! production, the simulator in tests) feeds it bytes, results and the time, and carries out
//! what it asks, in a loop:
//!
//! ```text
//! receive(bytes) ──► process(now, host) ──► poll_submission(now) ─► submit each op (propose or forward)
//!        ▲                   │                                          │
//!        │                   ▼                                          ▼
//!   wants_input()      take_output() ─► write      on_result(attempt, result, now) ─► process …
//!                      report_unwritten(bytes)     next_deadline_ms() ─► process(now) when due
//!                      is_closed()  ─► close (output_overflowed(): without writing)
//! ```
//!
//! # Order
//!
//! Replies leave in the order commands arrived. Data commands are numbered in arrival order
//! within the session, and the state machine executes a session's numbers in order (see
//! [`verity_core::SessionError::Early`]): a command whose predecessor has not executed is
//! refused and retried, never run ahead of it. A command is allowed to skip its
//! predecessors only once every one of them has been answered to the client. So a
//! connection's commands take effect in the order it sent them, across leader changes,
//! forwarding and retries, as Redis promises.
//!
//! # Retries and the truth
//!
//! Every command is retried under its number until it has an outcome or `request_timeout_ms`
//! passes; a retry executes at most once. When the connection must give up, the error says
//! whether the command certainly did not run, or that its outcome is unknown, naming the
//! session and number and the recipe that learns it (`SESSION id token number`, then the same
//! command). Bounds: at most `pipeline_depth` commands are read ahead of their replies, and a
//! transaction queues at most [`MAX_QUEUED_COMMANDS`] commands and `max_transaction_bytes`.
//! Replies the client does not read pause reading, and past the output limit drop the
//! connection ([`output`]).

use crate::auth::{self, Users};
use crate::command::{ClientCommand, ClientSub, Consistency};
use crate::introspection;
use crate::resp::{self, Limits};
use crate::tally::{self, Tally};
use output::Output;
pub use output::{OutputLimit, READ_PAUSE_BYTES};
use std::collections::VecDeque;
use std::sync::Arc;
use verity_core::kv::cmd::{Transaction, VerityCommand};
use verity_core::{
    Access, ClientId, ClientOp, ClientRequest, Command, Frame, LogIndex, ReadConsistency, Reply,
    Sequence, SessionError, SessionToken,
};

pub mod output;

/// Most commands one `MULTI` may queue before `EXEC`.
pub const MAX_QUEUED_COMMANDS: usize = 4_096;

/// The first delay between attempts of one operation, doubled per attempt up to
/// [`MAX_BACKOFF_MS`].
const FIRST_BACKOFF_MS: u64 = 2;
/// The longest delay between attempts.
const MAX_BACKOFF_MS: u64 = 100;

/// Settings of every connection of a node.
#[derive(Clone, Debug)]
pub struct ConnectionConfig {
    /// Argument count and size limits of one command.
    pub limits: Limits,
    /// Most commands read ahead of their replies; reading stops beyond it.
    pub pipeline_depth: usize,
    /// How long one command may keep retrying before the connection gives up on it.
    pub request_timeout_ms: u64,
    /// Most payload bytes (keys and values) one `MULTI` may queue: a transaction is one log
    /// entry, which must fit in a replication frame.
    pub max_transaction_bytes: u64,
    /// Who may use a connection.
    pub users: Arc<Users>,
    /// When a client that does not read its replies is disconnected.
    pub output_limit: OutputLimit,
    /// How a new connection's reads are served until it says otherwise (`CONSISTENCY`).
    pub consistency: Consistency,
}

impl ConnectionConfig {
    /// The most bytes of an incomplete command kept before it is refused as too large.
    #[must_use]
    pub fn max_request_bytes(&self) -> usize {
        self.limits.max_arg_bytes.saturating_mul(2) + resp::MAX_INLINE_BYTES
    }
}

/// What a connection asks its node when a command needs the node's state.
pub trait Host {
    /// The `INFO` text (Redis's `# Section` layout).
    fn info(&self) -> String;
    /// The leader's id and client address, if a leader is known.
    fn leader(&self) -> Option<(u64, Option<String>)>;
    /// This node's role: `leader`, `follower` or `candidate`.
    fn role(&self) -> &'static str;
    /// `CONFIG GET`'s settings as `(name, value)`.
    fn settings(&self) -> Vec<(&'static str, String)>;
    /// Asks this node, if it leads, to hand its leadership to `to` (to its most up-to-date
    /// live peer if `None`); the transfer runs on after the answer. `Err` says why it cannot
    /// start (not the leader, not a peer).
    fn hand_over(&self, to: Option<u64>) -> Result<(), String>;
}

/// Identifies one submission of one operation; its result comes back with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AttemptId(pub u64);

/// An operation for the host to carry out through its [`crate::Router`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Submission {
    /// Echo it with the result.
    pub attempt: AttemptId,
    /// The operation.
    pub op: Operation,
}

/// What a submission asks of the node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Operation {
    /// Propose this as a log entry (on the leader), or forward it there.
    Propose(ClientOp),
    /// Serve this read of named keys without a log entry ([`verity_core::Node::read`]).
    Read {
        /// The read.
        command: Command,
        /// How.
        consistency: ReadConsistency,
        /// The connection's highest index seen: the read runs on a state applied at least
        /// this far, so it sees the connection's own writes and never goes back in time.
        floor: LogIndex,
    },
}

/// What became of one submission.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AttemptResult {
    /// The operation was applied with this reply.
    Applied {
        /// Its reply.
        reply: Reply,
        /// Where it stands in the log: its entry's index, or for a read the applied index of
        /// the state it read (see [`verity_core::raft::ClientReply::index`]).
        index: LogIndex,
    },
    /// Nothing was proposed for this attempt, for `reason`.
    NotProposed {
        /// Why.
        reason: Refusal,
        /// Whether a copy of the attempt may still be proposed, so the operation may still
        /// take effect: a leader refused the copy this node forwarded, and the network may
        /// have duplicated the forward (another copy may reach a leader that proposes it).
        /// `false` only when this node decided alone: it leads, or it knows no leader.
        copies_may_run: bool,
    },
    /// It was proposed but its entry was overwritten, or no answer came in time: it may
    /// still take effect.
    Unknown,
    /// The node is stopping: no answer will come.
    Stopped,
}

/// Why nothing was proposed for an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No leader took it.
    NoLeader,
    /// The leader refused it for now: too many entries are waiting to commit.
    Overloaded,
}

/// Why the connection is still retrying, for the error it gives if it must stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Waiting {
    Nothing,
    NoLeader,
    Overloaded,
    Answer,
}

impl Waiting {
    fn of(result: &AttemptResult) -> Waiting {
        match result {
            AttemptResult::NotProposed {
                reason: Refusal::NoLeader,
                ..
            } => Waiting::NoLeader,
            AttemptResult::NotProposed {
                reason: Refusal::Overloaded,
                ..
            } => Waiting::Overloaded,
            _ => Waiting::Answer,
        }
    }

    fn code_and_reason(self) -> (&'static str, &'static str) {
        match self {
            Waiting::NoLeader => ("CLUSTERDOWN", "no leader was reachable"),
            Waiting::Overloaded => ("TRYAGAIN", "the leader stayed overloaded"),
            Waiting::Nothing | Waiting::Answer => ("TIMEOUT", "no answer came"),
        }
    }
}

/// What a data command's result is for.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Purpose {
    /// The client's reply.
    Reply,
    /// `WATCH`: the versions to remember; the client is answered `OK`.
    Watch(Vec<Vec<u8>>),
}

/// A data command in the session, from arrival to outcome.
#[derive(Clone, Debug)]
struct Pending {
    command: Command,
    name: String,
    purpose: Purpose,
    /// Its number, once the session is known; with the session it belongs to.
    number: Option<(ClientId, Sequence)>,
    /// Attempts made so far.
    attempts: u32,
    in_flight: Option<AttemptId>,
    /// Whether an earlier attempt may have executed.
    maybe_executed: bool,
    retry_at_ms: u64,
    deadline_ms: u64,
    waiting: Waiting,
    /// `EXEC`: the transaction's commands; the watched versions are added when it is sent.
    exec: Option<Vec<Command>>,
    /// How a read served without the log is served; `None` for commands of the log.
    read: Option<ReadConsistency>,
    /// Such a read's answer, held until every read before it in the connection is answered:
    /// if an earlier one fails and runs again, this one runs again after it, so the reads
    /// of a pipeline see the store in the order they were sent.
    held: Option<Frame>,
}

/// One command between arrival and reply.
#[derive(Clone, Debug)]
enum Slot {
    /// The reply is known.
    Ready(Frame),
    /// Waiting for the state machine.
    Pending(Box<Pending>),
    /// `SESSION id token [n]`: waiting to learn the session's highest number.
    Resume {
        client: ClientId,
        token: SessionToken,
        retry: Option<Sequence>,
        in_flight: Option<AttemptId>,
        attempts: u32,
        retry_at_ms: u64,
        deadline_ms: u64,
        waiting: Waiting,
    },
    /// `SESSION`: answered when everything before it is (it shows their effect) and the
    /// connection has a session (it opens one if it has none). `next` is the number of the
    /// first data command after it, once that is numbered.
    ShowSession {
        next: Option<(ClientId, Sequence)>,
        deadline_ms: u64,
    },
    /// Close the connection once everything before is written.
    Close,
}

/// The connection's exactly-once session.
#[derive(Clone, Debug)]
enum Session {
    /// None yet (or it was lost).
    None,
    /// An `OpenSession` is being submitted.
    Opening {
        in_flight: Option<AttemptId>,
        attempts: u32,
        retry_at_ms: u64,
        waiting: Waiting,
    },
    /// Open: commands are numbered from `next`, one by one.
    Open {
        client: ClientId,
        token: SessionToken,
        next: Sequence,
        /// Whether this connection resumed the session (`SESSION id token n`) rather than
        /// opened it: then any number it gives may have run already, sent by another
        /// connection, so a command is never run again in a new session.
        resumed: bool,
        /// The session's highest number that had run when this connection resumed it: a
        /// read sent again before a command numbered up to it stood before commands that
        /// already ran, so it cannot be served in its place now.
        ran_up_to: Sequence,
    },
}

/// A client connection. See the module documentation.
#[derive(Debug)]
pub struct Connection {
    id: u64,
    config: ConnectionConfig,
    input: Vec<u8>,
    /// Where parsing of an incomplete command at the front of `input` stopped.
    parser: resp::CommandParser,
    slots: VecDeque<Slot>,
    session: Session,
    /// The token for the next session this connection opens.
    fresh_token: SessionToken,
    /// `MULTI` … : the queued commands, and whether one was refused (then `EXEC` aborts).
    transaction: Option<(Vec<Command>, bool)>,
    /// `WATCH`ed keys with the versions read.
    watched: Vec<(Vec<u8>, u64)>,
    name: Option<Vec<u8>>,
    /// How reads are served (`CONSISTENCY`).
    consistency: Consistency,
    /// The highest log index of any answer this connection received (its writes' entries,
    /// its reads' states, its session's opening or resumption): no read of it is served on
    /// an older state (read-your-writes and monotonic reads, even for stale reads).
    floor: LogIndex,
    /// Whether the client may use the connection (it authenticated, or needs not).
    authenticated: bool,
    /// Protected mode turned this (non-loopback) client away: its first command is answered
    /// `-DENIED` and the connection closes.
    denied: bool,
    next_attempt: u64,
    output: Output,
    /// The command each reply still in `slots` answers, in order (`Close` has none).
    replies_for: VecDeque<&'static str>,
    /// Replies written per command since the host last took them.
    tally: Tally,
    closing: bool,
    closed: bool,
    /// The catalogued bug switched on, if any (testing builds only).
    #[cfg(feature = "bug-catalogue")]
    bug: Option<verity_core::bugs::Bug>,
}

impl Connection {
    /// A new connection with id `id` (for `CLIENT ID`); `token` guards the session it will
    /// open, so it must be unpredictable (the host draws it from a seeded or OS generator).
    /// `loopback` says whether the client connected over the loopback interface (protected
    /// mode serves only those when no password is set).
    #[must_use]
    pub fn new(
        id: u64,
        config: ConnectionConfig,
        token: SessionToken,
        loopback: bool,
    ) -> Connection {
        Connection {
            id,
            authenticated: !config.users.required(),
            consistency: config.consistency,
            floor: LogIndex(0),
            denied: config.users.denies_remote() && !loopback,
            config,
            input: Vec::new(),
            parser: resp::CommandParser::default(),
            slots: VecDeque::new(),
            session: Session::None,
            fresh_token: token,
            transaction: None,
            watched: Vec::new(),
            name: None,
            next_attempt: 0,
            output: Output::default(),
            replies_for: VecDeque::new(),
            tally: Tally::default(),
            closing: false,
            closed: false,
            #[cfg(feature = "bug-catalogue")]
            bug: None,
        }
    }

    /// Switches catalogued bug `bug` on in this connection (the simulator's hunts).
    #[cfg(feature = "bug-catalogue")]
    #[must_use]
    pub fn with_bug(mut self, bug: Option<verity_core::bugs::Bug>) -> Connection {
        self.bug = bug;
        self
    }

    /// Appends bytes read from the client. Call [`Connection::process`] next.
    pub fn receive(&mut self, bytes: &[u8]) {
        if !self.closing {
            self.input.extend_from_slice(bytes);
        }
    }

    /// Whether the host should read more: fewer than `pipeline_depth` commands wait for their
    /// replies, fewer than [`READ_PAUSE_BYTES`] of replies wait to be written, and the
    /// connection is not closing.
    #[must_use]
    pub fn wants_input(&self) -> bool {
        !self.closing && self.slots.len() < self.config.pipeline_depth && !self.output.wants_pause()
    }

    /// The client closed its side: answer what was sent, then close.
    pub fn on_client_closed(&mut self) {
        if !self.closing {
            self.closing = true;
            self.slots.push_back(Slot::Close);
        }
    }

    /// Parses buffered input into commands while [`Connection::wants_input`] (up to
    /// `pipeline_depth` waiting, none while reading is paused for unwritten replies), answers
    /// what can be answered now, gives up on commands past their deadline, and moves finished
    /// replies to the output.
    pub fn process(&mut self, now_ms: u64, host: &dyn Host) {
        self.parse_input(now_ms, host);
        self.expire(now_ms);
        self.flush();
        self.enforce_output_limit(now_ms);
    }

    /// The next operation to submit, if any is due at `now_ms`. Call until `None`.
    pub fn poll_submission(&mut self, now_ms: u64) -> Option<Submission> {
        let first_waiting = self
            .slots
            .iter()
            .position(|s| matches!(s, Slot::Pending(_) | Slot::Resume { .. }));
        if let Some(index) = first_waiting
            && matches!(self.slots[index], Slot::Resume { .. })
        {
            // A resume changes the session: it goes once everything before it is answered.
            return self.poll_resume(index, now_ms);
        }
        if let Some(submission) = self.poll_session(now_ms) {
            return Some(submission);
        }
        let open = match self.session {
            Session::Open { client, token, .. } => Some((client, token)),
            Session::None | Session::Opening { .. } => None,
        };
        // Whether an earlier data command has no outcome yet, and whether one has no number
        // in this session yet (numbers are given in arrival order). Reads served without the
        // log take no number; one goes only once every earlier command of the log has its
        // outcome (it must see their effects), and a command of the log only once every
        // earlier such read is answered (the read must not see it).
        let (mut earlier_unsettled, mut earlier_unnumbered) = (false, false);
        let mut earlier_read_unanswered = false;
        for index in 0..self.slots.len() {
            let pending = match &mut self.slots[index] {
                Slot::Ready(_) | Slot::Close | Slot::ShowSession { .. } => continue,
                Slot::Resume { .. } => return None,
                Slot::Pending(pending) => pending,
            };
            if let Some(consistency) = pending.read {
                if earlier_unsettled {
                    return None;
                }
                if let Session::Open {
                    next, ran_up_to, ..
                } = self.session
                    && next <= ran_up_to
                    && pending.in_flight.is_none()
                    && pending.held.is_none()
                {
                    let frame = refusal(pending, SessionError::ReplyNotKept, &self.session);
                    self.slots[index] = Slot::Ready(frame);
                    self.release_reads();
                    self.flush();
                    return self.poll_submission(now_ms);
                }
                let due = pending.in_flight.is_none()
                    && pending.held.is_none()
                    && pending.retry_at_ms <= now_ms;
                if due {
                    let attempt = self.new_attempt();
                    let Slot::Pending(pending) = &mut self.slots[index] else {
                        unreachable!()
                    };
                    pending.in_flight = Some(attempt);
                    pending.attempts += 1;
                    let floor = if crate::injected!(self.bug, StaleReadBelowFloor) {
                        LogIndex(0)
                    } else {
                        self.floor
                    };
                    let op = Operation::Read {
                        command: pending.command.clone(),
                        consistency,
                        floor,
                    };
                    return Some(Submission { attempt, op });
                }
                earlier_read_unanswered = true;
                continue;
            }
            let (false, Some((client, token))) = (earlier_read_unanswered, open) else {
                return None;
            };
            if pending.number.is_some_and(|(c, _)| c != client) && pending.in_flight.is_none() {
                // Numbered in a session that is gone.
                if pending.maybe_executed {
                    let frame = refusal(pending, SessionError::UnknownSession, &self.session);
                    self.slots[index] = Slot::Ready(frame);
                    self.flush();
                    return self.poll_submission(now_ms);
                }
                pending.number = None;
            }
            let numbered = pending.number.is_some_and(|(c, _)| c == client);
            let due = pending.in_flight.is_none() && pending.retry_at_ms <= now_ms;
            let exec_waits = pending.exec.is_some() && earlier_unsettled;
            if exec_waits || (!numbered && earlier_unnumbered) {
                // EXEC sends the versions WATCH read, so every earlier command must be done;
                // and a command is numbered only after every earlier one.
                return None;
            }
            if due && (numbered || !earlier_unnumbered) {
                let attempt = self.new_attempt();
                let sequence = self.number(index);
                let Slot::Pending(pending) = &mut self.slots[index] else {
                    unreachable!()
                };
                pending.in_flight = Some(attempt);
                pending.attempts += 1;
                let command = match &pending.exec {
                    Some(commands) => Command::Exec(Transaction {
                        watched: self.watched.clone(),
                        commands: commands.clone(),
                    }),
                    None => pending.command.clone(),
                };
                let op = Operation::Propose(ClientOp::Request(ClientRequest {
                    client,
                    token,
                    sequence,
                    may_skip_earlier: !earlier_unsettled
                        || crate::injected!(self.bug, IndependentRetries),
                    command,
                }));
                return Some(Submission { attempt, op });
            }
            earlier_unsettled = true;
            earlier_unnumbered |= !numbered;
        }
        None
    }

    /// Takes the result of `attempt`. Results of attempts the connection gave up on are
    /// ignored.
    pub fn on_result(&mut self, attempt: AttemptId, result: AttemptResult, now_ms: u64) {
        if let AttemptResult::Applied { index, .. } = result {
            self.floor = self.floor.max(index);
        }
        if let Session::Opening { in_flight, .. } = &self.session
            && *in_flight == Some(attempt)
        {
            self.on_session_result(result, now_ms);
            return;
        }
        let Some(index) = self.slots.iter().position(|slot| match slot {
            Slot::Pending(p) => p.in_flight == Some(attempt),
            Slot::Resume { in_flight, .. } => *in_flight == Some(attempt),
            _ => false,
        }) else {
            return;
        };
        if matches!(self.slots[index], Slot::Resume { .. }) {
            self.on_resume_result(index, result, now_ms);
        } else {
            self.on_pending_result(index, result, now_ms);
        }
        self.flush();
        self.enforce_output_limit(now_ms);
    }

    /// The earliest time at which [`Connection::process`] or
    /// [`Connection::poll_submission`] has something to do without new input.
    #[must_use]
    pub fn next_deadline_ms(&self) -> Option<u64> {
        let session = match &self.session {
            Session::Opening {
                in_flight: None,
                retry_at_ms,
                ..
            } => Some(*retry_at_ms),
            _ => None,
        };
        self.slots
            .iter()
            .filter_map(|slot| match slot {
                Slot::Pending(p) if p.in_flight.is_none() => Some(p.retry_at_ms.min(p.deadline_ms)),
                Slot::Pending(p) => Some(p.deadline_ms),
                Slot::Resume {
                    in_flight: None,
                    retry_at_ms,
                    deadline_ms,
                    ..
                } => Some((*retry_at_ms).min(*deadline_ms)),
                Slot::Resume { deadline_ms, .. } | Slot::ShowSession { deadline_ms, .. } => {
                    Some(*deadline_ms)
                }
                _ => None,
            })
            .chain(session)
            .chain(self.output.deadline_ms(self.config.output_limit))
            .min()
    }

    /// Bytes to write to the client (the replies finished so far, in order). They count
    /// against the output limit until the host reports them written
    /// ([`Connection::report_unwritten`]).
    pub fn take_output(&mut self) -> Vec<u8> {
        self.output.take()
    }

    /// The host has `bytes` of what it took with [`Connection::take_output`] still to write
    /// to the client (0, the initial value, when it writes everything at once).
    pub fn report_unwritten(&mut self, bytes: u64) {
        self.output.report_unwritten(bytes);
    }

    /// Reply bytes not yet written to the client: taken and unwritten, or not taken yet.
    #[must_use]
    pub fn buffered_output(&self) -> u64 {
        self.output.buffered()
    }

    /// Whether everything is answered and the connection should be closed (after writing the
    /// output, unless [`Connection::output_overflowed`]).
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Whether the client passed the output limit: the connection is closed and what it
    /// was not yet sent is discarded (close the socket without writing more).
    #[must_use]
    pub fn output_overflowed(&self) -> bool {
        self.output.overflowed()
    }

    /// Drops the connection if its unwritten replies pass the output limit at `now_ms`.
    fn enforce_output_limit(&mut self, now_ms: u64) {
        if !self.output.overflowed() && self.output.enforce(self.config.output_limit, now_ms) {
            self.closing = true;
            self.closed = true;
            self.clear_slots();
        }
    }

    /// The node is stopping: every waiting command is answered with what is known of it, and
    /// the connection closes.
    pub fn shut_down(&mut self) {
        for slot in &mut self.slots {
            let frame = match slot {
                Slot::Pending(pending) => Some(shutdown_error(pending, &self.session)),
                Slot::Resume { .. } => Some(Frame::error(
                    "ERR the node is shutting down; SESSION was not resumed: send it to another node",
                )),
                Slot::ShowSession { next, .. } => {
                    Some(session_frame(&self.session, *next).unwrap_or_else(|| {
                        Frame::error(
                            "ERR the node is shutting down; SESSION: no session was opened",
                        )
                    }))
                }
                Slot::Ready(_) | Slot::Close => None,
            };
            if let Some(frame) = frame {
                *slot = Slot::Ready(frame);
            }
        }
        self.closing = true;
        self.slots.push_back(Slot::Close);
        self.flush();
    }

    fn new_attempt(&mut self) -> AttemptId {
        self.next_attempt += 1;
        AttemptId(self.next_attempt)
    }

    /// The sequence number of pending slot `index`, assigning the session's next one if it
    /// has none.
    fn number(&mut self, index: usize) -> Sequence {
        let Session::Open {
            client,
            next,
            resumed,
            ..
        } = &mut self.session
        else {
            unreachable!("numbers are given only in an open session")
        };
        let Slot::Pending(pending) = &mut self.slots[index] else {
            unreachable!()
        };
        if let Some((_, sequence)) = pending.number {
            return sequence;
        }
        let sequence = *next;
        *next = Sequence(next.0 + 1);
        pending.number = Some((*client, sequence));
        pending.maybe_executed |= *resumed;
        for slot in &mut self.slots.range_mut(..index) {
            if let Slot::ShowSession {
                next: next @ None, ..
            } = slot
            {
                *next = Some((*client, sequence));
            }
        }
        sequence
    }

    fn poll_session(&mut self, now_ms: u64) -> Option<Submission> {
        let needs_session = self
            .slots
            .iter()
            .find(|slot| match slot {
                Slot::Pending(pending) => pending.read.is_none(),
                Slot::ShowSession { .. } | Slot::Resume { .. } => true,
                Slot::Ready(_) | Slot::Close => false,
            })
            .is_some_and(|slot| !matches!(slot, Slot::Resume { .. }));
        if matches!(self.session, Session::None) && needs_session {
            self.session = Session::Opening {
                in_flight: None,
                attempts: 0,
                retry_at_ms: now_ms,
                waiting: Waiting::Nothing,
            };
        }
        let Session::Opening {
            in_flight: None,
            retry_at_ms,
            ..
        } = self.session
        else {
            return None;
        };
        if retry_at_ms > now_ms {
            return None;
        }
        let attempt = self.new_attempt();
        if let Session::Opening {
            in_flight,
            attempts,
            ..
        } = &mut self.session
        {
            *in_flight = Some(attempt);
            *attempts += 1;
        }
        Some(Submission {
            attempt,
            op: Operation::Propose(ClientOp::OpenSession {
                token: self.fresh_token,
            }),
        })
    }

    fn on_session_result(&mut self, result: AttemptResult, now_ms: u64) {
        let Session::Opening { attempts, .. } = self.session else {
            unreachable!()
        };
        match result {
            AttemptResult::Applied {
                reply: Reply::SessionOpened { client },
                ..
            } => {
                tracing::debug!(
                    connection = self.id,
                    session = client.0,
                    "[CLIENT] session opened"
                );
                self.session = Session::Open {
                    client,
                    token: self.fresh_token,
                    next: Sequence(1),
                    resumed: false,
                    ran_up_to: Sequence(0),
                };
            }
            AttemptResult::Stopped => self.shut_down(),
            AttemptResult::Applied { reply: other, .. } => {
                debug_assert!(false, "opening a session answered {other:?}");
                self.session = Session::None;
            }
            failure => {
                // Opening twice only leaves an unused session to expire: retrying is harmless.
                self.session = Session::Opening {
                    in_flight: None,
                    attempts,
                    retry_at_ms: now_ms + backoff_ms(attempts),
                    waiting: Waiting::of(&failure),
                };
            }
        }
    }

    fn poll_resume(&mut self, index: usize, now_ms: u64) -> Option<Submission> {
        let attempt = self.new_attempt();
        let Slot::Resume {
            client,
            token,
            in_flight,
            attempts,
            retry_at_ms,
            ..
        } = &mut self.slots[index]
        else {
            unreachable!()
        };
        if in_flight.is_some() || *retry_at_ms > now_ms {
            return None;
        }
        *in_flight = Some(attempt);
        *attempts += 1;
        Some(Submission {
            attempt,
            op: Operation::Propose(ClientOp::Resume {
                client: *client,
                token: *token,
            }),
        })
    }

    fn on_resume_result(&mut self, index: usize, result: AttemptResult, now_ms: u64) {
        let Slot::Resume {
            client,
            token,
            retry,
            in_flight,
            attempts,
            retry_at_ms,
            waiting,
            ..
        } = &mut self.slots[index]
        else {
            unreachable!()
        };
        *in_flight = None;
        let frame = match result {
            AttemptResult::Applied {
                reply: Reply::Resumed { highest },
                ..
            } => {
                self.session = Session::Open {
                    client: *client,
                    token: *token,
                    next: retry.unwrap_or(Sequence(highest.0 + 1)),
                    resumed: true,
                    ran_up_to: highest,
                };
                Frame::ok()
            }
            AttemptResult::Applied {
                reply: Reply::Rejected(error),
                ..
            } => Frame::error(format!(
                "ERR SESSION {} cannot be resumed: {error}; this connection keeps its own session",
                client.0
            )),
            AttemptResult::Stopped => Frame::error(
                "ERR the node is shutting down; SESSION was not resumed: send it to another node",
            ),
            AttemptResult::Applied { reply: other, .. } => {
                debug_assert!(false, "resuming answered {other:?}");
                Frame::error("ERR internal error: unexpected answer to SESSION")
            }
            failure => {
                *waiting = Waiting::of(&failure);
                *retry_at_ms = now_ms + backoff_ms(*attempts);
                return;
            }
        };
        self.slots[index] = Slot::Ready(frame);
    }

    fn on_pending_result(&mut self, index: usize, result: AttemptResult, now_ms: u64) {
        let Slot::Pending(pending) = &mut self.slots[index] else {
            unreachable!()
        };
        pending.in_flight = None;
        if pending.read.is_some() {
            self.on_read_result(index, result, now_ms);
            return;
        }
        let retry = |pending: &mut Pending, result: &AttemptResult, now_ms: u64| {
            pending.waiting = Waiting::of(result);
            pending.retry_at_ms = now_ms + backoff_ms(pending.attempts);
        };
        let frame = match result {
            AttemptResult::Applied {
                reply: Reply::Executed(frame),
                ..
            } => match &pending.purpose {
                Purpose::Reply => frame,
                Purpose::Watch(keys) => {
                    let versions = match frame {
                        Frame::Array(items) => items,
                        other => unreachable!("a version read answers an array, not {other:?}"),
                    };
                    for (key, version) in keys.iter().zip(versions) {
                        let Frame::Integer(version) = version else {
                            unreachable!("versions are integers")
                        };
                        self.watched.retain(|(k, _)| k != key);
                        self.watched.push((key.clone(), version.unsigned_abs()));
                    }
                    Frame::ok()
                }
            },
            AttemptResult::Applied {
                reply: Reply::Rejected(SessionError::Early),
                ..
            } => {
                retry(pending, &AttemptResult::Unknown, now_ms);
                pending.retry_at_ms = now_ms + FIRST_BACKOFF_MS;
                return;
            }
            AttemptResult::Applied {
                reply: Reply::Rejected(SessionError::UnknownSession),
                ..
            } => {
                // The session is gone: commands not yet numbered go to a new one.
                if let Session::Open { client, .. } = self.session
                    && pending.number.is_some_and(|(c, _)| c == client)
                {
                    self.session = Session::None;
                }
                if pending.maybe_executed && !crate::injected!(self.bug, RerunAfterUnknownSession) {
                    // It may have run: never run it again, say so.
                    refusal(pending, SessionError::UnknownSession, &self.session)
                } else {
                    // Nothing of this command ever ran: run it in the new session.
                    pending.number = None;
                    pending.retry_at_ms = now_ms;
                    return;
                }
            }
            AttemptResult::Applied {
                reply: Reply::Rejected(SessionError::OutOfOrder),
                ..
            } if crate::injected!(self.bug, IndependentRetries) => {
                pending.number = None;
                pending.retry_at_ms = now_ms;
                return;
            }
            AttemptResult::Applied {
                reply: Reply::Rejected(error),
                ..
            } => refusal(pending, error, &self.session),
            AttemptResult::Applied { reply: other, .. } => {
                debug_assert!(false, "a request answered {other:?}");
                Frame::error("ERR internal error: unexpected answer")
            }
            AttemptResult::Stopped => shutdown_error(pending, &self.session),
            failure @ AttemptResult::NotProposed { copies_may_run, .. } => {
                pending.maybe_executed |=
                    copies_may_run && !crate::injected!(self.bug, TrustForwardedRefusal);
                retry(pending, &failure, now_ms);
                return;
            }
            AttemptResult::Unknown => {
                pending.maybe_executed = true;
                retry(pending, &AttemptResult::Unknown, now_ms);
                return;
            }
        };
        if pending.exec.is_some() {
            self.watched.clear();
        }
        self.slots[index] = Slot::Ready(frame);
    }

    /// The result of a read served without the log, at slot `index`. An answer is held until
    /// the reads before it are answered; a failure sends the read again after a backoff, and
    /// every later read of the run with it, after it (their answers, if any, are dropped: a
    /// node serves its reads in the order they come, so the reads then see the store in the
    /// order they were sent).
    fn on_read_result(&mut self, index: usize, result: AttemptResult, now_ms: u64) {
        let Slot::Pending(pending) = &mut self.slots[index] else {
            unreachable!()
        };
        match result {
            AttemptResult::Applied {
                reply: Reply::Executed(frame),
                ..
            } => pending.held = Some(frame),
            AttemptResult::Stopped => {
                self.slots[index] = Slot::Ready(shutdown_error(pending, &self.session));
            }
            AttemptResult::Applied { reply: other, .. } => {
                debug_assert!(false, "a read answered {other:?}");
                self.slots[index] =
                    Slot::Ready(Frame::error("ERR internal error: unexpected answer"));
            }
            failure @ (AttemptResult::NotProposed { .. } | AttemptResult::Unknown) => {
                pending.waiting = Waiting::of(&failure);
                let retry_at_ms = now_ms + backoff_ms(pending.attempts);
                pending.retry_at_ms = retry_at_ms;
                for slot in self.slots.iter_mut().skip(index + 1) {
                    let Slot::Pending(later) = slot else { continue };
                    if later.read.is_none() {
                        break;
                    }
                    later.in_flight = None;
                    later.held = None;
                    later.retry_at_ms = later.retry_at_ms.max(retry_at_ms);
                }
            }
        }
        self.release_reads();
    }

    /// Turns held read answers into replies, in order, up to the first read still unanswered.
    fn release_reads(&mut self) {
        for slot in &mut self.slots {
            match slot {
                Slot::Pending(pending) if pending.read.is_some() => match pending.held.take() {
                    Some(frame) => *slot = Slot::Ready(frame),
                    None => return,
                },
                Slot::Pending(_) => return,
                Slot::Ready(_) | Slot::Close | Slot::ShowSession { .. } | Slot::Resume { .. } => {}
            }
        }
    }

    /// Gives up on commands past their deadline.
    fn expire(&mut self, now_ms: u64) {
        let session_waiting = match self.session {
            Session::Opening { waiting, .. } => Some(waiting),
            _ => None,
        };
        for slot in &mut self.slots {
            match slot {
                Slot::Pending(pending)
                    if pending.deadline_ms <= now_ms && pending.held.is_none() =>
                {
                    if let (None, Some(waiting)) = (pending.number, session_waiting) {
                        pending.waiting = waiting;
                    }
                    *slot = Slot::Ready(timeout_error(
                        pending,
                        &self.session,
                        self.config.request_timeout_ms,
                    ));
                }
                Slot::ShowSession { deadline_ms, .. }
                    if *deadline_ms <= now_ms && !matches!(self.session, Session::Open { .. }) =>
                {
                    let (code, reason) = session_waiting
                        .unwrap_or(Waiting::Nothing)
                        .code_and_reason();
                    *slot = Slot::Ready(Frame::error(format!(
                        "{code} SESSION: no session could be opened: {reason} within {} ms; nothing changed, send it again",
                        self.config.request_timeout_ms
                    )));
                }
                Slot::Resume {
                    client,
                    deadline_ms,
                    waiting,
                    ..
                } if *deadline_ms <= now_ms => {
                    let (code, reason) = waiting.code_and_reason();
                    *slot = Slot::Ready(Frame::error(format!(
                        "{code} SESSION {} was not resumed: {reason} within {} ms; nothing changed, send it again",
                        client.0, self.config.request_timeout_ms
                    )));
                }
                _ => {}
            }
        }
        self.release_reads();
        let nothing_pending = !self
            .slots
            .iter()
            .any(|s| matches!(s, Slot::Pending(_) | Slot::ShowSession { .. }));
        if nothing_pending
            && matches!(
                self.session,
                Session::Opening {
                    in_flight: None,
                    ..
                }
            )
        {
            self.session = Session::None;
        }
    }

    /// The replies written per command since the last call (see [`Tally`]).
    pub fn take_tally(&mut self) -> Tally {
        std::mem::take(&mut self.tally)
    }

    /// Names the reply slots pushed since `slots` held `first` as answering `command`.
    fn name_replies(&mut self, first: usize, command: &'static str) {
        for slot in self.slots.iter().skip(first) {
            if !matches!(slot, Slot::Close) {
                self.replies_for.push_back(command);
            }
        }
        debug_assert!(
            self.replies_for.len() <= self.slots.len(),
            "every reply slot answers one command"
        );
    }

    /// Drops every slot, with the names of their replies.
    fn clear_slots(&mut self) {
        self.slots.clear();
        self.replies_for.clear();
    }

    /// Writes the finished reply of the slot just taken from the front, and counts it under
    /// its command.
    fn write_reply(&mut self, frame: &Frame) {
        frame.encode(self.output.buffer());
        let command = self
            .replies_for
            .pop_front()
            .expect("every reply slot answers one command");
        self.tally.record(command, frame.is_error());
    }

    /// Moves leading finished replies to the output.
    fn flush(&mut self) {
        while let Some(slot) = self.slots.front() {
            match slot {
                Slot::Ready(_) => {
                    let Some(Slot::Ready(frame)) = self.slots.pop_front() else {
                        unreachable!("the front slot is ready");
                    };
                    self.write_reply(&frame);
                }
                Slot::ShowSession { next, .. } => {
                    let Some(frame) = session_frame(&self.session, *next) else {
                        return;
                    };
                    self.slots.pop_front();
                    self.write_reply(&frame);
                }
                Slot::Close => {
                    self.clear_slots();
                    self.closed = true;
                    return;
                }
                Slot::Pending(_) | Slot::Resume { .. } => return,
            }
        }
    }

    fn parse_input(&mut self, now_ms: u64, host: &dyn Host) {
        let mut consumed = 0;
        while self.wants_input() {
            match self
                .parser
                .parse(&self.input[consumed..], self.config.limits)
            {
                Ok(Some(parsed)) => {
                    consumed += parsed.consumed;
                    if !parsed.args.is_empty() {
                        let (first, command) = (self.slots.len(), Tally::name_of(&parsed.args[0]));
                        self.accept(parsed.args, now_ms, host);
                        self.name_replies(first, command);
                    }
                }
                Ok(None) if self.input.len() - consumed > self.config.max_request_bytes() => {
                    let limit = self.config.max_request_bytes();
                    let first = self.slots.len();
                    self.protocol_error(format!(
                        "ERR Protocol error: request larger than {limit} bytes"
                    ));
                    self.name_replies(first, tally::PROTOCOL);
                }
                Ok(None) => break,
                Err(error) => {
                    let first = self.slots.len();
                    self.protocol_error(format!("ERR {error}"));
                    self.name_replies(first, tally::PROTOCOL);
                }
            }
        }
        self.input.drain(..consumed);
        if self.closing {
            self.input.clear();
        }
    }

    fn protocol_error(&mut self, text: String) {
        self.slots.push_back(Slot::Ready(Frame::error(text)));
        self.on_client_closed();
    }

    /// Takes one command.
    fn accept(&mut self, words: Vec<Vec<u8>>, now_ms: u64, host: &dyn Host) {
        let name: String = String::from_utf8_lossy(&words[0])
            .chars()
            .filter(|c| c.is_ascii_graphic())
            .take(32)
            .collect::<String>()
            .to_ascii_uppercase();
        let parsed = ClientCommand::parse(words);
        if self.denied {
            self.protocol_error(auth::DENIED.to_string());
            return;
        }
        if !self.authenticated
            && !matches!(
                parsed,
                Ok(ClientCommand::Auth { .. } | ClientCommand::Hello { .. } | ClientCommand::Quit)
            )
        {
            if let Some((_, aborted)) = &mut self.transaction {
                *aborted = true;
            }
            self.slots
                .push_back(Slot::Ready(Frame::error(auth::NOAUTH)));
            return;
        }
        if let Some((queued, aborted)) = &mut self.transaction {
            match parsed {
                Ok(
                    ClientCommand::Exec
                    | ClientCommand::Discard
                    | ClientCommand::Multi
                    | ClientCommand::Watch(_)
                    | ClientCommand::Quit,
                ) => {}
                Ok(ClientCommand::Data(command)) => {
                    let bytes: u64 = queued
                        .iter()
                        .chain([&command])
                        .map(Command::payload_bytes)
                        .sum();
                    let limit = self.config.max_transaction_bytes;
                    let frame = if queued.len() >= MAX_QUEUED_COMMANDS {
                        Frame::error(format!(
                            "ERR a transaction may queue at most {MAX_QUEUED_COMMANDS} commands"
                        ))
                    } else if bytes > limit {
                        Frame::error(format!(
                            "ERR a transaction may carry at most {limit} bytes of keys and values"
                        ))
                    } else {
                        queued.push(command);
                        Frame::Simple("QUEUED".into())
                    };
                    *aborted |= frame.is_error();
                    self.slots.push_back(Slot::Ready(frame));
                    return;
                }
                Ok(_) => {
                    *aborted = true;
                    self.slots.push_back(Slot::Ready(Frame::error(
                        "ERR this command cannot run inside a transaction in Verity (only data commands can)",
                    )));
                    return;
                }
                Err(error) => {
                    *aborted = true;
                    self.slots.push_back(Slot::Ready(error.into()));
                    return;
                }
            }
        }
        let command = match parsed {
            Ok(command) => command,
            Err(error) => {
                self.slots.push_back(Slot::Ready(error.into()));
                return;
            }
        };
        let deadline_ms = now_ms + self.config.request_timeout_ms;
        let slot = match command {
            ClientCommand::Data(command) => {
                self.pending(command, name, Purpose::Reply, None, deadline_ms, now_ms)
            }
            ClientCommand::Ping(None) => Slot::Ready(Frame::Simple("PONG".into())),
            ClientCommand::Ping(Some(message)) | ClientCommand::Echo(message) => {
                Slot::Ready(Frame::Bulk(message))
            }
            ClientCommand::Quit => {
                self.slots.push_back(Slot::Ready(Frame::ok()));
                self.on_client_closed();
                return;
            }
            ClientCommand::Hello {
                version,
                auth,
                name,
            } => Slot::Ready(self.hello(version.as_deref(), auth, name, host)),
            ClientCommand::Auth { user, password } => Slot::Ready(self.auth(user, &password)),
            ClientCommand::Select(0) => Slot::Ready(Frame::ok()),
            ClientCommand::Select(_) => Slot::Ready(Frame::error(
                "ERR DB index is out of range (Verity has only database 0)",
            )),
            ClientCommand::Client(sub) => Slot::Ready(match sub {
                ClientSub::SetName(name) => {
                    self.name = Some(name);
                    Frame::ok()
                }
                ClientSub::GetName => Frame::optional(self.name.clone()),
                ClientSub::Id => Frame::count(self.id),
                ClientSub::SetInfo => Frame::ok(),
            }),
            ClientCommand::ConfigGet(patterns) => {
                Slot::Ready(introspection::config_get(&host.settings(), &patterns))
            }
            ClientCommand::Command(query) => Slot::Ready(introspection::command(&query)),
            ClientCommand::Info => Slot::Ready(Frame::Bulk(host.info().into_bytes())),
            ClientCommand::Leader => Slot::Ready(match host.leader() {
                Some((id, addr)) => Frame::Array(vec![
                    Frame::count(id),
                    addr.map_or(Frame::Null, Frame::text),
                ]),
                None => Frame::error("CLUSTERDOWN no leader is known right now"),
            }),
            ClientCommand::Failover { to } => Slot::Ready(match host.hand_over(to) {
                Ok(()) => Frame::ok(),
                Err(reason) => Frame::error(format!("ERR {reason}")),
            }),
            ClientCommand::Consistency(None) => {
                Slot::Ready(Frame::Simple(self.consistency.name().into()))
            }
            ClientCommand::Consistency(Some(level)) => {
                self.consistency = level;
                Slot::Ready(Frame::ok())
            }
            ClientCommand::SessionShow => Slot::ShowSession {
                next: None,
                deadline_ms,
            },
            ClientCommand::SessionResume {
                client,
                token,
                retry,
            } => Slot::Resume {
                client,
                token,
                retry,
                in_flight: None,
                attempts: 0,
                retry_at_ms: now_ms,
                deadline_ms,
                waiting: Waiting::Nothing,
            },
            ClientCommand::Multi if self.transaction.is_some() => {
                Slot::Ready(Frame::error("ERR MULTI calls can not be nested"))
            }
            ClientCommand::Multi => {
                self.transaction = Some((Vec::new(), false));
                Slot::Ready(Frame::ok())
            }
            ClientCommand::Exec => return self.exec(now_ms, deadline_ms),
            ClientCommand::Discard => match self.transaction.take() {
                Some(_) => {
                    self.watched.clear();
                    Slot::Ready(Frame::ok())
                }
                None => Slot::Ready(Frame::error("ERR DISCARD without MULTI")),
            },
            ClientCommand::Watch(_) if self.transaction.is_some() => {
                Slot::Ready(Frame::error("ERR WATCH inside MULTI is not allowed"))
            }
            ClientCommand::Watch(keys) => {
                let command = Command::Verity(VerityCommand::Versions { keys: keys.clone() });
                self.pending(
                    command,
                    name,
                    Purpose::Watch(keys),
                    None,
                    deadline_ms,
                    now_ms,
                )
            }
            ClientCommand::Unwatch => {
                self.watched.clear();
                Slot::Ready(Frame::ok())
            }
        };
        self.slots.push_back(slot);
    }

    /// `HELLO [version [AUTH user password] [SETNAME name]]`.
    fn hello(
        &mut self,
        version: Option<&[u8]>,
        auth: Option<(Vec<u8>, Vec<u8>)>,
        name: Option<Vec<u8>>,
        host: &dyn Host,
    ) -> Frame {
        if !matches!(version, None | Some(b"2")) {
            return Frame::error("NOPROTO this server speaks RESP2 only");
        }
        if let Some((user, password)) = auth {
            if !self.config.users.check(&user, &password) {
                return Frame::error(auth::WRONGPASS);
            }
            self.authenticated = true;
        }
        if !self.authenticated {
            return Frame::error(
                "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time",
            );
        }
        if name.is_some() {
            self.name = name;
        }
        introspection::hello(self.id, host.role())
    }

    /// `AUTH [user] password`.
    fn auth(&mut self, user: Option<Vec<u8>>, password: &[u8]) -> Frame {
        if user.is_none() && !self.config.users.required() {
            return Frame::error(
                "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
            );
        }
        let user = user.unwrap_or_else(|| auth::DEFAULT_USER.as_bytes().to_vec());
        if self.config.users.check(&user, password) {
            self.authenticated = true;
            Frame::ok()
        } else {
            Frame::error(auth::WRONGPASS)
        }
    }

    /// `EXEC`: the queued transaction becomes one command (or `EXECABORT`).
    fn exec(&mut self, now_ms: u64, deadline_ms: u64) {
        let Some((commands, aborted)) = self.transaction.take() else {
            self.slots
                .push_back(Slot::Ready(Frame::error("ERR EXEC without MULTI")));
            return;
        };
        if aborted {
            self.watched.clear();
            self.slots.push_back(Slot::Ready(Frame::error(
                "EXECABORT Transaction discarded because of previous errors.",
            )));
            return;
        }
        let placeholder = Command::Exec(Transaction {
            watched: Vec::new(),
            commands: Vec::new(),
        });
        let slot = self.pending(
            placeholder,
            "EXEC".to_string(),
            Purpose::Reply,
            Some(commands),
            deadline_ms,
            now_ms,
        );
        self.slots.push_back(slot);
    }

    fn pending(
        &self,
        command: Command,
        name: String,
        purpose: Purpose,
        exec: Option<Vec<Command>>,
        deadline_ms: u64,
        now_ms: u64,
    ) -> Slot {
        let read = match (&purpose, &exec) {
            (Purpose::Reply, None) if command.read_keys().is_some() => {
                self.consistency.without_log()
            }
            _ => None,
        };
        Slot::Pending(Box::new(Pending {
            read,
            command,
            name,
            purpose,
            number: None,
            attempts: 0,
            in_flight: None,
            maybe_executed: false,
            retry_at_ms: now_ms,
            deadline_ms,
            waiting: Waiting::Nothing,
            exec,
            held: None,
        }))
    }
}

fn backoff_ms(attempts: u32) -> u64 {
    (FIRST_BACKOFF_MS << attempts.min(6)).min(MAX_BACKOFF_MS)
}

/// The recipe that learns the outcome of command `sequence` of the session.
fn recipe(session: &Session, number: Option<(ClientId, Sequence)>) -> String {
    match (session, number) {
        (Session::Open { client, token, .. }, Some((id, sequence))) if *client == id => format!(
            "to learn its outcome, send SESSION {} {token} {} (on any node), then the same command and any sent after it on this connection, in order: each runs only if it never ran, otherwise it answers its first reply",
            id.0, sequence.0
        ),
        _ => "its session is gone, so its outcome cannot be learnt".to_string(),
    }
}

fn describe(pending: &Pending) -> String {
    match pending.number {
        Some((client, sequence)) => format!(
            "command {} of session {} ({})",
            sequence.0, client.0, pending.name
        ),
        None if pending.read.is_some() => {
            format!("{} (a read served without the log)", pending.name)
        }
        None => format!("{} (not yet numbered in a session)", pending.name),
    }
}

/// The error for a command given up at its deadline.
fn timeout_error(pending: &Pending, session: &Session, timeout_ms: u64) -> Frame {
    let (code, reason) = pending.waiting.code_and_reason();
    let what = describe(pending);
    let may_have_run = pending.maybe_executed || pending.in_flight.is_some();
    if !may_have_run {
        return Frame::error(format!(
            "{code} not executed: {what}: {reason} within {timeout_ms} ms; it did not take effect, so it is safe to send again"
        ));
    }
    if pending.command.access() == Access::Read && pending.exec.is_none() {
        return Frame::error(format!(
            "{code} {what}: {reason} within {timeout_ms} ms; a read changes nothing, so it is safe to send again"
        ));
    }
    Frame::error(format!(
        "{code} outcome unknown: {what}: {reason} within {timeout_ms} ms; it may or may not have taken effect; {}",
        recipe(session, pending.number)
    ))
}

/// The error for a command the node stops under.
fn shutdown_error(pending: &Pending, session: &Session) -> Frame {
    let what = describe(pending);
    if !pending.maybe_executed && pending.in_flight.is_none() {
        return Frame::error(format!(
            "ERR the node is shutting down; not executed: {what} did not take effect; send it to another node"
        ));
    }
    Frame::error(format!(
        "ERR the node is shutting down; outcome unknown: {what} may or may not have taken effect; {}",
        recipe(session, pending.number)
    ))
}

/// The reply for a request the session layer refused.
fn refusal(pending: &Pending, error: SessionError, session: &Session) -> Frame {
    let what = describe(pending);
    match error {
        SessionError::OutOfOrder => Frame::error(format!(
            "ERR not executed: {what} was not run because a later command of its session already ran (running it now would break the order); it did not take effect"
        )),
        SessionError::ReplyNotKept if pending.read.is_some() => Frame::error(format!(
            "ERR {what} was sent again before commands of its session that already ran, so it cannot be served in its place now; a read changes nothing, so send it again"
        )),
        SessionError::ReplyNotKept if pending.command.access() == Access::Read => {
            Frame::error(format!(
                "ERR {what} ran, but its reply was lost and reads' replies are not kept; a read changes nothing, so send it again"
            ))
        }
        SessionError::ReplyNotKept => Frame::error(format!(
            "ERR {what} took effect, but its reply is no longer kept (the session's reply cache is bounded)"
        )),
        SessionError::UnknownSession | SessionError::SequenceTooOld => Frame::error(format!(
            "ERR outcome unknown: {what} may or may not have taken effect, and its session no longer remembers it ({error}); {}",
            recipe(session, None)
        )),
        SessionError::DifferentCommand => Frame::error(format!(
            "ERR not executed: {what}: that sequence number was used by a different command (a retry must repeat the same command)"
        )),
        SessionError::WrongToken => Frame::error(format!(
            "ERR not executed: {what}: the session token does not match"
        )),
        SessionError::Early => unreachable!("early requests are retried"),
    }
}

/// `SESSION`'s reply: `[id, token, next number]`, or `None` while no session is open. The
/// next number is the one the first data command after `SESSION` has (`numbered_behind`:
/// pipelined commands behind it may be numbered, even answered, before it is) or will have.
fn session_frame(
    session: &Session,
    numbered_behind: Option<(ClientId, Sequence)>,
) -> Option<Frame> {
    let Session::Open {
        client,
        token,
        next,
        ..
    } = session
    else {
        return None;
    };
    let next = numbered_behind
        .filter(|(session, _)| session == client)
        .map_or(*next, |(_, number)| number);
    Some(Frame::Array(vec![
        Frame::count(client.0),
        Frame::text(token.to_string()),
        Frame::count(next.0),
    ]))
}

#[cfg(test)]
mod tests;
