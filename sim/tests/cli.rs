//! The `verity-sim` binary as a user runs it: exit codes and outputs.

use std::path::PathBuf;
use std::process::{Command, Output};

fn verity_sim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_verity-sim"))
        .args(args)
        .output()
        .expect("runs")
}

fn temp_file(name: &str, contents: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("verity-sim-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn check_exits_0_1_3_for_linearizable_violating_and_malformed_histories() {
    let good = temp_file(
        "good.jsonl",
        "{\"process\":0,\"type\":\"invoke\",\"f\":\"put\",\"key\":\"x\",\"value\":\"1\"}\n{\"process\":0,\"type\":\"ok\",\"f\":\"put\",\"key\":\"x\",\"value\":\"1\"}\n",
    );
    assert_eq!(
        verity_sim(&["check", good.to_str().unwrap()]).status.code(),
        Some(0)
    );

    let bad = temp_file(
        "bad.jsonl",
        "{\"process\":0,\"type\":\"invoke\",\"f\":\"put\",\"key\":\"x\",\"value\":\"1\"}\n{\"process\":0,\"type\":\"ok\",\"f\":\"put\",\"key\":\"x\",\"value\":\"1\"}\n{\"process\":1,\"type\":\"invoke\",\"f\":\"get\",\"key\":\"x\",\"value\":null}\n{\"process\":1,\"type\":\"ok\",\"f\":\"get\",\"key\":\"x\",\"value\":\"2\"}\n",
    );
    let output = verity_sim(&["check", bad.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stdout(&output).contains("key \"x\" is not linearizable"),
        "{}",
        stdout(&output)
    );
    let json = verity_sim(&["check", "--json", bad.to_str().unwrap()]);
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(value["verdict"], "not_linearizable");
    assert_eq!(value["violations"][0]["key"], "x");

    let malformed = temp_file("malformed.jsonl", "\n{\"process\":0,\"type\":\"invoke\"}\n");
    let output = verity_sim(&["check", malformed.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&output.stderr).contains("line 2"));
}

#[test]
fn replay_writes_history_and_trace_and_repeats_its_hash() {
    let dir = std::env::temp_dir().join(format!("verity-sim-replay-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let history = dir.join("h.jsonl");
    let trace = dir.join("t.jsonl");
    let args = [
        "replay", "--seed", "5", "--nodes", "3", "--ops", "30", "--quiet",
    ];
    let first = verity_sim(
        &[
            &args[..],
            &[
                "--history",
                history.to_str().unwrap(),
                "--trace",
                trace.to_str().unwrap(),
            ],
        ]
        .concat(),
    );
    assert_eq!(first.status.code(), Some(0), "{}", stdout(&first));
    let second = verity_sim(&args);
    let hash = |o: &Output| {
        stdout(o)
            .lines()
            .find(|l| l.starts_with("trace hash:"))
            .unwrap()
            .to_string()
    };
    assert_eq!(hash(&first), hash(&second));
    assert_eq!(
        verity_sim(&["check", history.to_str().unwrap()])
            .status
            .code(),
        Some(0)
    );
    let trace_lines = std::fs::read_to_string(&trace).unwrap();
    assert!(trace_lines.lines().count() > 100);
    for line in trace_lines.lines() {
        serde_json::from_str::<serde_json::Value>(line).unwrap();
    }
}

#[test]
fn run_prints_a_summary_and_exits_0_when_every_seed_passes() {
    let output = verity_sim(&[
        "run", "--seeds", "0..20", "--nodes", "3", "--ops", "50", "--shard", "1/2",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stdout(&output));
    let text = stdout(&output);
    assert!(text.contains("median events/s"), "{text}");
    let row = text.lines().nth(1).unwrap();
    assert!(
        row.trim_start().starts_with("10 "),
        "the shard runs every other seed: {row}"
    );
}

#[test]
fn bad_arguments_are_refused_with_a_reason() {
    let output = verity_sim(&["run", "--seeds", "5..5"]);
    assert_ne!(output.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&output.stderr).contains("empty seed range"));
    let output = verity_sim(&["run", "--shard", "3/2"]);
    assert!(String::from_utf8_lossy(&output.stderr).contains("need 0 <= I < N"));
}

#[test]
fn check_and_replay_write_their_pictures_with_html() {
    let bad = temp_file(
        "for-picture.jsonl",
        "{\"process\":0,\"type\":\"invoke\",\"f\":\"put\",\"key\":\"x\",\"value\":\"1\"}\n{\"process\":0,\"type\":\"ok\",\"f\":\"put\",\"key\":\"x\",\"value\":\"1\"}\n{\"process\":1,\"type\":\"invoke\",\"f\":\"get\",\"key\":\"x\",\"value\":null}\n{\"process\":1,\"type\":\"ok\",\"f\":\"get\",\"key\":\"x\",\"value\":\"2\"}\n",
    );
    let page = bad.with_extension("html");
    let output = verity_sim(&[
        "check",
        bad.to_str().unwrap(),
        "--html",
        page.to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(1));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.starts_with("<!doctype html>"));
    assert!(html.contains("not linearizable: key x (2 operations cannot be ordered)"));

    let run = bad.with_file_name("run.html");
    let output = verity_sim(&[
        "replay",
        "--seed",
        "1",
        "--ops",
        "40",
        "--quiet",
        "--html",
        run.to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stdout(&output));
    let html = std::fs::read_to_string(&run).unwrap();
    assert!(html.contains("verity-sim replay --seed 1 --nodes 5 --clients 8 --ops 40 --keys 4"));
    assert!(html.contains("\"nodes\":[{\"name\":\"n1\""));
}
