//! Three real `verity node` processes: writes through a Redis client library survive a
//! `kill -9` of the leader, a follower forwards writes, and a restarted node catches up from
//! its own WAL and from the leader. Also: SIGTERM closes a node cleanly, keeping its data, and
//! a node whose data directory is gone refuses to start unless told it is new.

use redis::Commands;
use verity_tests::ProcessCluster;

fn others(all: &[usize], but: usize) -> Vec<usize> {
    all.iter().copied().filter(|&id| id != but).collect()
}

#[test]
fn acknowledged_writes_survive_a_leader_kill_and_the_node_catches_up() {
    let mut cluster = ProcessCluster::start(3, &[]);
    let all = [1, 2, 3];
    let leader = cluster.wait_for_leader(&all);
    let follower = others(&all, leader)[0];

    // Writes through the leader and, forwarded, through a follower.
    let mut on_leader = cluster.connect(leader);
    let mut on_follower = cluster.connect(follower);
    for i in 0..100 {
        let _: () = on_leader.set(format!("k{i}"), format!("v{i}")).unwrap();
    }
    for i in 100..150 {
        let _: () = on_follower.set(format!("k{i}"), format!("v{i}")).unwrap();
    }
    let counter: i64 = on_follower.incr("counter", 5).unwrap();
    assert_eq!(counter, 5);
    let read: String = on_follower.get("k7").unwrap();
    assert_eq!(
        read, "v7",
        "a follower reads linearizably through the leader"
    );

    cluster.kill9(leader);
    let survivors = others(&all, leader);
    let new_leader = cluster.wait_for_leader(&survivors);
    assert_ne!(new_leader, leader);
    let mut connection = cluster.connect(survivors[0]);
    for i in 0..150 {
        let value: Option<String> = connection.get(format!("k{i}")).unwrap();
        assert_eq!(
            value.as_deref(),
            Some(format!("v{i}").as_str()),
            "acknowledged write k{i} lost"
        );
    }
    let counter: i64 = connection.incr("counter", 1).unwrap();
    assert_eq!(counter, 6, "the increment was applied exactly once");
    for i in 150..200 {
        let _: () = connection.set(format!("k{i}"), format!("v{i}")).unwrap();
    }

    cluster.start_node(leader);
    let commit: u64 = cluster.info(new_leader).unwrap()["commit_index"]
        .parse()
        .unwrap();
    cluster.wait_for_applied(leader, commit);
    let info = cluster.info(leader).unwrap();
    assert_eq!(info["role"], "follower");
    assert_eq!(info["leader_id"], new_leader.to_string());
    let mut restarted = cluster.connect(leader);
    let value: String = restarted.get("k199").unwrap();
    assert_eq!(value, "v199");
    assert!(cluster.log_path(leader).exists());
}

#[test]
fn sigterm_closes_a_node_cleanly_and_its_data_survives() {
    let mut cluster = ProcessCluster::start(3, &[]);
    let leader = cluster.wait_for_leader(&[1, 2, 3]);
    let mut connection = cluster.connect(leader);
    let _: () = connection.set("durable", "yes").unwrap();
    drop(connection);
    for id in 1..=3 {
        let status = cluster.terminate(id);
        assert!(
            status.success(),
            "node {id} exited with {status} on SIGTERM"
        );
    }
    for id in 1..=3 {
        cluster.start_node(id);
    }
    let leader = cluster.wait_for_leader(&[1, 2, 3]);
    let mut connection = cluster.connect(leader);
    let value: String = connection.get("durable").unwrap();
    assert_eq!(value, "yes");
    let log = std::fs::read_to_string(cluster.log_path(1)).unwrap();
    assert!(log.contains("[SHUTDOWN] stopped cleanly"), "{log}");
    assert!(log.contains("[ELECTION]"), "{log}");
}

#[test]
fn a_node_that_ran_before_refuses_to_start_on_an_empty_data_directory() {
    // Issue 11, failure 4: a node restarted on an empty (or mistyped) directory under its old
    // id started with no vote and no log, free to vote twice in a term it had voted in.
    let mut cluster = ProcessCluster::start(3, &[]);
    let leader = cluster.wait_for_leader(&[1, 2, 3]);
    let victim = others(&[1, 2, 3], leader)[0];
    cluster.kill9(victim);
    let data_dir = cluster.dir().join(format!("node-{victim}"));
    std::fs::remove_dir_all(&data_dir).unwrap();
    cluster.start_node(victim);
    let deadline = std::time::Instant::now() + verity_tests::process_cluster::WAIT;
    while cluster.is_running(victim) {
        assert!(
            std::time::Instant::now() < deadline,
            "node {victim} kept running with no data"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let log = std::fs::read_to_string(cluster.log_path(victim)).unwrap();
    assert!(log.contains("no Verity data in"), "{log}");
    assert!(log.contains("--initial-cluster-state new"), "{log}");
    assert!(!data_dir.exists(), "a refused start creates nothing");
}

#[test]
fn a_write_retried_in_a_resumed_session_executes_once() {
    let cluster = ProcessCluster::start(3, &[]);
    let leader = cluster.wait_for_leader(&[1, 2, 3]);
    let mut first = cluster.connect(leader);
    let _: () = first.set("warm-up", "1").unwrap();
    let (session, token, sequence): (u64, String, u64) =
        redis::cmd("SESSION").query(&mut first).unwrap();
    let counted: i64 = first.incr("counter", 1).unwrap();
    assert_eq!(counted, 1);
    drop(first);

    // A client that lost its connection before the reply resumes the session on another
    // node and retries the same write under the same sequence number.
    let other = if leader == 1 { 2 } else { 1 };
    let mut second = cluster.connect(other);
    let resume = |connection: &mut redis::Connection| {
        let _: () = redis::cmd("SESSION")
            .arg(session)
            .arg(&token)
            .arg(sequence)
            .query(connection)
            .unwrap();
    };
    resume(&mut second);
    let retried: i64 = second.incr("counter", 1).unwrap();
    assert_eq!(retried, 1, "the retry answers the first reply");
    let value: i64 = second.get("counter").unwrap();
    assert_eq!(value, 1, "the retried write must not execute a second time");
    let counted: i64 = second.incr("counter", 1).unwrap();
    assert_eq!(counted, 2, "new sequence numbers execute");

    // A "retry" that is a different command is refused, never executed.
    resume(&mut second);
    let error = second.incr::<_, _, i64>("counter", 5).unwrap_err();
    assert!(
        error.to_string().contains("used by a different command"),
        "{error}"
    );
    // That connection now numbers its commands after the resumed one, numbers already used;
    // a fresh connection reads.
    let value: i64 = cluster.connect(other).get("counter").unwrap();
    assert_eq!(value, 2);
}

#[test]
fn verity_cluster_starts_serving_nodes_and_stops_them_on_sigterm() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    // Three consecutive free ports for clients and three for peers.
    let free_run = || loop {
        let base = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if base < 60_000
            && (1..3).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok())
        {
            return base;
        }
    };
    let (client_port, peer_port) = (free_run(), free_run());
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Command::new(verity_tests::verity_binary())
        .args(["cluster", "--nodes", "3"])
        .arg("--dir")
        .arg(dir.path())
        .args([
            "--client-port",
            &client_port.to_string(),
            "--peer-port",
            &peer_port.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut answered = false;
    while Instant::now() < deadline && !answered {
        let client =
            redis::Client::open(format!("redis://127.0.0.1:{}/", client_port + 2)).unwrap();
        if let Ok(mut connection) = client.get_connection_with_timeout(Duration::from_secs(1)) {
            let set: redis::RedisResult<()> = connection.set("tried", "it");
            answered = set.is_ok();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(answered, "the local cluster never served a write");
    kill(
        Pid::from_raw(i32::try_from(cluster.id()).unwrap()),
        Signal::SIGTERM,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = cluster.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "verity cluster ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    let mut output = String::new();
    std::io::Read::read_to_string(&mut cluster.stdout.take().unwrap(), &mut output).unwrap();
    assert!(
        output.contains(&format!("redis-cli -p {client_port}")),
        "{output}"
    );
    assert!(
        output.contains("[n3]") && output.contains("[SHUTDOWN] stopped cleanly"),
        "{output}"
    );
    for node in 1..=3 {
        assert!(dir.path().join(format!("node-{node}/verity.toml")).exists());
    }
}

#[test]
fn without_a_quorum_a_write_fails_with_clusterdown_after_a_bounded_wait() {
    let mut cluster = ProcessCluster::start(3, &["--request-timeout-ms", "1000"]);
    let leader = cluster.wait_for_leader(&[1, 2, 3]);
    let survivor = others(&[1, 2, 3], leader)[0];
    for id in others(&[1, 2, 3], survivor) {
        cluster.kill9(id);
    }
    let mut connection = cluster.connect(survivor);
    let started = std::time::Instant::now();
    let error = connection.set::<_, _, ()>("lonely", "write").unwrap_err();
    let waited = started.elapsed();
    assert_eq!(error.kind(), redis::ErrorKind::ClusterDown, "{error}");
    assert!(
        error.to_string().contains("not executed: SET"),
        "a command that never got into a session certainly did not run: {error}"
    );
    assert!(
        waited < std::time::Duration::from_secs(10),
        "waited {waited:?}"
    );
    let pong: String = redis::cmd("PING").query(&mut connection).unwrap();
    assert_eq!(pong, "PONG", "the node itself stays up");
}
