//! The linearizability checker on hand-written histories with known verdicts, on generated
//! linearizable histories, and on mutations of them that must fail.

use proptest::prelude::*;
use verity_sim::checker::{Budget, Verdict, check};
use verity_sim::generate::{Shape, linearizable_history};
use verity_sim::history::{Event, EventType, History, OpOutcome, Value};

/// Builds a history from compact lines: `process type f key value`, where value is `-` for
/// none, a string, `a|b` for a cas pair (`_` = null inside the pair), `#n` for an integer,
/// or a txn's JSON list (written without spaces).
fn history(lines: &str) -> History {
    let events = lines
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|line| {
            let parts: Vec<&str> = line.split_whitespace().collect();
            let kind = match parts[1] {
                "invoke" => EventType::Invoke,
                "ok" => EventType::Ok,
                "fail" => EventType::Fail,
                "info" => EventType::Info,
                other => panic!("{other}"),
            };
            let f = serde_json::from_str(&format!("\"{}\"", parts[2])).unwrap();
            let opt = |s: &str| (s != "_").then(|| s.to_string());
            let value = match parts.get(4) {
                None | Some(&"-") => None,
                Some(v) if v.starts_with('[') => Some(serde_json::from_str(v).unwrap()),
                Some(v) if v.starts_with('#') => Some(Value::Int(v[1..].parse().unwrap())),
                Some(v) if v.contains('|') => {
                    let (a, b) = v.split_once('|').unwrap();
                    Some(Value::Pair(opt(a), opt(b)))
                }
                Some(v) => Some(Value::Str(v.to_string())),
            };
            Event {
                process: parts[0].parse().unwrap(),
                kind,
                f,
                key: parts[3].to_string(),
                value,
                time: None,
            }
        })
        .collect();
    History { events }
}

fn verdict(lines: &str) -> Verdict {
    let ops = history(lines).operations().unwrap();
    check(&ops, &mut Budget::steps(1_000_000)).verdict
}

use Verdict::{Linearizable as LIN, NotLinearizable as NOT};

#[test]
fn sequential_writes_and_reads_are_linearizable() {
    assert_eq!(
        verdict("0 invoke put x 1\n0 ok put x 1\n0 invoke get x\n0 ok get x 1"),
        LIN
    );
}

#[test]
fn a_read_concurrent_with_a_write_may_see_either_value() {
    for read in ["1", "-"] {
        let h = format!("0 invoke put x 1\n1 invoke get x\n1 ok get x {read}\n0 ok put x 1");
        assert_eq!(verdict(&h), LIN, "read {read}");
    }
}

#[test]
fn a_read_after_a_completed_write_must_see_it() {
    assert_eq!(
        verdict("0 invoke put x 1\n0 ok put x 1\n1 invoke get x\n1 ok get x -"),
        NOT
    );
}

#[test]
fn a_read_of_a_value_never_written_fails() {
    assert_eq!(
        verdict("0 invoke put x 1\n0 ok put x 1\n1 invoke get x\n1 ok get x 2"),
        NOT
    );
}

#[test]
fn an_absent_key_reads_null() {
    assert_eq!(verdict("0 invoke get x\n0 ok get x -"), LIN);
}

#[test]
fn an_info_write_may_take_effect_any_time_later_or_never() {
    let base = "0 invoke put x 1\n0 info put x\n";
    assert_eq!(
        verdict(&format!(
            "{base}1 invoke get x\n1 ok get x -\n2 invoke get x\n2 ok get x 1"
        )),
        LIN,
        "later"
    );
    assert_eq!(
        verdict(&format!("{base}1 invoke get x\n1 ok get x -")),
        LIN,
        "never"
    );
    assert_eq!(
        verdict(&format!(
            "{base}1 invoke get x\n1 ok get x 1\n2 invoke get x\n2 ok get x -"
        )),
        NOT,
        "once visible it stays"
    );
}

#[test]
fn leftover_info_operations_need_not_take_effect() {
    // Found by comparing the dominance-pruned search against the exact one: the search must
    // succeed once every definite operation is placed.
    assert_eq!(
        verdict("1 invoke get x\n2 invoke delete x\n2 info delete x\n1 ok get x -"),
        LIN
    );
}

#[test]
fn many_unobserved_info_writes_are_decided_quickly() {
    // Writes of unknown outcome stay concurrent with everything after them: without dominance
    // pruning, k of them are up to 2^k configurations.
    let history_with = |info_writes: u64, impossible_read: bool| {
        let mut h = String::new();
        for p in 0..info_writes {
            h.push_str(&format!("{p} invoke put x v{p}\n{p} info put x\n"));
        }
        for p in 100..130 {
            h.push_str(&format!(
                "{p} invoke put x w{p}\n{p} ok put x w{p}\n{p} invoke get x\n{p} ok get x w{p}\n"
            ));
        }
        if impossible_read {
            h.push_str("999 invoke get x\n999 ok get x nobody-wrote-this\n");
        }
        history(&h).operations().unwrap()
    };
    assert_eq!(
        check(&history_with(30, false), &mut Budget::steps(200_000)).verdict,
        LIN
    );
    assert_eq!(
        check(&history_with(10, true), &mut Budget::steps(5_000_000)).verdict,
        NOT
    );
}

#[test]
fn an_info_write_cannot_take_effect_before_it_was_invoked() {
    assert_eq!(
        verdict("1 invoke get x\n1 ok get x 1\n0 invoke put x 1\n0 info put x"),
        NOT
    );
}

#[test]
fn a_failed_cas_means_the_current_value_differed() {
    let put = "0 invoke put x 1\n0 ok put x 1\n";
    assert_eq!(
        verdict(&format!("{put}1 invoke cas x 2|3\n1 fail cas x")),
        LIN
    );
    assert_eq!(
        verdict(&format!("{put}1 invoke cas x 1|3\n1 fail cas x")),
        NOT,
        "it was 1"
    );
    assert_eq!(
        verdict(&format!(
            "{put}1 invoke cas x 1|3\n1 ok cas x\n2 invoke get x\n2 ok get x 3"
        )),
        LIN
    );
    assert_eq!(
        verdict(&format!("{put}1 invoke cas x 2|3\n1 ok cas x")),
        NOT,
        "it was not 2"
    );
    assert_eq!(
        verdict("1 invoke cas x _|3\n1 ok cas x\n2 invoke get x\n2 ok get x 3"),
        LIN,
        "absent expected"
    );
    assert_eq!(
        verdict(&format!(
            "{put}1 invoke cas x 1|_\n1 ok cas x\n2 invoke get x\n2 ok get x -"
        )),
        LIN,
        "cas deletes"
    );
}

#[test]
fn a_delete_makes_the_key_absent() {
    let h = "0 invoke put x 1\n0 ok put x 1\n0 invoke delete x\n0 ok delete x\n";
    assert_eq!(verdict(&format!("{h}1 invoke get x\n1 ok get x -")), LIN);
    assert_eq!(verdict(&format!("{h}1 invoke get x\n1 ok get x 1")), NOT);
}

#[test]
fn concurrent_appends_may_order_either_way_but_sequential_ones_may_not() {
    let concurrent = "0 invoke append x a\n1 invoke append x b\n0 ok append x a\n1 ok append x b\n2 invoke get x\n2 ok get x ";
    assert_eq!(verdict(&format!("{concurrent}ab")), LIN);
    assert_eq!(verdict(&format!("{concurrent}ba")), LIN);
    assert_eq!(verdict(&format!("{concurrent}a")), NOT, "both completed");
    let sequential = "0 invoke append x a\n0 ok append x a\n1 invoke append x b\n1 ok append x b\n2 invoke get x\n2 ok get x ba";
    assert_eq!(verdict(sequential), NOT);
}

#[test]
fn failed_non_cas_operations_are_ignored() {
    assert_eq!(
        verdict("0 invoke put x 1\n0 fail put x\n1 invoke get x\n1 ok get x -"),
        LIN
    );
}

#[test]
fn keys_are_checked_independently_and_only_the_failing_key_is_reported() {
    let h = "0 invoke put x 1\n0 ok put x 1\n0 invoke put y 1\n0 ok put y 1\n1 invoke get y\n1 ok get y -\n1 invoke get x\n1 ok get x 1";
    let report = check(
        &history(h).operations().unwrap(),
        &mut Budget::steps(1_000_000),
    );
    assert_eq!(report.verdict, NOT);
    assert_eq!(report.keys, 2);
    assert_eq!(report.violations.len(), 1);
    assert_eq!(report.violations[0].key, "y");
}

#[test]
fn a_violation_is_reduced_to_the_operations_that_cannot_be_ordered() {
    let mut h = String::from("0 invoke put x 1\n0 ok put x 1\n");
    for p in 1..=20 {
        h.push_str(&format!("{p} invoke get x\n{p} ok get x 1\n"));
    }
    h.push_str("99 invoke get x\n99 ok get x 7\n");
    let report = check(
        &history(&h).operations().unwrap(),
        &mut Budget::steps(10_000_000),
    );
    let witness = &report.violations[0].operations;
    assert_eq!(witness.len(), 2, "{witness:#?}");
    assert!(witness[0].contains("put \"x\" \"1\""));
    assert!(witness[1].contains("process 99"));
    assert_eq!(report.violations[0].longest_linearizable_prefix.len(), 21);
}

#[test]
fn an_exhausted_budget_is_undecided_never_a_guess() {
    let h = linearizable_history(
        Shape {
            processes: 8,
            keys: 1,
            operations: 500,
            info_per_mille: 50,
        },
        1,
    );
    let report = check(&h.operations().unwrap(), &mut Budget::steps(100));
    assert_eq!(report.verdict, Verdict::Undecided);
}

#[test]
fn an_increment_adds_to_the_value_and_absent_counts_as_zero() {
    let first = "0 invoke incr n #2\n0 ok incr n #2\n";
    assert_eq!(
        verdict(&format!("{first}1 invoke incr n #1\n1 ok incr n #3")),
        LIN
    );
    assert_eq!(
        verdict(&format!("{first}1 invoke incr n #1\n1 ok incr n #2")),
        NOT
    );
    assert_eq!(
        verdict("0 invoke incr n #1\n0 ok incr n #2"),
        NOT,
        "absent is 0"
    );
    assert_eq!(
        verdict("0 invoke put n 41\n0 ok put n 41\n1 invoke incr n #1\n1 ok incr n #42"),
        LIN
    );
}

#[test]
fn concurrent_increments_each_see_their_own_result() {
    let both = |a: &str, b: &str| {
        format!("0 invoke incr n #1\n1 invoke incr n #1\n0 ok incr n #{a}\n1 ok incr n #{b}")
    };
    assert_eq!(verdict(&both("1", "2")), LIN);
    assert_eq!(verdict(&both("2", "1")), LIN);
    assert_eq!(verdict(&both("1", "1")), NOT, "a lost update");
}

#[test]
fn a_failed_increment_saw_a_value_that_is_not_an_integer() {
    assert_eq!(
        verdict("0 invoke incr n #1\n0 fail incr n"),
        NOT,
        "absent is 0"
    );
    let after = |value: &str| {
        format!("0 invoke put n {value}\n0 ok put n {value}\n1 invoke incr n #1\n1 fail incr n")
    };
    assert_eq!(verdict(&after("abc")), LIN);
    assert_eq!(
        verdict(&after("007")),
        LIN,
        "leading zeros are not an integer"
    );
    assert_eq!(verdict(&after("7")), NOT);
    assert_eq!(
        verdict(
            "0 invoke put n 9223372036854775807\n0 ok put n 9223372036854775807\n1 invoke incr n #1\n1 fail incr n"
        ),
        LIN,
        "overflow"
    );
}

/// `MSET a 1 b 1` (ok), then `MGET a b` that read `a` and `b` as given.
fn mset_then_mget(a: &str, b: &str) -> String {
    format!(
        r#"0 invoke txn a [["put","a","1"],["put","b","1"]]
0 ok txn a [["put","a","1",true],["put","b","1",true]]
1 invoke txn a [["get","a",null],["get","b",null]]
1 ok txn a [["get","a",null,{a}],["get","b",null,{b}]]"#
    )
}

#[test]
fn a_transaction_takes_effect_at_one_instant_on_all_its_keys() {
    assert_eq!(verdict(&mset_then_mget("\"1\"", "\"1\"")), LIN);
    assert_eq!(verdict(&mset_then_mget("\"1\"", "null")), NOT, "half");
    let concurrent = |a: &str, b: &str| {
        format!(
            r#"0 invoke txn a [["put","a","1"],["put","b","1"]]
1 invoke txn a [["get","a",null],["get","b",null]]
1 ok txn a [["get","a",null,{a}],["get","b",null,{b}]]
0 ok txn a [["put","a","1",true],["put","b","1",true]]"#
        )
    };
    assert_eq!(verdict(&concurrent("null", "null")), LIN, "before");
    assert_eq!(verdict(&concurrent("\"1\"", "\"1\"")), LIN, "after");
    assert_eq!(verdict(&concurrent("null", "\"1\"")), NOT, "torn");
}

#[test]
fn keys_a_transaction_joins_are_checked_and_reported_as_one_group() {
    let torn = format!(
        "{}\n2 invoke put c 1\n2 ok put c 1",
        mset_then_mget("\"1\"", "null")
    );
    let report = check(
        &history(&torn).operations().unwrap(),
        &mut Budget::steps(1_000_000),
    );
    assert_eq!(report.verdict, NOT);
    assert_eq!(report.keys, 3);
    assert_eq!(report.violations.len(), 1);
    assert_eq!(report.violations[0].key, "a+b");
}

#[test]
fn a_transaction_part_that_failed_changed_nothing() {
    let h = r#"0 invoke put a x
0 ok put a x
1 invoke txn a [["incr","a",1],["append","a","y"],["get","a",null]]
1 ok txn a [["incr","a",1,false],["append","a","y",true],["get","a",null,"xy"]]"#;
    assert_eq!(verdict(h), LIN);
    assert_eq!(verdict(&h.replace("\"xy\"", "\"1y\"")), NOT);
}

#[test]
fn txn_lines_that_do_not_fit_are_errors_naming_the_line() {
    let cases = [
        (
            r#"0 invoke txn b [["put","a","1"]]"#,
            "first operation's key",
        ),
        (r#"0 invoke txn a []"#, "at least one"),
        (r#"0 invoke txn a [["txn","a",null]]"#, "cannot hold a txn"),
        (
            "0 invoke txn a [[\"get\",\"a\",null]]\n0 ok txn a [[\"get\",\"a\",null]]",
            "fourth element",
        ),
        ("0 invoke incr a 1", "integer"),
    ];
    for (lines, needle) in cases {
        let text = history(lines).to_json_lines();
        let error = History::parse(&text).unwrap_err();
        assert!(error.reason.contains(needle), "{lines}: {error}");
    }
}

#[test]
fn generated_histories_round_trip_through_json_lines() {
    let h = linearizable_history(
        Shape {
            processes: 6,
            keys: 4,
            operations: 300,
            info_per_mille: 100,
        },
        3,
    );
    assert!(h.to_json_lines().contains("\"txn\""));
    assert!(h.to_json_lines().contains("\"incr\""));
    assert_eq!(History::parse(&h.to_json_lines()).unwrap(), h);
}

fn shapes() -> impl Strategy<Value = (Shape, u64)> {
    (1u64..7, 1u64..4, 1u64..120, 0u64..60, any::<u64>()).prop_map(
        |(processes, keys, operations, info, seed)| {
            (
                Shape {
                    processes,
                    keys,
                    operations,
                    info_per_mille: info,
                },
                seed,
            )
        },
    )
}

proptest! {
    #[test]
    fn generated_linearizable_histories_pass((shape, seed) in shapes()) {
        let h = linearizable_history(shape, seed);
        let report = check(&h.operations().unwrap(), &mut Budget::steps(50_000_000));
        prop_assert_eq!(report.verdict, Verdict::Linearizable, "{}", h.to_json_lines());
    }

    #[test]
    fn a_read_of_a_never_written_value_fails((shape, seed) in shapes(), pick in any::<prop::sample::Index>()) {
        let mut h = linearizable_history(shape, seed);
        let reads: Vec<usize> = h.events.iter().enumerate()
            .filter(|(_, e)| e.kind == EventType::Ok && e.f == verity_sim::history::Function::Get)
            .map(|(i, _)| i)
            .collect();
        prop_assume!(!reads.is_empty());
        let i = reads[pick.index(reads.len())];
        h.events[i].value = Some(Value::Str("never-written".into()));
        let ops = h.operations().unwrap();
        prop_assert!(ops.iter().any(|op| op.outcome == OpOutcome::Ok(Some("never-written".into()))));
        let report = check(&ops, &mut Budget::steps(50_000_000));
        prop_assert_eq!(report.verdict, Verdict::NotLinearizable);
    }
}

#[test]
fn a_key_with_a_plus_in_its_name_counts_as_one_key() {
    let report = check(
        &history("0 invoke put a+b 1\n0 ok put a+b 1")
            .operations()
            .unwrap(),
        &mut Budget::steps(1_000),
    );
    assert_eq!(report.keys, 1);
}

#[test]
fn many_unobserved_info_appends_are_decided_quickly() {
    // Appends of unknown outcome that no read saw: each would otherwise stay a candidate
    // everywhere after its call, its string making every state it joins a new one.
    let mut h = String::new();
    for p in 0..20 {
        h.push_str(&format!(
            "{p} invoke append x lost{p}.\n{p} info append x\n"
        ));
    }
    let mut value = String::new();
    for p in 100..140 {
        value.push_str(&format!("w{p}."));
        h.push_str(&format!(
            "{p} invoke append x w{p}.\n{p} ok append x w{p}.\n{p} invoke get x\n{p} ok get x {value}\n"
        ));
    }
    let ops = history(&h).operations().unwrap();
    assert_eq!(check(&ops, &mut Budget::steps(20_000)).verdict, LIN);
}

#[test]
fn an_info_append_that_a_read_saw_is_kept() {
    // The read needs the info append to have taken effect; dropping it would refute.
    assert_eq!(
        verdict("1 invoke append x a\n1 info append x\n2 invoke get x\n2 ok get x a"),
        LIN
    );
    // And one that a read saw in an impossible place still fails: it was invoked after `b`
    // returned, so it cannot come first.
    assert_eq!(
        verdict(
            "2 invoke append x b\n2 ok append x b\n1 invoke append x a\n1 info append x\n3 invoke get x\n3 ok get x ab"
        ),
        NOT
    );
}

#[test]
fn an_info_write_in_a_group_with_failed_cas_is_kept() {
    // The failed cas expected "a": it saw something else. Only the info put of "z" explains
    // that, although no read returned "z".
    assert_eq!(
        verdict(
            "1 invoke put x a\n1 ok put x a\n2 invoke put x z\n2 info put x\n3 invoke cas x a|b\n3 fail cas x\n4 invoke get x\n4 ok get x z"
        ),
        LIN
    );
    assert_eq!(
        verdict(
            "1 invoke put x a\n1 ok put x a\n2 invoke put x z\n2 info put x\n3 invoke cas x a|b\n3 fail cas x\n4 invoke get x\n4 ok get x a"
        ),
        NOT
    );
}

/// Fourteen appends and a put invoked after them, all concurrent, then a read of `seen`.
fn appends_before_a_put(seen: &str) -> Vec<verity_sim::history::Operation> {
    let mut h = String::new();
    for i in 0..14 {
        h.push_str(&format!("{i} invoke append x h{i}.\n"));
    }
    h.push_str("99 invoke put x p.\n99 ok put x p.\n");
    for i in (0..14).rev() {
        h.push_str(&format!("{i} ok append x h{i}.\n"));
    }
    h.push_str(&format!("100 invoke get x\n100 ok get x {seen}\n"));
    history(&h).operations().unwrap()
}

#[test]
fn appends_that_an_overwrite_hides_are_not_tried_in_every_order() {
    // Whatever the appends placed before the put did, the put overwrote it and no read saw
    // it: those states merge, leaving the 2^14 subsets of appends made before the put instead
    // of their 14! orders as well.
    let after_put: String = (0..14).rev().map(|i| format!("h{i}.")).collect();
    let ops = appends_before_a_put(&format!("p.{after_put}"));
    assert_eq!(check(&ops, &mut Budget::steps(2_000_000)).verdict, LIN);
    let some_after: String = (0..7).map(|i| format!("h{i}.")).collect();
    let ops = appends_before_a_put(&format!("p.{some_after}"));
    assert_eq!(check(&ops, &mut Budget::steps(2_000_000)).verdict, LIN);
    // A read that saw an append before the put's value cannot be explained.
    let ops = appends_before_a_put("h0.p.");
    assert_eq!(check(&ops, &mut Budget::steps(2_000_000)).verdict, NOT);
}
