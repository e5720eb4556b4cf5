//! Reads without log entries, against real node processes (issue 12): every consistency
//! level answers what a client expects, only `log` writes the log, followers' linearizable
//! reads see the leader's acknowledged writes, a follower's stale reads see their own
//! connection's writes, and a key whose deadline passed reads as
//! absent though nothing was written since.

use redis::Commands;
use std::time::Duration;
use verity_tests::ProcessCluster;

fn follower_of(leader: usize) -> usize {
    if leader == 1 { 2 } else { 1 }
}

/// Node `id`'s last log index as `INFO` shows it, once the status it shows (published every
/// tick) has caught up.
fn last_log_index(cluster: &ProcessCluster, id: usize) -> u64 {
    std::thread::sleep(Duration::from_millis(100));
    cluster.info(id).expect("INFO answers")["last_log_index"]
        .parse()
        .unwrap()
}

fn consistency(connection: &mut redis::Connection, level: &str) {
    let ok: String = redis::cmd("CONSISTENCY")
        .arg(level)
        .query(connection)
        .unwrap();
    assert_eq!(ok, "OK");
}

#[test]
fn only_reads_through_the_log_write_the_log() {
    let cluster = ProcessCluster::start(3, &[]);
    let leader = cluster.wait_for_leader(&[1, 2, 3]);
    let follower = follower_of(leader);
    let mut writer = cluster.connect(leader);
    let _: () = writer.set("k", "v").unwrap();
    let before = last_log_index(&cluster, leader);
    cluster.wait_for_applied(follower, before);
    for (node, level, name) in [
        (leader, "linearizable", "linearizable"),
        (leader, "lease", "lease"),
        (leader, "stale", "stale"),
        (follower, "strong", "linearizable"),
        (follower, "lease", "lease"),
        (follower, "eventual", "stale"),
    ] {
        let mut reader = cluster.connect(node);
        consistency(&mut reader, level);
        let shown: String = redis::cmd("CONSISTENCY").query(&mut reader).unwrap();
        assert_eq!(shown, name);
        for _ in 0..50 {
            let value: String = reader.get("k").unwrap();
            assert_eq!(value, "v", "{level} read on node {node}");
        }
        let values: Vec<Option<String>> = reader.mget(&["k", "absent"]).unwrap();
        assert_eq!(values, [Some("v".to_string()), None]);
    }
    assert_eq!(
        last_log_index(&cluster, leader),
        before,
        "no read and no reading connection wrote the log"
    );
    let mut logged = cluster.connect(leader);
    consistency(&mut logged, "log");
    for _ in 0..10 {
        let value: String = logged.get("k").unwrap();
        assert_eq!(value, "v");
    }
    assert_eq!(
        last_log_index(&cluster, leader),
        before + 11,
        "a session and one entry per read"
    );
}

#[test]
fn a_stale_read_on_a_follower_sees_its_own_connections_writes_and_never_goes_back() {
    let cluster = ProcessCluster::start(3, &[]);
    let leader = cluster.wait_for_leader(&[1, 2, 3]);
    let follower = follower_of(leader);
    let mut client = cluster.connect(follower);
    consistency(&mut client, "stale");
    for i in 0..100 {
        let _: () = client.set("k", i).unwrap();
        let value: i64 = client.get("k").unwrap();
        assert_eq!(
            value, i,
            "a stale read on node {follower} missed its own SET"
        );
        let counted: i64 = client.incr("n", 1).unwrap();
        let read: i64 = client.get("n").unwrap();
        assert_eq!(
            read, counted,
            "a stale read on node {follower} missed its own INCR"
        );
    }
}

#[test]
fn a_followers_linearizable_read_sees_every_write_the_leader_acknowledged() {
    let cluster = ProcessCluster::start(3, &[]);
    let leader = cluster.wait_for_leader(&[1, 2, 3]);
    let mut writer = cluster.connect(leader);
    let mut reader = cluster.connect(follower_of(leader));
    for i in 0..200 {
        let _: () = writer.set("counter", i).unwrap();
        let read: i64 = reader.get("counter").unwrap();
        assert_eq!(read, i, "read after the write was acknowledged");
    }
}

#[test]
fn a_key_whose_deadline_passed_reads_as_absent_though_nothing_was_written_since() {
    let cluster = ProcessCluster::start(3, &["--consistency", "lease"]);
    let leader = cluster.wait_for_leader(&[1, 2, 3]);
    let follower = follower_of(leader);
    let info = cluster.info(leader).unwrap();
    assert_eq!(info["consistency"], "lease");
    let mut at_leader = cluster.connect(leader);
    let setting: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("consistency")
        .query(&mut at_leader)
        .unwrap();
    assert_eq!(setting, ["consistency", "lease"]);
    let taken: Option<String> = redis::cmd("SET")
        .arg("lock")
        .arg("owner")
        .arg("NX")
        .arg("PX")
        .arg(400)
        .query(&mut at_leader)
        .unwrap();
    assert_eq!(taken.as_deref(), Some("OK"));
    let held: Option<String> = at_leader.get("lock").unwrap();
    assert_eq!(held.as_deref(), Some("owner"));
    std::thread::sleep(Duration::from_millis(700));
    for node in [leader, follower] {
        for level in ["lease", "linearizable"] {
            let mut reader = cluster.connect(node);
            consistency(&mut reader, level);
            let value: Option<String> = reader.get("lock").unwrap();
            assert_eq!(value, None, "{level} read on node {node}, deadline passed");
            let ttl: i64 = reader.pttl("lock").unwrap();
            assert_eq!(ttl, -2);
        }
    }
}
