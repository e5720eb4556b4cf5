//! The stock Redis tools against a real 3-node cluster: `redis-cli` commands (including the
//! ones it sends by itself), `redis-benchmark` (`-t set,get`, and pipelined `-P 16` SET, GET,
//! INCR, MSET and GETSET) against a follower without an error, a `redis` crate pipeline of
//! every command Verity runs, and `verity bench`, which speaks the same protocol; and
//! `redis-cli` against nodes that require a password or an ACL user, and over TLS.
//! Needs redis-tools installed (`.ci/run` installs it).

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use verity_tests::ProcessCluster;
use verity_tests::certificates::Ca;

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

    let benchmark = |args: &[&str]| {
        let mut full = vec!["-p", port.as_str(), "-q", "-n", "10000"];
        full.extend_from_slice(args);
        let output = run("redis-benchmark", &full, Duration::from_secs(120));
        assert!(!output.to_lowercase().contains("error"), "{output}");
        output
    };
    let output = benchmark(&["-t", "set,get"]);
    let pipelined = benchmark(&["-P", "16", "-t", "set,get,incr,mset"]);
    let getset = benchmark(&["-P", "16", "GETSET", "key:__rand_int__", "v"]);
    for (output, tests) in [
        (&output, &["SET", "GET"][..]),
        (&pipelined, &["SET", "GET", "INCR", "MSET (10 keys)"][..]),
        (&getset, &["GETSET key:__rand_int__ v"][..]),
    ] {
        for test in tests {
            assert!(
                output.contains(&format!("{test}: ")) && output.contains("requests per second"),
                "{output}"
            );
        }
    }
}

/// Every command Verity runs, through a client library's pipeline against a follower: each
/// answers as Redis would.
#[test]
fn a_redis_crate_pipeline_of_every_command_runs_against_a_follower() {
    let cluster = ProcessCluster::start(3, &[]);
    let leader = cluster.wait_for_leader(&[1, 2, 3]);
    let follower = if leader == 1 { 2 } else { 1 };
    let mut connection = cluster.connect(follower);
    let mut pipe = redis::pipe();
    let commands: &[&[&str]] = &[
        &["SET", "s", "hello"],
        &["SET", "s", "x", "NX"],
        &["SET", "s", "world", "XX", "GET"],
        &["SET", "t", "1", "EX", "100"],
        &["SET", "t", "2", "KEEPTTL"],
        &["SET", "u", "v", "EXAT", "4102444800"],
        &["SET", "u", "w", "PXAT", "4102444800000"],
        &["SETNX", "s", "no"],
        &["SETEX", "e", "100", "v"],
        &["PSETEX", "p", "100000", "v"],
        &["GETSET", "s", "again"],
        &["GETDEL", "p"],
        &["GETEX", "e", "PERSIST"],
        &["STRLEN", "s"],
        &["GETRANGE", "s", "0", "2"],
        &["SETRANGE", "s", "0", "A"],
        &["APPEND", "s", "!"],
        &["MSET", "m1", "1", "m2", "2"],
        &["MSETNX", "m1", "x", "m3", "3"],
        &["MGET", "m1", "m2", "m3"],
        &["INCR", "n"],
        &["INCRBY", "n", "10"],
        &["DECR", "n"],
        &["DECRBY", "n", "3"],
        &["INCRBYFLOAT", "f", "1.5"],
        &["EXISTS", "m1", "m2", "nope"],
        &["TYPE", "m1"],
        &["EXPIRE", "m1", "100"],
        &["PEXPIRE", "m1", "100000", "GT"],
        &["EXPIREAT", "m2", "4102444800"],
        &["PEXPIREAT", "m2", "4102444800000"],
        &["TTL", "m1"],
        &["PTTL", "m1"],
        &["EXPIRETIME", "m2"],
        &["PERSIST", "m1"],
        &["DBSIZE"],
        &["KEYS", "m*"],
        &["SCAN", "0", "MATCH", "m*", "COUNT", "100"],
        &["RANDOMKEY"],
        &["CAS", "s", "Again!", "cas"],
        &["GETVER", "s"],
        &["DEL", "m1", "nope"],
        &["UNLINK", "m2"],
        &["COMMAND", "COUNT"],
        &["FLUSHDB"],
        &["FLUSHALL"],
    ];
    for command in commands {
        pipe.cmd(command[0]).arg(&command[1..]);
    }
    let replies: Vec<redis::Value> = pipe.query(&mut connection).expect("no command fails");
    assert_eq!(replies.len(), commands.len());
    let shown: Vec<String> = commands
        .iter()
        .zip(&replies)
        .map(|(command, reply)| format!("{} -> {reply:?}", command.join(" ")))
        .collect();
    let expect = |index: usize, wanted: redis::Value| {
        assert_eq!(replies[index], wanted, "{}", shown[index]);
    };
    use redis::Value::{BulkString as Bulk, Int, Nil, Okay};
    expect(1, Nil);
    expect(2, Bulk(b"hello".to_vec()));
    expect(7, Int(0));
    expect(10, Bulk(b"world".to_vec()));
    expect(13, Int(5));
    expect(14, Bulk(b"aga".to_vec()));
    expect(16, Int(6));
    expect(18, Int(0));
    expect(20, Int(1));
    expect(21, Int(11));
    expect(23, Int(7));
    expect(24, Bulk(b"1.5".to_vec()));
    expect(25, Int(2));
    expect(39, Int(1));
    expect(44, Okay);

    // A transaction with WATCH through the same follower.
    let _: () = redis::cmd("SET")
        .arg("w")
        .arg("1")
        .query(&mut connection)
        .unwrap();
    let _: () = redis::cmd("WATCH").arg("w").query(&mut connection).unwrap();
    let (incremented, read): (i64, String) = redis::pipe()
        .atomic()
        .cmd("INCR")
        .arg("w")
        .cmd("GET")
        .arg("w")
        .query(&mut connection)
        .unwrap();
    assert_eq!((incremented, read.as_str()), (2, "2"));
}

#[test]
fn redis_cli_authenticates_with_requirepass_and_acl_users() {
    // Issue 11, failure 6: AUTH was unknown and HELLO 2 AUTH accepted any password.
    let acl = tempfile::tempdir().unwrap();
    let acl_file = acl.path().join("users.acl");
    std::fs::write(&acl_file, "user alice on >wonderland ~* +@all\n").unwrap();
    let acl_path = acl_file.display().to_string();
    let cluster = ProcessCluster::start(3, &["--requirepass", "sesame", "--acl-file", &acl_path]);
    let leader = cluster.wait_for_leader(&[1, 2, 3]);
    let port = cluster.client_addrs[leader - 1].port().to_string();
    let cli = |args: &[&str]| {
        let mut full = vec!["-p", port.as_str(), "--no-auth-warning"];
        full.extend_from_slice(args);
        let output = Command::new("redis-cli")
            .args(&full)
            .output()
            .expect("redis-cli (install redis-tools)");
        String::from_utf8_lossy(&output.stdout)
            .trim_end()
            .to_string()
            + &String::from_utf8_lossy(&output.stderr)
    };
    assert!(cli(&["SET", "k", "v"]).contains("NOAUTH Authentication required"));
    assert!(cli(&["-a", "wrong", "SET", "k", "v"]).contains("WRONGPASS"));
    assert_eq!(cli(&["-a", "sesame", "SET", "k", "v"]), "OK");
    assert_eq!(
        cli(&["--user", "alice", "--pass", "wonderland", "GET", "k"]),
        "v"
    );
    assert!(cli(&["--user", "alice", "--pass", "sesame", "GET", "k"]).contains("WRONGPASS"));
    assert!(cli(&["-2", "HELLO", "2", "AUTH", "default", "nope"]).contains("WRONGPASS"));
    let mut connection = cluster.connect(leader);
    let value: String = redis::cmd("GET").arg("k").query(&mut connection).unwrap();
    assert_eq!(value, "v", "the redis crate authenticates from the URL");
}

#[test]
fn redis_cli_speaks_tls_to_the_tls_client_port() {
    // Issue 11, failure 6: no TLS for clients. A certificate made here, redis-cli --tls.
    let certificates = tempfile::tempdir().unwrap();
    let made =
        rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert_file = certificates.path().join("cert.pem");
    let key_file = certificates.path().join("key.pem");
    std::fs::write(&cert_file, made.cert.pem()).unwrap();
    std::fs::write(&key_file, made.key_pair.serialize_pem()).unwrap();
    let tls_port = verity_tests::process_cluster::free_port().to_string();
    let tls_addr = format!("127.0.0.1:{tls_port}");
    let (cert, key) = (
        cert_file.display().to_string(),
        key_file.display().to_string(),
    );
    let cluster = ProcessCluster::start(
        1,
        &[
            "--tls-client-addr",
            &tls_addr,
            "--tls-cert-file",
            &cert,
            "--tls-key-file",
            &key,
        ],
    );
    cluster.wait_for_leader(&[1]);
    let tls = |args: &[&str]| {
        let mut full = vec!["--tls", "--cacert", cert.as_str(), "-h", "127.0.0.1", "-p"];
        full.push(tls_port.as_str());
        full.extend_from_slice(args);
        run("redis-cli", &full, Duration::from_secs(30))
            .trim_end()
            .to_string()
    };
    assert_eq!(tls(&["SET", "over", "tls"]), "OK");
    assert_eq!(tls(&["GET", "over"]), "tls");
    let plain = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", tls_port.as_str(), "PING"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&plain.stdout) + String::from_utf8_lossy(&plain.stderr);
    assert!(
        !said.contains("PONG"),
        "plain text is not served on the TLS port: {said}"
    );
}

/// A node process that is killed when the test ends, however it ends.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_tls_only_node_serves_only_clients_whose_certificate_its_ca_issued() {
    // Redis's `port 0` with `tls-auth-clients yes`: no plain-text client port, and a TLS
    // client must present a certificate from the configured CA.
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new(dir.path(), "ca");
    let server = ca.issue(dir.path(), "server");
    let client = ca.issue(dir.path(), "client");
    let stranger = Ca::new(dir.path(), "other-ca").issue(dir.path(), "stranger");
    let port = verity_tests::process_cluster::free_port().to_string();
    let peer = format!("127.0.0.1:{}", verity_tests::process_cluster::free_port());
    let _node = Killed(
        Command::new(verity_tests::verity_binary())
            .args(["node", "--id", "1", "--initial-cluster-state", "new"])
            .arg("--data-dir")
            .arg(dir.path().join("node-1"))
            .args(["--peer-addr", &peer, "--peers", &format!("1={peer}")])
            .arg("--insecure-peers")
            .args(["--tls-client-addr", &format!("127.0.0.1:{port}")])
            .args(["--tls-cert-file", &server.cert_file])
            .args(["--tls-key-file", &server.key_file])
            .args(["--tls-ca-cert-file", &ca.cert_file])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let cli = |certificate: Option<&verity_tests::certificates::Issued>, args: &[&str]| {
        let mut full = vec!["--tls", "--cacert", ca.cert_file.as_str()];
        if let Some(certificate) = certificate {
            full.extend([
                "--cert",
                &certificate.cert_file,
                "--key",
                &certificate.key_file,
            ]);
        }
        full.extend(["-h", "127.0.0.1", "-p", port.as_str()]);
        full.extend_from_slice(args);
        let output = Command::new("redis-cli").args(&full).output().unwrap();
        String::from_utf8_lossy(&output.stdout)
            .trim_end()
            .to_string()
            + &String::from_utf8_lossy(&output.stderr)
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let said = cli(Some(&client), &["SET", "k", "over tls"]);
        if said == "OK" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the TLS-only node never served: {said}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(cli(Some(&client), &["GET", "k"]), "over tls");
    let without = cli(None, &["GET", "k"]);
    assert!(
        !without.contains("over tls"),
        "served without a certificate: {without}"
    );
    let foreign = cli(Some(&stranger), &["GET", "k"]);
    assert!(
        !foreign.contains("over tls"),
        "served a certificate from another CA: {foreign}"
    );
}
