//! Limits in bytes, against real node processes (issue 11, failure 7): what a client can make
//! a node hold is bounded by bytes, not by counts of items.
//!
//! - A client that pipelines large reads and reads none of the replies is disconnected once
//!   its unwritten replies pass the output buffer limit; other clients are served on.
//! - One `MGET`, and one transaction of many reads, carry at most 64 of the largest values.
//! - A large command sent in small pieces is parsed whole (the parser keeps its place, so a
//!   slow sender costs linear work; `resp::tests` holds it to that).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use verity_tests::ProcessCluster;

/// Reads from `stream` until the node closes it (or `within` passes); returns the bytes read
/// and whether it was closed.
fn read_until_closed(stream: &mut TcpStream, within: Duration) -> (usize, bool) {
    let deadline = Instant::now() + within;
    let mut scratch = vec![0; 1 << 20];
    let mut read = 0;
    while Instant::now() < deadline {
        match stream.read(&mut scratch) {
            Ok(0) => return (read, true),
            Ok(n) => read += n,
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => {
                return (read, true);
            }
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(error) => panic!("reading: {error}"),
        }
    }
    (read, false)
}

#[test]
fn a_client_that_does_not_read_its_replies_is_disconnected_at_the_output_limit() {
    let cluster = ProcessCluster::start(1, &["--client-output-buffer-limit", "8mb 0 0"]);
    cluster.wait_for_leader(&[1]);
    let mut client = cluster.connect(1);
    let value = vec![b'v'; 1 << 20];
    let () = redis::cmd("SET")
        .arg("big")
        .arg(&value)
        .query(&mut client)
        .unwrap();
    let limit: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("client-output-buffer-limit")
        .query(&mut client)
        .unwrap();
    assert_eq!(
        limit,
        ["client-output-buffer-limit", "normal 8388608 0 0"],
        "the limit is reported as Redis reports it"
    );

    // 64 GETs of 1 MiB: 64 MiB of replies, far more than the 8 MiB limit plus what the
    // loopback socket buffers hold.
    let mut greedy = TcpStream::connect(cluster.client_addrs[0]).unwrap();
    greedy.write_all(&b"GET big\r\n".repeat(64)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let info = cluster.info(1).expect("the node answers INFO");
        if info["client_output_buffer_limit_disconnections"] == "1" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the greedy client was not disconnected: {info:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    greedy
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let (read, closed) = read_until_closed(&mut greedy, Duration::from_secs(10));
    assert!(closed, "the node closed the greedy connection");
    assert!(
        read < 40 << 20,
        "the greedy client got {read} bytes: most of its replies were dropped, not sent"
    );

    let got: Vec<u8> = redis::cmd("GET").arg("big").query(&mut client).unwrap();
    assert_eq!(got, value, "other clients are served on");
}

#[test]
fn one_read_and_one_transaction_carry_at_most_64_of_the_largest_values() {
    let cluster = ProcessCluster::start(1, &["--max-value-bytes", "1024"]);
    cluster.wait_for_leader(&[1]);
    let mut client = cluster.connect(1);
    let value = "v".repeat(1024);
    let keys: Vec<String> = (0..70).map(|key| format!("key:{key:02}")).collect();
    for key in &keys {
        let () = redis::cmd("SET")
            .arg(key)
            .arg(&value)
            .query(&mut client)
            .unwrap();
    }
    let error = redis::cmd("MGET")
        .arg(&keys)
        .query::<Vec<String>>(&mut client)
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("the reply would carry 71680 bytes, over the limit of 65536"),
        "{error}"
    );
    let values: Vec<String> = redis::cmd("MGET")
        .arg(&keys[..64])
        .query(&mut client)
        .unwrap();
    assert_eq!(values.len(), 64);

    // On a plain socket: the redis crate turns an error inside EXEC's array into an error of
    // the whole reply.
    let mut raw = TcpStream::connect(cluster.client_addrs[0]).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let queued: String = keys.iter().map(|key| format!("GET {key}\r\n")).collect();
    raw.write_all(format!("MULTI\r\n{queued}INCR after\r\nEXEC\r\n").as_bytes())
        .unwrap();
    let dropped = "-ERR the transaction's replies carry more than 65536 bytes";
    let mut answer = Vec::new();
    let mut scratch = [0; 64 << 10];
    while String::from_utf8_lossy(&answer).matches(dropped).count() < 7 {
        let read = raw.read(&mut scratch).unwrap();
        assert!(
            read > 0,
            "closed early: {}",
            String::from_utf8_lossy(&answer)
        );
        answer.extend_from_slice(&scratch[..read]);
    }
    let answer = String::from_utf8(answer).unwrap();
    assert_eq!(answer.matches("+QUEUED\r\n").count(), 71);
    let exec = &answer[answer.find("*71\r\n").expect("EXEC's array of 71 replies")..];
    assert_eq!(
        exec.matches("$1024\r\n").count(),
        64,
        "64 values fit in the limit"
    );
    let after: i64 = redis::cmd("GET").arg("after").query(&mut client).unwrap();
    assert_eq!(after, 1, "the write past the limit took effect, once");
}

#[test]
fn a_large_command_sent_in_small_pieces_is_parsed_whole() {
    let cluster = ProcessCluster::start(1, &[]);
    cluster.wait_for_leader(&[1]);
    let value = vec![b'x'; 1 << 20];
    let mut command = format!("*3\r\n$3\r\nSET\r\n$4\r\nslow\r\n${}\r\n", value.len()).into_bytes();
    command.extend_from_slice(&value);
    command.extend_from_slice(b"\r\n");
    let mut slow = TcpStream::connect(cluster.client_addrs[0]).unwrap();
    slow.set_nodelay(true).unwrap();
    for piece in command.chunks(512) {
        slow.write_all(piece).unwrap();
    }
    slow.set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let mut answer = [0; 5];
    slow.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"+OK\r\n");
    let mut client = cluster.connect(1);
    let got: Vec<u8> = redis::cmd("GET").arg("slow").query(&mut client).unwrap();
    assert_eq!(got, value);
}
