//! Applying committed entries to the state machine and answering proposals.

use super::{ClientReply, Node, Outcome};
use crate::log::EntryPayload;
use crate::types::LogIndex;

impl Node {
    /// Applies every committed entry not yet applied, in order, and answers the proposals made
    /// on this node for them.
    pub(super) fn apply_committed(&mut self) {
        while self.state_machine.applied_index() < self.commit {
            let index = self.state_machine.applied_index().next();
            let entry = self
                .log
                .entry(index)
                .expect("committed entries are in the log");
            let (op, time_ms) = match &entry.payload {
                EntryPayload::Noop => (None, 0),
                EntryPayload::Client { op, time_ms } => (Some(op), *time_ms),
            };
            #[cfg(feature = "bug-catalogue")]
            let time_ms = if crate::injected!(self.config, ExpireOnOwnClock)
                && self.role() != super::Role::Leader
            {
                self.clock_ms
            } else {
                time_ms
            };
            self.applied_bytes_since_snapshot += entry.payload_bytes();
            let reply = self.state_machine.apply(index, time_ms, op);
            #[cfg(feature = "bug-catalogue")]
            if crate::injected!(self.config, ApplyTwiceAfterRestart)
                && index == self.recovered_commit
            {
                self.state_machine.apply(index, time_ms, op);
            }
            if let Some(waiting) = self.pending.take(index) {
                assert_eq!(
                    waiting.term, entry.term,
                    "overwritten proposals are answered when overwritten"
                );
                let reply = reply.expect("a proposal's entry carries a client operation");
                for tag in waiting.tags {
                    self.replies.push(ClientReply {
                        tag,
                        index,
                        outcome: Outcome::Applied(reply.clone()),
                    });
                }
            }
        }
    }

    /// Answers every proposal at `from` or later as superseded: its entry was just overwritten.
    pub(super) fn supersede_pending_from(&mut self, from: LogIndex) {
        for (index, waiting) in self.pending.take_from(from) {
            tracing::debug!(node = self.id().0, index = index.0, "proposal superseded");
            for tag in waiting.tags {
                self.replies.push(ClientReply {
                    tag,
                    index,
                    outcome: Outcome::Superseded,
                });
            }
        }
    }
}
