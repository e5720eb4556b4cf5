//! A leader's view of one follower's replication, as a small state machine.
//!
//! - **Probe**: the leader does not know where the follower's log agrees with its own. It sends
//!   one AppendEntries at a time (`probe_sent`) and waits for the answer or the next heartbeat;
//!   a rejection's hint moves `next_index` back by up to a whole term at once.
//! - **Replicate**: the follower's log is known to match up to `match_index`. The leader
//!   streams entries optimistically, advancing `next_index` as it sends, with at most
//!   `max_inflight_appends` messages unacknowledged ([`Inflights`]). A rejection, or a heartbeat
//!   interval in which nothing in flight was acknowledged (a lost message), falls back to Probe.
//! - **Snapshot**: the follower needs entries the leader compacted away. The leader sends its
//!   snapshot one chunk at a time ([`SnapshotSend`]), the next when the follower says how much
//!   it holds, the same one again at a heartbeat without an answer. The follower's
//!   acknowledgement of the installed snapshot moves it to Replicate.
//!
//! Invariant: `match_index < next_index`; `sending` is set exactly in the Snapshot state.

use crate::snapshot::Snapshot;
use crate::types::LogIndex;
use std::collections::VecDeque;

/// Which of the two modes the follower is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressState {
    /// Searching for the point where the logs agree, one message at a time.
    Probe,
    /// Streaming entries, several messages in flight.
    Replicate,
    /// Sending a snapshot.
    Snapshot,
}

/// A snapshot on its way to a follower.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotSend {
    /// The snapshot (kept until the transfer ends, even if the leader takes a newer one).
    pub snapshot: Snapshot,
    /// Bytes of its image the follower said it holds.
    pub acked: u64,
    /// The end of the chunk out and unanswered, if one is.
    pub in_flight_to: Option<u64>,
    /// What an answer that did not match the chunk in flight said the follower holds (a
    /// duplicate, or a follower that lost the transfer): where the next resend starts.
    pub resume_at: Option<u64>,
}

/// The last indexes of the AppendEntries messages in flight, oldest first, bounded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inflights {
    capacity: usize,
    last_indexes: VecDeque<LogIndex>,
}

impl Inflights {
    /// An empty window of `capacity` messages.
    #[must_use]
    pub fn new(capacity: usize) -> Inflights {
        assert!(capacity > 0);
        Inflights {
            capacity,
            last_indexes: VecDeque::with_capacity(capacity),
        }
    }

    /// Whether no further message may be sent.
    #[must_use]
    pub fn is_full(&self) -> bool {
        self.last_indexes.len() >= self.capacity
    }

    /// Whether nothing is in flight.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.last_indexes.is_empty()
    }

    /// Records a message whose last entry is `last_index`.
    pub fn add(&mut self, last_index: LogIndex) {
        assert!(!self.is_full(), "inflight window overflow");
        assert!(
            self.last_indexes
                .back()
                .is_none_or(|&back| back < last_index)
        );
        self.last_indexes.push_back(last_index);
    }

    /// Forgets every message whose entries are all acknowledged by `match_index`.
    pub fn free_to(&mut self, match_index: LogIndex) {
        while self
            .last_indexes
            .front()
            .is_some_and(|&front| front <= match_index)
        {
            self.last_indexes.pop_front();
        }
    }

    /// Forgets everything in flight.
    pub fn clear(&mut self) {
        self.last_indexes.clear();
    }
}

/// Replication progress of one follower.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Highest index known to be replicated on the follower.
    pub match_index: LogIndex,
    /// Index of the next entry to send.
    pub next_index: LogIndex,
    /// Probe or Replicate.
    pub state: ProgressState,
    /// In Probe: a probe is outstanding, send nothing until it is answered or a heartbeat.
    pub probe_sent: bool,
    /// In Replicate: the messages in flight.
    pub inflights: Inflights,
    /// The leader's tick count (ticks since it took office) when the follower last answered
    /// anything; check-quorum counts the followers heard within an election timeout.
    pub last_heard_tick: u64,
    /// In Replicate: heartbeats that passed with messages in flight and no acknowledgement.
    /// At [`Progress::STALL_HEARTBEATS`] the leader presumes a message lost and probes again.
    pub heartbeats_without_ack: u32,
    /// In Snapshot: the transfer.
    pub sending: Option<SnapshotSend>,
}

impl Progress {
    /// Heartbeat intervals without any acknowledgement, with messages in flight, after which a
    /// replicating follower is presumed to have lost a message. Two rather than one, so that a
    /// message sent just before a heartbeat has a full interval to be answered.
    pub const STALL_HEARTBEATS: u32 = 2;

    /// Progress of a follower about which nothing is known yet: probe from `next_index`. It
    /// counts as heard at `now_tick`, which gives a new leader one election timeout to reach it.
    #[must_use]
    pub fn new(next_index: LogIndex, max_inflight: usize, now_tick: u64) -> Progress {
        Progress {
            match_index: LogIndex(0),
            next_index,
            state: ProgressState::Probe,
            probe_sent: false,
            inflights: Inflights::new(max_inflight),
            last_heard_tick: now_tick,
            heartbeats_without_ack: 0,
            sending: None,
        }
    }

    /// Whether the follower answered within the last `window` ticks before the leader's tick
    /// `now_tick`: what check-quorum counts, and what makes it a live handover target.
    #[must_use]
    pub fn heard_within(&self, now_tick: u64, window: u64) -> bool {
        now_tick - self.last_heard_tick < window
    }

    /// Whether the leader must hold further AppendEntries back for now.
    #[must_use]
    pub fn is_paused(&self) -> bool {
        match self.state {
            ProgressState::Probe => self.probe_sent,
            ProgressState::Replicate => self.inflights.is_full(),
            ProgressState::Snapshot => self
                .sending
                .as_ref()
                .is_none_or(|s| s.in_flight_to.is_some()),
        }
    }

    /// Records that an AppendEntries ending at `last_index` was sent.
    pub fn sent(&mut self, last_index: LogIndex) {
        match self.state {
            ProgressState::Probe => self.probe_sent = true,
            ProgressState::Replicate => {
                if last_index >= self.next_index {
                    self.next_index = last_index.next();
                    self.inflights.add(last_index);
                }
            }
            ProgressState::Snapshot => unreachable!("snapshot chunks are not entries"),
        }
        self.check();
    }

    /// Starts sending `snapshot`, from its first byte.
    pub fn become_snapshot(&mut self, snapshot: Snapshot) {
        self.state = ProgressState::Snapshot;
        self.probe_sent = false;
        self.heartbeats_without_ack = 0;
        self.inflights.clear();
        self.sending = Some(SnapshotSend {
            snapshot,
            acked: 0,
            in_flight_to: None,
            resume_at: None,
        });
        self.check();
    }

    /// Records that a chunk of the snapshot reaching offset `end` was sent.
    pub fn chunk_sent(&mut self, end: u64) {
        let sending = self
            .sending
            .as_mut()
            .expect("chunks go in the snapshot state");
        assert!(
            end <= sending.snapshot.data.len() as u64,
            "chunk within the image"
        );
        sending.in_flight_to = Some(end);
    }

    /// The follower holds the first `received` bytes of the snapshot at `index`. If that
    /// answers the chunk in flight, the next chunk may go (returns true); any other answer
    /// (duplicated, late, or from a follower that lost the transfer) only says where to resume
    /// once the chunk in flight is presumed lost, so answers can never multiply chunks.
    pub fn chunk_acked(&mut self, index: LogIndex, received: u64) -> bool {
        let Some(sending) = self.sending.as_mut() else {
            return false;
        };
        if sending.snapshot.meta.index != index || received > sending.snapshot.data.len() as u64 {
            return false;
        }
        if sending.in_flight_to != Some(received) {
            sending.resume_at = Some(received);
            return false;
        }
        sending.acked = received;
        sending.in_flight_to = None;
        sending.resume_at = None;
        self.heartbeats_without_ack = 0;
        true
    }

    /// Applies an acknowledgement up to `match_index`. Returns whether `match_index` grew.
    /// Only growth counts as progress for stall detection: a heartbeat's acknowledgement
    /// repeats the match index, and says nothing about a lost AppendEntries.
    pub fn accept(&mut self, match_index: LogIndex) -> bool {
        if match_index <= self.match_index {
            return false;
        }
        self.heartbeats_without_ack = 0;
        self.match_index = match_index;
        self.next_index = self.next_index.max(match_index.next());
        self.inflights.free_to(match_index);
        match self.state {
            ProgressState::Probe => self.become_replicate(),
            ProgressState::Snapshot
                if self
                    .sending
                    .as_ref()
                    .is_none_or(|s| match_index >= s.snapshot.meta.index) =>
            {
                self.become_replicate();
            }
            ProgressState::Snapshot | ProgressState::Replicate => {}
        }
        self.check();
        true
    }

    /// Applies a rejection of the request whose `prev_log_index` was `rejected_index`, where the
    /// leader computed from the follower's hint that the logs may agree up to `agree_index`.
    /// Returns false when the rejection was ignored: it is stale (answers an older request), or
    /// it would not move the probe (only a follower that contradicts its own acknowledgements
    /// sends that; re-probing at once would let duplicated rejections multiply messages, so
    /// the next probe waits for the heartbeat).
    pub fn reject(&mut self, rejected_index: LogIndex, agree_index: LogIndex) -> bool {
        let stale = match self.state {
            ProgressState::Probe => rejected_index != self.next_index.prev(),
            ProgressState::Replicate => rejected_index <= self.match_index,
            // Rejections of entries sent before the snapshot: the snapshot answers them.
            ProgressState::Snapshot => true,
        };
        if stale {
            return false;
        }
        let probe_from = rejected_index
            .min(agree_index.next())
            .max(self.match_index.next());
        if self.state == ProgressState::Probe && probe_from == self.next_index {
            return false;
        }
        self.become_probe(probe_from);
        true
    }

    /// Accounts for a heartbeat interval; returns true when the follower is now presumed to
    /// have lost a message and was moved back to Probe.
    pub fn heartbeat(&mut self) -> bool {
        match self.state {
            ProgressState::Probe => {
                self.probe_sent = false;
                false
            }
            ProgressState::Snapshot => {
                // A chunk unanswered for a whole interval is presumed lost and sent again.
                if let Some(sending) = self.sending.as_mut().filter(|s| s.in_flight_to.is_some()) {
                    self.heartbeats_without_ack += 1;
                    if self.heartbeats_without_ack >= Self::STALL_HEARTBEATS {
                        sending.in_flight_to = None;
                        if let Some(resume_at) = sending.resume_at.take() {
                            sending.acked = resume_at;
                        }
                        self.heartbeats_without_ack = 0;
                    }
                }
                false
            }
            ProgressState::Replicate if self.inflights.is_empty() => false,
            ProgressState::Replicate => {
                self.heartbeats_without_ack += 1;
                if self.heartbeats_without_ack < Self::STALL_HEARTBEATS {
                    return false;
                }
                self.become_probe(self.match_index.next());
                true
            }
        }
    }

    /// Falls back to probing from `next_index` (after a rejection or a lost message).
    pub fn become_probe(&mut self, next_index: LogIndex) {
        self.state = ProgressState::Probe;
        self.next_index = next_index;
        self.probe_sent = false;
        self.heartbeats_without_ack = 0;
        self.inflights.clear();
        self.sending = None;
        self.check();
    }

    fn become_replicate(&mut self) {
        self.state = ProgressState::Replicate;
        self.next_index = self.match_index.next();
        self.probe_sent = false;
        self.inflights.clear();
        self.sending = None;
    }

    fn check(&self) {
        assert!(
            self.match_index < self.next_index,
            "progress invariant match < next broken: {self:?}"
        );
        assert_eq!(
            self.state == ProgressState::Snapshot,
            self.sending.is_some(),
            "a transfer exactly in the snapshot state: {self:?}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_sends_one_message_at_a_time() {
        let mut progress = Progress::new(LogIndex(10), 4, 0);
        assert!(!progress.is_paused());
        progress.sent(LogIndex(12));
        assert!(progress.is_paused());
        assert_eq!(
            progress.next_index,
            LogIndex(10),
            "probing does not advance next"
        );
    }

    #[test]
    fn acceptance_moves_probe_to_replicate() {
        let mut progress = Progress::new(LogIndex(10), 4, 0);
        progress.sent(LogIndex(12));
        assert!(progress.accept(LogIndex(12)));
        assert_eq!(progress.state, ProgressState::Replicate);
        assert_eq!(progress.next_index, LogIndex(13));
    }

    #[test]
    fn replicate_pipelines_up_to_the_inflight_bound() {
        let mut progress = Progress::new(LogIndex(1), 2, 0);
        progress.accept(LogIndex(0));
        progress.state = ProgressState::Replicate;
        progress.sent(LogIndex(3));
        assert!(!progress.is_paused());
        progress.sent(LogIndex(5));
        assert!(
            progress.is_paused(),
            "two messages in flight fill a window of two"
        );
        assert_eq!(progress.next_index, LogIndex(6));
        progress.accept(LogIndex(3));
        assert!(!progress.is_paused(), "an acknowledgement frees its slot");
    }

    #[test]
    fn a_stalled_pipeline_falls_back_to_probe_after_two_heartbeats() {
        let mut progress = Progress::new(LogIndex(1), 4, 0);
        progress.accept(LogIndex(2));
        progress.sent(LogIndex(5));
        assert!(!progress.heartbeat(), "one silent interval is tolerated");
        progress.accept(LogIndex(2));
        assert!(
            progress.heartbeat(),
            "a heartbeat's acknowledgement (same match) is not progress: found by the simulator"
        );
        assert_eq!(progress.state, ProgressState::Probe);
        assert_eq!(progress.next_index, LogIndex(3));
        assert!(!progress.is_paused(), "the probe goes out at once");
    }

    #[test]
    fn stale_rejections_are_ignored() {
        let mut progress = Progress::new(LogIndex(10), 4, 0);
        progress.sent(LogIndex(12));
        assert!(
            !progress.reject(LogIndex(5), LogIndex(3)),
            "probe expects prev 9"
        );
        assert!(progress.reject(LogIndex(9), LogIndex(4)));
        assert_eq!(progress.next_index, LogIndex(5));
    }

    #[test]
    fn a_rejection_that_would_not_move_the_probe_waits_for_the_heartbeat() {
        let mut progress = Progress::new(LogIndex(8), 4, 0);
        progress.accept(LogIndex(7));
        progress.become_probe(LogIndex(8));
        progress.sent(LogIndex(9));
        // A follower rejecting at its own acknowledged match index cannot move next below 8.
        assert!(!progress.reject(LogIndex(7), LogIndex(2)));
        assert!(
            progress.is_paused(),
            "no immediate re-probe: duplicates cannot multiply it"
        );
        progress.heartbeat();
        assert!(!progress.is_paused(), "the heartbeat probes again");
    }

    #[test]
    fn rejection_never_moves_next_to_or_below_match() {
        let mut progress = Progress::new(LogIndex(1), 4, 0);
        progress.accept(LogIndex(6));
        progress.sent(LogIndex(9));
        assert!(progress.reject(LogIndex(7), LogIndex(0)));
        assert_eq!(progress.next_index, LogIndex(7));
        assert_eq!(progress.state, ProgressState::Probe);
    }

    fn sending_snapshot() -> Progress {
        let snapshot = Snapshot {
            meta: crate::snapshot::SnapshotMeta {
                index: LogIndex(9),
                term: crate::types::Term(1),
            },
            data: std::sync::Arc::new(vec![0; 100]),
        };
        let mut progress = Progress::new(LogIndex(3), 4, 0);
        progress.become_snapshot(snapshot);
        progress
    }

    #[test]
    fn a_snapshot_goes_one_chunk_at_a_time_and_stray_answers_send_nothing() {
        let mut progress = sending_snapshot();
        assert!(!progress.is_paused());
        progress.chunk_sent(30);
        assert!(progress.is_paused());
        assert!(
            !progress.chunk_acked(LogIndex(9), 10),
            "a duplicated older answer"
        );
        assert!(progress.is_paused(), "answers never multiply chunks");
        assert!(
            !progress.chunk_acked(LogIndex(8), 30),
            "another snapshot's answer"
        );
        assert!(progress.chunk_acked(LogIndex(9), 30));
        assert!(!progress.is_paused());
        assert_eq!(progress.sending.as_ref().unwrap().acked, 30);
    }

    #[test]
    fn a_lost_chunk_is_resent_after_two_heartbeats_from_where_the_follower_is() {
        let mut progress = sending_snapshot();
        progress.chunk_sent(30);
        assert!(progress.chunk_acked(LogIndex(9), 30));
        progress.chunk_sent(60);
        assert!(
            !progress.chunk_acked(LogIndex(9), 0),
            "a follower that lost the transfer (restarted) holds nothing"
        );
        progress.heartbeat();
        assert!(progress.is_paused(), "one silent interval is tolerated");
        progress.heartbeat();
        assert!(!progress.is_paused());
        assert_eq!(progress.sending.as_ref().unwrap().acked, 0, "resumes at 0");
    }

    #[test]
    fn the_installed_snapshot_moves_the_follower_to_replicate() {
        let mut progress = sending_snapshot();
        progress.chunk_sent(100);
        assert!(
            !progress.reject(LogIndex(2), LogIndex(1)),
            "rejections are stale"
        );
        assert!(progress.accept(LogIndex(9)));
        assert_eq!(progress.state, ProgressState::Replicate);
        assert_eq!(progress.next_index, LogIndex(10));
        assert!(progress.sending.is_none());
    }
}
