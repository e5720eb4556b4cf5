//! The exact messages of a 3-node election from a fixed seed. A change in this snapshot is a
//! change in behaviour: review it, then accept it on purpose (`INSTA_UPDATE=always`).

use std::fmt::Write;
use verity_core::testing::Cluster;
use verity_core::*;

fn describe(body: &MessageBody) -> String {
    match body {
        MessageBody::RequestVote {
            last_log_index,
            last_log_term,
        } => {
            format!("RequestVote last={last_log_index}/{last_log_term}")
        }
        MessageBody::RequestVoteResponse { granted } => {
            format!("RequestVoteResponse granted={granted}")
        }
        MessageBody::AppendEntries {
            prev_log_index,
            prev_log_term,
            entries,
            leader_commit,
        } => {
            let entries: Vec<String> = entries
                .iter()
                .map(|e| format!("{}/{}:{:?}", e.index, e.term, e.payload))
                .collect();
            format!(
                "AppendEntries prev={prev_log_index}/{prev_log_term} commit={leader_commit} entries=[{}]",
                entries.join(", ")
            )
        }
        MessageBody::AppendEntriesResponse(outcome) => format!("AppendEntriesResponse {outcome:?}"),
        MessageBody::PreVote {
            last_log_index,
            last_log_term,
        } => format!("PreVote last={last_log_index}/{last_log_term}"),
        MessageBody::PreVoteResponse { granted } => format!("PreVoteResponse granted={granted}"),
        MessageBody::TimeoutNow => "TimeoutNow".to_string(),
        MessageBody::TransferVote {
            last_log_index,
            last_log_term,
        } => format!("TransferVote last={last_log_index}/{last_log_term}"),
        other => format!("{other:?}"),
    }
}

#[test]
fn a_three_node_election_from_a_fixed_seed_sends_these_messages() {
    let mut c = Cluster::new(3, 2026);
    let mut trace = String::new();
    let mut tick = 0;
    while c.leader().is_none() || !c.in_flight().is_empty() {
        assert!(tick < 200, "no settled leader after 200 ticks");
        if c.in_flight().is_empty() {
            tick += 1;
            for id in [NodeId(1), NodeId(2), NodeId(3)] {
                c.tick(id).unwrap();
            }
            continue;
        }
        let m = c.deliver(0).unwrap();
        writeln!(
            trace,
            "tick {tick:3}  {} -> {} {}  {}",
            m.from,
            m.to,
            m.term,
            describe(&m.body)
        )
        .unwrap();
    }
    writeln!(trace, "leader: {}", c.leader().unwrap()).unwrap();
    insta::assert_snapshot!(trace);
}
