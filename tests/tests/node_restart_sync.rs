//! What a restarted node trusts from its disk (issue 11, failure 2), seen in the system calls
//! of a real node process.
//!
//! After `kill -9`, records the process wrote but never synced are still in the page cache:
//! they read back like durable data, yet a power loss would still lose them. A node that
//! voted or acknowledged on the strength of such records could vote twice in a term or lose
//! a committed entry. So at start the node must `fsync` every WAL segment it reads and the
//! WAL directory (which names them) before it opens a port. `strace` records the calls; the
//! test follows file descriptors from `openat` to `fsync` and `close`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use verity_tests::ProcessCluster;

/// The paths `fsync`ed before the first `bind`, from an `strace -f` log of `openat`, `close`,
/// `fsync`, `fdatasync` and `bind` calls.
fn synced_before_first_bind(trace: &str) -> BTreeSet<String> {
    let mut open: BTreeMap<i64, String> = BTreeMap::new();
    let mut synced = BTreeSet::new();
    for line in trace.lines() {
        // `PID call(arguments) = result`
        let call = line.split_once(' ').map_or(line, |(_, rest)| rest).trim();
        let result = call
            .rsplit_once(" = ")
            .and_then(|(_, result)| result.split(' ').next())
            .and_then(|result| result.parse::<i64>().ok());
        let first_argument = call
            .split_once('(')
            .and_then(|(_, rest)| rest.split([',', ')']).next())
            .and_then(|fd| fd.trim().parse::<i64>().ok());
        if call.starts_with("bind(") {
            return synced;
        } else if call.starts_with("openat(") {
            let path = call.split('"').nth(1).expect("openat names a path");
            if let Some(fd) = result.filter(|fd| *fd >= 0) {
                open.insert(fd, path.to_string());
            }
        } else if call.starts_with("close(") {
            open.remove(&first_argument.expect("close names a descriptor"));
        } else if (call.starts_with("fsync(") || call.starts_with("fdatasync("))
            && result == Some(0)
            && let Some(path) = first_argument.and_then(|fd| open.get(&fd))
        {
            synced.insert(path.clone());
        }
    }
    panic!("the node never bound a port:\n{trace}");
}

#[test]
fn a_restarted_node_syncs_every_segment_and_its_directory_before_it_opens_a_port() {
    assert!(
        Command::new("strace").arg("-V").output().is_ok(),
        "strace is missing: scripts/install-test-tools installs it"
    );
    // Small segments, so the log spans several files.
    let mut cluster = ProcessCluster::start(1, &["--segment-bytes", "4096"]);
    cluster.wait_for_leader(&[1]);
    let mut client = cluster.connect(1);
    let value = "v".repeat(1000);
    for key in 0..20 {
        let () = redis::cmd("SET")
            .arg(format!("key:{key}"))
            .arg(&value)
            .query(&mut client)
            .unwrap();
    }
    drop(client);
    cluster.kill9(1);

    let wal_dir = cluster.dir().join("node-1").join("wal");
    let segments: BTreeSet<String> = std::fs::read_dir(&wal_dir)
        .unwrap()
        .map(|entry| entry.unwrap().path().display().to_string())
        .filter(|path| path.ends_with(".wal"))
        .collect();
    assert!(segments.len() >= 4, "the log spans segments: {segments:?}");

    let trace_path = cluster.dir().join("restart.strace");
    let trace_file = trace_path.display().to_string();
    cluster.start_node_under(
        1,
        &[
            "strace",
            "-f",
            "-qq",
            "-e",
            "trace=openat,close,fsync,fdatasync,bind",
            "-o",
            &trace_file,
        ],
    );
    cluster.wait_for_leader(&[1]);
    let trace = wait_for_bind(&trace_path);
    let synced = synced_before_first_bind(&trace);
    for segment in &segments {
        assert!(
            synced.contains(segment),
            "{segment} was read without an fsync before the node opened a port; synced: {synced:?}"
        );
    }
    assert!(
        synced.contains(&wal_dir.display().to_string()),
        "the WAL directory was not synced before the node opened a port; synced: {synced:?}"
    );
    let mut client = cluster.connect(1);
    let got: String = redis::cmd("GET").arg("key:19").query(&mut client).unwrap();
    assert_eq!(got, value, "every acknowledged write survived the kill");
}

/// The trace once it shows a `bind` (strace writes it as the node runs).
fn wait_for_bind(path: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let trace = std::fs::read_to_string(path).unwrap_or_default();
        if trace.contains("bind(") {
            return trace;
        }
        assert!(Instant::now() < deadline, "no bind in the trace:\n{trace}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
