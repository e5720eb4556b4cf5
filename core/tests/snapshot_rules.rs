//! One test per rule of snapshots and log compaction: when a node takes one and what it asks
//! its driver to write, how a follower installs one (never dropping entries its log agrees
//! on), how a lagging follower catches up through chunks, and how a restart reads one back.

mod support;

use std::sync::Arc;
use support::*;
use verity_core::kv::StateMachine;
use verity_core::testing::Cluster;
use verity_core::*;

const N1: NodeId = NodeId(1);
const N2: NodeId = NodeId(2);
const N3: NodeId = NodeId(3);

/// Node 1 of 3 with snapshots every `entries` applied entries, keeping `trailing` below them.
fn snapshotting(entries: u64, trailing: u64) -> Config {
    let mut config = config(1, 3);
    config.snapshot_entries = entries;
    config.snapshot_trailing_entries = trailing;
    config
}

/// Leader 2's AppendEntries of `term` to node 1.
fn append(term: u64, prev: (u64, u64), entries: Vec<Entry>, commit: u64) -> Message {
    msg(
        N2,
        N1,
        Term(term),
        MessageBody::AppendEntries {
            prev_log_index: LogIndex(prev.0),
            prev_log_term: Term(prev.1),
            entries,
            leader_commit: LogIndex(commit),
        },
    )
}

/// What a node with a term-1 hard state committed to `commit` recovers from its disk.
fn recovered(
    commit: u64,
    log_start: SnapshotMeta,
    snapshot: Option<Snapshot>,
    entries: Vec<Entry>,
) -> Recovered {
    Recovered {
        hard_state: HardState {
            term: Term(1),
            vote: None,
            commit: LogIndex(commit),
        },
        snapshot,
        log_start,
        entries,
    }
}

/// The snapshot of a state machine that applied `entries` (puts of their keys).
fn snapshot_of(config: &Config, entries: &[Entry]) -> Snapshot {
    let mut machine = StateMachine::new(config.sessions, config.max_value_bytes);
    for entry in entries {
        let op = match &entry.payload {
            EntryPayload::Client { op, .. } => Some(op),
            EntryPayload::Noop => None,
        };
        machine.apply(entry.index, 0, op);
    }
    let last = entries.last().expect("at least one entry");
    Snapshot {
        meta: SnapshotMeta {
            index: last.index,
            term: last.term,
        },
        data: Arc::new(machine.image()),
    }
}

/// Leader 2's whole `snapshot` in one InstallSnapshot of `term`.
fn install(term: u64, snapshot: &Snapshot) -> Message {
    msg(
        N2,
        N1,
        Term(term),
        MessageBody::InstallSnapshot {
            meta: snapshot.meta,
            total_bytes: snapshot.data.len() as u64,
            offset: 0,
            chunk: snapshot.data.to_vec(),
        },
    )
}

fn entries(range: std::ops::RangeInclusive<u64>, term: u64) -> Vec<Entry> {
    range
        .map(|i| put_entry(i, term, &format!("k{i}")))
        .collect()
}

#[test]
fn a_node_snapshots_every_configured_entries_and_writes_the_log_after_it_again() {
    let mut n = Node::new(snapshotting(5, 2)).unwrap();
    n.step(append(1, (0, 0), entries(1..=7, 1), 6));
    let ready = drain(&mut n);
    let snapshot = ready.snapshot.expect("six applied entries pass five");
    assert_eq!(snapshot.meta.index, LogIndex(6));
    assert_eq!(
        ready.entries.last().map(|e| e.index),
        Some(LogIndex(7)),
        "the log after the snapshot is written with it"
    );
    assert!(
        ready.hard_state.is_some(),
        "a snapshot's Ready has a hard state"
    );
    n.step(append(1, (7, 1), Vec::new(), 7));
    settle(&mut n);
    assert_eq!(
        n.log().prefix(),
        (LogIndex(4), Term(1)),
        "compacted below the snapshot, keeping two trailing entries"
    );
    assert_eq!(n.snapshot_meta(), Some(snapshot.meta));
}

#[test]
fn a_snapshot_the_follower_log_agrees_with_keeps_the_entries_after_it() {
    let config = snapshotting(1_000, 0);
    let mut n = Node::new(config.clone()).unwrap();
    n.step(append(1, (0, 0), entries(1..=10, 1), 2));
    settle(&mut n);
    let snapshot = snapshot_of(&config, &entries(1..=5, 1));
    n.step(install(1, &snapshot));
    let ready = drain(&mut n);
    assert_eq!(ready.snapshot.map(|s| s.meta), Some(snapshot.meta));
    assert_eq!(
        n.log().last_index(),
        LogIndex(10),
        "entries after an agreeing snapshot may be acknowledged: they stay"
    );
    assert_eq!(n.log().prefix(), (LogIndex(5), Term(1)));
    assert_eq!(n.commit_index(), LogIndex(5));
    assert_eq!(n.state_machine().applied_index(), LogIndex(5));
    assert!(
        ready.messages.iter().any(|m| m.body
            == MessageBody::AppendEntriesResponse(AppendOutcome::Accepted {
                match_index: LogIndex(5)
            })),
        "the snapshot is acknowledged once written"
    );
}

#[test]
fn a_snapshot_the_follower_log_disagrees_with_replaces_the_whole_log() {
    let config = snapshotting(1_000, 0);
    let mut n = Node::new(config.clone()).unwrap();
    n.step(append(1, (0, 0), entries(1..=10, 1), 2));
    settle(&mut n);
    let mut newer = entries(1..=4, 1);
    newer.push(put_entry(5, 2, "k5"));
    let snapshot = snapshot_of(&config, &newer);
    n.step(install(2, &snapshot));
    settle(&mut n);
    assert_eq!(n.log().last_index(), LogIndex(5));
    assert_eq!(n.log().prefix(), (LogIndex(5), Term(2)));
    assert_eq!(n.state_machine().digest(), {
        let machine =
            StateMachine::from_image(config.sessions, config.max_value_bytes, &snapshot.data);
        machine.unwrap().digest()
    });
}

#[test]
fn a_snapshot_at_or_below_the_commit_index_is_only_acknowledged() {
    let config = snapshotting(1_000, 0);
    let mut n = Node::new(config.clone()).unwrap();
    n.step(append(1, (0, 0), entries(1..=10, 1), 8));
    settle(&mut n);
    let before = n.state_machine().digest();
    n.step(install(1, &snapshot_of(&config, &entries(1..=5, 1))));
    let ready = drain(&mut n);
    assert!(ready.snapshot.is_none());
    assert_eq!(n.state_machine().digest(), before);
    assert_eq!(n.log().last_index(), LogIndex(10));
}

#[test]
fn chunks_out_of_order_are_refused_with_what_is_held() {
    let config = snapshotting(1_000, 0);
    let mut n = Node::new(config.clone()).unwrap();
    let snapshot = snapshot_of(&config, &entries(1..=5, 1));
    let chunk = |offset: u64, length: u64| {
        let end = (offset + length).min(snapshot.data.len() as u64);
        msg(
            N2,
            N1,
            Term(1),
            MessageBody::InstallSnapshot {
                meta: snapshot.meta,
                total_bytes: snapshot.data.len() as u64,
                offset,
                chunk: snapshot.data[offset as usize..end as usize].to_vec(),
            },
        )
    };
    let acks = |ready: &Ready| -> Vec<u64> {
        ready
            .messages
            .iter()
            .filter_map(|m| match m.body {
                MessageBody::SnapshotChunkAck { received, .. } => Some(received),
                _ => None,
            })
            .collect()
    };
    n.step(chunk(0, 10));
    assert_eq!(acks(&drain(&mut n)), vec![10]);
    n.step(chunk(20, 10));
    assert_eq!(acks(&drain(&mut n)), vec![10], "a gap: resume at 10");
    let mut offset = 10;
    while offset < snapshot.data.len() as u64 {
        n.step(chunk(offset, 10));
        offset += 10;
    }
    let ready = drain(&mut n);
    assert_eq!(ready.snapshot.map(|s| s.meta), Some(snapshot.meta));
    assert_eq!(n.state_machine().applied_index(), LogIndex(5));
}

#[test]
fn a_damaged_snapshot_is_dropped_and_nothing_changes() {
    let config = snapshotting(1_000, 0);
    let mut n = Node::new(config.clone()).unwrap();
    let mut snapshot = snapshot_of(&config, &entries(1..=5, 1));
    let mut data = snapshot.data.to_vec();
    data.truncate(data.len() - 3);
    snapshot.data = Arc::new(data);
    n.step(install(1, &snapshot));
    let ready = drain(&mut n);
    assert!(ready.snapshot.is_none());
    assert_eq!(n.state_machine().applied_index(), LogIndex(0));
    assert_eq!(n.commit_index(), LogIndex(0));
}

#[test]
fn a_restart_reads_the_snapshot_then_the_log_after_it() {
    let config = snapshotting(1_000, 0);
    let snapshot = snapshot_of(&config, &entries(1..=5, 1));
    let n = Node::restore(
        config.clone(),
        recovered(5, snapshot.meta, Some(snapshot.clone()), entries(6..=8, 1)),
    )
    .unwrap();
    assert_eq!(n.log().prefix(), (LogIndex(5), Term(1)));
    assert_eq!(n.log().last_index(), LogIndex(8));
    assert_eq!(n.state_machine().applied_index(), LogIndex(5));
}

/// Found by the simulator (seed 1252 of the swarm sweep): a node crashed after writing a
/// snapshot but before its marker record was durable restarted with its log in memory after
/// the snapshot and its log on disk before it; the next entry it wrote did not continue the
/// log on disk, and it acknowledged it.
#[test]
fn a_restart_from_a_snapshot_whose_marker_was_lost_writes_it_again_first() {
    let config = snapshotting(1_000, 0);
    let snapshot = snapshot_of(&config, &entries(1..=5, 1));
    let mut n = Node::restore(
        config,
        recovered(
            4,
            SnapshotMeta::default(),
            Some(snapshot.clone()),
            entries(1..=4, 1),
        ),
    )
    .unwrap();
    let ready = n
        .ready()
        .expect("the snapshot and its marker are written again");
    assert_eq!(ready.snapshot.map(|s| s.meta), Some(snapshot.meta));
    assert_eq!(
        n.commit_index(),
        LogIndex(5),
        "a snapshot stands for committed entries"
    );
}

#[test]
fn a_snapshot_older_than_the_log_start_is_refused() {
    let config = snapshotting(1_000, 0);
    let snapshot = snapshot_of(&config, &entries(1..=3, 1));
    let error = Node::restore(
        config,
        recovered(
            5,
            SnapshotMeta {
                index: LogIndex(5),
                term: Term(1),
            },
            Some(snapshot),
            entries(6..=6, 1),
        ),
    )
    .unwrap_err();
    assert!(
        matches!(error, RestoreError::SnapshotBehindLog { .. }),
        "{error}"
    );
}

#[test]
fn a_follower_cut_off_past_the_compacted_log_catches_up_through_chunks() {
    let mut cluster = Cluster::with_config(3, 7, |config| {
        config.snapshot_entries = 4;
        config.snapshot_trailing_entries = 0;
        config.snapshot_chunk_bytes = 64;
    });
    cluster.run_until(200, |c| c.leader().is_some()).unwrap();
    let leader = cluster.leader().unwrap();
    let lagging = [N1, N2, N3].into_iter().find(|&n| n != leader).unwrap();
    cluster.disconnect(lagging);
    let opened = cluster
        .propose(leader, RequestTag(0), open_op())
        .unwrap()
        .unwrap();
    cluster.run(5).unwrap();
    for i in 1..40 {
        let command = put(&format!("key-{i}"), "a value of some length");
        cluster
            .propose(
                leader,
                RequestTag(i),
                request(ClientId(opened.0), i, command),
            )
            .unwrap()
            .unwrap();
        cluster.run(5).unwrap();
    }
    assert!(cluster.node(leader).unwrap().log().prefix().0 > LogIndex(20));
    let leader_snapshot_bytes = cluster.node(leader).unwrap().state_machine().image().len() as u64;
    cluster.reconnect(lagging);
    let mut chunks = 0;
    for _ in 0..100 {
        for id in [N1, N2, N3] {
            cluster.tick(id).unwrap();
        }
        while let Some(message) = cluster.in_flight().first() {
            chunks += usize::from(matches!(message.body, MessageBody::InstallSnapshot { .. }));
            cluster.deliver(0).unwrap();
        }
    }
    let (leader, lagging) = (
        cluster.node(leader).unwrap(),
        cluster.node(lagging).unwrap(),
    );
    let image_bytes = leader_snapshot_bytes;
    assert!(
        chunks as u64 >= image_bytes.div_ceil(64) && chunks > 10,
        "the snapshot ({image_bytes} bytes) went in 64-byte chunks ({chunks})"
    );
    assert_eq!(
        lagging.state_machine().applied_index(),
        leader.state_machine().applied_index()
    );
    assert_eq!(
        lagging.state_machine().digest(),
        leader.state_machine().digest()
    );
}

#[test]
fn a_node_also_snapshots_once_the_applied_entries_carry_enough_bytes() {
    let mut config = snapshotting(1_000, 0);
    config.snapshot_bytes = 100;
    let mut n = Node::new(config).unwrap();
    let big = |index: u64| Entry {
        index: LogIndex(index),
        term: Term(1),
        payload: EntryPayload::Client {
            op: request(ClientId(0), index, put("k", &"v".repeat(60))),
            time_ms: 0,
        },
    };
    n.step(append(1, (0, 0), vec![big(1)], 1));
    assert!(drain(&mut n).snapshot.is_none(), "61 bytes applied");
    n.step(append(1, (1, 1), vec![big(2)], 2));
    let snapshot = drain(&mut n).snapshot.expect("122 bytes applied pass 100");
    assert_eq!(snapshot.meta.index, LogIndex(2));
}

#[test]
fn a_snapshot_whose_image_is_of_another_index_is_dropped() {
    let config = snapshotting(1_000, 0);
    let mut n = Node::new(config.clone()).unwrap();
    let mut snapshot = snapshot_of(&config, &entries(1..=5, 1));
    snapshot.meta.index = LogIndex(6);
    n.step(install(1, &snapshot));
    assert!(drain(&mut n).snapshot.is_none());
    assert_eq!(n.state_machine().applied_index(), LogIndex(0));
    let error = Node::restore(
        config,
        recovered(6, snapshot.meta, Some(snapshot), Vec::new()),
    )
    .unwrap_err();
    assert!(matches!(error, RestoreError::Snapshot { .. }), "{error}");
}
