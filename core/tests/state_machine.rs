//! The key-value state machine and its exactly-once sessions, applied entry by entry.

mod support;

use support::{append, get, put, request};
use verity_core::kv::StateMachine;
use verity_core::*;

struct Harness {
    machine: StateMachine,
}

impl Harness {
    fn new(limits: SessionLimits) -> Harness {
        Harness {
            machine: StateMachine::new(limits),
        }
    }

    fn apply(&mut self, op: ClientOp) -> Reply {
        let index = self.machine.applied_index().next();
        self.machine.apply(index, Some(&op)).unwrap()
    }

    fn noop(&mut self) {
        let index = self.machine.applied_index().next();
        assert_eq!(self.machine.apply(index, None), None);
    }

    fn open(&mut self) -> ClientId {
        match self.apply(ClientOp::OpenSession) {
            Reply::SessionOpened { client } => client,
            other => panic!("{other:?}"),
        }
    }
}

fn limits() -> SessionLimits {
    SessionLimits {
        max_sessions: 3,
        idle_expiry_entries: 100,
        reply_window: 4,
    }
}

fn value(v: &str, version: u64) -> Option<Versioned> {
    Some(Versioned {
        value: v.as_bytes().to_vec(),
        version: LogIndex(version),
    })
}

#[test]
fn commands_follow_their_documented_semantics_with_versions() {
    let mut h = Harness::new(limits());
    let c = h.open(); // index 1
    assert_eq!(
        h.apply(request(c, 1, get("k"))),
        Reply::Value(None),
        "absent key"
    );
    assert_eq!(
        h.apply(request(c, 2, put("k", "a"))),
        Reply::Written {
            version: LogIndex(3)
        }
    );
    assert_eq!(
        h.apply(request(c, 3, append("k", "b"))),
        Reply::Written {
            version: LogIndex(4)
        }
    );
    assert_eq!(
        h.apply(request(c, 4, append("new", "x"))),
        Reply::Written {
            version: LogIndex(5)
        }
    );
    assert_eq!(
        h.apply(request(c, 5, get("k"))),
        Reply::Value(value("ab", 4))
    );
    assert_eq!(
        h.apply(request(c, 6, get("new"))),
        Reply::Value(value("x", 5)),
        "append to absent"
    );
    let del = Command::Delete { key: b"k".to_vec() };
    assert_eq!(
        h.apply(request(c, 7, del.clone())),
        Reply::Deleted { existed: true }
    );
    assert_eq!(
        h.apply(request(c, 8, del)),
        Reply::Deleted { existed: false }
    );
    assert_eq!(h.apply(request(c, 9, get("k"))), Reply::Value(None));
}

#[test]
fn compare_and_swap_checks_absence_value_or_version() {
    let mut h = Harness::new(limits());
    let c = h.open();
    let cas = |expect, new: Option<&str>| Command::Cas {
        key: b"k".to_vec(),
        expect,
        new: new.map(|n| n.as_bytes().to_vec()),
    };
    assert_eq!(
        h.apply(request(c, 1, cas(Expect::Absent, Some("a")))),
        Reply::Cas {
            swapped: true,
            current: value("a", 2)
        }
    );
    assert_eq!(
        h.apply(request(c, 2, cas(Expect::Absent, Some("b")))),
        Reply::Cas {
            swapped: false,
            current: value("a", 2)
        },
        "present, so not absent"
    );
    assert_eq!(
        h.apply(request(
            c,
            3,
            cas(Expect::Value(b"zzz".to_vec()), Some("b"))
        )),
        Reply::Cas {
            swapped: false,
            current: value("a", 2)
        }
    );
    assert_eq!(
        h.apply(request(c, 4, cas(Expect::Value(b"a".to_vec()), Some("b")))),
        Reply::Cas {
            swapped: true,
            current: value("b", 5)
        }
    );
    assert_eq!(
        h.apply(request(c, 5, cas(Expect::Version(LogIndex(2)), Some("c")))),
        Reply::Cas {
            swapped: false,
            current: value("b", 5)
        },
        "stale version"
    );
    assert_eq!(
        h.apply(request(c, 6, cas(Expect::Version(LogIndex(5)), None))),
        Reply::Cas {
            swapped: true,
            current: None
        },
        "a cas can delete"
    );
}

#[test]
fn a_retried_request_returns_the_stored_reply_and_is_not_applied_again() {
    let mut h = Harness::new(limits());
    let c = h.open();
    let first = h.apply(request(c, 1, append("k", "x")));
    let retry = h.apply(request(c, 1, append("k", "x")));
    assert_eq!(first, retry, "the same reply, including the version");
    assert_eq!(
        h.machine.store().get(b"k").unwrap().value,
        b"x",
        "applied once"
    );
}

#[test]
fn requests_in_an_unknown_session_are_refused_not_executed() {
    let mut h = Harness::new(limits());
    assert_eq!(
        h.apply(request(ClientId(77), 1, put("k", "v"))),
        Reply::Rejected(SessionError::UnknownSession)
    );
    assert!(h.machine.store().is_empty());
}

#[test]
fn pipelined_requests_may_apply_out_of_order_within_the_reply_window() {
    let mut h = Harness::new(limits());
    let c = h.open();
    h.apply(request(c, 3, append("k", "3")));
    h.apply(request(c, 1, append("k", "1")));
    h.apply(request(c, 2, append("k", "2")));
    h.apply(request(c, 2, append("k", "2")));
    assert_eq!(h.machine.store().get(b"k").unwrap().value, b"312");
}

#[test]
fn a_sequence_older_than_the_reply_window_is_refused_not_reexecuted() {
    let mut h = Harness::new(limits());
    let c = h.open();
    for seq in 1..=6 {
        h.apply(request(c, seq, append("k", "x")));
    }
    // The window of 4 keeps replies for 3..=6.
    assert_eq!(
        h.apply(request(c, 2, append("k", "x"))),
        Reply::Rejected(SessionError::SequenceTooOld)
    );
    assert!(
        matches!(
            h.apply(request(c, 3, append("k", "x"))),
            Reply::Written { .. }
        ),
        "3 is still cached"
    );
    assert_eq!(h.machine.store().get(b"k").unwrap().value, b"xxxxxx");
}

#[test]
fn a_session_used_within_idle_expiry_entries_stays_open() {
    let mut h = Harness::new(limits());
    let c = h.open(); // index 1
    for _ in 0..99 {
        h.noop();
    } // indexes 2..=100; the request lands at 101 = 1 + idle_expiry_entries
    assert!(matches!(
        h.apply(request(c, 1, put("k", "v"))),
        Reply::Written { .. }
    ));
}

#[test]
fn an_idle_session_expires_and_its_requests_are_then_refused() {
    let mut h = Harness::new(limits());
    let c = h.open(); // index 1
    for _ in 0..100 {
        h.noop();
    } // indexes 2..=101; the request lands at 102, one past the idle bound
    assert_eq!(
        h.apply(request(c, 1, put("k", "v"))),
        Reply::Rejected(SessionError::UnknownSession)
    );
    assert!(h.machine.sessions().is_empty());
}

#[test]
fn opening_more_than_max_sessions_evicts_the_least_recently_active() {
    let mut h = Harness::new(limits());
    let a = h.open();
    let b = h.open();
    let c = h.open();
    h.apply(request(a, 1, put("k", "a"))); // a is now the most recent
    let d = h.open(); // evicts b, the least recently active
    assert_eq!(h.machine.sessions().len(), 3);
    assert_eq!(
        h.apply(request(b, 1, put("k", "b"))),
        Reply::Rejected(SessionError::UnknownSession)
    );
    for live in [a, c, d] {
        assert!(
            !matches!(h.apply(request(live, 2, get("k"))), Reply::Rejected(_)),
            "{live}"
        );
    }
}
