//! A cluster of real `verity node` processes on free loopback ports, for end-to-end tests.
//!
//! Every wait is bounded ([`WAIT`]); a node's output goes to `node-I.log` in the cluster's
//! temporary directory, and failures print where. Processes are killed when the cluster is
//! dropped.

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The longest any test waits for a cluster to reach a state.
pub const WAIT: Duration = Duration::from_secs(30);

/// The `verity` binary built by `cargo test --workspace` (the `verity-node` package's
/// integration tests make cargo build it), or `$VERITY_BIN`.
#[must_use]
pub fn verity_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("VERITY_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("test executable path");
    let target = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/..");
    let binary = target.join("verity");
    assert!(
        binary.exists(),
        "{} is missing: run `cargo test --workspace` (or `cargo build -p verity-node`) first, or set VERITY_BIN",
        binary.display()
    );
    binary
}

/// A loopback port that is free now, below Linux's ephemeral range (32768 and up).
///
/// A port the kernel hands out for `127.0.0.1:0` is an ephemeral port: released and then
/// bound again by a node, it can meanwhile be taken as the source port of some outgoing
/// connection (the nodes dial each other), and the node fails with "address in use". Ports
/// below the ephemeral range are never chosen that way. Each test process walks its own
/// stretch of 20000-32000 (chosen by its pid), skipping ports that are busy.
#[must_use]
pub fn free_port() -> u16 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let base = 20_000 + (std::process::id() % 60) * 200;
    for _ in 0..12_000 {
        let offset = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let port = 20_000 + (base - 20_000 + offset) % 12_000;
        let port = u16::try_from(port).expect("ports below 32000");
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in 20000-32000")
}

/// Real node processes; see the module docs.
pub struct ProcessCluster {
    dir: tempfile::TempDir,
    /// Client address of node `i` at `[i - 1]`.
    pub client_addrs: Vec<SocketAddr>,
    /// Peer address of node `i` at `[i - 1]`.
    pub peer_addrs: Vec<SocketAddr>,
    children: Vec<Option<Child>>,
    /// Whether node `i` has been started before (then it must find its data).
    started: Vec<bool>,
    /// The `default` user's password (`--requirepass` among the flags), for the cluster's
    /// own connections.
    password: Option<String>,
    extra_flags: Vec<String>,
}

impl ProcessCluster {
    /// Starts `nodes` nodes with the given extra flags for each. Unless the flags name a
    /// peer secret or `--insecure-peers`, the nodes share one written into the cluster's
    /// directory.
    #[must_use]
    pub fn start(nodes: usize, extra_flags: &[&str]) -> ProcessCluster {
        let mut extra_flags: Vec<String> = extra_flags.iter().map(|s| (*s).to_string()).collect();
        let dir = tempfile::tempdir().expect("temporary directory");
        if !extra_flags
            .iter()
            .any(|flag| flag == "--peer-secret-file" || flag == "--insecure-peers")
        {
            let path = dir.path().join("peer-secret");
            std::fs::write(&path, "the test cluster's peer secret\n").expect("peer secret");
            extra_flags.push("--peer-secret-file".into());
            extra_flags.push(path.display().to_string());
        }
        let password = extra_flags
            .iter()
            .position(|flag| flag == "--requirepass")
            .and_then(|at| extra_flags.get(at + 1).cloned());
        let mut cluster = ProcessCluster {
            dir,
            client_addrs: (0..nodes)
                .map(|_| SocketAddr::from(([127, 0, 0, 1], free_port())))
                .collect(),
            peer_addrs: (0..nodes)
                .map(|_| SocketAddr::from(([127, 0, 0, 1], free_port())))
                .collect(),
            children: (0..nodes).map(|_| None).collect(),
            started: vec![false; nodes],
            password,
            extra_flags,
        };
        for id in 1..=nodes {
            cluster.start_node(id);
        }
        cluster
    }

    /// The cluster's temporary directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Starts (or restarts) node `id` on its data directory: new the first time, existing
    /// after that.
    pub fn start_node(&mut self, id: usize) {
        self.start_node_under(id, &[]);
    }

    /// Like [`ProcessCluster::start_node`], the node run by `wrapper` (a program and its
    /// arguments, such as `strace -o FILE`) when it is not empty.
    pub fn start_node_under(&mut self, id: usize, wrapper: &[&str]) {
        assert!(self.children[id - 1].is_none(), "node {id} is running");
        let peers: Vec<String> = self
            .peer_addrs
            .iter()
            .enumerate()
            .map(|(i, addr)| format!("{}={addr}", i + 1))
            .collect();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(id))
            .expect("node log file");
        let mut command = match wrapper {
            [] => Command::new(verity_binary()),
            [program, arguments @ ..] => {
                let mut command = Command::new(program);
                command.args(arguments).arg(verity_binary());
                command
            }
        };
        let child = command
            .arg("node")
            .args(["--id", &id.to_string()])
            .arg("--data-dir")
            .arg(self.dir.path().join(format!("node-{id}")))
            .args(["--peer-addr", &self.peer_addrs[id - 1].to_string()])
            .args(["--client-addr", &self.client_addrs[id - 1].to_string()])
            .args(["--peers", &peers.join(",")])
            .args(
                (!self.started[id - 1])
                    .then_some(["--initial-cluster-state", "new"])
                    .into_iter()
                    .flatten(),
            )
            .args(&self.extra_flags)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start verity node");
        self.children[id - 1] = Some(child);
        self.started[id - 1] = true;
    }

    /// Where node `id` logs.
    #[must_use]
    pub fn log_path(&self, id: usize) -> PathBuf {
        self.dir.path().join(format!("node-{id}.log"))
    }

    /// `kill -9` node `id`.
    pub fn kill9(&mut self, id: usize) {
        let mut child = self.children[id - 1].take().expect("node is running");
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
    }

    /// Sends SIGTERM to node `id` and waits (bounded) for it to exit.
    pub fn terminate(&mut self, id: usize) -> ExitStatus {
        let mut child = self.children[id - 1].take().expect("node is running");
        let pid = Pid::from_raw(i32::try_from(child.id()).expect("pid fits"));
        kill(pid, Signal::SIGTERM).expect("SIGTERM");
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "node {id} ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The process id of node `id`, if it runs.
    #[must_use]
    pub fn pid(&self, id: usize) -> Option<u32> {
        self.children[id - 1].as_ref().map(std::process::Child::id)
    }

    /// Whether node `id` is still running (it has not crashed).
    pub fn is_running(&mut self, id: usize) -> bool {
        self.children[id - 1]
            .as_mut()
            .is_some_and(|child| child.try_wait().expect("wait").is_none())
    }

    /// The URL of node `id`'s client port, with the password if the nodes require one.
    fn url(&self, id: usize) -> String {
        let credentials = self
            .password
            .as_ref()
            .map_or(String::new(), |password| format!(":{password}@"));
        format!("redis://{credentials}{}/", self.client_addrs[id - 1])
    }

    /// A connection to node `id`'s client port (authenticated if the nodes require it).
    #[must_use]
    pub fn connect(&self, id: usize) -> redis::Connection {
        let client = redis::Client::open(self.url(id)).expect("redis url");
        let deadline = Instant::now() + WAIT;
        loop {
            match client.get_connection_with_timeout(Duration::from_secs(5)) {
                Ok(connection) => {
                    connection
                        .set_read_timeout(Some(Duration::from_secs(15)))
                        .expect("read timeout");
                    return connection;
                }
                Err(error) => {
                    assert!(
                        Instant::now() < deadline,
                        "cannot connect to node {id}: {error}"
                    );
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
    }

    /// `INFO` of node `id` as `field -> value`, or `None` if it does not answer.
    #[must_use]
    pub fn info(&self, id: usize) -> Option<std::collections::BTreeMap<String, String>> {
        let client = redis::Client::open(self.url(id)).ok()?;
        let mut connection = client
            .get_connection_with_timeout(Duration::from_secs(2))
            .ok()?;
        let text: String = redis::cmd("INFO").query(&mut connection).ok()?;
        Some(
            text.lines()
                .filter_map(|line| line.split_once(':'))
                .map(|(k, v)| (k.to_string(), v.trim().to_string()))
                .collect(),
        )
    }

    /// Waits until the running nodes among `among` agree on one leader; returns its id.
    pub fn wait_for_leader(&self, among: &[usize]) -> usize {
        let deadline = Instant::now() + WAIT;
        loop {
            let infos: Vec<_> = among.iter().map(|&id| (id, self.info(id))).collect();
            let leaders: Vec<usize> = infos
                .iter()
                .filter(|(_, info)| info.as_ref().is_some_and(|i| i["role"] == "leader"))
                .map(|(id, _)| *id)
                .collect();
            if let [leader] = leaders[..] {
                let agreed = infos.iter().all(|(_, info)| {
                    info.as_ref()
                        .is_some_and(|i| i["leader_id"] == leader.to_string())
                });
                if agreed {
                    return leader;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no agreed leader among {among:?} within {WAIT:?}: {infos:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until node `id` has applied at least `index`.
    pub fn wait_for_applied(&self, id: usize, index: u64) {
        let deadline = Instant::now() + WAIT;
        loop {
            let applied = self
                .info(id)
                .and_then(|info| info["applied_index"].parse::<u64>().ok())
                .unwrap_or(0);
            if applied >= index {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "node {id} applied only {applied} of {index} within {WAIT:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ProcessCluster {
    fn drop(&mut self) {
        for child in self.children.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            let dir = self.dir.path().to_path_buf();
            eprintln!("node logs kept in {}", dir.display());
            // Keep the logs of a failed test for inspection.
            let kept = std::mem::replace(&mut self.dir, tempfile::tempdir().expect("tempdir"));
            let _ = kept.keep();
        }
    }
}
