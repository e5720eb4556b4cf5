//! Snapshots on both sides: taking one and compacting the log, sending one in chunks to a
//! follower that needs compacted entries, and receiving and installing one.
//!
//! Rules that keep them safe:
//! - A node snapshots only its applied (so committed) state, and its log keeps every entry
//!   after the snapshot; entries before it leave the log only after the snapshot was handed to
//!   the driver, in a [`Ready`](super::Ready) that also writes every entry after it again.
//! - A follower installs a snapshot only past its commit index. If its log holds the snapshot's
//!   last entry (same index and term), the entries after it stay: they may be acknowledged,
//!   and a leader may be counting them towards a commit. Otherwise the whole log goes.
//! - The follower acknowledges the snapshot (as an accepted AppendEntries at its index) only
//!   in the `Ready` that writes it, so the answer waits until it is durable.

use super::Node;
use crate::kv::StateMachine;
use crate::message::{AppendOutcome, MessageBody};
use crate::progress::SnapshotSend;
use crate::snapshot::{Snapshot, SnapshotMeta};
use crate::types::{LogIndex, NodeId};
use std::sync::Arc;

/// A snapshot being received, chunk by chunk.
#[derive(Clone, Debug)]
pub(super) struct Incoming {
    meta: SnapshotMeta,
    total_bytes: u64,
    data: Vec<u8>,
}

impl Node {
    /// Takes a snapshot of the applied state when enough was applied since the last one, and
    /// schedules the compaction of the log below it (keeping the configured trailing entries)
    /// for the next [`Node::ready`]: the `Ready` that applies entries still shows them in the
    /// log, to whoever inspects the node after it (the simulator's checks).
    pub(super) fn maybe_snapshot(&mut self) {
        let applied = self.state_machine.applied_index();
        let last = self.snapshot.as_ref().map_or(LogIndex(0), |s| s.meta.index);
        let since = applied.0.saturating_sub(last.0);
        if since == 0
            || since < self.config.snapshot_entries
                && self.applied_bytes_since_snapshot < self.config.snapshot_bytes
        {
            return;
        }
        let term = self
            .log
            .term_at(applied)
            .expect("the applied index is the prefix or in the log");
        let snapshot = Snapshot {
            meta: SnapshotMeta {
                index: applied,
                term,
            },
            data: Arc::new(self.state_machine.image()),
        };
        tracing::info!(
            node = self.id().0,
            index = applied.0,
            bytes = snapshot.data.len(),
            "took a snapshot"
        );
        let keep_from = LogIndex(
            applied
                .0
                .saturating_sub(self.config.snapshot_trailing_entries)
                .max(self.log.prefix().0.0),
        );
        self.compact_to = Some(keep_from);
        self.keep_snapshot(snapshot);
    }

    /// Compacts the log as the last snapshot taken here scheduled, unless the log has moved
    /// past that point since (a snapshot installed from the leader).
    pub(super) fn compact_scheduled(&mut self) {
        if let Some(index) = self.compact_to.take()
            && index > self.log.prefix().0
        {
            self.log.compact_to(index);
        }
    }

    /// Makes `snapshot` the node's latest and queues it for the driver to write.
    fn keep_snapshot(&mut self, snapshot: Snapshot) {
        self.applied_bytes_since_snapshot = 0;
        self.snapshot_to_write = Some(snapshot.clone());
        self.snapshot = Some(snapshot);
    }

    /// A follower receives one chunk of the leader's snapshot.
    pub(super) fn handle_install_snapshot(
        &mut self,
        leader: NodeId,
        meta: SnapshotMeta,
        total_bytes: u64,
        offset: u64,
        chunk: Vec<u8>,
    ) {
        if !self.hear_leader(leader, "InstallSnapshot") {
            return;
        }
        if meta.index <= self.commit || meta.term > self.term {
            // Committed here already (a late or duplicated transfer): the logs agree up to it.
            // (A snapshot from a later term than its sender's is malformed.)
            if meta.term <= self.term {
                self.send(
                    leader,
                    MessageBody::AppendEntriesResponse(AppendOutcome::Accepted {
                        match_index: meta.index,
                    }),
                );
            }
            self.incoming = None;
            return;
        }
        let same = self
            .incoming
            .as_ref()
            .is_some_and(|i| i.meta == meta && i.total_bytes == total_bytes);
        if offset == 0 && !same {
            self.incoming = Some(Incoming {
                meta,
                total_bytes,
                data: Vec::new(),
            });
        }
        let received = match self.incoming.as_mut() {
            Some(incoming)
                if incoming.meta == meta
                    && incoming.total_bytes == total_bytes
                    && incoming.data.len() as u64 == offset
                    && offset.saturating_add(chunk.len() as u64) <= total_bytes =>
            {
                incoming.data.extend_from_slice(&chunk);
                incoming.data.len() as u64
            }
            // Out of order, or of another snapshot: say what is held, the leader resends.
            Some(incoming) if incoming.meta == meta => incoming.data.len() as u64,
            _ => 0,
        };
        if received < total_bytes {
            self.send(
                leader,
                MessageBody::SnapshotChunkAck {
                    index: meta.index,
                    received,
                },
            );
            return;
        }
        let incoming = self.incoming.take().expect("a complete transfer");
        self.install_snapshot(leader, incoming);
    }

    /// Installs a completely received snapshot.
    fn install_snapshot(&mut self, leader: NodeId, incoming: Incoming) {
        let Incoming { meta, data, .. } = incoming;
        let machine = match StateMachine::from_snapshot_image(
            self.config.sessions,
            self.config.max_value_bytes,
            &data,
            meta.index,
        ) {
            Ok(machine) => machine,
            Err(error) => {
                tracing::error!(node = self.id().0, from = leader.0, %error, "dropped a snapshot");
                return;
            }
        };
        let keeps_log = self.log.matches(meta.index, meta.term)
            && !crate::injected!(self.config, SnapshotTruncatesNewer);
        tracing::info!(
            node = self.id().0,
            term = self.term.0,
            index = meta.index.0,
            bytes = data.len(),
            keeps_log,
            "installing a snapshot"
        );
        self.supersede_pending_from(self.state_machine.applied_index().next());
        if keeps_log {
            self.log.compact_to(meta.index);
        } else {
            self.log.reset_to(meta.index, meta.term);
            self.stable_index = self.stable_index.min(meta.index);
        }
        self.state_machine = machine;
        super::arm_state_machine_bugs(&self.config, &mut self.state_machine);
        self.commit = self.commit.max(meta.index);
        self.installed_snapshots += 1;
        self.keep_snapshot(Snapshot {
            meta,
            data: Arc::new(data),
        });
        self.send(
            leader,
            MessageBody::AppendEntriesResponse(AppendOutcome::Accepted {
                match_index: meta.index,
            }),
        );
    }

    /// The leader learns how much of its snapshot `from` holds.
    pub(super) fn handle_snapshot_chunk_ack(
        &mut self,
        from: NodeId,
        index: LogIndex,
        received: u64,
    ) {
        if let Some(p) = self.heard_from(from) {
            p.chunk_acked(index, received);
        }
    }
}

/// The next chunk of the transfer `sending`, of at most `chunk_bytes` bytes, and the offset
/// its end reaches.
pub(super) fn next_chunk(sending: &SnapshotSend, chunk_bytes: u64) -> (MessageBody, u64) {
    let data = &sending.snapshot.data;
    let start = usize::try_from(sending.acked).expect("acked within the image");
    let length = usize::try_from(chunk_bytes).unwrap_or(usize::MAX);
    let end = start.saturating_add(length).min(data.len());
    let body = MessageBody::InstallSnapshot {
        meta: sending.snapshot.meta,
        total_bytes: data.len() as u64,
        offset: sending.acked,
        chunk: data[start..end].to_vec(),
    };
    (body, end as u64)
}
