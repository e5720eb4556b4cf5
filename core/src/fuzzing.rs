//! Fuzz target bodies (feature `fuzzing`). Each takes raw bytes, so libFuzzer (`fuzz/`) and the
//! stable corpus test (`verity-tests`) call exactly the same code; each panics only when a
//! promise below is broken.

use crate::codec::{self, Decoded};
use crate::kv::{ClientOp, StateMachine};
use crate::log::{Entry, EntryPayload};
use crate::message::{AppendOutcome, Message, MessageBody};
use crate::raft::{HardState, RequestTag};
use crate::testing::Cluster;
use crate::types::{LogIndex, NodeId, Term};
use crate::wal::{self, Encoder, Tail, WalRecord};
use arbitrary::{Arbitrary, Unstructured};

/// `peer_frame`: any bytes through the frame decoder and message codec. Promises: no panic,
/// and a frame that decodes re-encodes to exactly its own bytes (one encoding per message).
pub fn peer_frame(data: &[u8]) {
    if let Ok(Decoded { value, frame_bytes }) = codec::decode::<Message>(data) {
        let again = codec::encode(&value).expect("a decoded message re-encodes");
        assert_eq!(
            again,
            data[..frame_bytes],
            "decode then encode must give the same bytes"
        );
    }
}

/// `snapshot_image`: any bytes as a snapshot image (what a leader's `InstallSnapshot` chunks
/// and a snapshot file carry). Promises: no panic and no allocation beyond the bytes' own
/// claims; an image that loads describes a state whose own image loads to the same state.
pub fn snapshot_image(data: &[u8]) {
    let config = crate::Config::new(NodeId(1), [NodeId(1)], 0);
    let limits = config.sessions;
    if let Ok(machine) = StateMachine::from_image(limits, config.max_value_bytes, data) {
        let image = machine.image();
        let again = StateMachine::from_image(limits, config.max_value_bytes, &image)
            .expect("a loaded state's image loads");
        assert_eq!(again, machine, "image, load, image, load is a fixed point");
        assert_eq!(again.image(), image, "one image per state");
    }
}

/// `wal_recover`: any bytes as a WAL through recovery. Promises: no panic; the proven-durable
/// prefix lies within the bytes; what recovery keeps is a prefix that recovers again,
/// identically and cleanly; and a valid log built from the input, cut anywhere, recovers
/// exactly the records that end before the cut.
pub fn wal_recover(data: &[u8]) {
    assert!(wal::proven_durable_bytes(data) <= data.len() as u64);
    if let Ok(recovery) = wal::recover(data) {
        let valid = usize::try_from(recovery.valid_bytes).expect("fits");
        assert!(valid <= data.len());
        let again = wal::recover(&data[..valid]).expect("the kept prefix recovers");
        assert_eq!(again.recovered, recovery.recovered);
        assert_eq!(again.tail, Tail::Clean);
    }
    let mut u = Unstructured::new(data);
    let Ok(records) = u.int_in_range(1..=8u8) else {
        return;
    };
    let (mut bytes, mut ends, mut next, mut term) = (Vec::new(), Vec::new(), 1u64, 1u64);
    let mut encoder = Encoder::default();
    for _ in 0..records {
        term += u64::from(u.int_in_range(0..=1u8).unwrap_or(0));
        let count = u.int_in_range(0..=3u8).unwrap_or(1);
        let entries: Vec<Entry> = (0..count)
            .map(|k| Entry {
                index: LogIndex(next + u64::from(k)),
                term: Term(term),
                payload: EntryPayload::Noop,
            })
            .collect();
        next += u64::from(count);
        let record = WalRecord {
            snapshot: None,
            hard_state: Some(HardState {
                term: Term(term),
                vote: None,
                commit: LogIndex(0),
            }),
            entries,
        };
        encoder
            .encode(&record, &mut bytes)
            .expect("small records encode");
        ends.push(bytes.len());
        if u.arbitrary::<bool>().unwrap_or(false) {
            encoder.mark_durable(encoder.next_sequence());
        }
    }
    let cut = u.int_in_range(0..=bytes.len()).unwrap_or(bytes.len());
    let recovery =
        wal::recover(&bytes[..cut]).expect("a cut valid log is a torn tail, not corruption");
    let complete = ends.iter().filter(|&&end| end <= cut).count();
    assert_eq!(recovery.records, complete as u64);
    assert_eq!(
        recovery.valid_bytes as usize,
        if complete == 0 { 0 } else { ends[complete - 1] }
    );
}

/// One input to the in-memory cluster.
#[derive(Debug, Arbitrary)]
enum Step {
    Tick(u8),
    Deliver(u16),
    Drop(u16),
    Duplicate(u16),
    Propose(u8, u8),
    Crash(u8),
    Restart(u8),
    Forge(Forged),
}

/// A message a confused or hostile peer might send: small numbers, every kind.
#[derive(Debug, Arbitrary)]
struct Forged {
    from: u8,
    to: u8,
    term: u8,
    kind: u8,
    index: u8,
    other: u8,
    entries: u8,
}

impl Forged {
    fn message(&self, size: u64) -> Message {
        let node = |n: u8| NodeId(1 + u64::from(n) % (size + 1));
        let (index, other) = (
            LogIndex(u64::from(self.index % 16)),
            LogIndex(u64::from(self.other % 16)),
        );
        let term = Term(u64::from(self.term % 8));
        let body = match self.kind % 9 {
            0 => MessageBody::RequestVote {
                last_log_index: index,
                last_log_term: Term(u64::from(self.other % 8)),
            },
            1 => MessageBody::RequestVoteResponse {
                granted: self.other.is_multiple_of(2),
            },
            2 => MessageBody::AppendEntries {
                prev_log_index: index,
                prev_log_term: Term(u64::from(self.other % 8)),
                entries: (0..u64::from(self.entries % 4))
                    .map(|k| Entry {
                        index: LogIndex(index.0 + 1 + k),
                        term,
                        payload: EntryPayload::Noop,
                    })
                    .collect(),
                leader_commit: other,
            },
            3 => MessageBody::AppendEntriesResponse(AppendOutcome::Accepted { match_index: index }),
            4 => MessageBody::PreVote {
                last_log_index: index,
                last_log_term: Term(u64::from(self.other % 8)),
            },
            5 => MessageBody::PreVoteResponse {
                granted: self.other.is_multiple_of(2),
            },
            6 => MessageBody::TimeoutNow,
            7 => MessageBody::TransferVote {
                last_log_index: index,
                last_log_term: Term(u64::from(self.other % 8)),
            },
            _ => MessageBody::AppendEntriesResponse(AppendOutcome::Rejected {
                rejected_index: index,
                hint_index: other,
                hint_term: Term(u64::from(self.entries % 8)),
            }),
        };
        Message {
            from: node(self.from),
            to: node(self.to),
            term,
            body,
        }
    }
}

/// `core_step`: a structured input (built with `arbitrary` from the bytes) drives a 3- or
/// 5-node in-memory cluster of real cores: ticks, deliveries in any order, drops, duplicates,
/// proposals, crashes and restarts, and forged messages.
///
/// Promises: no input panics a node. Without forged messages, the safety checker (one leader
/// per term, log matching, leader completeness, state-machine safety) holds after every step.
/// With forged messages it is not asserted: Raft trusts its peers, and a forged AppendEntries
/// from a "leader" of the current term can make a follower store entries no leader holds, or a
/// forged vote elect a second leader. What a forged message must never do is crash the node
/// or make it allocate without bound; the peer transport's authentication (node issue) is what
/// keeps forgers out.
pub fn core_step(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let (Ok(five), Ok(seed), Ok(steps)) = (
        bool::arbitrary(&mut u),
        u64::arbitrary(&mut u),
        Vec::<Step>::arbitrary(&mut u),
    ) else {
        return;
    };
    let size = if five { 5 } else { 3 };
    let mut cluster = Cluster::with_config(size, seed, |config| {
        config.election_timeout_ticks = 4;
        config.heartbeat_interval_ticks = 1;
        config.max_entries_per_append = 3;
        config.max_inflight_appends = 2;
        config.snapshot_entries = 5;
        config.snapshot_trailing_entries = 1;
        config.snapshot_chunk_bytes = 64;
    });
    let forged = steps.iter().any(|s| matches!(s, Step::Forge(_)));
    let node = |n: u8| NodeId(1 + u64::from(n) % size);
    for (i, step) in steps.iter().take(2_000).enumerate() {
        let in_flight = cluster.in_flight().len();
        let pick = |p: u16| usize::from(p) % in_flight.max(1);
        let result = match step {
            Step::Tick(n) => cluster.tick(node(*n)),
            Step::Deliver(p) if in_flight > 0 => cluster.deliver(pick(*p)).map(drop),
            Step::Drop(p) if in_flight > 0 => {
                cluster.drop_message(pick(*p));
                Ok(())
            }
            Step::Duplicate(p) if in_flight > 0 && in_flight < 10_000 => {
                cluster.duplicate(pick(*p));
                Ok(())
            }
            Step::Deliver(_) | Step::Drop(_) | Step::Duplicate(_) => Ok(()),
            Step::Propose(n, key) => {
                let op = ClientOp::Request(crate::kv::ClientRequest {
                    client: crate::types::ClientId(1),
                    token: crate::kv::SessionToken::default(),
                    may_skip_earlier: true,
                    sequence: crate::types::Sequence(i as u64 + 1),
                    command: crate::kv::Command::set(vec![*key % 4], vec![*key]),
                });
                cluster
                    .propose(node(*n), RequestTag(i as u64), op)
                    .map(drop)
            }
            Step::Crash(n) => {
                cluster.crash(node(*n));
                Ok(())
            }
            Step::Restart(n) => cluster.restart(node(*n)),
            Step::Forge(forged) => {
                cluster.inject(forged.message(size));
                Ok(())
            }
        };
        if let Err(violation) = result {
            assert!(
                forged,
                "safety broken without any forged message: {violation}"
            );
            return;
        }
    }
}
