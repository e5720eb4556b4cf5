//! The frame codec on arbitrary input: never a panic, and what decodes re-encodes identically.

use proptest::prelude::*;
use verity_core::codec::{self, DecodeError};
use verity_core::kv::cmd::Expect;
use verity_core::*;

fn term() -> impl Strategy<Value = Term> {
    (0u64..5).prop_map(Term)
}

fn index() -> impl Strategy<Value = LogIndex> {
    (0u64..50).prop_map(LogIndex)
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..8)
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        bytes().prop_map(Command::get),
        (bytes(), bytes()).prop_map(|(key, value)| Command::set(key, value)),
        bytes().prop_map(Command::del),
        (
            bytes(),
            prop::option::of(bytes()),
            prop::option::of(bytes())
        )
            .prop_map(|(key, want, new)| Command::cas(
                key,
                want.map_or(Expect::Absent, Expect::Value),
                new
            )),
        (bytes(), bytes()).prop_map(|(key, value)| Command::append(key, value)),
        (bytes(), any::<i64>()).prop_map(|(key, delta)| Command::incr_by(key, delta)),
    ]
}

fn entry() -> impl Strategy<Value = Entry> {
    let payload = prop_oneof![
        Just(EntryPayload::Noop),
        (any::<[u8; 16]>(), any::<u64>()).prop_map(|(token, time_ms)| EntryPayload::Client {
            op: ClientOp::OpenSession {
                token: SessionToken(token)
            },
            time_ms
        }),
        (any::<u64>(), any::<u64>(), command(), any::<u64>()).prop_map(
            |(c, s, command, time_ms)| EntryPayload::Client {
                op: ClientOp::Request(ClientRequest {
                    client: ClientId(c),
                    token: SessionToken::default(),
                    may_skip_earlier: false,
                    sequence: Sequence(s),
                    command,
                }),
                time_ms
            }
        ),
    ];
    (index(), term(), payload).prop_map(|(index, term, payload)| Entry {
        index,
        term,
        payload,
    })
}

fn message() -> impl Strategy<Value = Message> {
    let body = prop_oneof![
        (index(), term()).prop_map(|(last_log_index, last_log_term)| MessageBody::RequestVote {
            last_log_index,
            last_log_term
        }),
        any::<bool>().prop_map(|granted| MessageBody::RequestVoteResponse { granted }),
        (
            index(),
            term(),
            prop::collection::vec(entry(), 0..4),
            index()
        )
            .prop_map(|(p, t, entries, c)| {
                MessageBody::AppendEntries {
                    prev_log_index: p,
                    prev_log_term: t,
                    entries,
                    leader_commit: c,
                }
            }),
        index().prop_map(|match_index| MessageBody::AppendEntriesResponse(
            AppendOutcome::Accepted { match_index }
        )),
        (index(), index(), term()).prop_map(|(rejected_index, hint_index, hint_term)| {
            MessageBody::AppendEntriesResponse(AppendOutcome::Rejected {
                rejected_index,
                hint_index,
                hint_term,
            })
        }),
    ];
    (1u64..6, 1u64..6, term(), body).prop_map(|(from, to, term, body)| Message {
        from: NodeId(from),
        to: NodeId(to),
        term,
        body,
    })
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_the_decoder(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = codec::decode::<Message>(&bytes);
    }

    #[test]
    fn arbitrary_payloads_with_a_valid_checksum_decode_or_fail_cleanly(payload in prop::collection::vec(any::<u8>(), 0..256)) {
        let mut frame = (payload.len() as u32).to_le_bytes().to_vec();
        frame.extend_from_slice(&crc32fast_hash(&payload).to_le_bytes());
        frame.extend_from_slice(&payload);
        match codec::decode::<Message>(&frame) {
            Ok(decoded) => prop_assert_eq!(codec::encode(&decoded.value).unwrap(), frame, "canonical encoding"),
            Err(error) => prop_assert!(matches!(error, DecodeError::Malformed { .. }), "{error:?}"),
        }
    }

    #[test]
    fn every_message_round_trips_through_a_frame(m in message()) {
        let frame = codec::encode(&m).unwrap();
        let decoded = codec::decode::<Message>(&frame).unwrap();
        prop_assert_eq!(decoded.frame_bytes, frame.len());
        prop_assert_eq!(decoded.value, m);
    }
}

/// The IEEE crc32 the codec uses, computed independently of it (bitwise, no table).
fn crc32fast_hash(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
