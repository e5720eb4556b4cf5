//! Snapshots and log compaction against real node processes (issue 12): a long history keeps
//! the WAL to a few segments beside one snapshot file, a follower that was down past the
//! compacted log catches up through the leader's snapshot, and nodes restart from their
//! snapshot and the log after it with every acknowledged write.

use redis::Commands;
use std::path::Path;
use std::time::Duration;
use verity_tests::ProcessCluster;

const KEYS: usize = 300;

fn wal_segments(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("wal"))
        .expect("the WAL directory")
        .filter(|entry| {
            entry
                .as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".wal"))
        })
        .count()
}

fn info_number(cluster: &ProcessCluster, id: usize, field: &str) -> u64 {
    cluster.info(id).expect("INFO answers")[field]
        .parse()
        .unwrap()
}

/// Writes `rounds` rounds of `SET key-i round-r` over every key, pipelined.
fn write_rounds(connection: &mut redis::Connection, rounds: std::ops::Range<usize>) {
    for round in rounds {
        let mut pipe = redis::pipe();
        for key in 0..KEYS {
            pipe.set(format!("key-{key}"), format!("round-{round}"))
                .ignore();
        }
        let () = pipe.query(connection).expect("the writes are acknowledged");
    }
}

fn assert_holds_round(connection: &mut redis::Connection, round: usize, node: usize) {
    for key in (0..KEYS).step_by(7) {
        let value: String = connection.get(format!("key-{key}")).unwrap();
        assert_eq!(value, format!("round-{round}"), "key-{key} on node {node}");
    }
}

#[test]
fn a_long_history_keeps_the_wal_small_and_a_follower_catches_up_by_snapshot() {
    let mut cluster = ProcessCluster::start(
        3,
        &["--snapshot-entries", "500", "--segment-bytes", "65536"],
    );
    let leader = cluster.wait_for_leader(&[1, 2, 3]);
    let down = if leader == 3 { 2 } else { 3 };
    cluster.kill9(down);
    let mut writer = cluster.connect(leader);
    write_rounds(&mut writer, 0..20);
    let leader_dir = cluster.dir().join(format!("node-{leader}"));
    assert!(info_number(&cluster, leader, "snapshot_index") > 5_000);
    assert!(leader_dir.join("snapshot").exists());
    let segments = wal_segments(&leader_dir);
    assert!(
        segments <= 3,
        "6,000 writes compacted into a snapshot leave few WAL segments, found {segments}"
    );

    cluster.start_node(down);
    std::thread::sleep(Duration::from_millis(200));
    let applied = info_number(&cluster, leader, "applied_index");
    cluster.wait_for_applied(down, applied);
    assert!(
        info_number(&cluster, down, "snapshots_installed") >= 1,
        "node {down} was down past the compacted log: it caught up by the leader's snapshot"
    );
    let mut follower = cluster.connect(down);
    assert_holds_round(&mut follower, 19, down);

    write_rounds(&mut writer, 20..22);
    drop((writer, follower));
    for id in [down, leader] {
        cluster.terminate(id);
        cluster.start_node(id);
    }
    cluster.wait_for_leader(&[1, 2, 3]);
    for id in 1..=3 {
        let mut connection = cluster.connect(id);
        assert_holds_round(&mut connection, 21, id);
    }
}
