//! What happened in a run, as a hash (always) and as a list of events (on request).
//!
//! The hash is FNV-1a over every recorded event's canonical bytes, so two runs of the same seed
//! agree on it exactly when they did the same things in the same order at the same virtual
//! times. The same events, rendered, are the JSON Lines trace of `replay --trace`.

use serde::Serialize;
use std::cell::Cell;
use std::fmt;

thread_local! {
    static VIRTUAL_NOW_US: Cell<u64> = const { Cell::new(0) };
}

/// The virtual time of the simulation running on this thread, for log formatters.
#[must_use]
pub fn virtual_now_us() -> u64 {
    VIRTUAL_NOW_US.with(Cell::get)
}

pub(crate) fn set_virtual_now_us(now_us: u64) {
    VIRTUAL_NOW_US.with(|cell| cell.set(now_us));
}

/// One thing that happened, at a virtual time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TraceEvent {
    /// Virtual time, microseconds.
    pub time_us: u64,
    /// What happened.
    #[serde(flatten)]
    pub what: What,
}

/// The kinds of trace event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum What {
    /// A peer message was delivered (`crc` identifies its bytes).
    Deliver {
        /// Sender.
        from: u64,
        /// Receiver.
        to: u64,
        /// Message kind.
        kind: &'static str,
        /// crc32 of the frame.
        crc: u32,
    },
    /// A node's role, term, or commit index changed.
    NodeState {
        /// The node.
        node: u64,
        /// Its role.
        role: &'static str,
        /// Its term.
        term: u64,
        /// Its commit index.
        commit: u64,
    },
    /// A fault was injected or healed.
    Fault {
        /// Human description.
        description: String,
    },
    /// A client operation was invoked.
    Invoke {
        /// History process.
        process: u64,
        /// Operation description.
        op: String,
    },
    /// A client operation completed.
    Complete {
        /// History process.
        process: u64,
        /// Outcome description.
        outcome: String,
    },
    /// A node's condition changed: whether it runs, and which nodes it cannot hear. Kept
    /// only in traces that keep events, for pictures of the run, and not part of the hash:
    /// it follows from the faults, which are.
    Condition {
        /// The node.
        node: u64,
        /// `running`, `paused` or `down`.
        running: &'static str,
        /// Nodes whose messages to it are cut.
        unheard: Vec<u64>,
    },
}

impl fmt::Display for TraceEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.time_us / 1000;
        let frac = self.time_us % 1000;
        write!(f, "{ms:>6}.{frac:03}ms  {}", self.what)
    }
}

impl fmt::Display for What {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            What::Deliver { from, to, kind, .. } => write!(f, "deliver n{from} -> n{to} {kind}"),
            What::NodeState {
                node,
                role,
                term,
                commit,
            } => {
                write!(f, "n{node} {role} term={term} commit={commit}")
            }
            What::Fault { description } => write!(f, "FAULT {description}"),
            What::Invoke { process, op } => write!(f, "client p{process} invoke {op}"),
            What::Complete { process, outcome } => write!(f, "client p{process} {outcome}"),
            What::Condition {
                node,
                running,
                unheard,
            } => {
                write!(f, "n{node} {running}")?;
                if !unheard.is_empty() {
                    let names: Vec<String> = unheard.iter().map(|n| format!("n{n}")).collect();
                    write!(f, ", hears nothing from {}", names.join(", "))?;
                }
                Ok(())
            }
        }
    }
}

/// Accumulates the trace hash, and the events themselves when asked to.
#[derive(Clone, Debug)]
pub struct Trace {
    hash: u64,
    events: Option<Vec<TraceEvent>>,
    count: u64,
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

impl Trace {
    /// A trace that keeps events only if `keep_events`.
    #[must_use]
    pub fn new(keep_events: bool) -> Trace {
        Trace {
            hash: FNV_OFFSET,
            events: keep_events.then(Vec::new),
            count: 0,
        }
    }

    /// Records an event.
    pub fn record(&mut self, time_us: u64, what: What) {
        self.feed_numbers(&[time_us]);
        match &what {
            What::Deliver {
                from,
                to,
                kind,
                crc,
            } => {
                self.feed(&[0]);
                self.feed_numbers(&[*from, *to, u64::from(*crc)]);
                self.feed(kind.as_bytes());
            }
            What::NodeState {
                node,
                role,
                term,
                commit,
            } => {
                self.feed(&[1]);
                self.feed_numbers(&[*node, *term, *commit]);
                self.feed(role.as_bytes());
            }
            What::Fault { description } => {
                self.feed(&[2]);
                self.feed(description.as_bytes());
            }
            What::Invoke { process, op } => {
                self.feed(&[3]);
                self.feed_numbers(&[*process]);
                self.feed(op.as_bytes());
            }
            What::Complete { process, outcome } => {
                self.feed(&[4]);
                self.feed_numbers(&[*process]);
                self.feed(outcome.as_bytes());
            }
            What::Condition {
                node,
                running,
                unheard,
            } => {
                self.feed(&[5]);
                self.feed_numbers(&[*node]);
                self.feed_numbers(unheard);
                self.feed(running.as_bytes());
            }
        }
        self.count += 1;
        if let Some(events) = &mut self.events {
            events.push(TraceEvent { time_us, what });
        }
    }

    /// Keeps an event, if events are kept, without hashing or counting it: for facts that
    /// follow from hashed ones and that only pictures of the run need.
    pub fn note(&mut self, time_us: u64, what: What) {
        if let Some(events) = &mut self.events {
            events.push(TraceEvent { time_us, what });
        }
    }

    /// Mixes raw bytes into the hash without recording an event (for high-volume facts).
    pub fn feed(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.hash ^= u64::from(byte);
            self.hash = self.hash.wrapping_mul(FNV_PRIME);
        }
    }

    /// Mixes whole words (FNV-1a's step applied per 64-bit word: cheaper than per byte, and as
    /// good for telling runs apart).
    fn feed_numbers(&mut self, numbers: &[u64]) {
        for &number in numbers {
            self.hash ^= number;
            self.hash = self.hash.wrapping_mul(FNV_PRIME);
        }
    }

    /// The hash so far.
    #[must_use]
    pub fn hash(&self) -> u64 {
        self.hash
    }

    /// Number of events recorded.
    #[must_use]
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The events, if kept.
    #[must_use]
    pub fn events(&self) -> Option<&[TraceEvent]> {
        self.events.as_deref()
    }
}
