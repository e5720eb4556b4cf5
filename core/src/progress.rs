//! A leader's view of one follower's replication, as a small state machine.
//!
//! - **Probe**: the leader does not know where the follower's log agrees with its own. It sends
//!   one AppendEntries at a time (`probe_sent`) and waits for the answer or the next heartbeat;
//!   a rejection's hint moves `next_index` back by up to a whole term at once.
//! - **Replicate**: the follower's log is known to match up to `match_index`. The leader
//!   streams entries optimistically, advancing `next_index` as it sends, with at most
//!   `max_inflight_appends` messages unacknowledged ([`Inflights`]). A rejection, or a heartbeat
//!   interval in which nothing in flight was acknowledged (a lost message), falls back to Probe.
//!
//! Invariant: `match_index < next_index`.

use crate::types::LogIndex;
use std::collections::VecDeque;

/// Which of the two modes the follower is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProgressState {
    /// Searching for the point where the logs agree, one message at a time.
    Probe,
    /// Streaming entries, several messages in flight.
    Replicate,
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
        }
        self.check();
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
        if self.state == ProgressState::Probe {
            self.become_replicate();
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
        self.check();
    }

    fn become_replicate(&mut self) {
        self.state = ProgressState::Replicate;
        self.next_index = self.match_index.next();
        self.probe_sent = false;
        self.inflights.clear();
    }

    fn check(&self) {
        assert!(
            self.match_index < self.next_index,
            "progress invariant match < next broken: {self:?}"
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
}
