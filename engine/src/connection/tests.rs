//! The connection against the real state machine. The harness plays the node: it applies the
//! connection's submissions to a [`StateMachine`] as a one-node log would, or loses, refuses
//! or delays them, as a test says.

use super::*;
use crate::resp::Limits;
use std::collections::VecDeque;
use verity_core::kv::StateMachine;
use verity_core::{LogIndex, SessionLimits};

const TIMEOUT_MS: u64 = 1_000;

struct TestHost;

impl Host for TestHost {
    fn info(&self) -> String {
        "# Server\r\nverity_version:test\r\n".into()
    }
    fn leader(&self) -> Option<(u64, Option<String>)> {
        Some((1, Some("127.0.0.1:6001".into())))
    }
    fn role(&self) -> &'static str {
        "leader"
    }
    fn settings(&self) -> Vec<(&'static str, String)> {
        vec![("appendfsync", "always".into())]
    }
    fn hand_over(&self, to: Option<u64>) -> Result<(), String> {
        match to {
            Some(9) => Err("node 9 is not another voter of this cluster".into()),
            _ => Ok(()),
        }
    }
}

struct Node {
    machine: StateMachine,
    now_ms: u64,
    /// Submissions taken from connections and not yet applied or failed.
    inbox: VecDeque<(usize, Submission)>,
    connections: Vec<Connection>,
}

fn config() -> ConnectionConfig {
    ConnectionConfig {
        limits: Limits {
            max_args: 1024,
            max_arg_bytes: 1 << 20,
        },
        pipeline_depth: 64,
        request_timeout_ms: TIMEOUT_MS,
        max_transaction_bytes: 1 << 20,
        users: Arc::new(Users::open()),
        output_limit: OutputLimit::default(),
        consistency: Consistency::default(),
    }
}

fn limits() -> SessionLimits {
    SessionLimits {
        max_sessions: 8,
        idle_expiry_entries: 1_000_000,
        reply_window: 64,
        max_reply_bytes_per_session: 1 << 20,
        max_reply_bytes_total: 1 << 20,
    }
}

impl Node {
    fn new() -> Node {
        Node::with_limits(limits())
    }

    fn with_limits(limits: SessionLimits) -> Node {
        Node {
            machine: StateMachine::new(limits, 1 << 20),
            now_ms: 1_000,
            inbox: VecDeque::new(),
            connections: Vec::new(),
        }
    }

    fn connect(&mut self) -> usize {
        self.connect_as(Users::open(), true)
    }

    /// Connects a client, over the loopback interface or not, to a node with `users`.
    fn connect_as(&mut self, users: Users, loopback: bool) -> usize {
        self.connect_with(
            ConnectionConfig {
                users: Arc::new(users),
                ..config()
            },
            loopback,
        )
    }

    /// Connects a client to a node whose connections have `config`.
    fn connect_with(&mut self, config: ConnectionConfig, loopback: bool) -> usize {
        let id = self.connections.len();
        self.connections.push(Connection::new(
            id as u64,
            config,
            SessionToken([id as u8 + 1; 16]),
            loopback,
        ));
        id
    }

    /// Sends `text` (inline commands, one per line) on connection `c` and collects what
    /// the connection submits into the inbox.
    fn send(&mut self, c: usize, text: &str) {
        let bytes = text.replace('\n', "\r\n");
        self.connections[c].receive(bytes.as_bytes());
        self.pump(c);
    }

    fn pump(&mut self, c: usize) {
        self.connections[c].process(self.now_ms, &TestHost);
        while let Some(submission) = self.connections[c].poll_submission(self.now_ms) {
            self.inbox.push_back((c, submission));
        }
    }

    /// Carries out `op`: a proposal applies as the next entry; a read runs on the state,
    /// which must be applied up to the read's floor.
    fn apply(&mut self, op: &Operation) -> AttemptResult {
        let op = match op {
            Operation::Propose(op) => op,
            Operation::Read { command, floor, .. } => {
                let index = self.machine.applied_index();
                assert!(
                    index >= *floor,
                    "a read below its floor {floor:?}: {index:?}"
                );
                let reply = Reply::Executed(self.machine.read(command, self.now_ms));
                return AttemptResult::Applied { reply, index };
            }
        };
        let index = LogIndex(self.machine.applied_index().0 + 1);
        let reply = self
            .machine
            .apply(index, self.now_ms, Some(op))
            .expect("client ops get replies");
        AttemptResult::Applied { reply, index }
    }

    /// Applies and answers every submission in the inbox, repeatedly, until it is empty.
    fn settle(&mut self) {
        while let Some((c, submission)) = self.inbox.pop_front() {
            let result = self.apply(&submission.op);
            self.connections[c].on_result(submission.attempt, result, self.now_ms);
            self.pump(c);
        }
    }

    /// Takes the next submission without doing anything with it.
    fn take(&mut self) -> (usize, Submission) {
        self.inbox.pop_front().expect("a submission is waiting")
    }

    fn answer(&mut self, (c, submission): (usize, Submission), result: AttemptResult) {
        self.connections[c].on_result(submission.attempt, result, self.now_ms);
        self.pump(c);
    }

    fn advance(&mut self, ms: u64) {
        self.now_ms += ms;
        for c in 0..self.connections.len() {
            self.pump(c);
        }
    }

    /// Answers every attempt `NoLeader` for `ms` milliseconds, in steps of 100 ms.
    fn no_leader_for_ms(&mut self, ms: u64) {
        for _ in 0..ms / 100 {
            self.advance(100);
            while let Some(attempt) = self.inbox.pop_front() {
                self.answer(
                    attempt,
                    AttemptResult::NotProposed {
                        reason: Refusal::NoLeader,
                        copies_may_run: false,
                    },
                );
            }
        }
    }

    fn output(&mut self, c: usize) -> String {
        String::from_utf8(self.connections[c].take_output()).unwrap()
    }
}

/// RESP of a list of replies, written compactly: `+OK`, `:1`, `$v` (bulk), `_` (null).
fn resp(replies: &[&str]) -> String {
    replies
        .iter()
        .map(|r| match r.as_bytes()[0] {
            b'$' => format!("${}\r\n{}\r\n", r.len() - 1, &r[1..]),
            b'_' => "$-1\r\n".to_string(),
            _ => format!("{r}\r\n"),
        })
        .collect()
}

#[test]
fn pipelined_commands_take_effect_in_order() {
    let mut node = Node::new();
    let c = node.connect();
    let mut pipeline = "DEL chain\n".to_string();
    let letters: Vec<char> = ('a'..='z').chain('A'..='Z').collect();
    for letter in &letters {
        pipeline.push_str(&format!("APPEND chain {letter}\n"));
    }
    pipeline.push_str("GET chain\n");
    node.send(c, &pipeline);
    node.settle();
    let chain: String = letters.iter().collect();
    let output = node.output(c);
    assert!(output.ends_with(&resp(&[&format!("${chain}")])), "{output}");
    assert!(output.starts_with(":0\r\n:1\r\n:2\r\n"), "{output}");
}

#[test]
fn a_command_whose_predecessor_was_lost_waits_for_it_and_the_order_holds() {
    let mut node = Node::new();
    let c = node.connect();
    node.send(c, "SET k 1\nINCR k\n");
    node.settle_one();
    // The SET's first attempt is lost on the way; the INCR reaches the state machine first.
    let set = node.take();
    let incr = node.take();
    let result = node.apply(&incr.1.op);
    assert!(
        matches!(
            result,
            AttemptResult::Applied {
                reply: Reply::Rejected(SessionError::Early),
                ..
            }
        ),
        "INCR may not run ahead of SET: {result:?}"
    );
    node.answer(incr, result);
    node.answer(set, AttemptResult::Unknown);
    node.advance(200);
    node.settle();
    assert_eq!(node.output(c), resp(&["+OK", ":2"]));
    assert_eq!(node.machine.store().get(b"k").unwrap().value, b"2");
}

#[test]
fn an_answer_lost_after_execution_is_retried_under_the_same_number_and_runs_once() {
    let mut node = Node::new();
    let c = node.connect();
    node.send(c, "INCR ctr\n");
    node.settle_one();
    let incr = node.take();
    let _ = node.apply(&incr.1.op);
    node.answer(incr, AttemptResult::Unknown);
    node.advance(200);
    node.settle();
    assert_eq!(node.output(c), resp(&[":1"]));
    assert_eq!(node.machine.store().get(b"ctr").unwrap().value, b"1");
}

/// An `INCR` executes, its attempt is answered `result`, and then another connection's
/// session evicts the `INCR`'s (a table of one session): the `INCR` must be answered "outcome
/// unknown" and never run again.
fn after_its_session_vanishes_a_command_that_may_have_run_is_never_rerun(result: AttemptResult) {
    let mut tight = limits();
    tight.max_sessions = 1;
    let mut node = Node::with_limits(tight);
    let victim = node.connect();
    node.send(victim, "INCR ctr\n");
    node.settle_one();
    let incr = node.take();
    let _ = node.apply(&incr.1.op);
    node.answer(incr, result);
    let other = node.connect();
    node.send(other, "DEL x\n");
    node.settle_one();
    node.advance(200);
    node.settle();
    let output = node.output(victim);
    assert!(
        output.starts_with("-ERR outcome unknown: command 1 of session 1 (INCR)"),
        "{output}"
    );
    assert_eq!(
        node.machine.store().get(b"ctr").unwrap().value,
        b"1",
        "INCR ran once"
    );
}

#[test]
fn a_retry_whose_session_vanished_answers_outcome_unknown_and_never_runs_again() {
    after_its_session_vanishes_a_command_that_may_have_run_is_never_rerun(AttemptResult::Unknown);
}

#[test]
fn a_forwarded_refusal_is_no_proof_so_a_vanished_session_never_reruns_the_command() {
    // The network duplicated a forwarded INCR: the leader ran one copy and refused the other
    // as overloaded, and the refusal came back first.
    after_its_session_vanishes_a_command_that_may_have_run_is_never_rerun(
        AttemptResult::NotProposed {
            reason: Refusal::Overloaded,
            copies_may_run: true,
        },
    );
}

#[test]
fn a_command_that_never_ran_in_a_vanished_session_runs_in_a_new_one() {
    let mut tight = limits();
    tight.max_sessions = 1;
    let mut node = Node::with_limits(tight);
    let first = node.connect();
    node.send(first, "SET a 1\n");
    node.settle();
    let other = node.connect();
    node.send(other, "SET b 1\n");
    node.settle();
    node.send(first, "INCR a\n");
    node.settle();
    assert_eq!(node.output(first), resp(&["+OK", ":2"]));
}

#[test]
fn giving_up_tells_the_truth_and_the_recipe_learns_the_outcome() {
    let mut node = Node::new();
    let c = node.connect();
    node.send(c, "SET lock:job me NX\n");
    node.settle_one();
    let set = node.take();
    let reply = node.apply(&set.1.op);
    node.answer(set, AttemptResult::Unknown);
    // Every later attempt finds no leader, until the deadline.
    node.no_leader_for_ms(4_000);
    let output = node.output(c);
    assert!(output.starts_with("-CLUSTERDOWN outcome unknown: command 1 of session 1 (SET): no leader was reachable within 1000 ms; it may or may not have taken effect; to learn its outcome, send SESSION 1 "), "{output}");
    // Follow the recipe on a new connection: the first reply comes back, nothing runs again.
    let recipe = output
        .split("send ")
        .nth(1)
        .unwrap()
        .split(" (on any node)")
        .next()
        .unwrap()
        .to_string();
    let fresh = node.connect();
    node.send(fresh, &format!("{recipe}\nSET lock:job me NX\nSESSION\n"));
    node.settle();
    let learnt = node.output(fresh);
    assert!(
        learnt.starts_with("+OK\r\n+OK\r\n"),
        "{learnt} (first reply was {reply:?})"
    );
    assert!(
        learnt.ends_with(":2\r\n"),
        "the connection continues after the retried number: {learnt}"
    );
}

#[test]
fn a_command_that_found_no_leader_says_it_did_not_run() {
    let mut node = Node::new();
    let c = node.connect();
    node.send(c, "INCR n\n");
    node.no_leader_for_ms(4_000);
    let output = node.output(c);
    assert!(output.starts_with("-CLUSTERDOWN not executed: INCR (not yet numbered in a session): no leader was reachable"), "{output}");
}

#[test]
fn shutting_down_says_what_is_known_of_each_command() {
    let mut node = Node::new();
    let c = node.connect();
    node.send(c, "INCR n\n");
    node.settle_one();
    let _in_flight = node.take();
    node.connections[c].shut_down();
    let output = node.output(c);
    assert!(output.starts_with("-ERR the node is shutting down; outcome unknown: command 1 of session 1 (INCR) may or may not have taken effect; to learn its outcome, send SESSION 1 "), "{output}");
    assert!(node.connections[c].is_closed());
}

#[test]
fn transactions_queue_then_run_as_one_and_watch_aborts_on_change() {
    let mut node = Node::new();
    let c = node.connect();
    node.send(c, "SET a 1\nWATCH a\nMULTI\nINCR a\nGET a\nEXEC\n");
    node.settle();
    assert_eq!(
        node.output(c),
        "+OK\r\n+OK\r\n+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n:2\r\n$1\r\n2\r\n"
    );
    node.send(c, "WATCH a\n");
    node.settle();
    let other = node.connect();
    node.send(other, "SET a 9\n");
    node.settle();
    node.send(c, "MULTI\nINCR a\nEXEC\nGET a\n");
    node.settle();
    assert_eq!(
        node.output(c),
        "+OK\r\n+OK\r\n+QUEUED\r\n*-1\r\n$1\r\n9\r\n"
    );
    node.send(
        c,
        "MULTI\nINCR a b\nEXEC\nEXEC\nMULTI\nMULTI\nDISCARD\nDISCARD\n",
    );
    node.settle();
    assert_eq!(
        node.output(c),
        "+OK\r\n-ERR wrong number of arguments for 'incr' command\r\n-EXECABORT Transaction discarded because of previous errors.\r\n-ERR EXEC without MULTI\r\n+OK\r\n-ERR MULTI calls can not be nested\r\n+OK\r\n-ERR DISCARD without MULTI\r\n"
    );
}

#[test]
fn a_stranger_cannot_take_over_a_session() {
    let mut node = Node::new();
    let owner = node.connect();
    node.send(owner, "SET x 1\n");
    node.settle();
    let stranger = node.connect();
    node.send(
        stranger,
        "SESSION 1 00000000000000000000000000000000 4611686018427387904\nGET x\n",
    );
    node.settle();
    let output = node.output(stranger);
    assert!(
        output.starts_with("-ERR SESSION 1 cannot be resumed: the session token does not match"),
        "{output}"
    );
    node.send(owner, "INCR x\n");
    node.settle();
    assert_eq!(node.output(owner), resp(&["+OK", ":2"]));
}

#[test]
fn connection_commands_answer_at_once_and_quit_closes() {
    let mut node = Node::new();
    let c = node.connect();
    node.send(c, "PING\nECHO hi\nCLIENT SETNAME app\nCLIENT GETNAME\nSELECT 1\nCONFIG GET append*\nQUIT\nPING\n");
    assert_eq!(
        node.output(c),
        "+PONG\r\n$2\r\nhi\r\n+OK\r\n$3\r\napp\r\n-ERR DB index is out of range (Verity has only database 0)\r\n*2\r\n$11\r\nappendfsync\r\n$6\r\nalways\r\n+OK\r\n"
    );
    assert!(node.connections[c].is_closed());
}

#[test]
fn failover_asks_the_node_to_hand_over_and_says_why_it_cannot() {
    let mut node = Node::new();
    let c = node.connect();
    node.send(c, "FAILOVER\nFAILOVER TO 2\nFAILOVER TO 9\nFAILOVER TO\n");
    assert_eq!(
        node.output(c),
        "+OK\r\n+OK\r\n-ERR node 9 is not another voter of this cluster\r\n\
         -ERR syntax error: FAILOVER [TO node-id] (Verity names the node by its id)\r\n"
    );
}

#[test]
fn a_protocol_error_is_answered_then_the_connection_closes() {
    let mut node = Node::new();
    let c = node.connect();
    node.connections[c].receive(b"*1\r\n:5\r\n");
    node.pump(c);
    assert!(node.output(c).starts_with("-ERR Protocol error"));
    assert!(node.connections[c].is_closed());
}

#[test]
fn reading_stops_at_the_pipeline_depth_until_replies_drain() {
    let mut node = Node::new();
    let c = node.connect();
    node.send(c, &"INCR n\n".repeat(100));
    assert!(!node.connections[c].wants_input());
    node.settle();
    let output = node.output(c);
    assert_eq!(
        output.matches("\r\n").count(),
        100,
        "every command answered once the queue drains"
    );
    assert!(output.ends_with(":100\r\n"));
    assert!(node.connections[c].wants_input());
}

#[test]
fn a_client_that_reads_no_replies_pauses_reading_then_passes_the_output_limit_and_is_dropped() {
    let mut node = Node::new();
    let c = node.connect_with(
        ConnectionConfig {
            output_limit: OutputLimit {
                hard_bytes: 2 << 20,
                soft_bytes: 0,
                soft_ms: 0,
            },
            ..config()
        },
        true,
    );
    let value = "v".repeat(400 << 10);
    node.send(c, &format!("SET big {value}\n"));
    node.settle();
    assert_eq!(node.output(c), "+OK\r\n");
    node.send(c, "GET big\nGET big\n");
    node.settle();
    let taken = node.connections[c].take_output();
    node.connections[c].report_unwritten(taken.len() as u64);
    assert!(
        node.connections[c].wants_input(),
        "800 KiB unwritten: below the pause"
    );
    node.send(c, "GET big\n");
    node.settle();
    assert!(
        !node.connections[c].wants_input(),
        "1.2 MiB unwritten: reading pauses until the client reads"
    );
    node.send(c, &"GET big\n".repeat(5));
    assert_eq!(
        node.inbox.len(),
        0,
        "paused: nothing parsed, nothing submitted"
    );
    assert!(!node.connections[c].output_overflowed());
    node.connections[c].report_unwritten(0);
    assert!(node.connections[c].wants_input(), "the client read 800 KiB");
    node.pump(c);
    node.settle();
    assert!(
        node.connections[c].output_overflowed() && node.connections[c].is_closed(),
        "six replies of 400 KiB unread pass the 2 MiB limit"
    );
    assert!(node.connections[c].take_output().is_empty());
    assert!(!node.connections[c].wants_input());
}

impl Node {
    /// Applies and answers only the first waiting submission (the session opening).
    fn settle_one(&mut self) {
        let (c, submission) = self.take();
        let result = self.apply(&submission.op);
        self.connections[c].on_result(submission.attempt, result, self.now_ms);
        self.pump(c);
    }
}

#[test]
fn session_in_a_pipeline_names_the_number_of_the_command_after_it() {
    let mut node = Node::new();
    let c = node.connect();
    node.send(c, "SET a 1\n");
    node.settle_one();
    // `SET b` and `SET c` are numbered before the first command's answer frees `SESSION`.
    node.send(c, "SESSION\nSET b 2\nSET c 3\n");
    node.settle();
    let output = node.output(c);
    let token = SessionToken([1; 16]).to_string();
    assert_eq!(
        output,
        format!(
            "+OK\r\n*3\r\n:1\r\n${}\r\n{token}\r\n:2\r\n+OK\r\n+OK\r\n",
            token.len()
        )
    );
}

#[test]
fn a_resumed_pipeline_runs_each_command_once() {
    let mut node = Node::new();
    let old = node.connect();
    node.send(old, "INCR a\nSESSION\nINCR b\nINCR c\n");
    node.settle();
    let shown = node.output(old);
    let token = SessionToken([1; 16]).to_string();
    assert!(shown.contains(&format!("{token}\r\n:2\r\n")), "{shown}");
    // The connection broke before the replies of `INCR b` and `INCR c` arrived, though both
    // ran: a new connection resumes at 2 and sends both again.
    let fresh = node.connect();
    node.send(
        fresh,
        &format!("SESSION 1 {token} 2\nINCR b\nINCR c\nINCR d\n"),
    );
    node.settle();
    assert_eq!(node.output(fresh), resp(&["+OK", ":1", ":1", ":1"]));
    for key in [b"a", b"b", b"c", b"d"] {
        assert_eq!(node.machine.store().get(key).unwrap().value, b"1");
    }
}

#[test]
fn a_read_whose_answer_was_lost_reads_again_under_its_number() {
    let mut node = Node::new();
    let c = node.connect();
    node.send(c, "CONSISTENCY log\nGET k\n");
    node.settle_one();
    let get = node.take();
    let result = node.apply(&get.1.op);
    assert!(
        matches!(
            &result,
            AttemptResult::Applied {
                reply: Reply::Executed(Frame::Null),
                ..
            }
        ),
        "{result:?}"
    );
    node.answer(get, AttemptResult::Unknown);
    let writer = node.connect();
    node.send(writer, "SET k v\n");
    node.settle();
    node.advance(200);
    node.settle();
    assert_eq!(node.output(c), resp(&["+OK", "$v"]));
    node.send(c, "SESSION\n");
    assert!(node.output(c).ends_with(":2\r\n"), "the read kept number 1");
}

#[test]
fn session_names_the_next_number_even_when_the_command_after_it_was_answered_first() {
    let mut node = Node::new();
    let c = node.connect();
    node.send(c, "APPEND a 1\nSESSION\nSET b 2 NX\n");
    node.settle_one();
    let append = node.take();
    let set = node.take();
    let (append_reply, set_reply) = (node.apply(&append.1.op), node.apply(&set.1.op));
    node.answer(set, set_reply);
    node.answer(append, append_reply);
    let output = node.output(c);
    assert!(output.starts_with(":1\r\n*3\r\n:1\r\n"), "{output}");
    assert!(output.ends_with(":2\r\n+OK\r\n"), "{output}");
}

#[test]
fn session_first_opens_a_session_and_names_the_first_number() {
    let mut node = Node::new();
    let c = node.connect();
    node.send(c, "SESSION\n");
    node.settle();
    let token = SessionToken([1; 16]).to_string();
    let shown = format!("*3\r\n:1\r\n${}\r\n{token}\r\n:1\r\n", token.len());
    assert_eq!(node.output(c), shown);
    node.send(c, "SET a 1\nSESSION\n");
    node.settle();
    assert!(node.output(c).ends_with(&format!("{token}\r\n:2\r\n")));
}

#[test]
fn session_that_cannot_open_one_says_nothing_changed() {
    let mut node = Node::new();
    let c = node.connect();
    node.send(c, "SESSION\n");
    node.no_leader_for_ms(4_000);
    let output = node.output(c);
    assert!(
        output.starts_with("-CLUSTERDOWN SESSION: no session could be opened: no leader was reachable within 1000 ms; nothing changed"),
        "{output}"
    );
}

#[test]
fn a_resent_command_whose_session_vanished_is_never_run_again() {
    let mut node = Node::new();
    let old = node.connect();
    node.send(old, "INCR k\n");
    node.settle();
    // The old connection broke before its reply arrived. A new one resumes the session and
    // sends the command again, but the session is evicted before that attempt applies.
    let token = SessionToken([1; 16]).to_string();
    let fresh = node.connect();
    node.send(fresh, &format!("SESSION 1 {token} 1\nINCR k\n"));
    node.settle_one();
    let resent = node.take();
    for _ in 0..limits().max_sessions {
        let other = node.connect();
        node.send(other, "DEL x\n");
        node.settle();
    }
    let result = node.apply(&resent.1.op);
    assert!(
        matches!(
            result,
            AttemptResult::Applied {
                reply: Reply::Rejected(SessionError::UnknownSession),
                ..
            }
        ),
        "{result:?}"
    );
    node.answer(resent, result);
    node.settle();
    let output = node.output(fresh);
    assert!(
        output.starts_with("+OK\r\n-ERR outcome unknown: command 1 of session 1 (INCR)"),
        "{output}"
    );
    assert_eq!(
        node.machine.store().get(b"k").unwrap().value,
        b"1",
        "the INCR ran once"
    );
    // The connection goes on in a new session: later commands are not refused forever.
    node.send(fresh, "INCR k\n");
    node.settle();
    assert_eq!(node.output(fresh), resp(&[":2"]));
}

#[test]
fn with_a_password_nothing_but_auth_hello_and_quit_runs_before_authentication() {
    let mut node = Node::new();
    let users = Users::new(Some(b"sesame"), Some("user alice on >wonderland"), true).unwrap();
    let c = node.connect_as(users, false);
    node.send(
        c,
        "SET k v\nPING\nMULTI\nAUTH nope\nAUTH alice sesame\nHELLO 2\nAUTH sesame\nSET k v\nGET k\n",
    );
    node.settle();
    let wrongpass = "-WRONGPASS invalid username-password pair or user is disabled.";
    let output = node.output(c);
    let lines: Vec<&str> = output.split("\r\n").collect();
    assert_eq!(lines[0], "-NOAUTH Authentication required.");
    assert_eq!(lines[1], "-NOAUTH Authentication required.");
    assert_eq!(lines[2], "-NOAUTH Authentication required.");
    assert_eq!(lines[3], wrongpass);
    assert_eq!(lines[4], wrongpass);
    assert!(
        lines[5].starts_with("-NOAUTH HELLO must be called"),
        "{output}"
    );
    assert!(output.ends_with("+OK\r\n+OK\r\n$1\r\nv\r\n"), "{output}");
    assert!(
        node.machine.store().get(b"k").is_some(),
        "the SET after AUTH ran"
    );

    let users = Users::new(Some(b"sesame"), Some("user alice on >wonderland"), true).unwrap();
    let d = node.connect_as(users, false);
    node.send(
        d,
        "HELLO 2 AUTH alice wonderland SETNAME app\nCLIENT GETNAME\n",
    );
    node.settle();
    let output = node.output(d);
    assert!(output.starts_with("*14\r\n"), "HELLO's map: {output}");
    assert!(output.ends_with("$3\r\napp\r\n"), "{output}");
}

#[test]
fn protected_mode_turns_away_remote_clients_only_while_no_password_is_set() {
    let mut node = Node::new();
    let remote = node.connect_as(Users::new(None, None, true).unwrap(), false);
    node.send(remote, "PING\nPING\n");
    let output = node.output(remote);
    assert!(
        output.starts_with("-DENIED Verity is running in protected mode"),
        "{output}"
    );
    assert_eq!(output.matches("\r\n").count(), 1, "one reply: {output}");
    assert!(node.connections[remote].is_closed());

    let local = node.connect_as(Users::new(None, None, true).unwrap(), true);
    node.send(local, "PING\nAUTH x\nAUTH default x\n");
    assert_eq!(
        node.output(local),
        "+PONG\r\n-ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?\r\n+OK\r\n"
    );

    let with_password = Users::new(Some(b"sesame"), None, true).unwrap();
    let remote = node.connect_as(with_password, false);
    node.send(remote, "AUTH sesame\nPING\n");
    assert_eq!(node.output(remote), "+OK\r\n+PONG\r\n");
}

#[test]
fn consistency_shows_and_sets_how_reads_are_served() {
    let mut node = Node::new();
    let c = node.connect();
    node.send(
        c,
        "CONSISTENCY\nCONSISTENCY strong\nCONSISTENCY\nCONSISTENCY EVENTUAL\nCONSISTENCY\nCONSISTENCY lease\nCONSISTENCY\nCONSISTENCY log\nCONSISTENCY\nCONSISTENCY sometimes\nCONSISTENCY a b\n",
    );
    node.settle();
    let output = node.output(c);
    let expected = resp(&[
        "+linearizable",
        "+OK",
        "+linearizable",
        "+OK",
        "+stale",
        "+OK",
        "+lease",
        "+OK",
        "+log",
    ]);
    assert!(output.starts_with(&expected), "{output}");
    assert!(
        output.contains("-ERR unknown consistency 'sometimes'")
            && output.ends_with("-ERR wrong number of arguments for 'consistency' command\r\n"),
        "{output}"
    );
}

#[test]
fn reads_without_the_log_take_no_number_and_open_no_session() {
    let mut node = Node::new();
    let c = node.connect();
    node.send(c, "GET k\nMGET k j\nCONSISTENCY stale\nEXISTS k\n");
    let submissions: Vec<Operation> = node.inbox.iter().map(|(_, s)| s.op.clone()).collect();
    assert_eq!(submissions.len(), 3, "{submissions:?}");
    let levels: Vec<ReadConsistency> = submissions
        .iter()
        .map(|op| match op {
            Operation::Read { consistency, .. } => *consistency,
            Operation::Propose(op) => panic!("a read went to the log: {op:?}"),
        })
        .collect();
    assert_eq!(
        levels,
        [
            ReadConsistency::Linearizable,
            ReadConsistency::Linearizable,
            ReadConsistency::Stale
        ]
    );
    node.settle();
    assert_eq!(node.output(c), "$-1\r\n*2\r\n$-1\r\n$-1\r\n+OK\r\n:0\r\n");
    assert_eq!(
        node.machine.applied_index(),
        LogIndex(0),
        "nothing was logged"
    );
}

#[test]
fn a_read_waits_for_the_writes_before_it_and_the_writes_after_it_wait_for_the_read() {
    let mut node = Node::new();
    let c = node.connect();
    node.send(c, "SET k 1\nGET k\nSET k 2\nGET k\nKEYS *\n");
    node.settle_one();
    let first = node.take();
    assert!(
        node.inbox.is_empty(),
        "the GET waits for the SET before it, and the second SET for the GET"
    );
    let reply = node.apply(&first.1.op);
    node.answer(first, reply);
    let get = node.take();
    assert!(matches!(get.1.op, Operation::Read { .. }), "{get:?}");
    assert!(node.inbox.is_empty(), "the second SET waits for the read");
    let reply = node.apply(&get.1.op);
    node.answer(get, reply);
    node.settle();
    assert_eq!(
        node.output(c),
        "+OK\r\n$1\r\n1\r\n+OK\r\n$1\r\n2\r\n*1\r\n$1\r\nk\r\n"
    );
}

#[test]
fn a_read_not_served_is_retried_and_says_it_changed_nothing_when_it_gives_up() {
    let mut node = Node::new();
    let c = node.connect();
    node.send(c, "GET k\n");
    node.no_leader_for_ms(4_000);
    let output = node.output(c);
    assert!(
        output.starts_with("-CLUSTERDOWN not executed: GET (a read served without the log): no leader was reachable"),
        "{output}"
    );
}

#[test]
fn a_stale_read_is_served_no_older_than_anything_its_connection_saw() {
    let mut node = Node::new();
    let c = node.connect();
    node.send(c, "CONSISTENCY stale\nSET k v\nGET k\n");
    node.settle_one();
    node.settle_one();
    let written = node.machine.applied_index();
    let get = node.take();
    let Operation::Read { floor, .. } = get.1.op else {
        panic!("GET is served without the log: {get:?}");
    };
    assert_eq!(floor, written, "the read sees the connection's own SET");
    let other = node.connect();
    node.send(other, "SET x 1\n");
    node.settle();
    let seen = node.machine.applied_index();
    assert!(seen > written);
    let result = node.apply(&get.1.op);
    node.answer(get, result);
    node.send(c, "GET k\n");
    let again = node.take();
    let Operation::Read { floor, .. } = again.1.op else {
        panic!("GET is served without the log: {again:?}");
    };
    assert_eq!(
        floor, seen,
        "no read goes back past the state an earlier one read"
    );
}

#[test]
fn every_reply_is_tallied_under_its_command_and_errors_apart() {
    let mut node = Node::new();
    let c = node.connect();
    node.send(
        c,
        "SET k v\nGET k\nINCR k\nPING\nNOSUCH x\nMULTI\nSET a 1\nEXEC\n*1\r\n$x\r\n",
    );
    node.settle();
    let output = node.output(c);
    assert!(output.contains("Protocol error"), "{output}");
    let tally = node.connections[c].take_tally();
    let figures: Vec<(&str, u64, u64)> = tally
        .iter()
        .map(|(name, counts)| (name, counts.replies, counts.errors))
        .collect();
    assert_eq!(
        figures,
        vec![
            ("(protocol)", 1, 1),
            ("exec", 1, 0),
            ("get", 1, 0),
            ("incr", 1, 1),
            ("multi", 1, 0),
            ("ping", 1, 0),
            ("set", 2, 0),
            ("unknown", 1, 1),
        ]
    );
    assert!(node.connections[c].take_tally().is_empty(), "taken");
}
