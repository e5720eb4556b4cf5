//! Every committed fuzz input, replayed on stable Rust through the very functions the fuzz
//! targets call: the seed corpora (`fuzz/corpus/NAME/`) and every crash ever found
//! (`fuzz/regressions/NAME/`). CI has no nightly; this keeps what the fuzzers taught fixed.

use std::path::Path;

type Target = fn(&[u8]);

const TARGETS: [(&str, Target); 8] = [
    ("peer_frame", verity_engine::envelope::fuzz_peer_frame),
    ("wal_recover", verity_core::fuzzing::wal_recover),
    ("snapshot_image", verity_core::fuzzing::snapshot_image),
    ("core_step", verity_core::fuzzing::core_step),
    ("scenario_parse", verity_sim::fuzzing::scenario_parse),
    ("history_check", verity_sim::fuzzing::history_check),
    ("resp_parse", verity_engine::resp::fuzz_parse),
    ("metrics_request", verity_node::http::fuzz_request),
];

fn inputs(folder: &str, target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz")
        .join(folder)
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut inputs: Vec<(String, Vec<u8>)> = entries
        .map(|e| e.unwrap().path())
        .map(|path| (path.display().to_string(), std::fs::read(&path).unwrap()))
        .collect();
    inputs.sort();
    inputs
}

#[test]
fn every_committed_corpus_and_regression_input_passes_its_target() {
    for (name, target) in TARGETS {
        let corpus = inputs("corpus", name);
        assert!(
            !corpus.is_empty(),
            "fuzz/corpus/{name}/ holds the seed corpus"
        );
        for (path, data) in corpus.iter().chain(&inputs("regressions", name)) {
            let result = std::panic::catch_unwind(|| target(data));
            assert!(result.is_ok(), "{path} fails target {name}");
        }
    }
}

/// Regenerates the seed corpora (`cargo test -p verity-tests --test fuzz_corpora -- --ignored`).
#[test]
#[ignore = "writes fuzz/corpus; run by hand when the formats change"]
fn write_seed_corpora() {
    use verity_core::codec;
    use verity_core::wal::{Encoder, WalRecord};
    use verity_core::*;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    let write = |target: &str, name: &str, bytes: &[u8]| {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    };
    let entry = |index, term| Entry {
        index: LogIndex(index),
        term: Term(term),
        payload: EntryPayload::Noop,
    };
    let messages = [
        MessageBody::RequestVote {
            last_log_index: LogIndex(3),
            last_log_term: Term(2),
        },
        MessageBody::RequestVoteResponse { granted: true },
        MessageBody::AppendEntries {
            prev_log_index: LogIndex(1),
            prev_log_term: Term(1),
            entries: vec![entry(2, 2), entry(3, 2)],
            leader_commit: LogIndex(1),
        },
        MessageBody::AppendEntriesResponse(AppendOutcome::Accepted {
            match_index: LogIndex(3),
        }),
        MessageBody::AppendEntriesResponse(AppendOutcome::Rejected {
            rejected_index: LogIndex(5),
            hint_index: LogIndex(2),
            hint_term: Term(1),
        }),
        MessageBody::PreVote {
            last_log_index: LogIndex(3),
            last_log_term: Term(2),
        },
        MessageBody::PreVoteResponse { granted: false },
        MessageBody::TimeoutNow,
        MessageBody::TransferVote {
            last_log_index: LogIndex(3),
            last_log_term: Term(2),
        },
    ];
    for (i, body) in messages.into_iter().enumerate() {
        let message = Message {
            from: NodeId(1),
            to: NodeId(2),
            term: Term(2),
            body,
        };
        write(
            "peer_frame",
            &format!("message-{i}"),
            &codec::encode(&message).unwrap(),
        );
    }
    let forwards = [
        verity_engine::envelope::PeerFrame::Forward {
            id: 7,
            op: ClientOp::OpenSession {
                token: SessionToken([1; 16]),
            },
        },
        verity_engine::envelope::PeerFrame::ForwardReply {
            id: 7,
            result: verity_engine::envelope::ForwardResult::NotLeader {
                leader: Some(NodeId(3)),
            },
        },
    ];
    for (i, frame) in forwards.iter().enumerate() {
        write(
            "peer_frame",
            &format!("forward-{i}"),
            &codec::encode(frame).unwrap(),
        );
    }
    let mut log = Vec::new();
    let mut encoder = Encoder::default();
    for (i, entries) in [
        vec![entry(1, 1)],
        vec![entry(2, 1), entry(3, 2)],
        vec![entry(3, 3)],
    ]
    .into_iter()
    .enumerate()
    {
        let hard_state = Some(HardState {
            term: Term(i as u64 + 1),
            vote: Some(NodeId(1)),
            commit: LogIndex(1),
        });
        encoder
            .encode(
                &WalRecord {
                    snapshot: None,
                    hard_state,
                    entries,
                },
                &mut log,
            )
            .unwrap();
        encoder.mark_durable(encoder.next_sequence());
    }
    let mut machine =
        kv::StateMachine::new(Config::new(NodeId(1), [NodeId(1)], 0).sessions, 1 << 20);
    machine.apply(
        LogIndex(1),
        1_000,
        Some(&ClientOp::OpenSession {
            token: SessionToken([3; 16]),
        }),
    );
    write("snapshot_image", "one-session", &machine.image());
    let mut marked = Vec::new();
    let mut encoder = Encoder::default();
    encoder
        .encode_ready(
            Some(SnapshotMeta {
                index: LogIndex(2),
                term: Term(1),
            }),
            Some(HardState::default()),
            vec![entry(3, 1)],
            &mut marked,
        )
        .unwrap();
    write("wal_recover", "snapshot-marker", &marked);
    write("wal_recover", "three-records", &log);
    write("wal_recover", "torn", &log[..log.len() - 5]);
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for i in 0..8 {
        let bytes: Vec<u8> = (0..256)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        write("core_step", &format!("random-{i}"), &bytes);
    }
    let commands: [&[u8]; 5] = [
        b"*3\r\n$3\r\nSET\r\n$5\r\nhello\r\n$5\r\nworld\r\n",
        b"SET hello world\r\nGET hello\r\n",
        b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nPING\r\n",
        b"set k \"two words\" nx\n",
        b"*4\r\n$3\r\nCAS\r\n$1\r\nk\r\n$0\r\n\r\n$1\r\nv\r\n",
    ];
    for (i, command) in commands.into_iter().enumerate() {
        write("resp_parse", &format!("command-{i}"), command);
    }
    let scenarios = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    for entry in std::fs::read_dir(scenarios).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            write(
                "scenario_parse",
                path.file_name().unwrap().to_str().unwrap(),
                &std::fs::read(&path).unwrap(),
            );
        }
    }
    let example = "{\"process\":0,\"type\":\"invoke\",\"f\":\"put\",\"key\":\"x\",\"value\":\"1\",\"time\":100}\n{\"process\":1,\"type\":\"invoke\",\"f\":\"get\",\"key\":\"x\",\"value\":null,\"time\":120}\n{\"process\":0,\"type\":\"ok\",\"f\":\"put\",\"key\":\"x\",\"value\":\"1\",\"time\":900}\n{\"process\":1,\"type\":\"ok\",\"f\":\"get\",\"key\":\"x\",\"value\":\"1\",\"time\":950}\n{\"process\":2,\"type\":\"invoke\",\"f\":\"cas\",\"key\":\"x\",\"value\":[\"1\",\"2\"],\"time\":1000}\n{\"process\":2,\"type\":\"info\",\"f\":\"cas\",\"key\":\"x\",\"time\":5000}\n";
    write("history_check", "spec-example", example.as_bytes());
    let requests: [&[u8]; 5] = [
        b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9001\r\nAccept: */*\r\n\r\n",
        b"HEAD /status.json?t=1 HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.0\r\nUser-Agent: curl/8\r\n\r\n",
        b"POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
        b"GET /metrics HTTP/1.1\r\nHost",
    ];
    for (i, request) in requests.into_iter().enumerate() {
        write("metrics_request", &format!("request-{i}"), request);
    }
    for seed in 0..6 {
        let shape = verity_sim::generate::Shape {
            processes: 3,
            keys: 1,
            operations: 6,
            info_per_mille: 200,
        };
        write(
            "history_check",
            &format!("generated-{seed}"),
            verity_sim::generate::linearizable_history(shape, seed)
                .to_json_lines()
                .as_bytes(),
        );
    }
}
