//! The `Ready` contract, carried out one way for the node and the simulator.
//!
//! A [`verity_core::Ready`] asks its driver to write state, then send messages, then
//! acknowledge, and lets a leader's early messages and the replies go at once (the contract
//! is in `core/src/raft/ready.rs`). A driver that writes in the background, batching many
//! `Ready`s into one sync (group commit), must also hold each `Ready`'s messages until its own
//! write **and every earlier one** is durable. [`PersistQueue`] makes those decisions, sans IO:
//! it turns a `Ready` into WAL bytes to append (through [`wal::Encoder::encode_ready`]) and what may go
//! now, holds the rest, and releases it in order as the disk reports durable positions. The
//! node's driver feeds it from its WAL writer thread; the simulator from its disk model.
//!
//! Positions are byte offsets in the caller's WAL stream: each `Ready`'s records go right after
//! the previous ones, and the disk reports how far the stream is durable. The queue also owns
//! the log's [`wal::Encoder`], so every record says which records before it were durable when
//! it was written (what lets recovery tell damage to synced data from a torn write).

use std::collections::VecDeque;
use verity_core::codec::EncodeError;
use verity_core::wal;
use verity_core::{ClientReply, Message, PersistAck, Ready, Snapshot};

/// What waits for the stream to be durable up to `upto`.
#[derive(Debug)]
struct Held {
    upto: u64,
    release: Release,
}

/// What a durable write frees: send `messages`, then give `ack` to
/// [`verity_core::Node::on_persisted`], in this order.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Release {
    /// Messages that waited for the write.
    pub messages: Vec<Message>,
    /// The acknowledgement of the write, if the `Ready` had one.
    pub ack: Option<PersistAck>,
}

/// What to do with a `Ready` at once.
#[derive(Debug, Default)]
#[must_use = "an accepted Ready holds bytes to write and messages to send"]
pub struct Accepted {
    /// A snapshot to write, atomically and durably, before `records`. `records` then start
    /// with its marker and hold the whole log after it: once they are durable, everything
    /// written before them (older snapshots, earlier records) may be deleted.
    pub snapshot: Option<Snapshot>,
    /// WAL records to append at the end of the stream (empty: nothing to write).
    pub records: Vec<u8>,
    /// The number of the first of `records`: where recovery starts numbering once the records
    /// before a snapshot's marker are deleted.
    pub first_sequence: u64,
    /// Messages that may leave before the write is durable (a leader's AppendEntries).
    pub early_messages: Vec<Message>,
    /// Answers to client proposals: they never wait for the write.
    pub replies: Vec<ClientReply>,
    /// Held work that is already free (everything before it, and its own write, durable), in
    /// order.
    pub released: Vec<Release>,
}

/// The queue of `Ready`s waiting for their writes. Invariants: held work is in stream order,
/// and none of it is free (its position is past the durable one); `unsynced_records` lists,
/// in order, where each batch of records not yet durable ends and the record number after it.
#[derive(Debug)]
pub struct PersistQueue {
    written: u64,
    durable: u64,
    held: VecDeque<Held>,
    encoder: wal::Encoder,
    unsynced_records: VecDeque<(u64, u64)>,
}

impl PersistQueue {
    /// A queue over a stream that is durable up to `position` bytes, whose next record is
    /// number `next_sequence` (what recovery found: [`wal::WalRecovery::next_sequence`]). The
    /// driver must have synced everything it recovered before it builds the queue: records
    /// read back from the page cache after a crash are not durable until then.
    #[must_use]
    pub fn new(position: u64, next_sequence: u64) -> PersistQueue {
        PersistQueue {
            written: position,
            durable: position,
            held: VecDeque::new(),
            encoder: wal::Encoder::new(next_sequence, next_sequence),
            unsynced_records: VecDeque::new(),
        }
    }

    /// Takes a `Ready`: the records to append go in [`Accepted::records`], its messages and
    /// ack wait until the stream is durable past those records (and past everything written
    /// before, even when it writes nothing itself).
    ///
    /// # Errors
    /// An entry too large for one WAL record: the node must stop, it cannot persist it.
    pub fn accept(&mut self, ready: Ready) -> Result<Accepted, EncodeError> {
        let mut records = Vec::new();
        let first_sequence = self.encoder.next_sequence();
        if ready.hard_state.is_some() || !ready.entries.is_empty() {
            let marker = ready.snapshot.as_ref().map(|s| s.meta);
            self.encoder
                .encode_ready(marker, ready.hard_state, ready.entries, &mut records)?;
            self.written += records.len() as u64;
            self.unsynced_records
                .push_back((self.written, self.encoder.next_sequence()));
        }
        let release = Release {
            messages: ready.messages,
            ack: ready.ack,
        };
        let mut accepted = Accepted {
            snapshot: ready.snapshot,
            records,
            first_sequence,
            early_messages: ready.early_messages,
            replies: ready.replies,
            released: Vec::new(),
        };
        if release != Release::default() {
            self.held.push_back(Held {
                upto: self.written,
                release,
            });
            accepted.released = self.free();
        }
        Ok(accepted)
    }

    /// The disk reports the stream durable up to `upto` bytes: the held work that is now free,
    /// in order. Reports may repeat or lag (a position at or before the known one frees
    /// nothing).
    pub fn on_durable(&mut self, upto: u64) -> Vec<Release> {
        assert!(
            upto <= self.written,
            "durable up to {upto} but only {} written",
            self.written
        );
        self.durable = self.durable.max(upto);
        while let Some(&(end, next_sequence)) = self.unsynced_records.front()
            && end <= self.durable
        {
            self.encoder.mark_durable(next_sequence);
            self.unsynced_records.pop_front();
        }
        self.free()
    }

    /// Whether written bytes wait for a sync.
    #[must_use]
    pub fn needs_sync(&self) -> bool {
        self.durable < self.written
    }

    /// The stream position after everything accepted so far.
    #[must_use]
    pub fn written(&self) -> u64 {
        self.written
    }

    fn free(&mut self) -> Vec<Release> {
        let mut released = Vec::new();
        while self.held.front().is_some_and(|h| h.upto <= self.durable) {
            released.push(self.held.pop_front().expect("checked").release);
        }
        debug_assert!(self.held.iter().all(|h| h.upto > self.durable));
        released
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use verity_core::{HardState, LogIndex, MessageBody, NodeId, Term};

    fn message(to: u64) -> Message {
        Message {
            from: NodeId(1),
            to: NodeId(to),
            term: Term(1),
            body: MessageBody::RequestVoteResponse { granted: true },
        }
    }

    fn vote_ready(to: u64) -> Ready {
        Ready {
            hard_state: Some(HardState {
                term: Term(1),
                vote: Some(NodeId(to)),
                commit: LogIndex(0),
            }),
            messages: vec![message(to)],
            ..Ready::default()
        }
    }

    #[test]
    fn messages_wait_for_their_own_write() {
        let mut queue = PersistQueue::new(0, 0);
        let accepted = queue.accept(vote_ready(2)).unwrap();
        assert!(!accepted.records.is_empty());
        assert!(
            accepted.released.is_empty(),
            "a vote never leaves before its fsync"
        );
        assert!(queue.needs_sync());
        assert!(
            queue
                .on_durable(accepted.records.len() as u64 - 1)
                .is_empty()
        );
        let released = queue.on_durable(queue.written());
        assert_eq!(released.len(), 1);
        assert_eq!(released[0].messages, vec![message(2)]);
        assert!(!queue.needs_sync());
    }

    #[test]
    fn a_ready_that_writes_nothing_still_waits_for_every_earlier_write() {
        let mut queue = PersistQueue::new(0, 0);
        let first = queue.accept(vote_ready(2)).unwrap();
        let second = queue
            .accept(Ready {
                messages: vec![message(3)],
                ..Ready::default()
            })
            .unwrap();
        assert!(second.records.is_empty());
        assert!(
            second.released.is_empty(),
            "it may rely on the vote being durable"
        );
        let released = queue.on_durable(first.records.len() as u64);
        let sent: Vec<Message> = released.into_iter().flat_map(|r| r.messages).collect();
        assert_eq!(sent, vec![message(2), message(3)], "in order");
    }

    #[test]
    fn with_nothing_pending_work_is_free_at_once_and_early_messages_never_wait() {
        let mut queue = PersistQueue::new(10, 0);
        let accepted = queue
            .accept(Ready {
                early_messages: vec![message(2)],
                messages: vec![message(3)],
                ..Ready::default()
            })
            .unwrap();
        assert_eq!(accepted.early_messages, vec![message(2)]);
        assert_eq!(accepted.released.len(), 1);
        assert_eq!(accepted.released[0].messages, vec![message(3)]);
    }

    #[test]
    fn each_record_says_which_records_before_it_were_durable() {
        let mut queue = PersistQueue::new(100, 7);
        let first = queue.accept(vote_ready(2)).unwrap().records;
        let second = queue.accept(vote_ready(3)).unwrap().records;
        let recover = |bytes: &[u8], from: u64| {
            wal::recover_continuing(verity_core::Recovered::default(), from, bytes).unwrap()
        };
        assert_eq!(recover(&first, 7).next_sequence, 8);
        queue.on_durable(100 + first.len() as u64);
        let third = queue.accept(vote_ready(4)).unwrap().records;
        let sequences = |bytes: &[u8]| {
            let field = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
            (field(8), field(16))
        };
        assert_eq!(sequences(&first), (7, 7), "nothing new was durable yet");
        assert_eq!(
            sequences(&second),
            (8, 7),
            "written before the first was synced"
        );
        assert_eq!(sequences(&third), (9, 8), "the first is durable now");
    }
}
