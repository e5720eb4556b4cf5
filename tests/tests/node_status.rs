//! `verity cluster` with metrics (issue 13): it prints the status page's address; every node
//! serves valid Prometheus text at `/metrics` (read back with a Prometheus parser and checked
//! family by family) and its status as JSON; the status page shows every node in headless
//! Chromium and updates itself.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use verity_tests::browser::{render, root_attribute};
use verity_tests::process_cluster::{WAIT, free_port};
use verity_tests::verity_binary;

/// A `verity cluster` process, stopped (SIGTERM, then killed) when dropped.
struct Cluster {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
    }
}

/// The first of `n` consecutive free loopback ports.
fn free_ports(n: u16) -> u16 {
    loop {
        let base = free_port();
        if (1..n).all(|i| {
            base.checked_add(i)
                .is_some_and(|port| TcpListener::bind(("127.0.0.1", port)).is_ok())
        }) {
            return base;
        }
    }
}

/// `GET path` on `port`: the status code and the body.
fn get(port: u16, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("metrics listener");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").expect("a response head");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

/// Starts a 3-node cluster; returns it, its first client port and its first metrics port,
/// once the cluster printed the status page's address.
fn start() -> (Cluster, u16, u16) {
    let dir = tempfile::tempdir().unwrap();
    // One run of nine ports: `free_port` hands out neighbours, so separate runs would overlap.
    let base = free_ports(9);
    let (client, peer, metrics) = (base, base + 3, base + 6);
    let mut child = Command::new(verity_binary())
        .arg("cluster")
        .args(["--nodes", "3"])
        .arg("--dir")
        .arg(dir.path())
        .args(["--client-port", &client.to_string()])
        .args(["--peer-port", &peer.to_string()])
        .args(["--metrics-port", &metrics.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("verity cluster starts");
    let stdout = child.stdout.take().unwrap();
    let cluster = Cluster { child, _dir: dir };
    let (lines_sender, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_sender.send(line).is_err() {
                // Nobody listens any more: keep draining so the cluster never blocks.
                continue;
            }
        }
    });
    let expected = format!("status page http://127.0.0.1:{metrics}/");
    let deadline = Instant::now() + WAIT;
    loop {
        let line = lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("verity cluster prints its status page's address");
        if line.contains(&expected) {
            assert!(
                line.contains(&format!("http://127.0.0.1:{metrics}/metrics")),
                "{line}"
            );
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    (cluster, client, metrics)
}

/// Waits until some node reports itself leader; its index (0-based).
fn wait_for_leader(metrics: u16) -> usize {
    let deadline = Instant::now() + WAIT;
    loop {
        for i in 0..3 {
            if let Ok(stream) = TcpStream::connect(("127.0.0.1", metrics + i as u16)) {
                drop(stream);
                let (_, body) = get(metrics + i as u16, "/status.json");
                let status: serde_json::Value = serde_json::from_str(&body).unwrap();
                if status["role"] == "leader" {
                    return i;
                }
            }
        }
        assert!(Instant::now() < deadline, "no leader within {WAIT:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Checks what the text format requires beyond what the parser does: every sample's family
/// has one `# HELP` and one `# TYPE` line before it, and every histogram's buckets are
/// cumulative, end with `+Inf` and agree with its `_count`.
fn check_families(text: &str) {
    let mut typed: BTreeMap<String, String> = BTreeMap::new();
    let mut helped = std::collections::BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap().to_string();
            assert!(helped.insert(name.clone()), "two HELP lines for {name}");
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(helped.contains(name), "TYPE before HELP for {name}");
            assert!(
                ["counter", "gauge", "histogram"].contains(&kind),
                "{name}: {kind}"
            );
            assert!(
                typed.insert(name.to_string(), kind.to_string()).is_none(),
                "two TYPE lines for {name}"
            );
        } else {
            let name = line.split(['{', ' ']).next().unwrap();
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| {
                    name.strip_suffix(suffix)
                        .filter(|base| typed.get(*base).is_some_and(|k| k == "histogram"))
                })
                .unwrap_or(name);
            assert!(
                typed.contains_key(family),
                "sample {line:?} has no TYPE line"
            );
            assert!(
                name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "metric name {name:?}"
            );
        }
    }
    for (family, _) in typed.iter().filter(|(_, kind)| *kind == "histogram") {
        let value = |line: &str| -> f64 { line.rsplit(' ').next().unwrap().parse().unwrap() };
        let buckets: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with(&format!("{family}_bucket{{")))
            .collect();
        assert!(
            buckets.windows(2).all(|w| value(w[0]) <= value(w[1])),
            "{family}: buckets not cumulative"
        );
        let last = buckets.last().expect("a histogram has buckets");
        assert!(
            last.contains("le=\"+Inf\""),
            "{family}: no +Inf bucket last"
        );
        let count = text
            .lines()
            .find(|l| l.starts_with(&format!("{family}_count ")))
            .expect("a histogram has a count");
        assert_eq!(
            value(last),
            value(count),
            "{family}: +Inf bucket and count differ"
        );
    }
}

#[test]
fn a_cluster_serves_valid_prometheus_metrics_and_a_live_status_page() {
    let (_cluster, client, metrics) = start();
    let leader = wait_for_leader(metrics);

    // Some traffic, through a follower too (forwarded), and one error.
    let follower = (leader + 1) % 3;
    let redis =
        redis::Client::open(format!("redis://127.0.0.1:{}/", client + follower as u16)).unwrap();
    let mut connection = redis.get_connection().unwrap();
    for i in 0..20 {
        let _: () = redis::cmd("SET")
            .arg(format!("k{i}"))
            .arg(i)
            .query(&mut connection)
            .unwrap();
    }
    let error: redis::RedisResult<i64> = redis::cmd("INCR")
        .arg("k1x")
        .arg("extra")
        .query(&mut connection);
    assert!(error.is_err());
    // Followers learn the commit index with the leader's next message.
    let deadline = Instant::now() + WAIT;
    while !(0..3u16).all(|i| {
        let (_, body) = get(metrics + i, "/status.json");
        let status: serde_json::Value = serde_json::from_str(&body).unwrap();
        status["commit"].as_u64().unwrap() >= 20
    }) {
        assert!(
            Instant::now() < deadline,
            "the writes did not commit everywhere"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let mut leaders = 0.0;
    let mut samples_by_node = Vec::new();
    for i in 0..3u16 {
        let (status, text) = get(metrics + i, "/metrics");
        assert_eq!(status, 200);
        check_families(&text);
        let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
            .expect("valid Prometheus text");
        let value = |name: &str, labels: &[(&str, &str)]| -> Option<f64> {
            scrape
                .samples
                .iter()
                .find(|s| {
                    s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
                })
                .map(|s| match s.value {
                    prometheus_parse::Value::Counter(v)
                    | prometheus_parse::Value::Gauge(v)
                    | prometheus_parse::Value::Untyped(v) => v,
                    _ => f64::NAN,
                })
        };
        leaders += value("verity_role", &[("role", "leader")]).unwrap();
        assert!(value("verity_term", &[]).unwrap() >= 1.0);
        assert!(value("verity_commit_index", &[]).unwrap() >= 20.0);
        assert!(value("verity_applied_index", &[]).unwrap() >= 1.0);
        let histograms: Vec<&str> = scrape
            .samples
            .iter()
            .filter(|s| matches!(s.value, prometheus_parse::Value::Histogram(_)))
            .map(|s| s.metric.as_str())
            .collect();
        assert!(
            histograms.contains(&"verity_wal_fsync_seconds"),
            "{histograms:?}"
        );
        assert!(
            histograms.contains(&"verity_wal_records_per_sync"),
            "{histograms:?}"
        );
        samples_by_node.push((
            i as usize,
            text,
            value("verity_wal_syncs_total", &[]).unwrap(),
        ));
        if i as usize == leader {
            for peer in (1..=3).filter(|p| p - 1 != leader) {
                let peer = peer.to_string();
                assert!(value("verity_peer_match_index", &[("peer", &peer)]).unwrap() >= 20.0);
                assert!(value("verity_peer_lag_entries", &[("peer", &peer)]).is_some());
            }
            assert!(value("verity_elections_won_total", &[]).unwrap() >= 1.0);
        }
        if i as usize == follower {
            assert_eq!(
                value("verity_commands_total", &[("command", "set")]),
                Some(20.0)
            );
            assert_eq!(
                value("verity_command_errors_total", &[("command", "incr")]),
                Some(1.0)
            );
            assert_eq!(value("verity_connected_clients", &[]), Some(1.0));
        }
    }
    assert_eq!(leaders, 1.0, "exactly one node says it leads");
    assert!(
        samples_by_node.iter().all(|(_, _, syncs)| *syncs >= 1.0),
        "fsyncs counted"
    );

    let (status, _) = get(metrics, "/nowhere");
    assert_eq!(status, 404);

    // The status page, served by node 1, shows all three nodes and updates itself.
    let url = format!("http://127.0.0.1:{metrics}/");
    let dom = render(&url, 4000);
    assert_eq!(root_attribute(&dom, "data-error"), None, "script error");
    assert_eq!(
        root_attribute(&dom, "data-rendered").as_deref(),
        Some("3"),
        "{dom}"
    );
    let updates: u32 = root_attribute(&dom, "data-updates")
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        updates >= 2,
        "the page polled {updates} times in 4 s of virtual time"
    );
    for node in 1..=3 {
        assert!(dom.contains(&format!("data-node=\"{node}\"")));
    }
    assert!(dom.contains("class=\"leader\">leader</span>"));
}
