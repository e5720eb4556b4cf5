//! The session guarantees of stale reads: read-your-writes and monotonic reads per client, and
//! how stale the reads were.
//!
//! A stale read (`CONSISTENCY stale`) is served from one node's applied state, so it is not
//! linearizable and stays out of the history the linearizability checker judges. What a
//! connection promises instead (see `verity_engine::Connection`): a read is served on a state
//! at least as new as every answer its client had before sending it. So for each client, in
//! the order it sent its commands:
//!
//! - **read-your-writes**: a stale read sees the state after every command of the client that
//!   was answered `ok` before it;
//! - **monotonic reads**: it sees no older state than the client's earlier stale reads did.
//!
//! The checker judges this from the outside. It replays the committed log (which the safety
//! checker collected and every replica applied) through the real state machine, so it knows
//! at which index each of the client's numbered commands ran and which values each key held
//! from which index on. A read's values match a set of indices; the client's floor is the
//! highest index its earlier commands ran at and its earlier reads were placed at. Each read
//! is placed at the lowest index at or above the floor, and no later than what was committed
//! when it completed, where the state held every value it returned; none means a violation.
//! Placing each read as low as possible is exact: any placement of the earlier reads leaves
//! a floor at least as high.
//!
//! How stale, as charitably as the values allow: a read is fresh if its keys held the values
//! it returned in some state still current when it was sent; otherwise it is behind by the
//! entries committed after the latest such state, and by how long before it was sent the
//! first of them committed (virtual milliseconds).

use std::collections::BTreeMap;
use std::fmt;
use verity_core::LogIndex;
use verity_core::kv::{ClientOp, Reply, StateMachine};
use verity_core::log::{Entry, EntryPayload};

/// One operation of a client, as far as its session guarantees go.
#[derive(Clone, Debug)]
struct SessionOp {
    client: usize,
    kind: SessionOpKind,
}

#[derive(Clone, Debug)]
enum SessionOpKind {
    /// A command of the log answered `ok`: number `number` of session `session`.
    Ran { session: u64, number: u64 },
    /// A stale read of `keys` that returned `values`, sent at `invoked_us` and answered at
    /// `completed_us`.
    StaleRead {
        keys: Vec<String>,
        values: Vec<Option<String>>,
        invoked_us: u64,
        completed_us: u64,
    },
}

/// What the clients did that their session guarantees bind, collected during a run.
#[derive(Clone, Debug, Default)]
pub(crate) struct SessionLog {
    /// By history process: processes are numbered in the order their clients sent them.
    ops: BTreeMap<u64, SessionOp>,
    /// When each index was first seen committed: `(time, highest committed index)`, rising.
    commits: Vec<(u64, LogIndex)>,
}

impl SessionLog {
    /// Client `client`'s command `process`, number `number` of session `session`, was
    /// answered `ok`.
    pub(crate) fn ran(&mut self, process: u64, client: usize, session: u64, number: u64) {
        let kind = SessionOpKind::Ran { session, number };
        self.ops.insert(process, SessionOp { client, kind });
    }

    /// Client `client`'s stale read `process` of `keys`, sent at `invoked_us`, returned
    /// `values` (one per key) at `completed_us`.
    pub(crate) fn stale_read(
        &mut self,
        process: u64,
        client: usize,
        keys: Vec<String>,
        values: Vec<Option<String>>,
        (invoked_us, completed_us): (u64, u64),
    ) {
        debug_assert_eq!(keys.len(), values.len());
        let kind = SessionOpKind::StaleRead {
            keys,
            values,
            invoked_us,
            completed_us,
        };
        self.ops.insert(process, SessionOp { client, kind });
    }

    /// The highest index committed anywhere is `index` at `now_us`.
    pub(crate) fn committed(&mut self, now_us: u64, index: LogIndex) {
        if self.commits.last().is_none_or(|&(_, last)| index > last) {
            self.commits.push((now_us, index));
        }
    }

    /// Whether any stale read was recorded.
    pub(crate) fn has_stale_reads(&self) -> bool {
        self.ops
            .values()
            .any(|op| matches!(op.kind, SessionOpKind::StaleRead { .. }))
    }

    /// The highest index committed at `time_us`.
    fn committed_at(&self, time_us: u64) -> LogIndex {
        let seen = self.commits.partition_point(|&(t, _)| t <= time_us);
        seen.checked_sub(1)
            .map_or(LogIndex(0), |last| self.commits[last].1)
    }

    /// When `index` was first seen committed.
    fn commit_time(&self, index: LogIndex) -> Option<u64> {
        let at = self.commits.partition_point(|&(_, i)| i < index);
        self.commits.get(at).map(|&(time, _)| time)
    }
}

/// How stale the checked reads were.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct StaleReads {
    /// Stale reads checked.
    pub checked: u64,
    /// Of those, reads that returned a value overwritten before they were sent.
    pub behind: u64,
    /// The most entries committed past the state a read saw, before it was sent.
    pub max_entries_behind: u64,
    /// The longest a value a read returned had been overwritten before it was sent, in
    /// virtual milliseconds.
    pub max_ms_behind: u64,
    /// The median of that time over the reads that were behind.
    pub median_ms_behind: u64,
    /// The history process of the read behind the longest, if any was.
    pub stalest: Option<u64>,
}

impl fmt::Display for StaleReads {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} stale reads checked, {} behind (at most {} entries, {} ms; median {} ms)",
            self.checked,
            self.behind,
            self.max_entries_behind,
            self.max_ms_behind,
            self.median_ms_behind
        )?;
        match self.stalest {
            Some(process) => write!(f, "; the stalest: p{process}"),
            None => Ok(()),
        }
    }
}

/// A stale read that broke its client's session guarantees.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "client {client}'s stale read p{process} of {keys:?} returned {values:?}, which no state from index {floor} (set by p{floor_process}, {floor_why}) to {upper} (committed when it was answered) held"
)]
pub struct SessionViolation {
    /// The client.
    pub client: usize,
    /// The read's history process.
    pub process: u64,
    /// What it read.
    pub keys: Vec<String>,
    /// What it returned.
    pub values: Vec<Option<String>>,
    /// The lowest index it could be served at.
    pub floor: u64,
    /// The operation that set the floor.
    pub floor_process: u64,
    /// Why: its own write, or an earlier read.
    pub floor_why: &'static str,
    /// The highest index committed when it was answered.
    pub upper: u64,
}

/// Why the committed log could not be replayed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// No node was seen to commit an entry below the highest committed index.
    #[error("index {0} was never seen committed, so the committed log cannot be replayed")]
    Missing(u64),
    /// The replay disagrees with the replicas.
    #[error(
        "the committed log replayed to index {0} gives a state no replica held there: the state machine is not deterministic"
    )]
    Diverged(u64),
}

/// What the replay of the committed log tells the checker.
struct Replayed {
    /// Where each `(session, number)` first ran.
    ran_at: BTreeMap<(u64, u64), LogIndex>,
    /// Per key read, the values it held from each index on (absent before the first).
    values: BTreeMap<String, Vec<(LogIndex, Option<String>)>>,
}

impl Replayed {
    /// The value of `key` at `index`, and the first index after it where it changes.
    fn value_at(&self, key: &str, index: LogIndex) -> (Option<&str>, Option<LogIndex>) {
        let changes = self.values.get(key).map_or(&[][..], Vec::as_slice);
        let after = changes.partition_point(|&(i, _)| i <= index);
        let value = after.checked_sub(1).and_then(|at| changes[at].1.as_deref());
        (value, changes.get(after).map(|&(i, _)| i))
    }

    /// The runs of indices in `from..=upper` where every key holds its value, as
    /// `(first, last)`, in order.
    fn placements(
        &self,
        keys: &[String],
        values: &[Option<String>],
        from: LogIndex,
        upper: LogIndex,
    ) -> Vec<(LogIndex, LogIndex)> {
        let mut runs = Vec::new();
        let mut at = from;
        while at <= upper {
            let mut next_change: Option<LogIndex> = None;
            let mut all = true;
            for (key, want) in keys.iter().zip(values) {
                let (have, change) = self.value_at(key, at);
                all &= have == want.as_deref();
                if let Some(change) = change {
                    next_change = Some(next_change.map_or(change, |n| n.min(change)));
                }
            }
            let last = next_change.map_or(upper, |change| upper.min(change.prev()));
            if all {
                runs.push((at, last));
            }
            match next_change {
                Some(change) => at = change,
                None => break,
            }
        }
        runs
    }
}

/// Replays the committed log `entry(1..=last)` through `machine`, noting where each session
/// command ran and what the keys in `keys` held. `trail` gives the replicas' digest at an
/// index, if known, to check the replay against.
fn replay<'a>(
    mut machine: StateMachine,
    last: LogIndex,
    entry: impl Fn(LogIndex) -> Option<&'a Entry>,
    trail: impl Fn(LogIndex) -> Option<u64>,
    keys: &[&str],
) -> Result<Replayed, ReplayError> {
    let mut replayed = Replayed {
        ran_at: BTreeMap::new(),
        values: BTreeMap::new(),
    };
    for index in (1..=last.0).map(LogIndex) {
        let entry = entry(index).ok_or(ReplayError::Missing(index.0))?;
        let (op, time_ms) = match &entry.payload {
            EntryPayload::Noop => (None, 0),
            EntryPayload::Client { op, time_ms } => (Some(op), *time_ms),
        };
        let reply = machine.apply(index, time_ms, op);
        if let (Some(ClientOp::Request(request)), Some(Reply::Executed(_))) = (op, &reply) {
            replayed
                .ran_at
                .entry((request.client.0, request.sequence.0))
                .or_insert(index);
        }
        for &key in keys {
            let now = machine
                .store()
                .get(key.as_bytes())
                .map(|v| String::from_utf8_lossy(&v.value).into_owned());
            let changes = replayed.values.entry(key.to_string()).or_default();
            let before = changes.last().and_then(|(_, v)| v.as_ref());
            if before != now.as_ref() {
                changes.push((index, now));
            }
        }
        if trail(index).is_some_and(|t| t != machine.trail()) {
            return Err(ReplayError::Diverged(index.0));
        }
    }
    Ok(replayed)
}

/// Why a client's floor is where it is.
#[derive(Clone, Copy)]
struct Floor {
    index: LogIndex,
    process: u64,
    why: &'static str,
}

/// Checks every client's stale reads in `log` against the committed log (see the module
/// documentation); `machine` is an empty replica state machine.
pub(crate) fn check<'a>(
    log: &SessionLog,
    machine: StateMachine,
    last: LogIndex,
    entry: impl Fn(LogIndex) -> Option<&'a Entry>,
    trail: impl Fn(LogIndex) -> Option<u64>,
) -> Result<Result<StaleReads, SessionViolation>, ReplayError> {
    let mut keys: Vec<&str> = log
        .ops
        .values()
        .flat_map(|op| match &op.kind {
            SessionOpKind::StaleRead { keys, .. } => keys.iter().map(String::as_str).collect(),
            SessionOpKind::Ran { .. } => Vec::new(),
        })
        .collect();
    keys.sort_unstable();
    keys.dedup();
    let replayed = replay(machine, last, entry, trail, &keys)?;
    let mut floors: BTreeMap<usize, Floor> = BTreeMap::new();
    let mut report = StaleReads::default();
    let mut ms_behind = Vec::new();
    for (&process, op) in &log.ops {
        let floor = floors.entry(op.client).or_insert(Floor {
            index: LogIndex(0),
            process: 0,
            why: "the start",
        });
        match &op.kind {
            SessionOpKind::Ran { session, number } => {
                if let Some(&ran) = replayed.ran_at.get(&(*session, *number))
                    && ran > floor.index
                {
                    *floor = Floor {
                        index: ran,
                        process,
                        why: "its own command, which ran there",
                    };
                }
            }
            SessionOpKind::StaleRead {
                keys,
                values,
                invoked_us,
                completed_us,
            } => {
                let upper = log.committed_at(*completed_us);
                let runs = replayed.placements(keys, values, floor.index, upper);
                let (Some(&(placed, _)), Some(&(_, latest))) = (runs.first(), runs.last()) else {
                    return Ok(Err(SessionViolation {
                        client: op.client,
                        process,
                        keys: keys.clone(),
                        values: values.clone(),
                        floor: floor.index.0,
                        floor_process: floor.process,
                        floor_why: floor.why,
                        upper: upper.0,
                    }));
                };
                if placed > floor.index {
                    *floor = Floor {
                        index: placed,
                        process,
                        why: "an earlier read that saw the state there",
                    };
                }
                report.checked += 1;
                // How stale, as charitably as the values allow: from the latest state that
                // held them.
                let sent_at = log.committed_at(*invoked_us);
                if latest < sent_at {
                    let changed = latest.next();
                    report.behind += 1;
                    let entries = sent_at.0 - changed.0 + 1;
                    report.max_entries_behind = report.max_entries_behind.max(entries);
                    let overwritten_us = log.commit_time(changed).unwrap_or(*invoked_us);
                    let ms = invoked_us.saturating_sub(overwritten_us) / 1000;
                    if ms_behind.iter().all(|&longest| ms > longest) {
                        report.stalest = Some(process);
                    }
                    ms_behind.push(ms);
                }
            }
        }
    }
    ms_behind.sort_unstable();
    report.max_ms_behind = ms_behind.last().copied().unwrap_or(0);
    report.median_ms_behind = ms_behind.get(ms_behind.len() / 2).copied().unwrap_or(0);
    Ok(Ok(report))
}

#[cfg(test)]
mod tests {
    use super::*;
    use verity_core::kv::{ClientRequest, Command};
    use verity_core::{ClientId, Config, NodeId, Sequence, SessionToken, Term};

    const TOKEN: SessionToken = SessionToken([7; 16]);

    fn machine() -> StateMachine {
        let config = Config::new(NodeId(1), [NodeId(1)], 0);
        verity_core::testing::replica_state_machine(&config)
    }

    fn set(number: u64, key: &str, value: &str) -> ClientOp {
        ClientOp::Request(ClientRequest {
            client: ClientId(1),
            token: TOKEN,
            sequence: Sequence(number),
            may_skip_earlier: false,
            command: Command::set(key, value),
        })
    }

    /// A log: session 1 opens at 1, sets `k` to `a` at 2 and to `b` at 3.
    fn log() -> Vec<Entry> {
        let ops = [
            ClientOp::OpenSession { token: TOKEN },
            set(1, "k", "a"),
            set(2, "k", "b"),
        ];
        ops.into_iter()
            .enumerate()
            .map(|(i, op)| Entry {
                index: LogIndex(i as u64 + 1),
                term: Term(1),
                payload: EntryPayload::Client { op, time_ms: 0 },
            })
            .collect()
    }

    fn run(session_log: &SessionLog) -> Result<StaleReads, SessionViolation> {
        let entries = log();
        check(
            session_log,
            machine(),
            LogIndex(3),
            |i| entries.get(i.0 as usize - 1),
            |_| None,
        )
        .expect("the log replays")
    }

    fn read(log: &mut SessionLog, process: u64, value: &str, at_us: u64) {
        let keys = vec!["k".to_string()];
        let values = vec![Some(value.to_string())];
        log.stale_read(process, 0, keys, values, (at_us, at_us));
    }

    fn committed_all(log: &mut SessionLog) {
        for index in 1..=3 {
            log.committed(index * 10, LogIndex(index));
        }
    }

    #[test]
    fn a_read_older_than_the_clients_own_write_breaks_read_your_writes() {
        let mut log = SessionLog::default();
        committed_all(&mut log);
        log.ran(1, 0, 1, 2);
        read(&mut log, 2, "a", 100);
        let violation = run(&log).unwrap_err();
        assert_eq!((violation.process, violation.floor), (2, 3));
        assert_eq!(violation.floor_process, 1);
    }

    #[test]
    fn a_read_older_than_an_earlier_read_breaks_monotonic_reads() {
        let mut log = SessionLog::default();
        committed_all(&mut log);
        read(&mut log, 1, "b", 100);
        read(&mut log, 2, "a", 100);
        let violation = run(&log).unwrap_err();
        assert_eq!((violation.process, violation.floor_process), (2, 1));
    }

    #[test]
    fn a_read_of_an_uncommitted_state_is_refused() {
        let mut log = SessionLog::default();
        log.committed(10, LogIndex(2));
        read(&mut log, 1, "b", 15);
        assert_eq!(run(&log).unwrap_err().upper, 2);
    }

    #[test]
    fn an_old_value_after_another_clients_write_is_allowed_and_measured() {
        let mut log = SessionLog::default();
        committed_all(&mut log);
        read(&mut log, 1, "a", 5_030);
        read(&mut log, 2, "a", 5_040);
        read(&mut log, 3, "b", 5_050);
        let report = run(&log).unwrap();
        assert_eq!(report.checked, 3);
        assert_eq!(report.behind, 2);
        assert_eq!(report.max_entries_behind, 1);
        assert_eq!(report.max_ms_behind, 5);
    }
}
