//! The stock Redis tools against a real 3-node cluster: `redis-cli` commands (including the
//! ones it sends by itself) and `redis-benchmark -t set,get -n 10000`, without an error; and
//! `verity bench`, which speaks the same protocol.
//! Needs redis-tools installed (`.ci/run` installs it).

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use verity_tests::ProcessCluster;

/// Runs a command with a time limit; panics with its output if it fails.
fn run(program: &str, args: &[&str], limit: Duration) -> String {
    let mut child = Command::new(program)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot run {program} ({error}): install redis-tools (`apt-get install redis-tools`; .ci/run does)"));
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{program} {args:?} ran longer than {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let Output {
        status,
        stdout,
        stderr,
    } = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&stdout).into_owned();
    let stderr = String::from_utf8_lossy(&stderr);
    assert!(
        status.success(),
        "{program} {args:?} failed: {status}\n{stdout}\n{stderr}"
    );
    stdout
}

#[test]
fn redis_cli_and_redis_benchmark_work_against_a_cluster() {
    let cluster = ProcessCluster::start(3, &[]);
    let leader = cluster.wait_for_leader(&[1, 2, 3]);
    let follower = if leader == 1 { 2 } else { 1 };
    let port = cluster.client_addrs[follower - 1].port().to_string();
    let cli = |args: &[&str]| {
        let mut full = vec!["-p", port.as_str()];
        full.extend_from_slice(args);
        run("redis-cli", &full, Duration::from_secs(30))
            .trim_end()
            .to_string()
    };
    assert_eq!(cli(&["PING"]), "PONG");
    assert_eq!(cli(&["SET", "greeting", "hello"]), "OK");
    assert_eq!(cli(&["APPEND", "greeting", " world"]), "11");
    assert_eq!(cli(&["GET", "greeting"]), "hello world");
    assert_eq!(cli(&["SET", "greeting", "x", "NX"]), "");
    assert_eq!(cli(&["CAS", "greeting", "hello world", "bye"]), "1");
    assert_eq!(cli(&["INCRBY", "n", "41"]), "41");
    assert_eq!(cli(&["INCR", "n"]), "42");
    assert_eq!(cli(&["DECR", "n"]), "41");
    assert_eq!(cli(&["EXISTS", "n", "greeting", "nope"]), "2");
    assert_eq!(cli(&["MGET", "n", "nope"]), "41");
    assert_eq!(cli(&["DEL", "n", "nope"]), "1");
    assert!(cli(&["GETVER", "greeting"]).starts_with("bye\n"));
    assert!(cli(&["LEADER"]).starts_with(&leader.to_string()));
    assert_eq!(cli(&["CONSISTENCY"]), "linearizable");
    let info = cli(&["INFO"]);
    assert!(
        info.contains("# Raft") && info.contains("role:follower"),
        "{info}"
    );
    assert!(cli(&["INCR", "greeting"]).contains("not an integer"));

    let output = run(
        "redis-benchmark",
        &["-p", &port, "-t", "set,get", "-n", "10000", "-q"],
        Duration::from_secs(120),
    );
    for test in ["SET", "GET"] {
        assert!(
            output.contains(&format!("{test}: ")) && output.contains("requests per second"),
            "{output}"
        );
    }
    assert!(!output.to_lowercase().contains("error"), "{output}");
}
