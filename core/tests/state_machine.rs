//! The key-value state machine and its exactly-once sessions, applied entry by entry: Redis
//! command semantics (replies and error texts), leader-time expiry, and every session rule.

mod support;

use verity_core::kv::{SessionTable, StateMachine};
use verity_core::*;

const TOKEN: SessionToken = SessionToken([7; 16]);

struct Harness {
    machine: StateMachine,
    time_ms: u64,
    sequence: u64,
    client: ClientId,
    /// Each session's token: every open uses a new one, as every connection does.
    tokens: std::collections::BTreeMap<ClientId, SessionToken>,
}

impl Harness {
    fn new(limits: SessionLimits) -> Harness {
        let mut harness = Harness {
            machine: StateMachine::new(limits, 128),
            time_ms: 1_000_000,
            sequence: 0,
            client: ClientId(0),
            tokens: std::collections::BTreeMap::new(),
        };
        harness.client = harness.open();
        harness
    }

    fn apply(&mut self, op: ClientOp) -> Reply {
        let index = self.machine.applied_index().next();
        self.machine.apply(index, self.time_ms, Some(&op)).unwrap()
    }

    fn noop(&mut self) {
        let index = self.machine.applied_index().next();
        assert_eq!(self.machine.apply(index, 0, None), None);
    }

    fn open(&mut self) -> ClientId {
        let token = SessionToken([TOKEN.0[0].wrapping_add(self.tokens.len() as u8); 16]);
        match self.apply(ClientOp::OpenSession { token }) {
            Reply::SessionOpened { client } => {
                self.tokens.insert(client, token);
                client
            }
            other => panic!("{other:?}"),
        }
    }

    fn send(&mut self, client: ClientId, sequence: u64, line: &str) -> Reply {
        self.apply(ClientOp::Request(ClientRequest {
            client,
            token: self.tokens.get(&client).copied().unwrap_or(TOKEN),
            may_skip_earlier: true,
            sequence: Sequence(sequence),
            command: parse(line),
        }))
    }

    /// Runs `line` as the next command of the harness's own session.
    fn run(&mut self, line: &str) -> Frame {
        self.sequence += 1;
        match self.send(self.client, self.sequence, line) {
            Reply::Executed(frame) => frame,
            other => panic!("{line}: {other:?}"),
        }
    }

    /// Runs `MULTI`, `commands`, `EXEC` (with `watched` versions) as the next command of the
    /// harness's own session.
    fn exec(&mut self, watched: Vec<(Vec<u8>, u64)>, commands: &[&str]) -> Reply {
        self.sequence += 1;
        self.apply(ClientOp::Request(ClientRequest {
            client: self.client,
            token: TOKEN,
            may_skip_earlier: true,
            sequence: Sequence(self.sequence),
            command: Command::Exec(verity_core::kv::cmd::Transaction {
                watched,
                commands: commands.iter().map(|line| parse(line)).collect(),
            }),
        }))
    }

    fn wait_ms(&mut self, ms: u64) {
        self.time_ms += ms;
    }
}

fn parse(line: &str) -> Command {
    Command::parse(line.split(' ').map(|w| w.as_bytes().to_vec()).collect())
        .unwrap_or_else(|error| panic!("{line}: {error}"))
}

fn limits() -> SessionLimits {
    SessionLimits {
        max_sessions: 3,
        idle_expiry_entries: 100,
        reply_window: 4,
        max_reply_bytes_per_session: 1 << 20,
        max_reply_bytes_total: 1 << 20,
    }
}

fn bulk(text: &str) -> Frame {
    Frame::text(text)
}

fn error(text: &str) -> Frame {
    Frame::error(text)
}

fn array(items: &[Frame]) -> Frame {
    Frame::Array(items.to_vec())
}

#[test]
fn strings_answer_as_redis_does() {
    let mut h = Harness::new(limits());
    assert_eq!(h.run("GET k"), Frame::Null);
    assert_eq!(h.run("SET k a"), Frame::ok());
    assert_eq!(h.run("SET k b NX"), Frame::Null);
    assert_eq!(h.run("SET other b XX"), Frame::Null);
    assert_eq!(h.run("SET k b XX GET"), bulk("a"));
    assert_eq!(h.run("GETSET k c"), bulk("b"));
    assert_eq!(h.run("SETNX k d"), Frame::Integer(0));
    assert_eq!(h.run("SETNX fresh d"), Frame::Integer(1));
    assert_eq!(h.run("APPEND k xyz"), Frame::Integer(4));
    assert_eq!(h.run("STRLEN k"), Frame::Integer(4));
    assert_eq!(h.run("GETRANGE k 1 -1"), bulk("xyz"));
    assert_eq!(h.run("SETRANGE k 6 !"), Frame::Integer(7));
    assert_eq!(h.run("GET k"), Frame::Bulk(b"cxyz\0\0!".to_vec()));
    assert_eq!(h.run("SETRANGE none 0 "), Frame::Integer(0), "no key made");
    assert_eq!(h.run("EXISTS none"), Frame::Integer(0));
    assert_eq!(h.run("GETDEL fresh"), bulk("d"));
    assert_eq!(h.run("GETDEL fresh"), Frame::Null);
    assert_eq!(h.run("MSET a 1 b 2"), Frame::ok());
    assert_eq!(
        h.run("MGET a b zz"),
        array(&[bulk("1"), bulk("2"), Frame::Null])
    );
    assert_eq!(h.run("MSETNX b 9 c 9"), Frame::Integer(0));
    assert_eq!(
        h.run("EXISTS c"),
        Frame::Integer(0),
        "MSETNX sets nothing if any key exists"
    );
    assert_eq!(h.run("MSETNX c 3 d 4"), Frame::Integer(1));
    assert_eq!(
        h.run(&format!("APPEND k {}", "9".repeat(125))),
        error("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
    );
    assert_eq!(
        h.run("STRLEN k"),
        Frame::Integer(7),
        "a refused write changes nothing"
    );
}

#[test]
fn counters_are_one_atomic_step_with_redis_errors() {
    let mut h = Harness::new(limits());
    assert_eq!(h.run("INCR n"), Frame::Integer(1));
    assert_eq!(h.run("INCRBY n 41"), Frame::Integer(42));
    assert_eq!(h.run("DECR n"), Frame::Integer(41));
    assert_eq!(h.run("DECRBY n 50"), Frame::Integer(-9));
    assert_eq!(h.run("SET s abc"), Frame::ok());
    assert_eq!(
        h.run("INCR s"),
        error("ERR value is not an integer or out of range")
    );
    assert_eq!(h.run("SET big 9223372036854775807"), Frame::ok());
    assert_eq!(
        h.run("INCR big"),
        error("ERR increment or decrement would overflow")
    );
    assert_eq!(h.run("SET f 10.5"), Frame::ok());
    assert_eq!(h.run("INCRBYFLOAT f 0.1"), bulk("10.6"));
    assert_eq!(h.run("INCRBYFLOAT f -5.6"), bulk("5"));
    assert_eq!(
        h.run("INCRBYFLOAT s 1"),
        error("ERR value is not a valid float")
    );
    assert_eq!(h.run("SET f 1e308"), Frame::ok());
    assert_eq!(
        h.run("INCRBYFLOAT f 1e308"),
        error("ERR increment would produce NaN or Infinity")
    );
    for (line, text) in [
        ("INCRBY n x", "ERR value is not an integer or out of range"),
        (
            "DECRBY n -9223372036854775808",
            "ERR decrement would overflow",
        ),
        ("INCRBYFLOAT n abc", "ERR value is not a valid float"),
        ("INCR", "ERR wrong number of arguments for 'incr' command"),
    ] {
        let parsed = Command::parse(line.split(' ').map(|w| w.as_bytes().to_vec()).collect());
        assert_eq!(parsed.unwrap_err().to_string(), text, "{line}");
    }
}

#[test]
fn keys_commands_cover_the_whole_keyspace_atomically() {
    let mut h = Harness::new(limits());
    assert_eq!(h.run("MSET user:1 a user:2 b other c"), Frame::ok());
    assert_eq!(h.run("DBSIZE"), Frame::Integer(3));
    assert_eq!(h.run("TYPE user:1"), Frame::Simple("string".into()));
    assert_eq!(h.run("TYPE nope"), Frame::Simple("none".into()));
    assert_eq!(h.run("EXISTS user:1 user:1 nope"), Frame::Integer(2));
    assert_eq!(
        h.run("KEYS user:*"),
        array(&[bulk("user:1"), bulk("user:2")])
    );
    let mut seen = Vec::new();
    let mut cursor = "0".to_string();
    loop {
        let Frame::Array(parts) = h.run(&format!("SCAN {cursor} MATCH user:* COUNT 1")) else {
            panic!("SCAN answers an array")
        };
        let [Frame::Bulk(next), Frame::Array(keys)] = &parts[..] else {
            panic!("{parts:?}")
        };
        seen.extend(keys.iter().cloned());
        cursor = String::from_utf8(next.clone()).unwrap();
        if cursor == "0" {
            break;
        }
    }
    seen.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
    assert_eq!(seen, vec![bulk("user:1"), bulk("user:2")]);
    assert!(matches!(h.run("RANDOMKEY"), Frame::Bulk(_)));
    assert_eq!(h.run("UNLINK user:1 user:2 nope"), Frame::Integer(2));
    assert_eq!(h.run("FLUSHALL"), Frame::ok());
    assert_eq!(h.run("DBSIZE"), Frame::Integer(0));
    assert_eq!(h.run("RANDOMKEY"), Frame::Null);
}

#[test]
fn expiry_follows_the_entries_leader_time() {
    let mut h = Harness::new(limits());
    assert_eq!(h.run("SET k v PX 100"), Frame::ok());
    assert_eq!(h.run("PTTL k"), Frame::Integer(100));
    assert_eq!(
        h.run("TTL k"),
        Frame::Integer(0),
        "TTL rounds 100 ms to 0 s"
    );
    h.wait_ms(100);
    assert_eq!(
        h.run("GET k"),
        bulk("v"),
        "a key lives until time passes its deadline"
    );
    h.wait_ms(1);
    assert_eq!(h.run("GET k"), Frame::Null);
    assert_eq!(h.run("TTL k"), Frame::Integer(-2));
    assert_eq!(h.run("SET k v"), Frame::ok());
    assert_eq!(h.run("TTL k"), Frame::Integer(-1));
    assert_eq!(
        h.run("EXPIRE k 10 XX"),
        Frame::Integer(0),
        "XX: no deadline yet"
    );
    assert_eq!(h.run("EXPIRE k 10 NX"), Frame::Integer(1));
    assert_eq!(h.run("EXPIRE k 5 GT"), Frame::Integer(0));
    assert_eq!(h.run("EXPIRE k 5 LT"), Frame::Integer(1));
    assert_eq!(h.run("TTL k"), Frame::Integer(5));
    assert_eq!(
        h.run("EXPIRETIME k"),
        Frame::Integer(1_005),
        "seconds, rounded down"
    );
    assert_eq!(h.run("PEXPIRETIME k"), Frame::Integer(1_005_101));
    assert_eq!(h.run("SET k w KEEPTTL"), Frame::ok());
    assert_eq!(h.run("TTL k"), Frame::Integer(5), "KEEPTTL");
    assert_eq!(
        h.run("INCRBY k 0"),
        error("ERR value is not an integer or out of range")
    );
    assert_eq!(h.run("PERSIST k"), Frame::Integer(1));
    assert_eq!(h.run("PERSIST k"), Frame::Integer(0));
    assert_eq!(h.run("SETEX k 2 x"), Frame::ok());
    assert_eq!(h.run("GETEX k PERSIST"), bulk("x"));
    assert_eq!(h.run("TTL k"), Frame::Integer(-1));
    assert_eq!(h.run("GETEX k PX 50"), bulk("x"));
    assert_eq!(h.run("PTTL k"), Frame::Integer(50));
    assert_eq!(
        h.run("EXPIRE k -1"),
        Frame::Integer(1),
        "a past deadline deletes"
    );
    assert_eq!(h.run("EXISTS k"), Frame::Integer(0));
    assert_eq!(
        h.run("SET k v EXAT 1"),
        Frame::ok(),
        "a deadline in the past deletes"
    );
    assert_eq!(h.run("EXISTS k"), Frame::Integer(0));
    assert_eq!(h.run("EXPIRE nope 10"), Frame::Integer(0));
    for (line, text) in [
        ("SET k v EX 0", "ERR invalid expire time in 'set' command"),
        ("SETEX k -1 v", "ERR invalid expire time in 'setex' command"),
        ("SET k v NX XX", "ERR syntax error"),
        ("SET k v EX 1 PX 1", "ERR syntax error"),
        (
            "EXPIRE k 1 NX GT",
            "ERR NX and XX, GT or LT options at the same time are not compatible",
        ),
        (
            "EXPIRE k 1 GT LT",
            "ERR GT and LT options at the same time are not compatible",
        ),
    ] {
        let parsed = Command::parse(line.split(' ').map(|w| w.as_bytes().to_vec()).collect());
        assert_eq!(parsed.unwrap_err().to_string(), text, "{line}");
    }
}

#[test]
fn a_transaction_runs_whole_or_not_at_all_when_a_watched_key_changed() {
    let mut h = Harness::new(limits());
    assert_eq!(h.run("SET a 1"), Frame::ok());
    let Frame::Array(versions) = h.run("GETVER a") else {
        panic!()
    };
    let Frame::Integer(version) = versions[1] else {
        panic!()
    };
    let commands = ["INCR a", "INCR s", "SET s x", "INCR s"];
    let watched = vec![(b"a".to_vec(), version as u64)];
    let reply = h.exec(watched.clone(), &commands);
    assert_eq!(
        reply,
        Reply::Executed(array(&[
            Frame::Integer(2),
            Frame::Integer(1),
            Frame::ok(),
            error("ERR value is not an integer or out of range"),
        ]))
    );
    let reply = h.exec(watched, &commands);
    assert_eq!(
        reply,
        Reply::Executed(Frame::NullArray),
        "a was written since"
    );
    assert_eq!(
        h.run("GET a"),
        bulk("2"),
        "nothing of the aborted transaction ran"
    );
}

#[test]
fn compare_and_swap_checks_absence_value_or_version() {
    let mut h = Harness::new(limits());
    assert_eq!(h.run("CAS k old new"), Frame::Integer(0));
    assert_eq!(h.run("SET k old"), Frame::ok());
    assert_eq!(h.run("CAS k old new"), Frame::Integer(1));
    assert_eq!(h.run("GET k"), bulk("new"));
    let cas = |expect| {
        ClientOp::Request(ClientRequest {
            client: ClientId(1),
            token: TOKEN,
            may_skip_earlier: true,
            sequence: Sequence(0),
            command: Command::cas("k", expect, None),
        })
    };
    let version = h.machine.store().get(b"k").unwrap().version;
    for (sequence, expect, swapped) in [
        (
            10,
            verity_core::kv::cmd::Expect::Version(LogIndex(version.0 + 1)),
            0,
        ),
        (11, verity_core::kv::cmd::Expect::Absent, 0),
        (12, verity_core::kv::cmd::Expect::Version(version), 1),
    ] {
        let ClientOp::Request(mut request) = cas(expect) else {
            unreachable!()
        };
        request.client = h.client;
        request.sequence = Sequence(sequence);
        h.sequence = sequence;
        assert_eq!(
            h.apply(ClientOp::Request(request)),
            Reply::Executed(Frame::Integer(swapped))
        );
    }
    assert_eq!(
        h.run("EXISTS k"),
        Frame::Integer(0),
        "a swap to None deletes"
    );
}

#[test]
fn a_retried_write_returns_its_kept_reply_and_is_not_applied_again() {
    let mut h = Harness::new(limits());
    let c = h.client;
    assert_eq!(h.send(c, 1, "INCR n"), Reply::Executed(Frame::Integer(1)));
    assert_eq!(h.send(c, 1, "INCR n"), Reply::Executed(Frame::Integer(1)));
    assert_eq!(h.machine.store().get(b"n").unwrap().value, b"1");
}

#[test]
fn a_retry_must_repeat_the_same_command() {
    let mut h = Harness::new(limits());
    let c = h.client;
    assert_eq!(h.send(c, 1, "SET lock me NX"), Reply::Executed(Frame::ok()));
    assert_eq!(
        h.send(c, 1, "SET lock you"),
        Reply::Rejected(SessionError::DifferentCommand)
    );
    assert_eq!(h.machine.store().get(b"lock").unwrap().value, b"me");
}

#[test]
fn a_retried_read_reads_again_while_nothing_later_ran_and_is_refused_after() {
    let mut h = Harness::new(limits());
    let c = h.client;
    assert_eq!(h.send(c, 1, "GET k"), Reply::Executed(Frame::Null));
    let other = h.open();
    assert_eq!(h.send(other, 1, "SET k v"), Reply::Executed(Frame::ok()));
    assert_eq!(
        h.send(c, 1, "GET k"),
        Reply::Executed(bulk("v")),
        "reads again, under its own number: the session's order is unchanged"
    );
    assert_eq!(h.send(c, 2, "SET k w"), Reply::Executed(Frame::ok()));
    assert_eq!(
        h.send(c, 1, "GET k"),
        Reply::Rejected(SessionError::ReplyNotKept),
        "a later command ran: reading now would answer 1 after 2"
    );
    assert_eq!(h.machine.store().get(b"k").unwrap().value, b"w");
}

#[test]
fn a_wrong_token_cannot_use_or_disturb_a_session() {
    let mut h = Harness::new(limits());
    let c = h.client;
    let forged = ClientOp::Request(ClientRequest {
        client: c,
        token: SessionToken([8; 16]),
        may_skip_earlier: true,
        sequence: Sequence(4_611_686_018_427_387_904),
        command: parse("GET x"),
    });
    assert_eq!(h.apply(forged), Reply::Rejected(SessionError::WrongToken));
    assert_eq!(
        h.send(c, 1, "SET x 1"),
        Reply::Executed(Frame::ok()),
        "the owner goes on"
    );
}

#[test]
fn requests_in_an_unknown_session_are_refused_not_executed() {
    let mut h = Harness::new(limits());
    assert_eq!(
        h.send(ClientId(999), 1, "SET k v"),
        Reply::Rejected(SessionError::UnknownSession)
    );
    assert!(h.machine.store().get(b"k").is_none());
}

#[test]
fn a_session_executes_in_sequence_order_and_refuses_an_older_number_it_never_ran() {
    let mut h = Harness::new(limits());
    let c = h.client;
    assert_eq!(
        h.send(c, 2, "APPEND k b"),
        Reply::Executed(Frame::Integer(1))
    );
    assert_eq!(
        h.send(c, 1, "APPEND k a"),
        Reply::Rejected(SessionError::OutOfOrder),
        "running 1 after 2 would break the connection's order"
    );
    assert_eq!(h.machine.store().get(b"k").unwrap().value, b"b");
}

#[test]
fn a_request_may_not_run_ahead_of_an_earlier_number_unless_told_it_may_skip_it() {
    let mut h = Harness::new(limits());
    let request = |sequence: u64, may_skip_earlier: bool| {
        ClientOp::Request(ClientRequest {
            client: h.client,
            token: TOKEN,
            sequence: Sequence(sequence),
            may_skip_earlier,
            command: parse("APPEND k x"),
        })
    };
    let (early, skipping, late) = (request(2, false), request(2, true), request(1, false));
    assert_eq!(
        h.apply(early),
        Reply::Rejected(SessionError::Early),
        "1 has not run yet"
    );
    assert_eq!(
        h.apply(skipping),
        Reply::Executed(Frame::Integer(1)),
        "the client gave up on 1"
    );
    assert_eq!(
        h.apply(late),
        Reply::Rejected(SessionError::OutOfOrder),
        "1 never runs now"
    );
}

#[test]
fn a_sequence_older_than_the_window_is_refused_not_reexecuted() {
    let mut h = Harness::new(limits());
    let c = h.client;
    for sequence in 1..=5 {
        assert!(matches!(h.send(c, sequence, "INCR n"), Reply::Executed(_)));
    }
    assert_eq!(
        h.send(c, 1, "INCR n"),
        Reply::Rejected(SessionError::SequenceTooOld)
    );
    assert_eq!(
        h.send(c, 2, "INCR n"),
        Reply::Executed(Frame::Integer(2)),
        "inside the window of 4"
    );
    assert_eq!(h.machine.store().get(b"n").unwrap().value, b"5");
}

#[test]
fn reply_caches_are_bounded_in_bytes_per_session_and_in_total() {
    let mut small = limits();
    small.max_reply_bytes_per_session = 260;
    small.max_reply_bytes_total = 300;
    let mut h = Harness::new(small);
    let c = h.client;
    let other = h.open();
    let value = "x".repeat(100);
    assert_eq!(
        h.send(c, 1, &format!("SET a {value}")),
        Reply::Executed(Frame::ok())
    );
    assert_eq!(
        h.send(c, 2, &format!("GETSET a {value}")),
        Reply::Executed(bulk(&value))
    );
    assert_eq!(h.send(c, 3, "GETSET a y"), Reply::Executed(bulk(&value)));
    assert_eq!(h.send(c, 4, "GETSET a z"), Reply::Executed(bulk("y")));
    assert!(h.machine.sessions().reply_bytes() <= 260);
    assert_eq!(
        h.send(c, 1, &format!("SET a {value}")),
        Reply::Rejected(SessionError::ReplyNotKept),
        "the per-session bound dropped the oldest reply; the retry is refused, never re-executed"
    );
    for sequence in 1..=3 {
        assert!(matches!(
            h.send(other, sequence, &format!("GETSET b {value}")),
            Reply::Executed(_)
        ));
    }
    assert!(
        h.machine.sessions().reply_bytes() <= 300,
        "{}",
        h.machine.sessions().reply_bytes()
    );
    assert_eq!(
        h.send(c, 2, &format!("GETSET a {value}")),
        Reply::Rejected(SessionError::ReplyNotKept),
        "the total bound dropped the least recently active session's replies first"
    );
    assert_eq!(
        h.send(other, 3, &format!("GETSET b {value}")),
        Reply::Executed(bulk(&value))
    );
    assert_eq!(h.machine.store().get(b"a").unwrap().value, b"z");
}

#[test]
fn an_idle_session_expires_and_one_used_in_time_stays() {
    let mut h = Harness::new(limits());
    let idle = h.client;
    let busy = h.open();
    for i in 0..60 {
        h.noop();
        if i % 50 == 0 {
            assert!(matches!(
                h.send(busy, 1 + i / 50, "GET k"),
                Reply::Executed(_)
            ));
        }
    }
    for _ in 0..60 {
        h.noop();
    }
    assert_eq!(
        h.send(idle, 1, "GET k"),
        Reply::Rejected(SessionError::UnknownSession)
    );
    assert!(
        matches!(h.send(busy, 9, "GET k"), Reply::Executed(_)) || h.machine.sessions().len() <= 1
    );
}

#[test]
fn opening_more_than_max_sessions_evicts_the_least_recently_active() {
    let mut h = Harness::new(limits());
    let first = h.client;
    let second = h.open();
    let _third = h.open();
    assert!(matches!(h.send(first, 1, "GET k"), Reply::Executed(_)));
    let _fourth = h.open();
    assert_eq!(
        h.send(second, 1, "GET k"),
        Reply::Rejected(SessionError::UnknownSession)
    );
    assert!(matches!(h.send(first, 2, "GET k"), Reply::Executed(_)));
}

#[test]
fn sessions_know_their_token_and_highest_sequence() {
    let mut table = SessionTable::new(limits());
    let client = table.open(LogIndex(1), TOKEN);
    assert_eq!(table.token(client), Some(TOKEN));
    assert_eq!(table.highest(client), Some(Sequence(0)));
}

#[test]
fn replicas_that_apply_the_same_entries_at_the_same_times_have_the_same_digest() {
    let mut one = Harness::new(limits());
    let mut other = Harness::new(limits());
    for harness in [&mut one, &mut other] {
        harness.run("SET k v PX 60000");
        harness.noop();
    }
    assert_eq!(one.machine.trail(), other.machine.trail());
    assert_eq!(one.machine.digest(), other.machine.digest());
    // The same command at another time sets another deadline: the replicas now differ, and
    // both digests say so at once.
    one.time_ms += 1;
    other.time_ms += 2;
    one.run("SET k v PX 60000");
    other.run("SET k v PX 60000");
    assert_ne!(one.machine.trail(), other.machine.trail());
    assert_ne!(one.machine.digest(), other.machine.digest());
}

#[test]
fn opening_again_with_the_same_token_returns_the_same_session_and_evicts_nothing() {
    let mut h = Harness::new(limits());
    let others: Vec<ClientId> = (0..limits().max_sessions - 1).map(|_| h.open()).collect();
    // A connection whose first OpenSession ran but whose answer was lost retries it: the
    // retry must not open a second session, which would evict a session still in use.
    let token = SessionToken([200; 16]);
    let first = match h.apply(ClientOp::OpenSession { token }) {
        Reply::SessionOpened { client } => client,
        other => panic!("{other:?}"),
    };
    for _ in 0..5 {
        assert_eq!(
            h.apply(ClientOp::OpenSession { token }),
            Reply::SessionOpened { client: first }
        );
    }
    assert_eq!(h.machine.sessions().len(), limits().max_sessions);
    for other in others {
        assert!(
            h.machine.sessions().highest(other).is_some(),
            "{other:?} kept"
        );
    }
}

#[test]
fn casver_swaps_only_on_the_exact_version_and_cad_deletes_only_the_expected_value() {
    let mut h = Harness::new(limits());
    assert_eq!(h.run("CASVER k 1 x"), Frame::Integer(0), "absent key");
    assert_eq!(h.run("SET k v"), Frame::ok());
    let Frame::Array(read) = h.run("GETVER k") else {
        panic!("GETVER answers an array")
    };
    let Frame::Integer(version) = read[1] else {
        panic!("the version is an integer")
    };
    for wrong in [version - 1, version + 1, version + 1_000_000] {
        assert_eq!(
            h.run(&format!("CASVER k {wrong} x")),
            Frame::Integer(0),
            "{wrong}"
        );
    }
    assert_eq!(h.run("GET k"), Frame::Bulk(b"v".to_vec()));
    assert_eq!(h.run(&format!("CASVER k {version} w")), Frame::Integer(1));
    assert_eq!(
        h.run(&format!("CASVER k {version} y")),
        Frame::Integer(0),
        "version moved"
    );
    assert_eq!(h.run("GET k"), Frame::Bulk(b"w".to_vec()));
    let negative = Command::parse(
        ["CASVER", "k", "-1", "x"]
            .map(|w| w.as_bytes().to_vec())
            .into(),
    );
    assert_eq!(
        negative.unwrap_err().to_string(),
        "ERR value is not an integer or out of range"
    );

    assert_eq!(h.run("CAD k v"), Frame::Integer(0), "not the value");
    assert_eq!(h.run("GET k"), Frame::Bulk(b"w".to_vec()));
    assert_eq!(h.run("CAD k w"), Frame::Integer(1));
    assert_eq!(h.run("GET k"), Frame::Null);
    assert_eq!(h.run("CAD k w"), Frame::Integer(0), "already gone");
}

#[test]
fn a_transactions_replies_together_stay_within_the_reply_limit_and_its_writes_still_run() {
    // Issue 11, failure 7: a transaction of many large reads could build a reply of its
    // commands' limits added up. Values here are at most 128 bytes: 8,192 in all.
    let mut h = Harness::new(limits());
    let value = "v".repeat(128);
    assert_eq!(h.run(&format!("SET big {value}")), Frame::ok());
    let mut commands = vec!["GET big"; 65];
    commands.push("INCR n");
    let Reply::Executed(Frame::Array(replies)) = h.exec(Vec::new(), &commands) else {
        panic!("the transaction runs")
    };
    assert_eq!(replies.len(), 66);
    assert!(replies[..64].iter().all(|reply| *reply == bulk(&value)));
    for dropped in &replies[64..] {
        let Frame::Error(text) = dropped else {
            panic!("{dropped:?}")
        };
        assert!(
            text.starts_with("ERR the transaction's replies carry more than 8192 bytes"),
            "{text}"
        );
    }
    assert_eq!(h.run("GET n"), bulk("1"), "the write past the limit ran");
}

#[test]
fn a_reply_larger_than_64_of_the_largest_values_is_refused_before_it_is_built() {
    // Issue 11, failure 7: one MGET could build a reply as large as every value it names.
    // Values here are at most 128 bytes, so replies carry at most 8,192.
    let mut h = Harness::new(limits());
    let value = "v".repeat(128);
    for key in 0..70 {
        assert_eq!(h.run(&format!("SET key:{key:03} {value}")), Frame::ok());
    }
    let keys: Vec<String> = (0..70).map(|key| format!("key:{key:03}")).collect();
    let refused = h.run(&format!("MGET {}", keys.join(" ")));
    let Frame::Error(text) = refused else {
        panic!("{refused:?}")
    };
    assert!(
        text.starts_with("ERR the reply would carry 8960 bytes, over the limit of 8192"),
        "{text}"
    );
    let Frame::Array(values) = h.run(&format!("MGET {}", keys[..64].join(" "))) else {
        panic!("64 values fit")
    };
    assert_eq!(values.len(), 64);
    let long_key = "k".repeat(120);
    for key in 0..70 {
        assert_eq!(h.run(&format!("SET {long_key}{key:03} x")), Frame::ok());
    }
    assert!(matches!(h.run("KEYS kkk*"), Frame::Error(_)));
    assert!(matches!(h.run("SCAN 0 COUNT 1000"), Frame::Error(_)));
    let Frame::Array(found) = h.run("KEYS key:00*") else {
        panic!("a small KEYS fits")
    };
    assert_eq!(found.len(), 10);
}
